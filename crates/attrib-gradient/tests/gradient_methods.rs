//! Closed forms, axioms and error handling of the gradient methods, on closure models (no
//! fixtures needed). Captum parity lives in `tests/gradient_parity.rs` of the workspace.

use attrib_core::{AttribError, Attribution, Baseline, Baselines, BatchOptions, FnModel, Inputs, Target};
use attrib_gradient::rng::Rng;
use attrib_gradient::*;
use proptest::prelude::*;
use tch::{Kind, Tensor};

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

fn randn(rng: &mut Rng, shape: &[i64], scale: f64, kind: Kind) -> Tensor {
    rng.normal_tensor(shape, scale, kind, tch::Device::Cpu).unwrap()
}

/// `F(x) = x W + c` with 3 classes; returns (model weights, bias).
fn linear(kind: Kind) -> (Tensor, Tensor) {
    let mut rng = Rng::new(42);
    (randn(&mut rng, &[6, 3], 1.0, kind), randn(&mut rng, &[3], 1.0, kind))
}

#[test]
fn ig_on_a_linear_model_is_w_times_x_minus_baseline_for_every_quadrature() {
    let (w, c) = linear(Kind::Double);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w) + &c);
    let mut rng = Rng::new(1);
    let x = randn(&mut rng, &[4, 6], 1.0, Kind::Double);
    let b = randn(&mut rng, &[1, 6], 1.0, Kind::Double);
    let targets = vec![0i64, 2, 1, 2];
    let wt = w.transpose(0, 1).index_select(0, &Tensor::from_slice(&targets)); // [4, 6]
    let expected = &wt * (&x - &b);
    for q in Quadrature::ALL {
        for steps in [2usize, 7, 50] {
            let ig = IntegratedGradients::params()
                .baselines(Baseline::Tensor(b.shallow_clone()))
                .quadrature(q)
                .n_steps(steps)
                .check()
                .unwrap();
            let a = ig.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::PerSample(targets.clone())).unwrap();
            let err = max_abs(&(a.single().unwrap() - &expected));
            assert!(err < 1e-12, "{q} with {steps} steps: error {err}");
            let delta = max_abs(a.convergence_delta.as_ref().unwrap());
            assert!(delta < 1e-12, "{q} with {steps} steps: delta {delta}");
            assert_eq!(a.convergence_delta.as_ref().unwrap().size(), vec![4]);
        }
    }
}

#[test]
fn multi_input_linear_model_and_input_x_gradient() {
    let mut rng = Rng::new(3);
    let wa = randn(&mut rng, &[4, 2], 1.0, Kind::Double);
    let wb = randn(&mut rng, &[3, 2], 1.0, Kind::Double);
    let model = FnModel::multi(|xs: &[Tensor]| xs[0].matmul(&wa) + xs[1].matmul(&wb));
    let a = randn(&mut rng, &[5, 4], 1.0, Kind::Double);
    let b = randn(&mut rng, &[5, 3], 1.0, Kind::Double);
    let inputs = Inputs::multi(vec![a.shallow_clone(), b.shallow_clone()]);
    let ig = IntegratedGradients::params()
        .baselines(Baselines::per_input(vec![Baseline::Scalar(0.5), Baseline::Zeros]))
        .check()
        .unwrap();
    let out = ig.attribute(&model, &inputs, &Target::Class(1)).unwrap();
    let ea = wa.select(1, 1).unsqueeze(0) * (&a - 0.5);
    let eb = wb.select(1, 1).unsqueeze(0) * &b;
    assert!(max_abs(&(&out.values[0] - ea)) < 1e-12);
    assert!(max_abs(&(&out.values[1] - eb)) < 1e-12);
    assert!(max_abs(out.convergence_delta.as_ref().unwrap()) < 1e-12);

    let ixg = InputXGradient::params().check().unwrap().attribute(&model, &inputs, &Target::Class(0)).unwrap();
    assert!(max_abs(&(&ixg.values[0] - wa.select(1, 0).unsqueeze(0) * &a)) < 1e-12);
    assert!(max_abs(&(&ixg.values[1] - wb.select(1, 0).unsqueeze(0) * &b)) < 1e-12);
}

