//! DeepLIFT-SHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions";
//! Captum's `DeepLiftShap`): DeepLIFT against each sample of a baseline distribution, averaged.
//!
//! Every (row, baseline sample) pair is one logical row of the paired batch, so all pairs of all
//! rows run in chunks sized from the memory budget. The convergence delta has one value per
//! pair, in Captum's order (row-major: row `i`, sample `s` at `i·S + s`).

use crate::deeplift::check_eps;
use crate::pairs::{paired_gradients, PairBaselines};
use attrib_core::{
    AttribError, Attribution, Attributions, BackwardRules, BatchOptions, DeepLiftRules, Baselines, Inputs, Metadata, MethodInfo, Model, Result, Target,
    TorchResultExt,
};
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;

/// Parameters of [`DeepLiftShap`]: a distribution of baseline samples (required, at least two
/// as in Captum), `multiply_by_inputs` (default true), `eps` (1e-10).
#[derive(Debug)]
pub struct DeepLiftShapParams {
    /// Baseline samples `[S, ...]` per input ([`attrib_core::Baseline::Distribution`]).
    pub baselines: Baselines,
    /// Multiply the multipliers by `x − b`.
    pub multiply_by_inputs: bool,
    /// Below this `|Δx|` a rule uses the ordinary gradient.
    pub eps: f64,
    /// The rules as defined ([`DeepLiftRules::Exact`], default) or as Captum applies them
    /// ([`DeepLiftRules::Captum`], for parity).
    pub compat: DeepLiftRules,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl Default for DeepLiftShapParams {
    fn default() -> Self {
        DeepLiftShapParams { baselines: Baselines::default(), multiply_by_inputs: true, eps: crate::DEFAULT_EPS, compat: DeepLiftRules::Exact, batch: BatchOptions::default() }
    }
}

impl DeepLiftShapParams {
    /// Set the baseline distribution.
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
    /// Validate into a ready-to-use [`DeepLiftShap`].
    pub fn check(self) -> Result<DeepLiftShap> {
        check_eps(self.eps)?;
        if !self.baselines.is_distribution() {
            return Err(AttribError::param(
                "baselines",
                "DeepLIFT-SHAP takes a distribution of baseline samples (a .npy file [S, ...] with S >= 2); for one baseline use deeplift",
            ));
        }
        Ok(DeepLiftShap { params: DeepLiftShapParams { batch: self.batch.check()?, ..self } })
    }
}

/// DeepLIFT averaged over baseline samples (see the [module docs](self)).
#[derive(Debug)]
pub struct DeepLiftShap {
    params: DeepLiftShapParams,
}

impl DeepLiftShap {
    /// Parameters with their defaults, to adjust and [`DeepLiftShapParams::check`].
    pub fn params() -> DeepLiftShapParams {
        DeepLiftShapParams::default()
    }
}

impl Attribution for DeepLiftShap {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "deeplift-shap", multiplies_by_inputs: self.params.multiply_by_inputs, has_convergence_delta: true }
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
        let samples = self.params.baselines.samples(&p.inputs)?;
        let s = samples.first().map_or(0, |t| t.size()[0]);
        if s < 2 {
            return Err(AttribError::param(
                "baselines",
                format!("DeepLIFT-SHAP needs at least two baseline samples (Captum's rule), got {s}; for one baseline use deeplift"),
            ));
        }
        let base = PairBaselines::Samples(samples);
        let pg = paired_gradients(rules.as_ref(), self.params.batch, &p, &base, self.params.multiply_by_inputs)?;
        let values = pg.sums.iter().map(|t| t.f_div_scalar(s as f64).ctx("mean over baseline samples")).collect::<Result<_>>()?;
        // Rows s·N + i here; Captum orders the pairs i·S + s.
        let delta = pg.delta.f_reshape([s, p.n]).and_then(|d| d.f_transpose(0, 1)?.f_reshape([-1])).ctx("convergence delta")?;
        let meta = Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        Ok(Attributions { values, convergence_delta: Some(delta), meta })
    }
}
