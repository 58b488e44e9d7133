//! Shapley value sampling (Castro, Gómez & Tejada 2009; Captum's `ShapleyValueSampling`).
//!
//! For each of `n_samples` permutations `π` of the `G` feature groups, the groups are switched
//! from the baseline to the input one after another in the order of `π`, and each group is
//! credited with the change of the target output its switch causes:
//! `φ_{π(p)} += v({π(0..=p)}) − v({π(0..p)})`. The estimate is the mean over the permutations;
//! within one permutation the credits telescope to `v(all) − v(∅) = F_t(x) − F_t(b)`, so the
//! estimate is efficient exactly, whatever the number of permutations.
//!
//! A permutation's walk visits `G + 1` coalitions; the empty and full ones are shared by every
//! permutation, and a coalition that several walks visit (frequent when `G` is small) is
//! evaluated once. The coalitions of all permutations of all rows form one expanded batch
//! (permutations are shared by the rows, as in Captum), chunked by the shared evaluator instead
//! of Captum's `perturbations_per_eval`.
//!
//! Permutations ([`Sampler`]): independent uniform draws (Captum's scheme), antithetic pairs
//! (each draw followed by its reverse, which puts every group at the mirrored position with the
//! complementary set of groups before it), or stratified blocks (`G` permutations from a random
//! Latin square: every group at every position exactly once per block).

use crate::ablation::mask_json;
use crate::coalition::{baseline_sets, group_values_to_elements, mean_coalition_outputs};
use crate::engine::Groups;
use crate::permutation::SplitMix64;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, FeatureMask, Inputs, Metadata, MethodInfo, Model, Result,
    Target, TorchResultExt,
};
use attrib_tensor::{Evaluator, Prepared};
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;
use tch::{Kind, Tensor};

/// How the permutations of [`ShapleyValueSampling`] are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampler {
    /// Independent uniform permutations (Captum's `ShapleyValueSampling`).
    Random,
    /// Antithetic pairs: every other permutation is the reverse of the one before
    /// (Mitchell, Cooper, Frank & Holmes 2022).
    #[default]
    Antithetic,
    /// Blocks of `G` permutations from a random Latin square: permutation `k` of a block puts
    /// group `σ((τ(p) + k) mod G)` at position `p` (`σ`, `τ` uniform per block), so that over the
    /// block every group takes every position once.
    Stratified,
}

impl Sampler {
    /// The name used in specs: `random`, `antithetic`, `stratified`.
    pub fn name(self) -> &'static str {
        match self {
            Sampler::Random => "random",
            Sampler::Antithetic => "antithetic",
            Sampler::Stratified => "stratified",
        }
    }
}

impl std::str::FromStr for Sampler {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<Sampler> {
        match s {
            "random" => Ok(Sampler::Random),
            "antithetic" => Ok(Sampler::Antithetic),
            "stratified" => Ok(Sampler::Stratified),
            other => Err(AttribError::param("sampler", format!("unknown sampler `{other}`; use random, antithetic or stratified"))),
        }
    }
}

/// Parameters of [`ShapleyValueSampling`]. Defaults: Captum's 25 permutations and zero
/// baselines, one group per scalar element, antithetic permutations from seed 0, chunks from
/// the memory budget.
#[derive(Debug)]
pub struct ShapleyValueSamplingParams {
    /// The value a feature outside the coalition takes (default zeros); a
    /// [`attrib_core::Baseline::Distribution`] averages the values over its samples.
    pub baselines: Baselines,
    /// One mask per input; `None`: every scalar element is its own group.
    pub feature_mask: Option<Vec<FeatureMask>>,
    /// Number of permutations (Captum's `n_samples`, default 25).
    pub n_samples: usize,
    /// How the permutations are drawn.
    pub sampler: Sampler,
    /// Seed of the permutations.
    pub seed: u64,
    /// Permutations to use instead of drawing them (each a permutation of `0..G`, positions in
    /// the sorted group ids), e.g. to replay another run.
    pub permutations: Option<Vec<Vec<i64>>>,
    /// Chunking of the coalition rows.
    pub batch: BatchOptions,
}