#[test]
fn chunking_does_not_change_ig() {
    let mut rng = Rng::new(5);
    let w1 = randn(&mut rng, &[6, 8], 1.0, Kind::Float);
    let w2 = randn(&mut rng, &[8, 3], 1.0, Kind::Float);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w1).relu().matmul(&w2));
    let x = randn(&mut rng, &[5, 6], 1.0, Kind::Float);
    let run = |batch: BatchOptions| {
        IntegratedGradients::params()
            .n_steps(20)
            .batch(batch)
            .check()
            .unwrap()
            .attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Argmax)
            .unwrap()
    };
    let whole = run(BatchOptions::default());
    let small = run(BatchOptions::with_max_batch(3));
    assert!(max_abs(&(whole.single().unwrap() - small.single().unwrap())) < 1e-5);
    assert!(max_abs(&(whole.convergence_delta.unwrap() - small.convergence_delta.unwrap())) < 1e-5);
}

/// A random two-layer network in float64: `tanh` (smooth) or `relu` (piecewise linear).
fn random_net(seed: u64, smooth: bool) -> (impl Fn(&Tensor) -> Tensor, Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let w1 = randn(&mut rng, &[5, 12], 1.0, Kind::Double);
    let b1 = randn(&mut rng, &[12], 0.5, Kind::Double);
    let w2 = randn(&mut rng, &[12, 2], 1.0, Kind::Double);
    let x = randn(&mut rng, &[3, 5], 1.5, Kind::Double);
    let base = randn(&mut rng, &[3, 5], 0.5, Kind::Double);
    let f = move |x: &Tensor| {
        let h = x.matmul(&w1) + &b1;
        let h = if smooth { h.tanh() } else { h.relu() };
        h.matmul(&w2)
    };
    (f, x, base)
}

fn gap(f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor, b: &Tensor, q: Quadrature, steps: usize) -> f64 {
    let model = FnModel::new(f);
    let ig = IntegratedGradients::params().baselines(Baseline::Tensor(b.shallow_clone())).quadrature(q).n_steps(steps).check().unwrap();
    let a = ig.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
    max_abs(a.convergence_delta.as_ref().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, .. ProptestConfig::default() })]

    /// On smooth networks every rule converges, and Gauss–Legendre with 50 nodes beats the
    /// trapezoid rule with 50 nodes.
    #[test]
    fn completeness_gap_shrinks_on_tanh_networks(seed in 0u64..1_000_000) {
        let (f, x, b) = random_net(seed, true);
        for q in Quadrature::ALL {
            let coarse = gap(&f, &x, &b, q, 4);
            let fine = gap(&f, &x, &b, q, 200);
            prop_assert!(fine <= coarse + 1e-12, "{q}: gap {fine} at 200 steps vs {coarse} at 4");
        }
        let gl = gap(&f, &x, &b, Quadrature::GaussLegendre, 50);
        let trap = gap(&f, &x, &b, Quadrature::RiemannTrapezoid, 50);
        prop_assert!(gl < trap, "Gauss-Legendre gap {gl} is not below the trapezoid gap {trap}");
        // 50 Gauss-Legendre nodes are accurate to a millionth of the output change on these
        // smooth nets. (An absolute 1e-9 bound was too tight: seed 912692 gives a 5.7e-9 gap.)
        let scale = max_abs(&(f(&x) - f(&b)));
        prop_assert!(gl < 1e-6 * (1.0 + scale), "Gauss-Legendre gap {gl} for an output change of {scale}");
    }

    /// On ReLU networks (piecewise linear along the path) the gap vanishes as steps grow.
    #[test]
    fn completeness_gap_shrinks_on_relu_networks(seed in 0u64..1_000_000) {
        let (f, x, b) = random_net(seed, false);
        let scale = max_abs(&(f(&x) - f(&b))) + 1e-3;
        for q in Quadrature::ALL {
            let coarse = gap(&f, &x, &b, q, 4);
            let fine = gap(&f, &x, &b, q, 1000);
            prop_assert!(fine <= 0.02 * scale, "{q}: gap {fine} at 1000 steps, output scale {scale}");
            prop_assert!(fine <= coarse + 1e-3 * scale, "{q}: gap {fine} at 1000 steps vs {coarse} at 4");
        }
    }
}

/// `F(x) = Σ_j tanh(k x_j)`: for k = 8 sharp enough that 50 trapezoid steps miss a tight tolerance.
fn tanh_model(k: f64) -> FnModel<'static> {
    FnModel::new(move |x: &Tensor| (x * k).tanh().sum_dim_intlist(Some([1i64].as_slice()), false, x.kind()))
}

fn attrib_gradient_test_host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double)).unwrap()
}

fn steps_of(info: &serde_json::Value, key: &str) -> Vec<usize> {
    serde_json::from_value(info[key].clone()).unwrap()
}

