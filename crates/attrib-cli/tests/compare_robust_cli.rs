//! `attrib compare --metrics ... --attack ...` end to end on the bundled digit CNN: infidelity and
//! max-sensitivity columns equal `attrib metrics`, the robustness section's success equals
//! `attrib attack`, its attribution change equals a hand computation from `attrib explain` on the
//! adversarial examples, the pictures are embedded, and flags that do not apply are clear errors.

use attrib::convert::read_npy_f32;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::{fixtures, repo_root};
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn digits() -> (PathBuf, PathBuf) {
    let root = repo_root();
    (root.join("examples/data/digits_cnn.pt"), root.join("examples/data/digits.npy"))
}

/// Run `attrib` and parse its stdout as JSON.
fn json_of(args: &[&str]) -> Value {
    let out = attrib().run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Per row, the channel sums of an attribution `.npy` `[N, C, H, W]` (pixels).
fn pixel_scores(path: &Path) -> Vec<Vec<f64>> {
    let a = read_npy_f32(path).unwrap();
    let shape = a.shape().to_vec();
    let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3]);
    let flat: Vec<f32> = a.iter().copied().collect();
    (0..n).map(|i| (0..hw).map(|p| (0..c).map(|ch| f64::from(flat[(i * c + ch) * hw + p])).sum()).collect()).collect()
}

