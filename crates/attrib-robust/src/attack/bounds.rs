//! [`Bounds`]: the range every input value is clamped to after an attack.

use attrib_core::{AttribError, Result, TorchResultExt};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Lower and upper bound of every input value after an attack (Captum's `lower_bound` and
/// `upper_bound`; default: none, `−inf..inf`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Smallest allowed value.
    pub lower: f64,
    /// Largest allowed value.
    pub upper: f64,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds { lower: f64::NEG_INFINITY, upper: f64::INFINITY }
    }
}

impl Bounds {
    /// Bounds `lower..=upper`.
    pub fn new(lower: f64, upper: f64) -> Bounds {
        Bounds { lower, upper }
    }

    /// An error unless `lower <= upper` and neither is NaN.
    pub fn check(self) -> Result<Bounds> {
        if self.lower.is_nan() || self.upper.is_nan() || self.lower > self.upper {
            return Err(AttribError::param("bounds", format!("need lower <= upper, got {},{}", self.lower, self.upper)));
        }
        Ok(self)
    }

    /// `x` clamped to the bounds (unchanged, not copied, without bounds).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match (self.lower.is_finite(), self.upper.is_finite()) {
            (false, false) => Ok(x.shallow_clone()),
            (true, false) => x.f_clamp_min(self.lower),
            (false, true) => x.f_clamp_max(self.upper),
            (true, true) => x.f_clamp(self.lower, self.upper),
        }
        .ctx("clamping to the bounds")
    }
}
