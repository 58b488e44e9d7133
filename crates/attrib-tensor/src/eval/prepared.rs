//! [`Prepared`]: inputs validated and moved to the model's device, with the target resolved.

use super::calls::user_shapes;
use super::{Evaluator, Expanded};
use attrib_core::{AttribError, ForwardArg, Inputs, ResolvedTarget, Result, Target, TorchResultExt};
use tch::{Device, Tensor};

/// Inputs validated and moved to the model's device, with the target resolved.
#[derive(Debug)]
pub struct Prepared {
    /// The input tensors, on the model's device.
    pub inputs: Vec<Tensor>,
    /// Additional forward arguments, tensors on the model's device.
    pub extra: Vec<ForwardArg>,
    /// Batch size.
    pub n: i64,
    /// The explained output of every row.
    pub target: ResolvedTarget,
    /// The model's device.
    pub device: Device,
}

/// The inputs' tensors (detached) and tensor forward arguments moved to `device`, as every model
/// call of an evaluation (and a layer method's own model calls) runs on them. Inputs are not
/// validated here ([`Inputs::validate`]).
pub fn inputs_on_device(inputs: &Inputs, device: Device) -> Result<(Vec<Tensor>, Vec<ForwardArg>)> {
    let tensors = inputs
        .tensors()
        .iter()
        .map(|t| t.f_to_device(device).and_then(|t| t.f_detach()).ctx("moving inputs to the model's device"))
        .collect::<Result<_>>()?;
    let extra = inputs
        .extra()
        .iter()
        .map(|a| match a {
            ForwardArg::Tensor(t) => t.f_to_device(device).map(ForwardArg::Tensor).ctx("moving forward arguments"),
            other => Ok(other.shallow_clone()),
        })
        .collect::<Result<_>>()?;
    Ok((tensors, extra))
}

impl<'m> Evaluator<'m> {
    /// Validate the inputs (shapes, dtype, NaN/inf), move them to the model's device and resolve
    /// the target (running the model once on the inputs for [`Target::Argmax`]).
    ///
    /// The target is checked against the model's output shape on every chunk, before anything
    /// else is done with it, so a wrong target or input shape costs at most one chunk (a separate
    /// one-row model call here cost a tenth of a small job).
    pub fn prepare(&self, inputs: &Inputs, target: &Target) -> Result<Prepared> {
        let n = inputs.validate()?;
        let device = self.device;
        let (tensors, extra) = inputs_on_device(inputs, device)?;
        let resolved = target
            .resolve(n, device, || {
                let batch = Expanded::identity(&tensors);
                self.raw_outputs(&extra, &batch)
            })
            .map_err(|e| user_shapes(e, &tensors))?;
        Ok(Prepared { inputs: tensors, extra, n, target: resolved, device })
    }
}

impl Prepared {
    /// The same prepared call restricted to the original rows `rows` (in that order): inputs,
    /// tensor forward arguments and targets are selected along dimension 0. Methods that refine
    /// only some rows (adaptive step counts) evaluate the subset through the same chunk loop.
    pub fn select_rows(&self, rows: &[i64]) -> Result<Prepared> {
        if let Some(bad) = rows.iter().find(|&&r| r < 0 || r >= self.n) {
            return Err(AttribError::InputShape(format!("row {bad} is out of range for a batch of {} rows", self.n)));
        }
        let idx = Tensor::f_from_slice(rows).and_then(|t| t.f_to_device(self.device)).ctx("moving row indices")?;
        let inputs = self
            .inputs
            .iter()
            .map(|t| t.f_index_select(0, &idx).ctx("selecting rows"))
            .collect::<Result<Vec<_>>>()?;
        let extra = expand_extra(&self.extra, &idx)?;
        let target = match &self.target {
            ResolvedTarget::Scalar => ResolvedTarget::Scalar,
            ResolvedTarget::Indices { per_sample, host } => ResolvedTarget::Indices {
                per_sample: per_sample.f_index_select(0, &idx).ctx("selecting targets")?,
                host: rows.iter().map(|&r| host[r as usize]).collect(),
            },
        };
        Ok(Prepared { inputs, extra, n: rows.len() as i64, target, device: self.device })
    }
}

/// Expand additional forward arguments to the rows of a chunk (`rows` holds the original sample
/// of each row): tensors are indexed along dimension 0, scalars pass through.
pub fn expand_extra(extra: &[ForwardArg], rows: &Tensor) -> Result<Vec<ForwardArg>> {
    extra
        .iter()
        .map(|a| match a {
            ForwardArg::Tensor(t) => t.f_index_select(0, rows).map(ForwardArg::Tensor).ctx("expanding forward arguments"),
            other => Ok(other.shallow_clone()),
        })
        .collect()
}
