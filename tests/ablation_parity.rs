//! Parity with Captum 0.9's FeatureAblation, Occlusion and FeaturePermutation on the standard
//! TorchScript models: with and without masks (shared, per-row, spanning two inputs), one and
//! several inputs, forward arguments, class and per-row targets, scalar outputs. Driven by
//! `ablation/cases.json`, written by `tests/python/fixtures_ablation.py`.
//!
//! Every case is checked twice: in float32 against Captum's float32 run, with Captum's batch
//! layout (chunks of `N` rows); and in float64 (model converted with
//! [`TorchScriptModel::to_kind`], inputs `.to_kind(Kind::Double)`) against Captum's float64 run,
//! with the default chunking and several other chunk sizes. In float32 an ablation is a difference
//! of two nearly equal outputs, and kernels round differently per batch size, so only the float64
//! run can show 1e-5 parity independently of the chunking.

use attrib::ablation::{FeatureAblation, FeaturePermutation, Occlusion};
use attrib::convert::{array_to_tensor_i64, read_npy_i64};
use attrib::prelude::*;
use attrib_tests::{fixtures, load_model, load_model_as, max_rel_err, read, read_f64, Fixture};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind};

const RTOL: f64 = 1e-5;

fn target_of(fx: &Fixture, name: &str) -> Target {
    match name {
        "none" => Target::None,
        "class0" => Target::Class(0),
        "per_row" => Target::PerSample(fx.targets.clone().expect("per-row targets")),
        other => panic!("unknown target {other}"),
    }
}

fn masks_of(root: &Path, case: &Value) -> Option<Vec<FeatureMask>> {
    case["masks"].as_array().map(|files| {
        files
            .iter()
            .map(|f| {
                let a = read_npy_i64(root.join(f.as_str().unwrap())).unwrap();
                FeatureMask::new(array_to_tensor_i64(&a, Device::Cpu).unwrap()).unwrap()
            })
            .collect()
    })
}

fn sizes(v: &Value) -> Vec<Vec<i64>> {
    v.as_array().unwrap().iter().map(|w| w.as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect()).collect()
}

fn run_case(root: &Path, case: &Value, fx: &Fixture, batch: BatchOptions) -> (Vec<tch::Tensor>, String) {
    let target = target_of(&fx, case["target"].as_str().unwrap());
    let inputs = fx.inputs();
    let k = fx.inputs.len();
    let baselines = || Baselines::per_input((0..k).map(|_| Baseline::Scalar(case["baseline"].as_f64().unwrap_or(0.0))).collect());
    let method: Box<dyn Attribution> = match case["method"].as_str().unwrap() {
        "feature_ablation" => {
            let mut p = FeatureAblation::params().baselines(baselines()).batch(batch);
            if let Some(m) = masks_of(root, case) {
                p = p.feature_masks(m);
            }
            Box::new(p.check().unwrap())
        }
        "occlusion" => {
            let mut p = Occlusion::params().windows(sizes(&case["window"])).baselines(baselines()).batch(batch);
            if !case["strides"].is_null() {
                p = p.strides(sizes(&case["strides"]));
            }
            Box::new(p.check().unwrap())
        }
        "feature_permutation" => {
            let perms = read_npy_i64(root.join(case["perms"].as_str().unwrap())).unwrap();
            let perms: Vec<Vec<i64>> = perms.outer_iter().map(|r| r.iter().copied().collect()).collect();
            let mut p = FeaturePermutation::params().permutations(perms).batch(batch);
            if let Some(m) = masks_of(root, case) {
                p = p.feature_masks(m);
            }
            Box::new(p.check().unwrap())
        }
        other => panic!("unknown method {other}"),
    };
    let attr = method.attribute(&fx.model, &inputs, &target).unwrap();
    let label = format!(
        "{} {} {} {}",
        case["method"].as_str().unwrap(),
        case["model"].as_str().unwrap(),
        case["case"].as_str().unwrap(),
        case["target"].as_str().unwrap()
    );
    (attr.values, label)
}

fn cases() -> (std::path::PathBuf, Vec<Value>) {
    let root = fixtures().join("ablation");
    let text = std::fs::read_to_string(root.join("cases.json"))
        .unwrap_or_else(|e| panic!("ablation fixtures missing ({e}): run `make fixtures`"));
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    (root, cases)
}

