//! Parameters every layer method takes.

use attrib_core::{AttribError, BatchOptions, Layer, Result};
use serde::{Deserialize, Serialize};

/// The layer a method attributes to, and the chunking of the model calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerParams {
    /// The layer's submodule path, as `named_modules()` prints it (`layer4`, `layer3.1.conv2`,
    /// `features.3`). Required.
    pub layer: String,
    /// Attribute to the layer's input instead of its output (Captum's
    /// `attribute_to_layer_input`, default `false`).
    #[serde(default)]
    pub attribute_to_layer_input: bool,
    /// Chunking of the model calls.
    #[serde(default)]
    pub batch: BatchOptions,
}

impl LayerParams {
    /// Validate: a layer name is required.
    pub fn check(self) -> Result<LayerParams> {
        if self.layer.trim().is_empty() {
            return Err(AttribError::param("layer", "name the layer to attribute to, by its submodule path as named_modules() prints it (e.g. layer4, layer3.1.conv2, features.3)"));
        }
        Ok(LayerParams { layer: self.layer, attribute_to_layer_input: self.attribute_to_layer_input, batch: self.batch.check()? })
    }

    /// The layer as attrib-core names it.
    pub fn spec(&self) -> Layer {
        Layer { name: self.layer.clone(), input: self.attribute_to_layer_input }
    }
}
