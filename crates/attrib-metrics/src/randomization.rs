//! The model parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency
//! Maps"): an explanation that depends on what the model learned must change when the model's
//! weights are replaced by random ones.
//!
//! The layers of a TorchScript model are the modules that own parameters, in the order the
//! model lists them (for sequential models, input to output); the *top* layer is the last. Two
//! modes:
//!
//! * [`Mode::Cascading`] (the paper's main test): step `k` randomises the top `k` layers, from
//!   the output layer down to the input layer, so the last step has no learned weight left;
//! * [`Mode::Independent`]: step `k` randomises only the `k`-th layer from the top.
//!
//! **Randomisation.** Every parameter tensor of a randomised layer is redrawn i.i.d. from
//! `N(0, s²)`, with `s` the standard deviation of that tensor's trained values (the scale of
//! the layer is kept, what it learned is not); a tensor with fewer than two elements or no
//! spread (a zero-initialised bias) takes the largest `s` of its layer's tensors, and 0.01 when
//! none varies. Draws are seeded (`seed`, keyed per layer and tensor). Buffers (batch-norm
//! statistics) are kept. The randomised models are separate copies loaded from the model's file:
//! the caller's model is never changed.
//!
//! **Similarity.** Per row, Spearman's rank correlation ([`crate::spearman`]) between the
//! attribution of the trained model and that of each randomised copy, on absolute values (the
//! paper's main measure) and on signed values; with `pixels`, image attributions are first
//! summed over channels (of absolute values for the absolute measure). All steps explain the
//! trained model's targets (its predictions for [`Target::Argmax`]).
//!
//! A model-independent "explanation" passes through unchanged: [`SobelEdges`], the gradient
//! magnitude of the input image, is the paper's edge-detector control — its rank correlation is
//! exactly 1 at every step, where a method that explains the model should fall towards 0.

use crate::rank_correlation;
use attrib_core::{
    AttribError, Attribution, Attributions, ForwardArg, Inputs, MethodInfo, Metadata, Model, Result, Target, TorchResultExt, TorchScriptModel,
};
use attrib_tensor::rng::Rng;
use serde::Serialize;
use std::time::Instant;
use tch::{CModule, Device, IValue, Kind, Tensor};

/// Which layers each step randomises; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Step `k`: the top `k` layers (from the output down).
    #[default]
    Cascading,
    /// Step `k`: only the `k`-th layer from the top.
    Independent,
}

impl std::str::FromStr for Mode {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<Mode> {
        match s.trim() {
            "cascading" => Ok(Mode::Cascading),
            "independent" => Ok(Mode::Independent),
            other => Err(AttribError::param("mode", format!("unknown randomisation mode `{other}`; use cascading or independent"))),
        }
    }
}

/// Parameters of [`model_randomization`].
#[derive(Debug, Clone)]
pub struct RandomizationParams {
    /// Cascading (default) or independent randomisation.
    pub mode: Mode,
    /// Seed of the random weights.
    pub seed: u64,
    /// Sum image attributions (`[N, C, H, W]`) over channels before ranking (default true).
    pub pixels: bool,
}

impl Default for RandomizationParams {
    fn default() -> Self {
        RandomizationParams { mode: Mode::Cascading, seed: 0, pixels: true }
    }
}

/// One step of the test.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The layers randomised at this step.
    pub randomized: Vec<String>,
    /// Per row, the rank correlation of absolute attributions with the trained model's (`None`
    /// where either is constant).
    pub spearman_abs: Vec<Option<f64>>,
    /// Per row, the rank correlation of signed attributions.
    pub spearman: Vec<Option<f64>>,
}

impl Step {
    /// The mean of [`Step::spearman_abs`] over the rows where it is defined.
    pub fn mean_abs(&self) -> Option<f64> {
        mean(&self.spearman_abs)
    }
    /// The mean of [`Step::spearman`] over the rows where it is defined.
    pub fn mean_signed(&self) -> Option<f64> {
        mean(&self.spearman)
    }
}

