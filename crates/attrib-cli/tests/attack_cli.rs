//! `attrib attack` on the bundled digit CNN: the adversarial inputs equal the library's for the
//! same parameters (FGSM and PGD, every flag mapped), `--json` reports the predictions before
//! and after, success per row and the loss used, and bad requests give one `error:` line
//! before any output is touched.

use attrib::convert::read_npy_tensor;
use attrib::prelude::*;
use attrib::robust::{Fgsm, Loss, Norm, Pgd};
use attrib_tests::cli::{cli, tmp, Cli};
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

fn base<'a>(out: &'a str, model: &'a str, input: &'a str, method: &'a str) -> Vec<&'a str> {
    let mut v = vec!["attack", "--model", model, "--input", input, "--method", method, "--out", out, "--json"];
    v.extend(PINNED);
    v
}

#[test]
fn fgsm_matches_the_library_and_reports_per_row() {
    let out = tmp("fgsm.npy");
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let mut args = base(out.to_str().unwrap(), &m, &x, "fgsm");
    args.extend(["--epsilon", "0.1", "--bounds", "0,1"]);
    let j = ok(&args);
    let (model, inputs) = digits();
    let lib = Fgsm::params(0.1).bounds(0.0, 1.0).batch(pinned()).check().unwrap().perturb(&model, &inputs, &Target::Argmax).unwrap();
    let written = read_npy_tensor(&out, Device::Cpu).unwrap();
    assert!(written.equal(&lib.adversarial[0]));
    assert_eq!(j["loss"], "cross-entropy", "the digit CNN outputs logits");
    assert_eq!(j["before"], serde_json::json!(lib.before));
    assert_eq!(j["after"], serde_json::json!(lib.after));
    assert_eq!(j["success"], serde_json::json!(lib.success));
    let (before, after, success) = (j["before"].as_array().unwrap(), j["after"].as_array().unwrap(), j["success"].as_array().unwrap());
    assert_eq!(success.len(), 10);
    for i in 0..10 {
        assert_eq!(success[i].as_bool().unwrap(), before[i] != after[i], "untargeted on argmax labels: success = the prediction changed");
    }
    assert!(j["success_rate"].as_f64().unwrap() > 0.5);
    // Captum's loss forced: reported as such, and a different result on this logits model.
    let mut args = base(out.to_str().unwrap(), &m, &x, "fgsm");
    args.extend(["--epsilon", "0.1", "--loss", "neg-log-prob"]);
    assert_eq!(ok(&args)["loss"], "neg-log-prob");
}

#[test]
fn pgd_flags_reach_the_parameters() {
    let out = tmp("pgd.npy");
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let mut args = base(out.to_str().unwrap(), &m, &x, "pgd");
    args.extend(["--epsilon", "0.5", "--norm", "l2", "--steps", "4", "--step-size", "0.1", "--random-start", "--seed", "7", "--targeted", "--target", "3", "--bounds", "0,1", "--loss", "cross-entropy"]);
    let j = ok(&args);
    let (model, inputs) = digits();
    let lib = Pgd::params(0.5)
        .norm(Norm::L2)
        .step_num(4)
        .step_size(0.1)
        .random_start(true)
        .seed(7)
        .targeted(true)
        .bounds(0.0, 1.0)
        .loss(Loss::CrossEntropy)
        .batch(pinned())
        .check()
        .unwrap()
        .perturb(&model, &inputs, &Target::Class(3))
        .unwrap();
    assert!(read_npy_tensor(&out, Device::Cpu).unwrap().equal(&lib.adversarial[0]));
    assert_eq!(j["targeted"], true);
    assert_eq!(j["labels"], serde_json::json!(vec![3; 10]));
    assert_eq!(j["params"]["step_num"], 4);
    assert_eq!(j["params"]["norm"], "L2");
    for (a, s) in j["after"].as_array().unwrap().iter().zip(j["success"].as_array().unwrap()) {
        assert_eq!(s.as_bool().unwrap(), a == 3, "targeted: success = reached class 3");
    }
    // Another seed, another start.
    let out2 = tmp("pgd2.npy");
    let mut args = base(out2.to_str().unwrap(), &m, &x, "pgd");
    args.extend(["--epsilon", "0.5", "--norm", "l2", "--steps", "4", "--step-size", "0.1", "--random-start", "--seed", "8", "--targeted", "--target", "3", "--bounds", "0,1"]);
    ok(&args);
    assert!(!read_npy_tensor(&out2, Device::Cpu).unwrap().equal(&lib.adversarial[0]));
}

#[test]
fn bad_requests_are_one_error_line_and_leave_outputs_alone() {
    let out = tmp("kept.npy");
    std::fs::write(&out, b"precious").unwrap();
    let o = out.to_str().unwrap().to_string();
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let run = |extra: &[&str], needle: &str| {
        let mut args = vec!["attack", "--model", &m, "--input", &x, "--out", &o, "--device", "cpu"];
        args.extend(extra);
        attrib().assert_fails(&args, needle);
        assert_eq!(std::fs::read(&out).unwrap(), b"precious", "{extra:?} touched the output");
    };
    run(&["--method", "deepfool", "--epsilon", "0.1"], "fgsm or pgd");
    run(&["--method", "fgsm", "--epsilon", "-0.1"], "epsilon");
    run(&["--method", "fgsm", "--epsilon", "0.1", "--steps", "3"], "--steps applies to --method pgd");
    run(&["--method", "pgd", "--epsilon", "0.1", "--norm", "l3"], "linf or l2");
    run(&["--method", "pgd", "--epsilon", "0.1", "--steps", "0"], "step_num");
    run(&["--method", "fgsm", "--epsilon", "0.1", "--bounds", "1"], "LO,HI");
    run(&["--method", "fgsm", "--epsilon", "0.1", "--bounds", "1,0"], "lower <= upper");
    run(&["--method", "fgsm", "--epsilon", "0.1", "--loss", "softmax"], "neg-log-prob");
    run(&["--method", "fgsm", "--epsilon", "0.1", "--target", "10"], "out of range");
    run(&["--method", "fgsm", "--epsilon", "0.1", "--targeted"], "targeted");
    // The output may not be the input or the model; checked before any work.
    let mut args = vec!["attack", "--model", &m, "--input", &x, "--method", "fgsm", "--epsilon", "0.1", "--device", "cpu", "--out", &x];
    attrib().assert_fails(&args, "--input");
    args.truncate(args.len() - 1);
    args.push(&m);
    attrib().assert_fails(&args, "--model");
}
