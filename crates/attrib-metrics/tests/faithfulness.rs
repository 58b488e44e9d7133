//! Faithfulness correlation: closed forms on linear models, invariances, errors.

use attrib_core::{Baseline, BatchOptions, FnModel, Inputs, Target};
use attrib_metrics::{faithfulness_correlation, FaithfulnessParams};
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

/// f(x) = x · w on 12 features, one scalar per row; 4 rows.
fn linear() -> (FnModel<'static>, Tensor, Tensor) {
    let w = Tensor::from_slice(&[3.0f64, -1.0, 2.0, 0.5, -2.0, 1.0, 0.25, 4.0, -0.5, 1.5, -3.0, 2.5]);
    let wm = w.shallow_clone();
    let model = FnModel::new(move |x: &Tensor| x.matmul(&wm));
    tch::manual_seed(1);
    let x = Tensor::rand([4, 12], (Kind::Double, Device::Cpu)) + 0.5;
    (model, w, x)
}

fn params(k: usize) -> FaithfulnessParams {
    FaithfulnessParams { n_subsets: 30, subset_size: Some(k), ..Default::default() }
}

#[test]
fn exact_attributions_of_a_linear_model_correlate_perfectly() {
    let (model, w, x) = linear();
    let inputs = Inputs::new(x.shallow_clone());
    // Zero baseline: the drop of a subset is the sum of w x over it, its attribution mass.
    let exact = &x * &w;
    for k in [1, 3, 6] {
        let v = faithfulness_correlation(&model, &inputs, &Target::None, &[exact.shallow_clone()], &params(k)).unwrap();
        assert!(v.iter().all(|c| (c.unwrap() - 1.0).abs() < 1e-9), "k = {k}: {v:?}");
        // The opposite attribution: -1.
        let v = faithfulness_correlation(&model, &inputs, &Target::None, &[-&exact], &params(k)).unwrap();
        assert!(v.iter().all(|c| (c.unwrap() + 1.0).abs() < 1e-9), "k = {k}: {v:?}");
    }
    // A scalar baseline b: the exact attribution is w (x - b).
    let p = FaithfulnessParams { baselines: Baseline::Scalar(0.25).into(), ..params(4) };
    let v = faithfulness_correlation(&model, &inputs, &Target::None, &[(&x - 0.25) * &w], &p).unwrap();
    assert!(v.iter().all(|c| (c.unwrap() - 1.0).abs() < 1e-9), "{v:?}");
    // Without the input factor the masses do not follow the drops: below 1.
    let v = faithfulness_correlation(&model, &inputs, &Target::None, &[w.expand([4, 12], false)], &p).unwrap();
    assert!(v.iter().all(|c| c.unwrap() < 0.999), "{v:?}");
    // A constant attribution with every subset the same size: constant masses, undefined.
    let v = faithfulness_correlation(&model, &inputs, &Target::None, &[x.ones_like()], &params(3)).unwrap();
    assert!(v.iter().all(Option::is_none), "{v:?}");
}

#[test]
fn chunking_does_not_matter_and_the_seed_does() {
    let (model, _, x) = linear();
    let inputs = Inputs::new(x.shallow_clone());
    tch::manual_seed(5);
    let attr = Tensor::randn([4, 12], (Kind::Double, Device::Cpu));
    let whole = faithfulness_correlation(&model, &inputs, &Target::None, &[attr.shallow_clone()], &params(3)).unwrap();
    let chunked = FaithfulnessParams { batch: BatchOptions { max_batch: Some(7), ..Default::default() }, ..params(3) };
    let parts = faithfulness_correlation(&model, &inputs, &Target::None, &[attr.shallow_clone()], &chunked).unwrap();
    for (a, b) in whole.iter().zip(&parts) {
        assert!((a.unwrap() - b.unwrap()).abs() < 1e-12, "{whole:?} vs {parts:?}");
    }
    let other = faithfulness_correlation(&model, &inputs, &Target::None, &[attr], &FaithfulnessParams { seed: 1, ..params(3) }).unwrap();
    assert_ne!(whole, other);
}

#[test]
fn several_inputs_and_class_targets() {
    // Two inputs, two classes: logit 1 = a · u + b · v, logit 0 = 0; the target is class 1.
    let u = Tensor::from_slice(&[1.0f64, -2.0, 0.5]);
    let v = Tensor::from_slice(&[2.0f64, 1.0]);
    let (um, vm) = (u.shallow_clone(), v.shallow_clone());
    let model = FnModel::multi(move |xs: &[Tensor]| {
        let z = xs[0].matmul(&um) + xs[1].matmul(&vm);
        Tensor::stack(&[z.zeros_like(), z], 1)
    });
    let a = Tensor::rand([3, 3], (Kind::Double, Device::Cpu));
    let b = Tensor::rand([3, 2], (Kind::Double, Device::Cpu));
    let inputs = Inputs::multi(vec![a.shallow_clone(), b.shallow_clone()]);
    let attrs = [&a * &u, &b * &v];
    let r = faithfulness_correlation(&model, &inputs, &Target::Class(1), &attrs, &params(2)).unwrap();
    assert!(r.iter().all(|c| (c.unwrap() - 1.0).abs() < 1e-9), "{r:?}");
}

#[test]
fn bad_requests_are_errors() {
    let (model, _, x) = linear();
    let inputs = Inputs::new(x.shallow_clone());
    let a = x.ones_like();
    let e = faithfulness_correlation(&model, &inputs, &Target::None, &[a.shallow_clone()], &FaithfulnessParams { n_subsets: 1, ..params(2) }).unwrap_err();
    assert!(e.to_string().contains("at least 2"), "{e}");
    for k in [0, 13] {
        let e = faithfulness_correlation(&model, &inputs, &Target::None, &[a.shallow_clone()], &params(k)).unwrap_err();
        assert!(e.to_string().contains("between 1 and the number of features (12)"), "{e}");
    }
    let e = faithfulness_correlation(&model, &inputs, &Target::None, &[a.narrow(1, 0, 5)], &params(2)).unwrap_err();
    assert!(e.to_string().contains("must match"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// On a random tanh network: every value is a correlation (in [-1, 1]) or undefined, and
    /// scaling the attribution by a positive constant changes nothing.
    #[test]
    fn values_are_correlations_and_scale_free(seed in 0i64..1000, scale in 0.1f64..10.0, k in 1usize..6) {
        tch::manual_seed(seed);
        let w1 = Tensor::randn([6, 5], (Kind::Double, Device::Cpu));
        let w2 = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        let model = FnModel::new(move |x: &Tensor| x.matmul(&w1).tanh().matmul(&w2));
        let x = Tensor::randn([3, 6], (Kind::Double, Device::Cpu));
        let a = Tensor::randn([3, 6], (Kind::Double, Device::Cpu));
        let inputs = Inputs::new(x);
        let p = FaithfulnessParams { n_subsets: 20, subset_size: Some(k), seed: seed as u64, ..Default::default() };
        let v = faithfulness_correlation(&model, &inputs, &Target::Class(2), &[a.shallow_clone()], &p).unwrap();
        let s = faithfulness_correlation(&model, &inputs, &Target::Class(2), &[&a * scale], &p).unwrap();
        for (x, y) in v.iter().zip(&s) {
            if let Some(c) = x {
                prop_assert!((-1.0..=1.0).contains(c));
                prop_assert!((c - y.unwrap()).abs() < 1e-9);
            }
        }
    }
}
