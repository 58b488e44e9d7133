//! LRP from the command line: listed by `attrib methods` with Captum's epsilon, run by `attrib
//! explain --method lrp` on the bundled digit CNN and breast-cancer MLP (the same values as the
//! library, attributions minus the delta summing to the target output), `--param epsilon`, and
//! errors.

use attrib::convert::read_npy_tensor;
use attrib::deeplift::Lrp;
use attrib::prelude::*;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::repo_root;
use tch::{Device, Kind, Tensor};

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

#[test]
fn lrp_is_listed_with_captums_epsilon() {
    let listed = attrib().run(&["methods"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("lrp"), "{}", String::from_utf8_lossy(&listed.stdout));
    let one = attrib().run(&["methods", "lrp"]);
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(one.status.success() && text.contains("epsilon") && text.contains("[default 1e-9]"), "{text}");
}

#[test]
fn explain_lrp_on_the_bundled_models() {
    let root = repo_root();
    for (model, data) in [("digits_cnn.pt", "digits.npy"), ("breast_cancer_mlp.pt", "breast_cancer.npy")] {
        let (m, x) = (root.join("examples/data").join(model), root.join("examples/data").join(data));
        let (ms, xs) = (m.to_str().unwrap(), x.to_str().unwrap());
        let out = tmp(&format!("lrp_{model}.npy"));
        let done = attrib().run(&["explain", "--model", ms, "--input", xs, "--device", "cpu", "--method", "lrp", "--json", "--out", out.to_str().unwrap()]);
        assert!(done.status.success(), "{model}: {}", String::from_utf8_lossy(&done.stderr));
        let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        assert_eq!(json["method"], "lrp");
        let attr = read_npy_tensor(&out, Device::Cpu).unwrap();
        let input = read_npy_tensor(&x, Device::Cpu).unwrap();
        assert_eq!(attr.size(), input.size(), "{model}");
        let n = input.size()[0];
        let delta: Vec<f64> = json["convergence_delta"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(delta.len() as i64, n, "{json}");
        let targets: Vec<i64> = json["targets"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();

        // The same as the library in this process, and Σ attr − delta is the target output.
        let tsm = TorchScriptModel::load(&m, Device::Cpu).unwrap();
        let target = Target::PerSample(targets.clone());
        let lib = Lrp::params().check().unwrap().attribute(&tsm, &Inputs::new(input.shallow_clone()), &target).unwrap();
        let scale = max_abs(lib.single().unwrap()).max(1e-6);
        assert!(max_abs(&(&attr - lib.single().unwrap())) / scale < 1e-6, "{model}: CLI and library differ");
        let outputs = tsm.forward(&[input.shallow_clone()], &[]).unwrap();
        let sums = attr.reshape([n, -1]).sum_dim_intlist(1, false, Kind::Double);
        for (r, &t) in targets.iter().enumerate() {
            let f = outputs.double_value(&[r as i64, t]);
            let s = sums.double_value(&[r as i64]);
            assert!((s - delta[r] - f).abs() < 1e-4 * (1.0 + f.abs()), "{model} row {r}: Σ attr {s} − delta {} vs F_t {f}", delta[r]);
        }

        // A large epsilon absorbs relevance: a different answer.
        let big = tmp(&format!("lrp_big_{model}.npy"));
        let done = attrib().run(&["explain", "--model", ms, "--input", xs, "--device", "cpu", "--method", "lrp", "--param", "epsilon=10", "--out", big.to_str().unwrap()]);
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        let big = read_npy_tensor(&big, Device::Cpu).unwrap();
        assert!(max_abs(&(&big - &attr)) / scale > 1e-3, "{model}: epsilon=10 changed nothing");
    }
    let (m, x) = (root.join("examples/data/breast_cancer_mlp.pt"), root.join("examples/data/breast_cancer.npy"));
    let o = tmp("lrp_bad.npy");
    attrib().assert_fails(
        &["explain", "--model", m.to_str().unwrap(), "--input", x.to_str().unwrap(), "--method", "lrp", "--param", "epsilon=-1", "--out", o.to_str().unwrap()],
        "epsilon",
    );
}
