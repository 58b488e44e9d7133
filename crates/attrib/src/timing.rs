//! Benchmark mode: run an attribution once, then `repeat` more times, and report the first call
//! (which also pays one-time costs: TorchScript's first runs, layout trials, memory probes) apart
//! from the warm calls.
//!
//! ```
//! use attrib::prelude::*;
//! use attrib::timing::attribute_repeated;
//! # fn main() -> attrib::Result<()> {
//! let model = FnModel::new(|x: &tch::Tensor| x.sum_dim_intlist(1, false, tch::Kind::Float));
//! let x = tch::Tensor::ones([4, 3], (tch::Kind::Float, tch::Device::Cpu));
//! let saliency = Saliency::params().check()?;
//! let (attr, t) = attribute_repeated(&saliency, &model, &Inputs::new(x), &Target::None, 5)?;
//! assert_eq!(t.repeats, 5);
//! assert!(t.min_ms <= t.median_ms && t.median_ms <= t.max_ms);
//! # Ok(()) }
//! ```

use attrib_core::{Attribution, Attributions, Inputs, Model, Result, Target};
use serde::Serialize;

/// Times of an attribution run `1 + repeats` times, in milliseconds (the attribution call only,
/// model loading excluded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// The first call.
    pub first_ms: f64,
    /// Warm calls after the first.
    pub repeats: usize,
    /// Median of the warm calls (the first call when there are none).
    pub median_ms: f64,
    /// Fastest warm call (the first call when there are none).
    pub min_ms: f64,
    /// Slowest warm call (the first call when there are none).
    pub max_ms: f64,
}

impl Timing {
    /// Summarise the first call and the warm calls.
    pub fn from_times(first_ms: f64, warm_ms: &[f64]) -> Timing {
        if warm_ms.is_empty() {
            return Timing { first_ms, repeats: 0, median_ms: first_ms, min_ms: first_ms, max_ms: first_ms };
        }
        let mut v = warm_ms.to_vec();
        v.sort_by(f64::total_cmp);
        let k = v.len();
        let median = if k % 2 == 1 { v[k / 2] } else { 0.5 * (v[k / 2 - 1] + v[k / 2]) };
        Timing { first_ms, repeats: k, median_ms: median, min_ms: v[0], max_ms: v[k - 1] }
    }
}

/// Attribute once, then `repeats` more times; the first call's attributions are returned (the
/// methods are deterministic, so every call gives the same values for the same variant choice).
///
/// Each call is timed from its start until its results exist: on a CUDA device the clock stops
/// after the device has finished the call's work (`cudaDeviceSynchronize` through tch), since
/// kernels run asynchronously and the returned tensors may still be being computed.
pub fn attribute_repeated(
    method: &dyn Attribution,
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    repeats: usize,
) -> Result<(Attributions, Timing)> {
    let call = || -> Result<(Attributions, f64)> {
        let start = std::time::Instant::now();
        let attr = method.attribute(model, inputs, target)?;
        if let tch::Device::Cuda(i) = model.device() {
            tch::Cuda::synchronize(i as i64);
        }
        Ok((attr, start.elapsed().as_secs_f64() * 1e3))
    };
    let (attr, first) = call()?;
    let mut warm = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        warm.push(call()?.1);
    }
    Ok((attr, Timing::from_times(first, &warm)))
}

#[cfg(test)]
mod tests {
    use super::Timing;

    #[test]
    fn median_min_max_of_the_warm_calls() {
        let t = Timing::from_times(9.0, &[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((t.first_ms, t.repeats, t.median_ms, t.min_ms, t.max_ms), (9.0, 4, 2.5, 1.0, 10.0));
        let t = Timing::from_times(9.0, &[]);
        assert_eq!((t.repeats, t.median_ms), (0, 9.0));
    }
}