/// The k pixels of largest |score| (ties: lower index first).
fn top(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].abs().partial_cmp(&v[a].abs()).unwrap().then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[test]
fn metrics_columns_and_robustness_section_on_the_digit_cnn() {
    let (model, data) = digits();
    let dir = tmp("robust_report");
    let _ = std::fs::remove_dir_all(&dir);
    let out = attrib().run(&[
        "compare", "--model", s(&model), "--input", s(&data), "--out-dir", s(&dir), "--device", "cpu", "--quiet",
        "--methods", "saliency,input-x-gradient", "--metrics", "infidelity,sensitivity-max", "--metrics-samples", "5",
        "--metrics-seed", "3", "--attack", "fgsm", "--epsilon", "0.05", "--bounds", "0,1", "--intersection-k", "25",
        "--attack-figures", "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "attrib compare: {stderr}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let rows = 10;

    // The settings are stated.
    let inf = &json["metrics"]["infidelity"];
    assert_eq!((inf["n_perturb_samples"].as_u64(), inf["seed"].as_u64()), (Some(5), Some(3)));
    assert_eq!(inf["noise"]["gaussian"]["stdev"].as_f64(), Some(0.1));
    assert_eq!(json["metrics"]["sensitivity_max"]["noise"]["uniform"]["radius"].as_f64(), Some(0.02));
    // Columns: per row values, equal to `attrib metrics` with the same samples and seed.
    for m in json["methods"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        for (key, metric) in [("infidelity", "infidelity"), ("sensitivity_max", "sensitivity-max")] {
            // One process per value checked: infidelity of both, max-sensitivity of saliency.
            let check = key == "infidelity" || name == "saliency";
            let v = f64s(&m[key]);
            assert_eq!(v.len(), rows, "{name}: {key}");
            assert!(v.iter().all(|x| x.is_finite() && *x >= 0.0), "{name}: {key} {v:?}");
            let mean = m[format!("mean_{key}")].as_f64().unwrap();
            assert!((mean - v.iter().sum::<f64>() / rows as f64).abs() < 1e-9 * (1.0 + mean.abs()));
            // input-x-gradient multiplies by inputs: infidelity's I = ε / x branch.
            if !check {
                continue;
            }
            let mut args = vec!["metrics", "--metric", metric, "--model", s(&model), "--input", s(&data), "--method", name];
            args.extend(["--samples", "5", "--seed", "3", "--device", "cpu", "--json"]);
            let expected = f64s(&json_of(&args)["values"]);
            for (a, b) in v.iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-6), "{name} {key}: compare {a} vs metrics {b}");
            }
        }
        assert!(html.contains(&format!("<td class=\"l\">{name}</td>")));
    }
    assert!(html.contains("infidelity ↓") && html.contains("max-sensitivity ↓") && html.contains("5 Gaussian perturbations"));

    // The attack: success equals `attrib attack` with the same flags.
    let r = &json["robustness"];
    assert_eq!((r["attack"].as_str(), r["loss"].as_str()), (Some("fgsm"), Some("cross-entropy")));
    let adv = tmp("robust_adv.npy");
    let attack = json_of(&[
        "attack", "--model", s(&model), "--input", s(&data), "--method", "fgsm", "--epsilon", "0.05", "--bounds", "0,1",
        "--out", s(&adv), "--device", "cpu", "--json",
    ]);
    assert_eq!(r["success"], attack["success"]);
    assert_eq!(r["after"], attack["after"]);
    let success: Vec<bool> = r["success"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
    let attacked: Vec<usize> = r["attacked_rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(attacked, (0..rows).filter(|&i| success[i]).collect::<Vec<_>>());
    // Some rows flip at ε = 0.05, not all (measured 5 of 10).
    assert!(!attacked.is_empty() && attacked.len() < rows, "{attacked:?}");
    let rate = r["success_rate"].as_f64().unwrap();
    assert!((rate - attacked.len() as f64 / rows as f64).abs() < 1e-12);
    assert_eq!((r["k"].as_u64(), r["features"].as_u64()), (Some(25), Some(256)));

    // The attribution change of saliency, by hand: `attrib explain` on the input and on the
    // adversarial examples, both explaining the clean prediction.
    let before_classes: Vec<i64> = r["before"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let targets = tmp("robust_targets.npy");
    ndarray_npy::write_npy(&targets, &ndarray::Array1::from(before_classes)).unwrap();
    let explain = |input: &Path, out: &Path| {
        let o = attrib().run(&[
            "explain", "--model", s(&model), "--input", s(input), "--method", "saliency", "--target", s(&targets), "--out", s(out),
            "--device", "cpu",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (sal_before, sal_after) = (tmp("robust_sal_before.npy"), tmp("robust_sal_after.npy"));
    explain(&data, &sal_before);
    explain(&adv, &sal_after);
    let (a, b) = (pixel_scores(&sal_before), pixel_scores(&sal_after));
    let methods = r["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 2);
    let saliency = &methods[0];
    assert_eq!(saliency["name"], "saliency");
    let kept = f64s(&saliency["top_k_intersection"]);
    assert_eq!(kept.len(), attacked.len());
    for (j, &i) in attacked.iter().enumerate() {
        let after_top = top(&b[i], 25);
        let expected = top(&a[i], 25).iter().filter(|p| after_top.contains(p)).count() as f64 / 25.0;
        assert!((kept[j] - expected).abs() < 1e-12, "row {i}: {} vs {expected}", kept[j]);
    }
    for m in methods {
        let name = m["name"].as_str().unwrap();
        let t = f64s(&m["top_k_intersection"]);
        assert!(t.iter().all(|x| (0.0..=1.0).contains(x)), "{name}: {t:?}");
        for key in ["rank_correlation", "signed_rank_correlation"] {
            let v = m[key].as_array().unwrap();
            assert_eq!(v.len(), attacked.len());
            assert!(v.iter().filter_map(Value::as_f64).all(|x| (-1.0..=1.0).contains(&x)), "{name}: {key}");
        }
        let mean = m["mean_top_k_intersection"].as_f64().unwrap();
        assert!((mean - t.iter().sum::<f64>() / t.len() as f64).abs() < 1e-12);
        // The attack moves the top pixels (measured means 0.6-0.8 at this ε).
        assert!(mean < 0.95, "{name}: {mean}");
        assert!(html.contains(&format!("<tr><td class=\"l\">{name}</td><td>{mean:.3}</td>")), "HTML robustness row of {name}");
    }

    // Pictures: the first 2 attacked rows; two rows of panels (input, adversarial) of the image
    // and one heat map per method, each at least 128 pixels high; files on disk and embedded.
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for (f, &row) in images.iter().zip(&attacked) {
        assert_eq!(f["row"].as_u64(), Some(row as u64));
        assert_eq!(f["columns"], serde_json::json!(["original_image", "saliency", "input-x-gradient"]));
        let file = dir.join(f["file"].as_str().unwrap());
        let img = image::open(&file).unwrap();
        assert!(img.height() >= 2 * 128 && img.width() >= 3 * 128, "{}x{}", img.width(), img.height());
    }
    const PREFIX: &str = "data:image/png;base64,";
    let embedded: Vec<&str> = html.match_indices(PREFIX).map(|(i, _)| &html[i + PREFIX.len()..]).collect();
    assert_eq!(embedded.len(), json["images"].as_array().unwrap().len() + images.len());
    for rest in embedded {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&rest[..rest.find('"').unwrap()]).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
    assert!(html.contains("Robustness under attack"));
    // Without the flags, no section and no columns.
    let plain = tmp("robust_plain");
    let o = attrib().run(&["compare", "--model", s(&model), "--input", s(&data), "--out-dir", s(&plain), "--quiet", "--methods", "saliency"]);
    assert!(o.status.success());
    let p: Value = serde_json::from_str(&std::fs::read_to_string(plain.join("report.json")).unwrap()).unwrap();
    assert!(p["robustness"].is_null() && p["methods"][0].get("infidelity").is_none());
}

#[test]
fn pgd_section_states_its_parameters() {
    let (model, data) = digits();
    let dir = tmp("robust_pgd");
    let o = attrib().run(&[
        "compare", "--model", s(&model), "--input", s(&data), "--out-dir", s(&dir), "--quiet", "--methods", "saliency",
        "--attack", "pgd", "--epsilon", "0.1", "--steps", "5", "--norm", "linf", "--bounds", "0,1", "--intersection-k", "0.5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let r = &json["robustness"];
    assert_eq!(r["attack"], "pgd");
    assert_eq!((r["params"]["step_num"].as_u64(), r["params"]["epsilon"].as_f64()), (Some(5), Some(0.1)));
    assert_eq!(r["k"].as_u64(), Some(128), "half of 256 pixels");
    // PGD at ε = 0.1 flips more rows than FGSM at 0.05 (measured: every row).
    let rate = r["success_rate"].as_f64().unwrap();
    assert!(rate > 0.5 && rate <= 1.0, "{rate}");
    assert_eq!(r["images"].as_array().unwrap().len(), r["attacked_rows"].as_array().unwrap().len().min(4));
}

#[test]
fn flags_that_do_not_apply_are_clear_errors() {
    let (model, data) = digits();
    let out = tmp("robust_bad");
    let base = ["compare", "--model", s(&model), "--input", s(&data), "--out-dir", s(&out), "--methods", "saliency"];
    let fails = |extra: &[&str], needle: &str| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        attrib().assert_fails(&args, needle);
    };
    // Each kind of refusal once through the binary (every flag combination is unit-tested in
    // crates/attrib-cli/src/compare/robustness.rs, without a process per case).
    fails(&["--epsilon", "0.1"], "--epsilon applies with --attack");
    fails(&["--attack", "fgsm", "--epsilon", "0.1", "--intersection-k", "300"], "more than the 256 features");
    fails(&["--metrics", "faithfulness"], "unknown --metrics entry `faithfulness`");
    // Models and inputs an attack cannot run on.
    let scalar = fixtures().join("models/scalar_out");
    attrib().assert_fails(
        &["compare", "--model", s(&scalar.join("model.pt")), "--input", s(&scalar.join("input0.npy")), "--out-dir", s(&out),
          "--methods", "saliency", "--attack", "fgsm", "--epsilon", "0.1"],
        "needs a classifier",
    );
    let root = repo_root();
    let (text_model, ids) = (root.join("examples/data/sentiment_cnn.pt"), root.join("examples/data/sentiment.npy"));
    for (extra, needle) in [(&["--attack", "fgsm", "--epsilon", "0.1"][..], "token-id inputs"), (&["--metrics", "infidelity"][..], "token-id inputs")] {
        let mut args = vec!["compare", "--model", s(&text_model), "--input", s(&ids), "--out-dir", s(&out)];
        args.extend_from_slice(extra);
        attrib().assert_fails(&args, needle);
    }
}