impl Default for ShapleyValueSamplingParams {
    fn default() -> Self {
        ShapleyValueSamplingParams {
            baselines: Baselines::default(),
            feature_mask: None,
            n_samples: 25,
            sampler: Sampler::default(),
            seed: 0,
            permutations: None,
            batch: BatchOptions::default(),
        }
    }
}

impl ShapleyValueSamplingParams {
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

    /// Number of permutations.
    pub fn n_samples(mut self, n: usize) -> Self {
        self.n_samples = n;
        self
    }

    /// How permutations are drawn.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Seed of the permutations.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Use these permutations of the group positions `0..G` (sorted group ids) instead of drawing
    /// `n_samples` of them.
    pub fn permutations(mut self, perms: Vec<Vec<i64>>) -> Self {
        self.permutations = Some(perms);
        self
    }

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`ShapleyValueSampling`].
    pub fn check(self) -> Result<ShapleyValueSampling> {
        if self.permutations.is_none() && self.n_samples == 0 {
            return Err(AttribError::param("n_samples", "the number of permutations must be at least 1"));
        }
        if self.permutations.as_ref().is_some_and(Vec::is_empty) {
            return Err(AttribError::param("permutations", "give at least one permutation"));
        }
        Ok(ShapleyValueSampling { params: ShapleyValueSamplingParams { batch: self.batch.check()?, ..self } })
    }
}

/// Shapley value sampling: the mean marginal contribution of each feature group over sampled
/// permutations, given to every element of the group.
///
/// The convergence delta is the efficiency gap per row, `Σ_g φ_g − (F_t(x) − F_t(b))`, zero up to
/// rounding for any number of permutations.
#[derive(Debug)]
pub struct ShapleyValueSampling {
    params: ShapleyValueSamplingParams,
}

impl ShapleyValueSampling {
    /// Parameters with their defaults, to adjust and [`ShapleyValueSamplingParams::check`].
    pub fn params() -> ShapleyValueSamplingParams {
        ShapleyValueSamplingParams::default()
    }
}

/// The `n` permutations of `0..g` that `sampler` draws from `seed`.
pub fn draw_permutations(sampler: Sampler, seed: u64, n: usize, g: usize) -> Vec<Vec<i64>> {
    let mut rng = SplitMix64(seed);
    let shuffled = |rng: &mut SplitMix64| {
        let mut p: Vec<i64> = (0..g as i64).collect();
        rng.shuffle(&mut p);
        p
    };
    let mut out: Vec<Vec<i64>> = Vec::with_capacity(n);
    match sampler {
        Sampler::Random => out.extend((0..n).map(|_| shuffled(&mut rng))),
        Sampler::Antithetic => {
            while out.len() < n {
                let p = match out.len() % 2 {
                    0 => shuffled(&mut rng),
                    _ => out[out.len() - 1].iter().rev().copied().collect(),
                };
                out.push(p);
            }
        }
        Sampler::Stratified => {
            while out.len() < n {
                let (sigma, tau) = (shuffled(&mut rng), shuffled(&mut rng));
                for k in 0..g.max(1) {
                    if out.len() == n {
                        break;
                    }
                    out.push(tau.iter().map(|&t| sigma[(t as usize + k) % g.max(1)]).collect());
                }
            }
        }
    }
    out
}

/// Check that every permutation is one of `0..g`.
fn check_permutations(perms: &[Vec<i64>], g: usize) -> Result<()> {
    for (k, p) in perms.iter().enumerate() {
        let mut seen = vec![false; g];
        let ok = p.len() == g && p.iter().all(|&v| v >= 0 && (v as usize) < g && !std::mem::replace(&mut seen[v as usize], true));
        if !ok {
            return Err(AttribError::param(
                "permutations",
                format!("permutation {k} is not a permutation of the {g} feature group positions 0..{g}"),
            ));
        }
    }
    Ok(())
}

