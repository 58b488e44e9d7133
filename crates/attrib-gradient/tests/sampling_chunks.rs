//! The sampling methods draw their noise row by row inside the chunk loop: results are
//! deterministic for a seed, do not depend on `max_batch`, on NoiseTunnel's grouping of copies
//! or on its memory budget, and equal the same method run on the drawn noise. Per-row baselines
//! broadcast by NumPy's rules, and are tiled over copies only where NoiseTunnel stacks them.

use attrib_core::{AttribError, Attribution, Baseline, BatchOptions, FnModel, Inputs, Target};
use attrib_gradient::rng::Rng;
use attrib_gradient::*;
use std::cell::RefCell;
use tch::{Device, Kind, Tensor};

fn randn(rng: &mut Rng, shape: &[i64], scale: f64, kind: Kind) -> Tensor {
    rng.normal_tensor(shape, scale, kind, Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

/// A small tanh MLP in float64 with 3 classes.
fn mlp(seed: u64) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    (randn(&mut rng, &[5, 7], 0.8, Kind::Double), randn(&mut rng, &[7, 3], 0.8, Kind::Double))
}

#[test]
fn gradient_shap_does_not_depend_on_the_chunk_size() {
    let (w1, w2) = mlp(1);
    let sizes = RefCell::new(Vec::new());
    let model = FnModel::new(|x: &Tensor| {
        sizes.borrow_mut().push(x.size()[0]);
        x.matmul(&w1).tanh().matmul(&w2)
    });
    let mut rng = Rng::new(2);
    let x = randn(&mut rng, &[4, 5], 1.0, Kind::Double);
    let dist = randn(&mut rng, &[6, 5], 1.0, Kind::Double);
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::PerSample(vec![0, 1, 2, 1]);
    let shap = |batch: BatchOptions| {
        GradientShap::params()
            .baselines(Baseline::Distribution(dist.shallow_clone()))
            .n_samples(9)
            .stdev(0.3)
            .seed(5)
            .batch(batch)
            .check()
            .unwrap()
    };
    let whole = shap(BatchOptions::with_max_batch(usize::MAX)).attribute(&model, &inputs, &target).unwrap();
    for max_batch in [1usize, 5, 7, 13] {
        sizes.borrow_mut().clear();
        let a = shap(BatchOptions::with_max_batch(max_batch)).attribute(&model, &inputs, &target).unwrap();
        assert!(sizes.borrow().iter().all(|&r| r as usize <= max_batch), "{:?}", sizes.borrow());
        let d = max_abs(&(a.single().unwrap() - whole.single().unwrap()));
        assert!(d < 1e-12, "max_batch {max_batch}: {d}");
        let dd = max_abs(&(a.convergence_delta.as_ref().unwrap() - whole.convergence_delta.as_ref().unwrap()));
        assert!(dd < 1e-12, "max_batch {max_batch}: delta {dd}");
    }
    // The same as the method run on the draws it makes.
    let s = shap(BatchOptions::with_max_batch(5));
    let draws = s.draw(&[x.shallow_clone()], 6).unwrap();
    assert!(max_abs(&draws.noise[0]) > 0.0);
    let given = s.attribute_with_draws(&model, &inputs, &target, &draws).unwrap();
    assert!(max_abs(&(given.single().unwrap() - whole.single().unwrap())) < 1e-12);
    // Another seed, other draws.
    let other = GradientShap::params()
        .baselines(Baseline::Distribution(dist.shallow_clone()))
        .n_samples(9)
        .stdev(0.3)
        .seed(6)
        .check()
        .unwrap()
        .attribute(&model, &inputs, &target)
        .unwrap();
    assert!(max_abs(&(other.single().unwrap() - whole.single().unwrap())) > 1e-6);
}

#[test]
fn noise_tunnel_does_not_depend_on_grouping_or_chunking() {
    let (w1, w2) = mlp(3);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w1).tanh().matmul(&w2));
    let mut rng = Rng::new(4);
    let x = randn(&mut rng, &[3, 5], 1.0, Kind::Double);
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::Class(1);
    let nt = |t: NoiseTunnelType, per_call: Option<usize>, budget: Option<u64>, max_batch: usize| {
        let ig = IntegratedGradients::params().n_steps(8).batch(BatchOptions::with_max_batch(max_batch)).check().unwrap();
        NoiseTunnel::params()
            .nt_type(t)
            .nt_samples(6)
            .stdev(0.4)
            .seed(9)
            .nt_samples_batch_size(per_call)
            .memory_budget(budget)
            .check(Box::new(ig))
            .unwrap()
    };
    for t in NoiseTunnelType::ALL {
        let reference = nt(t, None, None, 1000);
        let whole = reference.attribute(&model, &inputs, &target).unwrap();
        assert_eq!(whole.meta.extra["copies_per_call"], 6);
        // The noise `attribute` draws, given back: the same result.
        let noise = reference.draw_noise(&[x.shallow_clone()]).unwrap();
        assert_eq!(noise[0].size(), vec![18, 5]);
        let given = reference.attribute_with_noise(&model, &inputs, &target, &noise).unwrap();
        assert!(max_abs(&(given.single().unwrap() - whole.single().unwrap())) == 0.0, "{}", t.name());
        // One copy per call (by the parameter, or by a budget that holds one copy), copies in
        // groups of four, the wrapped method in chunks of 5 rows: the same result.
        for (per_call, budget, max_batch, calls) in
            [(Some(1), None, 1000, 1), (None, Some(8 * 3 * 5 * 8), 1000, 1), (Some(4), None, 5, 4), (None, None, 7, 6)]
        {
            let a = nt(t, per_call, budget, max_batch).attribute(&model, &inputs, &target).unwrap();
            assert_eq!(a.meta.extra["copies_per_call"], calls);
            let d = max_abs(&(a.single().unwrap() - whole.single().unwrap()));
            assert!(d < 1e-12, "{}: {per_call:?} copies per call, budget {budget:?}, max_batch {max_batch}: {d}", t.name());
        }
    }
}

