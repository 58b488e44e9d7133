//! NaN and infinity in a method's results are an error by default.
//!
//! Every method the [`Registry`](super::Registry) builds is wrapped in [`FiniteChecked`]: when
//! its attributions or its convergence delta hold NaN or inf, the call fails with an error that
//! says for how many rows (and which) and the likely cause, instead of returning the values. A
//! spec opts out with `allow_nonfinite: true` ([`ALLOW_NONFINITE_KEY`]; command line:
//! `--allow-nonfinite`), for users who want the raw values.
//!
//! The typed method structs used directly (`IntegratedGradients::params()...check()`, ...) are
//! not wrapped: they return whatever they compute. Wrap one with [`FiniteChecked::new`] to get
//! the same check.
//!
//! ```
//! use attrib::methods::Registry;
//! use attrib::prelude::*;
//! use tch::{Device, Kind, Tensor};
//!
//! # fn main() -> attrib::Result<()> {
//! let x = Tensor::from_slice(&[1.0f32, 4.0, 9.0, -16.0]).reshape([2, 2]);
//! // `where(x > 0, sqrt(x), 0)`: a finite output, but a NaN gradient where x < 0 (second row).
//! let model = FnModel::new(|x: &Tensor| x.sqrt().where_self(&x.gt(0.0), &x.zeros_like()).sum_dim_intlist(1, false, Kind::Float));
//! let spec: MethodSpec = r#"{"method": "saliency"}"#.parse()?;
//! let err = Registry::builtin().build(&spec, &[x.shallow_clone()])?
//!     .attribute(&model, &Inputs::new(x.shallow_clone()), &Target::None).unwrap_err().to_string();
//! assert!(err.contains("NaN or inf for 1 of 2 rows (1)") && err.contains("gradient"), "{err}");
//! let raw: MethodSpec = r#"{"method": "saliency", "allow_nonfinite": true}"#.parse()?;
//! let attr = Registry::builtin().build(&raw, &[x.shallow_clone()])?.attribute(&model, &Inputs::new(x), &Target::None)?;
//! assert!(attr.single()?.isnan().any().int64_value(&[]) == 1);
//! # Ok(()) }
//! ```

use attrib_core::{AttribError, Attribution, Attributions, BatchOptions, Inputs, MethodInfo, Model, PlannedRows, Result, Target, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded};
use tch::{Kind, Tensor};

/// The spec key that turns the check off: `allow_nonfinite: true` returns NaN and inf as they
/// are.
pub const ALLOW_NONFINITE_KEY: &str = "allow_nonfinite";

/// A method whose attributions and convergence delta must be finite; see the
/// [module docs](self). The registry wraps every method it builds in one (unless the spec sets
/// [`ALLOW_NONFINITE_KEY`]); methods used directly stay raw.
pub struct FiniteChecked {
    inner: Box<dyn Attribution>,
    batch: BatchOptions,
    gradients: bool,
}

impl std::fmt::Debug for FiniteChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FiniteChecked").field("inner", &self.inner.info().name).finish()
    }
}

impl FiniteChecked {
    /// Check the results of `inner`. `batch` sizes the one extra forward pass made when the
    /// results are not finite (to tell a NaN output from a NaN gradient); `gradients` says
    /// whether the method differentiates the model (for the message).
    pub fn new(inner: Box<dyn Attribution>, batch: BatchOptions, gradients: bool) -> FiniteChecked {
        FiniteChecked { inner, batch, gradients }
    }

    /// The wrapped method.
    pub fn inner(&self) -> &dyn Attribution {
        self.inner.as_ref()
    }

    /// What is not finite and why, for the error message.
    fn diagnose(&self, model: &dyn Model, inputs: &Inputs, target: &Target, n: i64, bad_attr: &[i64], bad_delta: &[i64]) -> String {
        let mut what = Vec::new();
        if !bad_attr.is_empty() {
            what.push(format!("the attributions are NaN or inf for {}", count_rows(bad_attr, n)));
        }
        if !bad_delta.is_empty() {
            what.push(format!("the convergence delta is NaN or inf for {}", count_rows(bad_delta, n)));
        }
        let what = what.join(" and ");
        // Only now, on the failure path: the model's output at the inputs themselves.
        let bad_output = (|| -> Result<Vec<i64>> {
            let eval = Evaluator::new(model, self.batch)?;
            let p = eval.prepare(inputs, target)?;
            let out = eval.forward(&p, &Expanded::identity(&p.inputs))?;
            nonfinite_rows(&[out], p.n)
        })();
        let Ok(bad_output) = bad_output else {
            return format!("{what}: the model's output, its gradient or the method's settings (baseline, noise) give NaN or inf");
        };
        if !bad_output.is_empty() {
            let others = bad_attr.iter().chain(bad_delta).any(|r| !bad_output.contains(r));
            return format!(
                "{what}: the model's output itself is NaN or inf for {} at these inputs; check the model and its weights (log or sqrt of a non-positive value, a division by zero, an overflow){}",
                count_rows(&bad_output, n),
                if others { "; the other rows meet NaN or inf at the points the method evaluates (baselines, path points, perturbed or noisy inputs)" } else { "" }
            );
        }
        if bad_attr.is_empty() {
            return format!(
                "{what}, while the attributions and the model's output at the inputs are finite: the model's output at the baseline is NaN or inf (log or sqrt of a non-positive value, a division by zero), or the output difference overflows; try another baseline"
            );
        }
        if self.gradients {
            format!(
                "{what}, while the model's output at the inputs is finite: the model's gradient (or its output at the points the method evaluates: baselines, path points, noisy copies) is NaN or inf there, as from sqrt or log of a non-positive input, a division by zero or an overflow in the model"
            )
        } else {
            format!(
                "{what}, while the model's output at the inputs is finite: its output on the perturbed inputs (features replaced by the baseline, occluded or shuffled) is NaN or inf, as from log or sqrt of a non-positive value or a division by zero in the model; try another baseline"
            )
        }
    }
}

