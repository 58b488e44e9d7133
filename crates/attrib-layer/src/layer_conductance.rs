//! Layer conductance (Dhamdhere, Sundararajan & Yan 2018, "How Important Is a Neuron?";
//! Captum's `LayerConductance`): the flow of Integrated Gradients through a layer. Along the
//! straight path of inputs `x_k = x' + α_k (x − x')` (the `n_steps + 1` nodes of the quadrature
//! rule, as Captum takes them), with `A_k` the layer's value at `x_k` and `g_k = ∂F/∂A` there,
//!
//! ```text
//! cond(x) = Σ_{k=0}^{n−1} g_k · (A_{k+1} − A_k)
//! ```
//!
//! shaped like the layer's output (or input, with `attribute_to_layer_input`). Captum's
//! definition uses the rule's nodes only (not its weights): the gradient at each node times the
//! layer's change to the next node. The convergence delta is `Σ cond − (F(x) − F(x'))` per row.
//!
//! The path is in the model's input space, so the inputs must be floating point (token ids have
//! no path between them: use layer integrated gradients at the embedding). The layer's values at
//! all `n_steps + 1` nodes are held at once (`(n_steps + 1) · N` layer-sized rows, as Captum
//! does); the model calls are chunked by the shared evaluator, and the gradients stop at the
//! layer.
//!
//! ```no_run
//! use attrib_core::{Attribution, Inputs, Target, TorchScriptModel};
//! use attrib_layer::LayerConductance;
//! # fn main() -> attrib_core::Result<()> {
//! let model = TorchScriptModel::load("resnet18.pt", tch::Device::Cpu)?;
//! let x = tch::Tensor::rand([2, 3, 224, 224], (tch::Kind::Float, tch::Device::Cpu));
//! let cond = LayerConductance::params().layer("layer3.1.conv2").check()?;
//! let attr = cond.attribute(&model, &Inputs::new(x), &Target::Argmax)?; // [2, 256, 14, 14]
//! println!("delta {:?}", attr.convergence_delta);
//! # Ok(()) }
//! ```

use crate::access::{read_activations_expanded, PathSubstituted};
use crate::common::{baselines_and_differences, check_path, finish, layer_setters, LayerParams};
use crate::layer_integrated_gradients::resolved;
use attrib_core::{AttribError, Attribution, Attributions, Baselines, ForwardArg, Inputs, MethodInfo, Model, Result, Target, TorchResultExt};
use attrib_gradient::path::row_sums;
use attrib_gradient::Quadrature;
use attrib_tensor::{ChunkRows, Evaluator, Expanded};
use serde_json::json;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Parameters of [`LayerConductance`]. Defaults as Captum's: zero baselines, 50 steps,
/// Gauss–Legendre nodes.
#[derive(Debug)]
pub struct LayerConductanceParams {
    /// The layer, and the chunking of the model calls.
    pub layer: LayerParams,
    /// Baseline inputs `x'` (zeros by default).
    pub baselines: Baselines,
    /// Number of steps (Captum's `n_steps`, 50): the path has `n_steps + 1` nodes.
    pub n_steps: usize,
    /// The rule whose nodes make the path (Captum's `method`, `gausslegendre`).
    pub quadrature: Quadrature,
}

impl Default for LayerConductanceParams {
    fn default() -> Self {
        LayerConductanceParams {
            layer: LayerParams::default(),
            baselines: Baselines::default(),
            n_steps: attrib_gradient::integrated_gradients::DEFAULT_STEPS,
            quadrature: Quadrature::GaussLegendre,
        }
    }
}

layer_setters!(LayerConductanceParams, baselines, path);

impl LayerConductanceParams {
    /// Validate into a ready-to-use [`LayerConductance`].
    pub fn check(self) -> Result<LayerConductance> {
        check_path(self.quadrature, self.n_steps, &self.baselines, "layer conductance")?;
        Ok(LayerConductance { params: LayerConductanceParams { layer: self.layer.check()?, ..self } })
    }
}

/// Layer conductance (see the [module docs](self)).
#[derive(Debug)]
pub struct LayerConductance {
    params: LayerConductanceParams,
}

impl LayerConductance {
    /// Parameters with their defaults (the layer must be set).
    pub fn params() -> LayerConductanceParams {
        LayerConductanceParams::default()
    }
}

