//! Layer-wise relevance propagation with the epsilon rule (Bach et al. 2015, "On Pixel-Wise
//! Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation";
//! Captum's `LRP` with its default rules).
//!
//! The target output `F_t(x)` is the relevance of the output; each layer hands its output's
//! relevance `R_k` back to its inputs in proportion to their contributions,
//! `R_j = Σ_k a_j w_jk / (z_k + ε·sign(z_k)) · R_k` (the epsilon rule, `sign(0) = 1`), and relu
//! and tanh pass relevance through unchanged. In gradient form every relevance is
//! `R_t = t · G_t`, with `G` the gradient of `F_t` where each covered layer's output `z` scales
//! the gradient by `z/(z + ε·sign(z))` and relu/tanh pass `a/z` back instead of their
//! derivative; the attribution is `x · G` ([`attrib_core::rules`] rewrites the graph so; one
//! forward and backward pass). Covered layers: linear, convolution, batch norm, max, average and
//! adaptive average pooling (Captum's defaults, in every dimension) and matrix products with a
//! constant operand; other operations linear in the inputs (reshapes, concatenations, additions,
//! sums, products with a constant, dropout) keep their ordinary gradient. Any other non-linear
//! operation on the inputs is an error naming it and where it sits.
//!
//! On bias-free networks the relevance is conserved: the attributions of a row sum to `F_t(x)`
//! up to what ε absorbs; the convergence delta `Σ attr − F_t(x)` reports the gap (Captum's own
//! delta has the opposite sign, `F_t(x) − Σ attr`).

use attrib_core::{Attribution, Attributions, BackwardRules, BatchOptions, Inputs, Metadata, MethodInfo, Model, Result, Target, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded};
use serde_json::json;
use std::time::Instant;
use tch::Kind;

/// Captum's `EpsilonRule` default.
pub const DEFAULT_EPSILON: f64 = 1e-9;

/// Parameters of [`Lrp`]; defaults as Captum's (`epsilon` 1e-9), with the convergence delta
/// returned (free: the target outputs come with the gradients).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrpParams {
    /// The epsilon rule's stabiliser, added to each layer output with its sign.
    pub epsilon: f64,
    /// Report `Σ attr − F_t(x)` per row (Captum's `return_convergence_delta`).
    pub return_convergence_delta: bool,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl Default for LrpParams {
    fn default() -> Self {
        LrpParams { epsilon: DEFAULT_EPSILON, return_convergence_delta: true, batch: BatchOptions::default() }
    }
}

impl LrpParams {
    /// Set the epsilon rule's stabiliser.
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Report the convergence delta or not.
    pub fn return_convergence_delta(mut self, yes: bool) -> Self {
        self.return_convergence_delta = yes;
        self
    }
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }
    /// Validate into a ready-to-use [`Lrp`].
    pub fn check(self) -> Result<Lrp> {
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(attrib_core::AttribError::param(
                "epsilon",
                format!("{} is not a usable stabiliser; give a small non-negative number (Captum: 1e-9)", self.epsilon),
            ));
        }
        Ok(Lrp { params: LrpParams { batch: self.batch.check()?, ..self } })
    }
}

/// LRP with the epsilon rule on any TorchScript model its rules cover (see the
/// [module docs](self)).
#[derive(Debug, Clone, Copy)]
pub struct Lrp {
    params: LrpParams,
}

impl Lrp {
    /// Parameters with their defaults, to adjust and [`LrpParams::check`].
    pub fn params() -> LrpParams {
        LrpParams::default()
    }

    fn rules(&self) -> BackwardRules {
        BackwardRules::Lrp { epsilon: self.params.epsilon }
    }
}

impl Attribution for Lrp {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "lrp", multiplies_by_inputs: true, has_convergence_delta: self.params.return_convergence_delta }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "epsilon": self.params.epsilon,
            "return_convergence_delta": self.params.return_convergence_delta,
            "batch": self.params.batch,
        })
    }

    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        model.with_rules(self.rules()).map(Some)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let rewritten = model.with_rules(self.rules())?;
        let eval = Evaluator::new(rewritten.as_ref(), self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let g = eval.gradients(&p, &Expanded::identity(&p.inputs))?;
        let values: Vec<_> = g
            .grads
            .iter()
            .zip(&p.inputs)
            .map(|(g, x)| g.f_mul(x).ctx("multiplying LRP's gradients by the inputs"))
            .collect::<Result<_>>()?;
        let convergence_delta = if self.params.return_convergence_delta {
            // In float64, as the other methods' deltas: Σ attr − F_t(x) per row.
            let mut total = g.outputs.f_to_kind(Kind::Double).and_then(|o| o.f_neg()).ctx("LRP's convergence delta")?;
            for v in &values {
                let rows = v
                    .f_reshape([p.n, -1])
                    .and_then(|f| f.f_sum_dim_intlist(1, false, Kind::Double))
                    .ctx("summing LRP's relevance per row")?;
                total = total.f_add(&rows).ctx("LRP's convergence delta")?;
            }
            Some(total)
        } else {
            None
        };
        let meta = Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        Ok(Attributions { values, convergence_delta, meta })
    }
}
