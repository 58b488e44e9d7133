//! Exact Shapley values and Shapley value sampling: closed forms (linear models, an interaction
//! term), a brute-force reference that averages marginal contributions over every permutation
//! with coalition inputs built element by element here, the axioms on random networks
//! (proptest), convergence of the sampling estimators, chunking and errors.

use attrib_ablation::shapley::{draw_permutations, MAX_EXACT_GROUPS};
use attrib_ablation::{ExactShapley, Sampler, ShapleyValueSampling};
use attrib_core::{Attribution, Attributions, Baseline, BatchOptions, FeatureMask, FnModel, Inputs, Target};
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

mod common;
use common::*;

fn exact(mask: Option<&Tensor>, base: &Tensor) -> ExactShapley {
    let mut p = ExactShapley::params().baselines(Baseline::Tensor(base.shallow_clone()));
    if let Some(m) = mask {
        p = p.feature_mask(FeatureMask::new(m.shallow_clone()).unwrap());
    }
    p.check().unwrap()
}

fn sampling(mask: Option<&Tensor>, base: &Tensor, sampler: Sampler, n: usize, seed: u64) -> ShapleyValueSampling {
    let mut p = ShapleyValueSampling::params().baselines(Baseline::Tensor(base.shallow_clone())).sampler(sampler).n_samples(n).seed(seed);
    if let Some(m) = mask {
        p = p.feature_mask(FeatureMask::new(m.shallow_clone()).unwrap());
    }
    p.check().unwrap()
}

/// Per-group values `[n, G]` of element attributions `[n, F]` under a shared flat mask of
/// consecutive ids `0..G` (the value of the first element of each group).
fn per_group(attr: &Tensor, mask: &[i64], g: usize) -> Vec<Vec<f64>> {
    let a = host(attr);
    let f = mask.len();
    let n = a.len() / f;
    (0..n).map(|i| (0..g as i64).map(|j| a[i * f + mask.iter().position(|&m| m == j).unwrap()]).collect()).collect()
}

#[test]
fn linear_model_gives_w_times_x_minus_b_per_group() {
    // F(x) = x · W[:, t] over [N, 2, 3, 4] inputs, 2x2 patches shared by the channels (6 groups).
    let (n, c, h, wd) = (3i64, 2i64, 3i64, 4i64);
    let x = tensor(1, &[n, c, h, wd]);
    let b = tensor(2, &[1, c, h, wd]);
    let w = tensor(3, &[c * h * wd, 3]);
    let targets = vec![2i64, 0, 1];
    let w2 = w.shallow_clone();
    let model = FnModel::new(move |x: &Tensor| x.flatten(1, -1).matmul(&w2));
    let grid = FeatureMask::grid(h, wd, 2, 2).unwrap();
    let gids = host(&grid.ids().to_kind(Kind::Double)).into_iter().map(|v| v as i64).collect::<Vec<_>>();
    let (xv, bv, wv) = (host(&x), host(&b), host(&w));
    let m = (c * h * wd) as usize;
    // Expected: element e of row i gets Σ_{e' in group(e)} w[e', t_i] (x[i, e'] − b[e']).
    let group_of = |e: usize| gids[e % (h * wd) as usize];
    let mut expect = vec![0.0; n as usize * m];
    for i in 0..n as usize {
        for e in 0..m {
            expect[i * m + e] = (0..m)
                .filter(|&e2| group_of(e2) == group_of(e))
                .map(|e2| wv[e2 * 3 + targets[i] as usize] * (xv[i * m + e2] - bv[e2]))
                .sum();
        }
    }
    let target = Target::PerSample(targets.clone());
    let methods: Vec<Box<dyn Attribution>> = vec![
        Box::new(ExactShapley::params().baselines(Baseline::Tensor(b.shallow_clone())).feature_mask(FeatureMask::grid(h, wd, 2, 2).unwrap()).check().unwrap()),
        Box::new(
            ShapleyValueSampling::params()
                .baselines(Baseline::Tensor(b.shallow_clone()))
                .feature_mask(grid)
                .n_samples(3)
                .sampler(Sampler::Random)
                .check()
                .unwrap(),
        ),
    ];
    for method in methods {
        let a = method.attribute(&model, &Inputs::new(x.shallow_clone()), &target).unwrap();
        let got = host(a.single().unwrap());
        for (k, (g, e)) in got.iter().zip(&expect).enumerate() {
            assert!((g - e).abs() < 1e-12, "{}: element {k}: {g} vs {e}", method.info().name);
        }
        assert!(max_abs(a.convergence_delta.as_ref().unwrap()) < 1e-12);
    }
}

