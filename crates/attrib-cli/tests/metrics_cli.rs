//! `attrib metrics` on the bundled digit CNN: infidelity, max- and avg-sensitivity, deletion and
//! insertion (feature groups; zero, blurred and ROAD replacement), faithfulness correlation and the
//! completeness gap equal the library's for the same method, seed, samples and parameters (every
//! metric flag mapped, the method built from explain's flags); the randomisation test equals the
//! library's; bad requests give one `error:` line.

use attrib::convert::read_npy_tensor;
use attrib::metrics::{infidelity, sensitivity_max, InfidelityParams, Noise, SensitivityParams};
use attrib::{Baseline, Baselines};
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
fn attributions_from_a_file_score_as_the_method_itself() {
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("metrics_attributions_file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ig.npy").display().to_string();
    let mut explain = vec!["explain", "--model", &m, "--input", &x, "--method", "integrated-gradients", "--steps", "16", "--out", &file];
    explain.extend(PINNED);
    let out = attrib().run(&explain);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for metric in ["deletion", "completeness", "infidelity"] {
        let mut direct = vec!["metrics", "--metric", metric, "--model", &m, "--input", &x, "--method", "integrated-gradients", "--steps", "16", "--json"];
        direct.extend(PINNED);
        let mut from_file = vec!["metrics", "--metric", metric, "--model", &m, "--input", &x, "--method", "integrated-gradients", "--attributions", &file, "--json"];
        from_file.extend(PINNED);
        let (want, got) = (ok(&direct), ok(&from_file));
        assert_close(&values(&got), &values(&want), metric);
        assert_eq!(got["attributions"][0], file.as_str());
        assert!(got["attribution_ms"].is_null());
    }
    // The file of another shape, a second file for one input, and metrics that run the method.
    let short = dir.join("short.npy");
    attrib::convert::write_npy_tensor(&short, &tch::Tensor::zeros([2, 1, 16, 16], (tch::Kind::Float, Device::Cpu))).unwrap();
    let short = short.display().to_string();
    let two = format!("{file},{file}");
    let cases = [
        ("deletion", short.as_str(), "attributions are shaped like their input"),
        ("deletion", two.as_str(), "give one per input"),
        ("sensitivity-max", file.as_str(), "--attributions does not apply to --metric sensitivity-max"),
        ("randomization", file.as_str(), "--attributions does not apply to --metric randomization"),
    ];
    for (metric, files, needle) in cases {
        attrib().assert_fails(&["metrics", "--model", &m, "--input", &x, "--device", "cpu", "--metric", metric, "--attributions", files], needle);
    }
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
    run(&["--metric", "fidelity"], "use infidelity, sensitivity-max, avg-sensitivity, deletion, insertion, faithfulness, completeness or randomization");
    run(&["--metric", "deletion", "--samples", "5"], "--samples does not apply to --metric deletion");
    run(&["--metric", "infidelity", "--curve-steps", "5"], "--curve-steps does not apply to --metric infidelity");
    run(&["--metric", "completeness", "--seed", "1"], "--seed does not apply to --metric completeness");
    run(&["--metric", "sensitivity-max", "--replace", "road"], "--replace does not apply");
    run(&["--metric", "faithfulness", "--replace", "road"], "faithfulness takes a baseline");
    run(&["--metric", "insertion", "--replace", "road:-1"], "road:0.01");
    run(&["--metric", "deletion", "--replace", "smudge"], "is not `road`");
    run(&["--metric", "deletion", "--feature-mask", "grid:0x3"], "grid:HxW");
    run(&["--metric", "deletion", "--curve-steps", "0"], "at least 1 step");
    run(&["--metric", "faithfulness", "--subset-size", "5000"], "between 1 and the number of features");
    run(&["--metric", "randomization", "--randomization", "bottom-up"], "use cascading or independent");
    run(&["--metric", "randomization", "--samples", "5"], "do not apply to --metric randomization");
    run(&["--metric", "infidelity", "--method", "sobel-edges"], "control of --metric randomization only");
    run(&["--metric", "sensitivity-max", "--normalize-attribution"], "--normalize-attribution does not apply to --metric sensitivity-max");
    run(&["--metric", "infidelity", "--method", "saliency", "--window", "3"], "--window does not apply");
    run(&["--metric", "infidelity", "--samples", "0"], "at least 1");
    run(&["--metric", "sensitivity-max", "--radius", "-1"], "finite and >= 0");
}

fn mean_of(v: &serde_json::Value) -> f64 {
    v["mean"].as_f64().unwrap()
}

