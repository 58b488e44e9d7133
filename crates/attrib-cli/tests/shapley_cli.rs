//! `attrib explain` with exact Shapley values and Shapley value sampling on the bundled models:
//! outputs equal the library's, `--samples`, `--seed`, `--feature-mask`, `--baseline` and
//! `--param sampler=...` reach the method, and bad requests give one clear error line.

use attrib::convert::{read_npy_tensor, write_npy_tensor};
use attrib::prelude::*;
use attrib::ablation::Sampler;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::{assert_close, read, repo_root};
use tch::{Device, Tensor};

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

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(tch::Kind::Double).double_value(&[])
}

#[test]
fn shapley_sampling_on_the_breast_cancer_mlp() {
    let (m, x) = (data("breast_cancer_mlp.pt"), data("breast_cancer.npy"));
    let out = tmp("svs.npy");
    let mut args = vec!["explain", "--model", &m, "--input", &x, "--method", "shapley-sampling", "--samples", "10", "--seed", "3",
        "--param", "sampler=stratified", "--baseline", "0.25", "--device", "cpu", "--out", out.to_str().unwrap()];
    args.extend(PINNED);
    let v = ok(&args);
    assert_eq!(v["method"], "shapley-sampling");
    assert_eq!(v["params"]["n_samples"], 10);
    assert_eq!(v["params"]["seed"], 3);
    assert_eq!(v["params"]["sampler"], "stratified");
    // Efficiency: the delta of every row is ~0 (float32 model).
    for d in v["convergence_delta"].as_array().unwrap() {
        assert!(d.as_f64().unwrap().abs() < 1e-4, "{v}");
    }
    let model = TorchScriptModel::load(&m, Device::Cpu).unwrap();
    let xs = read_npy_tensor(&x, Device::Cpu).unwrap();
    let lib = ShapleyValueSampling::params()
        .n_samples(10)
        .seed(3)
        .sampler(Sampler::Stratified)
        .baselines(Baseline::Scalar(0.25))
        .batch(pinned())
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(xs), &Target::Argmax)
        .unwrap();
    assert_close(&read(&out), lib.single().unwrap(), 1e-5, "CLI vs library (shapley-sampling)");

    // A background distribution: three rows of the data as baseline samples.
    let bg = tmp("background.npy");
    write_npy_tensor(&bg, &read(&x).narrow(0, 0, 3)).unwrap();
    let out2 = tmp("svs_bg.npy");
    let mut args = vec!["explain", "--model", &m, "--input", &x, "--method", "shapley-sampling", "--samples", "4",
        "--baseline", bg.to_str().unwrap(), "--param", "baseline_distribution=true", "--device", "cpu", "--out", out2.to_str().unwrap()];
    args.extend(PINNED);
    let v = ok(&args);
    for d in v["convergence_delta"].as_array().unwrap() {
        assert!(d.as_f64().unwrap().abs() < 1e-4, "{v}");
    }
}

#[test]
fn exact_shapley_on_the_digit_cnn() {
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let out = tmp("exact.npy");
    // 8x8 patches of the 16x16 digits: 4 groups, 16 coalitions per row.
    let mut args = vec!["explain", "--model", &m, "--input", &x, "--method", "exact-shapley", "--feature-mask", "grid:8x8",
        "--baseline", "0.5", "--target", "3", "--device", "cpu", "--out", out.to_str().unwrap()];
    args.extend(PINNED);
    let v = ok(&args);
    assert_eq!(v["method"], "exact-shapley");
    let model = TorchScriptModel::load(&m, Device::Cpu).unwrap();
    let xs = read_npy_tensor(&x, Device::Cpu).unwrap();
    let lib = ExactShapley::params()
        .feature_mask(FeatureMask::grid(16, 16, 8, 8).unwrap())
        .baselines(Baseline::Scalar(0.5))
        .batch(pinned())
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(xs.shallow_clone()), &Target::Class(3))
        .unwrap();
    assert_close(&read(&out), lib.single().unwrap(), 1e-5, "CLI vs library (exact-shapley)");
    // Efficiency, against the model's own outputs: the four patch values of a row sum to
    // F_3(x) − F_3(0.5).
    let a = read(&out);
    let sums = (0..2).flat_map(|i| (0..2).map(move |j| (i, j))).fold(Tensor::zeros([10], (tch::Kind::Float, Device::Cpu)), |acc, (i, j)| {
        acc + a.narrow(2, i * 8, 1).narrow(3, j * 8, 1).reshape([10])
    });
    let f = |t: &Tensor| model.forward(&[t.shallow_clone()], &[]).unwrap().select(1, 3);
    let gap = f(&xs) - f(&xs.full_like(0.5));
    assert!(max_abs(&(sums - gap)) < 1e-4);
}

#[test]
fn bad_shapley_requests_are_clear_errors() {
    let (m, x) = (data("breast_cancer_mlp.pt"), data("breast_cancer.npy"));
    let o = tmp("never.npy");
    let o = o.to_str().unwrap();
    // 30 features, one group each: too many for exact values.
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "exact-shapley", "--out", o], "at most 20 feature groups");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "exact-shapley", "--samples", "5", "--out", o], "--samples does not apply to `exact-shapley`");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "shapley-sampling", "--samples", "0", "--out", o], "n_samples");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "shapley-sampling", "--param", "sampler=sobol", "--out", o], "random");
    assert!(!std::path::Path::new(o).exists());
}
