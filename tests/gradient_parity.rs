//! Gradient methods against Captum 0.9 on the same TorchScript models and inputs (fixtures from
//! `tests/python/fixtures_gradient.py`): an MLP (per-row baselines), a CNN with max-pooling
//! (batch-1 baseline), a two-input model, a model with an additional forward argument and a
//! scalar-output model; per-row targets throughout.
//!
//! - IntegratedGradients, 50 steps, every rule: attributions to 1e-4 relative; the convergence
//!   delta's output gap `F(x) − F(x')` to 1e-4 of the output scale. `riemann_trapezoid` is
//!   compared after scaling attrib's result by `(n − 1)/n` (Captum's trapezoid weights sum to
//!   `(n − 1)/n`; attrib's to 1, see `attrib_gradient::quadrature`).
//! - InputXGradient: 1e-5 relative.
//! - NoiseTunnel (smoothgrad over IG, smoothgrad_sq over Saliency, vargrad over InputXGradient)
//!   with the same noise tensors on both sides: 1e-4 relative.
//! - GradientShap with the same draws (noise, baseline indices, coefficients) replayed: 1e-4
//!   relative, deltas likewise; and in expectation (2000 samples each, independent draws):
//!   within 10% of the largest attribution.

use attrib::convert::read_npy_i64;
use attrib::gradient::{GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, NoiseTunnelType, Quadrature, Saliency, ShapDraws};
use attrib::prelude::*;
use attrib_tests::{fixtures, load_model, max_rel_err, read, Fixture};

/// `attrib_tests::assert_close`, printing the error reached (`--nocapture` shows it).
fn assert_close(actual: &Tensor, expected: &Tensor, rtol: f64, what: &str) {
    let err = max_rel_err(actual, expected);
    eprintln!("{what}: max relative error {err:.2e}");
    assert!(err <= rtol, "{what}: max relative error {err:.3e} exceeds {rtol:.1e}");
}
use std::path::PathBuf;
use tch::{Kind, Tensor};

const RTOL: f64 = 1e-4;

fn dir(name: &str) -> PathBuf {
    fixtures().join("gradient").join(name)
}

fn target(fx: &Fixture) -> Target {
    fx.targets.clone().map(Target::PerSample).unwrap_or(Target::None)
}

fn numbered(dir: &std::path::Path, stem: &str, k: usize) -> Vec<Tensor> {
    (0..k).map(|i| read(dir.join(format!("{stem}{i}.npy")))).collect()
}

