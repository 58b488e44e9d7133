//! KernelSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions"):
//! Shapley values of feature groups as the solution of a weighted least-squares problem over
//! coalitions.
//!
//! With `v(S)` the target output when the groups outside `S` take the baseline, the Shapley
//! values minimise `Σ_{∅≠S≠G} k(S) (v(S) − v(∅) − Σ_{g∈S} φ_g)²` subject to
//! `Σ_g φ_g = v(G) − v(∅) = F_t(x) − F_t(b)`, with the Shapley kernel
//! `k(S) = (G − 1) / (C(G, |S|) |S| (G − |S|))`. KernelSHAP estimates the objective from sampled
//! coalitions:
//!
//! - by default the design is **stratified** (`kernel_design.rs`): coalitions are grouped by
//!   size, the singletons and their complements are enumerated first, every further size whose
//!   share of the budget covers it is enumerated whole, and the remaining budget is spread over
//!   the other sizes in proportion to their kernel mass (or its square root: `allocation`),
//!   drawn in complementary pairs without replacement (uniformly, or as disjoint blocks of
//!   random permutations: `draws`) and weighted by their size's mass over the number drawn. It applies from `2G`
//!   sampled coalitions; below, or with `stratified = false`:
//! - sizes `1..G−1` are drawn with probability `∝ (G − 1) / (s (G − s))` and the members
//!   uniformly among the coalitions of that size, so every sampled coalition has weight 1 (the
//!   kernel is in the sampling; Captum's scheme);
//! - `paired` (default): each drawn coalition is followed by its complement (Covert & Lee 2021,
//!   "Improving KernelSHAP"), which cancels the leading error term, once the budget gives at
//!   least [`PAIRED_MIN_PER_GROUP`] sampled coalitions per group (below, a pair adds only one
//!   equation to the regression and independent draws are more accurate);
//! - when the budget covers every coalition (`n_samples ≥ 2^G`) all of them are enumerated with
//!   their kernel weights instead, and the answer is the exact Shapley values.
//!
//! With `regression = size-slopes` the stratified design's pairs are fitted instead with slopes
//! that drift with the coalition size, and the estimate is the fit's exact Shapley values
//! (`kernel_slopes.rs`; efficient exactly, consistent).
//!
//! The empty and full coalitions are not sampled: they are evaluated once each and enter as the
//! constraint, which holds exactly (to rounding), not through a large weight as in Captum. The
//! coalitions are shared by all rows of the batch, so one solve serves every row
//! (`solve::constrained_wls`). A background distribution (baseline samples) averages
//! the coalition values over the samples, which is the average of the per-sample answers.

