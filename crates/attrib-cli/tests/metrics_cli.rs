//! `attrib metrics` on the bundled digit CNN: infidelity and max-sensitivity equal the library's
//! for the same method, seed, samples and noise (every metric flag mapped, the method built from
//! explain's flags); the randomisation test equals the library's; bad requests give one
//! `error:` line.

use attrib::convert::read_npy_tensor;
use attrib::metrics::{infidelity, sensitivity_max, InfidelityParams, Noise, SensitivityParams};
use attrib::prelude::*;
use attrib_tests::cli::{cli, Cli};
use attrib_tests::repo_root;
use tch::Device;

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn data(name: &str) -> String {
    repo_root().join("examples/data").join(name).display().to_string()
}

fn ok(args: &[&str]) -> serde_json::Value {
    let out = attrib().run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

/// Batching pinned on both sides, so that float32 results do not depend on automatic choices.
const PINNED: [&str; 6] = ["--max-batch", "64", "--memory-format", "contiguous", "--device", "cpu"];

fn pinned() -> BatchOptions {
    BatchOptions { max_batch: Some(64), memory_format: MemoryFormat::Contiguous, ..BatchOptions::default() }
}

fn digits() -> (TorchScriptModel, Inputs) {
    let model = TorchScriptModel::load(data("digits_cnn.pt"), Device::Cpu).unwrap();
    let x = read_npy_tensor(data("digits.npy"), Device::Cpu).unwrap();
    (model, Inputs::new(x))
}

fn values(v: &serde_json::Value) -> Vec<f64> {
    v["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-9 * w.abs().max(1e-12), "{what}: CLI {got:?} vs library {want:?}");
    }
}

#[test]
fn infidelity_matches_the_library() {
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let (model, inputs) = digits();
    // Saliency (I = x − x̃) and input × gradient (I = (x − x̃)/x), normalised for the latter.
    for (method, normalize) in [("saliency", false), ("input-x-gradient", true)] {
        let mut args = vec!["metrics", "--metric", "infidelity", "--model", &m, "--input", &x, "--method", method, "--samples", "12", "--seed", "3", "--radius", "0.05", "--json"];
        if normalize {
            args.push("--normalize-attribution");
        }
        args.extend(PINNED);
        let v = ok(&args);
        let spec: MethodSpec = serde_json::from_value(serde_json::json!({"method": method, "max_batch": 64, "memory_format": "contiguous"})).unwrap();
        let built = attrib::methods::Registry::builtin().build(&spec, inputs.tensors()).unwrap();
        let a = built.attribute(&model, &inputs, &Target::Argmax).unwrap();
        let params = InfidelityParams {
            n_perturb_samples: 12,
            noise: Noise::Gaussian { stdev: 0.05 },
            multiply_by_inputs: method == "input-x-gradient",
            normalize,
            seed: 3,
            batch: pinned(),
            ..Default::default()
        };
        let want = infidelity(&model, &inputs, &Target::PerSample(a.meta.targets.clone().unwrap()), &a.values, &params).unwrap();
        assert_close(&values(&v), &want, method);
        assert_eq!(v["multiply_by_inputs"], method == "input-x-gradient");
        assert_eq!(v["samples"], 12);
        assert_eq!(v["targets"].as_array().unwrap().len(), 10);
    }
}

#[test]
fn sensitivity_max_matches_the_library() {
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let mut args = vec!["metrics", "--metric", "sensitivity-max", "--model", &m, "--input", &x, "--method", "saliency", "--abs", "--samples", "6", "--seed", "1", "--json"];
    args.extend(PINNED);
    let v = ok(&args);
    let (model, inputs) = digits();
    let sal = Saliency::params().abs(true).batch(pinned()).check().unwrap();
    let params = SensitivityParams { n_perturb_samples: 6, seed: 1, ..Default::default() };
    let want = sensitivity_max(&sal, &model, &inputs, &Target::Argmax, &params).unwrap();
    assert_close(&values(&v), &want.values, "sensitivity-max");
    assert_eq!(v["noise"]["uniform"]["radius"], 0.02);
    assert!(values(&v).iter().all(|s| *s > 0.0));
}

#[test]
fn randomization_matches_the_library() {
    use attrib::metrics::randomization::{model_randomization, Mode, RandomizationParams, SobelEdges};
    let (model, inputs) = digits();
    let got = ok(&["metrics", "--metric", "randomization", "--model", &data("digits_cnn.pt"), "--input", &data("digits.npy"),
        "--method", "saliency", "--abs", "--randomization", "independent", "--seed", "2", "--json", "--device", "cpu"]);
    let saliency = Saliency::params().abs(true).check().unwrap();
    let params = RandomizationParams { mode: Mode::Independent, seed: 2, ..Default::default() };
    let want = model_randomization(&saliency, &model, &inputs, &Target::Argmax, &params).unwrap();
    assert_eq!(got["layers"], serde_json::json!(["fc", "conv2", "conv1"]));
    assert_eq!(got["mode"], "independent");
    let steps = got["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (g, w) in steps.iter().zip(&want.steps) {
        assert_eq!(g["randomized"], serde_json::json!(w.randomized));
        let rows: Vec<f64> = g["spearman_abs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_close(&rows, &w.spearman_abs.iter().map(|v| v.unwrap()).collect::<Vec<_>>(), "spearman_abs");
    }
    let edges = ok(&["metrics", "--metric", "randomization", "--model", &data("digits_cnn.pt"), "--input", &data("digits.npy"),
        "--method", "sobel-edges", "--json", "--device", "cpu"]);
    assert_eq!(edges["method"], SobelEdges.info().name);
    assert!(edges["steps"].as_array().unwrap().iter().all(|s| s["mean_abs"].as_f64() == Some(1.0)), "{edges}");
}

#[test]
fn bad_requests_fail_with_one_error_line() {
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let a = attrib();
    let base = ["metrics", "--model", &m, "--input", &x, "--device", "cpu"];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|s| s.to_string()).collect() };
    let run = |extra: &[&str], needle: &str| {
        let args = with(extra);
        a.assert_fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    };
    run(&["--metric", "fidelity"], "use infidelity, sensitivity-max or randomization");
    run(&["--metric", "randomization", "--randomization", "bottom-up"], "use cascading or independent");
    run(&["--metric", "randomization", "--samples", "5"], "do not apply to --metric randomization");
    run(&["--metric", "infidelity", "--method", "sobel-edges"], "control of --metric randomization only");
    run(&["--metric", "sensitivity-max", "--normalize-attribution"], "applies to --metric infidelity only");
    run(&["--metric", "infidelity", "--method", "saliency", "--window", "3"], "--window does not apply");
    run(&["--metric", "infidelity", "--samples", "0"], "at least 1");
    run(&["--metric", "sensitivity-max", "--radius", "-1"], "finite and >= 0");
}
