//! Numbers given as parameters, checked against the dtype of the tensors they end up in.
//!
//! A scalar baseline of `1e40` cannot be stored in a float32 input (it would become infinity, or
//! make libtorch refuse the conversion); such values are rejected with a message that names the
//! dtype's range before any work.
//!
//! ```
//! use attrib_core::numeric::{check_fits, float_range};
//! use tch::Kind;
//! assert_eq!(float_range(Kind::Half), Some(65504.0));
//! assert!(check_fits("baselines", "the scalar baseline", 1e30, Kind::Float).is_ok());
//! let e = check_fits("baselines", "the scalar baseline", 1e40, Kind::Float).unwrap_err().to_string();
//! assert!(e.contains("float32") && e.contains("3.4028235e38"), "{e}");
//! ```

use crate::error::{AttribError, Result, TorchResultExt};
use tch::{Kind, Tensor};

/// The largest finite magnitude of a floating-point kind (`None` for other kinds).
pub fn float_range(kind: Kind) -> Option<f64> {
    match kind {
        Kind::Half => Some(65504.0),
        Kind::BFloat16 => Some(3.389_531_389_251_535_5e38),
        Kind::Float => Some(f64::from(f32::MAX)),
        Kind::Double => Some(f64::MAX),
        _ => None,
    }
}

/// The smallest and largest value of a kind (`None` for kinds without a numeric range).
pub fn kind_range(kind: Kind) -> Option<(f64, f64)> {
    if let Some(m) = float_range(kind) {
        return Some((-m, m));
    }
    Some(match kind {
        Kind::Uint8 => (0.0, 255.0),
        Kind::Int8 => (-128.0, 127.0),
        Kind::Int16 => (-32768.0, 32767.0),
        Kind::Int => (f64::from(i32::MIN), f64::from(i32::MAX)),
        Kind::Int64 => (i64::MIN as f64, i64::MAX as f64),
        _ => return None,
    })
}

/// The NumPy name of a kind, for messages (`float32`, `float16`, ...).
pub fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Half => "float16".into(),
        Kind::BFloat16 => "bfloat16".into(),
        Kind::Float => "float32".into(),
        Kind::Double => "float64".into(),
        Kind::Uint8 => "uint8".into(),
        Kind::Int8 => "int8".into(),
        Kind::Int16 => "int16".into(),
        Kind::Int => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Bool => "bool".into(),
        other => format!("{other:?}"),
    }
}

/// A number for messages: plain when moderate (`65504`, `0.25`), else in exponent form
/// (`1e40`, and `3.4028235e38` for float32's largest value).
pub fn format_number(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        // The shortest text that reads back as the f32 value where it is one (3.4028235e38).
        let f = v as f32;
        if f64::from(f) == v {
            return format!("{f:e}");
        }
        return format!("{v:e}");
    }
    format!("{v}")
}

/// The range of `kind` as text: `±3.4028235e38`, or `0 to 255`.
pub fn range_text(kind: Kind) -> Option<String> {
    let (lo, hi) = kind_range(kind)?;
    Some(if lo == -hi { format!("±{}", format_number(hi)) } else { format!("{} to {}", format_number(lo), format_number(hi)) })
}

/// Error unless `value` (parameter `name`, described as `what` in the message, e.g. "the scalar
/// baseline") is finite and can be stored in a tensor of `kind` without overflowing.
pub fn check_fits(name: &'static str, what: &str, value: f64, kind: Kind) -> Result<()> {
    if !value.is_finite() {
        return Err(AttribError::param(name, format!("{what} must be a finite number, got {value}")));
    }
    match kind_range(kind) {
        Some((lo, hi)) if value < lo || value > hi => Err(AttribError::param(
            name,
            format!(
                "{what} is {}, which does not fit the inputs' dtype {} (values within {}); give a value in that range{}",
                format_number(value),
                kind_name(kind),
                range_text(kind).unwrap_or_default(),
                if float_range(kind).is_some_and(|m| m < f64::MAX) { " (or convert the inputs to float64)" } else { "" }
            ),
        )),
        _ => Ok(()),
    }
}

/// The largest magnitude in `t` (0 for an empty tensor), read on the host; NaN when `t` holds
/// NaN.
pub fn max_abs(t: &Tensor) -> Result<f64> {
    if t.numel() == 0 {
        return Ok(0.0);
    }
    let m = t.f_abs().and_then(|a| a.f_max()).and_then(|m| m.f_to_kind(Kind::Double)).ctx("finding the largest magnitude")?;
    f64::try_from(&m).ctx("reading the largest magnitude")
}

/// Error unless every value of the floating-point tensor `t` fits `kind` (the tensor is about to
/// be converted to it: a float64 baseline file for float32 inputs, for example). Nothing to do
/// when `kind` is at least as wide as `t`'s own kind.
pub fn check_tensor_fits(name: &'static str, what: &str, t: &Tensor, kind: Kind) -> Result<()> {
    let (Some(own), Some(target)) = (float_range(t.kind()), kind_range(kind)) else {
        return Ok(());
    };
    if own <= target.1 && float_range(kind).is_some() {
        return Ok(());
    }
    let m = max_abs(t)?;
    if m.is_finite() && m > target.1 {
        return Err(AttribError::param(
            name,
            format!(
                "{what} holds values up to {} in magnitude, which do not fit the inputs' dtype {} (values within {}); rescale it or convert the inputs to float64",
                format_number(m),
                kind_name(kind),
                range_text(kind).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_messages() {
        assert_eq!(range_text(Kind::Float).unwrap(), "±3.4028235e38");
        assert_eq!(range_text(Kind::Half).unwrap(), "±65504");
        assert_eq!(range_text(Kind::Uint8).unwrap(), "0 to 255");
        assert_eq!((format_number(1e40), format_number(0.25), format_number(-3.0)), ("1e40".into(), "0.25".into(), "-3".into()));
        assert!(check_fits("b", "x", 65504.0, Kind::Half).is_ok());
        assert!(check_fits("b", "x", 70000.0, Kind::Half).unwrap_err().to_string().contains("float16"));
        assert!(check_fits("b", "x", -1e39, Kind::Float).is_err());
        assert!(check_fits("b", "x", f64::from(f32::MAX), Kind::Float).is_ok());
        assert!(check_fits("b", "x", 1e300, Kind::Double).is_ok());
        assert!(check_fits("b", "x", f64::NAN, Kind::Double).is_err());
        // bfloat16's largest value is what libtorch says it is.
        let t = Tensor::from_slice(&[3.389_531_389_251_535_5e38f64]).to_kind(Kind::BFloat16).to_kind(Kind::Double);
        assert_eq!(f64::try_from(&t).unwrap(), float_range(Kind::BFloat16).unwrap());
        // A wide tensor checked against a narrow kind.
        let wide = Tensor::from_slice(&[1.0f64, -1e40]);
        let e = check_tensor_fits("baselines", "the baseline", &wide, Kind::Float).unwrap_err().to_string();
        assert!(e.contains("1e40") && e.contains("float32"), "{e}");
        assert!(check_tensor_fits("baselines", "the baseline", &wide, Kind::Double).is_ok());
        assert!(check_tensor_fits("baselines", "the baseline", &Tensor::from_slice(&[1.0f64, 2.0]), Kind::Float).is_ok());
    }
}
