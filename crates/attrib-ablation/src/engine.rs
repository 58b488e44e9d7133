//! Shared machinery of the perturbation methods: feature groups resolved against the inputs, the
//! perturbation fan-out through the evaluator, and the scatter of per-group output changes back
//! onto the input elements.
//!
//! ## Building a chunk of perturbed rows
//! Row `r` of the expanded batch is perturbation (block) `r / n` of sample `r % n`, the
//! evaluator's row layout ([`attrib_tensor::ChunkRows`], which every row-to-sample mapping here
//! goes through). A chunk is built in a buffer kept from chunk to chunk, in the memory layout the evaluator chose
//! ([`Positions::build`]):
//! 1. its unperturbed rows: when the chunk has the same sample order as the last one (starts
//!    that differ by a multiple of `n`) and the model did not write into the buffer (its version
//!    counter), only the elements the last chunk perturbed are written back; otherwise the rows
//!    are gathered from the inputs (row copies on the CPU, `index_select` elsewhere). The rows
//!    after the perturbed ones (every sample as it is, for `F(x)`) are such rows with nothing
//!    written;
//! 2. the perturbed elements of every row, listed per block in [`Positions`] (a feature group's
//!    elements, a window's box), are overwritten in place: on the CPU as host copies of runs of
//!    consecutive elements, elsewhere with one `put_` whose values come from one `take`
//!    (baseline values, or the values of another row for permutations).
//!
//! The work per chunk is proportional to its perturbed elements (plus the chunk's size when it
//! must be gathered), not to rows × elements × blocks, and no step waits on the device. When the
//! blocks are large (more than a quarter of a row on average) the methods use a dense boolean
//! selection and `where` instead, whose cost does not depend on the block size.

use attrib_core::baseline::{broadcast_rows, tile_copies};
use attrib_core::{AttribError, FeatureMask, Result, TorchResultExt};
use attrib_tensor::{channels_last_applies, channels_last_order, ChunkRows, Evaluator, Expanded, Layout, Prepared};
use std::cell::RefCell;
use std::rc::Rc;
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

/// The elements each perturbation block changes in one input, as flat positions within a row
/// (`0..M`), listed per (mask row, block): a feature group's elements, an occlusion window's box.
/// With one mask row the lists are shared by every sample; with `N` mask rows sample `i` uses
/// row `i`. The lists are made on the host; the index tensors of the device path
/// ([`IndexTensors`]) only when a chunk needs them.
pub(crate) struct Positions {
    /// Elements of one row of the input.
    row: i64,
    /// Blocks per mask row.
    blocks: i64,
    /// Mask rows: 1 or `N`.
    mask_rows: i64,
    /// Every list, concatenated (positions within a row).
    pos: Vec<i64>,
    /// Where the list of (mask row `s`, block `b`) starts in `pos` (index `s * blocks + b`).
    start: Vec<i64>,
    /// Its length.
    count: Vec<i64>,
    /// The device the chunks are built on.
    device: Device,
    /// The lists as tensors on the device, made on first use by the index-tensor path.
    index: RefCell<Option<IndexTensors>>,
    /// The rows of the last chunk, reused as the next chunk's buffer.
    buffer: RefCell<Option<Buffer>>,
    /// The inputs and replacement values in storage order, per layout (see [`Stores`]).
    stores: RefCell<Vec<Stores>>,
    /// Write perturbed elements with host copies (CPU tensors) rather than index tensors. Set
    /// from the device; the unit tests clear it to exercise the tensor path on the CPU.
    host_path: bool,
    /// Let the index-tensor path pad the lists ([`IndexTensors::padded`]); the unit tests clear
    /// it to exercise the ragged lists.
    allow_padding: bool,
}

/// [`Positions`]'s lists on the device, for the index-tensor path (devices other than the CPU).
struct IndexTensors {
    pos: Tensor,
    start: Tensor,
    count: Tensor,
    /// `[mask_rows * blocks, P]`: every list padded to the longest, `P`, by repeating its last
    /// position (writing an element twice with the same value changes nothing). Present when no
    /// list is empty and padding at most doubles the positions; then a chunk needs 4 operations
    /// over `rows × P` indices instead of about 14 over the exact pairs.
    padded: Option<Tensor>,
}

