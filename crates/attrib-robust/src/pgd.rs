//! Projected Gradient Descent (Madry et al. 2018), Captum's `PGD`.
//!
//! From `x₀ = x` (or a random point of the ball, `random_start`), `step_num` FGSM steps of size
//! `step_size` (signed gradient, away from the label or, targeted, towards the target), each
//! followed by the projection onto the ball of radius ε around `x` — element-wise clamping for
//! [`Norm::Linf`], rescaling each row's difference to norm ≤ ε for [`Norm::L2`] (as Captum:
//! the *steps* are sign steps under both norms) — and the clamp to the [`Bounds`].
//!
//! Every step is one chunked gradient pass over all rows through the shared evaluator; nothing
//! is read back to the host until the final predictions. Without a random start the first
//! step's pass is also the clean pass (predictions before, labels, loss), as in Captum, which
//! runs no pass of its own on the clean inputs.
//!
//! Differences from Captum: Captum has no defaults for `step_size` and `step_num`; attrib takes
//! 10 steps of `2.5 · ε / step_num` unless told otherwise. Captum's L2 random start scales the
//! unit directions with a radius vector that broadcasts against the *last* input dimension, not
//! the rows (it fails unless that dimension is 1 or the batch size); attrib draws a radius per
//! row, `ε · U^(1/d)` with `d` the elements of a row, so the start is uniform in each row's L2
//! ball. Random draws come from attrib's seeded generator ([`attrib_tensor::rng`]), not
//! PyTorch's.

use crate::attack::{check_masks, clean_pass, first_pass, fusable, fused_step, labels_without_outputs, outcome, param_values, row_values, AttackOutcome, Bounds, Clean, LossGradients, Perturbation, StepRule};
use crate::layout::{decide_layout, in_layout, LAYOUT_TRIAL_MIN_PASSES};
use crate::fgsm::{signed_steps, step_one, ZERO_THRESHOLD};
use crate::loss::{Loss, LossKind, LossModel};
use attrib_core::{AttribError, BatchOptions, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::rng::{normal_rows, uniform_rows, Rng};
use attrib_tensor::{Evaluator, Prepared};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Kind, Tensor};

/// The norm of the ball the perturbation stays in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Norm {
    /// Every element within ε of the input (Captum's `"Linf"`, the default).
    #[default]
    Linf,
    /// Each row's L2 distance from the input within ε (Captum's `"L2"`).
    L2,
}

impl std::str::FromStr for Norm {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<Norm> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linf" => Ok(Norm::Linf),
            "l2" => Ok(Norm::L2),
            other => Err(AttribError::param("norm", format!("unknown norm `{other}`; use linf or l2"))),
        }
    }
}

/// Default number of steps (Captum has no default).
pub const DEFAULT_STEPS: usize = 10;

/// Parameters of [`Pgd`].
#[derive(Debug)]
pub struct PgdParams {
    /// Radius ε of the ball around the input (Captum's `radius`; required, >= 0).
    pub radius: f64,
    /// Size of each step (Captum's `step_size`); `None`: `2.5 · radius / step_num`.
    pub step_size: Option<f64>,
    /// Number of steps (Captum's `step_num`; default [`DEFAULT_STEPS`]).
    pub step_num: usize,
    /// The ball's norm (default L∞).
    pub norm: Norm,
    /// Move towards the target class instead of away from the label.
    pub targeted: bool,
    /// Start from a uniform random point of the ball (seeded) instead of the input.
    pub random_start: bool,
    /// Seed of the random start.
    pub seed: u64,
    /// Bounds of the input values.
    pub bounds: Bounds,
    /// The loss (default [`Loss::Auto`]).
    pub loss: Loss,
    /// One mask per input (1: may change, 0: fixed), broadcastable to it; `None`: all change.
    pub mask: Option<Vec<Tensor>>,
    /// Gradients of at most this magnitude count as zero (Captum's FGSM `zero_thresh`).
    pub zero_threshold: f64,
    /// Chunking of the gradient computations.
    pub batch: BatchOptions,
}

