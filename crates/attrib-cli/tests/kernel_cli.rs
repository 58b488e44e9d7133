//! `attrib explain` and `attrib compare` with KernelSHAP and LIME on the bundled breast-cancer
//! MLP: outputs equal the library's, `--samples`, `--seed`, `--feature-mask`, `--baseline` and
//! `--param surrogate=...` reach the method, compare runs both by default, and bad requests
//! give one clear error line.

use attrib::ablation::shapley::{Allocation, StratumDraws};
use attrib::ablation::Surrogate;
use attrib::convert::{read_npy_tensor, write_npy_tensor};
use attrib::prelude::*;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::{assert_close, read, repo_root};
use tch::{Device, Kind, Tensor};

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn ok(args: &[&str]) -> serde_json::Value {
    let out = attrib().run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

fn data(name: &str) -> String {
    repo_root().join("examples/data").join(name).display().to_string()
}

/// The batching both sides pin, so that float32 results do not depend on automatic choices.
const PINNED: [&str; 6] = ["--max-batch", "64", "--memory-format", "contiguous", "--no-freeze", "--json"];

fn pinned() -> BatchOptions {
    BatchOptions { max_batch: Some(64), memory_format: MemoryFormat::Contiguous, inference_copy: false, ..BatchOptions::default() }
}

/// The ten base measurements of the breast-cancer data (mean, error and worst of each together).
fn measurement_mask() -> Tensor {
    Tensor::arange(30, (Kind::Int64, Device::Cpu)).remainder(10)
}

#[test]
fn kernel_shap_and_lime_on_the_breast_cancer_mlp() {
    let (m, x) = (data("breast_cancer_mlp.pt"), data("breast_cancer.npy"));
    let mask = tmp("measurements.npy");
    let ids: Vec<i64> = (0..30).map(|e| e % 10).collect();
    ndarray_npy::write_npy(&mask, &ndarray::Array1::from(ids)).unwrap();
    let model = TorchScriptModel::load(&m, Device::Cpu).unwrap();
    let xs = read_npy_tensor(&x, Device::Cpu).unwrap();
    let group_mask = || FeatureMask::new(measurement_mask()).unwrap();

    let out = tmp("ks.npy");
    let mut args = vec!["explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--samples", "300", "--seed", "3",
        "--baseline", "0.25", "--feature-mask", mask.to_str().unwrap(), "--param", "paired=false", "--device", "cpu", "--out", out.to_str().unwrap()];
    args.extend(PINNED);
    let v = ok(&args);
    assert_eq!(v["method"], "kernel-shap");
    assert_eq!(v["params"]["n_samples"], 300);
    assert_eq!(v["params"]["seed"], 3);
    assert_eq!(v["params"]["paired"], false);
    assert_eq!(v["extra"]["groups"], 10);
    let lib = KernelShap::params()
        .n_samples(300)
        .seed(3)
        .paired(false)
        .baselines(Baseline::Scalar(0.25))
        .feature_mask(group_mask())
        .batch(pinned())
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(xs.shallow_clone()), &Target::Argmax)
        .unwrap();
    assert_close(&read(&out), lib.single().unwrap(), 1e-5, "CLI vs library (kernel-shap)");

    let out = tmp("lime.npy");
    let mut args = vec!["explain", "--model", &m, "--input", &x, "--method", "lime", "--samples", "200", "--seed", "5",
        "--param", "surrogate=ridge", "--param", "alpha=0.5", "--feature-mask", mask.to_str().unwrap(), "--device", "cpu", "--out", out.to_str().unwrap()];
    args.extend(PINNED);
    let v = ok(&args);
    assert_eq!(v["method"], "lime");
    assert_eq!(v["params"]["surrogate"], "ridge");
    assert_eq!(v["params"]["alpha"], 0.5);
    let lib = Lime::params()
        .n_samples(200)
        .seed(5)
        .surrogate(Surrogate::Ridge { alpha: 0.5 })
        .feature_mask(group_mask())
        .batch(pinned())
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(xs.shallow_clone()), &Target::Argmax)
        .unwrap();
    assert_close(&read(&out), lib.single().unwrap(), 1e-5, "CLI vs library (lime)");

    // A background distribution: three rows of the data as baseline samples.
    let bg = tmp("ks_background.npy");
    write_npy_tensor(&bg, &xs.narrow(0, 0, 3)).unwrap();
    let out = tmp("ks_bg.npy");
    let mut args = vec!["explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--samples", "64", "--baseline", bg.to_str().unwrap(),
        "--param", "baseline_distribution=true", "--feature-mask", mask.to_str().unwrap(), "--device", "cpu", "--out", out.to_str().unwrap()];
    args.extend(PINNED);
    let v = ok(&args);
    assert_eq!(v["extra"]["baseline_samples"], 3);

    // The stratified design's choices reach the method.
    let out = tmp("ks_blocks.npy");
    let mut args = vec!["explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--samples", "64", "--seed", "2",
        "--param", "draws=blocks", "--param", "allocation=sqrt-mass", "--feature-mask", mask.to_str().unwrap(), "--device", "cpu",
        "--out", out.to_str().unwrap()];
    args.extend(PINNED);
    let v = ok(&args);
    assert_eq!((v["params"]["draws"].as_str(), v["params"]["allocation"].as_str()), (Some("blocks"), Some("sqrt-mass")));
    assert_eq!(v["extra"]["design"], "stratified");
    let lib = |allocation, draws| {
        KernelShap::params()
            .n_samples(64)
            .seed(2)
            .allocation(allocation)
            .draws(draws)
            .feature_mask(group_mask())
            .batch(pinned())
            .check()
            .unwrap()
            .attribute(&model, &Inputs::new(xs.shallow_clone()), &Target::Argmax)
            .unwrap()
    };
    let blocks = lib(Allocation::SqrtMass, StratumDraws::Blocks);
    assert_close(&read(&out), blocks.single().unwrap(), 1e-5, "CLI vs library (kernel-shap, blocks)");
    let uniform = lib(Allocation::Mass, StratumDraws::Uniform);
    assert!((blocks.single().unwrap() - uniform.single().unwrap()).abs().max().double_value(&[]) > 1e-6, "the designs differ");
}

