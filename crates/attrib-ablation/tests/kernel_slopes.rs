//! KernelSHAP with `regression = size-slopes` (`shapley/kernel_slopes.rs`): convergence to the
//! exact Shapley values as the budget grows, lower error than the linear fit on the same
//! coalitions, efficiency and seeds (proptest on random MLPs), which groups the model ignores get
//! exactly zero (only with every coalition enumerated; with samples they get values that shrink
//! with the budget), chunking.

use attrib_ablation::shapley::{Allocation, KernelRegression, StratumDraws};
use attrib_ablation::{ExactShapley, KernelShap};
use attrib_core::{Attribution, Attributions, Baseline, BatchOptions, FeatureMask, FnModel, Inputs, Target};
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

mod common;
use common::*;

/// KernelSHAP with blocks and square-root shares, fitted linearly or with size slopes.
fn kernel(mask: &Tensor, base: &Tensor, n: usize, seed: u64, regression: KernelRegression) -> KernelShap {
    KernelShap::params()
        .baselines(Baseline::Tensor(base.shallow_clone()))
        .feature_mask(FeatureMask::new(mask.shallow_clone()).unwrap())
        .n_samples(n)
        .seed(seed)
        .allocation(Allocation::SqrtMass)
        .draws(StratumDraws::Blocks)
        .regression(regression)
        .check()
        .unwrap()
}

fn exact(model: &FnModel, x: &Tensor, mask: &Tensor, base: &Tensor, target: &Target) -> Attributions {
    ExactShapley::params()
        .baselines(Baseline::Tensor(base.shallow_clone()))
        .feature_mask(FeatureMask::new(mask.shallow_clone()).unwrap())
        .check()
        .unwrap()
        .attribute(model, &Inputs::new(x.shallow_clone()), target)
        .unwrap()
}

/// Mean absolute error over `seeds` seeds against `reference` (class 1).
#[allow(clippy::too_many_arguments)]
fn error(model: &FnModel, x: &Tensor, b: &Tensor, mask: &Tensor, reference: &Tensor, n: usize, regression: KernelRegression, seeds: u64) -> f64 {
    let inputs = Inputs::new(x.shallow_clone());
    mean_error_over_seeds(seeds, reference, |seed| kernel(mask, b, n, seed, regression).attribute(model, &inputs, &Target::Class(1)).unwrap())
}

/// 12 groups of a 12-feature tanh MLP (4,096 coalitions): 4x the budget about halves the mean
/// error over 12 seeds (the Monte Carlo rate 1/√n; up to 5x where the design enumerates whole
/// sizes, a finite-population gain), and every run's values sum to F(x) − F(b).
#[test]
fn size_slopes_converge_to_the_exact_values() {
    let f = mlp(51, 12, false);
    let model = FnModel::new(&f);
    let x = tensor(52, &[4, 12]) * 2.0;
    let b = tensor(53, &[4, 12]);
    let mask = Tensor::arange(12, (Kind::Int64, Device::Cpu));
    let reference = exact(&model, &x, &mask, &b, &Target::Class(1));
    let reference = reference.single().unwrap();
    let errs: Vec<f64> =
        [40usize, 160, 640].iter().map(|&n| error(&model, &x, &b, &mask, reference, n, KernelRegression::SizeSlopes, 12)).collect();
    eprintln!("size-slopes errors at 40, 160, 640 evaluations: {errs:?}");
    for k in 0..2 {
        let ratio = errs[k] / errs[k + 1];
        assert!((1.4..=5.0).contains(&ratio), "errors {errs:?}, ratio {ratio} at step {k}");
    }
    // Consistency at the top: the error keeps falling and is small against the values.
    assert!(errs[2] < 0.05 * max_abs(reference), "{errs:?} vs {}", max_abs(reference));
}