fn mean(v: &[Option<f64>]) -> Option<f64> {
    let d: Vec<f64> = v.iter().flatten().copied().collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

/// The result of [`model_randomization`].
#[derive(Debug, Clone, Serialize)]
pub struct Randomization {
    /// The mode.
    pub mode: Mode,
    /// The model's layers, top (output) first: the order of the steps.
    pub layers: Vec<String>,
    /// One step per layer.
    pub steps: Vec<Step>,
    /// The class explained for each row (`None` for scalar outputs).
    pub targets: Option<Vec<i64>>,
}

/// The model's layers (modules that own parameters), in the order the model lists its
/// parameters; the last is the top (output) layer.
pub fn layer_names(model: &TorchScriptModel) -> Result<Vec<String>> {
    let module = load_copy(model, None)?;
    Ok(layers_of(&module)?.into_iter().map(|(name, _)| name).collect())
}

/// The parameters of `module` grouped by the module that owns them, in order.
fn layers_of(module: &CModule) -> Result<Vec<(String, Vec<Tensor>)>> {
    let params = module.named_parameters().map_err(|e| AttribError::ModelLoad {
        path: Default::default(),
        reason: format!("cannot list the model's parameters: {e}"),
    })?;
    let mut layers: Vec<(String, Vec<Tensor>)> = Vec::new();
    for (name, t) in params {
        let owner = name.rsplit_once('.').map_or(String::new(), |(m, _)| m.to_string());
        match layers.last_mut() {
            Some((last, ts)) if *last == owner => ts.push(t),
            _ => layers.push((owner, vec![t])),
        }
    }
    Ok(layers)
}

/// A separate copy of the model as it was loaded (from the bytes read then, not the file) on its
/// device, in evaluation mode, converted to `kind` when given.
fn load_copy(model: &TorchScriptModel, kind: Option<Kind>) -> Result<CModule> {
    let mut module = model.file().load_module(model.device())?;
    if let Some(k) = kind {
        module.to(model.device(), k, false);
    }
    Ok(module)
}

/// A copy of `model` with the parameters of `layers` (names from [`layer_names`]) redrawn as
/// the [module docs](self) say, in `kind` (the model's own dtype when `None`).
pub fn randomized_model(model: &TorchScriptModel, layers: &[String], seed: u64, kind: Option<Kind>) -> Result<RandomizedModel> {
    let module = load_copy(model, kind)?;
    let all = layers_of(&module)?;
    for name in layers {
        let index = all.iter().position(|(n, _)| n == name).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            AttribError::param("layers", format!("the model has no layer `{name}`; its layers: {}", names.join(", ")))
        })?;
        randomize_layer(&all[index].1, seed, index)?;
    }
    Ok(RandomizedModel { module, device: model.device(), layers: layers.to_vec() })
}

/// A copy of a TorchScript model with some layers' weights randomised ([`randomized_model`]).
pub struct RandomizedModel {
    module: CModule,
    device: Device,
    layers: Vec<String>,
}

impl RandomizedModel {
    /// The randomised layers.
    pub fn layers(&self) -> &[String] {
        &self.layers
    }

    /// The copy's parameters by name (shallow: the copy's own tensors).
    pub fn named_parameters(&self) -> Result<Vec<(String, Tensor)>> {
        self.module.named_parameters().map_err(|e| AttribError::Internal(format!("listing parameters: {e}")))
    }
}

impl Model for RandomizedModel {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let args: Vec<IValue> = inputs
            .iter()
            .map(|t| IValue::Tensor(t.shallow_clone()))
            .chain(extra.iter().map(|a| match a {
                ForwardArg::Tensor(t) => IValue::Tensor(t.shallow_clone()),
                ForwardArg::Int(v) => IValue::Int(*v),
                ForwardArg::Float(v) => IValue::Double(*v),
                ForwardArg::Bool(v) => IValue::Bool(*v),
            }))
            .collect();
        let failed = |reason: String| AttribError::ModelForward { shapes: attrib_core::inputs::format_shapes(inputs), reason };
        match self.module.forward_is(&args).map_err(|e| failed(e.to_string()))? {
            IValue::Tensor(t) => Ok(t),
            IValue::Tuple(mut v) | IValue::GenericList(mut v) if !v.is_empty() => match v.swap_remove(0) {
                IValue::Tensor(t) => Ok(t),
                _ => Err(failed("the model's first output is not a tensor".into())),
            },
            _ => Err(failed("the model's output is not a tensor".into())),
        }
    }
    fn device(&self) -> Device {
        self.device
    }
    fn describe(&self) -> String {
        format!("TorchScript copy with random {}", self.layers.join(", "))
    }
}

/// Redraw the tensors of one layer in place.
fn randomize_layer(tensors: &[Tensor], seed: u64, layer: usize) -> Result<()> {
    let spread = |t: &Tensor| -> Result<f64> {
        if t.numel() < 2 {
            return Ok(0.0);
        }
        Ok(t.f_to_kind(Kind::Double).and_then(|t| t.f_std(true)).ctx("measuring a parameter's spread")?.double_value(&[]))
    };
    let spreads = tensors.iter().map(spread).collect::<Result<Vec<f64>>>()?;
    let largest = spreads.iter().copied().filter(|s| s.is_finite()).fold(0.0, f64::max);
    let fallback = if largest > 0.0 { largest } else { 0.01 };
    for (k, (t, &s)) in tensors.iter().zip(&spreads).enumerate() {
        let s = if s > 0.0 && s.is_finite() { s } else { fallback };
        let mut rng = Rng::keyed(seed, &[layer as u64, k as u64]);
        let values: Vec<f64> = (0..t.numel()).map(|_| rng.normal() * s).collect();
        let fresh = Tensor::f_from_slice(&values)
            .and_then(|v| v.f_reshape(t.size()))
            .and_then(|v| v.f_to_kind(t.kind()))
            .and_then(|v| v.f_to_device(t.device()))
            .ctx("drawing random weights")?;
        let mut target = t.shallow_clone();
        tch::no_grad(|| target.f_copy_(&fresh)).ctx("writing random weights")?;
    }
    Ok(())
}

