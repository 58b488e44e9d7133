//! Owen values of feature groups over a hierarchy (Owen 1977; Winter 1989 for several levels;
//! the idea behind SHAP's `PartitionExplainer`).
//!
//! The groups of the feature mask are the leaves of a tree: superpixels merged into regions,
//! tabular features into blocks. The Owen value of a group is its average marginal contribution
//! over the orders of all groups in which the groups below every node of the tree come one
//! after another, each node ordering its children uniformly and independently. Equivalently,
//! for a group `i` whose path from the root passes through the nodes `a_1, …, a_L = i`, with
//! `P_k` the siblings of `a_k` (the other children of `a_{k−1}`, `m_k = |P_k| + 1` children in
//! all) and `L(T)` the groups below the nodes of `T`:
//!
//! `φ_i = Σ_{T_1 ⊆ P_1} … Σ_{T_L ⊆ P_L} Π_k w_{m_k}(|T_k|) · (v(Q ∪ {i}) − v(Q))`,
//! `Q = L(T_1) ∪ … ∪ L(T_L)`, `w_m(t) = t! (m − t − 1)! / m!`.
//!
//! With all groups children of the root this is the Shapley value. The values are efficient
//! (`Σ φ = v(all) − v(∅)`), and a group the model ignores gets zero.
//!
//! [`OwenMode::Exact`] evaluates every coalition `Q` and `Q ∪ {i}` of the formula (each distinct
//! coalition once, all rows and coalitions as one batch through the coalition engine):
//! `Σ_i Π_k 2^(m_k − 1)` differences, about `G²` for a balanced binary tree against `G · 2^(G−1)`
//! for the flat one. [`OwenMode::Sampled`] draws `n_samples` orders consistent with the
//! hierarchy (seeded; antithetic pairs by default: an order followed by its reverse, which is
//! consistent too) and averages the walks as Shapley value sampling does; every walk telescopes,
//! so the estimate is efficient exactly.

use crate::ablation::mask_json;
use crate::coalition::{baseline_sets, group_values_to_elements, mean_coalition_outputs};
use crate::engine::Groups;
use crate::shapley::hierarchy::{auto_tree, consistent_orders, exact_terms, Tree};
use crate::shapley::sampling::estimate_from_walks;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, FeatureMask, Inputs, Metadata, MethodInfo, Model, Result,
    Target, TorchResultExt,
};
use attrib_tensor::Evaluator;
pub use crate::shapley::hierarchy::Hierarchy;
use serde_json::json;
use std::time::Instant;
use tch::{Kind, Tensor};

/// [`OwenMode::Auto`] computes exact values when they need at most this many coalition
/// differences per row (and samples otherwise).
pub const AUTO_EXACT_TERMS: u64 = 1 << 16;
/// The most coalition differences per row [`OwenMode::Exact`] takes.
pub const MAX_EXACT_TERMS: u64 = 1 << 22;

/// How [`OwenValues`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwenMode {
    /// Exact when the hierarchy needs at most [`AUTO_EXACT_TERMS`] differences per row.
    #[default]
    Auto,
    /// Every coalition of the formula (refused above [`MAX_EXACT_TERMS`] differences per row).
    Exact,
    /// `n_samples` orders consistent with the hierarchy.
    Sampled,
}

impl std::str::FromStr for OwenMode {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<OwenMode> {
        match s {
            "auto" => Ok(OwenMode::Auto),
            "exact" => Ok(OwenMode::Exact),
            "sampled" => Ok(OwenMode::Sampled),
            other => Err(AttribError::param("mode", format!("unknown mode `{other}`; use auto, exact or sampled"))),
        }
    }
}

/// Parameters of [`OwenValues`]. Defaults: the automatic hierarchy, exact values where
/// affordable, otherwise 25 antithetic orders from seed 0; zero baselines, one group per
/// scalar element, chunks from the memory budget.
#[derive(Debug)]
pub struct OwenValuesParams {
    /// The value a feature outside the coalition takes (default zeros); a
    /// [`attrib_core::Baseline::Distribution`] averages the values over its samples.
    pub baselines: Baselines,
    /// One mask per input; `None`: every scalar element is its own group.
    pub feature_mask: Option<Vec<FeatureMask>>,
    /// The tree over the groups.
    pub hierarchy: Hierarchy,
    /// Exact, sampled, or chosen from the size of the hierarchy.
    pub mode: OwenMode,
    /// Orders drawn when sampling.
    pub n_samples: usize,
    /// Every other order the reverse of the one before (default true).
    pub antithetic: bool,
    /// Seed of the orders.
    pub seed: u64,
    /// Chunking of the coalition rows.
    pub batch: BatchOptions,
}

impl Default for OwenValuesParams {
    fn default() -> Self {
        OwenValuesParams {
            baselines: Baselines::default(),
            feature_mask: None,
            hierarchy: Hierarchy::Auto,
            mode: OwenMode::Auto,
            n_samples: 25,
            antithetic: true,
            seed: 0,
            batch: BatchOptions::default(),
        }
    }
}