#[test]
fn adaptive_ig_reaches_a_tolerance_that_fixed_50_steps_miss() {
    let model = tanh_model(8.0);
    let mut rng = Rng::new(9);
    // Float64, so that a tight tolerance is not swamped by rounding.
    let inputs = Inputs::new(randn(&mut rng, &[4, 3], 1.0, Kind::Double));
    let tol = 1e-7;
    let q = Quadrature::RiemannTrapezoid;
    let fixed = IntegratedGradients::params().quadrature(q).check().unwrap().attribute(&model, &inputs, &Target::None).unwrap();
    let fixed_gap = max_abs(fixed.convergence_delta.as_ref().unwrap());
    assert!(fixed_gap > 10.0 * tol, "50 fixed steps already meet the tolerance ({fixed_gap})");
    let adaptive = IntegratedGradients::params().quadrature(q).tolerance(Some(tol)).max_steps(4096).check().unwrap();
    let a = adaptive.attribute(&model, &inputs, &Target::None).unwrap();
    let info = &a.meta.extra["adaptive"];
    let gap = max_abs(a.convergence_delta.as_ref().unwrap());
    assert!(gap <= tol, "adaptive gap {gap}: {info}");
    assert_eq!(info["all_converged"], true, "{info}");
    // Only the rows that missed the tolerance at 50 steps were refined.
    let fixed_rows = attrib_gradient_test_host(fixed.convergence_delta.as_ref().unwrap());
    for (i, &s) in steps_of(info, "steps_per_row").iter().enumerate() {
        assert_eq!(s > 50, fixed_rows[i].abs() > tol, "row {i}: {info}");
    }
    assert!(fixed_rows.iter().filter(|d| d.abs() > tol).count() >= 2, "{fixed_rows:?}");
}

#[test]
fn adaptive_ig_refines_every_rule_and_reuses_nested_nodes() {
    let model = tanh_model(4.0);
    let mut rng = Rng::new(10);
    let x = randn(&mut rng, &[4, 3], 0.5, Kind::Float);
    let inputs = Inputs::new(x.shallow_clone());
    let tol = 1e-3;
    for q in Quadrature::ALL {
        let fixed = IntegratedGradients::params().quadrature(q).n_steps(2).check().unwrap();
        let f = fixed.attribute(&model, &inputs, &Target::None).unwrap();
        let fixed_gap = max_abs(f.convergence_delta.as_ref().unwrap());
        assert!(fixed_gap > tol, "{q}: 2 fixed steps already meet the tolerance ({fixed_gap})");

        let adaptive = IntegratedGradients::params().quadrature(q).n_steps(2).tolerance(Some(tol)).max_steps(8192).check().unwrap();
        let a = adaptive.attribute(&model, &inputs, &Target::None).unwrap();
        let gap = max_abs(a.convergence_delta.as_ref().unwrap());
        let info = &a.meta.extra["adaptive"];
        assert!(gap <= tol, "{q}: adaptive gap {gap}: {info}");
        assert_eq!(info["all_converged"], true, "{q}: {info}");
        let steps = steps_of(info, "steps_per_row");
        let evals = steps_of(info, "evaluations_per_row");
        assert!(steps.iter().all(|&s| s > 2), "{q}: {info}");
        if q == Quadrature::GaussLegendre {
            // Not nested: every level is evaluated afresh.
            assert!(steps.iter().zip(&evals).all(|(s, e)| e > s), "{q}: {info}");
        } else {
            // Nested rules reuse every earlier node: evaluations equal the final step count.
            assert_eq!(steps, evals, "{q}");
        }
        // Each row equals fixed-step IG at the step count it ended with.
        for (i, &s) in steps.iter().enumerate() {
            let fixed = IntegratedGradients::params().quadrature(q).n_steps(s).check().unwrap();
            let r = fixed.attribute(&model, &Inputs::new(x.narrow(0, i as i64, 1)), &Target::None).unwrap();
            let diff = max_abs(&(a.single().unwrap().narrow(0, i as i64, 1) - r.single().unwrap()));
            assert!(diff < 1e-4, "{q} row {i} ({s} steps): differs from fixed IG by {diff}");
        }
    }
}

#[test]
fn adaptive_ig_says_when_it_cannot_reach_the_tolerance() {
    let model = tanh_model(8.0);
    let x = Tensor::from_slice(&[0.9f32, -0.7, 0.3, 1.2, 0.1, -0.4]).reshape([2, 3]);
    let ig = IntegratedGradients::params()
        .quadrature(Quadrature::RiemannLeft)
        .n_steps(4)
        .tolerance(Some(1e-9))
        .max_steps(64)
        .check()
        .unwrap();
    let a = ig.attribute(&model, &Inputs::new(x), &Target::None).unwrap();
    let info = &a.meta.extra["adaptive"];
    assert_eq!(info["all_converged"], false, "{info}");
    assert_eq!(info["unconverged_rows"], serde_json::json!([0, 1]), "{info}");
    assert_eq!(info["steps_per_row"], serde_json::json!([64, 64]), "{info}");
}

