//! Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy 2015), Captum's `FGSM`.
//!
//! Untargeted, away from the label `y`: `x' = x + ε · sign(∇ₓ L(x, y))`; targeted, towards
//! the class `t`: `x' = x − ε · sign(∇ₓ L(x, t))`. As in Captum, elements whose gradient is at
//! most [`ZERO_THRESHOLD`] in magnitude stay as they are, a mask (1: may change, 0: fixed)
//! multiplies the step, and the result is clamped to the [`Bounds`]. The loss `L` is chosen by
//! [`Loss`] (see [`crate::loss`]); with [`LossKind::NegLogProb`](crate::LossKind) the result
//! equals Captum's bit for bit.

use crate::attack::{check_masks, first_pass, outcome, param_values, row_values, AttackOutcome, Bounds, Clean, Perturbation};
use crate::loss::{Loss, LossKind, LossModel};
use attrib_core::{AttribError, BatchOptions, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::Evaluator;
use std::time::Instant;
use tch::Tensor;

/// Captum's `zero_thresh`: gradients of at most this magnitude count as zero (no step).
pub const ZERO_THRESHOLD: f64 = 1e-6;

/// Parameters of [`Fgsm`], with Captum's defaults (no bounds, untargeted, no mask).
#[derive(Debug)]
pub struct FgsmParams {
    /// Step size ε (Captum's `epsilon`; required, >= 0).
    pub epsilon: f64,
    /// Move towards the target class instead of away from the label.
    pub targeted: bool,
    /// Bounds of the input values (Captum's `lower_bound`, `upper_bound`).
    pub bounds: Bounds,
    /// The loss (default [`Loss::Auto`]).
    pub loss: Loss,
    /// One mask per input (1: may change, 0: fixed), broadcastable to it; `None`: all change.
    pub mask: Option<Vec<Tensor>>,
    /// Gradients of at most this magnitude count as zero (Captum's `zero_thresh`, 1e-6).
    pub zero_threshold: f64,
    /// Chunking of the gradient computation.
    pub batch: BatchOptions,
}

impl FgsmParams {
    /// Set whether the attack is targeted.
    pub fn targeted(mut self, targeted: bool) -> Self {
        self.targeted = targeted;
        self
    }
    /// Set the input bounds.
    pub fn bounds(mut self, lower: f64, upper: f64) -> Self {
        self.bounds = Bounds::new(lower, upper);
        self
    }
    /// Set the loss.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }
    /// Set one mask per input.
    pub fn mask(mut self, mask: Vec<Tensor>) -> Self {
        self.mask = Some(mask);
        self
    }
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`Fgsm`].
    pub fn check(self) -> Result<Fgsm> {
        if !self.epsilon.is_finite() || self.epsilon < 0.0 {
            return Err(AttribError::param("epsilon", format!("must be finite and >= 0, got {}", self.epsilon)));
        }
        if !self.zero_threshold.is_finite() || self.zero_threshold < 0.0 {
            return Err(AttribError::param("zero_threshold", format!("must be finite and >= 0, got {}", self.zero_threshold)));
        }
        Ok(Fgsm { params: FgsmParams { bounds: self.bounds.check()?, batch: self.batch.check()?, ..self } })
    }
}

/// The FGSM attack; see the module docs.
#[derive(Debug)]
pub struct Fgsm {
    params: FgsmParams,
}

impl Fgsm {
    /// Parameters for a step of size `epsilon`, other settings at their defaults.
    pub fn params(epsilon: f64) -> FgsmParams {
        FgsmParams {
            epsilon,
            targeted: false,
            bounds: Bounds::default(),
            loss: Loss::Auto,
            mask: None,
            zero_threshold: ZERO_THRESHOLD,
            batch: BatchOptions::default(),
        }
    }

    /// The parameters.
    pub fn get(&self) -> &FgsmParams {
        &self.params
    }

    /// The parameters as JSON (for reports).
    pub fn describe(&self) -> serde_json::Value {
        let p = &self.params;
        serde_json::json!({
            "epsilon": p.epsilon, "targeted": p.targeted, "lower_bound": p.bounds.lower, "upper_bound": p.bounds.upper,
            "loss": p.loss, "mask": p.mask.is_some(), "zero_threshold": p.zero_threshold,
        })
    }