/// The coalitions the walks of `perms` visit, each once: `[m, g]` Bool (row 0 the empty
/// coalition, row 1 the full one), and for every permutation and step `0..=g` the row of the
/// coalition reached (`perms.len() · (g + 1)` indices).
pub(crate) fn walk_coalitions(perms: &[Vec<i64>], g: usize) -> Result<(Tensor, Vec<i64>)> {
    let words = g.div_ceil(64).max(1);
    let mut ids: HashMap<Vec<u64>, i64> = HashMap::new();
    let mut rows: Vec<bool> = Vec::new();
    let mut id_of = |set: &Vec<u64>, rows: &mut Vec<bool>| -> i64 {
        let next = ids.len() as i64;
        *ids.entry(set.clone()).or_insert_with(|| {
            rows.extend((0..g).map(|j| set[j / 64] >> (j % 64) & 1 == 1));
            next
        })
    };
    let empty = vec![0u64; words];
    let mut full = empty.clone();
    for j in 0..g {
        full[j / 64] |= 1 << (j % 64);
    }
    id_of(&empty, &mut rows);
    id_of(&full, &mut rows);
    let mut index = Vec::with_capacity(perms.len() * (g + 1));
    for perm in perms {
        let mut set = empty.clone();
        index.push(0);
        for &j in perm {
            set[j as usize / 64] |= 1 << (j as usize % 64);
            index.push(id_of(&set, &mut rows));
        }
    }
    let m = ids.len() as i64;
    let z = Tensor::f_from_slice(&rows).and_then(|t| t.f_reshape([m, g as i64])).ctx("coalitions of the permutations")?;
    Ok((z, index))
}

/// Permutations per pass: the coalition matrix of a pass (`≤ 2 + P·G` rows of `G` booleans) is
/// kept under 64 MiB.
fn per_pass(g: usize) -> usize {
    ((1usize << 26) / (g * g).max(1)).max(1)
}

/// The mean marginal contributions `[G, n]` along the walks of `perms` (permutations of the group
/// positions), the efficiency gap per row `Σ_g φ_g − (v(all) − v(∅))` and the number of distinct
/// coalitions evaluated. Walks are evaluated in passes of [`per_pass`] permutations.
pub(crate) fn estimate_from_walks(
    eval: &Evaluator,
    p: &Prepared,
    groups: &Groups,
    sets: &[Vec<Tensor>],
    perms: &[Vec<i64>],
) -> Result<(Tensor, Tensor, i64)> {
    let ctx = "Shapley value sampling";
    let g = groups.groups.len();
    let gi = g as i64;
    let mut phi = Tensor::f_zeros([gi, p.n], (Kind::Double, p.device)).ctx(ctx)?;
    let mut gap = None;
    let mut coalitions = 0i64;
    for part in perms.chunks(per_pass(g)) {
        let (z, index) = walk_coalitions(part, g)?;
        coalitions += z.size()[0];
        let v = mean_coalition_outputs(eval, p, groups, sets, &z)?;
        let k = part.len() as i64;
        let index = Tensor::f_from_slice(&index).and_then(|t| t.f_to_device(p.device)).ctx(ctx)?;
        let walk = v.f_index_select(0, &index).and_then(|w| w.f_reshape([k, gi + 1, p.n])).ctx(ctx)?;
        let steps = walk.f_narrow(1, 1, gi).and_then(|a| a.f_sub(&walk.f_narrow(1, 0, gi)?)).ctx(ctx)?;
        let order: Vec<i64> = part.iter().flatten().copied().collect();
        let order = Tensor::f_from_slice(&order).and_then(|t| t.f_to_device(p.device)).ctx(ctx)?;
        phi = phi.f_index_add(0, &order, &steps.f_reshape([k * gi, p.n]).ctx(ctx)?).ctx(ctx)?;
        gap.get_or_insert(v.f_get(1).and_then(|full| full.f_sub(&v.f_get(0)?)).ctx(ctx)?);
    }
    let phi = phi.f_div_scalar(perms.len() as f64).ctx(ctx)?;
    let gap = gap.ok_or_else(|| AttribError::Internal("no permutation".into()))?;
    let delta = phi.f_sum_dim_intlist(0, false, Kind::Double).and_then(|s| s.f_sub(&gap)).ctx(ctx)?;
    Ok((phi, delta, coalitions))
}