/// On 15 groups (a ReLU MLP over 30 features, two per group: 64, 128 and 256 evaluations) and
/// on 10 (tanh: 128 and 256), the size slopes are more accurate than the linear fit on the same
/// coalitions (same seeds), 40 seeds. Measured here: 14 %, 7 %, 8 % lower on 15 groups, 6 %, 8 %
/// on 10 (at 64 evaluations on 10 groups the two are equal, 0.9997, so that budget is not
/// asserted); on the benchmark models see docs/shapley.md.
#[test]
fn size_slopes_beat_the_linear_fit_on_the_same_coalitions() {
    let cases: [(u64, i64, bool, i64, &[usize]); 2] = [(41, 30, true, 2, &[64, 128, 256]), (61, 10, false, 1, &[128, 256])];
    for (seed, features, relu, per_group, budgets) in cases {
        let f = mlp(seed, features, relu);
        let model = FnModel::new(&f);
        let x = tensor(seed + 1, &[4, features]) * 2.0;
        let b = tensor(seed + 2, &[4, features]);
        let mask = Tensor::arange(features, (Kind::Int64, Device::Cpu)).divide_scalar_mode(per_group, "floor");
        let reference = exact(&model, &x, &mask, &b, &Target::Class(1));
        let reference = reference.single().unwrap();
        for &n in budgets {
            let slopes = error(&model, &x, &b, &mask, reference, n, KernelRegression::SizeSlopes, 40);
            let linear = error(&model, &x, &b, &mask, reference, n, KernelRegression::Linear, 40);
            eprintln!("{features} features, {n} evaluations: size-slopes {slopes}, linear {linear}, ratio {}", slopes / linear);
            assert!(slopes < linear, "{features} features, {n} evaluations: size-slopes {slopes} vs linear {linear}");
        }
    }
}

/// `F_1(x_i) − F_1(b_i)` per row.
fn model_outputs(model: &FnModel, x: &Tensor, b: &Tensor) -> Vec<f64> {
    use attrib_core::Model;
    let fx = model.forward(&[x.shallow_clone()], &[]).unwrap().select(1, 1);
    let fb = model.forward(&[b.shallow_clone()], &[]).unwrap().select(1, 1);
    host(&(fx - fb))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, .. ProptestConfig::default() })]

    /// On random MLPs with random groups (3 to 7): the values sum to F(x) − F(b) to 1e-10 of the
    /// scale for every budget (float64); the size slopes run wherever the stratified design
    /// does; one seed gives one answer bit for bit. A group the model ignores gets exactly zero
    /// (1e-12 of the scale) only with every coalition enumerated (`n ≥ 2^G`, the linear solve of
    /// all coalitions, exact Shapley values); with samples the size slopes, like KernelSHAP's
    /// linear fit, guarantee no exact zero.
    #[test]
    fn efficiency_seeds_and_enumeration(seed in 0u64..1_000_000, g in 3usize..8, relu in any::<bool>(), ignored in 0usize..8) {
        let ignored = ignored % g;
        let f = 9i64;
        let mask: Vec<i64> = (0..f).map(|e| ((e as u64 * 7 + seed) % g as u64) as i64).collect();
        prop_assume!((0..g as i64).all(|j| mask.contains(&j)));
        let net = mlp(seed, f, relu);
        let keep: Vec<f64> = mask.iter().map(|&m| if m as usize == ignored { 0.0 } else { 1.0 }).collect();
        let keep = Tensor::from_slice(&keep);
        let model = FnModel::new(move |x: &Tensor| net(&(x * &keep)));
        let x = tensor(seed + 100, &[4, f]) * 2.0;
        let b = tensor(seed + 200, &[4, f]);
        let mt = Tensor::from_slice(&mask);
        let inputs = Inputs::new(x.shallow_clone());
        let out = model_outputs(&model, &x, &b);
        let reference = exact(&model, &x, &mt, &b, &Target::Class(1));
        let scale = 1.0 + max_abs(reference.single().unwrap());
        for n in [2 * g + 2, 3 * g + 1, (1 << g) - 1, 1 << g] {
            let run = || kernel(&mt, &b, n, seed, KernelRegression::SizeSlopes).attribute(&model, &inputs, &Target::Class(1)).unwrap();
            let a = run();
            let again = run();
            prop_assert!(a.single().unwrap().equal(again.single().unwrap()), "n={}: a seed repeats", n);
            let expected = if n >= 1 << g || n - 2 < 2 * g { "linear" } else { "size-slopes" };
            prop_assert_eq!(a.meta.extra["regression"].as_str(), Some(expected));
            let v = host(a.single().unwrap());
            for (i, row) in v.chunks(f as usize).enumerate() {
                // Every element of a group carries the group's value: sum over one element each.
                let total: f64 = (0..g as i64).map(|j| row[mask.iter().position(|&m| m == j).unwrap()]).sum();
                prop_assert!((total - out[i]).abs() < 1e-10 * scale, "n={} row {}: sum {} vs {}", n, i, total, out[i]);
            }
            if n == 1 << g {
                let err = max_abs(&(a.single().unwrap() - reference.single().unwrap()));
                prop_assert!(err < 1e-9 * scale, "enumerated vs exact: {}", err);
                let at = mask.iter().position(|&m| m as usize == ignored).unwrap();
                prop_assert!(v.chunks(f as usize).all(|r| r[at].abs() < 1e-12 * scale), "ignored group {}", ignored);
            }
        }
    }
}

