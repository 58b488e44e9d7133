//! The command line over the method registry: `attrib methods`, flags that do not apply,
//! `--param`, `compare --config` (TOML and JSON) and benchmark mode (`--repeat`), on the binary
//! built for this test run.

use attrib::methods::Registry;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::repo_root;
use serde_json::Value;
use std::path::Path;

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = attrib().run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into()
}

fn digits() -> (String, String) {
    let d = repo_root().join("examples/data");
    (d.join("digits_cnn.pt").display().to_string(), d.join("digits.npy").display().to_string())
}

#[test]
fn methods_lists_every_registered_method() {
    let text = ok(&["methods"]);
    let names = Registry::builtin().names();
    assert!(names.len() >= 8);
    for n in &names {
        assert!(text.lines().any(|l| l.split_whitespace().next() == Some(n)), "`{n}` missing from:\n{text}");
    }
    let json: Value = serde_json::from_str(&ok(&["methods", "--json"])).unwrap();
    let listed: Vec<&str> = json.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(listed, names);
    let ig: Value = serde_json::from_str(&ok(&["methods", "integrated-gradients", "--json"])).unwrap();
    let steps = ig["params"].as_array().unwrap().iter().find(|p| p["name"] == "n_steps").unwrap();
    assert_eq!(steps["default"], 50);
    assert_eq!(steps["flag"], "--steps");
    assert_eq!(ig["flags"]["has_convergence_delta"], true);
    attrib().assert_fails(&["methods", "lime-ish"], "unknown method `lime-ish`");
}

#[test]
fn a_flag_the_method_does_not_take_is_an_error_naming_those_it_does() {
    let (m, x) = digits();
    let out = tmp("never.npy");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "saliency", "--steps", "8", "--out", s(&out)], "--steps does not apply to `saliency`; its flags: --abs");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "occlusion", "--seed", "1", "--window", "1,2,2", "--out", s(&out)], "its flags: --window, --strides, --baseline");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "saliency", "--param", "bogus=1", "--out", s(&out)], "--param bogus=... does not apply");
    attrib().assert_fails(&["explain", "--model", &m, "--input", &x, "--method", "integrated-gradients", "--quadrature", "simpson", "--out", s(&out)], "gausslegendre, riemann_left");
    assert!(!out.exists(), "nothing may be written when the flags are wrong");
}

#[test]
fn param_sets_any_spec_key() {
    let (m, x) = digits();
    let a = tmp("sg_a.npy");
    let b = tmp("sg_b.npy");
    let c = tmp("sg_c.npy");
    let ja: Value = serde_json::from_str(&ok(&["explain", "--model", &m, "--input", &x, "--method", "smoothgrad", "--param", "noise_level=0.3", "--nt-samples", "3", "--out", s(&a), "--json"])).unwrap();
    assert_eq!(ja["spec"]["noise_level"], 0.3);
    assert_eq!(ja["spec"]["nt_samples"], 3);
    ok(&["explain", "--model", &m, "--input", &x, "--method", "smoothgrad", "--param", "noise_level=0.3", "--param", "nt_samples=3", "--out", s(&b)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "flag and --param set the same key");
    ok(&["explain", "--model", &m, "--input", &x, "--method", "smoothgrad", "--param", "noise_level=0.05", "--nt-samples", "3", "--out", s(&c)]);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap(), "noise_level changes the result");
}