/// The chunk buffer of [`Positions::build`] and what is known about its contents.
struct Buffer {
    /// `[capacity, M]`, rows in storage order of `layout`.
    data: Tensor,
    layout: Layout,
    /// Rows `0..clean` hold the samples `(first + j) % n`, unperturbed except for the elements
    /// listed in `restore`.
    clean: i64,
    first: i64,
    /// How to undo the last chunk's writes.
    restore: Option<Undo>,
    /// `data`'s version counter after the last write of ours. A model that writes into its input
    /// in place moves it on; then the buffer is rebuilt from scratch.
    version: i64,
}

/// The writes of the last chunk, to be undone before the next.
enum Undo {
    /// Flat positions in the buffer, and the flat positions in the input store of the values
    /// they had before.
    Tensors(Tensor, Tensor),
    /// Host path: `(buffer row, sample, list)` of every row written.
    Rows(Vec<[usize; 3]>),
}

/// An input and its replacement values as `[N, M]` in the element order of a layout, and the
/// lists in that order: storage positions as host runs (host path), or the map from logical
/// flat positions (`C, H, W` order) to storage positions (index-tensor path).
struct Stores {
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
type HostLists = (Vec<(usize, usize)>, Vec<usize>);

/// What [`Positions::stores`] hands out.
type StoreSet = (Tensor, Tensor, Option<Tensor>, Option<Rc<HostLists>>);

/// Where the replacement values of a perturbed row come from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The row's own sample: `values` are baselines (ablation, occlusion).
    Own,
    /// Perturbed row `r` reads row `host[r]` of `values` (permutation: `values` are the inputs);
    /// `tensor` holds the same indices on the device.
    Rows { host: &'a [i64], tensor: &'a Tensor },
}

/// Largest number of listed positions of all blocks together (int64, 32 MiB). Beyond it (dense
/// occlusion windows with small strides on large inputs) the methods build dense masks per chunk.
pub(crate) const MAX_POSITIONS: i64 = 1 << 22;

/// Mean fraction of a row per block above which a dense selection is used instead of
/// [`Positions`].
pub(crate) const DENSE_ABOVE: f64 = 0.25;

impl Positions {
    /// Lists from the block of every element (`[S, M]`, [`Groups::block_of_elements`]); every
    /// element belongs to one block. One host copy of `block_of`; a counting sort on the host
    /// (a dozen small tensor operations cost more than the whole sort for image-sized rows).
    pub fn from_blocks(block_of: &Tensor, blocks: i64) -> Result<Positions> {
        let size = block_of.size();
        let (s, m) = (size[0], size[1]);
        let ctx = "listing the elements of each group";
        let ids = Vec::<i64>::try_from(&block_of.f_to_device(Device::Cpu).and_then(|b| b.f_reshape([-1])).ctx(ctx)?).ctx(ctx)?;
        let (mu, bu) = (m.max(1) as usize, blocks as usize);
        let mut count = vec![0i64; s as usize * bu];
        for (i, &b) in ids.iter().enumerate() {
            if b < 0 || b >= blocks {
                return Err(AttribError::Internal(format!("element {i} is in block {b} of {blocks}")));
            }
            count[(i / mu) * bu + b as usize] += 1;
        }
        // Lists in order (mask row, block); each mask row's lists cover its M elements, so the
        // lists of row `s` start at `s * M`.
        let start = list_starts(&count);
        let mut next = start.clone();
        let mut pos = vec![0i64; ids.len()];
        for (i, &b) in ids.iter().enumerate() {
            let l = (i / mu) * bu + b as usize;
            pos[next[l] as usize] = (i % mu) as i64;
            next[l] += 1;
        }
        Ok(Positions::from_host(m, blocks, s, pos, start, count, block_of.device()))
    }

