//! The two views of a model with a layer exposed that the shared evaluator runs, so that the
//! layer methods get its chunking, targets and gradients without re-implementing them:
//!
//! - [`read_activations`]: the layer's values for every row (the "model" whose output is the
//!   layer's value);
//! - [`Substituted`]: the model as a function of the layer's value, the original inputs passed
//!   as forward arguments (expanded with the rows like any other), so that the evaluator's
//!   gradients are taken with respect to the layer and its targets are the model's.

use attrib_core::{AttribError, BatchOptions, ForwardArg, Inputs, Layer, LayerAccess, LayerModule, Model, Result, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded};
use std::sync::Arc;
use tch::Tensor;

/// The layer's value as the output of forward.
struct ReadLayer {
    inner: Arc<LayerModule>,
}

impl Model for ReadLayer {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        self.inner.forward_with_layer(inputs, extra, None).map(|(_, layer)| layer)
    }
    fn device(&self) -> tch::Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The model as a function of the layer's value: `inputs = [layer value]`, `extra = [the model's
/// inputs..., its own forward arguments...]`.
pub(crate) struct Substituted {
    inner: Arc<LayerModule>,
    /// How many of the forward arguments are the model's inputs.
    model_inputs: usize,
}

impl Model for Substituted {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let value = inputs.first().ok_or_else(|| AttribError::NotApplicable("no layer value given".into()))?;
        let xs: Vec<Tensor> = extra[..self.model_inputs]
            .iter()
            .map(|a| match a {
                ForwardArg::Tensor(t) => Ok(t.shallow_clone()),
                _ => Err(AttribError::NotApplicable("a model input that is not a tensor".into())),
            })
            .collect::<Result<_>>()?;
        self.inner.forward_with_layer(&xs, &extra[self.model_inputs..], Some(value)).map(|(out, _)| out)
    }
    fn device(&self) -> tch::Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The model's inputs (and forward arguments) validated and on `device`.
fn on_device(inputs: &Inputs, device: tch::Device) -> Result<(Vec<Tensor>, Vec<ForwardArg>)> {
    inputs.validate()?;
    let xs = inputs.tensors().iter().map(|t| t.f_to_device(device).and_then(|t| t.f_detach()).ctx("moving inputs to the model's device")).collect::<Result<_>>()?;
    let extra = inputs
        .extra()
        .iter()
        .map(|a| match a {
            ForwardArg::Tensor(t) => t.f_to_device(device).map(ForwardArg::Tensor).ctx("moving forward arguments"),
            other => Ok(other.shallow_clone()),
        })
        .collect::<Result<_>>()?;
    Ok((xs, extra))
}

/// The layer's value for every row of `inputs` (no gradients), `[N, ...]` as the layer gives it.
pub(crate) fn read_activations(model: &dyn Model, layer: &Layer, batch: BatchOptions, inputs: &Inputs) -> Result<Tensor> {
    let read = ReadLayer { inner: model.with_layer(layer, LayerAccess::Read)? };
    let (xs, extra) = on_device(inputs, read.device())?;
    let eval = Evaluator::new(&read, batch)?;
    let values = eval.raw_outputs(&extra, &Expanded::identity(&xs))?;
    Ok(values)
}

/// The model as a function of `layer` (see [`Substituted`]), and the inputs for the evaluator
/// with `value` as the attributed tensor (`[N, ...]`, one row per input row).
pub(crate) fn substituted(model: &dyn Model, layer: &Layer, inputs: &Inputs, value: Tensor) -> Result<(Substituted, Inputs)> {
    let inner = model.with_layer(layer, LayerAccess::Substitute)?;
    let (xs, extra) = on_device(inputs, inner.device())?;
    let model_inputs = xs.len();
    let args: Vec<ForwardArg> = xs.into_iter().map(ForwardArg::Tensor).chain(extra).collect();
    Ok((Substituted { inner, model_inputs }, Inputs::new(value).with_extra(args)))
}

/// The layer's activations and the gradients of the target outputs with respect to them, both
/// `[N, ...]`, with the resolved targets (one per row, if any).
pub(crate) struct LayerGradients {
    pub activations: Tensor,
    pub gradients: Tensor,
    pub targets: Option<Vec<i64>>,
}

/// Activations of `layer` and the gradients of `target` with respect to them.
pub(crate) fn layer_gradients(model: &dyn Model, layer: &Layer, batch: BatchOptions, inputs: &Inputs, target: &attrib_core::Target) -> Result<LayerGradients> {
    let activations = read_activations(model, layer, batch, inputs)?;
    let (sub, sub_inputs) = substituted(model, layer, inputs, activations.shallow_clone())?;
    let eval = Evaluator::new(&sub, batch)?;
    let p = eval.prepare(&sub_inputs, target)?;
    let g = eval.gradients(&p, &Expanded::identity(&p.inputs))?;
    let gradients = g.grads.into_iter().next().ok_or_else(|| AttribError::NotApplicable("no layer gradient".into()))?;
    Ok(LayerGradients { activations, gradients, targets: p.target.indices().map(<[i64]>::to_vec) })
}
