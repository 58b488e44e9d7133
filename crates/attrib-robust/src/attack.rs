//! What every attack shares: input bounds, the clean pass (predictions, labels, the loss
//! choice), batched loss gradients through the shared evaluator, the outcome of an attack, and
//! the [`Perturbation`] trait that [`crate::MinParamPerturbation`] and
//! [`crate::AttackComparator`] drive.

use crate::loss::{check_class_output, Loss, LossKind, LossModel, Recording};
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

/// The labels that need no model output: a class, one per row, or `None` for the model's own
/// prediction (untargeted [`Target::Argmax`] only).
fn labels_without_outputs(target: &Target, targeted: bool, n: i64) -> Result<Option<Vec<i64>>> {
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

fn out_of_range(bad: i64, classes: i64) -> AttribError {
    AttribError::TargetOutOfRange(format!("class index {bad} is out of range for a model with {classes} outputs (valid: 0..={})", classes - 1))
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
    if let Some(&bad) = labels_host.iter().find(|&&c| c >= classes) {
        return Err(out_of_range(bad, classes));
    }
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
        Some(host) => Some((labels_on(host, p.device)?, host.iter().copied().max().unwrap_or(0))),
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

/// `∂ loss_i / ∂ x_i` of `p`'s loss model at `xs` (one tensor per input, all rows, contiguous).
/// A batch that runs as one chunk (the usual case for an attack) hands its gradients on as they
/// are, without the copy that gathering chunks takes.
pub(crate) fn gather_gradients(eval: &Evaluator, p: &Prepared, xs: &[Tensor]) -> Result<Vec<Tensor>> {
    let mut parts: Vec<Vec<Tensor>> = xs.iter().map(|_| Vec::new()).collect();
    eval.gradients_each(p, &Expanded::identity(xs), |_, grads, _| {
        for (slot, g) in parts.iter_mut().zip(grads) {
            slot.push(g);
        }
        Ok(())
    })?;
    parts
        .into_iter()
        .map(|mut v| if v.len() == 1 { Ok(v.remove(0)) } else { Tensor::f_cat(&v, 0).ctx("gathering gradients") })
        .collect()
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

    /// `∂ loss_i / ∂ x_i` at `xs` (one tensor per input, all rows, contiguous).
    pub fn at(&self, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        gather_gradients(&self.eval, &self.prepared, xs)
    }
}

/// What [`fused_step`] needs besides the tensors: the signed step and (L∞ projection) the
/// radius of every row, Captum's zero threshold and the bounds.
pub(crate) struct StepRule<'a> {
    /// Signed step per row: `α` untargeted, `−α` targeted.
    pub steps: &'a [f64],
    /// L∞ radius per row (`None`: no projection).
    pub radius: Option<&'a [f64]>,
    /// Gradients of at most this magnitude do not move their element.
    pub threshold: f64,
    /// Bounds applied last.
    pub bounds: Bounds,
}

mod kernel {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        // crates/attrib-core/cpp/attack_step.cpp (linked into attrib-core).
        pub fn attrib_attack_step(
            x: *mut c_void,
            x0: *mut c_void,
            g: *mut c_void,
            mask: *mut c_void,
            step: *const f64,
            radius: *const f64,
            rows: i64,
            threshold: f64,
            lower: f64,
            upper: f64,
            out: *mut c_void,
            err: *mut c_char,
            len: usize,
        ) -> c_int;
    }
}

/// Whether [`fused_step`] applies to inputs like `x`: a contiguous float32/float64 tensor with
/// rows, on the CPU.
pub(crate) fn fusable(x: &Tensor) -> bool {
    x.device() == Device::Cpu && matches!(x.kind(), tch::Kind::Float | tch::Kind::Double) && x.dim() > 0 && x.is_contiguous()
}