macro_rules! setter {
    ($name:ident, $t:ty, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = v;
            self
        }
    };
}

impl PgdParams {
    setter!(step_num, usize, "Set the number of steps.");
    setter!(norm, Norm, "Set the norm.");
    setter!(targeted, bool, "Set whether the attack is targeted.");
    setter!(random_start, bool, "Set whether to start from a random point of the ball.");
    setter!(seed, u64, "Set the seed of the random start.");
    setter!(loss, Loss, "Set the loss.");
    setter!(batch, BatchOptions, "Set the batching options.");

    /// Set the step size.
    pub fn step_size(mut self, v: f64) -> Self {
        self.step_size = Some(v);
        self
    }
    /// Set the input bounds.
    pub fn bounds(mut self, lower: f64, upper: f64) -> Self {
        self.bounds = Bounds::new(lower, upper);
        self
    }
    /// Set one mask per input.
    pub fn mask(mut self, mask: Vec<Tensor>) -> Self {
        self.mask = Some(mask);
        self
    }

    /// Validate into a ready-to-use [`Pgd`].
    pub fn check(self) -> Result<Pgd> {
        if !self.radius.is_finite() || self.radius < 0.0 {
            return Err(AttribError::param("epsilon", format!("the radius must be finite and >= 0, got {}", self.radius)));
        }
        if let Some(s) = self.step_size {
            if !s.is_finite() || s < 0.0 {
                return Err(AttribError::param("step_size", format!("must be finite and >= 0, got {s}")));
            }
        }
        if self.step_num == 0 {
            return Err(AttribError::param("step_num", "must be at least 1"));
        }
        if !self.zero_threshold.is_finite() || self.zero_threshold < 0.0 {
            return Err(AttribError::param("zero_threshold", format!("must be finite and >= 0, got {}", self.zero_threshold)));
        }
        Ok(Pgd { params: PgdParams { bounds: self.bounds.check()?, batch: self.batch.check()?, ..self } })
    }
}

/// The PGD attack; see the module docs.
#[derive(Debug)]
pub struct Pgd {
    params: PgdParams,
}

impl Pgd {
    /// Parameters for a ball of radius `radius` (ε), other settings at their defaults.
    pub fn params(radius: f64) -> PgdParams {
        PgdParams {
            radius,
            step_size: None,
            step_num: DEFAULT_STEPS,
            norm: Norm::Linf,
            targeted: false,
            random_start: false,
            seed: 0,
            bounds: Bounds::default(),
            loss: Loss::Auto,
            mask: None,
            zero_threshold: ZERO_THRESHOLD,
            batch: BatchOptions::default(),
        }
    }

    /// The parameters.
    pub fn get(&self) -> &PgdParams {
        &self.params
    }

    /// The step size in use for a radius `r`.
    pub fn step_size_for(&self, r: f64) -> f64 {
        self.params.step_size.unwrap_or(2.5 * r / self.params.step_num as f64)
    }

    /// The parameters as JSON (for reports).
    pub fn describe(&self) -> serde_json::Value {
        let p = &self.params;
        serde_json::json!({
            "epsilon": p.radius, "step_size": self.step_size_for(p.radius), "step_num": p.step_num, "norm": p.norm,
            "targeted": p.targeted, "random_start": p.random_start, "seed": p.seed, "lower_bound": p.bounds.lower,
            "upper_bound": p.bounds.upper, "loss": p.loss, "mask": p.mask.is_some(), "zero_threshold": p.zero_threshold,
        })
    }