use super::kernel_design::{stratified_applies, stratified_coalitions, Allocation, StratumDraws};
use super::kernel_slopes::{size_slopes_wls, KernelRegression};
use super::solve::constrained_wls;
use crate::ablation::mask_json;
use crate::coalition::{all_coalitions, baseline_sets, group_values_to_elements, mean_coalition_outputs};
use crate::engine::Groups;
use crate::permutation::SplitMix64;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, FeatureMask, Inputs, Metadata, MethodInfo, Model, Result,
    Target, TorchResultExt,
};
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Parameters of [`KernelShap`]. Defaults as Captum's `KernelShap.attribute`: 25 samples, zero
/// baselines, one group per scalar element; plus paired sampling and seed 0.
#[derive(Debug)]
pub struct KernelShapParams {
    /// The value a feature outside the coalition takes (default zeros); a
    /// [`attrib_core::Baseline::Distribution`] averages over its samples.
    pub baselines: Baselines,
    /// One mask per input; `None`: every scalar element is its own group.
    pub feature_mask: Option<Vec<FeatureMask>>,
    /// Model evaluations per row (and baseline sample), the empty and full coalitions included
    /// (Captum's `n_samples`; at least 2).
    pub n_samples: usize,
    /// Seed of the coalition draws.
    pub seed: u64,
    /// Draw coalitions in complementary pairs (when the budget gives at least
    /// [`PAIRED_MIN_PER_GROUP`] sampled coalitions per group; independent draws below).
    pub paired: bool,
    /// The stratified design (default): coalitions grouped by size,
    /// whole sizes enumerated while the budget covers them (the singletons and their complements
    /// first), the rest drawn per size in complementary pairs without replacement, weighted by
    /// the kernel's mass of their size. Applies from `2G` sampled coalitions (three groups or
    /// more); below, and when false, coalitions are drawn from the kernel as `paired` says.
    pub stratified: bool,
    /// The stratified design's shares of the drawn pairs per size (default
    /// [`Allocation::Mass`]).
    pub allocation: Allocation,
    /// How the stratified design draws the pairs of a size (default [`StratumDraws::Uniform`]).
    pub draws: StratumDraws,
    /// How the weighted coalitions become Shapley values (default [`KernelRegression::Linear`];
    /// [`KernelRegression::SizeSlopes`] applies to the stratified design only).
    pub regression: KernelRegression,
    /// Coalitions given instead of drawn (`[m, G]`, 0/1 or Bool, columns in increasing group
    /// id), each with weight 1 as if drawn from the kernel's distribution; empty and full rows
    /// are dropped (they are the constraint). For replaying another implementation's draws.
    pub coalitions: Option<Tensor>,
    /// Chunking of the coalition rows.
    pub batch: BatchOptions,
}

impl Default for KernelShapParams {
    fn default() -> Self {
        KernelShapParams {
            baselines: Baselines::default(),
            feature_mask: None,
            n_samples: 25,
            seed: 0,
            paired: true,
            stratified: true,
            allocation: Allocation::default(),
            draws: StratumDraws::default(),
            regression: KernelRegression::default(),
            coalitions: None,
            batch: BatchOptions::default(),
        }
    }
}

impl KernelShapParams {
    /// Set the baselines (a [`attrib_core::Baseline`] or one per input).
    pub fn baselines(mut self, baselines: impl Into<Baselines>) -> Self {
        self.baselines = baselines.into();
        self
    }

    /// Group the elements of a single-input model with `mask`.
    pub fn feature_mask(mut self, mask: FeatureMask) -> Self {
        self.feature_mask = Some(vec![mask]);
        self
    }

    /// One mask per input (a group id shared by several inputs is one player).
    pub fn feature_masks(mut self, masks: Vec<FeatureMask>) -> Self {
        self.feature_mask = Some(masks);
        self
    }

    /// Model evaluations per row, the empty and full coalitions included.
    pub fn n_samples(mut self, n: usize) -> Self {
        self.n_samples = n;
        self
    }

    /// Seed of the coalition draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Draw coalitions in complementary pairs (default true).
    pub fn paired(mut self, paired: bool) -> Self {
        self.paired = paired;
        self
    }

    /// Use the stratified design (default true; see [`KernelShapParams::stratified`]).
    pub fn stratified(mut self, stratified: bool) -> Self {
        self.stratified = stratified;
        self
    }

    /// The stratified design's shares per size (see [`Allocation`]).
    pub fn allocation(mut self, allocation: Allocation) -> Self {
        self.allocation = allocation;
        self
    }

    /// How the stratified design draws within a size (see [`StratumDraws`]).
    pub fn draws(mut self, draws: StratumDraws) -> Self {
        self.draws = draws;
        self
    }

    /// How the weighted coalitions become Shapley values (see [`KernelRegression`]).
    pub fn regression(mut self, regression: KernelRegression) -> Self {
        self.regression = regression;
        self
    }