/// The layers randomised at each step, top layer first.
fn plan(layers_top_first: &[String], mode: Mode) -> Vec<Vec<String>> {
    (0..layers_top_first.len())
        .map(|k| match mode {
            Mode::Cascading => layers_top_first[..=k].to_vec(),
            Mode::Independent => vec![layers_top_first[k].clone()],
        })
        .collect()
}

/// Run the randomisation test of `method` on `model` at `inputs`; see the [module docs](self).
pub fn model_randomization(
    method: &dyn Attribution,
    model: &TorchScriptModel,
    inputs: &Inputs,
    target: &Target,
    params: &RandomizationParams,
) -> Result<Randomization> {
    inputs.validate()?;
    let original = method.attribute(model, inputs, target)?;
    let targets = original.meta.targets.clone();
    let explained = match &targets {
        Some(t) => Target::PerSample(t.clone()),
        None => target.clone(),
    };
    let kind = inputs.tensors().first().map(Tensor::kind).filter(|k| *k == Kind::Double);
    let mut layers = layer_names(model)?;
    if layers.is_empty() {
        return Err(AttribError::NotApplicable("the model has no parameters to randomise".into()));
    }
    layers.reverse();
    let original_abs = abs_all(&original.values)?;
    let mut steps = Vec::with_capacity(layers.len());
    for randomized in plan(&layers, params.mode) {
        let copy = randomized_model(model, &randomized, params.seed, kind)?;
        let after = method.attribute(&copy, inputs, &explained)?;
        let spearman_abs = rank_correlation(&original_abs, &abs_all(&after.values)?, params.pixels)?;
        let spearman = rank_correlation(&original.values, &after.values, params.pixels)?;
        steps.push(Step { randomized, spearman_abs, spearman });
    }
    Ok(Randomization { mode: params.mode, layers, steps, targets })
}

fn abs_all(values: &[Tensor]) -> Result<Vec<Tensor>> {
    values.iter().map(|v| v.f_abs().ctx("taking absolute attributions")).collect()
}

/// The edge-detector control of the randomisation test: the Sobel gradient magnitude of each
/// channel of an image input, `sqrt(G_x² + G_y²)` with the 3×3 Sobel kernels and edges
/// replicated, shaped like the input. It ignores the model and the target (the attribution's
/// targets are `None`): a model-independent "explanation".
#[derive(Debug, Clone, Copy, Default)]
pub struct SobelEdges;

impl SobelEdges {
    /// The edge magnitude of `x` (`[N, C, H, W]` or `[N, H, W]`, floating point).
    pub fn edges(x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        if !(size.len() == 3 || size.len() == 4) || size[size.len() - 1] < 2 || size[size.len() - 2] < 2 || !x.is_floating_point() {
            return Err(AttribError::InputShape(format!(
                "the edge detector needs floating-point images [N, C, H, W] or [N, H, W] of at least 2x2 pixels, got {:?} {:?}",
                size,
                x.kind()
            )));
        }
        let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
        let run = || -> std::result::Result<Tensor, tch::TchError> {
            let planes = x.f_reshape([-1, 1, h, w])?;
            let padded = planes.f_replication_pad2d([1, 1, 1, 1])?;
            let gx = [1.0, 0.0, -1.0, 2.0, 0.0, -2.0, 1.0, 0.0, -1.0];
            let gy = [1.0, 2.0, 1.0, 0.0, 0.0, 0.0, -1.0, -2.0, -1.0];
            let kernels: Vec<f64> = gx.iter().chain(gy.iter()).copied().collect();
            let weight = Tensor::f_from_slice(&kernels)?.f_reshape([2, 1, 3, 3])?.f_to_kind(x.kind())?.f_to_device(x.device())?;
            let g = padded.f_conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?;
            g.f_square()?.f_sum_dim_intlist(1, false, x.kind())?.f_sqrt()?.f_reshape(&size)
        };
        run().ctx("computing Sobel edges")
    }
}

impl Attribution for SobelEdges {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "sobel-edges", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn attribute(&self, _model: &dyn Model, inputs: &Inputs, _target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        inputs.validate()?;
        let values = inputs.tensors().iter().map(SobelEdges::edges).collect::<Result<Vec<_>>>()?;
        Ok(Attributions {
            values,
            convergence_delta: None,
            meta: Metadata::new(self.info(), serde_json::json!({}), None, start.elapsed()),
        })
    }
}