    /// Attack every row of `inputs`. `target`: the true class of each row (untargeted; `Argmax`
    /// takes the model's prediction) or the class to reach (targeted).
    pub fn perturb(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<AttackOutcome> {
        self.perturb_rows(model, inputs, target, None, self.params.seed)
    }

    /// [`Pgd::perturb`] with one radius per row (`None`: the parameters'; the step size follows
    /// the radius unless set) and the random start drawn from `seed`.
    pub fn perturb_rows(&self, model: &dyn Model, inputs: &Inputs, target: &Target, radius: Option<&[f64]>, seed: u64) -> Result<AttackOutcome> {
        let start = Instant::now();
        let (eval, clean, adversarial) = self.run(model, inputs, target, radius, seed)?;
        outcome(&eval, clean, adversarial, self.params.targeted, start)
    }

    /// The clean pass and the adversarial inputs, without the predictions on them; and the
    /// evaluator for forward passes (in the layout decided for the gradient passes).
    ///
    /// Without a random start the first step's gradient pass is the clean pass too
    /// ([`first_pass`]); with one, the clean inputs get a forward pass of their own.
    fn run<'m>(&self, model: &'m dyn Model, inputs: &Inputs, target: &Target, radius: Option<&[f64]>, seed: u64) -> Result<(Evaluator<'m>, Clean, Vec<Tensor>)> {
        let p = &self.params;
        let plain = Evaluator::new(model, p.batch)?;
        let prepared = plain.prepare(inputs, &Target::None)?;
        // Bad masks, radii and targets are refused before any model call (a class index out of
        // range, which needs the model's output, at the first one: the layout trial's first
        // forward pass, before any gradient is taken and before a layout is decided).
        let masks = check_masks(&p.mask, &prepared.inputs)?;
        let radii = param_values("epsilon", radius, p.radius, prepared.n)?;
        let known = labels_without_outputs(target, p.targeted, prepared.n)?;
        let loss_model = LossModel::new(model, LossKind::CrossEntropy);
        loss_model.bound_labels(known.as_deref());
        let layout = if p.step_num >= LAYOUT_TRIAL_MIN_PASSES { decide_layout(&loss_model, &prepared, p.batch)? } else { None };
        let eval = if layout.is_some() { Evaluator::new(model, in_layout(p.batch, layout))? } else { plain };
        let (clean, first) = self.clean_start(&eval, &loss_model, prepared, target)?;
        let adv = self.steps(&loss_model, &clean, first, masks, &radii, radius.is_none().then_some(p.radius), seed)?;
        Ok((eval, clean, adv))
    }

    /// The clean pass, and without a random start the gradients of the first step (whose
    /// gradient pass is the clean pass too, [`first_pass`]); with one, the clean inputs get a
    /// forward pass of their own. Sets `loss_model`'s loss.
    fn clean_start(&self, eval: &Evaluator, loss_model: &LossModel, prepared: Prepared, target: &Target) -> Result<(Clean, Option<Vec<Tensor>>)> {
        let p = &self.params;
        Ok(if p.random_start {
            let clean = clean_pass(eval, prepared, target, p.loss, p.targeted)?;
            loss_model.set_kind(clean.loss);
            (clean, None)
        } else {
            let (clean, g) = first_pass(loss_model, prepared, target, p.loss, p.targeted, p.batch)?;
            (clean, Some(g))
        })
    }

