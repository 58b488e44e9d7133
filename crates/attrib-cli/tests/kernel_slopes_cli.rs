//! `attrib explain --method kernel-shap --param regression=size-slopes` on the bundled
//! breast-cancer MLP: the parameter reaches the method (the CLI equals the library), the
//! metadata says which fit ran, `attrib methods` lists it, and a bad value is a one-line error.

use attrib::ablation::shapley::{Allocation, KernelRegression, StratumDraws};
use attrib::convert::read_npy_tensor;
use attrib::prelude::*;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::{assert_close, read, repo_root};
use tch::Device;

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn data(name: &str) -> String {
    repo_root().join("examples/data").join(name).display().to_string()
}

#[test]
fn size_slopes_reach_the_method() {
    let (m, x) = (data("breast_cancer_mlp.pt"), data("breast_cancer.npy"));
    let model = TorchScriptModel::load(&m, Device::Cpu).unwrap();
    let xs = read_npy_tensor(&x, Device::Cpu).unwrap();
    let batch = BatchOptions { max_batch: Some(64), memory_format: MemoryFormat::Contiguous, inference_copy: false, ..BatchOptions::default() };
    let lib = |regression| {
        KernelShap::params()
            .n_samples(128)
            .seed(1)
            .draws(StratumDraws::Blocks)
            .allocation(Allocation::SqrtMass)
            .regression(regression)
            .batch(batch)
            .check()
            .unwrap()
            .attribute(&model, &Inputs::new(xs.shallow_clone()), &Target::Argmax)
            .unwrap()
    };
    let out = tmp("ks_slopes.npy");
    let args = [
        "explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--samples", "128", "--seed", "1", "--param", "draws=blocks",
        "--param", "allocation=sqrt-mass", "--param", "regression=size-slopes", "--device", "cpu", "--out", out.to_str().unwrap(),
        "--max-batch", "64", "--memory-format", "contiguous", "--no-freeze", "--json",
    ];
    let run = attrib().run(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!((v["params"]["regression"].as_str(), v["extra"]["regression"].as_str()), (Some("size-slopes"), Some("size-slopes")));
    let slopes = lib(KernelRegression::SizeSlopes);
    assert_close(&read(&out), slopes.single().unwrap(), 1e-5, "CLI vs library (kernel-shap, size slopes)");
    let linear = lib(KernelRegression::Linear);
    assert!((slopes.single().unwrap() - linear.single().unwrap()).abs().max().double_value(&[]) > 1e-6, "the fits differ");

    let listed = attrib().run(&["methods", "kernel-shap"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("regression") && text.contains("size-slopes"), "{text}");

    let bad = attrib().run(&["explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--param", "regression=cubic", "--out", out.to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("regression") && err.trim().lines().count() == 1, "{err}");
}
