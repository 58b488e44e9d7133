//! Input × Gradient (Shrikumar et al. 2016, "Not Just a Black Box").
//!
//! `attr_i = x_i · ∂F_t(x) / ∂x_i`: the first-order Taylor term of `F` around zero.

use attrib_core::{Attribution, Attributions, BatchOptions, Inputs, Metadata, MethodInfo, Model, PlannedRows, Result, Target, TorchResultExt};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Parameters of [`InputXGradient`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct InputXGradientParams {
    /// Chunking of the gradient computation.
    pub batch: BatchOptions,
}

impl InputXGradientParams {
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`InputXGradient`].
    pub fn check(self) -> Result<InputXGradient> {
        Ok(InputXGradient { params: InputXGradientParams { batch: self.batch.check()? } })
    }
}

/// The input times the gradient of the target output with respect to it.
///
/// Multiplies by inputs; no convergence delta.
#[derive(Debug, Clone, Copy, Default)]
pub struct InputXGradient {
    params: InputXGradientParams,
}

impl InputXGradient {
    /// Parameters with their defaults, to adjust and [`InputXGradientParams::check`].
    pub fn params() -> InputXGradientParams {
        InputXGradientParams::default()
    }
}

impl Attribution for InputXGradient {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "input-x-gradient", multiplies_by_inputs: true, has_convergence_delta: false }
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
        let values = grads
            .iter()
            .zip(&p.inputs)
            .map(|(g, x)| g.f_mul(x).ctx("multiplying gradients by inputs"))
            .collect::<Result<_>>()?;
        let meta = Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}