#[test]
fn noise_tunnel_combines_copies() {
    let (w, c) = linear(Kind::Double);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w) + &c);
    let mut rng = Rng::new(11);
    let x = randn(&mut rng, &[3, 6], 1.0, Kind::Double);
    let inputs = Inputs::new(x.shallow_clone());
    let m = 4i64;
    let noise = randn(&mut rng, &[m * 3, 6], 0.7, Kind::Double);
    let wt = w.select(1, 2).unsqueeze(0);
    // Input x Gradient on a linear model: A(x + ε) = (x + ε) w, so the statistics are exact.
    let copies = (x.repeat([m, 1]) + &noise).reshape([m, 3, 6]) * &wt;
    let mean = copies.mean_dim(Some([0i64].as_slice()), false, Kind::Double);
    let mean_sq = copies.square().mean_dim(Some([0i64].as_slice()), false, Kind::Double);
    for (t, expected) in [
        (NoiseTunnelType::SmoothGrad, mean.shallow_clone()),
        (NoiseTunnelType::SmoothGradSq, mean_sq.shallow_clone()),
        (NoiseTunnelType::VarGrad, &mean_sq - mean.square()),
    ] {
        for per_call in [None, Some(3)] {
            let nt = NoiseTunnel::params()
                .nt_type(t)
                .nt_samples(m as usize)
                .nt_samples_batch_size(per_call)
                .check(Box::new(InputXGradient::default()))
                .unwrap();
            let a = nt.attribute_with_noise(&model, &inputs, &Target::Class(2), &[noise.shallow_clone()]).unwrap();
            assert!(max_abs(&(a.single().unwrap() - &expected)) < 1e-12, "{}", t.name());
        }
    }
    // Seeded: same seed, same result; another seed, another result.
    let run = |seed| {
        let nt = NoiseTunnel::params().seed(seed).check(Box::new(InputXGradient::default())).unwrap();
        nt.attribute(&model, &inputs, &Target::Class(0)).unwrap().values.remove(0)
    };
    assert!(max_abs(&(run(1) - run(1))) == 0.0);
    assert!(max_abs(&(run(1) - run(2))) > 1e-3);
}

#[test]
fn noise_tunnel_over_ig_with_per_row_baselines_and_zero_noise_is_ig() {
    let mut rng = Rng::new(12);
    let w1 = randn(&mut rng, &[6, 8], 1.0, Kind::Float);
    let w2 = randn(&mut rng, &[8, 3], 1.0, Kind::Float);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w1).tanh().matmul(&w2));
    let x = randn(&mut rng, &[4, 6], 1.0, Kind::Float);
    let b = randn(&mut rng, &[4, 6], 0.3, Kind::Float);
    let ig = || IntegratedGradients::params().baselines(Baseline::Tensor(b.shallow_clone())).n_steps(16).check().unwrap();
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::PerSample(vec![0, 1, 2, 0]);
    let direct = ig().attribute(&model, &inputs, &target).unwrap();
    let nt = NoiseTunnel::params().stdev(0.0).nt_samples(3).check(Box::new(ig())).unwrap();
    let smooth = nt.attribute(&model, &inputs, &target).unwrap();
    assert!(max_abs(&(direct.single().unwrap() - smooth.single().unwrap())) < 1e-5);
    let d = direct.convergence_delta.unwrap().to_kind(Kind::Double) - smooth.convergence_delta.unwrap();
    assert!(max_abs(&d) < 1e-5);
}