    /// Use these coalitions (`[m, G]`) instead of drawing (see [`KernelShapParams::coalitions`]).
    pub fn coalitions(mut self, z: Tensor) -> Self {
        self.coalitions = Some(z);
        self
    }

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`KernelShap`].
    pub fn check(self) -> Result<KernelShap> {
        if self.n_samples < 2 && self.coalitions.is_none() {
            return Err(AttribError::param(
                "n_samples",
                format!("KernelSHAP needs at least 2 model evaluations per row (the empty and the full coalition); got {}", self.n_samples),
            ));
        }
        let coalitions = self.coalitions.as_ref().map(|z| check_coalitions(z, "coalitions")).transpose()?;
        Ok(KernelShap { params: KernelShapParams { batch: self.batch.check()?, coalitions, ..self } })
    }
}

/// Given coalitions as a CPU Bool `[m, G]` matrix; an error unless 2-D with 0/1 (or Bool) values.
pub(crate) fn check_coalitions(z: &Tensor, name: &'static str) -> Result<Tensor> {
    let ctx = "checking the given coalitions";
    if z.dim() != 2 {
        return Err(AttribError::param(name, format!("coalitions must be a matrix [samples, groups]; got shape {:?}", z.size())));
    }
    let z = z.f_to_device(Device::Cpu).ctx(ctx)?;
    if z.kind() != Kind::Bool {
        let ok = z.f_eq(0).and_then(|a| a.f_logical_or(&z.f_eq(1)?)).and_then(|t| t.f_all()).ctx(ctx)?;
        if !bool::try_from(&ok).ctx(ctx)? {
            return Err(AttribError::param(name, "coalitions must hold only 0 and 1 (or booleans)"));
        }
    }
    z.f_to_kind(Kind::Bool).ctx(ctx)
}

/// KernelSHAP: Shapley values of feature groups estimated by a weighted linear regression over
/// sampled coalitions, constrained so that they sum to `F_t(x) − F_t(b)` (efficiency holds
/// exactly). Exact when `n_samples ≥ 2^G`.
#[derive(Debug)]
pub struct KernelShap {
    params: KernelShapParams,
}

impl KernelShap {
    /// Parameters with their defaults, to adjust and [`KernelShapParams::check`].
    pub fn params() -> KernelShapParams {
        KernelShapParams::default()
    }
}

/// The coalitions of a KernelSHAP call: `z` (`[m, G]` Bool, neither empty nor full), their
/// regression weights, whether they are all of them, and how they were chosen.
pub(crate) struct KernelPlan {
    pub z: Tensor,
    pub weights: Vec<f64>,
    pub exact: bool,
    pub design: &'static str,
}

/// The Shapley kernel's weight of one coalition of each size `s = 1..G−1`,
/// `(G − 1) / (C(G, s) s (G − s))` (index `s`; sizes 0 and `G` get 0).
pub(crate) fn kernel_weights(g: usize) -> Vec<f64> {
    let mut binom = 1.0f64; // C(G, s)
    (0..=g)
        .map(|s| {
            let w = if s == 0 || s == g { 0.0 } else { (g as f64 - 1.0) / (binom * s as f64 * (g - s) as f64) };
            binom = binom * (g - s) as f64 / (s + 1) as f64;
            w
        })
        .collect()
}

/// `count` coalitions of `g` groups drawn from the Shapley kernel: a size `s ∈ 1..g−1` with
/// probability `∝ 1 / (s (g − s))`, then `s` members uniformly (a partial Fisher–Yates
/// shuffle); with `paired` every second coalition is the complement of the one before. Row-major
/// `count × g` booleans.
pub(crate) fn sample_kernel_coalitions(g: usize, count: usize, paired: bool, seed: u64) -> Vec<bool> {
    let mut out = vec![false; count * g];
    if g < 2 {
        return out;
    }
    let probs: Vec<f64> = (1..g).map(|s| 1.0 / (s as f64 * (g - s) as f64)).collect();
    let total: f64 = probs.iter().sum();
    let mut rng = SplitMix64(seed);
    let mut order: Vec<usize> = (0..g).collect();
    let mut j = 0;
    while j < count {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut acc = 0.0;
        let mut size = g - 1;
        for (k, p) in probs.iter().enumerate() {
            acc += p;
            if u < acc {
                size = k + 1;
                break;
            }
        }
        for i in 0..size {
            let pick = i + rng.below_or_eq((g - 1 - i) as u64) as usize;
            order.swap(i, pick);
        }
        let row = &mut out[j * g..(j + 1) * g];
        for &member in &order[..size] {
            row[member] = true;
        }
        j += 1;
        if paired && j < count {
            let (done, rest) = out.split_at_mut(j * g);
            for (c, v) in rest[..g].iter_mut().enumerate() {
                *v = !done[(j - 1) * g + c];
            }
            j += 1;
        }
    }
    out
}

