//! Permutation feature importance (Breiman 2001, "Random Forests"; Fisher, Rudin & Dominici
//! 2019; Captum's `FeaturePermutation`).
//!
//! For each feature group `g` a permutation `π_g` of the batch rows (never the identity) is
//! drawn, and `x̃^g_i` takes the values of row `π_g(i)` on the elements of `g` and keeps its own
//! elsewhere. For every element `e` of `g`:
//! `attr[i, e] = F_t(x_i) − F_t(x̃^g_i)`.
//!
//! The permutation of a group is shared by all inputs the group spans (Captum draws one per
//! input tensor); give the permutations explicitly with [`Permutations::Given`] to reproduce a
//! particular run.

use crate::ablation::mask_json;
use crate::engine::{group_attributions, Groups, Source};
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, FeatureMask, Inputs, Metadata, MethodInfo, Model, Result, Target,
    TorchResultExt,
};
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;
use tch::Tensor;

/// Where the permutation of each feature group comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permutations {
    /// Drawn from a seeded generator (SplitMix64 + Fisher–Yates), redrawn while it is the
    /// identity. Same seed, same groups, same batch size: same permutations.
    Seeded(u64),
    /// One permutation of `0..N` per group, in increasing order of group id.
    Given(Vec<Vec<i64>>),
}

impl Default for Permutations {
    fn default() -> Self {
        Permutations::Seeded(0)
    }
}

/// Parameters of [`FeaturePermutation`].
#[derive(Debug, Default)]
pub struct FeaturePermutationParams {
    /// One mask per input; `None`: every scalar element is its own group.
    pub feature_mask: Option<Vec<FeatureMask>>,
    /// The permutations (default: seeded with 0).
    pub permutations: Permutations,
    /// Chunking of the perturbed rows.
    pub batch: BatchOptions,
}

impl FeaturePermutationParams {
    /// Group the elements of a single-input model with `mask`.
    pub fn feature_mask(mut self, mask: FeatureMask) -> Self {
        self.feature_mask = Some(vec![mask]);
        self
    }

    /// One mask per input (a group id shared by several inputs is permuted jointly).
    pub fn feature_masks(mut self, masks: Vec<FeatureMask>) -> Self {
        self.feature_mask = Some(masks);
        self
    }

    /// Draw the permutations from `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.permutations = Permutations::Seeded(seed);
        self
    }

    /// Use these permutations, one per group in increasing order of group id.
    pub fn permutations(mut self, perms: Vec<Vec<i64>>) -> Self {
        self.permutations = Permutations::Given(perms);
        self
    }

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`FeaturePermutation`]. Each given permutation must be a
    /// permutation of `0..N` (checked against the batch at attribution time).
    pub fn check(self) -> Result<FeaturePermutation> {
        Ok(FeaturePermutation { params: FeaturePermutationParams { batch: self.batch.check()?, ..self } })
    }
}

/// Permutation feature importance over a batch (needs at least 2 rows).
#[derive(Debug)]
pub struct FeaturePermutation {
    params: FeaturePermutationParams,
}

impl FeaturePermutation {
    /// Parameters with their defaults, to adjust and [`FeaturePermutationParams::check`].
    pub fn params() -> FeaturePermutationParams {
        FeaturePermutationParams::default()
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a small, well-mixed, seedable generator (the state is
/// the seed).
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Shuffle `v` uniformly in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below_or_eq(i as u64) as usize;
            v.swap(i, j);
        }
    }

    /// Uniform in `0..=bound` (rejection sampling, no modulo bias).
    pub(crate) fn below_or_eq(&mut self, bound: u64) -> u64 {
        let range = bound + 1;
        let zone = u64::MAX - (u64::MAX % range);
        loop {
            let v = self.next();
            if v < zone {
                return v % range;
            }
        }
    }
}

