//! Infidelity and max-sensitivity (`attrib::metrics`) against Captum 0.9's `infidelity` and
//! `sensitivity_max`, driven by `metrics/cases.json` from `tests/python/fixtures_metrics.py`:
//! the standard models in float64, Captum's perturbation draws replayed, values per row within
//! 1e-5 (relative, see `max_rel_err`). Also closed forms (exact attributions of linear models)
//! and properties on small random networks (proptest).

use attrib::methods::Registry;
use attrib::metrics::infidelity::{draw_perturbations, infidelity, infidelity_with, InfidelityParams, Perturbations};
use attrib::metrics::sensitivity::{draw_perturbed, sensitivity_max, sensitivity_max_with, SensitivityParams};
use attrib::metrics::Noise;
use attrib::prelude::*;
use attrib_tests::{fixtures, load_model_as, max_rel_err, read_f64};
use proptest::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn root() -> PathBuf {
    fixtures().join("metrics")
}

fn files(c: &Value, key: &str) -> Vec<Tensor> {
    c[key].as_array().unwrap().iter().map(|f| read_f64(root().join(f.as_str().unwrap()))).collect()
}

fn target_of(targets: &Option<Vec<i64>>) -> Target {
    targets.clone().map_or(Target::None, Target::PerSample)
}

fn cases(metric: &str) -> Vec<Value> {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(root().join("cases.json")).unwrap()).unwrap();
    spec["cases"].as_array().unwrap().iter().filter(|c| c["metric"] == metric).cloned().collect()
}

#[test]
fn infidelity_matches_captum_on_replayed_draws() {
    let cs = cases("infidelity");
    assert_eq!(cs.len(), 6);
    for c in cs {
        let fx = load_model_as(c["model"].as_str().unwrap(), Kind::Double);
        let attrs = files(&c, "attributions");
        let given = Perturbations { perturbations: files(&c, "perturbations"), perturbed: files(&c, "perturbed") };
        let params = InfidelityParams {
            n_perturb_samples: c["samples"].as_u64().unwrap() as usize,
            normalize: c["normalize"].as_bool().unwrap(),
            ..Default::default()
        };
        let got = infidelity_with(&fx.model, &fx.inputs(), &target_of(&fx.targets), &attrs, &given, &params).unwrap();
        let expected = read_f64(root().join(c["expected"].as_str().unwrap())).reshape([-1]);
        let err = max_rel_err(&Tensor::from_slice(&got), &expected);
        assert!(err <= 1e-5, "{}: max relative error {err:.2e}; attrib {got:?} vs Captum {expected}", c["case"]);
    }
}

#[test]
fn sensitivity_max_matches_captum_on_replayed_draws() {
    let cs = cases("sensitivity-max");
    assert_eq!(cs.len(), 5);
    let registry = Registry::builtin();
    for c in cs {
        let fx = load_model_as(c["model"].as_str().unwrap(), Kind::Double);
        let spec: MethodSpec = serde_json::from_value(c["spec"].clone()).unwrap();
        let method = registry.build(&spec, &fx.inputs).unwrap();
        let perturbed = files(&c, "perturbed");
        // Three copies per call of the method: the grouping must not matter.
        for per_call in [None, Some(3)] {
            let params = SensitivityParams { n_perturb_samples: 10, max_copies_per_call: per_call, ..Default::default() };
            let got = sensitivity_max_with(method.as_ref(), &fx.model, &fx.inputs(), &target_of(&fx.targets), &perturbed, &params).unwrap();
            let expected = read_f64(root().join(c["expected"].as_str().unwrap())).reshape([-1]);
            let err = max_rel_err(&Tensor::from_slice(&got.values), &expected);
            assert!(err <= 1e-5, "{} ({per_call:?} per call): max relative error {err:.2e}; attrib {:?} vs Captum {expected}", c["case"], got.values);
        }
    }
}

/// f(x) = x · w + 0.5 on 6 features; its exact gradient is `w` everywhere.
fn linear(kind: Kind) -> (FnModel<'static>, Tensor, Tensor) {
    let w = Tensor::from_slice(&[3.0, -1.0, 2.0, 0.5, -2.0, 1.0]).to_kind(kind);
    let x = Tensor::from_slice(&[1.0, 2.0, 1.0, 2.0, 1.0, 1.0, 0.5, 1.0, 0.0, 1.0, 0.5, 3.0, -1.0, 0.2, 0.3, 0.0, 2.0, 1.0])
        .to_kind(kind)
        .reshape([3, 6]);
    let wm = w.shallow_clone();
    (FnModel::new(move |x| x.matmul(&wm) + 0.5), w, x)
}

