//! The loss an attack climbs (or, targeted, descends).
//!
//! Captum's attacks default to `−log(output[target])`. For a model whose output rows are
//! probabilities (a softmax head) that is the cross-entropy, the textbook FGSM/PGD loss. For a
//! model that outputs logits it is not: the log of a negative logit is NaN, and where the logit
//! is positive `−log(z_t)` is minimised by *raising* `z_t`, so an untargeted attack pushes the
//! true class up. attrib therefore chooses per call ([`Loss::Auto`], the default):
//!
//! - [`LossKind::NegLogProb`], `−log(output[target])` (Captum's loss, bit for bit), when every
//!   output row on the clean inputs is non-negative and sums to 1 within [`PROB_TOLERANCE`];
//! - [`LossKind::CrossEntropy`], `−log_softmax(output)[target]`, otherwise.
//!
//! Either can be forced. The choice is reported with every attack result.

use attrib_core::{AttribError, ForwardArg, Model, Result, TorchResultExt};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use tch::{Kind, Tensor};

/// Output rows that are non-negative and sum to 1 within this are probabilities.
pub const PROB_TOLERANCE: f64 = 1e-4;

/// Which loss an attack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// [`LossKind::NegLogProb`] when the model's outputs on the clean inputs are probabilities,
    /// [`LossKind::CrossEntropy`] otherwise.
    #[default]
    Auto,
    /// Always `−log(output[target])` (Captum's default loss).
    NegLogProb,
    /// Always `−log_softmax(output)[target]`.
    CrossEntropy,
}

impl std::str::FromStr for Loss {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<Loss> {
        match s.trim() {
            "auto" => Ok(Loss::Auto),
            "neg-log-prob" | "neg_log_prob" => Ok(Loss::NegLogProb),
            "cross-entropy" | "cross_entropy" => Ok(Loss::CrossEntropy),
            other => Err(AttribError::param("loss", format!("unknown loss `{other}`; use auto, neg-log-prob or cross-entropy"))),
        }
    }
}

/// The loss an attack actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// `−log(output[target])`.
    NegLogProb,
    /// `−log_softmax(output)[target]`.
    CrossEntropy,
}

impl LossKind {
    /// The name used in specs and JSON (`neg-log-prob`, `cross-entropy`).
    pub fn name(self) -> &'static str {
        match self {
            LossKind::NegLogProb => "neg-log-prob",
            LossKind::CrossEntropy => "cross-entropy",
        }
    }

    /// The per-row loss of `output` (`[N, C]`) at `labels` (`[N]` int64): `[N]`.
    pub fn per_row(self, output: &Tensor, labels: &Tensor) -> Result<Tensor> {
        match self {
            // Gather first, then log: the same gradient values as Captum's log of the whole
            // output followed by the selection, without 0/0 where another class's output is 0.
            LossKind::NegLogProb => {
                let idx = labels.f_unsqueeze(1).ctx("loss labels")?;
                output.f_gather(1, &idx, false).and_then(|t| t.f_log()).and_then(|t| t.f_squeeze_dim(1)).and_then(|t| t.f_neg())
            }
            // PyTorch's `cross_entropy(reduction="none")` (log-softmax, then the negative
            // log-likelihood), as Captum's attacks call it: two graph nodes instead of five, the
            // same gradient values (−1 at each row's label into the log-softmax backward).
            LossKind::CrossEntropy => output.f_cross_entropy_loss(labels, None::<Tensor>, tch::Reduction::None, -100, 0.0),
        }
        .ctx("computing the attack loss")
    }
}

impl Loss {
    /// The loss to use given the model's outputs on the clean inputs (`[N, C]`). Reads one
    /// boolean from the device for [`Loss::Auto`].
    pub fn resolve(self, clean_outputs: &Tensor) -> Result<LossKind> {
        match self {
            Loss::NegLogProb => Ok(LossKind::NegLogProb),
            Loss::CrossEntropy => Ok(LossKind::CrossEntropy),
            Loss::Auto => Ok(if are_probabilities(clean_outputs)? { LossKind::NegLogProb } else { LossKind::CrossEntropy }),
        }
    }
}

/// Whether every row of `outputs` (`[N, C]`) is non-negative and sums to 1 within
/// [`PROB_TOLERANCE`].
pub fn are_probabilities(outputs: &Tensor) -> Result<bool> {
    let run = || -> std::result::Result<bool, tch::TchError> {
        let x = outputs.f_to_kind(Kind::Double)?;
        let nonneg = x.f_ge(0.0)?.f_all()?;
        let sums = x.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?;
        let sums_ok = sums.f_sub_scalar(1.0)?.f_abs()?.f_le(PROB_TOLERANCE)?.f_all()?;
        let both = nonneg.f_logical_and(&sums_ok)?;
        bool::try_from(&both.f_to_device(tch::Device::Cpu)?)
    };
    run().ctx("checking whether the model outputs probabilities")
}

