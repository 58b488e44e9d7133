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
    inputs.validate_token_ids()?;
    attrib_tensor::eval::inputs_on_device(inputs, device)
}

/// The layer's value for every row of `inputs` (no gradients), `[N, ...]` as the layer gives it.
pub(crate) fn read_activations(model: &dyn Model, layer: &Layer, batch: BatchOptions, inputs: &Inputs) -> Result<Tensor> {
    let read = ReadLayer { inner: model.with_layer(layer, LayerAccess::Read)? };
    let (xs, extra) = on_device(inputs, read.device())?;
    read.inner.check_token_inputs(inputs)?;
    let eval = Evaluator::new(&read, batch)?;
    let values = eval.raw_outputs(&extra, &Expanded::identity(&xs))?;
    Ok(values)
}

/// The model as a function of `layer` (see [`Substituted`]), and the inputs for the evaluator
/// with `value` as the attributed tensor (`[N, ...]`, one row per input row).
pub(crate) fn substituted(model: &dyn Model, layer: &Layer, inputs: &Inputs, value: Tensor) -> Result<(Substituted, Inputs)> {
    let inner = model.with_layer(layer, LayerAccess::Substitute)?;
    let (xs, extra) = on_device(inputs, inner.device())?;
    inner.check_token_inputs(inputs)?;
    if !value.is_floating_point() {
        return Err(AttribError::NotApplicable(format!(
            "the value of layer {} is {:?} (token ids?), which has no gradient; attribute to a layer with a floating-point value, such as the embedding's output",
            layer.describe(),
            value.kind()
        )));
    }
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

/// The layer's values at every row of an expanded batch of the model's inputs (no gradients),
/// `[batch.total(), ...]`: the values along a path of inputs (layer conductance). `extra` are the
/// model's forward arguments (on the model's device), expanded with the rows.
pub(crate) fn read_activations_expanded(model: &dyn Model, layer: &Layer, batch_options: BatchOptions, extra: &[ForwardArg], batch: &Expanded) -> Result<Tensor> {
    let read = ReadLayer { inner: model.with_layer(layer, LayerAccess::Read)? };
    let eval = Evaluator::new(&read, batch_options)?;
    eval.raw_outputs(extra, batch)
}

/// The model as a function of the layer's value where the model's inputs vary row by row too:
/// `inputs = [layer value, model inputs...]`, `extra` = the model's forward arguments. The model's
/// inputs are detached inside forward, so gradients are taken with respect to the layer's value
/// only (backward stops at the layer; the inputs' gradients come back as zeros).
pub(crate) struct PathSubstituted {
    inner: Arc<LayerModule>,
}

impl PathSubstituted {
    /// The model behind `model` with `layer` substituted.
    pub(crate) fn new(model: &dyn Model, layer: &Layer) -> Result<PathSubstituted> {
        Ok(PathSubstituted { inner: model.with_layer(layer, LayerAccess::Substitute)? })
    }
}

impl Model for PathSubstituted {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let (value, xs) = inputs.split_first().ok_or_else(|| AttribError::NotApplicable("no layer value given".into()))?;
        let xs: Vec<Tensor> = xs.iter().map(|x| x.f_detach().ctx("detaching the model's inputs")).collect::<Result<_>>()?;
        self.inner.forward_with_layer(&xs, extra, Some(value)).map(|(out, _)| out)
    }
    fn device(&self) -> tch::Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// One neuron of a layer as the model's output: `layer_value[i, selector...]` per row `i`
/// (Captum's `neuron_selector` as a tuple of indices; with fewer indices than the layer has
/// dimensions after the batch, the remaining ones are summed, as Captum's slices would be).
/// Its output is `[N]`, explained with [`attrib_core::Target::None`].
pub(crate) struct NeuronModel {
    inner: Arc<LayerModule>,
    selector: Vec<i64>,
}

impl NeuronModel {
    /// `model` with `layer` read, its output the neuron at `selector`.
    pub(crate) fn new(model: &dyn Model, layer: &Layer, selector: &[i64]) -> Result<NeuronModel> {
        Ok(NeuronModel { inner: model.with_layer(layer, LayerAccess::Read)?, selector: selector.to_vec() })
    }

    /// Check the inputs against the model's embeddings (token ids are not differentiable: an
    /// error that says which method to use instead).
    pub(crate) fn check_inputs(&self, inputs: &Inputs, method: &str) -> Result<()> {
        if let Some((i, t)) = inputs.tensors().iter().enumerate().find(|(_, t)| !t.is_floating_point()) {
            return Err(AttribError::InputShape(format!(
                "input {i} has dtype {:?} (token ids?); {method} attributes to the model's inputs, which needs floating-point values. \
                 For token ids, attribute to the embedding layer's output with layer-integrated-gradients",
                t.kind()
            )));
        }
        self.inner.check_token_inputs(inputs)
    }
}

/// `value[:, selector...]`, summed over the dimensions the selector leaves, `[N]`.
pub(crate) fn select_neuron(value: &Tensor, selector: &[i64]) -> Result<Tensor> {
    let size = value.size();
    if selector.is_empty() || selector.len() + 1 > size.len() {
        return Err(AttribError::param(
            "neuron_selector",
            format!("{} index(es) for a layer value of shape {size:?}: give 1 to {} indices, one per dimension after the batch", selector.len(), size.len().saturating_sub(1)),
        ));
    }
    let mut v = value.shallow_clone();
    for (d, &i) in selector.iter().enumerate() {
        let len = size[d + 1];
        let j = if i < 0 { i + len } else { i };
        if !(0..len).contains(&j) {
            return Err(AttribError::param(
                "neuron_selector",
                format!("index {i} is out of range for dimension {} of the layer value (shape {size:?}, batch first)", d + 1),
            ));
        }
        v = v.f_select(1, j).ctx("selecting the neuron")?;
    }
    if v.dim() > 1 {
        let rest: Vec<i64> = (1..v.dim() as i64).collect();
        v = v.f_sum_dim_intlist(rest.as_slice(), false, None).ctx("summing the selected neurons")?;
    }
    Ok(v)
}

impl Model for NeuronModel {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let (_, value) = self.inner.forward_with_layer(inputs, extra, None)?;
        select_neuron(&value, &self.selector)
    }
    fn device(&self) -> tch::Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        format!("{} neuron {:?}", self.inner.describe(), self.selector)
    }
}