impl Attribution for FiniteChecked {
    fn info(&self) -> MethodInfo {
        self.inner.info()
    }

    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        self.inner.model_to_warm_up(model)
    }

    fn planned_rows(&self, inputs: &Inputs) -> Option<PlannedRows> {
        self.inner.planned_rows(inputs)
    }

    fn params(&self) -> serde_json::Value {
        self.inner.params()
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let attr = self.inner.attribute(model, inputs, target)?;
        if all_finite(&attr.values)? && attr.convergence_delta.as_ref().map_or(Ok(true), |d| all_finite(std::slice::from_ref(d)))? {
            return Ok(attr);
        }
        let n = attr.values.first().and_then(|t| t.size().first().copied()).unwrap_or(0);
        let bad_attr = nonfinite_rows(&attr.values, n)?;
        let bad_delta = match &attr.convergence_delta {
            Some(d) => nonfinite_rows(std::slice::from_ref(d), n)?,
            None => Vec::new(),
        };
        let cause = self.diagnose(model, inputs, target, n, &bad_attr, &bad_delta);
        let mut rows = bad_attr;
        rows.extend(bad_delta);
        rows.sort_unstable();
        rows.dedup();
        Err(AttribError::NonFiniteResult { method: self.inner.info().name.to_string(), rows: rows.len(), total: n, cause })
    }
}

/// Whether every value of every tensor is finite (one pass; in place for contiguous CPU
/// float32/float64 tensors).
fn all_finite(tensors: &[Tensor]) -> Result<bool> {
    for t in tensors {
        match attrib_core::inputs::check_finite(t, "result") {
            Ok(()) => {}
            Err(AttribError::NonFinite { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The rows (dimension 0, of `n`) where any of `tensors` holds NaN or inf, ascending.
pub fn nonfinite_rows(tensors: &[Tensor], n: i64) -> Result<Vec<i64>> {
    let mut bad = vec![false; usize::try_from(n).unwrap_or(0)];
    for t in tensors {
        if !t.is_floating_point() || t.numel() == 0 || t.size().first() != Some(&n) {
            continue;
        }
        let rows = t
            .f_isfinite()
            .and_then(|f| f.f_logical_not())
            .and_then(|f| f.f_reshape([n, -1]))
            .and_then(|f| f.f_any_dim(1, false))
            .and_then(|f| f.f_nonzero())
            .and_then(|f| f.f_reshape([-1]))
            .and_then(|f| f.f_to_kind(Kind::Int64))
            .ctx("finding rows with NaN or inf")?;
        for r in Vec::<i64>::try_from(&rows).ctx("reading rows with NaN or inf")? {
            if let Some(b) = bad.get_mut(r as usize) {
                *b = true;
            }
        }
    }
    Ok(bad.iter().enumerate().filter(|(_, b)| **b).map(|(i, _)| i as i64).collect())
}

/// `3 of 10 rows (0, 4, 7)`; at most ten rows listed.
fn count_rows(rows: &[i64], n: i64) -> String {
    let shown: Vec<String> = rows.iter().take(10).map(i64::to_string).collect();
    let more = if rows.len() > 10 { ", ..." } else { "" };
    let noun = if n == 1 { "row" } else { "rows" };
    format!("{} of {n} {noun} ({}{more})", rows.len(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_and_listed() {
        let t = Tensor::from_slice(&[1.0f32, f32::NAN, 2.0, 3.0, f32::INFINITY, 0.0]).reshape([3, 2]);
        assert_eq!(nonfinite_rows(&[t], 3).unwrap(), vec![0, 2]);
        assert_eq!(count_rows(&[0, 2], 3), "2 of 3 rows (0, 2)");
        assert_eq!(count_rows(&(0..12).collect::<Vec<_>>(), 12), "12 of 12 rows (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...)");
        assert!(all_finite(&[Tensor::from_slice(&[1.0f64, 2.0])]).unwrap());
        assert!(!all_finite(&[Tensor::from_slice(&[1.0f64, f64::NEG_INFINITY])]).unwrap());
    }
}