    /// Lists given on the host, one per block, shared by every sample.
    pub fn from_lists(lists: &[Vec<i64>], row: i64, device: Device) -> Result<Positions> {
        let count: Vec<i64> = lists.iter().map(|l| l.len() as i64).collect();
        let start = list_starts(&count);
        if let Some(bad) = lists.iter().flatten().find(|&&p| p < 0 || p >= row) {
            return Err(AttribError::Internal(format!("listed position {bad} outside a row of {row} elements")));
        }
        let pos: Vec<i64> = lists.iter().flatten().copied().collect();
        Ok(Positions::from_host(row, lists.len() as i64, 1, pos, start, count, device))
    }

    fn from_host(row: i64, blocks: i64, mask_rows: i64, pos: Vec<i64>, start: Vec<i64>, count: Vec<i64>, device: Device) -> Positions {
        Positions {
            row,
            blocks,
            mask_rows,
            pos,
            start,
            count,
            device,
            index: RefCell::new(None),
            buffer: RefCell::new(None),
            stores: RefCell::new(Vec::new()),
            host_path: device == Device::Cpu,
            allow_padding: true,
        }
    }

    /// Mean fraction of a row that one block changes.
    pub fn density(&self) -> f64 {
        let total: i64 = self.count.iter().sum();
        total as f64 / (self.count.len().max(1) as f64 * self.row.max(1) as f64)
    }

