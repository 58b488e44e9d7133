//! Exact Shapley values of feature groups: every one of the `2^G` coalitions of every row is
//! evaluated (one expanded batch through the shared evaluator), then
//! `φ_g = Σ_S c_g(S) v(S)` with `c_g(S) = w(|S| − 1)` when `g ∈ S` and `−w(|S|)` otherwise,
//! `w(s) = s! (G − s − 1)! / G!` — the Shapley formula with each coalition's value collected once.
//!
//! Refused above [`MAX_EXACT_GROUPS`] groups (2^20 coalitions per row); the sampling methods
//! estimate larger problems. With a background distribution (baseline samples `[S, ...]`,
//! [`attrib_core::Baseline::Distribution`]) the values are averaged over the samples
//! (interventional SHAP): `v(S)` is the mean output over the background.

use crate::ablation::mask_json;
use crate::coalition::{all_coalitions, baseline_sets, group_values_to_elements, mean_coalition_outputs};
use crate::engine::Groups;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, FeatureMask, Inputs, Metadata, MethodInfo, Model, Result,
    Target, TorchResultExt,
};
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;
use tch::{Kind, Tensor};

/// The most feature groups [`ExactShapley`] takes (2^20 ≈ 10^6 coalitions per row).
pub const MAX_EXACT_GROUPS: usize = 20;

/// Parameters of [`ExactShapley`]: zero baselines, one group per scalar element (refused when
/// that makes more than [`MAX_EXACT_GROUPS`] groups), chunks from the memory budget.
#[derive(Debug, Default)]
pub struct ExactShapleyParams {
    /// The value a feature outside the coalition takes (default zeros); a
    /// [`attrib_core::Baseline::Distribution`] averages the values over its samples.
    pub baselines: Baselines,
    /// One mask per input; `None`: every scalar element is its own group.
    pub feature_mask: Option<Vec<FeatureMask>>,
    /// Chunking of the coalition rows.
    pub batch: BatchOptions,
}

impl ExactShapleyParams {
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

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`ExactShapley`].
    pub fn check(self) -> Result<ExactShapley> {
        Ok(ExactShapley { params: ExactShapleyParams { batch: self.batch.check()?, ..self } })
    }
}

/// Exact Shapley values of feature groups (all coalitions), given to every element of the group.
///
/// The convergence delta is the efficiency gap per row, `Σ_g φ_g − (F_t(x) − F_t(b))` (over
/// groups, not elements), zero up to rounding.
#[derive(Debug)]
pub struct ExactShapley {
    params: ExactShapleyParams,
}

impl ExactShapley {
    /// Parameters with their defaults, to adjust and [`ExactShapleyParams::check`].
    pub fn params() -> ExactShapleyParams {
        ExactShapleyParams::default()
    }
}

/// `w(s) = s! (G − s − 1)! / G! = 1 / (G · C(G − 1, s))` for `s = 0..G`.
pub(crate) fn shapley_weights(g: usize) -> Vec<f64> {
    let mut binom = 1.0f64;
    (0..g)
        .map(|s| {
            let w = 1.0 / (g as f64 * binom);
            binom = binom * (g - 1 - s) as f64 / (s + 1) as f64;
            w
        })
        .collect()
}

/// Shapley values `[G, n]` from the values `v` (`[2^G, n]`, row `s` the coalition of the bits of
/// `s`, as [`all_coalitions`] orders them): for each group `g`,
/// `φ_g = Σ_{S ∌ g} w(|S|) (v(S ∪ {g}) − v(S))` — differences first, so that a group the model
/// ignores gets exactly zero, then one weighted sum over the `2^(G−1)` pairs.
pub(crate) fn shapley_from_all(v: &Tensor, g: i64) -> Result<Tensor> {
    let ctx = "Shapley weights";
    let device = v.device();
    let w = Tensor::f_from_slice(&shapley_weights(g as usize)).and_then(|t| t.f_to_device(device)).ctx(ctx)?;
    let half = 1i64 << (g - 1).max(0);
    let s = Tensor::f_arange(half, (Kind::Int64, device)).ctx(ctx)?;
    let mut rows = Vec::with_capacity(g as usize);
    for j in 0..g {
        // The coalitions without j: the bits of s with a 0 inserted at position j.
        let low = s.f_bitwise_and((1i64 << j) - 1).ctx(ctx)?;
        let without = s.f_bitwise_right_shift_tensor_scalar(j).and_then(|h| h.f_bitwise_left_shift_tensor_scalar(j + 1)).and_then(|h| h.f_bitwise_or_tensor(&low)).ctx(ctx)?;
        let with = without.f_bitwise_or(1i64 << j).ctx(ctx)?;
        let size = popcount(&without)?;
        let diff = v.f_index_select(0, &with).and_then(|a| a.f_sub(&v.f_index_select(0, &without)?)).ctx(ctx)?;
        rows.push(w.f_index_select(0, &size).and_then(|ws| ws.f_unsqueeze(0)?.f_matmul(&diff)).ctx(ctx)?);
    }
    if rows.is_empty() {
        return Tensor::f_zeros([0, v.size()[1]], (Kind::Double, device)).ctx(ctx);
    }
    Tensor::f_cat(&rows, 0).ctx(ctx)
}