/// One signed-gradient step of every element of `x` in one pass over the elements (C++,
/// `attack_step.cpp`): `where(|g| > threshold, x + step · sign(g) · mask, x)`, then (with a
/// radius) `x0 + clamp(· − x0, −r, r)`, then the bounds — the float operations of
/// [`crate::fgsm::step`], the L∞ projection and [`Bounds::apply`] in the same order, so the
/// result is the same to the bit up to the sign of zeros. `mask`, when given, has `x`'s shape.
/// `None` when the tensors do not fit ([`fusable`]; all of one shape and dtype): the caller
/// takes the tensor-by-tensor way. `in_place`: the result is written into `x` (which the
/// caller owns and no longer needs: every element depends on itself alone) instead of a new
/// tensor, and `x` is returned.
pub(crate) fn fused_step(x: &Tensor, x0: &Tensor, g: &Tensor, mask: Option<&Tensor>, rule: &StepRule, in_place: bool) -> Result<Option<Tensor>> {
    let rows = x.size().first().copied().unwrap_or(0);
    if !fusable(x) || rule.steps.len() as i64 != rows || rule.radius.is_some_and(|r| r.len() as i64 != rows) {
        return Ok(None);
    }
    let out = if in_place { x.shallow_clone() } else { Tensor::f_empty(x.size(), (x.kind(), x.device())).ctx("allocating an attack step")? };
    let ptr = |t: &Tensor| t.as_ptr() as *mut std::os::raw::c_void;
    let mut err = [0 as std::os::raw::c_char; 512];
    // SAFETY: every pointer is a live at::Tensor owned here for the whole call; the C++ side
    // checks shapes, dtypes, devices and contiguity before touching any data (returning 1
    // otherwise), reads `steps`/`radius` for `rows` rows (lengths checked above), writes only into
    // `out` (which may be `x`: element `i` of the result reads element `i` of the inputs only,
    // before writing it), and catches every exception.
    let rc = unsafe {
        kernel::attrib_attack_step(
            ptr(x),
            ptr(x0),
            ptr(g),
            mask.map_or(std::ptr::null_mut(), ptr),
            rule.steps.as_ptr(),
            rule.radius.map_or(std::ptr::null(), <[f64]>::as_ptr),
            rows,
            rule.threshold,
            rule.bounds.lower,
            rule.bounds.upper,
            ptr(&out),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    match rc {
        0 => Ok(Some(out)),
        1 => Ok(None),
        _ => {
            // SAFETY: the C++ side wrote a NUL-terminated message into `err` (zeroed before).
            let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
            Err(AttribError::Internal(format!("taking an attack step: {msg}")))
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::decide_layout;
    use attrib_core::{FnModel, MemoryFormat};
    use attrib_tensor::decisions::{self, VariantKey};
    use attrib_tensor::Layout;
    use tch::Kind;

    #[test]
    fn the_one_pass_step_equals_the_tensor_by_tensor_step() {
        tch::manual_seed(11);
        for kind in [Kind::Float, Kind::Double] {
            let opts = (kind, Device::Cpu);
            let x0 = Tensor::rand([5, 2, 3, 3], opts);
            let x = &x0 + Tensor::randn([5, 2, 3, 3], opts) * 0.05;
            // Gradients with exact zeros and values at and below the zero threshold.
            let g = Tensor::randn([5, 2, 3, 3], opts) * Tensor::rand([5, 2, 3, 3], opts).gt(0.2).to_kind(kind);
            let g = g.where_self(&Tensor::rand([5, 2, 3, 3], opts).gt(0.1), &Tensor::full([5, 2, 3, 3], 1e-6, opts));
            let mask = Tensor::rand([1, 2, 3, 3], opts).gt(0.3).to_kind(kind);
            let full_mask = mask.expand_as(&x).contiguous();
            let steps = [0.03, -0.05, 0.02, 0.0, -0.01];
            let radii = [0.04, 0.1, 0.01, 0.02, 0.0];
            let bounds = Bounds::new(0.1, 0.9);
            let s = row_values(&steps, &x).unwrap();
            let r = row_values(&radii, &x).unwrap();
            let reference = |m: Option<&Tensor>, project: bool, b: Bounds| {
                let stepped = crate::fgsm::step_one(&x, &g, &s, 1e-6, m).unwrap();
                let projected = if project { &x0 + (&stepped - &x0).clamp_tensor(Some(&r.neg()), Some(&r)) } else { stepped };
                b.apply(&projected).unwrap()
            };
            for (m, full) in [(None, None), (Some(&mask), Some(&full_mask))] {
                for project in [false, true] {
                    for b in [bounds, Bounds::default()] {
                        let rule = StepRule { steps: &steps, radius: project.then_some(radii.as_slice()), threshold: 1e-6, bounds: b };
                        let fused = fused_step(&x, &x0, &g, full, &rule, false).unwrap().expect("a contiguous CPU batch takes the one-pass step");
                        let expected = reference(m, project, b);
                        assert!(fused.equal(&expected), "{kind:?}, mask {}, projection {project}, bounds {b:?}", m.is_some());
                        assert!(fused.ne_tensor(&x).any().int64_value(&[]) == 1, "the step moved nothing");
                        // In place: the same values, written into the stepped tensor itself.
                        let own = x.copy();
                        let in_place = fused_step(&own, &x0, &g, full, &rule, true).unwrap().expect("the one-pass step");
                        assert_eq!(in_place.data_ptr(), own.data_ptr());
                        assert!(own.equal(&expected), "in place: {kind:?}, mask {}, projection {project}, bounds {b:?}", m.is_some());
                    }
                }
            }
            // Inputs it does not handle are left to the tensor-by-tensor way.
            let rule = StepRule { steps: &steps, radius: None, threshold: 1e-6, bounds };
            let strided = x.transpose(2, 3);
            assert!(fused_step(&strided, &x0.transpose(2, 3), &g.transpose(2, 3), None, &rule, false).unwrap().is_none());
            assert!(fused_step(&x.to_kind(Kind::Half), &x0, &g, None, &rule, false).unwrap().is_none());
        }
    }

    #[test]
    fn bad_masks_and_step_sizes_are_refused_before_any_model_call() {
        use crate::{Fgsm, Pgd};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let w = Tensor::randn([12, 3], (Kind::Float, Device::Cpu));
        let model = FnModel::new(move |x: &Tensor| {
            seen.fetch_add(1, Ordering::SeqCst);
            x.flatten(1, -1).matmul(&w)
        });
        let inputs = Inputs::new(Tensor::rand([2, 3, 2, 2], (Kind::Float, Device::Cpu)));
        let target = Target::Class(0);
        let bad_mask = vec![Tensor::ones([3, 3, 2, 2], (Kind::Float, Device::Cpu))];
        let two_masks: Vec<Tensor> = (0..2).map(|_| Tensor::ones([1, 3, 2, 2], (Kind::Float, Device::Cpu))).collect();
        for mask in [bad_mask, two_masks] {
            let fgsm = Fgsm::params(0.1).mask(mask.iter().map(Tensor::shallow_clone).collect()).check().unwrap();
            assert!(fgsm.perturb(&model, &inputs, &target).is_err());
            let pgd = Pgd::params(0.1).step_num(3).step_size(0.05).mask(mask).check().unwrap();
            assert!(pgd.perturb(&model, &inputs, &target).is_err());
        }
        let fgsm = Fgsm::params(0.1).check().unwrap();
        let err = fgsm.perturb_rows(&model, &inputs, &target, Some(&[0.1, -1.0])).unwrap_err();
        assert!(err.to_string().contains("epsilon"), "{err}");
        assert!(fgsm.perturb_rows(&model, &inputs, &target, Some(&[0.1])).is_err(), "one value for two rows");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the model ran before the parameters were checked");
        // Good parameters reach the model.
        fgsm.perturb(&model, &inputs, &target).unwrap();
        assert!(calls.load(Ordering::SeqCst) > 0);
    }

    fn small_cnn(softmax: bool) -> FnModel<'static> {
        tch::manual_seed(3);
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        FnModel::new(move |x: &Tensor| {
            let z = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1).relu().mean_dim([2i64, 3].as_slice(), false, Kind::Float);
            if softmax {
                z.softmax(1, Kind::Float)
            } else {
                z
            }
        })
    }

    #[test]
    fn a_long_attack_decides_its_layout_once_and_runs_it() {
        // A small convolutional classifier on 3-channel images (image-like: both layouts apply).
        let model = small_cnn(false);
        let x = Tensor::rand([6, 3, 8, 8], (Kind::Float, Device::Cpu));
        let batch = BatchOptions::default();
        let eval = Evaluator::new(&model, batch).unwrap();
        let p = eval.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
        let loss_model = LossModel::new(&model, LossKind::CrossEntropy);
        let key = VariantKey::new(&loss_model, true, &batch, vec![(vec![1, 3, 8, 8], Kind::Float)]);
        assert!(decisions::decision(&key).is_none());
        let layout = decide_layout(&loss_model, &p, batch).unwrap().expect("a layout for image-like CPU inputs");
        let decided = decisions::decision(&key).and_then(|d| d.variant).expect("a decision");
        assert_eq!(decided.layout, layout);
        assert!(!decided.inference);
        // The attack's evaluators run the decided layout; its gradients equal a forced run's.
        let (clean, first) = first_pass(&loss_model, p, &Target::Argmax, Loss::Auto, false, batch).unwrap();
        let grads = LossGradients::new(&loss_model, &clean, batch).unwrap();
        let g = grads.at(&clean.inputs).unwrap();
        assert_eq!(grads.eval.gradient_layout(), Some(decided.layout));
        assert!(g[0].equal(&first[0]), "the first pass's gradients are a labelled pass's");
        let format = if decided.layout == Layout::ChannelsLast { MemoryFormat::ChannelsLast } else { MemoryFormat::Contiguous };
        let forced = LossGradients::new(&loss_model, &clean, BatchOptions { memory_format: format, ..batch }).unwrap();
        assert!(g[0].equal(&forced.at(&clean.inputs).unwrap()[0]));
        // Decided once: a second call keeps the decision (the loss does not change the key).
        loss_model.set_kind(LossKind::NegLogProb);
        assert_eq!(decide_layout(&loss_model, &clean_prepared(&clean), batch).unwrap(), Some(layout));
        assert_eq!(decisions::decision(&key).and_then(|d| d.variant), Some(decided));
        // Nothing to decide with a forced layout.
        assert_eq!(decide_layout(&loss_model, &clean_prepared(&clean), BatchOptions { memory_format: format, ..batch }).unwrap(), None);
    }

    fn clean_prepared(clean: &Clean) -> Prepared {
        Prepared {
            inputs: clean.inputs.iter().map(Tensor::shallow_clone).collect(),
            extra: Vec::new(),
            n: clean.n,
            target: ResolvedTarget::Scalar,
            device: Device::Cpu,
        }
    }

    #[test]
    fn the_first_pass_is_the_clean_pass_and_a_labelled_pass() {
        // Against the two-pass way (a forward pass for predictions, labels and loss, then a
        // gradient pass with the labels): logits and probabilities, argmax and given labels, one
        // chunk and chunks of 2 rows (gathered, then taken again).
        let x = Tensor::rand([5, 3, 6, 6], (Kind::Float, Device::Cpu));
        let given = Target::PerSample(vec![0, 3, 1, 2, 3]);
        for softmax in [false, true] {
            let model = small_cnn(softmax);
            for target in [Target::Argmax, given.clone()] {
                for max_batch in [None, Some(2)] {
                    let batch = BatchOptions { max_batch, memory_format: MemoryFormat::Contiguous, ..Default::default() };
                    let eval = Evaluator::new(&model, batch).unwrap();
                    let prepare = || eval.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
                    let expected = clean_pass(&eval, prepare(), &target, Loss::Auto, false).unwrap();
                    let reference = LossModel::new(&model, expected.loss);
                    let g = LossGradients::new(&reference, &expected, batch).unwrap().at(&expected.inputs).unwrap();
                    let loss_model = LossModel::new(&model, LossKind::CrossEntropy);
                    let (clean, first) = first_pass(&loss_model, prepare(), &target, Loss::Auto, false, batch).unwrap();
                    let what = format!("softmax {softmax}, {target:?}, max_batch {max_batch:?}");
                    assert_eq!(clean.loss, if softmax { LossKind::NegLogProb } else { LossKind::CrossEntropy }, "{what}");
                    assert_eq!(loss_model.kind(), clean.loss, "{what}");
                    assert_eq!((&clean.before, &clean.labels_host), (&expected.before, &expected.labels_host), "{what}");
                    assert!(clean.labels.equal(&expected.labels), "{what}");
                    assert!(first[0].equal(&g[0]), "{what}");
                }
            }
        }
        // Errors as from the forward pass: a label out of range, a targeted argmax, no target.
        let model = small_cnn(false);
        let batch = BatchOptions::default();
        let eval = Evaluator::new(&model, batch).unwrap();
        let loss_model = LossModel::new(&model, LossKind::CrossEntropy);
        for (target, targeted) in [(Target::Class(4), false), (Target::Argmax, true), (Target::None, false)] {
            let p = eval.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
            let err = first_pass(&loss_model, p, &target, Loss::Auto, targeted, batch).err().expect("an error");
            assert!(matches!(err, AttribError::TargetOutOfRange(_) | AttribError::InvalidParameter { .. }), "{err}");
        }
    }
}