#[test]
fn an_interaction_is_split_evenly() {
    // F(x) = 2 x0 + 3 x0 x1 − x2 x3 x4: the product's gain is shared evenly by its factors.
    let x = tensor(4, &[2, 5]);
    let b = tensor(5, &[2, 5]);
    let model = FnModel::new(|x: &Tensor| {
        let c = |j: i64| x.select(1, j);
        c(0) * 2.0 + c(0) * c(1) * 3.0 - c(2) * c(3) * c(4)
    });
    let (xv, bv) = (host(&x), host(&b));
    let a = exact(None, &b).attribute(&model, &Inputs::new(x.shallow_clone()), &Target::None).unwrap();
    let got = host(a.single().unwrap());
    for i in 0..2 {
        let (x, b) = (&xv[i * 5..i * 5 + 5], &bv[i * 5..i * 5 + 5]);
        // Two-factor term: each factor gets ½ (x_j − b_j)(x_k + b_k) · coefficient.
        let phi0 = 2.0 * (x[0] - b[0]) + 3.0 * 0.5 * (x[0] - b[0]) * (x[1] + b[1]);
        let phi1 = 3.0 * 0.5 * (x[1] - b[1]) * (x[0] + b[0]);
        // Three factors: φ_j = (x_j − b_j)/6 · (2 x_k x_l + x_k b_l + b_k x_l + 2 b_k b_l) for the other two k, l.
        let three = |j: usize, k: usize, l: usize| -(x[j] - b[j]) / 6.0 * (2.0 * x[k] * x[l] + x[k] * b[l] + b[k] * x[l] + 2.0 * b[k] * b[l]);
        let expect = [phi0, phi1, three(2, 3, 4), three(3, 2, 4), three(4, 2, 3)];
        for j in 0..5 {
            assert!((got[i * 5 + j] - expect[j]).abs() < 1e-12, "row {i} feature {j}: {} vs {}", got[i * 5 + j], expect[j]);
        }
    }
}

/// Shapley values by brute force: the mean marginal contribution over every permutation, the
/// coalition inputs built element by element here (independently of the library's engine).
fn brute_force(f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor, b: &Tensor, mask: &[i64], g: usize) -> Vec<Vec<f64>> {
    let (xv, bv) = (host(x), host(b));
    let m = mask.len();
    let n = xv.len() / m;
    let value = |i: usize, set: &[bool]| -> f64 {
        let row: Vec<f64> = (0..m).map(|e| if set[mask[e] as usize] { xv[i * m + e] } else { bv[i * m + e] }).collect();
        f(&Tensor::from_slice(&row).reshape([1, m as i64])).double_value(&[0])
    };
    let mut perms = vec![vec![]];
    for k in 0..g {
        perms = perms.into_iter().flat_map(|p: Vec<usize>| (0..=k).map(move |at| {
            let mut q = p.clone();
            q.insert(at, k);
            q
        })).collect();
    }
    (0..n)
        .map(|i| {
            let mut phi = vec![0.0; g];
            for p in &perms {
                let mut set = vec![false; g];
                let mut prev = value(i, &set);
                for &j in p {
                    set[j] = true;
                    let now = value(i, &set);
                    phi[j] += now - prev;
                    prev = now;
                }
            }
            phi.iter().map(|v| v / perms.len() as f64).collect()
        })
        .collect()
}

