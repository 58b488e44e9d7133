//! Layer integrated gradients (Captum's `LayerIntegratedGradients`): Integrated Gradients over a
//! layer's activations. With `A(x)` the layer's value at input `x` and `A' = A(x')` its value
//! at the baseline input `x'` (the baseline stays in the model's input space: token ids for a
//! text model),
//!
//! ```text
//! LIG(x) = (A(x) − A') · ∫₀¹ ∂F/∂A (A' + α (A(x) − A')) dα
//! ```
//!
//! where `F` is the target output of the model with the layer's value replaced (everything
//! else, skip connections around the layer included, runs on `x`, as Captum's forward hook
//! does). The integral uses the same quadrature rules and chunked path sums as
//! [`IntegratedGradients`](attrib_gradient::IntegratedGradients) (Gauss–Legendre by default, 50
//! steps). The result is shaped like the layer's output (or input, with
//! `attribute_to_layer_input`); `multiply_by_inputs = false` leaves out the factor `A(x) − A'`.
//!
//! The convergence delta is Captum's: `Σ LIG − (F(x) − F(x'))` per row, with the model's own
//! outputs at the input and at the baseline input.
//!
//! **Token ids.** The inputs may be int64 token ids when the layer is an embedding (or a later
//! layer): the path runs between the embeddings of the baseline ids and of the input ids, and
//! the ids are checked against the embedding first ([`attrib_core::tokens`]). Summing the result
//! over the embedding dimension gives one attribution per token.
//!
//! ```no_run
//! use attrib_core::{Attribution, Baseline, Inputs, Target, TorchScriptModel};
//! use attrib_layer::LayerIntegratedGradients;
//! # fn main() -> attrib_core::Result<()> {
//! let model = TorchScriptModel::load("text_cnn.pt", tch::Device::Cpu)?;
//! let ids = tch::Tensor::from_slice(&[5i64, 17, 3, 9]).view([1, 4]); // token ids, int64
//! let lig = LayerIntegratedGradients::params().layer("embedding").baselines(Baseline::Scalar(0.0)).check()?;
//! let attr = lig.attribute(&model, &Inputs::new(ids), &Target::Class(1))?;
//! let per_token = attr.single()?.sum_dim_intlist(-1, false, None); // [1, 4]
//! println!("{per_token} delta {:?}", attr.convergence_delta);
//! # Ok(()) }
//! ```

use crate::access::{read_outputs_and_activations, substituted};
use crate::common::{check_path, finish, layer_setters, LayerParams};
use attrib_core::{AttribError, Attribution, Attributions, Baselines, Inputs, MethodInfo, Model, Result, Target, TorchResultExt};
use attrib_gradient::path::{path_gradient_sum, row_sums};
use attrib_gradient::Quadrature;
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Parameters of [`LayerIntegratedGradients`]. Defaults as Captum's: zero baselines, 50 steps,
/// Gauss–Legendre, multiplied by the layer's change; the convergence delta is returned.
#[derive(Debug)]
pub struct LayerIntegratedGradientsParams {
    /// The layer, and the chunking of the model calls.
    pub layer: LayerParams,
    /// Baseline inputs `x'`, in the model's input space (zeros by default; a pad id for token
    /// ids).
    pub baselines: Baselines,
    /// Number of quadrature nodes (Captum's `n_steps`, 50).
    pub n_steps: usize,
    /// The quadrature rule (Captum's `method`, `gausslegendre`).
    pub quadrature: Quadrature,
    /// Multiply the integrated gradients by `A(x) − A(x')` (default `true`).
    pub multiply_by_inputs: bool,
    /// Compute the convergence delta (default `true`; the outputs it needs come with the layer's
    /// values, so it costs no model call).
    pub return_convergence_delta: bool,
}

impl Default for LayerIntegratedGradientsParams {
    fn default() -> Self {
        LayerIntegratedGradientsParams {
            layer: LayerParams::default(),
            baselines: Baselines::default(),
            n_steps: attrib_gradient::integrated_gradients::DEFAULT_STEPS,
            quadrature: Quadrature::GaussLegendre,
            multiply_by_inputs: true,
            return_convergence_delta: true,
        }
    }
}

layer_setters!(LayerIntegratedGradientsParams, baselines, path, multiply_by_inputs);

impl LayerIntegratedGradientsParams {
    /// Compute the convergence delta (default `true`).
    pub fn return_convergence_delta(mut self, yes: bool) -> Self {
        self.return_convergence_delta = yes;
        self
    }
    /// Validate into a ready-to-use [`LayerIntegratedGradients`].
    pub fn check(self) -> Result<LayerIntegratedGradients> {
        check_path(self.quadrature, self.n_steps, &self.baselines, "layer integrated gradients")?;
        Ok(LayerIntegratedGradients { params: LayerIntegratedGradientsParams { layer: self.layer.check()?, ..self } })
    }
}

/// Layer integrated gradients (see the [module docs](self)).
#[derive(Debug)]
pub struct LayerIntegratedGradients {
    params: LayerIntegratedGradientsParams,
}

