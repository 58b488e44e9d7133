//! [`AttackOutcome`]: the result of an attack, and the final predictions that complete it.

use super::clean::{argmax_host, Clean};
use crate::loss::LossKind;
use attrib_core::Result;
use attrib_tensor::{Evaluator, Expanded};
use std::time::Duration;
use tch::Tensor;

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
