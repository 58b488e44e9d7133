//! Layer gradient × activation (Captum's `LayerGradientXActivation`): the gradient of the
//! target output with respect to a layer's output (or input), times that output, shaped like it.
//! With `multiply_by_inputs = false`, the gradient alone (Captum's option of the same name).

use crate::access::layer_gradients;
use crate::common::{finish, layer_setters, LayerParams};
use attrib_core::{Attribution, Attributions, Inputs, MethodInfo, Model, Result, Target, TorchResultExt};
use serde::{Deserialize, Serialize};
use std::time::Instant;

fn yes() -> bool {
    true
}

/// Parameters of [`LayerGradientXActivation`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerGradientXActivationParams {
    /// The layer, and the chunking of the model calls.
    #[serde(flatten)]
    pub layer: LayerParams,
    /// Multiply the gradient by the activation (Captum's default, `true`); `false` returns the
    /// layer gradient.
    #[serde(default = "yes")]
    pub multiply_by_inputs: bool,
}

impl Default for LayerGradientXActivationParams {
    fn default() -> Self {
        LayerGradientXActivationParams { layer: LayerParams::default(), multiply_by_inputs: true }
    }
}

layer_setters!(LayerGradientXActivationParams, multiply_by_inputs);

impl LayerGradientXActivationParams {
    /// Validate into a ready-to-use [`LayerGradientXActivation`].
    pub fn check(self) -> Result<LayerGradientXActivation> {
        Ok(LayerGradientXActivation { params: LayerGradientXActivationParams { layer: self.layer.check()?, ..self } })
    }
}

/// Layer gradient × activation (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct LayerGradientXActivation {
    params: LayerGradientXActivationParams,
}

impl LayerGradientXActivation {
    /// Parameters with their defaults (the layer must be set).
    pub fn params() -> LayerGradientXActivationParams {
        LayerGradientXActivationParams::default()
    }
}

impl Attribution for LayerGradientXActivation {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "layer-gradient-x-activation", multiplies_by_inputs: self.params.multiply_by_inputs, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let p = &self.params.layer;
        let g = layer_gradients(model, &p.spec(), p.batch, inputs, target)?;
        let values = if self.params.multiply_by_inputs {
            g.gradients.f_mul(&g.activations).ctx("gradient × activation")?
        } else {
            g.gradients
        };
        finish(self, vec![values], None, g.targets, start)
    }
}
