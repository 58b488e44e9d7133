//! `attrib explain` with the perturbation methods: outputs equal the library's, flags parse, and
//! bad flags give one clear error line.

use attrib::prelude::*;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::{assert_close, fixtures, load_model, read};

/// The `attrib` binary cargo built for this test run.
fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn run(args: &[&str]) -> std::process::Output {
    attrib().run(args)
}

fn fails(args: &[&str], needle: &str) {
    attrib().assert_fails(args, needle)
}

fn model(name: &str) -> (String, String) {
    let d = fixtures().join("models").join(name);
    (d.join("model.pt").display().to_string(), d.join("input0.npy").display().to_string())
}

fn ok(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

#[test]
fn perturbation_methods_from_the_command_line() {
    let (m, x) = model("cnn");
    let fx = load_model("cnn");
    // The same computation on both sides: the float32 results of the automatic choices
    // (layout, frozen copy) may differ in the last bits between processes.
    let pinned = BatchOptions { max_batch: Some(6), memory_format: MemoryFormat::Contiguous, inference_copy: false, ..BatchOptions::default() };
    let out = tmp("fa.npy");
    let o = out.to_str().unwrap();
    let v = ok(&["explain", "--model", &m, "--input", &x, "--method", "feature-ablation", "--feature-mask", "grid:4x4",
        "--baseline", "0.5", "--target", "1", "--out", o, "--device", "cpu", "--json", "--max-batch", "6",
        "--memory-format", "contiguous", "--no-freeze"]);
    assert_eq!(v["method"], "feature-ablation");
    let lib = FeatureAblation::params()
        .feature_mask(FeatureMask::grid(12, 12, 4, 4).unwrap())
        .baselines(Baseline::Scalar(0.5))
        .batch(pinned)
        .check()
        .unwrap()
        .attribute(&fx.model, &fx.inputs(), &Target::Class(1))
        .unwrap();
    assert_close(&read(&out), lib.single().unwrap(), 1e-6, "CLI vs library (feature ablation)");

    let out = tmp("oc.npy");
    let o = out.to_str().unwrap();
    ok(&["explain", "--model", &m, "--input", &x, "--method", "occlusion", "--window", "1,4,4", "--strides", "1,2,2",
        "--target", "1", "--out", o, "--device", "cpu", "--json", "--max-batch", "6",
        "--memory-format", "contiguous", "--no-freeze"]);
    let lib = Occlusion::params()
        .window(&[1, 4, 4])
        .stride(&[1, 2, 2])
        .batch(pinned)
        .check()
        .unwrap()
        .attribute(&fx.model, &fx.inputs(), &Target::Class(1))
        .unwrap();
    assert_close(&read(&out), lib.single().unwrap(), 1e-6, "CLI vs library (occlusion)");

    let out = tmp("fp.npy");
    let v = ok(&["explain", "--model", &m, "--input", &x, "--method", "feature-permutation", "--feature-mask", "slic:9",
        "--seed", "3", "--target", "0", "--out", out.to_str().unwrap(), "--device", "cpu", "--json"]);
    assert_eq!(v["params"]["permutations"]["seed"], 3);
    assert_eq!(read(&out).size(), vec![6, 1, 12, 12]);
}

#[test]
fn bad_perturbation_flags_are_clear_errors() {
    let (m, x) = model("cnn");
    let o = tmp("bad.npy");
    let o = o.to_str().unwrap();
    let base = ["explain", "--model", &m, "--input", &x, "--out", o, "--device", "cpu"];
    fn join<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(extra).copied().collect()
    }
    let with = |extra: &[&'static str]| join(&base, extra);
    fails(&with(&["--method", "occlusion"]), "--window");
    fails(&with(&["--method", "occlusion", "--window", "1,4,4", "--memory-format", "nhwc"]), "auto, contiguous or channels-last");
    fails(&with(&["--method", "occlusion", "--window", "4,4"]), "one size per dimension");
    fails(&with(&["--method", "occlusion", "--window", "1,20,4"]), "larger than input");
    fails(&with(&["--method", "occlusion", "--window", "1,4,4", "--strides", "1,0,1"]), "strides");
    fails(&with(&["--method", "occlusion", "--window", "1,a,4"]), "comma-separated");
    fails(&with(&["--method", "feature-ablation", "--feature-mask", "grid:4"]), "grid:HxW");
    fails(&with(&["--method", "feature-ablation", "--feature-mask", "slic:x"]), "slic:");
    let png = tmp("broken.png");
    std::fs::write(&png, b"not a png").unwrap();
    let png_s = png.to_str().unwrap().to_string();
    fails(&join(&base, &["--method", "feature-ablation", "--feature-mask", &png_s]), "label image");
    // A 5x5 label image does not broadcast to 12x12 inputs.
    let small = tmp("small.npy");
    attrib::convert::write_npy_f32(&small, &ndarray::ArrayD::zeros(ndarray::IxDyn(&[5, 5]))).unwrap();
    let small_s = small.to_str().unwrap().to_string();
    fails(&join(&base, &["--method", "feature-ablation", "--feature-mask", &small_s]), "feature mask does not fit");
    fails(&with(&["--method", "feature-ablation", "--baseline", "abc"]), "baseline");
    let one = tmp("one.npy");
    attrib::convert::write_npy_f32(&one, &ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 1, 12, 12]))).unwrap();
    let o2 = tmp("one_out.npy");
    fails(
        &["explain", "--model", &m, "--input", one.to_str().unwrap(), "--out", o2.to_str().unwrap(), "--device", "cpu",
            "--method", "feature-permutation"],
        "at least 2 rows",
    );
}
