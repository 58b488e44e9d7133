//! Neuron gradient (Captum's `NeuronGradient`): the gradient of one neuron of a layer — an
//! element of the layer's output (or input, Captum's `attribute_to_neuron_input`) picked by
//! `neuron_selector`, one index per dimension after the batch — with respect to the model's
//! inputs, shaped like the inputs. No target: the neuron is the explained output.
//!
//! With fewer indices than the layer has dimensions after the batch, the neuron is the sum of
//! the elements the indices leave (as Captum's slices `(c, slice(None), ...)` do). Negative
//! indices count from the end, as in Python.
//!
//! ```no_run
//! use attrib_core::{Attribution, Inputs, Target, TorchScriptModel};
//! use attrib_layer::NeuronGradient;
//! # fn main() -> attrib_core::Result<()> {
//! let model = TorchScriptModel::load("resnet18.pt", tch::Device::Cpu)?;
//! let x = tch::Tensor::rand([2, 3, 64, 64], (tch::Kind::Float, tch::Device::Cpu));
//! // Channel 7 of layer4 at position (1, 1).
//! let ng = NeuronGradient::params().layer("layer4").neuron_selector(vec![7, 1, 1]).check()?;
//! let attr = ng.attribute(&model, &Inputs::new(x), &Target::None)?; // [2, 3, 64, 64]
//! # Ok(()) }
//! ```

use crate::access::NeuronModel;
use crate::common::{finish, layer_setters, LayerParams};
use attrib_core::{AttribError, Attribution, Attributions, Inputs, MethodInfo, Model, Result, Target};
use attrib_tensor::{Evaluator, Expanded};
use serde_json::json;
use std::time::Instant;

/// Parse a neuron selector written `I,J,...` (or `[I, J, ...]`): integers, negative ones
/// counting from the end.
pub fn parse_neuron_selector(text: &str) -> Result<Vec<i64>> {
    let t = text.trim().trim_start_matches(['[', '(']).trim_end_matches([']', ')']);
    let v: Vec<i64> = t
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().map_err(|_| AttribError::param("neuron_selector", format!("`{s}` in `{text}` is not an integer; write the neuron's indices as I,J,... (one per layer dimension after the batch)"))))
        .collect::<Result<_>>()?;
    check_selector(&v)?;
    Ok(v)
}

/// A selector needs at least one index.
pub(crate) fn check_selector(v: &[i64]) -> Result<()> {
    if v.is_empty() {
        return Err(AttribError::param("neuron_selector", "name the neuron: its indices in the layer's output after the batch dimension, as I,J,... (e.g. 3 for a linear layer, 7,1,1 for channel 7 at row 1, column 1 of a convolution)"));
    }
    Ok(())
}

/// Parameters of [`NeuronGradient`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeuronGradientParams {
    /// The layer (`attribute_to_layer_input`: the neuron is an element of the layer's input),
    /// and the chunking of the model calls.
    pub layer: LayerParams,
    /// The neuron's indices after the batch dimension (Captum's `neuron_selector` as a tuple).
    pub neuron_selector: Vec<i64>,
}

layer_setters!(NeuronGradientParams, neuron_selector);

impl NeuronGradientParams {
    /// Validate into a ready-to-use [`NeuronGradient`].
    pub fn check(self) -> Result<NeuronGradient> {
        check_selector(&self.neuron_selector)?;
        Ok(NeuronGradient { params: NeuronGradientParams { layer: self.layer.check()?, ..self } })
    }
}

/// Neuron gradient (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct NeuronGradient {
    params: NeuronGradientParams,
}

impl NeuronGradient {
    /// Parameters with their defaults (the layer and the neuron must be set).
    pub fn params() -> NeuronGradientParams {
        NeuronGradientParams::default()
    }
}

impl Attribution for NeuronGradient {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "neuron-gradient", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        p.layer.describe(json!({"neuron_selector": p.neuron_selector}))
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let _ = target; // the neuron is the explained output
        let start = Instant::now();
        let p = &self.params;
        let neuron = NeuronModel::new(model, &p.layer.spec(), &p.neuron_selector)?;
        neuron.check_inputs(inputs, "neuron-gradient")?;
        let eval = Evaluator::new(&neuron, p.layer.batch)?;
        let prep = eval.prepare(inputs, &Target::None)?;
        let g = eval.gradients(&prep, &Expanded::identity(&prep.inputs))?;
        finish(self, g.grads, None, None, start)
    }
}
