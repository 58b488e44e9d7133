//! The clean pass of an attack: predictions on the clean inputs, each row's label, and the
//! loss choice; as a forward pass of its own or as the first gradient step.

use super::gradients::{gather_gradients, LossGradients};
use crate::loss::{check_class_output, Loss, LossKind, LossModel, Recording};
use attrib_core::{AttribError, BatchOptions, ForwardArg, ResolvedTarget, Result, Target, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded, Prepared};
use tch::{Device, Tensor};

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

/// The labels that need no model output: a class, one per row, or `None` for the model's own
/// prediction (untargeted [`Target::Argmax`] only).
pub(crate) fn labels_without_outputs(target: &Target, targeted: bool, n: i64) -> Result<Option<Vec<i64>>> {
    match target {
        Target::Argmax if targeted => {
            Err(AttribError::param("target", "a targeted attack needs the class to reach (a class index or one per row), not argmax"))
        }
        Target::Argmax => Ok(None),
        Target::None => Err(AttribError::param("target", "attacks need a class target: an index, one per row, or argmax")),
        Target::Class(_) | Target::PerSample(_) => match target.resolve(n, Device::Cpu, unreachable_outputs)? {
            ResolvedTarget::Indices { host, .. } => Ok(Some(host)),
            ResolvedTarget::Scalar => Err(AttribError::Internal("a class target resolved to none".into())),
        },
    }
}

/// The error of a class target `bad` that a model with `classes` outputs does not have.
pub(crate) fn out_of_range(bad: i64, classes: i64) -> AttribError {
    AttribError::TargetOutOfRange(format!("class index {bad} is out of range for a model with {classes} outputs (valid: 0..={})", classes - 1))
}

/// Refuse labels (one per row) that a model with `classes` outputs does not have, naming the
/// first such row's label, wherever an attack meets the model's output first.
pub(crate) fn check_labels(labels: &[i64], classes: i64) -> Result<()> {
    match labels.iter().find(|&&c| c >= classes) {
        Some(&bad) => Err(out_of_range(bad, classes)),
        None => Ok(()),
    }
}

fn labels_on(host: &[i64], device: Device) -> Result<Tensor> {
    Tensor::f_from_slice(host).and_then(|t| t.f_to_device(device)).ctx("moving labels")
}

/// The clean pass as a forward pass of its own (for attacks whose first step is not at the
/// clean inputs: PGD's random start): run the model once on the prepared inputs (predictions;
/// the loss for [`Loss::Auto`]) and resolve the labels.
pub(crate) fn clean_pass(eval: &Evaluator, p: Prepared, target: &Target, loss: Loss, targeted: bool) -> Result<Clean> {
    let known = labels_without_outputs(target, targeted, p.n)?;
    let out = eval.raw_outputs(&p.extra, &Expanded::identity(&p.inputs))?;
    check_class_output(&out)?;
    let classes = out.size()[1];
    let before = argmax_host(&out)?;
    let labels_host = known.unwrap_or_else(|| before.clone());
    check_labels(&labels_host, classes)?;
    let labels = labels_on(&labels_host, p.device)?;
    let loss = loss.resolve(&out)?;
    Ok(Clean { inputs: p.inputs, extra: p.extra, n: p.n, labels, labels_host, before, loss })
}

/// The first gradient step at the clean inputs, which is also the clean pass (no forward pass
/// of its own, as in Captum): `loss_model` records the outputs of the gradient pass, finds each
/// row's label (given, or its prediction) and, for [`Loss::Auto`], the loss on the outputs; the
/// predictions before the attack are the argmax of those outputs. Sets `loss_model`'s loss.
///
/// A batch that ran as one model call (the usual case) keeps that call's gradients. Otherwise
/// (chunks, a layout trial, a retry) the outputs are gathered row by row and the gradients taken
/// again with the labels and the loss of the whole batch, so that they never depend on how the
/// rows were split (a chunk's own choice of loss could differ from the batch's).
pub(crate) fn first_pass(loss_model: &LossModel, p: Prepared, target: &Target, loss: Loss, targeted: bool, batch: BatchOptions) -> Result<(Clean, Vec<Tensor>)> {
    let known = labels_without_outputs(target, targeted, p.n)?;
    let given = match &known {
        Some(host) => Some((labels_on(host, p.device)?, host.clone())),
        None => None,
    };
    let rows = Tensor::f_arange(p.n, (tch::Kind::Int64, p.device)).ctx("row indices")?;
    let mut extra: Vec<ForwardArg> = p.extra.iter().map(ForwardArg::shallow_clone).collect();
    extra.push(ForwardArg::Tensor(rows));
    let first = Prepared { inputs: p.inputs.iter().map(Tensor::shallow_clone).collect(), extra, n: p.n, target: ResolvedTarget::Scalar, device: p.device };
    let eval = Evaluator::new(loss_model, batch)?;
    loss_model.start_recording(Recording { loss, labels: given, chunks: Vec::new() });
    let grads = gather_gradients(&eval, &first, &first.inputs);
    let recorded = loss_model.stop_recording().ok_or_else(|| AttribError::Internal("the first pass was not recorded".into()))?;
    let grads = grads?;
    let mut chunks = recorded.chunks;
    let one_call = chunks.len() == 1 && chunks[0].1.size().first() == Some(&p.n);
    let (out, kind) = if one_call {
        let (_, out, kind) = chunks.remove(0);
        (out, kind)
    } else {
        let (_, some, _) = chunks.last().ok_or_else(|| AttribError::Internal("the first pass ran no model call".into()))?;
        let classes = some.size()[1];
        let mut out = Tensor::f_zeros([p.n, classes], (some.kind(), some.device())).ctx("gathering clean outputs")?;
        for (rows, part, _) in &chunks {
            out = out.f_index_copy(0, rows, part).ctx("gathering clean outputs")?;
        }
        let kind = loss.resolve(&out)?;
        (out, kind)
    };
    let before = argmax_host(&out)?;
    let labels_host = known.unwrap_or_else(|| before.clone());
    let labels = labels_on(&labels_host, p.device)?;
    loss_model.set_kind(kind);
    let clean = Clean { inputs: p.inputs, extra: p.extra, n: p.n, labels, labels_host, before, loss: kind };
    let grads = if one_call { grads } else { LossGradients::new(loss_model, &clean, batch)?.at(&clean.inputs)? };
    Ok((clean, grads))
}

fn unreachable_outputs() -> Result<Tensor> {
    Err(AttribError::Internal("class targets need no model outputs".into()))
}

/// Argmax of every row of `[N, C]` outputs, on the host.
pub(crate) fn argmax_host(out: &Tensor) -> Result<Vec<i64>> {
    let idx = out.f_argmax(1, false).and_then(|t| t.f_to_device(Device::Cpu)).ctx("taking the argmax of the model output")?;
    Vec::<i64>::try_from(&idx).ctx("reading predictions")
}
