//! KernelSHAP's stratified coalition design: coalitions grouped by size into strata, whole
//! strata enumerated while the budget covers them, the rest drawn per stratum in complementary
//! pairs without replacement, each coalition weighted by its stratum's kernel mass over the
//! number drawn from it.
//!
//! The Shapley kernel gives every coalition of size `s` the weight `k(s)`, so the size-`s`
//! coalitions together carry the mass `m(s) = C(G, s) k(s) = (G − 1) / (s (G − s))`. Drawing
//! sizes at random (Captum's scheme) leaves the number of coalitions of each size to chance; a
//! stratified design fixes it, which removes that part of the variance:
//!
//! 1. Strata are `s = 1..⌊G/2⌋`: a stratum holds the coalitions of size `s` and their
//!    complements (size `G − s`), so its members come in pairs; for even `G` the middle stratum
//!    `s = G/2` holds pairs of two size-`G/2` coalitions. A pair costs two model evaluations.
//! 2. The stratum of singletons (and their complements, `2G` coalitions, `G` pairs) is enumerated
//!    first whenever the budget holds it: these coalitions carry the most mass per evaluation.
//! 3. Then, smallest stratum first, a stratum is enumerated whole when its share of the remaining
//!    pairs covers all its pairs, and the shares are recomputed. A stratum's share is in
//!    proportion to `m(s)^α` ([`Allocation`]): `α = 1` (the kernel's mass) by default, or
//!    `α = 1/2`; `α = 0` would be Leverage SHAP's sizes (Musco & Witter 2025: leverage scores
//!    give every size the same share).
//! 4. The remaining pairs go to the remaining strata by their shares (largest remainder), each
//!    drawing its pairs without replacement ([`StratumDraws`]): uniformly by default, or as
//!    disjoint blocks of random permutations (the groups of one permutation fill `⌊G/s⌋`
//!    coalitions that share no group).
//!
//! A coalition drawn `n` times from a stratum of mass `M` (split evenly between its two sides)
//! gets the weight `M_side / n`; an enumerated stratum gets `k(s)` per coalition, which is the
//! same formula with `n = C(G, s)`. Whatever the shares, every stratum that gets pairs carries
//! exactly its kernel mass, so the weighted regression estimates the full kernel objective per
//! stratum (exactly for enumerated strata), and every coalition of a size is equally likely.
//!
//! Measured (float64, mean absolute error against the exact values over 20 seeds, 10–16 groups,
//! at equal evaluations; docs/shapley.md): the default (uniform draws, shares by mass) is 5–25 %
//! below paired kernel draws from 64 evaluations up, and 3× lower at `2G + 2` evaluations, where
//! kernel draws leave groups barely determined. Blocks with square-root shares are a further
//! 5–15 % lower from about `6G` evaluations on 15 and 16 groups (blocks: within a stratum every
//! group appears about equally often, and the coalitions of one permutation are disjoint), but
//! up to 6 % higher below that and no better on 10 groups (10 % higher at half of all
//! coalitions, where shares by mass enumerate more whole sizes); so they are an option, not the
//! default.

use crate::permutation::SplitMix64;
use attrib_core::{AttribError, Result};
use std::collections::HashSet;

/// How the stratified design shares the pairs it draws among the strata it does not enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// In proportion to each stratum's kernel mass `m(s)` (default).
    #[default]
    Mass,
    /// In proportion to the square root of each stratum's kernel mass, `√m(s)`: between the
    /// kernel's shares and Leverage SHAP's equal shares per size; with [`StratumDraws::Blocks`]
    /// measured more accurate than the default from about `6G` evaluations on 15 and 16 groups,
    /// not on 10 (docs/shapley.md).
    SqrtMass,
}

impl Allocation {
    /// The name used in specs: `sqrt-mass`, `mass`.
    pub fn name(self) -> &'static str {
        match self {
            Allocation::SqrtMass => "sqrt-mass",
            Allocation::Mass => "mass",
        }
    }

    /// The exponent `α` of the shares `∝ m(s)^α`.
    fn power(self) -> f64 {
        match self {
            Allocation::SqrtMass => 0.5,
            Allocation::Mass => 1.0,
        }
    }
}

