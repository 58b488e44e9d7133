//! Feature ablation (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional
//! Networks", the perturbation view; Captum's `FeatureAblation`).
//!
//! For each feature group `g` and row `i`:
//! `attr[i, e] = F_t(x_i) − F_t(x_i with every element of g set to its baseline)` for every
//! element `e` of `g`. Without a mask every scalar element is its own group. A group id used in
//! the masks of several inputs is ablated in all of them at once (Captum 0.9's cross-tensor
//! groups).

use crate::engine::{group_attributions, Groups, Source};
use attrib_core::{
    Attribution, Attributions, BatchOptions, Baselines, FeatureMask, Inputs, Metadata, MethodInfo, Model, PlannedRows, Result, Target,
};
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;

/// Parameters of [`FeatureAblation`].
///
/// Defaults match Captum: zero baselines, one group per scalar element, and (unlike Captum's
/// `perturbations_per_eval=1`) chunks sized from the memory budget.
#[derive(Debug, Default)]
pub struct FeatureAblationParams {
    /// The value each ablated element takes (default: zeros).
    pub baselines: Baselines,
    /// One mask per input; `None`: every scalar element is its own group.
    pub feature_mask: Option<Vec<FeatureMask>>,
    /// Chunking of the perturbed rows (`max_batch`: rows per model call).
    pub batch: BatchOptions,
}

impl FeatureAblationParams {
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

    /// One mask per input (a group id shared by several inputs is ablated jointly).
    pub fn feature_masks(mut self, masks: Vec<FeatureMask>) -> Self {
        self.feature_mask = Some(masks);
        self
    }

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`FeatureAblation`].
    pub fn check(self) -> Result<FeatureAblation> {
        Ok(FeatureAblation { params: FeatureAblationParams { batch: self.batch.check()?, ..self } })
    }
}

/// Feature ablation: the change of the target output when a feature group is replaced by its
/// baseline, given to every element of the group.
///
/// Global attribution (compares with a baseline); no convergence delta. On a linear model
/// `F(x) = w·x + c` the attribution of group `g` is `Σ_{e∈g} w_e (x_e − b_e)`.
#[derive(Debug)]
pub struct FeatureAblation {
    params: FeatureAblationParams,
}

impl FeatureAblation {
    /// Parameters with their defaults, to adjust and [`FeatureAblationParams::check`].
    pub fn params() -> FeatureAblationParams {
        FeatureAblationParams::default()
    }
}

pub(crate) fn mask_json(masks: &Option<Vec<FeatureMask>>) -> serde_json::Value {
    match masks {
        None => serde_json::Value::Null,
        Some(v) => json!(v.iter().map(|m| m.ids().size()).collect::<Vec<_>>()),
    }
}



impl Attribution for FeatureAblation {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "feature-ablation", multiplies_by_inputs: true, has_convergence_delta: false }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "feature_mask_shapes": mask_json(&self.params.feature_mask),
            "baselines": self.params.baselines.describe(),
            "batch": self.params.batch,
        })
    }

    /// One perturbed row per group and sample, then the samples themselves.
    fn planned_rows(&self, inputs: &Inputs) -> Option<PlannedRows> {
        let groups = match self.params.feature_mask.as_deref() {
            None => inputs.tensors().iter().map(|x| x.size()[1..].iter().product::<i64>()).sum(),
            Some(masks) => {
                let mut all = std::collections::BTreeSet::new();
                for m in masks {
                    all.extend(m.groups().ok()?);
                }
                all.len() as i64
            }
        };
        PlannedRows::per_sample(inputs, groups + 1, false)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let groups = Groups::resolve(self.params.feature_mask.as_deref(), &p.inputs, inputs.copies(), p.device)?;
        let base = self.params.baselines.resolve_copies(&p.inputs, inputs.copies())?;
        let (values, blocks) = group_attributions(&eval, &p, &groups, &base, Source::Own)?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({ "groups": blocks, "model_rows": blocks * p.n + p.n, "chunk_rows": eval.chunk_rows() });
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}