/// The number of set bits of each (non-negative, < 2^32) value.
fn popcount(t: &Tensor) -> Result<Tensor> {
    let ctx = "counting coalition sizes";
    let mut count = t.f_zeros_like().ctx(ctx)?;
    for b in 0..MAX_EXACT_GROUPS as i64 {
        count = t.f_bitwise_right_shift_tensor_scalar(b).and_then(|x| x.f_bitwise_and(1)).and_then(|x| count.f_add(&x)).ctx(ctx)?;
    }
    Ok(count)
}

impl Attribution for ExactShapley {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "exact-shapley", multiplies_by_inputs: true, has_convergence_delta: true }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "feature_mask_shapes": mask_json(&self.params.feature_mask),
            "baselines": self.params.baselines.describe(),
            "batch": self.params.batch,
        })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let groups = Groups::resolve(self.params.feature_mask.as_deref(), &p.inputs, inputs.copies(), p.device)?;
        let g = groups.groups.len();
        if g > MAX_EXACT_GROUPS {
            return Err(AttribError::param(
                "feature_mask",
                format!(
                    "exact Shapley values evaluate all 2^G coalitions and take at most {MAX_EXACT_GROUPS} feature groups; these inputs and masks make {g}{}. Give a coarser feature_mask (e.g. grid:HxW patches or slic:N), or estimate with shapley-sampling or kernel-shap",
                    if self.params.feature_mask.is_none() { " (one per scalar element: no mask was given)" } else { "" }
                ),
            ));
        }
        let sets = baseline_sets(&self.params.baselines, &p, inputs.copies())?;
        let g = g as i64;
        let z = all_coalitions(g, p.device)?;
        let v = mean_coalition_outputs(&eval, &p, &groups, &sets, &z)?;
        let phi = shapley_from_all(&v, g)?;
        let values = group_values_to_elements(&p, &groups, &phi)?;
        let gap = v.f_get(-1).and_then(|full| full.f_sub(&v.f_get(0)?)).ctx("efficiency gap")?;
        let delta = phi.f_sum_dim_intlist(0, false, Kind::Double).and_then(|s| s.f_sub(&gap)).ctx("efficiency gap")?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({
            "groups": g,
            "coalitions": 1i64 << g,
            "baseline_samples": sets.len(),
            "model_rows": (1i64 << g) * p.n * sets.len() as i64,
            "chunk_rows": eval.forward_chunk_rows(),
        });
        Ok(Attributions { values, convergence_delta: Some(delta), meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_over_the_coalitions_without_a_player() {
        for g in 1..=20usize {
            let w = shapley_weights(g);
            // Σ_S w(|S|) over S ⊆ G∖{g}: C(G−1, s) coalitions of size s.
            let mut binom = 1.0;
            let mut total = 0.0;
            for (s, ws) in w.iter().enumerate() {
                total += binom * ws;
                binom = binom * (g - 1 - s) as f64 / (s + 1) as f64;
            }
            assert!((total - 1.0).abs() < 1e-12, "G = {g}: {total}");
        }
        // G = 3: 1/3, 1/6, 1/3.
        let w = shapley_weights(3);
        assert!((w[0] - 1.0 / 3.0).abs() < 1e-15 && (w[1] - 1.0 / 6.0).abs() < 1e-15 && (w[2] - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn glove_game_by_hand() {
        // Players 0, 1 (left gloves), 2 (right glove): v(S) = 1 when S holds a pair. Known
        // values: 1/6, 1/6, 2/3.
        let v: Vec<f64> = (0..8i64).map(|s| f64::from(u8::from((s & 3) != 0 && (s & 4) != 0))).collect();
        let phi = shapley_from_all(&Tensor::from_slice(&v).reshape([8, 1]), 3).unwrap();
        let phi = Vec::<f64>::try_from(phi.reshape([-1])).unwrap();
        for (a, b) in phi.iter().zip([1.0 / 6.0, 1.0 / 6.0, 2.0 / 3.0]) {
            assert!((a - b).abs() < 1e-15, "{phi:?}");
        }
    }
}
