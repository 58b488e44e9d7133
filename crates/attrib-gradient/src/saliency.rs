//! Saliency (Simonyan, Vedaldi & Zisserman 2013, "Deep Inside Convolutional Networks").
//!
//! `attr_i = ∂F_t(x) / ∂x_i`, or `|∂F_t(x) / ∂x_i|` with `abs`.

use attrib_core::{Attribution, Attributions, BatchOptions, Inputs, Metadata, MethodInfo, Model, PlannedRows, Result, Target, TorchResultExt};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Parameters of [`Saliency`].
///
/// attrib's default is the *signed* gradient (`abs = false`); Captum's `Saliency.attribute`
/// defaults to `abs=True`. Set `abs` to get Captum's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SaliencyParams {
    /// Return absolute gradients (Captum's `abs=True`).
    pub abs: bool,
    /// Chunking of the gradient computation.
    pub batch: BatchOptions,
}

impl SaliencyParams {
    /// Set `abs`.
    pub fn abs(mut self, abs: bool) -> Self {
        self.abs = abs;
        self
    }

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`Saliency`].
    pub fn check(self) -> Result<Saliency> {
        Ok(Saliency { params: SaliencyParams { batch: self.batch.check()?, ..self } })
    }
}

/// The gradient of the target output with respect to each input element.
///
/// Does not multiply by inputs; no convergence delta.
#[derive(Debug, Clone, Copy)]
pub struct Saliency {
    params: SaliencyParams,
}

impl Default for Saliency {
    fn default() -> Self {
        Saliency { params: SaliencyParams::default() }
    }
}

impl Saliency {
    /// Parameters with their defaults, to adjust and [`SaliencyParams::check`].
    pub fn params() -> SaliencyParams {
        SaliencyParams::default()
    }
}

impl Attribution for Saliency {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "saliency", multiplies_by_inputs: false, has_convergence_delta: false }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or_default()
    }

    fn planned_rows(&self, inputs: &Inputs) -> Option<PlannedRows> {
        PlannedRows::per_sample(inputs, 1, true)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let (p, grads) = crate::path::gradients_at_inputs(model, self.params.batch, inputs, target)?;
        let values = if self.params.abs {
            grads.iter().map(|g| g.f_abs().ctx("taking absolute gradients")).collect::<Result<_>>()?
        } else {
            grads
        };
        let meta = Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}