    /// The lists as index tensors on the device (made once).
    fn index(&self) -> Result<std::cell::Ref<'_, IndexTensors>> {
        if self.index.borrow().is_none() {
            let ctx = "listing the perturbed elements";
            let to_dev = |v: &[i64]| Tensor::f_from_slice(v).and_then(|t| t.f_to_device(self.device)).ctx(ctx);
            let longest = self.count.iter().copied().max().unwrap_or(0);
            let total: i64 = self.count.iter().sum();
            let lists = self.count.len() as i64;
            let padded = if !self.allow_padding || longest == 0 || self.count.contains(&0) || lists * longest > 2 * total {
                None
            } else {
                let mut v = Vec::with_capacity((lists * longest) as usize);
                for (&a, &c) in self.start.iter().zip(&self.count) {
                    v.extend((0..longest).map(|j| self.pos[(a + j.min(c - 1)) as usize]));
                }
                Some(to_dev(&v)?.f_reshape([lists, longest]).ctx(ctx)?)
            };
            *self.index.borrow_mut() =
                Some(IndexTensors { pos: to_dev(&self.pos)?, start: to_dev(&self.start)?, count: to_dev(&self.count)?, padded });
        }
        std::cell::Ref::filter_map(self.index.borrow(), |i| i.as_ref())
            .map_err(|_| AttribError::Internal("element index tensors were not made".into()))
    }

    /// The input and values in storage order of `layout`, and the lists in that order, made
    /// once per call, layout and pair of tensors.
    fn stores(&self, x: &Tensor, values: &Tensor, layout: Layout, host: bool) -> Result<StoreSet> {
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

    /// The rows of `chunk` ([`PerturbedChunk`]) of input `x` (`[N, ...]`): a perturbed row `r` is
    /// `x[r % n]` with the elements of block `r / n` replaced by those of `values` at the row
    /// `source` names (`values`: `[N, ...]`, the baselines or, for permutations, the inputs);
    /// the rows after the perturbed ones are `x[r % n]` as it is. Stored in `layout` (when `x`
    /// is image-like; contiguous otherwise).
    ///
    /// The returned tensor is a view of a buffer that the next call overwrites. When the next
    /// chunk has the same sample order (its start differs by a multiple of `n`), only the
    /// elements the last chunk changed are written back, not the whole chunk.
    pub fn build(&self, x: &Tensor, values: &Tensor, chunk: &PerturbedChunk, source: Source, layout: Layout) -> Result<Tensor> {
        let at = &chunk.rows;
        let start = at.start;
        let rows = at.len();
        // Perturbed rows of this chunk: start..pe.
        let pe = chunk.perturbed_end();
        let device = x.device();
        let layout = if channels_last_applies(x) { layout } else { Layout::Contiguous };
        let ctx = "building perturbed rows";
        let host = self.host_path && device == Device::Cpu && values.kind() == x.kind();
        let (xs, vs, to_storage, lists) = self.stores(x, values, layout, host)?;
        let m = self.row;
        let mut guard = self.buffer.borrow_mut();
        // 1. The chunk's unperturbed rows: the last chunk's buffer with its changes undone, or
        // gathered afresh.
        let reusable = guard.as_ref().is_some_and(|b| {
            b.layout == layout
                && b.data.kind() == x.kind()
                && rows <= b.data.size()[0]
                && at.same_order_as(b.first)
                && b.data.f_internal_version().ok() == Some(b.version)
        });
        // Whole rows `j` of the buffer from the inputs (sample `(start + j) % n`).
        let gather = |data: &Tensor, from: i64, to: i64| -> Result<()> {
            if to <= from {
                return Ok(());
            }
            if host {
                let whole: HostLists = (vec![(0, m as usize)], vec![0]);
                let plan: Vec<[usize; 3]> = (from..to).map(|j| [j as usize, at.sample(start + j) as usize, 0]).collect();
                host_copy(data, &xs, &whole, m, &plan)
            } else {
                let sample = at.samples_of(start + from, start + to)?;
                data.f_narrow(0, from, to - from).and_then(|d| xs.f_index_select_out(&d, 0, &sample)).map(|_| ()).ctx(ctx)
            }
        };
        if reusable {
            let b = guard.as_mut().ok_or_else(|| AttribError::Internal("reused buffer missing".into()))?;
            match b.restore.take() {
                Some(Undo::Tensors(dst, from)) => {
                    let vals = xs.f_take(&from).ctx(ctx)?;
                    let _ = b.data.f_view([-1]).and_then(|mut d| d.f_put_(&dst, &vals, false)).ctx(ctx)?;
                }
                Some(Undo::Rows(rows_written)) => {
                    let lists = lists.as_ref().ok_or_else(|| AttribError::Internal("host lists missing for host writes".into()))?;
                    host_copy(&b.data, &xs, lists, m, &rows_written)?;
                }
                None => {}
            }
            // A longer chunk than any before (the evaluator may join a short tail to the last
            // chunk): only its new rows are gathered.
            gather(&b.data, b.clean, rows)?;
            b.clean = b.clean.max(rows);
        } else {
            // Room for the longest chunk the evaluator may hand out in this pass.
            let capacity = chunk.capacity.max(rows);
            let fits = guard.as_ref().is_some_and(|b| b.data.size()[0] >= rows && b.data.kind() == x.kind());
            let data = match guard.take() {
                Some(b) if fits => b.data,
                _ => Tensor::f_empty([capacity, m], (x.kind(), device)).ctx(ctx)?,
            };
            gather(&data, 0, rows)?;
            *guard = Some(Buffer { data, layout, clean: rows, first: start, restore: None, version: 0 });
        }
        let b = guard.as_mut().ok_or_else(|| AttribError::Internal("chunk buffer missing".into()))?;
        b.first = start;
        // 2. The perturbed elements of rows start..pe, overwritten in place.
        let per_row_mask = self.mask_rows > 1;
        let list_of = |r: i64| (if per_row_mask { at.sample(r) } else { 0 }) * self.blocks + at.block(r);
        if let Some(lists) = lists.filter(|_| pe > start) {
            // CPU: copy the listed elements directly, row by row (a few runs per row cost less
            // than the dozen index tensors of the general path).
            let nv = values.size()[0];
            let plan: Vec<[usize; 3]> = (start..pe)
                .map(|r| {
                    let from = match source {
                        Source::Own => at.sample(r),
                        Source::Rows { host, .. } => host.get(r as usize).copied().unwrap_or(-1),
                    };
                    if from < 0 || from >= nv {
                        return Err(AttribError::Internal(format!("source row {from} out of range for {nv} rows")));
                    }
                    Ok([(r - start) as usize, from as usize, list_of(r) as usize])
                })
                .collect::<Result<_>>()?;
            host_copy(&b.data, &vs, &lists, m, &plan)?;
            // Undo: the same elements, from the row's own sample.
            b.restore = Some(Undo::Rows(plan.into_iter().map(|[j, _, l]| [j, at.sample(start + j as i64) as usize, l]).collect()));
        } else if pe > start {
            // K, the number of (row, element) pairs, is known on the host from the counts.
            let k: i64 = (start..pe).map(|r| self.count[list_of(r) as usize]).sum();
            if k > 0 {
                let idx = self.index()?;
                let rp = pe - start;
                let sample = at.samples_of(start, pe)?;
                let src = match source {
                    Source::Own => sample.shallow_clone(),
                    Source::Rows { tensor, .. } => tensor.f_narrow(0, start, rp).ctx(ctx)?,
                };
                let block = at.blocks_of(start, pe)?;
                let list = if per_row_mask {
                    sample.f_mul_scalar(self.blocks).and_then(|s| s.f_add(&block)).ctx(ctx)?
                } else {
                    block
                };
                // Logical positions within the row, and the row (within the chunk) of each pair.
                let (elem, row_of) = match &idx.padded {
                    Some(padded) => {
                        // [rp, P] positions, flattened row by row.
                        let elem = padded.f_index_select(0, &list).ctx(ctx)?;
                        let p = elem.size()[1];
                        let row_of = Tensor::f_arange(rp, (Kind::Int64, device))
                            .and_then(|r| r.f_repeat_interleave_self_int(p, Some(0), None))
                            .ctx(ctx)?;
                        (elem.f_reshape([-1]).ctx(ctx)?, row_of)
                    }
                    None => {
                        let cnt = idx.count.f_index_select(0, &list).ctx(ctx)?;
                        let first = idx.start.f_index_select(0, &list).ctx(ctx)?;
                        let row_of = Tensor::f_repeat_interleave(&cnt, k).ctx(ctx)?;
                        let row_begin = cnt.f_cumsum(0, Kind::Int64).and_then(|c| c.f_sub(&cnt)).ctx(ctx)?;
                        let rank = Tensor::f_arange(k, (Kind::Int64, device))
                            .and_then(|a| a.f_sub(&row_begin.f_index_select(0, &row_of)?))
                            .ctx(ctx)?;
                        let elem = first
                            .f_index_select(0, &row_of)
                            .and_then(|f| f.f_add(&rank))
                            .and_then(|i| idx.pos.f_index_select(0, &i))
                            .ctx(ctx)?;
                        (elem, row_of)
                    }
                };
                let elem = match &to_storage {
                    Some(map) => map.f_index_select(0, &elem).ctx(ctx)?,
                    None => elem,
                };
                let dst = row_of.f_mul_scalar(m).and_then(|d| d.f_add(&elem)).ctx(ctx)?;
                let at = |rows_src: &Tensor| {
                    rows_src.f_index_select(0, &row_of).and_then(|s| s.f_mul_scalar(m)).and_then(|s| s.f_add(&elem)).ctx(ctx)
                };
                let vals = vs.f_take(&at(&src)?).ctx(ctx)?;
                let _ = b.data.f_view([-1]).and_then(|mut d| d.f_put_(&dst, &vals, false)).ctx(ctx)?;
                b.restore = Some(Undo::Tensors(dst, at(&sample)?));
            }
        }
        b.version = b.data.f_internal_version().ctx(ctx)?;
        // 3. The chunk as `[rows, ...]` in logical dimension order.
        let mut shape = x.size();
        shape[0] = rows;
        let view = b.data.f_narrow(0, 0, rows).ctx(ctx)?;
        match layout {
            Layout::Contiguous => view.f_reshape(&shape).ctx(ctx),
            Layout::ChannelsLast => {
                let (to, back) = channels_last_order(shape.len());
                let stored: Vec<i64> = to.iter().map(|&d| shape[d as usize]).collect();
                view.f_reshape(&stored).and_then(|v| v.f_permute(&back)).ctx(ctx)
            }
        }
    }
}