/// A group the model ignores: with samples its size-slopes value is not exactly zero, but it
/// shrinks towards zero as the budget grows (mean |value| over 12 seeds, 10 groups).
#[test]
fn an_ignored_group_tends_to_zero() {
    let net = mlp(71, 10, false);
    let keep = Tensor::from_slice(&[1.0f64, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    let model = FnModel::new(move |x: &Tensor| net(&(x * &keep)));
    let x = tensor(72, &[4, 10]) * 2.0;
    let b = tensor(73, &[4, 10]);
    let mask = Tensor::arange(10, (Kind::Int64, Device::Cpu));
    let reference = exact(&model, &x, &mask, &b, &Target::Class(1));
    assert!(max_abs(&reference.single().unwrap().select(1, 3)) < 1e-12, "the exact value of an ignored group is 0");
    let inputs = Inputs::new(x.shallow_clone());
    let ignored = |n: usize| -> f64 {
        (0..12u64)
            .map(|seed| {
                let a = kernel(&mask, &b, n, seed, KernelRegression::SizeSlopes).attribute(&model, &inputs, &Target::Class(1)).unwrap();
                a.single().unwrap().select(1, 3).abs().mean(Kind::Double).double_value(&[])
            })
            .sum::<f64>()
            / 12.0
    };
    let (small, large) = (ignored(40), ignored(400));
    eprintln!("mean |value| of the ignored group: 40 evaluations {small}, 400 evaluations {large}");
    assert!(small > 0.0 && large < 0.5 * small, "40: {small}, 400: {large}");
}

#[test]
fn results_do_not_depend_on_the_chunking_and_seeds_differ() {
    let f = mlp(81, 8, true);
    let model = FnModel::new(&f);
    let x = tensor(82, &[5, 8]);
    let b = Tensor::zeros([5, 8], (Kind::Double, Device::Cpu));
    let mask = Tensor::arange(8, (Kind::Int64, Device::Cpu));
    let inputs = Inputs::new(x.shallow_clone());
    let run = |seed: u64, max_batch: Option<usize>| {
        let p = KernelShap::params()
            .baselines(Baseline::Tensor(b.shallow_clone()))
            .feature_mask(FeatureMask::new(mask.shallow_clone()).unwrap())
            .n_samples(60)
            .seed(seed)
            .regression(KernelRegression::SizeSlopes)
            .batch(BatchOptions { max_batch, ..BatchOptions::default() });
        p.check().unwrap().attribute(&model, &inputs, &Target::Class(0)).unwrap()
    };
    let base = run(4, None);
    assert_eq!(base.meta.extra["regression"].as_str(), Some("size-slopes"));
    assert_eq!(base.meta.params["regression"].as_str(), Some("size-slopes"));
    for max_batch in [Some(1), Some(7)] {
        assert!(max_abs(&(run(4, max_batch).single().unwrap() - base.single().unwrap())) < 1e-12, "{max_batch:?}");
    }
    assert!(max_abs(&(run(5, None).single().unwrap() - base.single().unwrap())) > 1e-6);
}