fn row_sum(values: &[Tensor]) -> Tensor {
    values.iter().map(|v| v.to_kind(Kind::Double).reshape([v.size()[0], -1]).sum_dim_intlist(Some([1i64].as_slice()), false, Kind::Double)).fold(None::<Tensor>, |acc, s| Some(match acc { Some(a) => a + s, None => s })).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn ig_case(name: &str) {
    let fx = load_model(name);
    let d = dir(name);
    let k = fx.inputs.len();
    let baselines: Vec<Baseline> = numbered(&d, "ig_baseline", k).into_iter().map(Baseline::Tensor).collect();
    for q in Quadrature::ALL {
        let ig = IntegratedGradients::params()
            .baselines(Baselines::per_input(baselines.iter().map(Baseline::shallow_clone).collect()))
            .quadrature(q)
            .n_steps(50)
            .check()
            .unwrap();
        let attr = ig.attribute(&fx.model, &fx.inputs(), &target(&fx)).unwrap();
        let expected = numbered(&d, &format!("ig_{}_", q.name()), k);
        let factor = if q == Quadrature::RiemannTrapezoid { 49.0 / 50.0 } else { 1.0 };
        for (i, (a, e)) in attr.values.iter().zip(&expected).enumerate() {
            assert_close(&(a * factor), e, RTOL, &format!("{name} IG {q} input {i}"));
        }
        // Same output gap F(x) - F(x'): delta_attrib - Σattr_attrib = delta_captum - Σattr_captum.
        let captum_delta = read(d.join(format!("ig_{}_delta.npy", q.name()))).to_kind(Kind::Double);
        let gap_captum = row_sum(&expected) - &captum_delta;
        let delta = attr.convergence_delta.as_ref().unwrap();
        assert_eq!(delta.size(), vec![fx.inputs[0].size()[0]]);
        let gap_attrib = row_sum(&attr.values) - delta;
        let scale = 1.0 + max_abs(&gap_captum);
        let err = max_abs(&(&gap_attrib - &gap_captum)) / scale;
        assert!(err < RTOL, "{name} IG {q}: output gap differs by {err:.2e} (relative)");
        if q != Quadrature::RiemannTrapezoid {
            let err = max_abs(&(delta - &captum_delta)) / scale;
            assert!(err < RTOL, "{name} IG {q}: delta differs from Captum's by {err:.2e}");
        }
    }
    let ixg = InputXGradient::default().attribute(&fx.model, &fx.inputs(), &target(&fx)).unwrap();
    for (i, a) in ixg.values.iter().enumerate() {
        assert_close(a, &read(d.join(format!("ixg_{i}.npy"))), 1e-5, &format!("{name} InputXGradient input {i}"));
    }
}

#[test]
fn integrated_gradients_and_input_x_gradient_match_captum_on_the_mlp() {
    ig_case("mlp");
}

#[test]
fn integrated_gradients_and_input_x_gradient_match_captum_on_the_cnn() {
    ig_case("cnn");
}

#[test]
fn integrated_gradients_and_input_x_gradient_match_captum_on_two_inputs() {
    ig_case("two_input");
}

#[test]
fn integrated_gradients_and_input_x_gradient_match_captum_with_extra_args_and_scalar_outputs() {
    ig_case("extra_arg");
    ig_case("scalar_out");
}

fn nt_case(name: &str) {
    let fx = load_model(name);
    let d = dir(name);
    let k = fx.inputs.len();
    let base = || Baselines::per_input(numbered(&d, "ig_baseline", k).into_iter().map(Baseline::Tensor).collect());
    let cases: Vec<(&str, NoiseTunnelType, Box<dyn Attribution>)> = vec![
        ("ig", NoiseTunnelType::SmoothGrad, Box::new(IntegratedGradients::params().baselines(base()).n_steps(20).check().unwrap())),
        ("saliency", NoiseTunnelType::SmoothGradSq, Box::new(Saliency::default())),
        ("ixg", NoiseTunnelType::VarGrad, Box::new(InputXGradient::default())),
    ];
    for (kname, kind, inner) in cases {
        let nt = NoiseTunnel::params().nt_type(kind).nt_samples(4).check(inner).unwrap();
        let noise = numbered(&d, &format!("nt_{kname}_noise"), k);
        let attr = nt.attribute_with_noise(&fx.model, &fx.inputs(), &target(&fx), &noise).unwrap();
        for (i, a) in attr.values.iter().enumerate() {
            let e = read(d.join(format!("nt_{kname}_{i}.npy")));
            assert_close(a, &e, RTOL, &format!("{name} NoiseTunnel {} over {kname}, input {i}", kind.name()));
        }
        if kname == "ig" {
            // Captum returns one delta per copy; attrib their mean per row, and all in `extra`.
            let captum = read(d.join("nt_ig_delta.npy")).to_kind(Kind::Double); // [M, N]
            let mean = captum.mean_dim(Some([0i64].as_slice()), false, Kind::Double);
            let delta = attr.convergence_delta.as_ref().unwrap();
            assert!(max_abs(&(delta - &mean)) < 1e-4 * (1.0 + max_abs(&mean)), "{name}: NT delta");
            let per_copy: Vec<Vec<f64>> = serde_json::from_value(attr.meta.extra["sample_deltas"].clone()).unwrap();
            let per_copy = Tensor::from_slice(&per_copy.concat()).reshape(captum.size());
            assert!(max_abs(&(per_copy - &captum)) < 1e-4 * (1.0 + max_abs(&captum)), "{name}: NT per-copy deltas");
        }
    }
}

#[test]
fn noise_tunnel_matches_captum_with_the_same_noise() {
    nt_case("mlp");
    nt_case("cnn");
    nt_case("two_input");
}

fn shap_case(name: &str) {
    let fx = load_model(name);
    let d = dir(name);
    let k = fx.inputs.len();
    let dist: Vec<Baseline> = numbered(&d, "shap_dist", k).into_iter().map(Baseline::Distribution).collect();
    let shap = GradientShap::params().baselines(Baselines::per_input(dist)).n_samples(3).stdev(0.1).check().unwrap();
    let alphas: ndarray::ArrayD<f64> = ndarray_npy::read_npy(d.join("shap_alpha.npy")).expect("shap_alpha.npy (float64)");
    let alphas: Vec<f64> = alphas.iter().copied().collect();
    let draws = ShapDraws {
        baseline_index: (0..k).map(|j| read_npy_i64(d.join(format!("shap_index{j}.npy"))).unwrap().iter().copied().collect()).collect(),
        alphas,
        noise: numbered(&d, "shap_noise", k),
    };
    let attr = shap.attribute_with_draws(&fx.model, &fx.inputs(), &target(&fx), &draws).unwrap();
    for (i, a) in attr.values.iter().enumerate() {
        assert_close(a, &read(d.join(format!("shap_{i}.npy"))), RTOL, &format!("{name} GradientShap input {i}"));
    }
    let captum = read(d.join("shap_delta.npy")).to_kind(Kind::Double); // [M, N]
    let per_draw: Vec<Vec<f64>> = serde_json::from_value(attr.meta.extra["sample_deltas"].clone()).unwrap();
    let per_draw = Tensor::from_slice(&per_draw.concat()).reshape(captum.size());
    assert!(max_abs(&(&per_draw - &captum)) < 1e-4 * (1.0 + max_abs(&captum)), "{name}: GradientShap per-draw deltas");
    let mean = captum.mean_dim(Some([0i64].as_slice()), false, Kind::Double);
    assert!(max_abs(&(attr.convergence_delta.as_ref().unwrap() - mean)) < 1e-4 * (1.0 + max_abs(&captum)));
}

#[test]
fn gradient_shap_matches_captum_with_the_same_draws() {
    shap_case("mlp");
    shap_case("cnn");
    shap_case("two_input");
}

#[test]
fn gradient_shap_matches_captum_in_expectation() {
    let fx = load_model("mlp");
    let d = dir("mlp");
    let dist = read(d.join("shap_dist0.npy"));
    let shap = GradientShap::params().baselines(Baseline::Distribution(dist)).n_samples(2000).stdev(0.1).seed(7).check().unwrap();
    let attr = shap.attribute(&fx.model, &fx.inputs(), &target(&fx)).unwrap();
    let expected = read(d.join("shap_many_0.npy"));
    let err = max_abs(&(attr.single().unwrap().to_kind(Kind::Double) - expected.to_kind(Kind::Double)));
    let scale = max_abs(&expected.to_kind(Kind::Double));
    assert!(err < 0.1 * scale, "GradientShap, independent draws: max difference {err:.3e} vs scale {scale:.3e}");
}