/// Where each of a run of lists with lengths `count`, stored one after another, starts.
fn list_starts(count: &[i64]) -> Vec<i64> {
    count
        .iter()
        .scan(0i64, |acc, &c| {
            let at = *acc;
            *acc += c;
            Some(at)
        })
        .collect()
}

/// Host path of [`Positions::build`]: for each `[row, from, list]`, copy the elements of
/// `list` (storage positions in `lists`) of row `from` of `source` (`[N, M]`) into row `row` of
/// `buffer` (`[capacity, M]`). Both contiguous, same dtype, on the CPU; every index is checked
/// against the tensors' sizes before any write.
fn host_copy(
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

/// Attributions of feature groups: for each group `g` and row `i`,
/// `F_t(x_i) − F_t(x_i with group g taken from values[k] at row source(g, i))`, given to every
/// element of the group. `source` is [`Source::Own`] for "the same row" (ablation: `values` are
/// the baselines) or row indices per perturbed row (permutation: `values` are the inputs
/// themselves, read at permuted rows). Groups are written through element lists, or a dense
/// selection when they cover more than [`DENSE_ABOVE`] of a row on average. Returns one
/// attribution per input and the number of groups.
pub(crate) fn group_attributions(
    eval: &Evaluator,
    p: &Prepared,
    groups: &Groups,
    values: &[Tensor],
    source: Source,
) -> Result<(Vec<Tensor>, i64)> {
    let blocks = groups.groups.len() as i64;
    let block_of = (0..p.inputs.len()).map(|k| groups.block_of_elements(k)).collect::<Result<Vec<_>>>()?;
    let plans = block_of
        .iter()
        .map(|b| Positions::from_blocks(b, blocks).map(|pl| (pl.density() <= DENSE_ABOVE).then_some(pl)))
        .collect::<Result<Vec<_>>>()?;
    let diff = output_changes(eval, p, blocks, |chunk, layout| {
        p.inputs
            .iter()
            .zip(values)
            .enumerate()
            .map(|(k, (x, v))| match &plans[k] {
                Some(plan) => plan.build(x, v, chunk, source, layout),
                None => chunk.dense(x, |sample, block| {
                    let src = match source {
                        Source::Own => sample.shallow_clone(),
                        Source::Rows { tensor, .. } => tensor.f_narrow(0, chunk.rows.start, sample.size()[0]).ctx("source rows")?,
                    };
                    let sel = groups.selection(k, sample, block)?;
                    rows_of(v, &src)?.f_where_self(&sel, &rows_of(x, sample)?).ctx("perturbing a group")
                }),
            })
            .collect()
    })?;
    let attributions = p
        .inputs
        .iter()
        .enumerate()
        .map(|(k, x)| groups.scatter(k, &block_of[k], &diff, x.kind()))
        .collect::<Result<Vec<_>>>()?;
    Ok((attributions, blocks))
}

/// One chunk of a perturbation pass over `n` samples: its logical rows ([`ChunkRows`]: rows
/// below `perturbed` (`blocks · n`) are perturbation `r / n` of sample `r % n`, the rows from
/// `perturbed` on are the samples as they are), and the longest chunk the evaluator may hand out
/// in this pass, which a reused buffer is sized for.
pub(crate) struct PerturbedChunk {
    pub rows: ChunkRows,
    /// Rows that are perturbed (`blocks · n`); the `n` rows after them are not.
    pub perturbed: i64,
    /// Rows a buffer needs to hold any chunk of this pass ([`Evaluator::longest_chunk`]).
    pub capacity: i64,
}

impl PerturbedChunk {
    /// The end of the chunk's perturbed rows (`start..perturbed_end()`; the rest are unperturbed).
    pub fn perturbed_end(&self) -> i64 {
        self.rows.end.min(self.perturbed).max(self.rows.start)
    }

    /// The chunk's rows of input `x` built densely: `perturb(sample, block)` makes the perturbed
    /// rows from their samples and blocks; the unperturbed rows follow, taken from `x`.
    pub fn dense(&self, x: &Tensor, perturb: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let (start, end) = (self.rows.start, self.rows.end);
        let pe = self.perturbed_end();
        let perturbed = if pe > start { Some(perturb(&self.rows.samples_of(start, pe)?, &self.rows.blocks_of(start, pe)?)?) } else { None };
        let original = if end > pe { Some(rows_of(x, &self.rows.samples_of(pe, end)?)?) } else { None };
        match (perturbed, original) {
            (Some(a), Some(b)) => Tensor::f_cat(&[a, b], 0).ctx("joining rows"),
            (Some(a), None) => Ok(a),
            (None, Some(b)) => Ok(b),
            (None, None) => rows_of(x, &self.rows.samples()?),
        }
    }
}

/// Evaluate `blocks` perturbations of each of the `n` rows and return
/// `F_t(x_i) − F_t(x̃_{b,i})` as `[blocks, n]`.
///
/// `build(chunk, layout)` returns the inputs of the rows of `chunk` ([`PerturbedChunk`]),
/// preferably in `layout`. The unperturbed rows run in the same chunked pass, after the
/// perturbed ones (logical rows `blocks·n..(blocks+1)·n`), so that no separate model call is
/// spent on them and the perturbed chunks keep the same sample order from chunk to chunk.
pub(crate) fn output_changes(
    eval: &Evaluator,
    p: &Prepared,
    blocks: i64,
    build: impl Fn(&PerturbedChunk, Layout) -> Result<Vec<Tensor>>,
) -> Result<Tensor> {
    let n = p.n;
    let perturbed = blocks * n;
    let batch = Expanded::with_layout(n, perturbed + n, |start, end, layout| {
        let rows = ChunkRows::new(start, end, n, p.device);
        let longest = eval.longest_chunk(usize::try_from(rows.len()).unwrap_or(0));
        let capacity = i64::try_from(longest).unwrap_or(i64::MAX).max(rows.len());
        build(&PerturbedChunk { rows, perturbed, capacity }, layout)
    })
    .rows_like(&p.inputs);
    let outputs = eval.forward(p, &batch)?;
    let base = outputs.f_narrow(0, perturbed, n).ctx("output changes")?;
    outputs
        .f_narrow(0, 0, perturbed)
        .and_then(|o| o.f_reshape([blocks, n]))
        .and_then(|o| base.f_unsqueeze(0)?.f_sub(&o))
        .ctx("output changes")
}

/// Index rows of `x` (`[N, ...]`) by `sample`.
pub(crate) fn rows_of(x: &Tensor, sample: &Tensor) -> Result<Tensor> {
    x.f_index_select(0, sample).ctx("selecting rows")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: a dense boolean selection and `where` for the perturbed rows (below
    /// `total`), the samples themselves after them. `src`: the source row of every perturbed row.
    #[allow(clippy::too_many_arguments)]
    fn reference(groups: &Groups, x: &Tensor, values: &Tensor, start: i64, end: i64, n: i64, total: i64, src: &Tensor) -> Tensor {
        let pe = end.min(total).max(start);
        let mut parts = Vec::new();
        if pe > start {
            let r = Tensor::arange_start(start, pe, (Kind::Int64, Device::Cpu));
            let (sample, block) = (r.remainder(n), r.floor_divide_scalar(n));
            let sel = groups.selection(0, &sample, &block).unwrap();
            parts.push(rows_of(values, &src.narrow(0, start, pe - start)).unwrap().where_self(&sel, &rows_of(x, &sample).unwrap()));
        }
        if end > pe {
            parts.push(rows_of(x, &Tensor::arange_start(pe, end, (Kind::Int64, Device::Cpu)).remainder(n)).unwrap());
        }
        Tensor::cat(&parts, 0)
    }

    #[test]
    fn element_lists_build_the_same_rows_as_a_dense_selection() {
        let n = 3i64;
        let mut padded_seen = false;
        for per_row in [false, true] {
            for seed in 0..4 {
                tch::manual_seed(seed);
                // Image-like rows [2, 5, 3], so that the channels-last layout applies.
                let x = Tensor::randn([n, 2, 5, 3], (Kind::Double, Device::Cpu));
                let base = Tensor::randn([n, 2, 5, 3], (Kind::Double, Device::Cpu));
                // Seeds 0-1: balanced groups (padded lists); 2-3: uneven ones, some possibly empty.
                let ids = if seed < 2 {
                    Tensor::arange(30, (Kind::Int64, Device::Cpu)).remainder(4).reshape([1, 2, 5, 3])
                } else {
                    Tensor::randint(5, [if per_row { n } else { 1 }, 2, 5, 3], (Kind::Int64, Device::Cpu)).pow_tensor_scalar(2)
                };
                let ids = if per_row && seed < 2 { ids.repeat([n, 1, 1, 1]) } else { ids };
                let groups = Groups::resolve(Some(&[FeatureMask::new(ids).unwrap()]), &[x.shallow_clone()], 1, Device::Cpu).unwrap();
                let g = groups.groups.len() as i64;
                let block_of = groups.block_of_elements(0).unwrap();
                // The host path (the CPU default), and the index-tensor path (other devices)
                // with padded and with ragged element lists.
                let host = Positions::from_blocks(&block_of, g).unwrap();
                assert!(host.host_path);
                let mut padded = Positions::from_blocks(&block_of, g).unwrap();
                padded.host_path = false;
                padded_seen |= padded.index().unwrap().padded.is_some();
                let mut ragged = Positions::from_blocks(&block_of, g).unwrap();
                ragged.host_path = false;
                ragged.allow_padding = false;
                let total = g * n;
                let own = Tensor::arange(total, (Kind::Int64, Device::Cpu)).remainder(n);
                let perm = Tensor::randperm(total, (Kind::Int64, Device::Cpu)).remainder(n);
                let perm_host = Vec::<i64>::try_from(&perm).unwrap();
                let permuted = Source::Rows { host: &perm_host, tensor: &perm };
                // Aligned chunks in a row (the buffer is restored, not rebuilt), an aligned one
                // longer than any before (its new rows gathered into the buffer's spare room),
                // misaligned ones, a short last chunk, chunks reaching into and made only of the
                // unperturbed rows after the perturbed ones, and the whole batch.
                let mut chunks = vec![
                    (0, 2 * n),
                    (2 * n, 4 * n),
                    (0, 8),
                    (3, 12),
                    (1, 5),
                    (total - 4, total - 1),
                    (2, 3),
                    (total - n, total + n),
                    (total, total + n),
                    (0, total + n),
                ];
                chunks.retain(|&(s, e)| s >= 0 && e <= total + n);
                for layout in [Layout::Contiguous, Layout::ChannelsLast] {
                    for plan in [&host, &padded, &ragged] {
                        for (step, &(s, e)) in chunks.iter().enumerate() {
                            let capacity = attrib_tensor::longest_chunk((e - s) as usize, None) as i64;
                            let chunk = PerturbedChunk { rows: ChunkRows::new(s, e, n, Device::Cpu), perturbed: total, capacity };
                            // Values from the baselines (ablation) and from other rows (permutation).
                            let a = plan.build(&x, &base, &chunk, Source::Own, layout).unwrap();
                            assert_eq!(layout == Layout::ChannelsLast, a.stride()[1] == 1, "layout of rows {s}..{e}");
                            assert!(a.equal(&reference(&groups, &x, &base, s, e, n, total, &own)), "baseline rows {s}..{e} {layout:?}");
                            if step == 0 {
                                // A model that writes into its input: the next chunk must not
                                // inherit the damage.
                                let mut a = a;
                                let _ = a.fill_(7.0);
                            }
                            let b = plan.build(&x, &x, &chunk, permuted, layout).unwrap();
                            assert!(b.equal(&reference(&groups, &x, &x, s, e, n, total, &perm)), "permuted rows {s}..{e} {layout:?}");
                        }
                    }
                }
            }
        }
        assert!(padded_seen);
    }
}
