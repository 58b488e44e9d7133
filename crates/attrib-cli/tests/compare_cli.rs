//! `attrib compare` end to end: every method row in report.json, every figure embedded in
//! report.html and decodable as PNG, consistent numbers, and clear errors for bad input.

use attrib::convert::read_npy_f32;
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::{fixtures, repo_root};
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    repo_root()
}

/// The `attrib` binary cargo built for this test run.
fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn run(args: &[&str]) -> std::process::Output {
    attrib().run(args)
}

fn assert_fails(args: &[&str], needle: &str) {
    attrib().assert_fails(args, needle)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run `attrib compare` into a fresh folder; returns the folder, report.json and report.html.
fn compare(name: &str, args: &[&str]) -> (PathBuf, Value, String) {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut all = vec!["compare", "--out-dir", s(&dir), "--device", "cpu", "--quiet"];
    all.extend_from_slice(args);
    let out = run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "attrib compare failed: {stderr}");
    assert!(stderr.is_empty(), "--quiet must keep stderr empty: {stderr}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    (dir, json, html)
}

/// Every `data:image/png;base64,` payload of the HTML, decoded and checked to be a PNG.
fn embedded_pngs(html: &str) -> Vec<image::DynamicImage> {
    const PREFIX: &str = "data:image/png;base64,";
    html.match_indices(PREFIX)
        .map(|(i, _)| {
            let rest = &html[i + PREFIX.len()..];
            let end = rest.find('"').expect("a data URI ends with a quote");
            let bytes = base64::engine::general_purpose::STANDARD.decode(&rest[..end]).expect("payload is base64");
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "payload is a PNG");
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).expect("payload decodes as PNG")
        })
        .collect()
}

fn names(json: &Value) -> Vec<String> {
    json["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
}

/// Checks shared by every report: one row per method with finite numbers per input row,
/// predictions, the agreement matrix, and curves consistent with the predictions.
fn check_report(json: &Value, html: &str, rows: usize, methods: &[&str]) {
    assert_eq!(names(json), methods, "one row per method, in order");
    for m in json["methods"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let t = m["elapsed_ms"].as_f64().unwrap();
        assert!(t.is_finite() && t >= 0.0, "{name}: time {t}");
        for key in ["deletion_auc", "insertion_auc"] {
            let v = m[key].as_array().unwrap();
            assert_eq!(v.len(), rows, "{name}: {key} per row");
            assert!(v.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)), "{name}: {key} finite");
        }
        let has_delta = matches!(name, "integrated-gradients" | "gradient-shap" | "exact-shapley" | "shapley-sampling" | "deeplift" | "lrp");
        assert_eq!(m["convergence_delta"].is_array(), has_delta, "{name}: convergence delta");
        if has_delta {
            assert_eq!(m["convergence_delta"].as_array().unwrap().len(), rows);
        }
        // Deletion starts at the explained score, insertion ends there.
        let fr = m["curve_fractions"].as_array().unwrap();
        assert_eq!(fr.first().unwrap().as_f64(), Some(0.0));
        assert_eq!(fr.last().unwrap().as_f64(), Some(1.0));
        for (i, p) in json["predictions"].as_array().unwrap().iter().enumerate() {
            let score = p["target_score"].as_f64().unwrap();
            let del0 = m["deletion_curves"][i][0].as_f64().unwrap();
            let ins = m["insertion_curves"][i].as_array().unwrap();
            let ins_last = ins.last().unwrap().as_f64().unwrap();
            assert!((del0 - score).abs() < 1e-4 && (ins_last - score).abs() < 1e-4, "{name} row {i}: {del0} {ins_last} vs {score}");
        }
        assert!(html.contains(&format!("<td class=\"l\">{name}</td>")), "HTML method row for {name}");
    }
    assert_eq!(json["predictions"].as_array().unwrap().len(), rows);
    let matrix = json["agreement"]["matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), methods.len());
    for (a, row) in matrix.iter().enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), methods.len());
        assert_eq!(row[a].as_f64(), Some(1.0));
        for (b, v) in row.iter().enumerate() {
            assert_eq!(v, &matrix[b][a], "symmetric");
            if let Some(x) = v.as_f64() {
                assert!((-1.0..=1.0).contains(&x));
            }
        }
    }
    // Every figure of the JSON is embedded, and nothing else.
    let images = json["images"].as_array().unwrap();
    let pngs = embedded_pngs(html);
    assert_eq!(pngs.len(), images.len(), "embedded images vs report.json");
    assert!(!images.is_empty());
}