/// Below this many sampled coalitions per group, `paired` draws independent coalitions: a pair
/// `(z, 1 − z)` gives the constrained regression one equation, not two (`v(1 − z)` is
/// `v(all) − v(z)` up to the game's interactions), so with fewer than about three samples per
/// group pairs leave it barely determined. Measured on the breast-cancer MLP: at 2 samples per
/// group (15 groups, 32 evaluations) pairs doubled the error of independent draws; at 3 (10
/// groups, 32) they already lowered it.
pub const PAIRED_MIN_PER_GROUP: usize = 3;

impl KernelShap {
    /// Whether `count` sampled coalitions of `g` groups are drawn in pairs.
    fn pairs(&self, g: usize, count: usize) -> bool {
        self.params.paired && count >= PAIRED_MIN_PER_GROUP * g
    }

    /// The coalitions for `g` groups: given, enumerated (the budget covers all), or drawn.
    pub(crate) fn plan(&self, g: usize, device: Device) -> Result<KernelPlan> {
        let ctx = "KernelSHAP coalitions";
        if let Some(z) = &self.params.coalitions {
            if z.size()[1] != g as i64 {
                return Err(AttribError::param(
                    "coalitions",
                    format!("the given coalitions have {} columns; these inputs and masks make {g} feature groups", z.size()[1]),
                ));
            }
            let members = z.f_sum_dim_intlist(1, false, Kind::Int64).ctx(ctx)?;
            let keep = members.f_gt(0).and_then(|a| a.f_logical_and(&members.f_lt(g as i64)?)).ctx(ctx)?;
            let z = z.f_index(&[Some(keep)]).and_then(|z| z.f_to_device(device)).ctx(ctx)?;
            let m = z.size()[0] as usize;
            return Ok(KernelPlan { z, weights: vec![1.0; m], exact: false, design: "given" });
        }
        let n = self.params.n_samples;
        if g < 63 && (1u64 << g) <= n as u64 {
            let all = all_coalitions(g as i64, device)?;
            let m = all.size()[0];
            let z = all.f_narrow(0, 1, (m - 2).max(0)).ctx(ctx)?;
            let kw = kernel_weights(g);
            let sizes = Vec::<i64>::try_from(&z.f_sum_dim_intlist(1, false, Kind::Int64).and_then(|s| s.f_to_device(Device::Cpu)).ctx(ctx)?).ctx(ctx)?;
            let weights = sizes.iter().map(|&s| kw[s as usize]).collect();
            return Ok(KernelPlan { z, weights, exact: true, design: "enumerated" });
        }
        let count = n - 2;
        let (flat, weights, design) = if self.params.stratified && stratified_applies(g, count) {
            let (flat, weights) = stratified_coalitions(g, count, self.params.seed, self.params.allocation, self.params.draws);
            (flat, weights, "stratified")
        } else if self.pairs(g, count) {
            (sample_kernel_coalitions(g, count, true, self.params.seed), vec![1.0; count], "paired")
        } else {
            (sample_kernel_coalitions(g, count, false, self.params.seed), vec![1.0; count], "independent")
        };
        let rows = weights.len() as i64;
        let z = Tensor::f_from_slice(&flat)
            .and_then(|t| t.f_reshape([rows, g as i64]))
            .and_then(|t| t.f_to_device(device))
            .ctx(ctx)?;
        Ok(KernelPlan { z, weights, exact: false, design })
    }
}