#[test]
fn avg_sensitivity_matches_the_library_and_stays_below_the_max() {
    use attrib::metrics::avg_sensitivity;
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let mut args = vec!["metrics", "--metric", "avg-sensitivity", "--model", &m, "--input", &x, "--method", "saliency", "--samples", "4", "--seed", "2", "--radius", "0.05", "--json"];
    args.extend(PINNED);
    let v = ok(&args);
    let (model, inputs) = digits();
    let sal = Saliency::params().batch(pinned()).check().unwrap();
    let params = SensitivityParams { n_perturb_samples: 4, seed: 2, noise: Noise::Uniform { radius: 0.05 }, ..Default::default() };
    let want = avg_sensitivity(&sal, &model, &inputs, &Target::Argmax, &params).unwrap();
    assert_close(&values(&v), &want.values, "avg-sensitivity");
    let max = sensitivity_max(&sal, &model, &inputs, &Target::Argmax, &params).unwrap();
    for (a, m) in values(&v).iter().zip(&max.values) {
        assert!(*a > 0.0 && a <= m, "avg {a} max {m}");
    }
    assert_eq!(v["metric"], "avg-sensitivity");
}

#[test]
fn deletion_and_insertion_match_the_library() {
    use attrib::metrics::{deletion_insertion, DeletionInsertionParams, Road};
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let (model, inputs) = digits();
    let sal = Saliency::params().abs(true).batch(pinned()).check().unwrap();
    let a = sal.attribute(&model, &inputs, &Target::Argmax).unwrap();
    let target = Target::PerSample(a.meta.targets.clone().unwrap());
    for (metric, replace, mask) in [("deletion", "road", Some("grid:4x4")), ("insertion", "blur:2", Some("grid:7x7")), ("deletion", "zeros", None)] {
        let mut args = vec!["metrics", "--metric", metric, "--model", &m, "--input", &x, "--method", "saliency", "--abs", "--replace", replace, "--curve-steps", "8", "--seed", "5", "--json"];
        if let Some(mask) = mask {
            args.extend(["--feature-mask", mask]);
        }
        args.extend(PINNED);
        let v = ok(&args);
        let masks = mask.map(|s| attrib::spec::load_masks(&[s.parse().unwrap()], inputs.tensors()).unwrap());
        let params = DeletionInsertionParams {
            steps: 8,
            baselines: if replace == "blur:2" { Baseline::Blur(2.0).into() } else { Baselines::default() },
            road: (replace == "road").then(|| Road { seed: 5, ..Default::default() }),
            feature_masks: masks,
            pixels: true,
            probabilities: true,
            batch: pinned(),
        };
        let c = deletion_insertion(&model, &inputs, &target, &a.values, &params).unwrap();
        let (want, curves) = if metric == "deletion" { (c.deletion_auc, c.deletion) } else { (c.insertion_auc, c.insertion) };
        assert_close(&values(&v), &want, metric);
        assert_eq!(v["features"], c.features, "{metric} {replace}");
        assert_eq!(v["curves"].as_array().unwrap().len(), 10);
        let first: Vec<f64> = v["curves"][0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_close(&first, &curves[0], "curve");
        let want_mean = want.iter().sum::<f64>() / want.len() as f64;
        assert!((mean_of(&v) - want_mean).abs() < 1e-9);
    }
    // Pixels without a mask (16 x 16), 4 x 4 patches of 4 x 4 pixels with grid:4x4.
    let v = ok(&["metrics", "--metric", "deletion", "--model", &m, "--input", &x, "--curve-steps", "4", "--feature-mask", "grid:4x4", "--json", "--device", "cpu"]);
    assert_eq!(v["features"], 16);
    let p = ok(&["metrics", "--metric", "insertion", "--model", &m, "--input", &x, "--curve-steps", "4", "--raw-scores", "--json", "--device", "cpu"]);
    assert_eq!(p["features"], 256);
    assert_eq!(p["scores"], "raw");
    assert_eq!(v["replace"]["baselines"], serde_json::json!(["zeros"]));
    assert_eq!(v["scores"], "probabilities");
}

#[test]
fn faithfulness_and_completeness_match_the_library() {
    use attrib::metrics::{completeness_gap, faithfulness_correlation, CompletenessParams, FaithfulnessParams};
    let (m, x) = (data("digits_cnn.pt"), data("digits.npy"));
    let (model, inputs) = digits();
    let mut args = vec!["metrics", "--metric", "faithfulness", "--model", &m, "--input", &x, "--method", "input-x-gradient", "--samples", "20", "--subset-size", "40", "--seed", "1", "--json"];
    args.extend(PINNED);
    let v = ok(&args);
    let ixg = InputXGradient::params().batch(pinned()).check().unwrap();
    let a = ixg.attribute(&model, &inputs, &Target::Argmax).unwrap();
    let target = Target::PerSample(a.meta.targets.clone().unwrap());
    let params = FaithfulnessParams { n_subsets: 20, subset_size: Some(40), seed: 1, batch: pinned(), ..Default::default() };
    let want = faithfulness_correlation(&model, &inputs, &target, &a.values, &params).unwrap();
    let got: Vec<Option<f64>> = v["values"].as_array().unwrap().iter().map(|x| x.as_f64()).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        match (g, w) {
            (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9, "{got:?} vs {want:?}"),
            (g, w) => assert_eq!(g, w),
        }
    }
    assert_eq!(v["samples"], 20);

    // Completeness: integrated gradients with a scalar baseline, against the library, and small
    // (IG is complete up to its quadrature error); saliency is far from complete.
    let mut args = vec!["metrics", "--metric", "completeness", "--model", &m, "--input", &x, "--method", "integrated-gradients", "--steps", "64", "--baseline", "0.1", "--json"];
    args.extend(PINNED);
    let v = ok(&args);
    let spec: MethodSpec = serde_json::from_value(serde_json::json!({"method": "integrated-gradients", "n_steps": 64, "baselines": "0.1", "max_batch": 64, "memory_format": "contiguous"})).unwrap();
    let ig = attrib::methods::Registry::builtin().build(&spec, inputs.tensors()).unwrap();
    let a = ig.attribute(&model, &inputs, &Target::Argmax).unwrap();
    let params = CompletenessParams { baselines: Baseline::Scalar(0.1).into(), batch: pinned() };
    let c = completeness_gap(&model, &inputs, &Target::PerSample(a.meta.targets.clone().unwrap()), &a.values, &params).unwrap();
    assert_close(&values(&v), &c.abs_gap, "completeness");
    let relative: Vec<f64> = v["relative"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(relative.iter().all(|r| *r < 0.05), "IG relative gaps {relative:?}");
    let mut args = vec!["metrics", "--metric", "completeness", "--model", &m, "--input", &x, "--method", "saliency", "--baseline", "0.1", "--json"];
    args.extend(PINNED);
    let s = ok(&args);
    assert!(s["mean_relative"].as_f64().unwrap() > 0.5, "{s}");
    assert_eq!(s["replace"]["baselines"], serde_json::json!([0.1]));
    assert_eq!(v["replace"]["baselines"], serde_json::json!([0.1]));
}

/// f(x) = Σ x, traced to TorchScript on `[N, 4]` inputs, one output column.
fn additive_model() -> String {
    let example = tch::Tensor::ones([2, 4], (tch::Kind::Float, Device::Cpu));
    let mut sum = |xs: &[tch::Tensor]| vec![xs[0].sum_dim_intlist(1, true, tch::Kind::Float)];
    let m = tch::CModule::create_by_tracing("Additive", "forward", &[example], &mut sum).expect("traces");
    let path = attrib_tests::cli::tmp("metrics_additive.pt");
    m.save(&path).expect("saves");
    path.display().to_string()
}

fn npy(name: &str, rows: usize, values: Vec<f32>) -> String {
    let path = attrib_tests::cli::tmp(name);
    ndarray_npy::write_npy(&path, &ndarray::Array2::from_shape_vec((rows, 4), values).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn completeness_of_a_shapley_method_over_a_baseline_distribution_uses_the_mean_reference() {
    // f(x) = Σ x. Exact Shapley values against the background [[0,0,0,0],[1,1,1,1]] (S = 2,
    // averaged) are x_i − 1/2, so Σφ = f(x) − mean_s f(b_s) = f(x) − 2 exactly: the gap is 0.
    // Read as one baseline row per input row instead, row 0 is compared with f(0) = 0 and row 1
    // with f(1) = 4, both gaps 2.
    let m = additive_model();
    let x = npy("metrics_additive_x.npy", 2, vec![1., 2., 3., 4., -1., 0.5, 2., 0.]);
    let bg = npy("metrics_additive_bg.npy", 2, vec![0., 0., 0., 0., 1., 1., 1., 1.]);
    for flag in ["baseline_distribution=true", "baseline_distribution=\"true\""] {
        let mut args = vec!["metrics", "--metric", "completeness", "--model", &m, "--input", &x, "--target", "0", "--method", "exact-shapley", "--baseline", &bg, "--param", flag, "--json"];
        args.extend(PINNED);
        let v = ok(&args);
        let gaps = values(&v);
        assert_eq!(gaps.len(), 2, "{v}");
        assert!(gaps.iter().all(|g| g.abs() <= 1e-5), "{flag}: exact Shapley over the background is complete against the mean reference: {v}");
    }
    // A background with S ≠ N rows is no shape error either.
    let bg3 = npy("metrics_additive_bg3.npy", 3, vec![0., 0., 0., 0., 1., 1., 1., 1., 2., 2., 2., 2.]);
    let mut args = vec!["metrics", "--metric", "completeness", "--model", &m, "--input", &x, "--target", "0", "--method", "exact-shapley", "--baseline", &bg3, "--param", "baseline_distribution=true", "--json"];
    args.extend(PINNED);
    assert!(values(&ok(&args)).iter().all(|g| g.abs() <= 1e-5));
    // gradient-shap reads its file as samples without the flag (S = 3 for N = 2 rows).
    let mut args = vec!["metrics", "--metric", "completeness", "--model", &m, "--input", &x, "--target", "0", "--method", "gradient-shap", "--baseline", &bg3, "--json"];
    args.extend(PINNED);
    assert_eq!(values(&ok(&args)).len(), 2);
}
