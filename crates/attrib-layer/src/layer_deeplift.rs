//! Layer DeepLIFT (Captum's `LayerDeepLift`): DeepLIFT's rescale-rule multipliers at a layer.
//!
//! With `A` the layer's output (or input), `x` an input row and `b` its baseline, the
//! attribution is `(A(x) − A(b)) · m`, `m` the gradient of the target output `F_t` with respect
//! to the layer's value under DeepLIFT's rules (`multiply_by_inputs = false`: `m` alone), shaped
//! like the layer. The attributions of a row sum to `F_t(x) − F_t(b)` when the part of the
//! network after the layer is made of linear operations and covered non-linearities; the
//! convergence delta `Σ attr − (F_t(x) − F_t(b))` reports the gap, as Captum's.
//!
//! The model's graph is copied with the layer's value made a forward argument
//! ([`attrib_core::layers`], substituted) and the DeepLIFT rules rewritten on that copy
//! ([`attrib_core::rules`], `cpp/layer_rules.cpp`), so every non-linearity after the layer gets
//! its rule however the model calls it. The layer's values of the inputs and the baselines are
//! read first (one forward pass each); then each chunk runs the rewritten copy once on
//! `cat([x, b])` with `cat([A(x), A(b)])` fed at the layer, as DeepLIFT pairs rows, and the
//! evaluator takes the gradient at the layer. Skip connections around the layer keep seeing the
//! inputs (and the baselines, in the baseline half), so the rules after the layer compare the
//! right values.
//!
//! Parameters as Captum's (`baselines` zeros in the input space, `multiply_by_inputs` true,
//! `eps` 1e-10), plus `captum_compat`, which applies the rules as Captum's hooks do (see
//! [`DeepLiftRules::Captum`]).

use crate::access::read_activations;
use crate::common::{check_one_baseline, finish, layer_setters, LayerParams};
use attrib_core::{
    AttribError, Attribution, Attributions, BackwardRules, Baselines, DeepLiftRules, ForwardArg, Inputs, LayerAccess, LayerModule, MethodInfo, Model,
    Result, Target, TorchResultExt,
};
use attrib_tensor::{Evaluator, Expanded, Prepared};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tch::Tensor;

/// Parameters of [`LayerDeepLift`]; defaults as Captum's.
#[derive(Debug)]
pub struct LayerDeepLiftParams {
    /// The layer, and the chunking of the model calls.
    pub layer: LayerParams,
    /// The reference input, in the model's input space (default: zeros).
    pub baselines: Baselines,
    /// Multiply the multipliers by `A(x) − A(b)` (Captum's `multiply_by_inputs`; default true).
    pub multiply_by_inputs: bool,
    /// Below this `|Δx|` a rule uses the ordinary gradient (Captum's `eps`, 1e-10).
    pub eps: f64,
    /// The rules as defined (default) or as Captum's hooks apply them.
    pub compat: DeepLiftRules,
}

impl Default for LayerDeepLiftParams {
    fn default() -> Self {
        LayerDeepLiftParams { layer: LayerParams::default(), baselines: Baselines::default(), multiply_by_inputs: true, eps: 1e-10, compat: DeepLiftRules::Exact }
    }
}

layer_setters!(LayerDeepLiftParams, baselines, multiply_by_inputs);

impl LayerDeepLiftParams {
    /// Set the threshold on `|Δx|`.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Apply the rules as defined, or as Captum does.
    pub fn compat(mut self, compat: DeepLiftRules) -> Self {
        self.compat = compat;
        self
    }
    /// Validate into a ready-to-use [`LayerDeepLift`].
    pub fn check(self) -> Result<LayerDeepLift> {
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(AttribError::param("eps", format!("{} is not a usable threshold; give a small non-negative number (Captum: 1e-10)", self.eps)));
        }
        check_one_baseline(&self.baselines, "layer DeepLIFT")?;
        Ok(LayerDeepLift { params: LayerDeepLiftParams { layer: self.layer.check()?, ..self } })
    }
}

/// Layer DeepLIFT (see the [module docs](self)).
#[derive(Debug)]
pub struct LayerDeepLift {
    params: LayerDeepLiftParams,
}

impl LayerDeepLift {
    /// Parameters with their defaults (the layer must be set), to adjust and
    /// [`LayerDeepLiftParams::check`].
    pub fn params() -> LayerDeepLiftParams {
        LayerDeepLiftParams::default()
    }
    fn rules(&self) -> BackwardRules {
        BackwardRules::DeepLift { eps: self.params.eps, compat: self.params.compat }
    }
}

/// The rule-rewritten model with the layer substituted, as the evaluator sees it: `k` logical
/// rows in (the layer values `cat([A(x), A(b)])`, `2k` tensor rows), `F(x) − F(b)` out.
/// Forward arguments: the model's inputs, then their baselines, then the model's own tensor
/// arguments (each expanded to the `k` rows).
struct PairedLayer {
    inner: Arc<LayerModule>,
    model_inputs: usize,
}

