//! Which output of the model is explained.

use crate::error::{AttribError, Result, TorchResultExt};
use tch::{Device, Tensor};

/// The output to explain, for each row of the batch.
///
/// For a model with output `[N, C]`, the attributed scalar of row `i` is `output[i, t_i]`, with
/// `t_i` chosen by the variant. For a model whose output is one value per row (`[N]` or `[N, 1]`)
/// use [`Target::None`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The model outputs one scalar per row (`[N]` or `[N, 1]`): explain it.
    None,
    /// The same class index for every row.
    Class(i64),
    /// One class index per row; its length must equal the batch size.
    PerSample(Vec<i64>),
    /// The class the model itself predicts for each row (argmax of the output on the input).
    Argmax,
}

impl Target {
    /// Short human-readable form for metadata and messages.
    pub fn describe(&self) -> String {
        match self {
            Target::None => "none".into(),
            Target::Class(c) => c.to_string(),
            Target::PerSample(v) => format!("per-sample ({} indices)", v.len()),
            Target::Argmax => "argmax".into(),
        }
    }

    /// Resolve against a batch of `n` rows. `outputs_of_inputs` is called only for
    /// [`Target::Argmax`], and must return the model's output on the original inputs.
    pub fn resolve(
        &self,
        n: i64,
        device: Device,
        outputs_of_inputs: impl FnOnce() -> Result<Tensor>,
    ) -> Result<ResolvedTarget> {
        match self {
            Target::None => Ok(ResolvedTarget::Scalar),
            Target::Class(c) => ResolvedTarget::from_host(vec![*c; n as usize], device),
            Target::PerSample(v) => {
                if v.len() as i64 != n {
                    return Err(AttribError::TargetOutOfRange(format!(
                        "{} per-sample targets were given for a batch of {n} rows; give exactly one class index per row",
                        v.len()
                    )));
                }
                ResolvedTarget::from_host(v.clone(), device)
            }
            Target::Argmax => {
                let out = outputs_of_inputs()?;
                if out.dim() != 2 {
                    return Err(AttribError::TargetShape(format!(
                        "argmax needs a model output of shape [N, classes], got {:?}",
                        out.size()
                    )));
                }
                let idx = out.f_argmax(1, false).ctx("taking the argmax of the model output")?;
                let host = idx.f_to_device(Device::Cpu).and_then(|t| Vec::<i64>::try_from(&t)).ctx("reading argmax targets")?;
                ResolvedTarget::from_host(host, device)
            }
        }
    }
}

/// A [`Target`] turned into one class index per original row (or none for scalar outputs).
#[derive(Debug)]
pub enum ResolvedTarget {
    /// Scalar-output model.
    Scalar,
    /// One class index per original row.
    Indices {
        /// `[N]` int64, on the model's device.
        per_sample: Tensor,
        /// The same indices on the host, for range checks and metadata.
        host: Vec<i64>,
    },
}

impl ResolvedTarget {
    fn from_host(host: Vec<i64>, device: Device) -> Result<ResolvedTarget> {
        if let Some(bad) = host.iter().find(|&&c| c < 0) {
            return Err(AttribError::TargetOutOfRange(format!(
                "class index {bad} is negative; class indices start at 0"
            )));
        }
        let per_sample = Tensor::f_from_slice(&host).and_then(|t| t.f_to_device(device)).ctx("moving targets")?;
        Ok(ResolvedTarget::Indices { per_sample, host })
    }

    /// The class indices, when there are any.
    pub fn indices(&self) -> Option<&[i64]> {
        match self {
            ResolvedTarget::Scalar => None,
            ResolvedTarget::Indices { host, .. } => Some(host),
        }
    }

    /// Check on the host (no device synchronisation) that the target fits an output of `size`.
    pub fn check_output(&self, size: &[i64]) -> Result<()> {
        match self {
            ResolvedTarget::Scalar => match size {
                [_] | [_, 1] => Ok(()),
                _ => Err(AttribError::TargetShape(format!(
                    "the model output has shape {size:?}, which is not one value per row; choose a target class (an index, per-row indices or argmax)"
                ))),
            },
            ResolvedTarget::Indices { host, .. } => match size {
                [_, c] => {
                    if let Some(bad) = host.iter().find(|&&t| t >= *c) {
                        Err(AttribError::TargetOutOfRange(format!(
                            "class index {bad} is out of range for a model with {c} outputs (valid: 0..={})",
                            c - 1
                        )))
                    } else {
                        Ok(())
                    }
                }
                [_] => Err(AttribError::TargetShape(
                    "the model returns one value per row; explain it with no target (Target::None, `--target none`)".into(),
                )),
                _ => Err(AttribError::TargetShape(format!(
                    "the model output has shape {size:?}; class targets need an output of shape [N, classes]"
                ))),
            },
        }
    }

    /// Select the explained scalar of each row of an output chunk.
    ///
    /// `output` is `[b, ...]`; `sample_of_row` is `[b]` int64, the original sample each row
    /// belongs to. Returns `[b]`.
    pub fn select(&self, output: &Tensor, sample_of_row: &Tensor) -> Result<Tensor> {
        self.check_output(&output.size())?;
        match self {
            ResolvedTarget::Scalar => output.f_reshape([-1]).ctx("flattening a scalar output"),
            ResolvedTarget::Indices { per_sample, .. } => {
                let idx = per_sample.f_index_select(0, sample_of_row).ctx("expanding targets to rows")?;
                output
                    .f_gather(1, &idx.f_unsqueeze(1).ctx("target index")?, false)
                    .and_then(|t| t.f_squeeze_dim(1))
                    .ctx("selecting the target output")
            }
        }
    }
}

