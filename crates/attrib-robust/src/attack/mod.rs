//! What every attack shares: input bounds, the clean pass (predictions, labels, the loss
//! choice), batched loss gradients through the shared evaluator, the outcome of an attack, and
//! the [`Perturbation`] trait that [`crate::MinParamPerturbation`] and
//! [`crate::AttackComparator`] drive.
//!
//! | file | what |
//! |---|---|
//! | `bounds.rs` | [`Bounds`] |
//! | `outcome.rs` | [`AttackOutcome`] and the final predictions |
//! | `clean.rs` | the clean pass: labels, predictions, the loss choice (a forward pass, or the first gradient step) |
//! | `gradients.rs` | batched loss gradients through the shared evaluator |
//! | `step.rs` | the one-pass signed-gradient step (C++) |
//! | `params.rs` | per-row parameters and masks |

mod bounds;
mod clean;
mod gradients;
mod outcome;
mod params;
mod step;
#[cfg(test)]
mod tests;

use attrib_core::{Inputs, Model, Result, Target};
use tch::Tensor;

pub use bounds::Bounds;
pub use outcome::AttackOutcome;

pub(crate) use clean::{argmax_host, check_labels, clean_pass, first_pass, labels_without_outputs, Clean};
pub(crate) use gradients::{gather_gradients, LossGradients};
pub(crate) use outcome::outcome;
pub(crate) use params::{check_masks, param_values, row_values};
pub(crate) use step::{fusable, fused_step, StepRule};

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