impl Attribution for ShapleyValueSampling {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "shapley-sampling", multiplies_by_inputs: true, has_convergence_delta: true }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "feature_mask_shapes": mask_json(&self.params.feature_mask),
            "baselines": self.params.baselines.describe(),
            "n_samples": self.params.permutations.as_ref().map_or(self.params.n_samples, Vec::len),
            "sampler": if self.params.permutations.is_some() { "given" } else { self.params.sampler.name() },
            "seed": self.params.seed,
            "batch": self.params.batch,
        })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let groups = Groups::resolve(self.params.feature_mask.as_deref(), &p.inputs, inputs.copies(), p.device)?;
        let g = groups.groups.len();
        let perms = match &self.params.permutations {
            Some(given) => {
                check_permutations(given, g)?;
                given.clone()
            }
            None => draw_permutations(self.params.sampler, self.params.seed, self.params.n_samples, g),
        };
        let sets = baseline_sets(&self.params.baselines, &p, inputs.copies())?;
        let gi = g as i64;
        let (phi, delta, coalitions) = estimate_from_walks(&eval, &p, &groups, &sets, &perms)?;
        let values = group_values_to_elements(&p, &groups, &phi)?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({
            "groups": gi,
            "permutations": perms.len(),
            "coalitions": coalitions,
            "baseline_samples": sets.len(),
            "model_rows": coalitions * p.n * sets.len() as i64,
            "chunk_rows": eval.forward_chunk_rows(),
        });
        Ok(Attributions { values, convergence_delta: Some(delta), meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_draw_permutations_deterministically() {
        for sampler in [Sampler::Random, Sampler::Antithetic, Sampler::Stratified] {
            let a = draw_permutations(sampler, 7, 25, 6);
            assert_eq!(a, draw_permutations(sampler, 7, 25, 6));
            assert_ne!(a, draw_permutations(sampler, 8, 25, 6));
            assert_eq!(a.len(), 25);
            check_permutations(&a, 6).unwrap();
        }
        let a = draw_permutations(Sampler::Antithetic, 1, 4, 5);
        assert_eq!(a[1], a[0].iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(a[3], a[2].iter().rev().copied().collect::<Vec<_>>());
        // A stratified block puts every group at every position once.
        let s = draw_permutations(Sampler::Stratified, 3, 5, 5);
        for pos in 0..5 {
            let mut at: Vec<i64> = s.iter().map(|p| p[pos]).collect();
            at.sort_unstable();
            assert_eq!(at, vec![0, 1, 2, 3, 4]);
        }
        assert!(check_permutations(&[vec![0, 0, 1]], 3).is_err());
        assert!(check_permutations(&[vec![0, 1]], 3).is_err());
    }

    #[test]
    fn walks_share_coalitions() {
        let (z, index) = walk_coalitions(&[vec![0, 1, 2], vec![1, 0, 2], vec![0, 1, 2]], 3).unwrap();
        // ∅, full, {0}, {0,1}, {1}: five distinct coalitions for 12 steps.
        assert_eq!(z.size(), vec![5, 3]);
        assert_eq!(index, vec![0, 2, 3, 1, 0, 4, 3, 1, 0, 2, 3, 1]);
        let rows: Vec<bool> = Vec::<bool>::try_from(z.reshape([-1])).unwrap();
        assert_eq!(&rows[6..9], &[true, false, false]);
        assert_eq!(&rows[12..15], &[false, true, false]);
    }
}