/// A model whose output is the per-row attack loss: the wrapped model's output `[N, C]` turned
/// into `[N]` by [`LossKind::per_row`]. The labels arrive as the **last** additional forward
/// argument (an int64 tensor with the batch in dimension 0), so that the shared evaluator
/// expands them with the rows of every chunk; the other arguments go to the wrapped model.
///
/// Within the crate an attack's first gradient pass on the clean inputs also serves as its clean
/// pass: while recording, the last argument holds each row's index instead of its label, the
/// labels (given, or the model's own prediction) and the loss (for [`Loss::Auto`], chosen on the
/// chunk's outputs) are found per chunk, and the outputs are kept (see
/// [`crate::attack::first_pass`]).
pub struct LossModel<'a> {
    model: &'a dyn Model,
    kind: Cell<LossKind>,
    /// The fingerprint, taken once: the evaluator asks for it on every gradient pass (its
    /// decisions are keyed by it), and a TorchScript model's reads the file's metadata. The same
    /// for both losses, so that one layout decision serves the attack whichever loss it picks.
    fingerprint: Option<String>,
    recording: RefCell<Option<Recording>>,
    /// The labels the attack was given, when it was given classes: every model call refuses an
    /// output with too few classes for them (see [`LossModel::bound_labels`]).
    label_bound: RefCell<Option<Vec<i64>>>,
}

/// What [`LossModel`] keeps while it records a first pass.
pub(crate) struct Recording {
    /// The loss asked for.
    pub loss: Loss,
    /// The labels of all rows (`[N]` int64 on the device, and on the host), when given; `None`:
    /// each row's label is the model's prediction.
    pub labels: Option<(Tensor, Vec<i64>)>,
    /// Per chunk model call, in order: the rows (`[rows]` int64), the outputs (`[rows, C]`,
    /// detached) and the loss used.
    pub chunks: Vec<(Tensor, Tensor, LossKind)>,
}

impl<'a> LossModel<'a> {
    /// The loss `kind` of `model`.
    pub fn new(model: &'a dyn Model, kind: LossKind) -> LossModel<'a> {
        let fingerprint = model.fingerprint().map(|f| format!("{f}:attack-loss"));
        LossModel { model, kind: Cell::new(kind), fingerprint, recording: RefCell::new(None), label_bound: RefCell::new(None) }
    }

    /// Refuse, at every model call from now on, an output whose classes do not include every
    /// label of `labels` (one per row; `None`: no check), with the error of a class target out
    /// of range naming the first row's label that is out of range, as the clean pass does. The first model call of an attack can be a layout trial's, which runs
    /// before the clean pass resolves the labels: this refuses a bad class there, before any
    /// gradient is taken or a layout decided. Checked on the host, from the output's shape.
    pub(crate) fn bound_labels(&self, labels: Option<&[i64]>) {
        *self.label_bound.borrow_mut() = labels.map(<[i64]>::to_vec);
    }

    /// The loss in use.
    pub fn kind(&self) -> LossKind {
        self.kind.get()
    }

    /// Use the loss `kind` from now on.
    pub(crate) fn set_kind(&self, kind: LossKind) {
        self.kind.set(kind);
    }

    /// Record the next passes (see the type's docs) until [`LossModel::stop_recording`].
    pub(crate) fn start_recording(&self, rec: Recording) {
        *self.recording.borrow_mut() = Some(rec);
    }

    /// Stop recording; what was recorded.
    pub(crate) fn stop_recording(&self) -> Option<Recording> {
        self.recording.borrow_mut().take()
    }

    /// One chunk of a recorded pass: `rows` are the chunk's row indices.
    fn recorded(&self, out: Tensor, rows: &Tensor) -> Result<Tensor> {
        let mut guard = self.recording.borrow_mut();
        let rec = guard.as_mut().ok_or_else(|| AttribError::Internal("the attack loss is not recording".into()))?;
        let classes = out.size()[1];
        let labels = match &rec.labels {
            Some((all, host)) => {
                crate::attack::check_labels(host, classes)?;
                all.f_index_select(0, rows).ctx("expanding labels to the chunk")?
            }
            None => out.f_argmax(1, false).ctx("taking the argmax of the model output")?,
        };
        let kept = out.f_detach().ctx("keeping the clean outputs")?;
        let kind = rec.loss.resolve(&kept)?;
        rec.chunks.push((rows.shallow_clone(), kept, kind));
        drop(guard);
        kind.per_row(&out, &labels)
    }
}

impl Model for LossModel<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let (last, rest) = match extra.split_last() {
            Some((ForwardArg::Tensor(t), rest)) => (t, rest),
            _ => return Err(AttribError::Internal("the attack loss needs its labels as the last forward argument".into())),
        };
        let out = self.model.forward(inputs, rest)?;
        check_class_output(&out)?;
        if let Some(labels) = self.label_bound.borrow().as_deref() {
            crate::attack::check_labels(labels, out.size()[1])?;
        }
        if self.recording.borrow().is_some() {
            return self.recorded(out, last);
        }
        self.kind.get().per_row(&out, last)
    }
    fn device(&self) -> tch::Device {
        self.model.device()
    }
    fn describe(&self) -> String {
        format!("{} loss of {}", self.kind.get().name(), self.model.describe())
    }
    fn fingerprint(&self) -> Option<String> {
        self.fingerprint.clone()
    }
}

/// Attacks need a classifier: an output of shape `[N, C]` in floating point.
pub fn check_class_output(out: &Tensor) -> Result<()> {
    if out.dim() != 2 {
        return Err(AttribError::TargetShape(format!(
            "attacks need a model output of shape [N, classes], got {:?}",
            out.size()
        )));
    }
    if !out.is_floating_point() {
        return Err(AttribError::ModelOutput(format!("the model returned dtype {:?}; attacks need floating-point outputs", out.kind())));
    }
    Ok(())
}
