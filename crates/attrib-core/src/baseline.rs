//! Baselines (reference inputs) for methods that compare an input with a reference:
//! Integrated Gradients, DeepLIFT, feature ablation, occlusion, GradientSHAP...

use crate::error::{AttribError, Result, TorchResultExt};
use crate::inputs::check_finite;
use tch::Tensor;

/// The reference value of one input tensor.
#[derive(Debug)]
pub enum Baseline {
    /// All zeros (Captum's default when `baselines=None`).
    Zeros,
    /// The same value everywhere.
    Scalar(f64),
    /// A tensor that broadcasts (NumPy rules, aligned on the right) to the input:
    /// the input's shape, `[1, ...]` for one reference shared by the batch, or a smaller shape.
    Tensor(Tensor),
    /// Baseline samples `[S, ...]` (each sample shaped like one input row), for methods that take
    /// an expectation over baselines (GradientSHAP, DeepLIFT-SHAP).
    Distribution(Tensor),
}

impl Baseline {
    /// A short JSON description for reports: `"zeros"`, the scalar, or the kind and shape of
    /// a tensor.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Baseline::Zeros => serde_json::json!("zeros"),
            Baseline::Scalar(v) => serde_json::json!(v),
            Baseline::Tensor(t) => serde_json::json!({ "tensor": t.size() }),
            Baseline::Distribution(t) => serde_json::json!({ "distribution": t.size() }),
        }
    }

    /// A copy sharing storage with `self`.
    pub fn shallow_clone(&self) -> Baseline {
        match self {
            Baseline::Zeros => Baseline::Zeros,
            Baseline::Scalar(v) => Baseline::Scalar(*v),
            Baseline::Tensor(t) => Baseline::Tensor(t.shallow_clone()),
            Baseline::Distribution(t) => Baseline::Distribution(t.shallow_clone()),
        }
    }

    /// The baseline of `input` (input index `index`, for messages), broadcast to the input's
    /// shape, dtype and device. A [`Baseline::Distribution`] is rejected here: use
    /// [`Baseline::samples`].
    pub fn resolve(&self, input: &Tensor, index: usize) -> Result<Tensor> {
        let size = input.size();
        let out = match self {
            Baseline::Zeros => input.f_zeros_like().ctx("making a zero baseline")?,
            Baseline::Scalar(v) => {
                if !v.is_finite() {
                    return Err(AttribError::NonFinite { what: format!("baseline of input {index}"), count: 1 });
                }
                input.f_full_like(*v).ctx("making a scalar baseline")?
            }
            Baseline::Tensor(t) => {
                check_finite(t, &format!("baseline of input {index}"))?;
                let t = t.f_to_kind(input.kind()).and_then(|t| t.f_to_device(input.device())).ctx("moving the baseline")?;
                broadcast_rows(&t, &size).map_err(|reason| AttribError::BaselineShape { input: index, reason })?
            }
            Baseline::Distribution(_) => {
                return Err(AttribError::BaselineShape {
                    input: index,
                    reason: "this method takes one baseline per row, not a distribution of baseline samples".into(),
                })
            }
        };
        Ok(out)
    }

    /// Baseline samples `[S, ...]` for `input` (`[N, ...]`): a distribution as given, or a single
    /// sample (`S = 1`) for the other variants.
    pub fn samples(&self, input: &Tensor, index: usize) -> Result<Tensor> {
        let size = input.size();
        match self {
            Baseline::Distribution(t) => {
                let bs = t.size();
                if bs.len() != size.len() || bs[1..] != size[1..] || bs[0] == 0 {
                    return Err(AttribError::BaselineShape {
                        input: index,
                        reason: format!(
                            "baseline samples have shape {bs:?}; expected [S, {}] with S >= 1 (each sample shaped like one input row)",
                            size[1..].iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                check_finite(t, &format!("baseline samples of input {index}"))?;
                t.f_to_kind(input.kind()).and_then(|t| t.f_to_device(input.device())).ctx("moving baseline samples")
            }
            other => {
                let row = input.f_narrow(0, 0, 1).ctx("taking one input row")?;
                other.resolve(&row, index)?.f_contiguous().ctx("baseline sample")
            }
        }
    }
}

/// Baselines for all inputs of a model: one per input, or one shared by all (only for
/// [`Baseline::Zeros`] and [`Baseline::Scalar`], or a single-input model).
#[derive(Debug)]
pub struct Baselines(Vec<Baseline>);

impl Default for Baselines {
    fn default() -> Self {
        Baselines(vec![Baseline::Zeros])
    }
}

impl From<Baseline> for Baselines {
    fn from(b: Baseline) -> Self {
        Baselines(vec![b])
    }
}

impl From<Vec<Baseline>> for Baselines {
    fn from(v: Vec<Baseline>) -> Self {
        Baselines(v)
    }
}

impl Baselines {
    /// One baseline per input tensor, in order.
    pub fn per_input(v: Vec<Baseline>) -> Baselines {
        Baselines(v)
    }

    /// JSON description of every baseline (see [`Baseline::describe`]).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::Value::Array(self.0.iter().map(Baseline::describe).collect())
    }

    /// A copy sharing storage with `self`.
    pub fn shallow_clone(&self) -> Baselines {
        Baselines(self.0.iter().map(Baseline::shallow_clone).collect())
    }

    fn for_input(&self, index: usize, n_inputs: usize) -> Result<&Baseline> {
        match self.0.len() {
            1 => {
                let b = &self.0[0];
                if n_inputs > 1 && matches!(b, Baseline::Tensor(_) | Baseline::Distribution(_)) {
                    return Err(AttribError::BaselineShape {
                        input: index,
                        reason: format!("one tensor baseline was given for a model with {n_inputs} inputs; give one baseline per input"),
                    });
                }
                Ok(b)
            }
            k if k == n_inputs => Ok(&self.0[index]),
            k => Err(AttribError::BaselineShape {
                input: index,
                reason: format!("{k} baselines were given for {n_inputs} inputs; give one per input (or one zero/scalar baseline for all)"),
            }),
        }
    }

    /// The baseline of every input, broadcast to it.
    pub fn resolve(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        inputs.iter().enumerate().map(|(i, x)| self.for_input(i, inputs.len())?.resolve(x, i)).collect()
    }

    /// Baseline samples of every input (`[S_k, ...]`); all inputs must have the same `S`.
    pub fn samples(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let out: Vec<Tensor> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| self.for_input(i, inputs.len())?.samples(x, i))
            .collect::<Result<_>>()?;
        if let Some(first) = out.first() {
            let s = first.size()[0];
            if let Some((i, t)) = out.iter().enumerate().find(|(_, t)| t.size()[0] != s) {
                return Err(AttribError::BaselineShape {
                    input: i,
                    reason: format!("{} baseline samples, but input 0 has {s}; every input needs the same number", t.size()[0]),
                });
            }
        }
        Ok(out)
    }
}

/// Broadcast `t` to `shape`: NumPy rules, plus one rule for per-row tensors of expanded batches.
/// A tensor with the same rank whose `b > 1` rows divide the `k·b` rows of `shape` is repeated
/// block-wise (`[t; t; ...]`), matching attrib's expanded-batch layout where row `r` belongs to
/// sample `r % b` — so per-row baselines and masks follow their rows when a wrapper (NoiseTunnel)
/// stacks noisy copies of the batch.
pub fn broadcast_rows(t: &Tensor, shape: &[i64]) -> std::result::Result<Tensor, String> {
    let size = t.size();
    let blocks = match (size.first(), shape.first()) {
        (Some(&b), Some(&m)) if size.len() == shape.len() && b > 1 && b != m && m % b == 0 => m / b,
        _ => 1,
    };
    let t = if blocks > 1 {
        let mut reps = vec![1i64; size.len()];
        reps[0] = blocks;
        t.f_repeat(&reps).map_err(|e| e.to_string())?
    } else {
        t.shallow_clone()
    };
    check_broadcast(&t.size(), shape)?;
    t.f_expand(shape, false).map_err(|e| e.to_string())
}

/// Check that `from` broadcasts to `to` (NumPy rules, aligned on the right, no growth of `to`).
pub fn check_broadcast(from: &[i64], to: &[i64]) -> std::result::Result<(), String> {
    if from.len() > to.len() {
        return Err(format!("shape {from:?} has more dimensions than the input {to:?}"));
    }
    let offset = to.len() - from.len();
    for (k, &d) in from.iter().enumerate() {
        let t = to[offset + k];
        if d != t && d != 1 {
            return Err(format!(
                "shape {from:?} does not broadcast to the input shape {to:?}: dimension {} is {d}, expected {t} or 1",
                offset + k
            ));
        }
    }
    Ok(())
}
