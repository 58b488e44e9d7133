//! The inputs and replacement values in the storage order of a chunk's layout, the element lists
//! in that order, and the host copy of listed elements between rows.

use super::positions::Positions;
use attrib_core::{AttribError, Result, TorchResultExt};
use attrib_tensor::{channels_last_order, Layout};
use std::rc::Rc;
use tch::{Device, Tensor};

/// An input and its replacement values as `[N, M]` in the element order of a layout, and the
/// lists in that order: storage positions as host runs (host path), or the map from logical
/// flat positions (`C, H, W` order) to storage positions (index-tensor path).
pub(super) struct Stores {
    layout: Layout,
    /// Addresses of the input's and the values' data, which the stores were made from.
    from: (usize, usize),
    x: Tensor,
    values: Tensor,
    /// Index-tensor path: `None` for the contiguous layout (the identity).
    to_storage: Option<Tensor>,
    /// Host path: every list's storage positions.
    host: Option<Rc<HostLists>>,
}

/// Every list's storage positions as runs `(first position, length)` of consecutive elements,
/// and the index of each list's first run.
pub(super) type HostLists = (Vec<(usize, usize)>, Vec<usize>);

/// What [`Positions::stores`] hands out.
pub(super) type StoreSet = (Tensor, Tensor, Option<Tensor>, Option<Rc<HostLists>>);

impl Positions {
    /// The input and values in storage order of `layout`, and the lists in that order, made
    /// once per call, layout and pair of tensors.
    pub(super) fn stores(&self, x: &Tensor, values: &Tensor, layout: Layout, host: bool) -> Result<StoreSet> {
        let mut cache = self.stores.borrow_mut();
        let from = (x.data_ptr() as usize, values.data_ptr() as usize);
        let hand_out = |st: &Stores| -> StoreSet {
            (st.x.shallow_clone(), st.values.shallow_clone(), st.to_storage.as_ref().map(Tensor::shallow_clone), st.host.clone())
        };
        if let Some(st) = cache.iter().find(|st| st.layout == layout && st.from == from && st.host.is_some() == host) {
            return Ok(hand_out(st));
        }
        let ctx = "arranging inputs for the perturbed rows";
        let flat = |t: &Tensor| -> Result<Tensor> {
            let t = match layout {
                Layout::Contiguous => t.f_contiguous(),
                Layout::ChannelsLast => t.f_permute(&channels_last_order(t.dim()).0).and_then(|t| t.f_contiguous()),
            };
            t.and_then(|t| t.f_reshape([t.size()[0], -1])).ctx(ctx)
        };
        // Channels-last: logical position `c · S + s` (channel `c`, spatial position `s` of `S`)
        // is stored at `s · C + c`.
        let channels = x.size().get(1).copied().unwrap_or(1).max(1);
        let spatial = self.row / channels;
        let storage_of = |p: i64| match layout {
            Layout::Contiguous => p,
            Layout::ChannelsLast => (p % spatial) * channels + p / spatial,
        };
        let (to_storage, host) = if host {
            // Each list as runs of consecutive storage positions.
            let mut runs = Vec::new();
            let mut starts = Vec::with_capacity(self.count.len());
            for (&a, &c) in self.start.iter().zip(&self.count) {
                starts.push(runs.len());
                let mut list: Vec<usize> = self.pos[a as usize..(a + c) as usize].iter().map(|&p| storage_of(p) as usize).collect();
                list.sort_unstable();
                list.dedup();
                let first_run = runs.len();
                for p in list {
                    if runs.len() > first_run {
                        if let Some((s, len)) = runs.last_mut() {
                            if *s + *len == p {
                                *len += 1;
                                continue;
                            }
                        }
                    }
                    runs.push((p, 1));
                }
            }
            (None, Some(Rc::new((runs, starts))))
        } else {
            let map = match layout {
                Layout::Contiguous => None,
                Layout::ChannelsLast => {
                    let v: Vec<i64> = (0..self.row).map(storage_of).collect();
                    Some(Tensor::f_from_slice(&v).and_then(|t| t.f_to_device(x.device())).ctx(ctx)?)
                }
            };
            (map, None)
        };
        let st = Stores { layout, from, x: flat(x)?, values: flat(values)?, to_storage, host };
        let out = hand_out(&st);
        cache.push(st);
        Ok(out)
    }
}

/// Host path of [`Positions::build`]: for each `[row, from, list]`, copy the elements of
/// `list` (storage positions in `lists`) of row `from` of `source` (`[N, M]`) into row `row` of
/// `buffer` (`[capacity, M]`). Both contiguous, same dtype, on the CPU; every index is checked
/// against the tensors' sizes before any write.
pub(super) fn host_copy(
    buffer: &Tensor,
    source: &Tensor,
    lists: &HostLists,
    m: i64,
    rows: &[[usize; 3]],
) -> Result<()> {
    let (runs, starts) = lists;
    let m = m as usize;
    let elt = source.kind().elt_size_in_bytes();
    let cap = buffer.size()[0] as usize;
    let nsrc = source.size()[0] as usize;
    let ok = buffer.device() == Device::Cpu
        && source.device() == Device::Cpu
        && buffer.is_contiguous()
        && source.is_contiguous()
        && buffer.kind() == source.kind()
        && buffer.size()[1] as usize == m
        && source.size()[1] as usize == m
        && runs.iter().all(|&(p, len)| p + len <= m);
    if !ok {
        return Err(AttribError::Internal("host copy of perturbed elements: buffers do not match".into()));
    }
    let dst = buffer.data_ptr() as *mut u8;
    let src = source.data_ptr() as *const u8;
    for &[row, from, list] in rows {
        if row >= cap || from >= nsrc || list >= starts.len() {
            return Err(AttribError::Internal(format!("host copy: row {row}/{cap}, source {from}/{nsrc}, list {list}")));
        }
        let end = starts.get(list + 1).copied().unwrap_or(runs.len());
        let (d0, s0) = (row * m, from * m);
        for &(p, len) in &runs[starts[list]..end] {
            // SAFETY: both tensors are contiguous CPU tensors of `elt`-byte elements with rows of
            // `m` elements; `row < cap`, `from < nsrc` and `p + len <= m` were checked above, so
            // both ranges are inside their tensors, which do not overlap (the buffer is our own
            // allocation).
            unsafe { std::ptr::copy_nonoverlapping(src.add((s0 + p) * elt), dst.add((d0 + p) * elt), len * elt) };
        }
    }
    Ok(())
}