/// A per-row baseline `[N, ...]` broadcasts by NumPy's rules: it fits inputs of `N` rows, and is
/// an error (not silently repeated) for inputs of another number of rows; under NoiseTunnel,
/// which stacks copies on purpose, it follows each copy's rows.
#[test]
fn per_row_baselines_broadcast_as_numpy_and_are_tiled_only_for_stacked_copies() {
    let (w1, w2) = mlp(5);
    let model = FnModel::new(|x: &Tensor| x.matmul(&w1).tanh().matmul(&w2));
    let mut rng = Rng::new(6);
    let x = randn(&mut rng, &[4, 5], 1.0, Kind::Double);
    let b2 = randn(&mut rng, &[2, 5], 0.3, Kind::Double);
    let ig = |b: &Tensor| IntegratedGradients::params().baselines(Baseline::Tensor(b.shallow_clone())).n_steps(6).check().unwrap();
    // [2, 5] for 4 rows: not NumPy-broadcastable (it used to be repeated block-wise).
    let err = ig(&b2).attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap_err();
    assert!(matches!(err, AttribError::BaselineShape { .. }), "{err}");
    // The same rows declared as two stacked copies of two samples: tiled.
    let stacked = ig(&b2).attribute(&model, &Inputs::new(x.shallow_clone()).stacked_copies(2), &Target::Class(0)).unwrap();
    let tiled = ig(&b2.repeat([2, 1])).attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap();
    assert!(max_abs(&(stacked.single().unwrap() - tiled.single().unwrap())) == 0.0);
    // A row count that is not a whole number of copies is an input error.
    let err = ig(&b2).attribute(&model, &Inputs::new(x.shallow_clone()).stacked_copies(3), &Target::Class(0)).unwrap_err();
    assert!(matches!(err, AttribError::InputShape(_)), "{err}");
    // NoiseTunnel with zero noise over IG with a per-row baseline of the 4 rows: IG itself.
    let b4 = randn(&mut rng, &[4, 5], 0.3, Kind::Double);
    let direct = ig(&b4).attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(2)).unwrap();
    let nt = NoiseTunnel::params().stdev(0.0).nt_samples(3).check(Box::new(ig(&b4))).unwrap();
    let smooth = nt.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(2)).unwrap();
    assert!(max_abs(&(direct.single().unwrap() - smooth.single().unwrap())) < 1e-12);
    // A NoiseTunnel inside another: the baseline follows 2 · 3 stacked copies.
    let inner = NoiseTunnel::params().stdev(0.0).nt_samples(3).check(Box::new(ig(&b4))).unwrap();
    let outer = NoiseTunnel::params().stdev(0.0).nt_samples(2).check(Box::new(inner)).unwrap();
    let nested = outer.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(2)).unwrap();
    assert!(max_abs(&(direct.single().unwrap() - nested.single().unwrap())) < 1e-12);
}