impl LayerIntegratedGradients {
    /// Parameters with their defaults (the layer must be set), to adjust and
    /// [`LayerIntegratedGradientsParams::check`].
    pub fn params() -> LayerIntegratedGradientsParams {
        LayerIntegratedGradientsParams::default()
    }
}

/// The baselines of `inputs` in the input space, on the inputs' device. Token-id inputs take
/// token ids: zeros, an integer, or an integer tensor.
pub(crate) fn input_baselines(baselines: &Baselines, inputs: &Inputs) -> Result<Vec<Tensor>> {
    let described = baselines.describe();
    let list = described.as_array().cloned().unwrap_or_default();
    for (i, x) in inputs.tensors().iter().enumerate() {
        if x.is_floating_point() {
            continue;
        }
        let b = list.get(if list.len() == 1 { 0 } else { i }).cloned().unwrap_or(serde_json::Value::Null);
        let ok = b == json!("zeros") || b.as_f64().is_some_and(|v| v.fract() == 0.0) || b.get("tensor").is_some();
        if !ok {
            return Err(AttribError::param(
                "baselines",
                format!("input {i} holds token ids, so its baseline is token ids too: zeros, an integer id (a pad id such as 0) or an integer .npy, not {b}"),
            ));
        }
    }
    baselines.resolve_copies(inputs.tensors(), inputs.copies())
}

/// `Inputs` like `inputs` (same forward arguments and copies) with other tensors.
pub(crate) fn like(inputs: &Inputs, tensors: Vec<Tensor>) -> Inputs {
    Inputs::multi(tensors).with_extra(inputs.extra().iter().map(|a| a.shallow_clone()).collect()).stacked_copies(inputs.copies())
}

/// The resolved target of a prepared call as a [`Target`] (for calls that must not resolve it
/// again).
pub(crate) fn resolved(indices: Option<&[i64]>) -> Target {
    match indices {
        Some(v) => Target::PerSample(v.to_vec()),
        None => Target::None,
    }
}

impl Attribution for LayerIntegratedGradients {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "layer-integrated-gradients", multiplies_by_inputs: self.params.multiply_by_inputs, has_convergence_delta: self.params.return_convergence_delta }
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        p.layer.describe(json!({
            "baselines": p.baselines.describe(),
            "n_steps": p.n_steps,
            "quadrature": p.quadrature.name(),
            "multiply_by_inputs": p.multiply_by_inputs,
            "return_convergence_delta": p.return_convergence_delta,
        }))
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let p = &self.params;
        let (layer, batch) = (p.layer.spec(), p.layer.batch);
        inputs.validate_token_ids()?;
        let base_inputs = like(inputs, input_baselines(&p.baselines, inputs)?);
        // One pass each at the inputs and at the baselines: the layer's values and the model's
        // outputs (the target of `argmax` and F(x), F(x') of the delta come from them).
        let (out_x, a_x) = read_outputs_and_activations(model, &layer, batch, inputs)?;
        let (out_b, a_b) = read_outputs_and_activations(model, &layer, batch, &base_inputs)?;
        let target = match target {
            Target::Argmax if out_x.dim() == 2 => {
                let best = out_x.f_argmax(1, false).and_then(|t| t.f_to_kind(Kind::Int64)).ctx("the predicted classes")?;
                Target::PerSample(Vec::<i64>::try_from(&best).ctx("reading the predicted classes")?)
            }
            other => other.clone(),
        };
        let (sub, sub_inputs) = substituted(model, &layer, inputs, a_x.shallow_clone())?;
        let eval = Evaluator::new(&sub, batch)?;
        let prep = eval.prepare(&sub_inputs, &target)?;
        let diff = a_x.f_sub(&a_b).ctx("layer value - baseline layer value")?;
        let (alphas, weights) = p.quadrature.nodes(p.n_steps)?;
        let ps = path_gradient_sum(&eval, &prep, std::slice::from_ref(&a_b), std::slice::from_ref(&diff), &alphas, &weights)?;
        let sums = ps.sums.into_iter().next().ok_or_else(|| AttribError::Internal("no path sum".into()))?;
        let values = if p.multiply_by_inputs { sums.f_mul(&diff).ctx("multiplying by the layer's change")? } else { sums };
        let targets = prep.target.indices().map(<[i64]>::to_vec);
        let delta = if p.return_convergence_delta {
            // F(x) and F(x'): the model's own outputs, read with the layer.
            let rows = Tensor::f_arange(prep.n, (Kind::Int64, prep.device)).ctx("row indices")?;
            let f_x = prep.target.select(&out_x.f_to_device(prep.device).ctx("outputs")?, &rows)?;
            let f_b = prep.target.select(&out_b.f_to_device(prep.device).ctx("outputs")?, &rows)?;
            let gap = f_x.f_to_kind(Kind::Double).and_then(|a| a.f_sub(&f_b.f_to_kind(Kind::Double)?)).ctx("F(x) - F(baseline)")?;
            Some(row_sums(std::slice::from_ref(&values))?.f_sub(&gap).ctx("convergence delta")?)
        } else {
            None
        };
        finish(self, vec![values], delta, targets, start)
    }
}