#[test]
fn repeat_reports_first_call_and_warm_statistics() {
    let (m, x) = digits();
    let out = tmp("rep.npy");
    let v: Value = serde_json::from_str(&ok(&["explain", "--model", &m, "--input", &x, "--method", "integrated-gradients", "--steps", "8", "--repeat", "3", "--out", s(&out), "--json"])).unwrap();
    assert_eq!(v["repeats"], 3);
    let (first, med, lo, hi) = (v["first_ms"].as_f64().unwrap(), v["elapsed_ms"].as_f64().unwrap(), v["elapsed_min_ms"].as_f64().unwrap(), v["elapsed_max_ms"].as_f64().unwrap());
    assert!(first > 0.0 && lo > 0.0 && lo <= med && med <= hi, "{v}");
    // The warm-up says what it ran: benchmark mode times a pass of the inputs' rows for the job
    // rehearsal (whether the job then runs depends on that pass's time).
    let steps: Vec<&str> = v["warm_up_steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(steps.contains(&"gradients contiguous"), "{steps:?}");
    assert!(steps.iter().any(|s| s.starts_with("gradients of the ") && s.ends_with(" input rows")), "{steps:?}");
    assert!(!steps.iter().any(|s| s.starts_with("failed")), "{steps:?}");
    let single: Value = serde_json::from_str(&ok(&["explain", "--model", &m, "--input", &x, "--method", "saliency", "--out", s(&out), "--json"])).unwrap();
    assert_eq!(single["repeats"], 0);
    assert_eq!(single["first_ms"], single["elapsed_ms"]);
    let single_steps = single["warm_up_steps"].as_array().unwrap();
    assert!(!single_steps.iter().any(|s| s.as_str().unwrap().contains("input rows")), "no job rehearsal without --repeat: {single_steps:?}");
    let cold: Value = serde_json::from_str(&ok(&["explain", "--model", &m, "--input", &x, "--method", "saliency", "--no-warm-up", "--out", s(&out), "--json"])).unwrap();
    assert!(cold["warm_up_steps"].is_null() && cold["warm_up_ms"].is_null(), "{cold}");
}

fn report_names(dir: &Path) -> (Value, Vec<String>) {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let names = report["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect();
    (report, names)
}

#[test]
fn compare_config_runs_three_ig_baselines_and_saliency_side_by_side() {
    let (m, x) = digits();
    let dir = tmp("config_toml");
    let config = tmp("methods.toml");
    std::fs::write(
        &config,
        r#"
[[methods]]
method = "integrated-gradients"
label = "ig-zeros"
baselines = "zeros"

[[methods]]
method = "integrated-gradients"
label = "ig-blur"
baselines = "blur:2"
n_steps = 32

[[methods]]
method = "integrated-gradients"
label = "ig-uniform"
baselines = "uniform:0,1"

[[methods]]
method = "saliency"
abs = true
"#,
    )
    .unwrap();
    ok(&["compare", "--model", &m, "--input", &x, "--out-dir", s(&dir), "--config", s(&config), "--quiet", "--repeat", "2"]);
    let (report, names) = report_names(&dir);
    assert_eq!(names, ["ig-zeros", "ig-blur", "ig-uniform", "saliency"]);
    let methods = report["methods"].as_array().unwrap();
    assert_eq!(methods[1]["spec"]["baselines"], "blur:2");
    assert_eq!(methods[1]["params"]["n_steps"], 32);
    assert_eq!(methods[3]["params"]["abs"], true);
    for mth in methods {
        assert_eq!(mth["repeats"], 2);
        assert!(mth["first_ms"].as_f64().unwrap() > 0.0);
    }
    // Three baselines give three different answers (their deltas differ).
    let d: Vec<String> = methods[..3].iter().map(|m| m["convergence_delta"].to_string()).collect();
    assert!(d[0] != d[1] && d[1] != d[2] && d[0] != d[2], "{d:?}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<code>baselines = blur:2</code>"), "parameters read as key = value lines");
    assert!(html.contains("ig-uniform") && html.contains("warm median"));
    assert!(!html.contains("{&quot;") && !html.contains("{\"baselines"), "no raw JSON blobs for parameters");

    // The same as JSON, with a per-config max_batch.
    let dir2 = tmp("config_json");
    let cj = tmp("methods.json");
    std::fs::write(&cj, r#"{"methods": [{"method": "integrated-gradients", "label": "ig-zeros", "max_batch": 7}, {"method": "saliency"}]}"#).unwrap();
    ok(&["compare", "--model", &m, "--input", &x, "--out-dir", s(&dir2), "--config", s(&cj), "--quiet"]);
    let (report2, names2) = report_names(&dir2);
    assert_eq!(names2, ["ig-zeros", "saliency"]);
    assert_eq!(report2["methods"][0]["params"]["batch"]["max_batch"], 7);
}

#[test]
fn bad_configs_fail_before_any_work() {
    let (m, x) = digits();
    let dir = tmp("config_bad");
    let write = |name: &str, text: &str| {
        let p = tmp(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let twice = write("twice.toml", "[[methods]]\nmethod = \"saliency\"\n[[methods]]\nmethod = \"saliency\"\nabs = true\n");
    attrib().assert_fails(&["compare", "--model", &m, "--input", &x, "--out-dir", s(&dir), "--config", s(&twice)], "give each configuration of a method its own `label`");
    let unknown_key = write("key.toml", "[[methods]]\nmethod = \"integrated-gradients\"\nsteps = 3\n");
    attrib().assert_fails(&["compare", "--model", &m, "--input", &x, "--out-dir", s(&dir), "--config", s(&unknown_key)], "n_steps");
    let unknown_method = write("m.json", r#"[{"method": "deep-magic"}]"#);
    attrib().assert_fails(&["compare", "--model", &m, "--input", &x, "--out-dir", s(&dir), "--config", s(&unknown_method)], "unknown method `deep-magic`");
    let not_toml = write("bad.toml", "methods = 3\n");
    attrib().assert_fails(&["compare", "--model", &m, "--input", &x, "--out-dir", s(&dir), "--config", s(&not_toml)], "[[methods]]");
}