impl Attribution for KernelShap {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "kernel-shap", multiplies_by_inputs: true, has_convergence_delta: false }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "n_samples": self.params.n_samples,
            "seed": self.params.seed,
            "paired": self.params.paired,
            "stratified": self.params.stratified,
            "allocation": self.params.allocation.name(),
            "draws": self.params.draws.name(),
            "regression": self.params.regression.name(),
            "coalitions": self.params.coalitions.as_ref().map(Tensor::size),
            "feature_mask_shapes": mask_json(&self.params.feature_mask),
            "baselines": self.params.baselines.describe(),
            "batch": self.params.batch,
        })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let ctx = "KernelSHAP";
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let groups = Groups::resolve(self.params.feature_mask.as_deref(), &p.inputs, inputs.copies(), p.device)?;
        let g = groups.groups.len();
        let plan = self.plan(g, p.device)?;
        let m = plan.z.size()[0];
        let sets = baseline_sets(&self.params.baselines, &p, inputs.copies())?;
        // The sampled coalitions, then the full and the empty one.
        let ends = Tensor::f_cat(
            &[Tensor::f_ones([1, g as i64], (Kind::Bool, p.device)).ctx(ctx)?, Tensor::f_zeros([1, g as i64], (Kind::Bool, p.device)).ctx(ctx)?],
            0,
        )
        .ctx(ctx)?;
        let z = Tensor::f_cat(&[plan.z.shallow_clone(), ends], 0).ctx(ctx)?;
        let v = mean_coalition_outputs(&eval, &p, &groups, &sets, &z)?; // [m + 2, n]
        let (fx, fb) = (v.f_get(m).ctx(ctx)?, v.f_get(m + 1).ctx(ctx)?);
        let y = v.f_narrow(0, 0, m).and_then(|y| y.f_sub(&fb.f_unsqueeze(0)?)).ctx(ctx)?;
        let w = Tensor::f_from_slice(&plan.weights).and_then(|w| w.f_to_device(p.device)).ctx(ctx)?;
        let total = fx.f_sub(&fb).ctx(ctx)?;
        // The size-slopes fit needs the stratified design's complementary pairs and kernel masses.
        let regression = if plan.design == "stratified" { self.params.regression } else { KernelRegression::Linear };
        let phi = match regression {
            KernelRegression::Linear => constrained_wls(&plan.z, &w, &y, &total)?,
            KernelRegression::SizeSlopes => size_slopes_wls(&plan.z, &w, &y, &total)?,
        };
        let values = group_values_to_elements(&p, &groups, &phi)?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({
            "groups": g,
            "coalitions": m + 2,
            "exact": plan.exact,
            "design": plan.design,
            "regression": regression.name(),
            "baseline_samples": sets.len(),
            "model_rows": (m + 2) * p.n * sets.len() as i64,
            "chunk_rows": eval.forward_chunk_rows(),
        });
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_weights_match_the_formula() {
        // G = 4: sizes 1..3 have C(4, s) = 4, 6, 4 coalitions; k = 3 / (C s (4 − s)).
        let w = kernel_weights(4);
        let expect = [0.0, 3.0 / (4.0 * 3.0), 3.0 / (6.0 * 4.0), 3.0 / (4.0 * 3.0), 0.0];
        for (a, b) in w.iter().zip(expect) {
            assert!((a - b).abs() < 1e-15, "{w:?}");
        }
    }

    #[test]
    fn sampled_sizes_follow_the_kernel_and_pairs_are_complements() {
        let g = 6usize;
        let count = 60_000;
        let z = sample_kernel_coalitions(g, count, false, 7);
        let mut hist = vec![0usize; g + 1];
        for row in z.chunks(g) {
            hist[row.iter().filter(|&&b| b).count()] += 1;
        }
        assert_eq!(hist[0] + hist[g], 0, "no empty or full coalition");
        let probs: Vec<f64> = (1..g).map(|s| 1.0 / (s * (g - s)) as f64).collect();
        let total: f64 = probs.iter().sum();
        for s in 1..g {
            let expect = probs[s - 1] / total;
            let got = hist[s] as f64 / count as f64;
            // 5 standard deviations of a binomial proportion.
            let sd = (expect * (1.0 - expect) / count as f64).sqrt();
            assert!((got - expect).abs() < 5.0 * sd, "size {s}: {got} vs {expect}");
        }
        // Members uniform: every group is in a coalition of size s with probability s / g, so
        // each group appears in about the same number of coalitions.
        let per_group: Vec<usize> = (0..g).map(|c| z.chunks(g).filter(|r| r[c]).count()).collect();
        let mean = per_group.iter().sum::<usize>() as f64 / g as f64;
        assert!(per_group.iter().all(|&c| (c as f64 - mean).abs() < 0.03 * mean), "{per_group:?}");
        let paired = sample_kernel_coalitions(g, 9, true, 7);
        for pair in paired.chunks(2 * g).filter(|c| c.len() == 2 * g) {
            assert!((0..g).all(|c| pair[c] != pair[g + c]));
        }
        // Seeded: the same seed gives the same draws, another seed others.
        assert_eq!(paired, sample_kernel_coalitions(g, 9, true, 7));
        assert_ne!(paired, sample_kernel_coalitions(g, 9, true, 8));
    }

    #[test]
    fn enumeration_when_the_budget_covers_every_coalition() {
        let ks = KernelShap::params().n_samples(16).check().unwrap();
        let plan = ks.plan(4, Device::Cpu).unwrap();
        assert!(plan.exact);
        assert_eq!(plan.z.size(), vec![14, 4]);
        let ks = KernelShap::params().n_samples(15).stratified(false).check().unwrap();
        let plan = ks.plan(4, Device::Cpu).unwrap();
        assert!(!plan.exact);
        assert_eq!(plan.z.size(), vec![13, 4]);
        // The stratified design spends whole pairs: 13 sampled coalitions make 6 pairs.
        let plan = KernelShap::params().n_samples(15).check().unwrap().plan(4, Device::Cpu).unwrap();
        assert_eq!((plan.exact, plan.design, plan.z.size()), (false, "stratified", vec![12, 4]));
    }

    #[test]
    fn stratified_design_from_two_coalitions_per_group() {
        let design = |n: usize| KernelShap::params().n_samples(n).check().unwrap().plan(10, Device::Cpu).unwrap().design;
        assert_eq!(design(2 + 19), "independent");
        assert_eq!(design(2 + 20), "stratified");
        assert_eq!(design(500), "stratified");
        let off = KernelShap::params().n_samples(500).stratified(false).check().unwrap().plan(10, Device::Cpu).unwrap();
        assert_eq!(off.design, "paired");
    }

    #[test]
    fn pairs_only_from_three_samples_per_group() {
        let complements = |n: usize| {
            let plan = KernelShap::params().n_samples(n).stratified(false).check().unwrap().plan(10, Device::Cpu).unwrap();
            let z = plan.z.to_kind(Kind::Int64);
            (z.get(0) + z.get(1)).eq(1).all().int64_value(&[]) == 1
        };
        assert!(!complements(2 + 29));
        assert!(complements(2 + 30));
    }

    #[test]
    fn given_coalitions_are_checked_and_their_ends_dropped() {
        let z = Tensor::from_slice(&[1i64, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]).reshape([4, 3]);
        let ks = KernelShap::params().coalitions(z).check().unwrap();
        assert_eq!(ks.plan(3, Device::Cpu).unwrap().z.size(), vec![2, 3]);
        assert!(ks.plan(4, Device::Cpu).is_err());
        assert!(KernelShap::params().coalitions(Tensor::from_slice(&[0i64, 2]).reshape([1, 2])).check().is_err());
        assert!(KernelShap::params().coalitions(Tensor::from_slice(&[0i64, 1])).check().is_err());
        assert!(KernelShap::params().n_samples(1).check().is_err());
    }
}