#[test]
fn exact_attributions_of_a_linear_model_have_zero_infidelity() {
    let (model, w, x) = linear(Kind::Double);
    let inputs = Inputs::new(x.shallow_clone());
    // Saliency (the gradient) with I = ε: Σ w ε = f(x) − f(x − ε) exactly.
    let sal = w.expand([3, 6], false).contiguous();
    let local = || InfidelityParams { n_perturb_samples: 20, noise: Noise::Gaussian { stdev: 0.5 }, seed: 3, ..Default::default() };
    let v = infidelity(&model, &inputs, &Target::None, &[sal.shallow_clone()], &local()).unwrap();
    assert!(v.iter().all(|v| v.abs() < 1e-20), "{v:?}");
    // Gradient × input with I = (x − x̃)/(x − 0), 1 where x = 0: zero except where x = 0 …
    let ixg = &x * &w;
    let global = || InfidelityParams { multiply_by_inputs: true, ..local() };
    let v = infidelity(&model, &inputs, &Target::None, &[ixg.shallow_clone()], &global()).unwrap();
    assert!(v[0].abs() < 1e-20 && v[1] > 1e-3, "{v:?}");
    // … and zero everywhere against a baseline away from the inputs, where Φ = (x − b) w.
    let b = Tensor::full([1, 6], -5.0, (Kind::Double, Device::Cpu));
    let ig = (&x - &b) * &w;
    let global_b = InfidelityParams { baselines: Baseline::Tensor(b).into(), ..global() };
    let v = infidelity(&model, &inputs, &Target::None, &[ig], &global_b).unwrap();
    assert!(v.iter().all(|v| v.abs() < 1e-18), "{v:?}");
    // A wrong attribution is not zero; normalisation forgives the scale but not the direction.
    let scaled = &sal * 3.0;
    let v = infidelity(&model, &inputs, &Target::None, &[scaled.shallow_clone()], &local()).unwrap();
    assert!(v.iter().all(|v| *v > 1e-3), "{v:?}");
    let norm = InfidelityParams { normalize: true, ..local() };
    let v = infidelity(&model, &inputs, &Target::None, &[scaled], &norm).unwrap();
    // β² Σd² − 2β Σdδ + Σδ² cancels to rounding (Σδ² is about 10 here).
    assert!(v.iter().all(|v| v.abs() < 1e-12), "{v:?}");
    let v = infidelity(&model, &inputs, &Target::None, &[-&ixg], &norm).unwrap();
    assert!(v.iter().all(|v| *v > 1e-3), "{v:?}");
}

#[test]
fn saliency_of_a_linear_model_has_zero_sensitivity() {
    let (model, _, x) = linear(Kind::Float);
    let sal = Saliency::params().abs(false).check().unwrap();
    let p = SensitivityParams { noise: Noise::Uniform { radius: 0.5 }, ..Default::default() };
    let s = sensitivity_max(&sal, &model, &Inputs::new(x.shallow_clone()), &Target::None, &p).unwrap();
    assert_eq!(s.values, vec![0.0; 3]);
    // Input × gradient changes with the input: exactly ‖w ε‖/‖w x‖ at its largest copy.
    let ixg = InputXGradient::params().check().unwrap();
    let s = sensitivity_max(&ixg, &model, &Inputs::new(x.shallow_clone()), &Target::None, &p).unwrap();
    let copies = draw_perturbed(&[x.shallow_clone()], &p).unwrap().remove(0).reshape([10, 3, 6]);
    let w = Tensor::from_slice(&[3.0f32, -1.0, 2.0, 0.5, -2.0, 1.0]);
    let want = ((&copies - &x) * &w).square().sum_dim_intlist(2, false, Kind::Double).sqrt().amax(0, false)
        / (&x * &w).square().sum_dim_intlist(1, false, Kind::Double).sqrt();
    let want: Vec<f64> = Vec::try_from(want).unwrap();
    for (g, w) in s.values.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w, "{:?} vs {want:?}", s.values);
    }
}

