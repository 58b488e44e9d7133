//! Parity with Captum 0.9's `ShapleyValueSampling` (the permutations Captum drew, replayed) and
//! `ShapleyValues` (every permutation; the reference of attrib's exact Shapley values) on the
//! standard TorchScript models in float64: masks shared, per row and spanning two inputs, no
//! mask, scalar baselines, forward arguments, per-row targets, scalar outputs. Driven by
//! `shapley/cases.json`, written by `tests/python/fixtures_shapley.py`.
//!
//! Captum sums its marginal contributions in float32 even for float64 models; the fixture script
//! makes those sums float64 (see its docstring), so both sides are float64 throughout and agree
//! to ~1e-15, the sampling bit for bit (asserted: 1e-5 elementwise relative, 1e-9 of the largest
//! value).

use attrib::convert::{array_to_tensor_i64, read_npy_i64};
use attrib::prelude::*;
use attrib_tests::{fixtures, load_model_as, max_rel_err, read_f64};
use serde_json::Value;
use std::path::Path;
use tch::{Device, Kind};

const RTOL: f64 = 1e-5;

fn int_tensor(root: &Path, file: &str) -> tch::Tensor {
    array_to_tensor_i64(&read_npy_i64(root.join(file)).unwrap(), Device::Cpu).unwrap()
}

#[test]
fn shapley_methods_match_captum_in_float64() {
    let root = fixtures().join("shapley");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(root.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 7);
    let (mut compared, mut exact_compared, mut worst) = (0, 0, 0.0f64);
    for case in &cases {
        let fx = load_model_as(case["model"].as_str().unwrap(), Kind::Double);
        let k = fx.inputs.len();
        let baselines = || Baselines::per_input((0..k).map(|_| Baseline::Scalar(case["baseline"].as_f64().unwrap())).collect());
        let masks = || {
            case["masks"].as_array().map(|files| files.iter().map(|f| FeatureMask::new(int_tensor(&root, f.as_str().unwrap())).unwrap()).collect::<Vec<_>>())
        };
        let target = match &fx.targets {
            Some(t) => Target::PerSample(t.clone()),
            None => Target::None,
        };
        let what = format!("{} ({})", case["model"], case["mask"]);
        let check = |attr: &Attributions, files: &Value, method: &str| -> f64 {
            let mut w = 0.0f64;
            for (i, f) in files.as_array().unwrap().iter().enumerate() {
                let expected = read_f64(root.join(f.as_str().unwrap()));
                assert_eq!(attr.values[i].kind(), Kind::Double);
                let err = max_rel_err(&attr.values[i], &expected);
                let scaled = (&attr.values[i] - &expected).abs().max().double_value(&[]) / expected.abs().max().double_value(&[]);
                eprintln!("{method} on {what}, input {i}: elementwise {err:.2e}, of the largest value {scaled:.2e}");
                assert!(err <= RTOL, "{method} on {what}, input {i}: max relative error {err:.3e} exceeds {RTOL:.0e}");
                assert!(scaled <= 1e-9, "{method} on {what}, input {i}: error {scaled:.3e} of the largest value");
                w = w.max(err);
            }
            // Efficiency holds on attrib's side whatever Captum's rounding.
            let delta = attr.convergence_delta.as_ref().unwrap().abs().max().double_value(&[]);
            assert!(delta < 1e-10, "{method} on {what}: efficiency gap {delta:.3e}");
            w
        };

        let perms = read_npy_i64(root.join(case["permutations"].as_str().unwrap())).unwrap();
        let g = perms.shape()[1];
        let perms: Vec<Vec<i64>> = perms.rows().into_iter().map(|r| r.to_vec()).collect();
        assert_eq!(perms.len() as u64, case["n_samples"].as_u64().unwrap());
        let mut p = ShapleyValueSampling::params().baselines(baselines()).permutations(perms);
        if let Some(m) = masks() {
            p = p.feature_masks(m);
        }
        let attr = p.check().unwrap().attribute(&fx.model, &fx.inputs(), &target).unwrap();
        assert_eq!(attr.meta.extra["groups"], g as i64);
        worst = worst.max(check(&attr, &case["sampling"], "shapley-sampling"));
        compared += 1;

        if let Some(files) = case.get("exact") {
            let mut p = ExactShapley::params().baselines(baselines());
            if let Some(m) = masks() {
                p = p.feature_masks(m);
            }
            let attr = p.check().unwrap().attribute(&fx.model, &fx.inputs(), &target).unwrap();
            worst = worst.max(check(&attr, files, "exact-shapley"));
            exact_compared += 1;
        }
    }
    assert_eq!((compared, exact_compared), (7, 6));
    eprintln!("worst relative error against Captum: {worst:.3e}");
}