#[test]
fn exact_values_and_all_permutations_equal_the_brute_force_average() {
    let f = mlp(11, 7, false);
    let x = tensor(12, &[3, 7]);
    let b = tensor(13, &[3, 7]);
    let mask = [0i64, 1, 1, 2, 3, 3, 0];
    let mt = Tensor::from_slice(&mask);
    let reference = brute_force(&|t: &Tensor| f(t).select(1, 1), &x, &b, &mask, 4);
    let model = FnModel::new(&f);
    let inputs = Inputs::new(x.shallow_clone());
    let a = exact(Some(&mt), &b).attribute(&model, &inputs, &Target::Class(1)).unwrap();
    // Sampling over all 24 permutations (given) is the same average.
    let all: Vec<Vec<i64>> = {
        let mut perms = vec![vec![]];
        for k in 0..4i64 {
            perms = perms.into_iter().flat_map(|p: Vec<i64>| (0..=p.len()).map(move |at| {
                let mut q = p.clone();
                q.insert(at, k);
                q
            })).collect();
        }
        perms
    };
    let s = ShapleyValueSampling::params()
        .baselines(Baseline::Tensor(b.shallow_clone()))
        .feature_mask(FeatureMask::new(mt.shallow_clone()).unwrap())
        .permutations(all)
        .check()
        .unwrap()
        .attribute(&model, &inputs, &Target::Class(1))
        .unwrap();
    for got in [&a, &s] {
        let pg = per_group(got.single().unwrap(), &mask, 4);
        for (i, (r, e)) in pg.iter().zip(&reference).enumerate() {
            for j in 0..4 {
                assert!((r[j] - e[j]).abs() < 1e-12, "{}: row {i} group {j}: {} vs {}", got.meta.method, r[j], e[j]);
            }
        }
    }
    // 16 coalitions per row; the 24 walks visit each of them (deduplicated).
    assert_eq!(a.meta.extra["model_rows"], 48);
    assert_eq!(s.meta.extra["coalitions"], 16);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, .. ProptestConfig::default() })]

    /// On random MLPs with random groups: exact values are efficient to 1e-10 (float64), a group
    /// the model ignores gets exactly zero (exact and sampling), and sampling is efficient for
    /// any permutations, even one.
    #[test]
    fn axioms_on_random_networks(seed in 0u64..1_000_000, g in 2usize..8, relu in any::<bool>(), ignored in 0usize..8) {
        let ignored = ignored % g;
        let f = 7i64;
        let mask: Vec<i64> = (0..f).map(|e| ((e as u64 * 7 + seed) % g as u64) as i64).collect();
        prop_assume!((0..g as i64).all(|j| mask.contains(&j)));
        let net = mlp(seed, f, relu);
        // The model ignores the elements of group `ignored` (multiplied by exactly 0).
        let keep: Vec<f64> = mask.iter().map(|&m| if m as usize == ignored { 0.0 } else { 1.0 }).collect();
        let keep = Tensor::from_slice(&keep);
        let model = FnModel::new(move |x: &Tensor| net(&(x * &keep)));
        let x = tensor(seed + 100, &[4, f]) * 2.0;
        let b = tensor(seed + 200, &[4, f]);
        let mt = Tensor::from_slice(&mask);
        let inputs = Inputs::new(x.shallow_clone());
        let a = exact(Some(&mt), &b).attribute(&model, &inputs, &Target::Class(0)).unwrap();
        let scale = 1.0 + max_abs(a.single().unwrap());
        prop_assert!(max_abs(a.convergence_delta.as_ref().unwrap()) < 1e-10 * scale);
        let zero_at = |at: &Attributions| per_group(at.single().unwrap(), &mask, g).iter().all(|r| r[ignored] == 0.0);
        prop_assert!(zero_at(&a), "exact: ignored group {} not zero", ignored);
        for sampler in [Sampler::Random, Sampler::Antithetic, Sampler::Stratified] {
            for n in [1usize, 5] {
                let s = sampling(Some(&mt), &b, sampler, n, seed).attribute(&model, &inputs, &Target::Class(0)).unwrap();
                prop_assert!(max_abs(s.convergence_delta.as_ref().unwrap()) < 1e-10 * scale, "{:?} n={}", sampler, n);
                prop_assert!(zero_at(&s), "{:?}: ignored group {} not zero", sampler, ignored);
            }
        }
    }
}

/// Mean absolute error against the exact values over `seeds` seeds.
fn sampling_error(model: &FnModel, x: &Tensor, b: &Tensor, mask: &Tensor, exact_attr: &Tensor, sampler: Sampler, n: usize, seeds: u64) -> f64 {
    let inputs = Inputs::new(x.shallow_clone());
    mean_error_over_seeds(seeds, exact_attr, |seed| sampling(Some(mask), b, sampler, n, seed).attribute(model, &inputs, &Target::Class(1)).unwrap())
}

