//! What every attack shares: input bounds, the clean pass (predictions, labels, the loss
//! choice), batched loss gradients through the shared evaluator, the outcome of an attack, and
//! the [`Perturbation`] trait that [`crate::MinParamPerturbation`] and
//! [`crate::AttackComparator`] drive.

use crate::loss::{check_class_output, Loss, LossKind, LossModel};
use attrib_core::{AttribError, BatchOptions, ForwardArg, Inputs, Model, ResolvedTarget, Result, Target, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded, Prepared};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tch::{Device, Tensor};

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

/// The result of an attack on a batch.
#[derive(Debug)]
pub struct AttackOutcome {
    /// The adversarial inputs, one tensor per model input, shaped like the inputs.
    pub adversarial: Vec<Tensor>,
    /// The loss that was used.
    pub loss: LossKind,
    /// The label of every row: the true class (untargeted) or the class to reach (targeted).
    pub labels: Vec<i64>,
    /// Whether the attack was targeted.
    pub targeted: bool,
    /// The model's prediction (argmax) on the clean inputs.
    pub before: Vec<i64>,
    /// The model's prediction on the adversarial inputs.
    pub after: Vec<i64>,
    /// Per row: untargeted, the prediction is no longer the label; targeted, it is the label.
    pub success: Vec<bool>,
    /// Wall time of the attack (clean pass, steps and the final predictions).
    pub elapsed: Duration,
}

impl AttackOutcome {
    /// The share of rows where the attack succeeded.
    pub fn success_rate(&self) -> f64 {
        if self.success.is_empty() {
            return 0.0;
        }
        self.success.iter().filter(|&&s| s).count() as f64 / self.success.len() as f64
    }
}

/// A perturbation of a batch, parametrised by one number per row (an attack's ε, a noise level),
/// for [`crate::MinParamPerturbation`] and [`crate::AttackComparator`].
pub trait Perturbation {
    /// A short name for reports.
    fn name(&self) -> String;

    /// The perturbed inputs of `inputs` (one tensor per model input). `param` holds one value
    /// per row of the perturbation's parameter, or `None` for the perturbation's own setting;
    /// `draw` numbers independent random draws (seeded perturbations combine it with their
    /// seed). `target` holds the rows' labels for attacks (the model's prediction for
    /// [`Target::Argmax`]).
    fn perturb(&self, model: &dyn Model, inputs: &Inputs, target: &Target, param: Option<&[f64]>, draw: u64) -> Result<Vec<Tensor>>;
}

/// The clean pass of an attack: inputs on the model's device, predictions, labels and loss.
pub(crate) struct Clean {
    pub inputs: Vec<Tensor>,
    pub extra: Vec<ForwardArg>,
    pub n: i64,
    /// `[N]` int64 on the model's device.
    pub labels: Tensor,
    pub labels_host: Vec<i64>,
    pub before: Vec<i64>,
    pub loss: LossKind,
}

/// Validate the inputs, run the model once on them (predictions; the loss for [`Loss::Auto`])
/// and resolve the labels: a class, one per row, or (untargeted only) the prediction itself.
pub(crate) fn clean_pass(eval: &Evaluator, inputs: &Inputs, target: &Target, loss: Loss, targeted: bool) -> Result<Clean> {
    let p = eval.prepare(inputs, &Target::None)?;
    let out = eval.raw_outputs(&p.extra, &Expanded::identity(&p.inputs))?;
    check_class_output(&out)?;
    let classes = out.size()[1];
    let before = argmax_host(&out)?;
    let labels_host = match target {
        Target::Argmax if targeted => {
            return Err(AttribError::param("target", "a targeted attack needs the class to reach (a class index or one per row), not argmax"))
        }
        Target::Argmax => before.clone(),
        Target::None => return Err(AttribError::param("target", "attacks need a class target: an index, one per row, or argmax")),
        Target::Class(_) | Target::PerSample(_) => match target.resolve(p.n, Device::Cpu, unreachable_outputs)? {
            ResolvedTarget::Indices { host, .. } => host,
            ResolvedTarget::Scalar => return Err(AttribError::Internal("a class target resolved to none".into())),
        },
    };
    if let Some(bad) = labels_host.iter().find(|&&c| c >= classes) {
        return Err(AttribError::TargetOutOfRange(format!(
            "class index {bad} is out of range for a model with {classes} outputs (valid: 0..={})",
            classes - 1
        )));
    }
    let labels = Tensor::f_from_slice(&labels_host).and_then(|t| t.f_to_device(p.device)).ctx("moving labels")?;
    let loss = loss.resolve(&out)?;
    Ok(Clean { inputs: p.inputs, extra: p.extra, n: p.n, labels, labels_host, before, loss })
}

fn unreachable_outputs() -> Result<Tensor> {
    Err(AttribError::Internal("class targets need no model outputs".into()))
}

/// Argmax of every row of `[N, C]` outputs, on the host.
pub(crate) fn argmax_host(out: &Tensor) -> Result<Vec<i64>> {
    let idx = out.f_argmax(1, false).and_then(|t| t.f_to_device(Device::Cpu)).ctx("taking the argmax of the model output")?;
    Vec::<i64>::try_from(&idx).ctx("reading predictions")
}

/// Gradients of the per-row attack loss with respect to the inputs, for all rows at once
/// through the shared evaluator (chunked to the memory budget).
pub(crate) struct LossGradients<'m> {
    eval: Evaluator<'m>,
    prepared: Prepared,
}

impl<'m> LossGradients<'m> {
    /// Gradients of `loss_model` (a [`LossModel`]) for the rows of `clean`.
    pub fn new(loss_model: &'m LossModel<'m>, clean: &Clean, batch: BatchOptions) -> Result<LossGradients<'m>> {
        let eval = Evaluator::new(loss_model, batch)?;
        let mut extra: Vec<ForwardArg> = clean.extra.iter().map(ForwardArg::shallow_clone).collect();
        extra.push(ForwardArg::Tensor(clean.labels.shallow_clone()));
        let prepared = Prepared {
            inputs: clean.inputs.iter().map(Tensor::shallow_clone).collect(),
            extra,
            n: clean.n,
            target: ResolvedTarget::Scalar,
            device: eval.device(),
        };
        Ok(LossGradients { eval, prepared })
    }

    /// `∂ loss_i / ∂ x_i` at `xs` (one tensor per input, all rows).
    pub fn at(&self, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(self.eval.gradients(&self.prepared, &Expanded::identity(xs))?.grads)
    }
}

/// Predictions on `xs`, and the outcome of the attack that made them.
pub(crate) fn outcome(eval: &Evaluator, clean: Clean, adversarial: Vec<Tensor>, targeted: bool, start: std::time::Instant) -> Result<AttackOutcome> {
    let out = eval.raw_outputs(&clean.extra, &Expanded::identity(&adversarial))?;
    let after = argmax_host(&out)?;
    let success = after.iter().zip(&clean.labels_host).map(|(a, l)| if targeted { a == l } else { a != l }).collect();
    Ok(AttackOutcome {
        adversarial,
        loss: clean.loss,
        labels: clean.labels_host,
        targeted,
        before: clean.before,
        after,
        success,
        elapsed: start.elapsed(),
    })
}

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