#[test]
fn methods_lists_the_stratified_design_choices() {
    let out = attrib().run(&["methods", "kernel-shap"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["allocation", "sqrt-mass", "draws", "blocks", "uniform"] {
        assert!(text.contains(word), "`attrib methods kernel-shap` lacks {word}:\n{text}");
    }
}

#[test]
fn compare_runs_kernel_shap_and_lime_by_default() {
    let (m, x) = (data("breast_cancer_mlp.pt"), data("breast_cancer.npy"));
    let dir = tmp("kernel_compare");
    let out = attrib().run(&["compare", "--model", &m, "--input", &x, "--out-dir", dir.to_str().unwrap(), "--quiet", "--device", "cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let text = report.to_string();
    for name in ["kernel-shap", "lime"] {
        assert!(text.contains(&format!("\"{name}\"")), "{name} missing from the default comparison");
    }
    // 30 tabular features: 8 model calls per group.
    assert!(text.contains("\"n_samples\":240"), "compare's budget for 30 groups");
}

#[test]
fn bad_kernel_requests_are_clear_errors() {
    let (m, x) = (data("breast_cancer_mlp.pt"), data("breast_cancer.npy"));
    let o = tmp("bad_kernel.npy");
    let o = o.to_str().unwrap();
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--samples", "1", "--out", o], "at least 2");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "lime", "--param", "surrogate=tree", "--out", o], "lasso");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "lime", "--param", "kernel_width=0", "--out", o], "kernel_width");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--steps", "5", "--out", o], "--steps does not apply to `kernel-shap`");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "kernel-shap", "--param", "draws=cyclic", "--out", o], "blocks");
}