/// `groups` permutations of `0..n`, none the identity, from `seed`.
pub fn seeded_permutations(seed: u64, groups: usize, n: usize) -> Vec<Vec<i64>> {
    let mut rng = SplitMix64(seed);
    (0..groups)
        .map(|_| loop {
            let mut p: Vec<i64> = (0..n as i64).collect();
            rng.shuffle(&mut p);
            if n < 2 || p.iter().enumerate().any(|(i, &v)| v != i as i64) {
                break p;
            }
        })
        .collect()
}

fn check_permutations(perms: &[Vec<i64>], groups: usize, n: i64) -> Result<()> {
    if perms.len() != groups {
        return Err(AttribError::param(
            "permutations",
            format!("{} permutation(s) were given for {groups} feature group(s); give one per group, in increasing order of group id", perms.len()),
        ));
    }
    for (g, p) in perms.iter().enumerate() {
        let mut seen = vec![false; n as usize];
        let ok = p.len() as i64 == n
            && p.iter().all(|&v| {
                (0..n).contains(&v) && !std::mem::replace(&mut seen[v as usize], true)
            });
        if !ok {
            return Err(AttribError::param(
                "permutations",
                format!("permutation {g} ({p:?}) is not a permutation of 0..{n}"),
            ));
        }
    }
    Ok(())
}

impl Attribution for FeaturePermutation {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "feature-permutation", multiplies_by_inputs: true, has_convergence_delta: false }
    }

    fn params(&self) -> serde_json::Value {
        let perms = match &self.params.permutations {
            Permutations::Seeded(s) => json!({ "seed": s }),
            Permutations::Given(v) => json!({ "given": v.len() }),
        };
        json!({
            "feature_mask_shapes": mask_json(&self.params.feature_mask),
            "permutations": perms,
            "batch": self.params.batch,
        })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let n = p.n;
        if n < 2 {
            return Err(AttribError::InputShape(format!(
                "feature permutation shuffles features across the rows of the batch, but the batch has {n} row; pass at least 2 rows"
            )));
        }
        let groups = Groups::resolve(self.params.feature_mask.as_deref(), &p.inputs, inputs.copies(), p.device)?;
        let g = groups.groups.len();
        let perms = match &self.params.permutations {
            Permutations::Seeded(seed) => seeded_permutations(*seed, g, n as usize),
            Permutations::Given(v) => {
                check_permutations(v, g, n)?;
                v.clone()
            }
        };
        let flat: Vec<i64> = perms.iter().flatten().copied().collect();
        // Row r = block * n + sample reads sample perms[block][sample]: flat[r].
        let source = Tensor::f_from_slice(&flat).and_then(|t| t.f_to_device(p.device)).ctx("moving permutations")?;
        let inputs = p.inputs.iter().map(|x| x.f_contiguous().ctx("inputs")).collect::<Result<Vec<_>>>()?;
        let (values, _) = group_attributions(&eval, &p, &groups, &inputs, Source::Rows { host: &flat, tensor: &source })?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({ "groups": g, "model_rows": g as i64 * n + n, "chunk_rows": eval.chunk_rows() });
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_permutations_are_deterministic_and_never_identity() {
        let a = seeded_permutations(7, 50, 3);
        assert_eq!(a, seeded_permutations(7, 50, 3));
        assert_ne!(a, seeded_permutations(8, 50, 3));
        for p in &a {
            let mut s = p.clone();
            s.sort();
            assert_eq!(s, vec![0, 1, 2]);
            assert_ne!(p, &vec![0, 1, 2]);
        }
        assert!(seeded_permutations(1, 10, 2).iter().all(|p| p == &vec![1, 0]));
    }

    #[test]
    fn given_permutations_are_checked() {
        assert!(check_permutations(&[vec![1, 0]], 1, 2).is_ok());
        assert!(check_permutations(&[vec![1, 1]], 1, 2).is_err());
        assert!(check_permutations(&[vec![1, 0]], 2, 2).is_err());
        assert!(check_permutations(&[vec![0, 2]], 1, 2).is_err());
    }
}
