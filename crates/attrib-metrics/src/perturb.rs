//! Seeded input noise shared by the perturbation metrics ([`crate::infidelity`],
//! [`crate::sensitivity`]).
//!
//! Perturbed copies are laid out as every expanded batch of attrib: `S` copies of the `N` rows,
//! copy-major (row `s·N + i` is copy `s` of sample `i`). Each row's noise comes from its own
//! keyed stream of [`attrib_tensor::rng`] (`(seed, input, copy, sample)`; normals by the
//! ziggurat method, see `fill.rs`), so it does not depend on how the rows are chunked. Captum
//! lays its copies out sample-major (`repeat_interleave`); the parity fixtures reorder Captum's
//! draws to attrib's layout before replaying them.

use attrib_core::{AttribError, Result, TorchResultExt};
use std::ops::Range;
use tch::Tensor;

/// A noise distribution, drawn independently for every element of every perturbed row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// `N(0, stdev²)`.
    Gaussian {
        /// The standard deviation.
        stdev: f64,
    },
    /// Uniform in `[-radius, radius)`: a draw from the L∞ ball of that radius (Captum's default
    /// perturbation of `sensitivity_max`).
    Uniform {
        /// The radius.
        radius: f64,
    },
}

impl Noise {
    /// The noise scale (standard deviation or radius).
    pub fn scale(&self) -> f64 {
        match *self {
            Noise::Gaussian { stdev } => stdev,
            Noise::Uniform { radius } => radius,
        }
    }

    /// Error unless the scale is finite and non-negative.
    pub fn check(&self, name: &'static str) -> Result<()> {
        let s = self.scale();
        if s.is_finite() && s >= 0.0 {
            Ok(())
        } else {
            Err(AttribError::param(name, format!("the noise scale must be finite and >= 0, got {s}")))
        }
    }

    /// Noise of rows `rows` of input `input` (`x`: that input, `[N, ...]`) in an expanded batch
    /// over `N` samples: `[rows.len(), ...]` of `x`'s dtype on its device.
    pub fn rows(&self, seed: u64, input: usize, x: &Tensor, rows: Range<i64>) -> Result<Tensor> {
        crate::fill::noise_rows(*self, seed, input, x, rows)
    }
}

/// Rows `rows` of the copy-major expansion of `x` (`[N, ...]`): row `r` is `x[r % N]`.
pub fn expanded_rows(x: &Tensor, rows: Range<i64>) -> Result<Tensor> {
    let n = x.size()[0];
    let chunk = attrib_tensor::ChunkRows::new(rows.start, rows.end, n, x.device());
    x.f_index_select(0, &chunk.samples()?).ctx("expanding rows")
}

/// `num / den`, with 1 in place of a zero denominator (Captum's `safe_div` with its default).
pub fn safe_div(num: &Tensor, den: &Tensor) -> Result<Tensor> {
    let ones = den.f_ones_like().ctx("dividing safely")?;
    let den = den.f_ne(0.0).and_then(|nz| den.f_where_self(&nz, &ones)).ctx("dividing safely")?;
    num.f_div(&den).ctx("dividing safely")
}

/// Check explicit per-copy tensors (`[S·N, ...]` for input `i` of shape `[N, ...]`).
pub fn check_copies(name: &'static str, given: &[Tensor], inputs: &[Tensor], copies: i64) -> Result<()> {
    if given.len() != inputs.len() {
        return Err(AttribError::param(name, format!("{} tensors for {} inputs; give one per input", given.len(), inputs.len())));
    }
    for (i, (g, x)) in given.iter().zip(inputs).enumerate() {
        let mut want = x.size();
        want[0] *= copies;
        if g.size() != want {
            return Err(AttribError::param(
                name,
                format!("the tensor of input {i} has shape {:?}; expected {want:?} ({copies} copies of the batch, copy-major)", g.size()),
            ));
        }
    }
    Ok(())
}