    /// The `step_num` steps from the clean inputs (or a random start), each projected onto the
    /// ball of radius `radii` (one per row; `uniform`: the radius when every row has the
    /// parameters' own) and clamped to the bounds: the adversarial inputs. `first` holds the
    /// first step's gradients when the clean pass took them.
    #[allow(clippy::too_many_arguments)]
    fn steps(&self, loss_model: &LossModel, clean: &Clean, mut first: Option<Vec<Tensor>>, masks: Option<Vec<Tensor>>, radii: &[f64], uniform: Option<f64>, seed: u64) -> Result<Vec<Tensor>> {
        let p = &self.params;
        let alphas: Vec<f64> = radii.iter().map(|&r| self.step_size_for(r)).collect();
        let x0 = &clean.inputs;
        let linf = p.norm == Norm::Linf;
        // The one-pass step (C++) for CPU float inputs: the step, the L∞ projection and the
        // bounds, or the step alone before the L2 projection. Masks broadcast once, up front.
        let fused = x0.iter().all(fusable);
        // Per-row radii and steps as tensors, for the random start and the tensor-by-tensor way
        // (made here when those need them, else only if the one-pass step declines an input).
        let per_row = || -> Result<(Vec<Tensor>, Vec<Tensor>)> {
            let r_rows = x0.iter().map(|x| row_values(radii, x)).collect::<Result<Vec<_>>>()?;
            Ok((r_rows, signed_steps(&alphas, p.targeted, x0)?))
        };
        let mut tensors = if p.random_start || !fused || !linf { Some(per_row()?) } else { None };
        let mut adv: Vec<Tensor> = match (&tensors, p.random_start) {
            (Some((r_rows, _)), true) => {
                let points = random_points(x0, radii, r_rows, p.norm, masks.as_deref(), seed)?;
                points.iter().map(|x| p.bounds.apply(x)).collect::<Result<_>>()?
            }
            _ => x0.iter().map(Tensor::shallow_clone).collect(),
        };
        let grads = LossGradients::new(loss_model, clean, p.batch)?;
        let signed: Vec<f64> = alphas.iter().map(|&a| if p.targeted { -a } else { a }).collect();
        let full_masks = if fused { broadcast_masks(masks.as_deref(), x0)? } else { None };
        let rule = StepRule {
            steps: &signed,
            radius: linf.then_some(radii),
            threshold: p.zero_threshold,
            bounds: if linf { p.bounds } else { Bounds::default() },
        };
        // Whether `adv` holds tensors of this attack's own (not the caller's inputs), which the
        // one-pass step may overwrite.
        let mut own = false;
        for _ in 0..p.step_num {
            let g = match first.take() {
                Some(g) => g,
                None => grads.at(&adv)?,
            };
            let mut next = Vec::with_capacity(adv.len());
            for (k, x) in x0.iter().enumerate() {
                let in_place = own && linf;
                let one_pass = if fused { fused_step(&adv[k], x, &g[k], full_masks.as_ref().map(|m| &m[k]), &rule, in_place)? } else { None };
                if one_pass.is_none() && tensors.is_none() {
                    tensors = Some(per_row()?);
                }
                next.push(match (one_pass, &tensors) {
                    (Some(done), _) if linf => done,
                    (Some(stepped), Some((r_rows, _))) => p.bounds.apply(&project(x, &stepped, &r_rows[k], uniform, p.norm)?)?,
                    (None, Some((r_rows, steps))) => {
                        let mask = masks.as_ref().map(|m| &m[k]);
                        let stepped = step_one(&adv[k], &g[k], &steps[k], p.zero_threshold, mask)?;
                        let projected = project(x, &stepped, &r_rows[k], uniform, p.norm)?;
                        p.bounds.apply(&projected)?.f_detach().ctx("detaching a step")?
                    }
                    (_, None) => return Err(AttribError::Internal("the tensor-by-tensor step has no per-row tensors".into())),
                });
            }
            adv = next;
            own = fused;
        }
        Ok(adv)
    }
}

/// The masks broadcast to their inputs' shapes, contiguous, for the one-pass step (`None`
/// without masks).
fn broadcast_masks(masks: Option<&[Tensor]>, x0: &[Tensor]) -> Result<Option<Vec<Tensor>>> {
    match masks {
        Some(ms) => Ok(Some(
            ms.iter()
                .zip(x0)
                .map(|(m, x)| m.f_expand_as(x).and_then(|t| t.f_contiguous()).ctx("broadcasting masks"))
                .collect::<Result<Vec<_>>>()?,
        )),
        None => Ok(None),
    }
}

