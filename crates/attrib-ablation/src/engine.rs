//! Shared machinery of the perturbation methods: feature groups resolved against the inputs, the
//! perturbation fan-out through the evaluator, and the scatter of per-group output changes back
//! onto the input elements.

use attrib_core::{AttribError, Baselines, FeatureMask, Result, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded, Prepared};
use std::collections::BTreeSet;
use tch::{Device, Kind, Tensor};

/// Feature groups of every input: ids broadcast to each input's shape, and the sorted union of
/// the ids (one perturbation block per group).
pub(crate) struct Groups {
    /// One `[N, ...]` int64 tensor per input (may be an expanded view).
    pub ids: Vec<Tensor>,
    /// The ids at their own size, padded on the left to the input's rank (`[1 or N, ...]`, with
    /// 1 where the mask broadcasts), so that selections stay small.
    pub compact: Vec<Tensor>,
    /// The distinct group ids of all inputs, sorted.
    pub groups: Vec<i64>,
    /// `groups` as an int64 tensor on the device.
    pub groups_t: Tensor,
}

impl Groups {
    /// Groups from user masks (one per input), or one group per scalar element (ids numbered
    /// across inputs, so that no group spans two inputs) when `masks` is `None`.
    pub fn resolve(masks: Option<&[FeatureMask]>, inputs: &[Tensor], device: Device) -> Result<Groups> {
        let mut ids = Vec::with_capacity(inputs.len());
        let mut compact = Vec::with_capacity(inputs.len());
        let mut groups = Vec::new();
        match masks {
            None => {
                let mut offset = 0i64;
                for x in inputs {
                    let size = x.size();
                    let row: Vec<i64> = size[1..].to_vec();
                    let m: i64 = row.iter().product();
                    let mut one = vec![1i64];
                    one.extend_from_slice(&row);
                    let t = Tensor::f_arange_start(offset, offset + m, (Kind::Int64, device))
                        .and_then(|t| t.f_reshape(&one))
                        .ctx("numbering scalar features")?;
                    ids.push(t.f_expand(&size, false).ctx("numbering scalar features")?);
                    compact.push(t);
                    groups.extend(offset..offset + m);
                    offset += m;
                }
            }
            Some(masks) => {
                if masks.len() != inputs.len() {
                    return Err(AttribError::MaskShape {
                        input: 0,
                        reason: format!(
                            "{} feature mask(s) were given for {} input(s); give one mask per input (a group id used in several masks is perturbed jointly)",
                            masks.len(),
                            inputs.len()
                        ),
                    });
                }
                let mut set = BTreeSet::new();
                for (k, (mask, x)) in masks.iter().zip(inputs).enumerate() {
                    ids.push(mask.broadcast_to(&x.size(), k, device)?);
                    let raw = mask.ids();
                    let mut shape = vec![1i64; x.dim() - raw.dim()];
                    shape.extend(raw.size());
                    compact.push(raw.f_to_device(device).and_then(|t| t.f_reshape(&shape)).ctx("moving the mask")?);
                    set.extend(mask.groups()?);
                }
                groups = set.into_iter().collect();
            }
        }
        let groups_t = Tensor::from_slice(&groups).f_to_device(device).ctx("moving group ids")?;
        Ok(Groups { ids, compact, groups, groups_t })
    }

    /// For input `k`: `[rows, ...]` boolean, true where the element of the row's sample belongs
    /// to the row's group. `sample` and `block` hold the sample and block (group position) of
    /// every row of the chunk.
    pub fn selection(&self, k: usize, sample: &Tensor, block: &Tensor) -> Result<Tensor> {
        let ids = &self.compact[k];
        let rows = sample.size()[0];
        // Only a per-row mask needs the rows of each sample; a shared one broadcasts.
        let ids_rows = if ids.size()[0] > 1 {
            ids.f_index_select(0, sample).ctx("selecting mask rows")?
        } else {
            ids.shallow_clone()
        };
        let mut shape = vec![1i64; ids.dim()];
        shape[0] = rows;
        let g = self.groups_t.f_index_select(0, block).and_then(|g| g.f_reshape(&shape)).ctx("group of each row")?;
        ids_rows.f_eq_tensor(&g).ctx("selecting the group")
    }

    /// Spread per-group values `diff` (`[groups, N]`) onto the elements of input `k`:
    /// `out[i, e] = diff[position of id(i, e), i]`, in `kind`.
    pub fn scatter(&self, k: usize, diff: &Tensor, kind: Kind) -> Result<Tensor> {
        let ids = &self.ids[k];
        let size = ids.size();
        let n = size[0];
        let pos = ids
            .f_contiguous()
            .and_then(|t| t.f_searchsorted(&self.groups_t, false, false, "left", None::<Tensor>))
            .and_then(|t| t.f_reshape([n, -1]))
            .ctx("locating groups")?;
        diff.f_transpose(0, 1)
            .and_then(|d| d.f_gather(1, &pos, false))
            .and_then(|t| t.f_reshape(&size))
            .and_then(|t| t.f_to_kind(kind))
            .ctx("spreading group attributions")
    }
}

/// Baselines of every input, broadcast to its shape.
pub(crate) fn resolve_baselines(baselines: &Baselines, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    baselines.resolve(inputs)
}

/// Evaluate `blocks` perturbations of each of the `n` rows and return
/// `F_t(x_i) − F_t(x̃_{b,i})` as `[blocks, n]`.
///
/// Row `r` of the expanded batch is perturbation `r / n` of sample `r % n`;
/// `build(start, end, sample, block)` returns the perturbed inputs of rows `start..end`.
pub(crate) fn output_changes(
    eval: &Evaluator,
    p: &Prepared,
    blocks: i64,
    build: impl Fn(i64, i64, &Tensor, &Tensor) -> Result<Vec<Tensor>>,
) -> Result<Tensor> {
    let n = p.n;
    let device = p.device;
    let base = eval.forward(p, &Expanded::identity(&p.inputs))?;
    let batch = Expanded::new(n, blocks * n, |s, e| {
        let r = Tensor::f_arange_start(s, e, (Kind::Int64, device)).ctx("row indices")?;
        let sample = r.f_remainder(n).ctx("row indices")?;
        let block = r.f_floor_divide_scalar(n).ctx("row indices")?;
        build(s, e, &sample, &block)
    });
    let mut parts = Vec::new();
    eval.forward_each(p, &batch, |range, out| {
        let sample = Tensor::f_arange_start(range.start, range.end, (Kind::Int64, device))
            .and_then(|r| r.f_remainder(n))
            .ctx("row indices")?;
        let diff = base.f_index_select(0, &sample).and_then(|b| b.f_sub(&out)).ctx("output changes")?;
        parts.push(diff);
        Ok(())
    })?;
    if parts.is_empty() {
        return Tensor::f_zeros([0, n], (base.kind(), device)).ctx("output changes");
    }
    Tensor::f_cat(&parts, 0).and_then(|t| t.f_reshape([blocks, n])).ctx("gathering output changes")
}

/// Index rows of `x` (`[N, ...]`) by `sample`.
pub(crate) fn rows_of(x: &Tensor, sample: &Tensor) -> Result<Tensor> {
    x.f_index_select(0, sample).ctx("selecting rows")
}