impl std::str::FromStr for Allocation {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<Allocation> {
        match s {
            "sqrt-mass" => Ok(Allocation::SqrtMass),
            "mass" => Ok(Allocation::Mass),
            other => Err(AttribError::param("allocation", format!("unknown allocation `{other}`; use sqrt-mass or mass"))),
        }
    }
}

/// How the stratified design draws the pairs of a stratum it does not enumerate (always without
/// replacement, every coalition of the stratum equally likely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StratumDraws {
    /// Disjoint blocks: a random permutation of the groups is cut into `⌊G/s⌋`
    /// consecutive blocks of `s` groups (one block for the middle stratum of an even `G`), each
    /// block one coalition (with its complement), then the next permutation; a block drawn
    /// before is skipped. The coalitions of one permutation share no group, so every group
    /// appears about equally often in the stratum.
    Blocks,
    /// Each pair uniformly among those not drawn yet (default).
    #[default]
    Uniform,
}

impl StratumDraws {
    /// The name used in specs: `blocks`, `uniform`.
    pub fn name(self) -> &'static str {
        match self {
            StratumDraws::Blocks => "blocks",
            StratumDraws::Uniform => "uniform",
        }
    }
}

impl std::str::FromStr for StratumDraws {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<StratumDraws> {
        match s {
            "blocks" => Ok(StratumDraws::Blocks),
            "uniform" => Ok(StratumDraws::Uniform),
            other => Err(AttribError::param("draws", format!("unknown stratum draws `{other}`; use blocks or uniform"))),
        }
    }
}

/// Whether the stratified design applies to `count` sampled coalitions of `g` groups: it needs
/// at least the singleton stratum (`2g` coalitions) and three groups (with two the only stratum
/// is one pair).
pub(crate) fn stratified_applies(g: usize, count: usize) -> bool {
    g >= 3 && count >= 2 * g
}

/// `C(n, k)` as f64 (exact below 2^53).
fn binom(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The pairs a stratum holds: `C(g, s)`, or half of it for the middle stratum of an even `g`.
fn stratum_pairs(g: usize, s: usize) -> f64 {
    if 2 * s == g {
        binom(g, s) / 2.0
    } else {
        binom(g, s)
    }
}

/// The kernel mass of one side of stratum `s` (the size-`s` coalitions): `(g − 1) / (s (g − s))`.
fn side_mass(g: usize, s: usize) -> f64 {
    (g as f64 - 1.0) / (s as f64 * (g - s) as f64)
}

/// The mass of stratum `s`: both sides, or one for the middle stratum.
fn stratum_mass(g: usize, s: usize) -> f64 {
    if 2 * s == g {
        side_mass(g, s)
    } else {
        2.0 * side_mass(g, s)
    }
}

/// The number of pairs each stratum `1..=g/2` gets from `pairs` (index `s − 1`), and whether it
/// is enumerated whole; shares as `allocation` says.
fn allocate(g: usize, mut pairs: usize, allocation: Allocation) -> Vec<(usize, bool)> {
    let share = |s: usize| stratum_mass(g, s).powf(allocation.power());
    let strata: Vec<usize> = (1..=g / 2).collect();
    let mut alloc = vec![(0usize, false); strata.len()];
    let mut rest: Vec<usize> = strata.clone();
    let take_whole = |s: usize, pairs: &mut usize, rest: &mut Vec<usize>, alloc: &mut Vec<(usize, bool)>| {
        let n = stratum_pairs(g, s) as usize;
        *pairs -= n;
        alloc[s - 1] = (n, true);
        rest.retain(|&r| r != s);
    };
    if (pairs as f64) >= stratum_pairs(g, 1) {
        take_whole(1, &mut pairs, &mut rest, &mut alloc);
    }
    loop {
        let total: f64 = rest.iter().map(|&s| share(s)).sum();
        let whole = rest.iter().copied().find(|&s| share(s) / total * pairs as f64 >= stratum_pairs(g, s));
        match whole {
            Some(s) => take_whole(s, &mut pairs, &mut rest, &mut alloc),
            None => break,
        }
    }
    if rest.is_empty() || pairs == 0 {
        return alloc;
    }
    let total: f64 = rest.iter().map(|&s| share(s)).sum();
    let quota: Vec<f64> = rest.iter().map(|&s| share(s) / total * pairs as f64).collect();
    let mut given: Vec<usize> = quota.iter().map(|q| q.floor() as usize).collect();
    let mut left = pairs - given.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..rest.len()).collect();
    // Largest fractional part first; ties to the smaller stratum (more mass).
    order.sort_by(|&a, &b| (quota[b] - quota[b].floor()).total_cmp(&(quota[a] - quota[a].floor())).then(a.cmp(&b)));
    for &i in &order {
        if left == 0 {
            break;
        }
        given[i] += 1;
        left -= 1;
    }
    for (i, &s) in rest.iter().enumerate() {
        // A share never reaches the whole stratum here (else step 3 took it whole).
        alloc[s - 1] = (given[i].min(stratum_pairs(g, s) as usize), false);
    }
    alloc
}

