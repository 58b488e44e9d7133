//! DeepLIFT (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through
//! Propagating Activation Differences"; Captum's `DeepLift`), rescale rule.
//!
//! The model's graph is rewritten so that every non-linearity back-propagates
//! `Δy/Δx` (its output difference over its input difference between the input and the baseline)
//! instead of its derivative ([`attrib_core::rules`]). The multipliers `m` of the inputs are the
//! gradients of `F_t` under those rules, computed on `cat([x, b])`; the attribution is
//! `(x − b) · m`, and the attributions of a row sum to `F_t(x) − F_t(b)` on networks of linear
//! operations and covered non-linearities (summation-to-delta); the convergence delta reports
//! the gap.

use crate::pairs::{paired_gradients, PairBaselines};
use attrib_core::{
    Attribution, Attributions, BackwardRules, BatchOptions, DeepLiftRules, Baselines, Inputs, Metadata, MethodInfo, Model, Result, Target,
};
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;

/// Parameters of [`DeepLift`]; defaults as Captum's (zero baselines, `multiply_by_inputs`,
/// `eps` 1e-10).
#[derive(Debug)]
pub struct DeepLiftParams {
    /// The reference input (default: zeros), one per row or shared.
    pub baselines: Baselines,
    /// Multiply the multipliers by `x − b` (Captum's `multiply_by_inputs`; default true).
    pub multiply_by_inputs: bool,
    /// Below this `|Δx|` a rule uses the ordinary gradient (Captum's `eps`, 1e-10).
    pub eps: f64,
    /// The rules as defined ([`DeepLiftRules::Exact`], default) or as Captum applies them
    /// ([`DeepLiftRules::Captum`], for parity).
    pub compat: DeepLiftRules,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl Default for DeepLiftParams {
    fn default() -> Self {
        DeepLiftParams { baselines: Baselines::default(), multiply_by_inputs: true, eps: crate::DEFAULT_EPS, compat: DeepLiftRules::Exact, batch: BatchOptions::default() }
    }
}

impl DeepLiftParams {
    /// Set the baselines.
    pub fn baselines(mut self, b: impl Into<Baselines>) -> Self {
        self.baselines = b.into();
        self
    }
    /// Multiply by `x − b` or not.
    pub fn multiply_by_inputs(mut self, yes: bool) -> Self {
        self.multiply_by_inputs = yes;
        self
    }
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
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }
    /// Validate into a ready-to-use [`DeepLift`].
    pub fn check(self) -> Result<DeepLift> {
        check_eps(self.eps)?;
        if self.baselines.is_distribution() {
            return Err(attrib_core::AttribError::param(
                "baselines",
                "DeepLIFT takes one baseline per row; for a distribution of baseline samples use deeplift-shap",
            ));
        }
        Ok(DeepLift { params: DeepLiftParams { batch: self.batch.check()?, ..self } })
    }
}

pub(crate) fn check_eps(eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(attrib_core::AttribError::param("eps", format!("{eps} is not a usable threshold; give a small non-negative number (Captum: 1e-10)")));
    }
    Ok(())
}

/// DeepLIFT with the rescale rule on any TorchScript model (see the [module docs](self)).
#[derive(Debug)]
pub struct DeepLift {
    params: DeepLiftParams,
}

impl DeepLift {
    /// Parameters with their defaults, to adjust and [`DeepLiftParams::check`].
    pub fn params() -> DeepLiftParams {
        DeepLiftParams::default()
    }
}

impl Attribution for DeepLift {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "deeplift", multiplies_by_inputs: self.params.multiply_by_inputs, has_convergence_delta: true }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "baselines": self.params.baselines.describe(),
            "multiply_by_inputs": self.params.multiply_by_inputs,
            "eps": self.params.eps,
            "captum_compat": self.params.compat == DeepLiftRules::Captum,
            "batch": self.params.batch,
        })
    }

    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        model.with_rules(BackwardRules::DeepLift { eps: self.params.eps, compat: self.params.compat }).map(Some)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let rules = model.with_rules(BackwardRules::DeepLift { eps: self.params.eps, compat: self.params.compat })?;
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let base = PairBaselines::PerRow(self.params.baselines.resolve_copies(&p.inputs, inputs.copies())?);
        let pg = paired_gradients(rules.as_ref(), self.params.batch, &p, &base, self.params.multiply_by_inputs)?;
        let meta = Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        Ok(Attributions { values: pg.sums, convergence_delta: Some(pg.delta), meta })
    }
}
