//! Deconvolution (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks";
//! Captum's `Deconvolution`): the gradient of the target output, with every ReLU passing back
//! the positive part of the incoming gradient whatever its forward input.
//!
//! Every ReLU node of the TorchScript graph gets the rule ([`attrib_core::rules`]); other
//! non-linearities keep their ordinary gradient, as in Captum.

use crate::guided_backprop::rule_gradients;
use attrib_core::{Attribution, Attributions, BackwardRules, BatchOptions, Inputs, MethodInfo, Model, Result, Target};
use serde::{Deserialize, Serialize};

/// Parameters of [`Deconvolution`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DeconvolutionParams {
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl DeconvolutionParams {
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }
    /// Validate into a ready-to-use [`Deconvolution`].
    pub fn check(self) -> Result<Deconvolution> {
        Ok(Deconvolution { params: DeconvolutionParams { batch: self.batch.check()? } })
    }
}

/// Deconvolution (see the [module docs](self)). No baseline, no delta.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deconvolution {
    params: DeconvolutionParams,
}

impl Deconvolution {
    /// Parameters with their defaults, to adjust and [`DeconvolutionParams::check`].
    pub fn params() -> DeconvolutionParams {
        DeconvolutionParams::default()
    }
}

impl Attribution for Deconvolution {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "deconvolution", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or_default()
    }
    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        model.with_rules(BackwardRules::Deconvolution).map(Some)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        rule_gradients(self.info(), Attribution::params(self), BackwardRules::Deconvolution, self.params.batch, model, inputs, target)
    }
}