#[test]
fn seeded_draws_replay_and_errors_are_clear() {
    let fx = load_model_as("cnn", Kind::Double);
    let t = target_of(&fx.targets);
    let sal = Saliency::params().check().unwrap();
    let attr = sal.attribute(&fx.model, &fx.inputs(), &t).unwrap().values;
    let params = || InfidelityParams { multiply_by_inputs: true, seed: 5, ..Default::default() };
    let p = params();
    let seeded = infidelity(&fx.model, &fx.inputs(), &t, &attr, &p).unwrap();
    let drawn = draw_perturbations(&fx.inputs, &p).unwrap();
    // The seeded path sums Σ Φ·I on the host while drawing (Φ/(x − b) times ε), the replay as
    // tensor operations (Φ times ε/(x − b)): the same values up to float64 rounding.
    let replayed = infidelity_with(&fx.model, &fx.inputs(), &t, &attr, &drawn, &p).unwrap();
    for (a, b) in replayed.iter().zip(&seeded) {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "{replayed:?} vs {seeded:?}");
    }
    // Chunking the model calls changes nothing; another seed changes the draws.
    let chunked = || InfidelityParams { batch: BatchOptions { max_batch: Some(7), ..Default::default() }, ..params() };
    let again = infidelity(&fx.model, &fx.inputs(), &t, &attr, &chunked()).unwrap();
    for (a, b) in again.iter().zip(&seeded) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{again:?} vs {seeded:?}");
    }
    let other = infidelity(&fx.model, &fx.inputs(), &t, &attr, &InfidelityParams { seed: 6, ..chunked() }).unwrap();
    assert_ne!(other, seeded);
    let sp = SensitivityParams { seed: 2, ..Default::default() };
    let s1 = sensitivity_max(&sal, &fx.model, &fx.inputs(), &t, &sp).unwrap();
    let s2 = sensitivity_max(&sal, &fx.model, &fx.inputs(), &t, &SensitivityParams { max_copies_per_call: Some(4), ..sp.clone() }).unwrap();
    assert_eq!(s1.values, s2.values);
    let replay = sensitivity_max_with(&sal, &fx.model, &fx.inputs(), &t, &draw_perturbed(&fx.inputs, &sp).unwrap(), &sp).unwrap();
    assert_eq!(s1.values, replay.values);
    // Errors, not panics.
    let wrong = Tensor::zeros([2, 3], (Kind::Double, Device::Cpu));
    let e = infidelity(&fx.model, &fx.inputs(), &t, &[wrong.shallow_clone()], &p).unwrap_err();
    assert!(e.to_string().contains("must match"), "{e}");
    let e = infidelity_with(&fx.model, &fx.inputs(), &t, &attr, &Perturbations { perturbations: vec![wrong.shallow_clone()], perturbed: vec![wrong] }, &p)
        .unwrap_err();
    assert!(e.to_string().contains("copy-major"), "{e}");
    let e = infidelity(&fx.model, &fx.inputs(), &t, &attr, &InfidelityParams { n_perturb_samples: 0, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = sensitivity_max(&sal, &fx.model, &fx.inputs(), &t, &SensitivityParams { noise: Noise::Uniform { radius: f64::NAN }, ..sp }).unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
}

/// A random two-layer tanh network on `d` features with `c` outputs.
fn random_net(seed: i64, d: i64, c: i64) -> FnModel<'static> {
    tch::manual_seed(seed);
    let w1 = Tensor::randn([d, 8], (Kind::Double, Device::Cpu));
    let w2 = Tensor::randn([8, c], (Kind::Double, Device::Cpu));
    FnModel::new(move |x| x.matmul(&w1).tanh().matmul(&w2))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Infidelity is non-negative, normalised infidelity is at most the plain one (β = 1 is one
    /// of the scalings it minimises over) and does not change when the attribution is scaled;
    /// sensitivity is non-negative and zero at radius 0.
    #[test]
    fn metric_properties(seed in 0i64..1000, scale in 0.1f64..10.0, d in 2i64..6) {
        let model = random_net(seed, d, 3);
        let x = Tensor::randn([4, d], (Kind::Double, Device::Cpu));
        let inputs = Inputs::new(x.shallow_clone());
        let target = Target::Class(1);
        let sal = Saliency::params().abs(false).check().unwrap();
        let a = sal.attribute(&model, &inputs, &target).unwrap().values;
        let p = InfidelityParams { seed: seed as u64, ..Default::default() };
        let plain = infidelity(&model, &inputs, &target, &a, &p).unwrap();
        let norm = InfidelityParams { normalize: true, ..p };
        let normed = infidelity(&model, &inputs, &target, &a, &norm).unwrap();
        let scaled = infidelity(&model, &inputs, &target, &[&a[0] * scale], &norm).unwrap();
        for i in 0..4 {
            prop_assert!(plain[i] >= 0.0 && normed[i] >= -1e-15);
            prop_assert!(normed[i] <= plain[i] * (1.0 + 1e-9) + 1e-15);
            prop_assert!((scaled[i] - normed[i]).abs() <= 1e-9 * normed[i].abs().max(1e-12));
        }
        let s = sensitivity_max(&sal, &model, &inputs, &target, &SensitivityParams { seed: seed as u64, ..Default::default() }).unwrap();
        prop_assert!(s.values.iter().all(|v| *v >= 0.0));
        let zero = SensitivityParams { noise: Noise::Uniform { radius: 0.0 }, ..Default::default() };
        let s0 = sensitivity_max(&sal, &model, &inputs, &target, &zero).unwrap();
        prop_assert!(s0.values.iter().all(|v| *v == 0.0));
    }
}
