//! Owen values: a flat hierarchy gives the exact Shapley values; two- and three-level
//! hierarchies match a brute-force average over every order consistent with the hierarchy
//! (orders filtered from all permutations here, coalition inputs built element by element);
//! efficiency and a group the model ignores getting zero (proptest, exact and sampled); the
//! sampled estimate converges to the exact values; the automatic hierarchy; errors.

use attrib_ablation::{ExactShapley, Hierarchy, OwenMode, OwenValues};
use attrib_core::{Attribution, Attributions, Baseline, FeatureMask, FnModel, Inputs, Target};
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

mod common;
use common::*;

fn owen(mask: &[i64], base: &Tensor, hierarchy: Hierarchy, mode: OwenMode, n: usize, seed: u64) -> OwenValues {
    OwenValues::params()
        .baselines(Baseline::Tensor(base.shallow_clone()))
        .feature_mask(FeatureMask::new(Tensor::from_slice(mask)).unwrap())
        .hierarchy(hierarchy)
        .mode(mode)
        .n_samples(n)
        .seed(seed)
        .check()
        .unwrap()
}

/// Per-group values `[n][G]` of element attributions `[n, F]` (groups `0..G` of `mask`).
fn per_group(attr: &Tensor, mask: &[i64], g: usize) -> Vec<Vec<f64>> {
    let a = host(attr);
    let f = mask.len();
    (0..a.len() / f).map(|i| (0..g as i64).map(|j| a[i * f + mask.iter().position(|&m| m == j).unwrap()]).collect()).collect()
}

/// All permutations of `0..g`.
fn permutations(g: usize) -> Vec<Vec<usize>> {
    if g == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(g - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, g - 1);
            out.push(q);
        }
    }
    out
}

/// Owen values `[n][G]` by brute force: the mean marginal contribution over the permutations in
/// which the groups of every union of `unions` stand together, the model evaluated on coalition
/// rows built element by element.
fn brute_force(f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor, b: &Tensor, mask: &[i64], g: usize, unions: &[Vec<usize>]) -> Vec<Vec<f64>> {
    let (xv, bv) = (host(x), host(b));
    let fe = mask.len();
    let n = xv.len() / fe;
    let value = |set: &[bool]| -> Vec<f64> {
        let rows: Vec<f64> = (0..n * fe).map(|k| if set[mask[k % fe] as usize] { xv[k] } else { bv[k] }).collect();
        host(&f(&Tensor::from_slice(&rows).reshape([n as i64, fe as i64])))
    };
    let consistent: Vec<Vec<usize>> = permutations(g)
        .into_iter()
        .filter(|p| {
            unions.iter().all(|u| {
                let at: Vec<usize> = u.iter().map(|m| p.iter().position(|q| q == m).unwrap()).collect();
                at.iter().max().unwrap() - at.iter().min().unwrap() + 1 == u.len()
            })
        })
        .collect();
    let mut phi = vec![vec![0.0; g]; n];
    for p in &consistent {
        let mut set = vec![false; g];
        let mut before = value(&set);
        for &j in p {
            set[j] = true;
            let after = value(&set);
            for i in 0..n {
                phi[i][j] += (after[i] - before[i]) / consistent.len() as f64;
            }
            before = after;
        }
    }
    phi
}

#[test]
fn a_flat_hierarchy_gives_the_exact_shapley_values() {
    let f = mlp(1, 7, false);
    let model = FnModel::new(&f);
    let x = tensor(2, &[3, 7]) * 2.0;
    let b = tensor(3, &[3, 7]);
    let mask = [0i64, 1, 1, 2, 3, 4, 5];
    let inputs = Inputs::new(x.shallow_clone());
    let shapley = ExactShapley::params()
        .baselines(Baseline::Tensor(b.shallow_clone()))
        .feature_mask(FeatureMask::new(Tensor::from_slice(&mask)).unwrap())
        .check()
        .unwrap()
        .attribute(&model, &inputs, &Target::Class(1))
        .unwrap();
    for h in [Hierarchy::Flat, "root,root,root,root,root,root".parse().unwrap()] {
        let o = owen(&mask, &b, h, OwenMode::Exact, 1, 0).attribute(&model, &inputs, &Target::Class(1)).unwrap();
        let err = max_abs(&(o.single().unwrap() - shapley.single().unwrap()));
        assert!(err < 1e-12, "{err}");
        assert_eq!(o.meta.extra["depth"], 1);
    }
}

