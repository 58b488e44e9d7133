//! Per-row parameters (ε, step sizes) and the masks of an attack, checked before any model call.

use attrib_core::{AttribError, Result, TorchResultExt};
use tch::Tensor;

/// A per-row parameter (ε, a step size) as a tensor `[N, 1, ...]` that broadcasts against an
/// input of `like`'s shape, in its dtype and on its device.
pub(crate) fn row_values(values: &[f64], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![values.len() as i64];
    shape.extend(vec![1; like.dim().saturating_sub(1)]);
    Tensor::f_from_slice(values)
        .and_then(|t| t.f_reshape(&shape))
        .and_then(|t| t.f_to_kind(like.kind()))
        .and_then(|t| t.f_to_device(like.device()))
        .ctx("making per-row parameters")
}

/// The masks of an attack (Captum's `mask`: 1 where an element may change, 0 where not), one per
/// input, each broadcastable to its input; `None`: every element may change.
pub(crate) fn check_masks(masks: &Option<Vec<Tensor>>, inputs: &[Tensor]) -> Result<Option<Vec<Tensor>>> {
    let Some(ms) = masks else { return Ok(None) };
    if ms.len() != inputs.len() {
        return Err(AttribError::param("mask", format!("{} masks for {} inputs; give one per input", ms.len(), inputs.len())));
    }
    ms.iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, (m, x))| {
            attrib_core::baseline::check_broadcast(&m.size(), &x.size())
                .map_err(|reason| AttribError::MaskShape { input: i, reason })?;
            m.f_to_kind(x.kind()).and_then(|m| m.f_to_device(x.device())).ctx("moving masks")
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Per-row parameter values: `param` if given (one per row), else `default` for every row;
/// each must be finite and non-negative.
pub(crate) fn param_values(name: &'static str, param: Option<&[f64]>, default: f64, n: i64) -> Result<Vec<f64>> {
    let v = match param {
        Some(p) if p.len() as i64 != n => {
            return Err(AttribError::param(name, format!("{} values for {n} rows; give one per row", p.len())));
        }
        Some(p) => p.to_vec(),
        None => vec![default; n as usize],
    };
    if let Some(bad) = v.iter().find(|x| !x.is_finite() || **x < 0.0) {
        return Err(AttribError::param(name, format!("must be finite and >= 0, got {bad}")));
    }
    Ok(v)
}
