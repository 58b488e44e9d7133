//! Feature groups resolved against the inputs: per-element group ids, the selection of a
//! group's elements in perturbed rows, and the spread of per-group values back onto the elements.

use attrib_core::baseline::{broadcast_rows, tile_copies};
use attrib_core::{AttribError, FeatureMask, Result, TorchResultExt};
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
    /// across inputs, so that no group spans two inputs) when `masks` is `None`. Masks broadcast
    /// to the inputs by NumPy's rules; when the inputs stack `copies` copies of a batch
    /// ([`attrib_core::Inputs::stacked_copies`]), a per-row mask of the batch's rows is tiled
    /// over the copies first.
    pub fn resolve(masks: Option<&[FeatureMask]>, inputs: &[Tensor], copies: i64, device: Device) -> Result<Groups> {
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
                    let size = x.size();
                    let bad = |reason: String| AttribError::MaskShape { input: k, reason };
                    let raw = tile_copies(mask.ids(), &size, copies).map_err(bad)?.f_to_device(device).ctx("moving the mask")?;
                    ids.push(broadcast_rows(&raw, &size).map_err(bad)?);
                    let mut shape = vec![1i64; x.dim().saturating_sub(raw.dim())];
                    shape.extend(raw.size());
                    compact.push(raw.f_reshape(&shape).ctx("moving the mask")?);
                    set.extend(mask.groups()?);
                }
                groups = set.into_iter().collect();
            }
        }
        let groups_t = Tensor::f_from_slice(&groups).and_then(|t| t.f_to_device(device)).ctx("moving group ids")?;
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

    /// Block (position of the group in [`Groups::groups`]) of every element of input `k`, per
    /// mask row: `[S, M]` int64 with `S` 1 (a mask shared by the batch) or `N` (one mask per
    /// row) and `M` the elements of one row.
    pub fn block_of_elements(&self, k: usize) -> Result<Tensor> {
        let size = self.ids[k].size();
        let compact = &self.compact[k];
        let s = compact.size()[0];
        let mut shape = size.clone();
        shape[0] = s;
        let m: i64 = size[1..].iter().product();
        compact
            .f_expand(&shape, false)
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_reshape([s, m]))
            .and_then(|t| t.f_searchsorted(&self.groups_t, false, false, "left", None::<Tensor>))
            .ctx("locating groups")
    }

    /// Spread per-group values `diff` (`[groups, N]`) onto the elements of input `k`:
    /// `out[i, e] = diff[block of e in row i, i]`, in `kind`. `blocks` is
    /// [`Groups::block_of_elements`]`(k)`. One gather (or index) over `N × M` elements.
    pub fn scatter(&self, k: usize, blocks: &Tensor, diff: &Tensor, kind: Kind) -> Result<Tensor> {
        let size = self.ids[k].size();
        let d = diff.f_transpose(0, 1).ctx("spreading group attributions")?;
        let spread = if blocks.size()[0] == 1 {
            blocks.f_select(0, 0).and_then(|b| d.f_index_select(1, &b))
        } else {
            d.f_gather(1, blocks, false)
        };
        spread.and_then(|t| t.f_reshape(&size)).and_then(|t| t.f_to_kind(kind)).ctx("spreading group attributions")
    }
}