impl OwenValuesParams {
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
    /// Set the hierarchy.
    pub fn hierarchy(mut self, hierarchy: Hierarchy) -> Self {
        self.hierarchy = hierarchy;
        self
    }
    /// Set the mode.
    pub fn mode(mut self, mode: OwenMode) -> Self {
        self.mode = mode;
        self
    }
    /// Orders drawn when sampling.
    pub fn n_samples(mut self, n: usize) -> Self {
        self.n_samples = n;
        self
    }
    /// Antithetic orders (or independent ones).
    pub fn antithetic(mut self, yes: bool) -> Self {
        self.antithetic = yes;
        self
    }
    /// Seed of the orders.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }
    /// Validate into a ready-to-use [`OwenValues`].
    pub fn check(self) -> Result<OwenValues> {
        if self.mode != OwenMode::Exact && self.n_samples == 0 {
            return Err(AttribError::param("n_samples", "the number of sampled orders must be at least 1"));
        }
        Ok(OwenValues { params: OwenValuesParams { batch: self.batch.check()?, ..self } })
    }
}

/// Owen values of feature groups over a hierarchy, given to every element of the group.
///
/// The convergence delta is the efficiency gap per row, `Σ_g φ_g − (F_t(x) − F_t(b))`, zero up to
/// rounding in both modes.
#[derive(Debug)]
pub struct OwenValues {
    params: OwenValuesParams,
}

impl OwenValues {
    /// Parameters with their defaults, to adjust and [`OwenValuesParams::check`].
    pub fn params() -> OwenValuesParams {
        OwenValuesParams::default()
    }
}

impl Attribution for OwenValues {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "owen-values", multiplies_by_inputs: true, has_convergence_delta: true }
    }

    fn params(&self) -> serde_json::Value {
        let h = match &self.params.hierarchy {
            Hierarchy::Auto => json!("auto"),
            Hierarchy::Flat => json!("flat"),
            Hierarchy::Parents(p) => json!(p),
        };
        json!({
            "feature_mask_shapes": mask_json(&self.params.feature_mask),
            "baselines": self.params.baselines.describe(),
            "hierarchy": h,
            "mode": format!("{:?}", self.params.mode).to_lowercase(),
            "n_samples": self.params.n_samples,
            "antithetic": self.params.antithetic,
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
        let tree = match &self.params.hierarchy {
            Hierarchy::Auto => auto_tree(&groups, &p.inputs)?,
            Hierarchy::Flat => Tree::flat(g),
            Hierarchy::Parents(pairs) => Tree::from_parents(pairs, &groups.groups)?,
        };
        let terms = tree.exact_terms(g);
        let exact = match self.params.mode {
            OwenMode::Auto => terms <= AUTO_EXACT_TERMS,
            OwenMode::Sampled => false,
            OwenMode::Exact if terms > MAX_EXACT_TERMS => {
                return Err(AttribError::param(
                    "mode",
                    format!("exact Owen values of this hierarchy need {terms} coalition differences per row (at most {MAX_EXACT_TERMS}); use mode sampled, a deeper hierarchy or a coarser feature_mask"),
                ))
            }
            OwenMode::Exact => true,
        };
        let sets = baseline_sets(&self.params.baselines, &p, inputs.copies())?;
        let ctx = "Owen values";
        let (phi, delta, coalitions) = if exact {
            let t = exact_terms(&tree, g)?;
            let v = mean_coalition_outputs(&eval, &p, &groups, &sets, &t.z)?;
            let dev = p.device;
            let idx = |x: &[i64]| Tensor::f_from_slice(x).and_then(|t| t.f_to_device(dev)).ctx(ctx);
            let w = Tensor::f_from_slice(&t.weight).and_then(|w| w.f_to_device(dev)?.f_unsqueeze(1)).ctx(ctx)?;
            let (with, without, leaf) = (idx(&t.with)?, idx(&t.without)?, idx(&t.leaf)?);
            let diff = v.f_index_select(0, &with).and_then(|a| a.f_sub(&v.f_index_select(0, &without)?)).ctx(ctx)?;
            let phi = Tensor::f_zeros([g as i64, p.n], (Kind::Double, dev)).and_then(|z| z.f_index_add(0, &leaf, &diff.f_mul(&w)?)).ctx(ctx)?;
            let gap = v.f_get(1).and_then(|full| full.f_sub(&v.f_get(0)?)).ctx(ctx)?;
            let delta = phi.f_sum_dim_intlist(0, false, Kind::Double).and_then(|s| s.f_sub(&gap)).ctx(ctx)?;
            (phi, delta, t.z.size()[0])
        } else {
            let orders = consistent_orders(&tree, self.params.seed, self.params.n_samples, self.params.antithetic);
            estimate_from_walks(&eval, &p, &groups, &sets, &orders)?
        };
        let values = group_values_to_elements(&p, &groups, &phi)?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({
            "groups": g,
            "exact": exact,
            "depth": tree.depth(g),
            "inner_nodes": tree.leaf.iter().filter(|l| l.is_none()).count(),
            "exact_terms": terms,
            "coalitions": coalitions,
            "baseline_samples": sets.len(),
            "model_rows": coalitions * p.n * sets.len() as i64,
            "chunk_rows": eval.forward_chunk_rows(),
        });
        Ok(Attributions { values, convergence_delta: Some(delta), meta })
    }
}

