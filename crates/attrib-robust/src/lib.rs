//! Robustness: adversarial attacks and how far a prediction resists them.
//!
//! | item | what |
//! |---|---|
//! | [`Fgsm`] | one signed-gradient step of size ε (Goodfellow et al. 2015), Captum's `FGSM` |
//! | [`Pgd`] | iterated signed-gradient steps projected onto the L∞ or L2 ball of radius ε (Madry et al. 2018), Captum's `PGD` |
//! | [`MinParamPerturbation`] | per row, the smallest value of a perturbation's parameter (FGSM's ε, a noise level) that changes the prediction, by linear or binary search |
//! | [`AttackComparator`] | a metric of the model's output under named perturbations (attacks, Gaussian noise, blur, shifts), several seeded draws each: mean, min and max |
//!
//! Every attack runs all rows at once through the shared evaluator
//! ([`attrib_tensor::Evaluator::gradients`], chunked to the memory budget), and the step loop
//! never waits on the device. The loss an attack ascends is chosen by [`Loss`]: Captum's
//! `−log(output[target])` when the model outputs probabilities, cross-entropy on the logits
//! otherwise (see [`loss`]).
#![warn(missing_docs)]

pub mod attack;
pub mod comparator;
pub mod fgsm;
mod layout;
pub mod loss;
pub mod min_param;
pub mod pgd;

pub use attack::{AttackOutcome, Bounds, Perturbation};
pub use comparator::{AttackComparator, ComparatorResult, Summary, Transform};
pub use fgsm::{Fgsm, FgsmParams};
pub use loss::{Loss, LossKind};
pub use min_param::{MinParamPerturbation, MinParamResult, SearchMode};
pub use pgd::{Norm, Pgd, PgdParams};