    /// Attack every row of `inputs`. `target`: the true class of each row (untargeted; `Argmax`
    /// takes the model's prediction) or the class to reach (targeted).
    pub fn perturb(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<AttackOutcome> {
        self.perturb_rows(model, inputs, target, None)
    }

    /// [`Fgsm::perturb`] with one ε per row (`None`: the parameters' ε).
    pub fn perturb_rows(&self, model: &dyn Model, inputs: &Inputs, target: &Target, epsilon: Option<&[f64]>) -> Result<AttackOutcome> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let (clean, adversarial) = self.run(&eval, model, inputs, target, epsilon)?;
        outcome(&eval, clean, adversarial, self.params.targeted, start)
    }

    /// The clean pass and the adversarial inputs, without the predictions on them. The step's
    /// gradient pass is the clean pass too ([`first_pass`]), as in Captum.
    fn run(&self, eval: &Evaluator, model: &dyn Model, inputs: &Inputs, target: &Target, epsilon: Option<&[f64]>) -> Result<(Clean, Vec<Tensor>)> {
        let p = &self.params;
        let prepared = eval.prepare(inputs, &Target::None)?;
        // Bad masks and step sizes are refused before any model call.
        let masks = check_masks(&p.mask, &prepared.inputs)?;
        let eps = param_values("epsilon", epsilon, p.epsilon, prepared.n)?;
        let loss_model = LossModel::new(model, LossKind::CrossEntropy);
        let (clean, g) = first_pass(&loss_model, prepared, target, p.loss, p.targeted, p.batch)?;
        let steps = signed_steps(&eps, p.targeted, &clean.inputs)?;
        let stepped = step(&clean.inputs, &g, &steps, p.zero_threshold, masks.as_deref())?;
        let adversarial = stepped.iter().map(|x| p.bounds.apply(x)).collect::<Result<Vec<_>>>()?;
        Ok((clean, adversarial))
    }
}

/// Per input, the signed step of every row as `[N, 1, ...]`: `ε` untargeted, `−ε` targeted.
pub(crate) fn signed_steps(eps: &[f64], targeted: bool, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let signed: Vec<f64> = eps.iter().map(|e| if targeted { -e } else { *e }).collect();
    inputs.iter().map(|x| row_values(&signed, x)).collect()
}

/// One FGSM step, Captum's arithmetic: `where(|g| > threshold, x + step · sign(g) · mask, x)`
/// per input.
pub(crate) fn step(xs: &[Tensor], grads: &[Tensor], steps: &[Tensor], threshold: f64, masks: Option<&[Tensor]>) -> Result<Vec<Tensor>> {
    xs.iter()
        .zip(grads)
        .zip(steps)
        .enumerate()
        .map(|(i, ((x, g), s))| step_one(x, g, s, threshold, masks.map(|m| &m[i])))
        .collect()
}

/// [`step`] for one input `x` with its gradient `g`, its signed step per row `s` and its mask.
pub(crate) fn step_one(x: &Tensor, g: &Tensor, s: &Tensor, threshold: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let run = || -> std::result::Result<Tensor, tch::TchError> {
        let mut delta = g.f_sign()?.f_mul(s)?;
        if let Some(m) = mask {
            delta = delta.f_mul(m)?;
        }
        let moved = x.f_add(&delta)?;
        let keep = g.f_abs()?.f_gt(threshold)?;
        moved.f_where_self(&keep, x)
    };
    run().ctx("taking a signed gradient step")
}

impl Perturbation for Fgsm {
    fn name(&self) -> String {
        format!("FGSM ε={}", self.params.epsilon)
    }
    fn perturb(&self, model: &dyn Model, inputs: &Inputs, target: &Target, param: Option<&[f64]>, _draw: u64) -> Result<Vec<Tensor>> {
        let eval = Evaluator::new(model, self.params.batch)?;
        Ok(self.run(&eval, model, inputs, target, param)?.1)
    }
}