/// Visit every `s`-subset of `0..g` containing `first` if `anchored` (lexicographic order).
fn each_subset(g: usize, s: usize, anchored: bool, mut visit: impl FnMut(&[usize])) {
    let mut idx: Vec<usize> = (0..s).collect();
    loop {
        if !anchored || idx[0] == 0 {
            visit(&idx);
        } else {
            return; // subsets are in lexicographic order: none later contains 0
        }
        let mut i = s;
        while i > 0 && idx[i - 1] == g - s + i - 1 {
            i -= 1;
        }
        if i == 0 {
            return;
        }
        idx[i - 1] += 1;
        for j in i..s {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// `n` pairs of stratum `s` (fewer than it holds) as disjoint blocks of random permutations
/// ([`StratumDraws::Blocks`]): `push` gets the members of one side of each pair, sorted.
fn block_draws(g: usize, s: usize, n: usize, rng: &mut SplitMix64, mut push: impl FnMut(&[usize])) {
    let middle = 2 * s == g;
    // The middle stratum's block and the rest of the permutation are one pair.
    let blocks = if middle { 1 } else { g / s };
    let mut seen: HashSet<Vec<usize>> = HashSet::with_capacity(n);
    let mut order: Vec<usize> = (0..g).collect();
    while seen.len() < n {
        rng.shuffle(&mut order);
        for b in 0..blocks {
            let mut members = order[b * s..(b + 1) * s].to_vec();
            members.sort_unstable();
            // A middle pair is named by its side holding group 0.
            let key = if middle && members[0] != 0 { (0..g).filter(|k| !members.contains(k)).collect() } else { members.clone() };
            if seen.insert(key) {
                push(&members);
                if seen.len() == n {
                    break;
                }
            }
        }
    }
}

/// The stratified design for `count` coalitions of `g` groups (see the module docs): row-major
/// `m × g` booleans (`m ≤ count`, an odd leftover evaluation unspent) and their weights.
pub(crate) fn stratified_coalitions(
    g: usize,
    count: usize,
    seed: u64,
    allocation: Allocation,
    draws: StratumDraws,
) -> (Vec<bool>, Vec<f64>) {
    let mut z = Vec::with_capacity(count * g);
    let mut w = Vec::with_capacity(count);
    let mut rng = SplitMix64(seed);
    let push_pair = |members: &[usize], weight: f64, z: &mut Vec<bool>, w: &mut Vec<f64>| {
        let start = z.len();
        z.extend(std::iter::repeat(false).take(g));
        for &m in members {
            z[start + m] = true;
        }
        let complement: Vec<bool> = z[start..].iter().map(|b| !b).collect();
        z.extend(complement);
        w.push(weight);
        w.push(weight);
    };
    for (i, (n, whole)) in allocate(g, count / 2, allocation).into_iter().enumerate() {
        let s = i + 1;
        if n == 0 {
            continue;
        }
        let middle = 2 * s == g;
        // Each side of a pair gets M_side / n; the middle stratum's two sides share one mass.
        let weight = if middle { side_mass(g, s) / (2.0 * n as f64) } else { side_mass(g, s) / n as f64 };
        if whole {
            each_subset(g, s, middle, |members| push_pair(members, weight, &mut z, &mut w));
            continue;
        }
        if draws == StratumDraws::Blocks {
            block_draws(g, s, n, &mut rng, |members| push_pair(members, weight, &mut z, &mut w));
            continue;
        }
        // n pairs without replacement: rejection over a set of seen coalitions (the share is
        // below the stratum's size, and mostly far below; a dense share enumerates and shuffles).
        let total = stratum_pairs(g, s);
        if (n as f64) * 4.0 >= total {
            let mut all: Vec<Vec<usize>> = Vec::with_capacity(total as usize);
            each_subset(g, s, middle, |members| all.push(members.to_vec()));
            rng.shuffle(&mut all);
            for members in &all[..n] {
                push_pair(members, weight, &mut z, &mut w);
            }
            continue;
        }
        let mut seen: HashSet<Vec<usize>> = HashSet::with_capacity(n);
        let mut order: Vec<usize> = (0..g).collect();
        while seen.len() < n {
            // The middle stratum's pairs are named by their side holding group 0.
            let (fixed, pool) = if middle { (1, g - 1) } else { (0, g) };
            order.iter_mut().enumerate().for_each(|(k, v)| *v = k);
            for k in fixed..s {
                let pick = k + rng.below_or_eq((pool - 1 - (k - fixed)) as u64) as usize;
                order.swap(k, pick);
            }
            let mut members = order[..s].to_vec();
            members.sort_unstable();
            if seen.insert(members.clone()) {
                push_pair(&members, weight, &mut z, &mut w);
            }
        }
    }
    (z, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_mass_by_size(g: usize, z: &[bool], w: &[f64]) -> Vec<f64> {
        let mut mass = vec![0.0; g + 1];
        for (row, wt) in z.chunks(g).zip(w) {
            mass[row.iter().filter(|b| **b).count()] += wt;
        }
        mass
    }

    const VARIANTS: [(Allocation, StratumDraws); 4] = [
        (Allocation::SqrtMass, StratumDraws::Blocks),
        (Allocation::Mass, StratumDraws::Blocks),
        (Allocation::SqrtMass, StratumDraws::Uniform),
        (Allocation::Mass, StratumDraws::Uniform),
    ];

    #[test]
    fn every_size_gets_its_kernel_mass_and_pairs_are_complements() {
        let cases = [(3usize, 6usize), (10, 20), (10, 62), (10, 900), (15, 122), (15, 510), (16, 131), (16, 254), (12, 4000)];
        for ((g, count), (allocation, draws)) in cases.into_iter().flat_map(|c| VARIANTS.map(|v| (c, v))) {
            let (z, w) = stratified_coalitions(g, count, 3, allocation, draws);
            assert!(z.len() / g <= count && z.len() / g + 1 >= count.min(2 * (1 << (g - 1)) - 2), "{g} {count}: {}", z.len() / g);
            let mass = kernel_mass_by_size(g, &z, &w);
            for s in 1..g {
                // A stratum that got pairs carries its exact mass; with fewer pairs than strata
                // some strata are empty.
                if mass[s] > 0.0 {
                    assert!((mass[s] - side_mass(g, s)).abs() < 1e-12, "g {g} count {count} size {s}: {} vs {}", mass[s], side_mass(g, s));
                }
            }
            assert!(mass[1] > 0.0 && mass[g - 1] > 0.0);
            for pair in z.chunks(2 * g) {
                assert!(pair[..g].iter().zip(&pair[g..]).all(|(a, b)| a != b));
            }
            let rows: HashSet<&[bool]> = z.chunks(g).collect();
            assert_eq!(rows.len(), z.len() / g, "coalitions drawn without replacement");
        }
    }

    #[test]
    fn a_budget_covering_everything_enumerates_every_coalition_with_its_kernel_weight() {
        let g = 6;
        for (allocation, draws) in VARIANTS {
            let (z, w) = stratified_coalitions(g, (1 << g) - 2, 0, allocation, draws);
            assert_eq!(z.len() / g, (1 << g) - 2);
            let kw = crate::shapley::kernel_shap::kernel_weights(g);
            for (row, wt) in z.chunks(g).zip(&w) {
                let s = row.iter().filter(|b| **b).count();
                assert!((wt - kw[s]).abs() < 1e-12, "size {s}: {wt} vs {}", kw[s]);
            }
        }
    }

    /// Blocks: within a drawn stratum the groups appear more evenly than under uniform draws
    /// (the variance of the membership counts, averaged over seeds, is lower in every drawn
    /// stratum), and over seeds every coalition of a size is equally likely.
    #[test]
    fn blocks_balance_the_groups_and_draw_every_coalition_equally_often() {
        for (g, count) in [(15usize, 126usize), (15, 300), (16, 130), (10, 62)] {
            let alloc = allocate(g, count / 2, Allocation::SqrtMass);
            let spread = |draws: StratumDraws| -> Vec<f64> {
                let mut var = vec![0.0; g / 2 + 1];
                for seed in 0..200 {
                    let (z, _) = stratified_coalitions(g, count, seed, Allocation::SqrtMass, draws);
                    for s in 2..=g / 2 {
                        let mut drawn = vec![0.0f64; g];
                        for row in z.chunks(g).filter(|r| r.iter().filter(|b| **b).count() == s) {
                            row.iter().enumerate().filter(|(_, b)| **b).for_each(|(k, _)| drawn[k] += 1.0);
                        }
                        let mean = drawn.iter().sum::<f64>() / g as f64;
                        var[s] += drawn.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / g as f64;
                    }
                }
                var
            };
            let (blocks, uniform) = (spread(StratumDraws::Blocks), spread(StratumDraws::Uniform));
            for (i, &(n, whole)) in alloc.iter().enumerate() {
                let s = i + 1;
                if !whole && n >= 2 && 2 * s != g {
                    assert!(blocks[s] < 0.8 * uniform[s], "g {g} count {count} size {s}: {} vs {}", blocks[s], uniform[s]);
                }
            }
        }
        // g = 6, 20 coalitions: the singletons' 6 pairs, then 4 pairs over sizes 2 and 3.
        let g = 6;
        let seeds = 3000u64;
        let mut freq = std::collections::HashMap::<Vec<bool>, usize>::new();
        let mut size2 = 0usize;
        for seed in 0..seeds {
            let (z, _) = stratified_coalitions(g, 20, seed, Allocation::SqrtMass, StratumDraws::Blocks);
            for row in z.chunks(g).filter(|r| r.iter().filter(|b| **b).count() == 2) {
                *freq.entry(row.to_vec()).or_default() += 1;
                size2 += 1;
            }
        }
        assert_eq!(freq.len(), 15);
        let expect = size2 as f64 / 15.0;
        let sd = (expect * (1.0 - 1.0 / 15.0)).sqrt();
        for (row, &c) in &freq {
            assert!((c as f64 - expect).abs() < 5.0 * sd, "{row:?}: {c} vs {expect}");
        }
    }

    #[test]
    fn square_root_shares_give_the_middle_sizes_more_pairs() {
        // g = 15 after the singletons: 46 pairs over sizes 2..7 (masses ∝ 1/(s(15 − s))).
        let mass = allocate(15, 61, Allocation::Mass);
        let sqrt = allocate(15, 61, Allocation::SqrtMass);
        assert_eq!(sqrt.iter().map(|p| p.0).sum::<usize>(), 61);
        assert!(sqrt[1].0 < mass[1].0 && sqrt[6].0 > mass[6].0, "{mass:?} {sqrt:?}");
        let quota = |s: usize, p: f64| {
            let total: f64 = (2..=7).map(|r| stratum_mass(15, r).powf(p)).sum();
            stratum_mass(15, s).powf(p) / total * 46.0
        };
        for s in 2..=7 {
            assert!((sqrt[s - 1].0 as f64 - quota(s, 0.5)).abs() < 1.0, "size {s}: {sqrt:?}");
            assert!((mass[s - 1].0 as f64 - quota(s, 1.0)).abs() < 1.0, "size {s}: {mass:?}");
        }
    }

    #[test]
    fn allocation_enumerates_singletons_first_and_spends_every_pair() {
        for (allocation, draws) in VARIANTS {
            let a = allocate(15, 15, allocation);
            assert_eq!(a[0], (15, true));
            assert!(a[1..].iter().all(|&(n, _)| n == 0));
            let a = allocate(15, 61, allocation);
            assert_eq!(a[0], (15, true));
            assert_eq!(a.iter().map(|p| p.0).sum::<usize>(), 61);
            // Seeds change the draws, not the design; a seed gives one answer.
            let design = |seed| stratified_coalitions(15, 122, seed, allocation, draws);
            assert_eq!(design(1), design(1));
            assert_ne!(design(1).0, design(2).0);
        }
    }
}
