//! The noise of the sampling methods ([`crate::NoiseTunnel`], [`crate::GradientShap`]), shared
//! by both: the checks of the standard deviations, seeded noise of a range of copy-major rows,
//! given noise moved to an input's dtype and device, and the shape check of given noise.

use crate::rng::normal_rows;
use attrib_core::{AttribError, Result, TorchResultExt};
use std::ops::Range;
use tch::{Device, Kind, Tensor};

/// Error unless `stdevs` holds at least one standard deviation and every one is finite and >= 0.
pub(crate) fn check_stdevs(stdevs: &[f64]) -> Result<()> {
    if stdevs.is_empty() {
        return Err(AttribError::param("stdevs", "give one standard deviation (or one per input)"));
    }
    if let Some(bad) = stdevs.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(AttribError::param("stdevs", format!("standard deviations must be finite and >= 0, got {bad}")));
    }
    Ok(())
}

/// The largest magnitude of a standard normal draw of [`crate::rng::Rng::normal`] (Box–Muller
/// with 53-bit uniforms: `√(−2 ln 2⁻⁵³) ≈ 8.5716`), rounded up.
pub(crate) const NORMAL_MAX: f64 = 8.58;

/// Error unless the seeded noise of every input (at most [`NORMAL_MAX`] standard deviations)
/// added to the input stays within the input dtype's finite range.
pub(crate) fn check_noise_fits(stdevs: &[f64], inputs: &[Tensor]) -> Result<()> {
    let k = inputs.len();
    for (i, x) in inputs.iter().enumerate() {
        let s = stdev_of(stdevs, i, k)?;
        let Some(max) = attrib_core::numeric::float_range(x.kind()) else { continue };
        if s == 0.0 {
            continue;
        }
        let reach = attrib_core::numeric::max_abs(x)? + NORMAL_MAX * s;
        if reach.is_nan() || reach > max {
            return Err(AttribError::param(
                "stdevs",
                format!(
                    "a noise standard deviation of {} for input {i} would overflow its dtype {}: noisy values reach about {}, beyond {}; give a smaller standard deviation (smoothgrad: a smaller noise_level, a share of the input range)",
                    attrib_core::numeric::format_number(s),
                    attrib_core::numeric::kind_name(x.kind()),
                    attrib_core::numeric::format_number(reach),
                    attrib_core::numeric::range_text(x.kind()).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// The standard deviation of input `i` of `k`.
pub(crate) fn stdev_of(stdevs: &[f64], i: usize, k: usize) -> Result<f64> {
    match stdevs.len() {
        1 => Ok(stdevs[0]),
        m if m == k => Ok(stdevs[i]),
        m => Err(AttribError::param("stdevs", format!("{m} standard deviations for {k} inputs; give one, or one per input"))),
    }
}

/// Seeded noise of rows `rows` (row `s · N + j`: copy or draw `s` of sample `j` of `n`) of input
/// `i` of `k` (`x`: `[N, ...]`), each row from its own keyed generator
/// ([`crate::rng::normal_rows`]), or `None` when the input's standard deviation is 0.
pub(crate) fn seeded_noise(stdevs: &[f64], seed: u64, i: usize, k: usize, x: &Tensor, rows: Range<i64>, n: i64) -> Result<Option<Tensor>> {
    let s = stdev_of(stdevs, i, k)?;
    if s == 0.0 {
        return Ok(None);
    }
    let size = x.size();
    normal_rows(seed, i, rows, n, &size[1..], s, x.kind(), x.device()).map(Some)
}

/// Rows `rows` of given noise `z`, in `kind` on `device`.
pub(crate) fn given_noise(z: &Tensor, rows: Range<i64>, kind: Kind, device: Device) -> Result<Tensor> {
    z.f_narrow(0, rows.start, rows.end - rows.start).and_then(|z| z.f_to_kind(kind)).and_then(|z| z.f_to_device(device)).ctx("moving noise")
}

/// `noise`, or zeros of `x`'s row shape, dtype and device for `rows` rows when it is `None`.
pub(crate) fn or_zeros(noise: Option<Tensor>, x: &Tensor, rows: i64) -> Result<Tensor> {
    match noise {
        Some(z) => Ok(z),
        None => {
            let mut shape = x.size();
            shape[0] = rows;
            Tensor::f_zeros(&shape, (x.kind(), x.device())).ctx("zero noise")
        }
    }
}

/// Error (on parameter `param`) unless the given noise of every input has `rows` rows of the
/// input's row shape.
pub(crate) fn check_noise_shapes(param: &'static str, noise: &[Tensor], inputs: &[Tensor], rows: i64) -> Result<()> {
    for (i, (z, x)) in noise.iter().zip(inputs).enumerate() {
        let mut want = x.size();
        want[0] = rows;
        if z.size() != want {
            return Err(AttribError::param(param, format!("noise of input {i} has shape {:?}, expected {want:?}", z.size())));
        }
    }
    Ok(())
}
