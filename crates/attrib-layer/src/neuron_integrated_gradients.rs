//! Neuron integrated gradients (Captum's `NeuronIntegratedGradients`): Integrated Gradients of
//! one neuron of a layer (see [`NeuronGradient`](crate::NeuronGradient) for `neuron_selector`)
//! with respect to the model's inputs, shaped like the inputs:
//!
//! ```text
//! NIG(x) = (x − x') · ∫₀¹ ∂a(x' + α (x − x')) / ∂x dα,   a = layer_value[:, selector...]
//! ```
//!
//! with the quadrature rules and chunked path sums of
//! [`IntegratedGradients`](attrib_gradient::IntegratedGradients) (Gauss–Legendre, 50 steps by
//! default). `multiply_by_inputs = false` leaves out `x − x'`. Captum returns no convergence
//! delta for this method; attrib reports none either.
//!
//! The path is in the model's input space, so the inputs must be floating point.
//!
//! ```no_run
//! use attrib_core::{Attribution, Inputs, Target, TorchScriptModel};
//! use attrib_layer::NeuronIntegratedGradients;
//! # fn main() -> attrib_core::Result<()> {
//! let model = TorchScriptModel::load("digits_cnn.pt", tch::Device::Cpu)?;
//! let x = tch::Tensor::rand([4, 1, 16, 16], (tch::Kind::Float, tch::Device::Cpu));
//! let nig = NeuronIntegratedGradients::params().layer("features.3").neuron_selector(vec![2, 3, 3]).check()?;
//! let attr = nig.attribute(&model, &Inputs::new(x), &Target::None)?; // [4, 1, 16, 16]
//! # Ok(()) }
//! ```

use crate::access::NeuronModel;
use crate::common::{baselines_and_differences, check_path, finish, layer_setters, LayerParams};
use crate::neuron_gradient::check_selector;
use attrib_core::{Attribution, Attributions, Baselines, Inputs, MethodInfo, Model, Result, Target, TorchResultExt};
use attrib_gradient::path::path_gradient_sum;
use attrib_gradient::Quadrature;
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;

/// Parameters of [`NeuronIntegratedGradients`]. Defaults as Captum's: zero baselines, 50
/// steps, Gauss–Legendre, multiplied by `x − x'`.
#[derive(Debug)]
pub struct NeuronIntegratedGradientsParams {
    /// The layer, and the chunking of the model calls.
    pub layer: LayerParams,
    /// The neuron's indices after the batch dimension (Captum's `neuron_selector`).
    pub neuron_selector: Vec<i64>,
    /// Baseline inputs `x'` (zeros by default).
    pub baselines: Baselines,
    /// Number of quadrature nodes (50).
    pub n_steps: usize,
    /// The quadrature rule (`gausslegendre`).
    pub quadrature: Quadrature,
    /// Multiply by `x − x'` (default `true`).
    pub multiply_by_inputs: bool,
}

impl Default for NeuronIntegratedGradientsParams {
    fn default() -> Self {
        NeuronIntegratedGradientsParams {
            layer: LayerParams::default(),
            neuron_selector: Vec::new(),
            baselines: Baselines::default(),
            n_steps: attrib_gradient::integrated_gradients::DEFAULT_STEPS,
            quadrature: Quadrature::GaussLegendre,
            multiply_by_inputs: true,
        }
    }
}

layer_setters!(NeuronIntegratedGradientsParams, neuron_selector, baselines, path, multiply_by_inputs);

impl NeuronIntegratedGradientsParams {
    /// Validate into a ready-to-use [`NeuronIntegratedGradients`].
    pub fn check(self) -> Result<NeuronIntegratedGradients> {
        check_selector(&self.neuron_selector)?;
        check_path(self.quadrature, self.n_steps, &self.baselines, "neuron integrated gradients")?;
        Ok(NeuronIntegratedGradients { params: NeuronIntegratedGradientsParams { layer: self.layer.check()?, ..self } })
    }
}

/// Neuron integrated gradients (see the [module docs](self)).
#[derive(Debug)]
pub struct NeuronIntegratedGradients {
    params: NeuronIntegratedGradientsParams,
}

impl NeuronIntegratedGradients {
    /// Parameters with their defaults (the layer and the neuron must be set).
    pub fn params() -> NeuronIntegratedGradientsParams {
        NeuronIntegratedGradientsParams::default()
    }
}

impl Attribution for NeuronIntegratedGradients {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "neuron-integrated-gradients", multiplies_by_inputs: self.params.multiply_by_inputs, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        p.layer.describe(json!({
            "neuron_selector": p.neuron_selector,
            "baselines": p.baselines.describe(),
            "n_steps": p.n_steps,
            "quadrature": p.quadrature.name(),
            "multiply_by_inputs": p.multiply_by_inputs,
        }))
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let _ = target; // the neuron is the explained output
        let start = Instant::now();
        let p = &self.params;
        let neuron = NeuronModel::new(model, &p.layer.spec(), &p.neuron_selector)?;
        neuron.check_inputs(inputs, "neuron-integrated-gradients")?;
        let eval = Evaluator::new(&neuron, p.layer.batch)?;
        let prep = eval.prepare(inputs, &Target::None)?;
        let (base, diff) = baselines_and_differences(&p.baselines, &prep.inputs, inputs)?;
        let (alphas, weights) = p.quadrature.nodes(p.n_steps)?;
        let ps = path_gradient_sum(&eval, &prep, &base, &diff, &alphas, &weights)?;
        let values = if p.multiply_by_inputs {
            ps.sums.iter().zip(&diff).map(|(g, d)| g.f_mul(d).ctx("multiplying by x - baseline")).collect::<Result<_>>()?
        } else {
            ps.sums
        };
        finish(self, values, None, None, start)
    }
}