#[test]
fn digits_report_has_every_method_and_embedded_heat_maps() {
    let data = root().join("examples/data/digits.npy");
    let shape = read_npy_f32(&data).unwrap().shape().to_vec();
    let rows = shape[0];
    let (dir, json, html) =
        compare("digits", &["--model", s(&root().join("examples/data/digits_cnn.pt")), "--input", s(&data)]);
    let methods =
        ["saliency", "input-x-gradient", "integrated-gradients", "gradient-shap", "smoothgrad", "feature-ablation", "occlusion",
         "exact-shapley", "shapley-sampling", "kernel-shap", "lime", "deeplift", "guided-backprop", "deconvolution", "lrp"];
    check_report(&json, &html, rows, &methods);
    // One grid per row (up to --report-rows 16): the original and one panel per method.
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), rows.min(16));
    let pngs = embedded_pngs(&html);
    for (img, meta) in pngs.iter().zip(images) {
        assert_eq!(meta["columns"].as_array().unwrap().len(), methods.len() + 1);
        assert!(dir.join(meta["file"].as_str().unwrap()).is_file());
        // Panels are at least 128 pixels high, side by side.
        assert!(img.height() >= 128 && img.width() >= 8 * img.height() / 2, "{}x{}", img.width(), img.height());
    }
    // Predictions: a class with its probability; the default target is the prediction.
    for p in json["predictions"].as_array().unwrap() {
        assert_eq!(p["predicted"], p["target"]);
        let prob = p["probability"].as_f64().unwrap();
        assert!(prob > 0.0 && prob <= 1.0);
    }
    assert_eq!(json["inputs"][0]["shape"].as_array().unwrap().len(), shape.len());
}

#[test]
fn tabular_report_has_a_bar_chart_per_method_and_row() {
    let fx = fixtures().join("models/mlp");
    let names_file = tmp("feature_names.json");
    let feature_names: Vec<String> = (0..10).map(|i| format!("f{i}<&>")).collect();
    std::fs::write(&names_file, serde_json::to_string(&feature_names).unwrap()).unwrap();
    let (_, json, html) = compare(
        "mlp",
        &[
            "--model", s(&fx.join("model.pt")), "--input", s(&fx.join("input0.npy")), "--labels", "cat,dog,<bird>",
            "--feature-names", s(&names_file), "--classes", "3",
        ],
    );
    let methods = ["saliency", "input-x-gradient", "integrated-gradients", "gradient-shap", "smoothgrad", "feature-ablation",
                   "exact-shapley", "shapley-sampling", "kernel-shap", "lime", "deeplift", "guided-backprop", "deconvolution", "lrp"];
    check_report(&json, &html, 8, &methods);
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 8 * methods.len(), "one bar chart per row and method");
    for f in images {
        let bars = f["bars"].as_array().unwrap();
        assert_eq!(bars.len(), 10, "top 10 of 10 features");
        assert!(feature_names.contains(&bars[0]["feature"].as_str().unwrap().to_string()));
    }
    // Labels and feature names are escaped in the HTML.
    assert!(html.contains("&lt;bird&gt;") || !json["predictions"].as_array().unwrap().iter().any(|p| p["predicted"] == 2));
    assert!(html.contains("f0&lt;&amp;&gt;") && !html.contains("f0<&>"));
    assert_eq!(json["labels"], serde_json::json!(["cat", "dog", "<bird>"]));
}

#[test]
fn chosen_methods_and_fixed_target() {
    let fx = fixtures().join("models/mlp");
    let (_, json, html) = compare(
        "mlp_chosen",
        &[
            "--model", s(&fx.join("model.pt")), "--input", s(&fx.join("input0.npy")), "--methods",
            "saliency,occlusion,feature-permutation", "--target", "1", "--report-rows", "2", "--curve-steps", "5",
        ],
    );
    check_report(&json, &html, 8, &["saliency", "occlusion", "feature-permutation"]);
    assert_eq!(json["targets"], serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1]));
    assert_eq!(json["images"].as_array().unwrap().len(), 2 * 3, "figures for the first 2 rows only");
    assert_eq!(json["methods"][0]["curve_fractions"].as_array().unwrap().len(), 6);
}

#[test]
fn bad_input_gives_one_clear_error() {
    let model = fixtures().join("models/mlp/model.pt");
    let input = fixtures().join("models/mlp/input0.npy");
    let digits_model = root().join("examples/data/digits_cnn.pt");
    let digits = root().join("examples/data/digits.npy");
    let out = tmp("bad_out");
    let o = s(&out);
    // An unreadable image.
    let broken = tmp("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    assert_fails(&["compare", "--model", s(&digits_model), "--input", s(&broken), "--out-dir", o], "broken.png");
    // A folder with no images.
    let empty = fixtures().join("images/empty_folder");
    assert_fails(&["compare", "--model", s(&digits_model), "--input", s(&empty), "--out-dir", o], "no images");
    // A model whose output does not match the number of classes.
    assert_fails(
        &["compare", "--model", s(&digits_model), "--input", s(&digits), "--out-dir", o, "--classes", "7"],
        "--classes is 7",
    );
    assert_fails(
        &["compare", "--model", s(&model), "--input", s(&input), "--out-dir", o, "--labels", "a,b"],
        "2 class labels for a model with 3",
    );
    // An unknown method.
    assert_fails(
        &["compare", "--model", s(&model), "--input", s(&input), "--out-dir", o, "--methods", "saliency,not-a-method"],
        "unknown method `not-a-method`",
    );
    // Feature names that do not fit the input.
    let names = tmp("three_names.json");
    std::fs::write(&names, "[\"a\", \"b\", \"c\"]").unwrap();
    assert_fails(
        &["compare", "--model", s(&model), "--input", s(&input), "--out-dir", o, "--feature-names", s(&names)],
        "3 feature names",
    );
    // A target outside the model's classes.
    assert_fails(
        &["compare", "--model", s(&model), "--input", s(&input), "--out-dir", o, "--target", "3"],
        "out of range",
    );
    // Inputs the model cannot take.
    assert_fails(&["compare", "--model", s(&digits_model), "--input", s(&input), "--out-dir", o], "model failed");
}
