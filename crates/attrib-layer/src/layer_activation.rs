//! Layer activation (Captum's `LayerActivation`): the values a layer computes for each input
//! row, shaped like the layer's output (or input, with `attribute_to_layer_input`). No target:
//! the activations do not depend on one.

use crate::access::read_activations;
use crate::common::{finish, layer_setters, LayerParams};
use attrib_core::{Attribution, Attributions, Inputs, MethodInfo, Model, Result, Target};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Parameters of [`LayerActivation`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerActivationParams {
    /// The layer, and the chunking of the model calls.
    #[serde(flatten)]
    pub layer: LayerParams,
}

layer_setters!(LayerActivationParams);

impl LayerActivationParams {
    /// Validate into a ready-to-use [`LayerActivation`].
    pub fn check(self) -> Result<LayerActivation> {
        Ok(LayerActivation { params: LayerActivationParams { layer: self.layer.check()? } })
    }
}

/// Layer activation (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct LayerActivation {
    params: LayerActivationParams,
}

impl LayerActivation {
    /// Parameters with their defaults (the layer must be set), to adjust and
    /// [`LayerActivationParams::check`].
    pub fn params() -> LayerActivationParams {
        LayerActivationParams::default()
    }
}

impl Attribution for LayerActivation {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "layer-activation", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let _ = target; // activations do not depend on the target
        let start = Instant::now();
        let p = &self.params.layer;
        let values = read_activations(model, &p.spec(), p.batch, inputs)?;
        finish(self, vec![values], None, None, start)
    }
}
