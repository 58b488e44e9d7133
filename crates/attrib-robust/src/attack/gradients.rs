//! Batched gradients of the per-row attack loss through the shared evaluator.

use super::clean::Clean;
use crate::loss::LossModel;
use attrib_core::{BatchOptions, ForwardArg, ResolvedTarget, Result, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded, Prepared};
use tch::Tensor;

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
    pub(super) eval: Evaluator<'m>,
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