#[test]
fn gradient_shap_on_a_linear_model() {
    let (w, c) = linear(Kind::Double);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w) + &c);
    let mut rng = Rng::new(13);
    let x = randn(&mut rng, &[3, 6], 1.0, Kind::Double);
    let dist = randn(&mut rng, &[7, 6], 1.0, Kind::Double);
    let inputs = Inputs::new(x.shallow_clone());
    let wt = w.select(1, 1).unsqueeze(0);
    // One baseline, no noise: exactly (x - b) w, whatever α is drawn; delta 0.
    let shap = GradientShap::params().baselines(Baseline::Scalar(0.25)).n_samples(3).check().unwrap();
    let a = shap.attribute(&model, &inputs, &Target::Class(1)).unwrap();
    assert!(max_abs(&(a.single().unwrap() - (&x - 0.25) * &wt)) < 1e-12);
    assert!(max_abs(a.convergence_delta.as_ref().unwrap()) < 1e-12);
    // With injected draws: the mean over draws of (x + ε - b_j) w.
    let shap = GradientShap::params().baselines(Baseline::Distribution(dist.shallow_clone())).n_samples(2).stdev(0.5).check().unwrap();
    let draws = shap.draw(&[x.shallow_clone()], 7).unwrap();
    let a = shap.attribute_with_draws(&model, &inputs, &Target::Class(1), &draws).unwrap();
    let idx = Tensor::from_slice(&draws.baseline_index[0]);
    let per_draw = (x.repeat([2, 1]) + &draws.noise[0] - dist.index_select(0, &idx)) * &wt;
    let expected = per_draw.reshape([2, 3, 6]).mean_dim(Some([0i64].as_slice()), false, Kind::Double);
    assert!(max_abs(&(a.single().unwrap() - expected)) < 1e-12);
    assert!(max_abs(a.convergence_delta.as_ref().unwrap()) < 1e-12);
    // Seeded and deterministic through `attribute`.
    let r1 = shap.attribute(&model, &inputs, &Target::Class(1)).unwrap();
    let r2 = shap.attribute(&model, &inputs, &Target::Class(1)).unwrap();
    assert!(max_abs(&(r1.single().unwrap() - r2.single().unwrap())) == 0.0);
    // In expectation over many draws it is (x - E[b]) w.
    let many = GradientShap::params().baselines(Baseline::Distribution(dist.shallow_clone())).n_samples(4000).check().unwrap();
    let a = many.attribute(&model, &inputs, &Target::Class(1)).unwrap();
    let expected = (&x - dist.mean_dim(Some([0i64].as_slice()), true, Kind::Double)) * &wt;
    let err = max_abs(&(a.single().unwrap() - &expected));
    assert!(err < 0.1 * max_abs(&expected), "sampling error {err}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let (w, c) = linear(Kind::Float);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w) + &c);
    let x = Tensor::ones([2, 6], (Kind::Float, tch::Device::Cpu));
    let inputs = Inputs::new(x);
    let msg = |e: AttribError| e.to_string();
    assert!(msg(IntegratedGradients::params().n_steps(0).check().unwrap_err()).contains("n_steps"));
    assert!(msg("simpson".parse::<Quadrature>().unwrap_err()).contains("unknown quadrature"));
    assert!(msg(IntegratedGradients::params().tolerance(Some(0.0)).check().unwrap_err()).contains("tolerance"));
    assert!(msg(NoiseTunnel::params().stdev(-1.0).check(Box::new(Saliency::default())).unwrap_err()).contains("stdevs"));
    assert!(msg(NoiseTunnel::params().nt_samples(0).check(Box::new(Saliency::default())).unwrap_err()).contains("nt_samples"));
    assert!(msg("smooth".parse::<NoiseTunnelType>().unwrap_err()).contains("smoothgrad"));
    assert!(msg(GradientShap::params().n_samples(0).check().unwrap_err()).contains("n_samples"));
    assert!(msg(GradientShap::params().stdev(f64::NAN).check().unwrap_err()).contains("stdevs"));
    let bad = Tensor::zeros([3, 6], (Kind::Float, tch::Device::Cpu));
    let ig = IntegratedGradients::params().baselines(Baseline::Tensor(bad.shallow_clone())).check().unwrap();
    let e = ig.attribute(&model, &inputs, &Target::Class(0)).unwrap_err();
    assert!(matches!(e, AttribError::BaselineShape { .. }), "{e}");
    let shap = GradientShap::params().baselines(Baseline::Distribution(Tensor::zeros([4, 5], (Kind::Float, tch::Device::Cpu)))).check().unwrap();
    let e = shap.attribute(&model, &inputs, &Target::Class(0)).unwrap_err();
    assert!(matches!(e, AttribError::BaselineShape { .. }), "{e}");
    let nt = NoiseTunnel::params().stdevs(vec![1.0, 2.0]).check(Box::new(Saliency::default())).unwrap();
    assert!(msg(nt.attribute(&model, &inputs, &Target::Class(0)).unwrap_err()).contains("stdevs"));
    let e = IntegratedGradients::default().attribute(&model, &inputs, &Target::Class(7)).unwrap_err();
    assert!(matches!(e, AttribError::TargetOutOfRange(_)), "{e}");
}