impl Model for PairedLayer {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let value = inputs.first().ok_or_else(|| AttribError::NotApplicable("no layer value given".into()))?;
        let tensor = |a: &ForwardArg| match a {
            ForwardArg::Tensor(t) => Ok(t.shallow_clone()),
            _ => Err(AttribError::NotApplicable("layer DeepLIFT takes tensor forward arguments only".into())),
        };
        let m = self.model_inputs;
        let xs = (0..m)
            .map(|j| Tensor::f_cat(&[tensor(&extra[j])?, tensor(&extra[m + j])?], 0).ctx("pairing inputs and baselines"))
            .collect::<Result<Vec<_>>>()?;
        let rest = extra[2 * m..]
            .iter()
            .map(|a| tensor(a).and_then(|t| Tensor::f_cat(&[&t, &t], 0).map(ForwardArg::Tensor).ctx("pairing forward arguments")))
            .collect::<Result<Vec<_>>>()?;
        let (out, _) = self.inner.forward_with_layer(&xs, &rest, Some(value))?;
        attrib_deeplift::paired_difference(&out)
    }
    fn device(&self) -> tch::Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

impl Attribution for LayerDeepLift {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "layer-deeplift", multiplies_by_inputs: self.params.multiply_by_inputs, has_convergence_delta: true }
    }
    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        p.layer.describe(json!({
            "baselines": p.baselines.describe(),
            "multiply_by_inputs": p.multiply_by_inputs,
            "eps": p.eps,
            "captum_compat": p.compat == DeepLiftRules::Captum,
        }))
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let p = &self.params;
        let layer = p.layer.spec();
        let inner = model.with_layer_rules(&layer, LayerAccess::Substitute, self.rules())?;
        let prep = Evaluator::new(model, p.layer.batch)?.prepare(inputs, target)?;
        let base = p.baselines.resolve_copies(&prep.inputs, inputs.copies())?;
        let own_extra = || inputs.extra().iter().map(ForwardArg::shallow_clone).collect::<Vec<_>>();
        let a_x = read_activations(model, &layer, p.layer.batch, inputs)?;
        let base_inputs = Inputs::multi(base.iter().map(Tensor::shallow_clone).collect()).with_extra(own_extra());
        let a_b = read_activations(model, &layer, p.layer.batch, &base_inputs)?;
        let extra: Vec<ForwardArg> = prep
            .inputs
            .iter()
            .chain(base.iter())
            .map(|t| ForwardArg::Tensor(t.shallow_clone()))
            .chain(prep.extra.iter().map(ForwardArg::shallow_clone))
            .collect();
        let n = prep.n;
        let layer_in = vec![a_x.shallow_clone()];
        let paired_prep = Prepared { inputs: layer_in, extra, n, target: prep.target, device: prep.device };
        let adapter = PairedLayer { inner, model_inputs: prep.inputs.len() };
        let eval = Evaluator::new(&adapter, p.layer.batch)?;
        let batch = Expanded::new(n, n, |s, e| {
            let pair = [a_x.f_narrow(0, s, e - s).ctx("layer rows")?, a_b.f_narrow(0, s, e - s).ctx("layer rows")?];
            Ok(vec![Tensor::f_cat(&pair, 0).ctx("pairing layer values")?])
        })
        .rows_like(&paired_prep.inputs);
        let (mut parts, mut deltas) = (Vec::new(), Vec::new());
        eval.gradients_each(&paired_prep, &batch, |range, grads, gaps| {
            let k = range.end - range.start;
            let m = grads[0].f_narrow(0, 0, k).ctx("input-half multipliers")?;
            let attr = if p.multiply_by_inputs {
                let d = a_x.f_narrow(0, range.start, k).and_then(|x| a_b.f_narrow(0, range.start, k).and_then(|b| x.f_sub(&b))).ctx("A(x) − A(b)")?;
                d.f_mul(&m).ctx("(A(x) − A(b)) · m")?
            } else {
                m
            };
            let total = attr.f_reshape([k, -1]).and_then(|t| t.f_sum_dim_intlist(1, false, tch::Kind::Double)).ctx("row totals")?;
            deltas.push(gaps.f_to_kind(tch::Kind::Double).and_then(|g| total.f_sub(&g)).ctx("convergence delta")?);
            parts.push(attr);
            Ok(())
        })?;
        let values = vec![Tensor::f_cat(&parts, 0).ctx("gathering attributions")?];
        let delta = Tensor::f_cat(&deltas, 0).ctx("convergence delta")?;
        let targets = paired_prep.target.indices().map(<[i64]>::to_vec);
        finish(self, values, Some(delta), targets, start)
    }
}