/// Run every case with `batch(n)` in `kind` and check it against Captum's run in the same dtype
/// to `rtol`; returns the worst error per method.
fn check_all(kind: Kind, batch: impl Fn(i64) -> BatchOptions, rtol: f64) -> BTreeMap<String, f64> {
    let (root, cases) = cases();
    let mut worst = BTreeMap::new();
    for case in &cases {
        let name = case["model"].as_str().unwrap();
        let fx = if kind == Kind::Float { load_model(name) } else { load_model_as(name, kind) };
        let n = fx.inputs[0].size()[0];
        let (values, label) = run_case(&root, case, &fx, batch(n));
        let key = if kind == Kind::Float { "outputs" } else { "outputs64" };
        let outputs = case[key].as_array().unwrap_or_else(|| panic!("{label}: no `{key}` in cases.json: run `make fixtures`"));
        assert_eq!(values.len(), outputs.len(), "{label}: number of inputs");
        for (v, f) in values.iter().zip(outputs) {
            assert_eq!(v.kind(), kind, "{label}: attributions keep the input dtype");
            let path = root.join(f.as_str().unwrap());
            let expected = if kind == Kind::Float { read(path) } else { read_f64(path) };
            let err = max_rel_err(v, &expected);
            let w = worst.entry(case["method"].as_str().unwrap().to_string()).or_insert(0.0f64);
            *w = w.max(err);
            assert!(err <= rtol, "{label}: max relative error {err:.3e} exceeds {rtol:.0e}");
        }
    }
    assert_eq!(worst.len(), 3, "every method has cases");
    assert!(cases.len() >= 55, "expected the full case list, found {}", cases.len());
    worst
}

fn report(what: &str, worst: &BTreeMap<String, f64>) {
    let parts: Vec<String> = worst.iter().map(|(m, e)| format!("{m} {e:.2e}")).collect();
    eprintln!("worst relative error vs Captum ({what}): {}", parts.join(", "));
}

/// With one perturbation of the whole batch per model call (Captum's default
/// `perturbations_per_eval=1` layout), run by the model itself on contiguous inputs (no timed
/// choice of layout or frozen copy), the float32 arithmetic is the same as Captum's.
#[test]
fn matches_captum_to_1e5_with_captums_batch_layout() {
    let as_captum = |n: i64| BatchOptions {
        max_batch: Some(n as usize),
        memory_format: MemoryFormat::Contiguous,
        inference_copy: false,
        ..BatchOptions::default()
    };
    let worst = check_all(Kind::Float, as_captum, RTOL);
    report("float32, chunks of N rows", &worst);
}

/// Float64 on both sides: 1e-5 whatever the chunking (default: a 2-row probe, then chunks from
/// the memory budget).
#[test]
fn matches_captum_to_1e5_in_float64_with_the_default_chunking() {
    let worst = check_all(Kind::Double, |_| BatchOptions::default(), RTOL);
    report("float64, default chunks", &worst);
}

/// Float64 with chunks that cut the perturbation blocks anywhere: 1, 3 (never a divisor of a
/// block of 4..8 rows) and 17 rows, and chunks of N rows as Captum.
#[test]
fn matches_captum_to_1e5_in_float64_with_other_chunk_sizes() {
    for rows in [1usize, 3, 17] {
        let worst = check_all(Kind::Double, |_| BatchOptions::with_max_batch(rows), RTOL);
        report(&format!("float64, chunks of {rows} rows"), &worst);
    }
    let worst = check_all(Kind::Double, |n| BatchOptions::with_max_batch(n as usize), RTOL);
    report("float64, chunks of N rows", &worst);
}

/// With the default chunking (a 2-row probe, then chunks from the memory budget) the model runs
/// on other batch sizes than Captum's, and float32 kernels round differently per batch size
/// (about 6e-8 of the output). An ablation attribution is a difference of two nearly equal
/// outputs, so that rounding shows at up to ~1e-3 of the largest attribution; Captum's own
/// float32 result differs from its float64 result by up to 7e-4 on these cases.
/// (The float64 tests above are the 1e-5 demonstration; this one only bounds the float32 noise.)
#[test]
fn matches_captum_with_the_default_chunking_to_float32_noise() {
    let worst = check_all(Kind::Float, |_| BatchOptions::default(), FLOAT32_CANCELLATION);
    report("float32, default chunks", &worst);
}

const FLOAT32_CANCELLATION: f64 = 2e-3;
