//! Channel reduction, outlier threshold and scaling of attributions (Captum's `_normalize_attr`).

use ndarray::{Array2, ArrayView2, ArrayView3, Axis};

use crate::error::VizError;
use crate::params::Sign;

/// The value at which the cumulative sum of the ascending-sorted `values` first reaches
/// `percentile %` of their total.
///
/// With `v_(1) ≤ … ≤ v_(m)` the sorted values and `S_j = v_(1) + … + v_(j)`, the result is
/// `v_(j*)` for the smallest `j*` with `S_j ≥ S_m · percentile / 100`. The values should be
/// non-negative and `percentile` in [0, 100]; with `percentile = 100` the result is the
/// maximum. Returns `None` when `values` is empty.
pub fn cumulative_sum_threshold(values: &[f64], percentile: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let total: f64 = sorted.iter().sum();
    let target = total * (percentile / 100.0);
    let mut cum = 0.0;
    for &v in &sorted {
        cum += v;
        if cum >= target {
            return Some(v);
        }
    }
    // Only reachable through rounding when the running sum differs from `total`.
    sorted.last().copied()
}

/// Counts non-finite values and rejects empty arrays.
pub(crate) fn check_finite_nonempty<'a, I>(
    what: &'static str,
    shape: &[usize],
    values: I,
) -> Result<(), VizError>
where
    I: IntoIterator<Item = &'a f32>,
{
    if shape.iter().product::<usize>() == 0 {
        return Err(VizError::Empty {
            what,
            shape: shape.to_vec(),
        });
    }
    let count = values.into_iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(VizError::NonFinite { what, count });
    }
    Ok(())
}

/// Validates `outlier_perc` for the free functions that take it directly.
fn check_outlier_perc(outlier_perc: f64) -> Result<(), VizError> {
    if !outlier_perc.is_finite() || !(0.0..100.0).contains(&outlier_perc) {
        return Err(VizError::InvalidParameter {
            name: "outlier_perc",
            reason: format!("got {outlier_perc}; it must lie in [0, 100) (default 2)"),
        });
    }
    Ok(())
}

/// Normalises a CHW attribution for display (Captum's `_normalize_attr` with the channel axis
/// reduced).
///
/// 1. Channel sum: `s(h, w) = Σ_c a(c, h, w)` (in f64). The layout is **CHW** (channels first,
///    as attrib's tensors for one image); use [`crate::hwc_to_chw`] or
///    `insert_axis(Axis(0))` for HWC or HW arrays.
/// 2. Signed selection `v`: `positive` → `max(s, 0)`, `negative` → `max(−s, 0)`,
///    `absolute_value` and `all` → `abs(s)`.
/// 3. Threshold `T = cumulative_sum_threshold(v, 100 − outlier_perc)`: the largest values
///    that together hold `outlier_perc %` of the total mass are treated as outliers.
/// 4. Scale and clip: `n = clip(s / T, −1, 1)` for `all`, `n = clip(v / T, 0, 1)` otherwise.
///
/// With `outlier_perc = 0`, `T = max v`, so the largest value maps exactly to 1. When every
/// selected value is 0 (`T = 0`) the result is all zeros (Captum would divide by zero).
///
/// Errors: empty array, NaN or infinite values, `outlier_perc` outside [0, 100).
pub fn normalize_attr(
    attr: ArrayView3<'_, f32>,
    sign: Sign,
    outlier_perc: f64,
) -> Result<Array2<f64>, VizError> {
    check_outlier_perc(outlier_perc)?;
    check_finite_nonempty("attribution", attr.shape(), attr.iter())?;
    let summed = attr.mapv(f64::from).sum_axis(Axis(0));
    Ok(normalize_map(summed.view(), sign, outlier_perc))
}

/// Steps 2–4 of [`normalize_attr`] on an already channel-reduced map (assumed finite).
pub(crate) fn normalize_map(s: ArrayView2<'_, f64>, sign: Sign, outlier_perc: f64) -> Array2<f64> {
    let selected = s.mapv(|x| match sign {
        Sign::Positive => x.max(0.0),
        Sign::Negative => (-x).max(0.0),
        Sign::AbsoluteValue | Sign::All => x.abs(),
    });
    let flat: Vec<f64> = selected.iter().copied().collect();
    let threshold = cumulative_sum_threshold(&flat, 100.0 - outlier_perc).unwrap_or(0.0);
    if threshold <= 0.0 {
        return Array2::zeros(s.raw_dim());
    }
    match sign {
        Sign::All => s.mapv(|x| (x / threshold).clamp(-1.0, 1.0)),
        _ => selected.mapv(|v| (v / threshold).clamp(0.0, 1.0)),
    }
}