/// `x + P(s − x)`: the difference clamped element-wise to `±r` (L∞), or each row's difference
/// rescaled to L2 norm at most `r` (PyTorch's `renorm(·, 2, 0, r)` when the radius is the
/// same for every row; the same rule, `r / (‖d‖ + 1e-7)` above the radius, per row otherwise).
fn project(x: &Tensor, s: &Tensor, r: &Tensor, uniform: Option<f64>, norm: Norm) -> Result<Tensor> {
    let run = || -> std::result::Result<Tensor, tch::TchError> {
        let diff = s.f_sub(x)?;
        let clipped = match (norm, uniform) {
            (Norm::Linf, _) => diff.f_clamp_tensor(Some(&r.f_neg()?), Some(r))?,
            (Norm::L2, Some(radius)) => diff.f_renorm(2.0, 0, radius)?,
            (Norm::L2, None) => {
                let n = diff.size()[0];
                let norms = diff.f_reshape([n, -1])?.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?;
                let norms = norms.f_reshape(r.size())?;
                let scale = r.f_div(&norms.f_add_scalar(1e-7)?)?;
                let factor = scale.f_where_self(&norms.f_gt_tensor(r)?, &scale.f_ones_like()?)?;
                diff.f_mul(&factor)?
            }
        };
        x.f_add(&clipped)
    };
    run().ctx("projecting onto the ball")
}

/// A uniform random point of the ball around each input row (radius per row; `mask` keeps
/// masked elements at the input), seeded.
fn random_points(x0: &[Tensor], radii: &[f64], r_rows: &[Tensor], norm: Norm, masks: Option<&[Tensor]>, seed: u64) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(x0.len());
    for (k, (x, r)) in x0.iter().zip(r_rows).enumerate() {
        let n = x.size()[0];
        let row: Vec<i64> = x.size()[1..].to_vec();
        let run = || -> Result<Tensor> {
            let offset = match norm {
                Norm::Linf => {
                    let u = uniform_rows(seed, k, 0..n, n, &row, x.kind(), x.device())?;
                    u.f_mul(r).and_then(|t| t.f_mul_scalar(2.0)).and_then(|t| t.f_sub(r)).ctx("drawing a random start")?
                }
                Norm::L2 => {
                    let g = normal_rows(seed, k, 0..n, n, &row, 1.0, Kind::Double, x.device())?;
                    let flat = g.f_reshape([n, -1]).ctx("drawing a random start")?;
                    let d = flat.size()[1].max(1) as f64;
                    let norms = flat.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), true).and_then(|t| t.f_clamp_min(1e-12)).ctx("drawing a random start")?;
                    let mut rng = Rng::keyed(seed, &[k as u64, u64::MAX]);
                    let scales: Vec<f64> = radii.iter().map(|&rad| rng.uniform().powf(1.0 / d) * rad).collect();
                    let s = Tensor::f_from_slice(&scales).and_then(|t| t.f_reshape([n, 1])).and_then(|t| t.f_to_device(x.device())).ctx("drawing a random start")?;
                    flat.f_div(&norms).and_then(|t| t.f_mul(&s)).and_then(|t| t.f_reshape(x.size())).and_then(|t| t.f_to_kind(x.kind())).ctx("drawing a random start")?
                }
            };
            let offset = match masks {
                Some(m) => offset.f_mul(&m[k]).ctx("masking the random start")?,
                None => offset,
            };
            x.f_add(&offset).ctx("drawing a random start")
        };
        out.push(run()?);
    }
    Ok(out)
}

impl Perturbation for Pgd {
    fn name(&self) -> String {
        format!("PGD ε={}", self.params.radius)
    }
    fn perturb(&self, model: &dyn Model, inputs: &Inputs, target: &Target, param: Option<&[f64]>, draw: u64) -> Result<Vec<Tensor>> {
        let seed = if draw == 0 { self.params.seed } else { Rng::keyed(self.params.seed, &[draw]).next_u64() };
        Ok(self.run(model, inputs, target, param, seed)?.2)
    }
}
