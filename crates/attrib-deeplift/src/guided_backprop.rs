//! Guided backpropagation (Springenberg et al. 2015, "Striving for Simplicity"; Captum's
//! `GuidedBackprop`): the gradient of the target output, with every ReLU passing back only the
//! positive part of its ordinary gradient.
//!
//! Every ReLU node of the TorchScript graph gets the rule ([`attrib_core::rules`]), including a
//! ReLU module called twice and functional ReLUs, which Captum's module hooks handle only for
//! distinct `nn.ReLU` modules. Other non-linearities keep their ordinary gradient, as in Captum.

use attrib_core::{Attribution, Attributions, BackwardRules, BatchOptions, Inputs, Metadata, MethodInfo, Model, Result, Target};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Parameters of [`GuidedBackprop`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GuidedBackpropParams {
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl GuidedBackpropParams {
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }
    /// Validate into a ready-to-use [`GuidedBackprop`].
    pub fn check(self) -> Result<GuidedBackprop> {
        Ok(GuidedBackprop { params: GuidedBackpropParams { batch: self.batch.check()? } })
    }
}

/// Guided backpropagation (see the [module docs](self)). No baseline, no delta.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuidedBackprop {
    params: GuidedBackpropParams,
}

impl GuidedBackprop {
    /// Parameters with their defaults, to adjust and [`GuidedBackpropParams::check`].
    pub fn params() -> GuidedBackpropParams {
        GuidedBackpropParams::default()
    }
}

/// The gradients of the target outputs under `rules` (guided backprop, deconvolution).
pub(crate) fn rule_gradients(
    info: MethodInfo,
    params: serde_json::Value,
    rules: BackwardRules,
    batch: BatchOptions,
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
) -> Result<Attributions> {
    let start = Instant::now();
    let rewritten = model.with_rules(rules)?;
    let eval = attrib_tensor::Evaluator::new(rewritten.as_ref(), batch)?;
    let p = eval.prepare(inputs, target)?;
    let g = eval.gradients(&p, &attrib_tensor::Expanded::identity(&p.inputs))?;
    let meta = Metadata::new(info, params, p.target.indices().map(<[i64]>::to_vec), start.elapsed());
    Ok(Attributions { values: g.grads, convergence_delta: None, meta })
}

impl Attribution for GuidedBackprop {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "guided-backprop", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or_default()
    }
    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        model.with_rules(BackwardRules::GuidedBackprop).map(Some)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        rule_gradients(self.info(), Attribution::params(self), BackwardRules::GuidedBackprop, self.params.batch, model, inputs, target)
    }
}