/// The model's output and the layer's value, flattened side by side in one output
/// (`[N, outputs + layer elements]`), so one chunked pass gives both; the row shapes are kept
/// to split them again.
struct ReadBoth {
    inner: Arc<LayerModule>,
    shapes: std::sync::Mutex<Option<(Vec<i64>, Vec<i64>)>>,
}

impl Model for ReadBoth {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let (out, layer) = self.inner.forward_with_layer(inputs, extra, None)?;
        if !layer.is_floating_point() {
            return Err(AttribError::NotApplicable(format!(
                "the value of layer {} is {:?} (token ids?), which has no gradient; attribute to a layer with a floating-point value, such as the embedding's output",
                self.inner.layer().describe(),
                layer.kind()
            )));
        }
        let n = out.size().first().copied().unwrap_or(0);
        *self.shapes.lock().unwrap_or_else(|e| e.into_inner()) = Some((out.size()[1..].to_vec(), layer.size()[1..].to_vec()));
        let o = out.f_reshape([n, -1]).and_then(|o| o.f_to_kind(layer.kind())).ctx("flattening the model's output")?;
        let l = layer.f_reshape([n, -1]).ctx("flattening the layer's value")?;
        Tensor::f_cat(&[o, l], 1).ctx("joining output and layer value")
    }
    fn device(&self) -> tch::Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The model's output (`[N, ...]`, in the layer's dtype) and the layer's value (`[N, ...]`) for
/// every row of `inputs`, from one chunked pass without gradients (token ids checked first).
pub(crate) fn read_outputs_and_activations(model: &dyn Model, layer: &Layer, batch: BatchOptions, inputs: &Inputs) -> Result<(Tensor, Tensor)> {
    let read = ReadBoth { inner: model.with_layer(layer, LayerAccess::Read)?, shapes: std::sync::Mutex::new(None) };
    let (xs, extra) = on_device(inputs, read.device())?;
    read.inner.check_token_inputs(inputs)?;
    let eval = Evaluator::new(&read, batch)?;
    let both = eval.raw_outputs(&extra, &Expanded::identity(&xs))?;
    let (out_shape, layer_shape) = read.shapes.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| AttribError::Internal("the layer was never read".into()))?;
    let n = both.size()[0];
    let width: i64 = out_shape.iter().product();
    let rows = |shape: &[i64]| std::iter::once(n).chain(shape.iter().copied()).collect::<Vec<i64>>();
    let out = both.f_narrow(1, 0, width).and_then(|o| o.f_reshape(rows(&out_shape))).ctx("the model's outputs")?;
    let value = both.f_narrow(1, width, both.size()[1] - width).and_then(|v| v.f_contiguous()).and_then(|v| v.f_reshape(rows(&layer_shape))).ctx("the layer's values")?;
    Ok((out, value))
}