#[test]
fn sampling_converges_to_the_exact_values_at_the_monte_carlo_rate() {
    // 10 groups of a 10-feature tanh MLP.
    let f = mlp(21, 10, false);
    let model = FnModel::new(&f);
    let x = tensor(22, &[4, 10]) * 2.0;
    let b = tensor(23, &[4, 10]);
    let mask = Tensor::arange(10, (Kind::Int64, Device::Cpu));
    let reference = exact(Some(&mask), &b).attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
    let reference = reference.single().unwrap();
    let seeds = 12;
    for sampler in [Sampler::Random, Sampler::Antithetic, Sampler::Stratified] {
        let errs: Vec<f64> = [4usize, 16, 64].iter().map(|&n| sampling_error(&model, &x, &b, &mask, reference, sampler, n, seeds)).collect();
        // 4x the permutations: about half the error (1/√4), for each step.
        for k in 0..2 {
            let ratio = errs[k] / errs[k + 1];
            assert!((1.4..=3.2).contains(&ratio), "{sampler:?}: errors {errs:?}, ratio {ratio} at step {k}");
        }
    }
    // Variance reduction: antithetic and stratified are no worse than independent permutations.
    let plain = sampling_error(&model, &x, &b, &mask, reference, Sampler::Random, 20, 24);
    let anti = sampling_error(&model, &x, &b, &mask, reference, Sampler::Antithetic, 20, 24);
    let strat = sampling_error(&model, &x, &b, &mask, reference, Sampler::Stratified, 20, 24);
    assert!(anti <= plain, "antithetic {anti} vs random {plain}");
    assert!(strat <= plain, "stratified {strat} vs random {plain}");
}

#[test]
fn results_do_not_depend_on_the_chunking_and_seeds_repeat() {
    let f = mlp(31, 6, true);
    let model = FnModel::new(&f);
    let x = tensor(32, &[5, 6]);
    let b = tensor(33, &[5, 6]);
    let mask = Tensor::from_slice(&[0i64, 0, 1, 2, 3, 4]);
    let inputs = Inputs::new(x.shallow_clone());
    let run = |m: &dyn Attribution| m.attribute(&model, &inputs, &Target::Class(0)).unwrap();
    let chunked = |max_batch: usize| BatchOptions::with_max_batch(max_batch);
    let ex = |batch| ExactShapley::params().baselines(Baseline::Tensor(b.shallow_clone())).feature_mask(FeatureMask::new(mask.shallow_clone()).unwrap()).batch(batch).check().unwrap();
    let sa = |batch| {
        ShapleyValueSampling::params().baselines(Baseline::Tensor(b.shallow_clone())).feature_mask(FeatureMask::new(mask.shallow_clone()).unwrap()).seed(9).batch(batch).check().unwrap()
    };
    let (e0, s0) = (run(&ex(BatchOptions::default())), run(&sa(BatchOptions::default())));
    for mb in [1usize, 7, 64] {
        assert!(max_abs(&(run(&ex(chunked(mb))).single().unwrap() - e0.single().unwrap())) < 1e-12);
        assert!(max_abs(&(run(&sa(chunked(mb))).single().unwrap() - s0.single().unwrap())) < 1e-12);
    }
    // The same seed draws the same permutations; another seed others.
    assert!(run(&sa(BatchOptions::default())).single().unwrap().equal(s0.single().unwrap()));
    assert_eq!(draw_permutations(Sampler::Antithetic, 9, 25, 5), draw_permutations(Sampler::Antithetic, 9, 25, 5));
    assert_ne!(draw_permutations(Sampler::Antithetic, 9, 25, 5), draw_permutations(Sampler::Antithetic, 10, 25, 5));
}