/// Rows `s..e` of the path batch: `base + α_k · diff` for every input, on the inputs' device.
fn path_points(base: &[Tensor], diff: &[Tensor], alphas: &[f64], n: i64, s: i64, e: i64) -> Result<Vec<Tensor>> {
    let device = base.first().map_or(tch::Device::Cpu, Tensor::device);
    attrib_gradient::path::path_points(base, diff, alphas, n, s, e, device)
}

impl Attribution for LayerConductance {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "layer-conductance", multiplies_by_inputs: true, has_convergence_delta: true }
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        p.layer.describe(json!({"baselines": p.baselines.describe(), "n_steps": p.n_steps, "quadrature": p.quadrature.name()}))
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let p = &self.params;
        let (layer, batch) = (p.layer.spec(), p.layer.batch);
        if let Some((i, t)) = inputs.tensors().iter().enumerate().find(|(_, t)| !t.is_floating_point()) {
            return Err(AttribError::InputShape(format!(
                "input {i} has dtype {:?} (token ids?); layer conductance integrates along a path of inputs, which needs floating-point values. \
                 For token ids, use layer-integrated-gradients at the embedding layer",
                t.kind()
            )));
        }
        // The model itself: the target, F(x) and F(x').
        let eval_m = Evaluator::new(model, batch)?;
        let pm = eval_m.prepare(inputs, target)?;
        let n = pm.n;
        let (base, diff) = baselines_and_differences(&p.baselines, &pm.inputs, inputs)?;
        let ends: Vec<Tensor> =
            pm.inputs.iter().zip(&base).map(|(x, b)| Tensor::f_cat(&[x, b], 0).ctx("stacking endpoints")).collect::<Result<_>>()?;
        let f_ends = Expanded::new(n, 2 * n, |s, e| ends.iter().map(|t| t.f_narrow(0, s, e - s).ctx("endpoints")).collect());
        let f_xb = eval_m.forward(&pm, &f_ends)?.f_to_kind(Kind::Double).ctx("endpoint outputs")?;
        let targets = pm.target.indices().map(<[i64]>::to_vec);

        // The layer along the path: n_steps + 1 nodes.
        let (alphas, _) = p.quadrature.nodes(p.n_steps + 1)?;
        let k1 = alphas.len() as i64;
        let path = Expanded::new(n, n * k1, |s, e| path_points(&base, &diff, &alphas, n, s, e)).rows_like(&pm.inputs);
        let values = read_activations_expanded(model, &layer, batch, &pm.extra, &path)?;
        if !values.is_floating_point() {
            return Err(AttribError::NotApplicable(format!("the value of layer {} is {:?}, which has no gradient", layer.describe(), values.kind())));
        }

        // Gradients at the first n_steps nodes, with respect to the layer only.
        let sub = PathSubstituted::new(model, &layer)?;
        let eval = Evaluator::new(&sub, batch)?;
        let first: Vec<Tensor> = std::iter::once(values.f_narrow(0, 0, n).ctx("layer rows")?).chain(pm.inputs.iter().map(|x| x.shallow_clone())).collect();
        let sp = eval.prepare(&Inputs::multi(first).with_extra(pm.extra.iter().map(ForwardArg::shallow_clone).collect()), &resolved(targets.as_deref()))?;
        let steps = k1 - 1;
        let grad_rows = Expanded::new(n, n * steps, |s, e| {
            let mut xs = vec![values.f_narrow(0, s, e - s).ctx("layer rows")?];
            xs.extend(path_points(&base, &diff, &alphas, n, s, e)?);
            Ok(xs)
        });
        let mut acc = values.f_narrow(0, 0, n).and_then(|t| t.f_zeros_like()).ctx("allocating conductance")?;
        eval.gradients_each(&sp, &grad_rows, |range, grads, _| {
            let rows = ChunkRows::of(range.clone(), n, sp.device);
            let len = range.end - range.start;
            let next = values.f_narrow(0, range.start + n, len).ctx("next layer rows")?;
            let here = values.f_narrow(0, range.start, len).ctx("layer rows")?;
            let step = next.f_sub(&here).and_then(|d| d.f_mul(&grads[0])).ctx("gradient × layer change")?;
            let _ = acc.f_index_add_(0, &rows.samples()?, &step).ctx("summing over steps")?;
            Ok(())
        })?;
        let gap = f_xb.f_narrow(0, 0, n).and_then(|a| a.f_sub(&f_xb.f_narrow(0, n, n)?)).ctx("F(x) - F(baseline)")?;
        let delta = row_sums(std::slice::from_ref(&acc))?.f_sub(&gap).ctx("convergence delta")?;
        finish(self, vec![acc], Some(delta), targets, start)
    }
}