#[test]
fn two_and_three_level_hierarchies_match_the_brute_force_average() {
    let f = mlp(11, 6, false);
    let x = tensor(12, &[3, 6]) * 2.0;
    let b = tensor(13, &[3, 6]);
    let mask = [0i64, 1, 2, 2, 3, 4];
    let model = FnModel::new(&f);
    let inputs = Inputs::new(x.shallow_clone());
    let target = |t: &Tensor| f(t).select(1, 0);
    let gap = host(&(f(&x) - f(&b)).select(1, 0));
    // Two levels: {0, 1} and {2, 3, 4}; three levels: {{0, 1}, 2} and {3, 4}.
    let cases: [(&str, Vec<Vec<usize>>); 2] = [
        ("10,10,11,11,11", vec![vec![0, 1], vec![2, 3, 4]]),
        ("0:20,1:20,20:10,2:10,3:11,4:11", vec![vec![0, 1], vec![0, 1, 2], vec![3, 4]]),
    ];
    for (spec, unions) in cases {
        let reference = brute_force(&target, &x, &b, &mask, 5, &unions);
        let o = owen(&mask, &b, spec.parse().unwrap(), OwenMode::Exact, 1, 0).attribute(&model, &inputs, &Target::Class(0)).unwrap();
        let got = per_group(o.single().unwrap(), &mask, 5);
        for i in 0..3 {
            let sum: f64 = got[i].iter().sum();
            assert!((sum - gap[i]).abs() < 1e-12, "{spec}: efficiency, row {i}: {sum} vs {}", gap[i]);
            for j in 0..5 {
                assert!((got[i][j] - reference[i][j]).abs() < 1e-12, "{spec}: row {i} group {j}: {} vs {}", got[i][j], reference[i][j]);
            }
        }
        assert!(max_abs(o.convergence_delta.as_ref().unwrap()) < 1e-12);
        // The hierarchy matters: these are not the Shapley values.
        let flat = brute_force(&target, &x, &b, &mask, 5, &[]);
        assert!((0..3).any(|i| (0..5).any(|j| (flat[i][j] - got[i][j]).abs() > 1e-3)), "{spec}: equal to Shapley values");
    }
}

/// Mean absolute error of the sampled values against the exact ones over `seeds` seeds.
fn sampled_error(model: &FnModel, x: &Tensor, b: &Tensor, mask: &[i64], exact: &Tensor, n: usize, seeds: u64) -> f64 {
    let inputs = Inputs::new(x.shallow_clone());
    mean_error_over_seeds(seeds, exact, |seed| {
        let s = owen(mask, b, Hierarchy::Auto, OwenMode::Sampled, n, seed).attribute(model, &inputs, &Target::Class(1)).unwrap();
        assert!(max_abs(s.convergence_delta.as_ref().unwrap()) < 1e-10);
        s
    })
}

#[test]
fn sampled_values_converge_to_the_exact_ones_and_are_seeded() {
    // 10 features, the automatic hierarchy (index order, a binary tree).
    let f = mlp(21, 10, false);
    let model = FnModel::new(&f);
    let x = tensor(22, &[4, 10]) * 2.0;
    let b = tensor(23, &[4, 10]);
    let mask: Vec<i64> = (0..10).collect();
    let inputs = Inputs::new(x.shallow_clone());
    let exact = owen(&mask, &b, Hierarchy::Auto, OwenMode::Auto, 25, 0).attribute(&model, &inputs, &Target::Class(1)).unwrap();
    assert_eq!(exact.meta.extra["exact"], true);
    assert_eq!(exact.meta.extra["depth"], 4);
    let reference = exact.single().unwrap();
    let errs: Vec<f64> = [4usize, 64].iter().map(|&n| sampled_error(&model, &x, &b, &mask, reference, n, 8)).collect();
    // 16× the orders: the error shrinks about 4× (Monte Carlo rate).
    assert!(errs[0] / errs[1] > 2.5 && errs[0] / errs[1] < 6.5, "{errs:?}");
    let run = |seed| owen(&mask, &b, Hierarchy::Auto, OwenMode::Sampled, 6, seed).attribute(&model, &inputs, &Target::Class(1)).unwrap();
    assert!(run(3).single().unwrap().equal(run(3).single().unwrap()));
    assert!(!run(3).single().unwrap().equal(run(4).single().unwrap()));
}