#[test]
fn masks_per_row_across_inputs_and_a_background_distribution() {
    // Two inputs sharing group 1; F = Σ a · w_a + Σ b · w_b (+ a product, so that groups interact).
    let a = tensor(41, &[2, 3]);
    let bb = tensor(42, &[2, 2]);
    let model = FnModel::multi(|xs: &[Tensor]| {
        xs[0].sum_dim_intlist(1, false, Kind::Double) * 2.0 + xs[1].select(1, 0) * xs[0].select(1, 2) - xs[1].select(1, 1)
    });
    let masks = vec![FeatureMask::new(Tensor::from_slice(&[0i64, 1, 2])).unwrap(), FeatureMask::new(Tensor::from_slice(&[1i64, 2])).unwrap()];
    let inputs = Inputs::multi(vec![a.shallow_clone(), bb.shallow_clone()]);
    let e = ExactShapley::params().feature_masks(masks.iter().map(|m| FeatureMask::new(m.ids().shallow_clone()).unwrap()).collect()).check().unwrap();
    let r = e.attribute(&model, &inputs, &Target::None).unwrap();
    // Brute force over the joint groups: features [a0, a1, a2, b0, b1] with groups [0, 1, 2, 1, 2].
    let joint = Tensor::cat(&[a.shallow_clone(), bb.shallow_clone()], 1);
    let f = |t: &Tensor| t.narrow(1, 0, 3).sum_dim_intlist(1, false, Kind::Double) * 2.0 + t.select(1, 3) * t.select(1, 2) - t.select(1, 4);
    let reference = brute_force(&f, &joint, &joint.zeros_like(), &[0, 1, 2, 1, 2], 3);
    let (ra, rb) = (host(&r.values[0]), host(&r.values[1]));
    for i in 0..2 {
        assert!((ra[i * 3] - reference[i][0]).abs() < 1e-12);
        assert!((ra[i * 3 + 1] - reference[i][1]).abs() < 1e-12 && (rb[i * 2] - reference[i][1]).abs() < 1e-12);
        assert!((ra[i * 3 + 2] - reference[i][2]).abs() < 1e-12 && (rb[i * 2 + 1] - reference[i][2]).abs() < 1e-12);
    }

    // A mask per row: row 0 groups [0, 0, 1, 1], row 1 [0, 1, 1, 1].
    let x = tensor(43, &[2, 4]);
    let b = tensor(44, &[2, 4]);
    let rows = Tensor::from_slice(&[0i64, 0, 1, 1, 0, 1, 1, 1]).reshape([2, 4]);
    let net = mlp(45, 4, false);
    let model = FnModel::new(&net);
    let r = exact(Some(&rows), &b).attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap();
    let got = host(r.single().unwrap());
    let g0 = |t: &Tensor| net(t).select(1, 0);
    let ref0 = brute_force(&g0, &x.narrow(0, 0, 1), &b.narrow(0, 0, 1), &[0, 0, 1, 1], 2);
    let ref1 = brute_force(&g0, &x.narrow(0, 1, 1), &b.narrow(0, 1, 1), &[0, 1, 1, 1], 2);
    assert!((got[0] - ref0[0][0]).abs() < 1e-12 && (got[2] - ref0[0][1]).abs() < 1e-12);
    assert!((got[4] - ref1[0][0]).abs() < 1e-12 && (got[5] - ref1[0][1]).abs() < 1e-12);

    // Background distribution: the mean of the values for each baseline sample.
    let dist = tensor(46, &[3, 4]);
    let mask = Tensor::from_slice(&[0i64, 1, 2, 2]);
    let with_dist = |m: &dyn Attribution| m.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap();
    let pm = || FeatureMask::new(mask.shallow_clone()).unwrap();
    let d = with_dist(&ExactShapley::params().baselines(Baseline::Distribution(dist.shallow_clone())).feature_mask(pm()).check().unwrap());
    let mut mean = Tensor::zeros([2, 4], D);
    for s in 0..3 {
        let one = with_dist(&ExactShapley::params().baselines(Baseline::Tensor(dist.narrow(0, s, 1))).feature_mask(pm()).check().unwrap());
        mean += one.single().unwrap() / 3.0;
    }
    assert!(max_abs(&(d.single().unwrap() - mean)) < 1e-12);
    assert!(max_abs(d.convergence_delta.as_ref().unwrap()) < 1e-12);
    assert_eq!(d.meta.extra["baseline_samples"], 3);
    let sd = with_dist(&ShapleyValueSampling::params().baselines(Baseline::Distribution(dist)).feature_mask(pm()).check().unwrap());
    assert!(max_abs(sd.convergence_delta.as_ref().unwrap()) < 1e-12);
}

#[test]
fn bad_requests_are_clear_errors() {
    let model = FnModel::new(|x: &Tensor| x.sum_dim_intlist(1, false, Kind::Double));
    let x = Tensor::ones([2, MAX_EXACT_GROUPS as i64 + 1], D);
    // One group per element: 21 groups is too many for exact values.
    let err = ExactShapley::params().check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::None).unwrap_err().to_string();
    assert!(err.contains("at most 20 feature groups") && err.contains("21") && err.contains("shapley-sampling"), "{err}");
    // Sampling handles them.
    let s = ShapleyValueSampling::params().n_samples(2).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::None).unwrap();
    assert!(max_abs(&(s.single().unwrap() - 1.0)) < 1e-12);
    let err = ShapleyValueSampling::params().n_samples(0).check().unwrap_err().to_string();
    assert!(err.contains("n_samples"), "{err}");
    let bad = ShapleyValueSampling::params().permutations(vec![vec![0, 0]]).check().unwrap();
    let err = bad.attribute(&model, &Inputs::new(Tensor::ones([1, 2], D)), &Target::None).unwrap_err().to_string();
    assert!(err.contains("not a permutation"), "{err}");
    assert!("halton".parse::<Sampler>().unwrap_err().to_string().contains("random, antithetic or stratified"));
}
