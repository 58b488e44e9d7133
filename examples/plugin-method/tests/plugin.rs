//! The method registered from outside attrib's crates runs through `methods`, `explain` and
//! `compare` of the `attrib-plus` binary built for this test run.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_attrib-plus");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("attrib-plus runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A fresh folder `name` in this test process's scratch folder (removed when the process exits).
fn temp_dir(name: &str) -> PathBuf {
    let d = attrib_tests::scratch_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn listed_with_its_parameter() {
    let (ok, out, err) = run(&["methods"]);
    assert!(ok, "{err}");
    assert!(out.contains("channel-max-saliency") && out.contains("integrated-gradients"), "{out}");
    let (ok, out, err) = run(&["methods", "channel-max-saliency"]);
    assert!(ok, "{err}");
    assert!(out.contains("abs") && out.contains("default true"), "{out}");
}

#[test]
fn explain_runs_it_and_rejects_flags_it_does_not_take() {
    let dir = temp_dir("explain");
    let model = data("digits_cnn.pt");
    let input = data("digits.npy");
    let (m, i) = (model.to_str().unwrap(), input.to_str().unwrap());
    let ours = dir.join("cms.npy");
    let (ok, out, err) = run(&["explain", "--model", m, "--input", i, "--method", "channel-max-saliency", "--out", ours.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["method"], "channel-max-saliency");
    // One channel: the map is the absolute gradient, i.e. saliency with --abs.
    let sal = dir.join("sal.npy");
    let (ok, _, err) = run(&["explain", "--model", m, "--input", i, "--method", "saliency", "--abs", "--out", sal.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&ours).unwrap(), std::fs::read(&sal).unwrap());
    let (ok, _, err) = run(&["explain", "--model", m, "--input", i, "--method", "channel-max-saliency", "--steps", "3", "--out", ours.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("--steps does not apply to `channel-max-saliency`") && err.contains("its flags: --abs"), "{err}");
}

#[test]
fn compare_reports_it_beside_the_builtin_methods() {
    let dir = temp_dir("compare");
    let model = data("digits_cnn.pt");
    let input = data("digits.npy");
    let (ok, _, err) = run(&[
        "compare", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(),
        "--out-dir", dir.to_str().unwrap(), "--quiet",
    ]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let names: Vec<&str> = report["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"channel-max-saliency") && names.contains(&"saliency") && names.contains(&"occlusion"), "{names:?}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("channel-max-saliency"));
}