#[test]
fn the_automatic_hierarchy_merges_neighbouring_patches() {
    // A 2x2 grid of 4x4 patches on 8x8 images: neighbours are merged into pairs, then the pairs.
    let x = tensor(31, &[2, 1, 8, 8]);
    let w = tensor(32, &[64, 3]);
    let model = FnModel::new(move |t: &Tensor| t.flatten(1, -1).matmul(&w).tanh());
    let base = Tensor::zeros([1, 1, 8, 8], (Kind::Double, Device::Cpu));
    let o = OwenValues::params()
        .baselines(Baseline::Tensor(base))
        .feature_mask(FeatureMask::grid(8, 8, 4, 4).unwrap())
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(x), &Target::Class(2))
        .unwrap();
    assert_eq!(o.meta.extra["depth"], 2);
    assert_eq!(o.meta.extra["inner_nodes"], 3);
    assert_eq!(o.meta.extra["exact_terms"], 16);
    assert!(max_abs(o.convergence_delta.as_ref().unwrap()) < 1e-6);
}

#[test]
fn errors_are_reported() {
    let b = Tensor::zeros([1, 30], (Kind::Double, Device::Cpu));
    let x = tensor(41, &[1, 30]);
    let model = FnModel::new(|t: &Tensor| t.sum_dim_intlist(1, true, Kind::Double));
    let mask: Vec<i64> = (0..30).collect();
    let inputs = Inputs::new(x);
    // Flat over 30 groups: 30 · 2^29 differences.
    let err = owen(&mask, &b, Hierarchy::Flat, OwenMode::Exact, 1, 0).attribute(&model, &inputs, &Target::Class(0)).unwrap_err();
    assert!(err.to_string().contains("mode sampled"), "{err}");
    // ... which `auto` samples.
    let ok = owen(&mask, &b, Hierarchy::Flat, OwenMode::Auto, 4, 0).attribute(&model, &inputs, &Target::Class(0)).unwrap();
    assert_eq!(ok.meta.extra["exact"], false);
    let err = owen(&mask, &b, "1,2".parse().unwrap(), OwenMode::Auto, 4, 0).attribute(&model, &inputs, &Target::Class(0)).unwrap_err();
    assert!(err.to_string().contains("one per group"), "{err}");
    assert!(OwenValues::params().n_samples(0).check().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, .. ProptestConfig::default() })]

    /// On random MLPs with random groups and the automatic or a random two-level hierarchy:
    /// efficiency to 1e-10 (float64) and a group the model ignores gets exactly zero, exact and
    /// sampled (1 or 5 orders).
    #[test]
    fn axioms_on_random_networks(seed in 0u64..1_000_000, g in 2usize..8, relu in any::<bool>(), ignored in 0usize..8, two_level in any::<bool>()) {
        let ignored = ignored % g;
        let f = 7i64;
        let mask: Vec<i64> = (0..f).map(|e| ((e as u64 * 7 + seed) % g as u64) as i64).collect();
        prop_assume!((0..g as i64).all(|j| mask.contains(&j)));
        let net = mlp(seed, f, relu);
        let keep: Vec<f64> = mask.iter().map(|&m| if m as usize == ignored { 0.0 } else { 1.0 }).collect();
        let keep = Tensor::from_slice(&keep);
        let model = FnModel::new(move |x: &Tensor| net(&(x * &keep)));
        let x = tensor(seed + 100, &[4, f]) * 2.0;
        let b = tensor(seed + 200, &[4, f]);
        let inputs = Inputs::new(x.shallow_clone());
        let hierarchy = if two_level {
            let parents: Vec<String> = (0..g).map(|j| (100 + (j as u64 * 3 + seed) % 3).to_string()).collect();
            parents.join(",").parse().unwrap()
        } else {
            Hierarchy::Auto
        };
        let zero_at = |at: &Attributions| per_group(at.single().unwrap(), &mask, g).iter().all(|r| r[ignored] == 0.0);
        for (mode, n) in [(OwenMode::Exact, 1usize), (OwenMode::Sampled, 1), (OwenMode::Sampled, 5)] {
            let a = owen(&mask, &b, hierarchy.clone(), mode, n, seed).attribute(&model, &inputs, &Target::Class(0)).unwrap();
            let scale = 1.0 + max_abs(a.single().unwrap());
            prop_assert!(max_abs(a.convergence_delta.as_ref().unwrap()) < 1e-10 * scale, "{:?} {}", mode, n);
            prop_assert!(zero_at(&a), "{:?} {}: ignored group {} not zero", mode, n, ignored);
        }
    }
}
