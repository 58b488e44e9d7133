//! Building a chunk of perturbed rows in a buffer kept from chunk to chunk
//! ([`Positions::build`]): the unperturbed rows (restored or gathered), the perturbed elements
//! written in place (host copies or index tensors), and the chunk's view in logical order.

use super::pass::PerturbedChunk;
use super::positions::{IndexTensors, Positions, Source};
use super::stores::{host_copy, HostLists};
use attrib_core::{AttribError, Result, TorchResultExt};
use attrib_tensor::{channels_last_applies, channels_last_order, ChunkRows, Layout};
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

/// Context of the errors of [`Positions::build`].
const CTX: &str = "building perturbed rows";

/// The chunk buffer of [`Positions::build`] and what is known about its contents.
pub(super) struct Buffer {
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

/// What one call of [`Positions::build`] works from: the input `x` and the replacement `values`
/// (`[N, ...]`), the same in storage order of `layout` (`xs`, `vs`: `[N, M]`), the lists in that
/// order ([`Positions::stores`]), and the chunk.
struct Call<'a> {
    x: &'a Tensor,
    values: &'a Tensor,
    xs: Tensor,
    vs: Tensor,
    /// Index-tensor path: logical to storage positions (`None`: the identity).
    to_storage: Option<Tensor>,
    /// Host path: every list's storage positions as runs.
    lists: Option<Rc<HostLists>>,
    chunk: &'a PerturbedChunk,
    layout: Layout,
    /// Write with host copies (CPU) rather than index tensors.
    host: bool,
}

impl Positions {
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
        let start = chunk.rows.start;
        let rows = chunk.rows.len();
        // Perturbed rows of this chunk: start..pe.
        let pe = chunk.perturbed_end();
        let layout = if channels_last_applies(x) { layout } else { Layout::Contiguous };
        let host = self.host_path && x.device() == Device::Cpu && values.kind() == x.kind();
        let (xs, vs, to_storage, lists) = self.stores(x, values, layout, host)?;
        let call = Call { x, values, xs, vs, to_storage, lists, chunk, layout, host };
        let mut guard = self.buffer.borrow_mut();
        // 1. The chunk's unperturbed rows: the last chunk's buffer with its changes undone, or
        // gathered afresh.
        let b = self.unperturbed_rows(&mut guard, &call)?;
        b.first = start;
        // 2. The perturbed elements of rows start..pe, overwritten in place.
        if let Some(lists) = call.lists.as_deref().filter(|_| pe > start) {
            self.write_host(b, &call, lists, source)?;
        } else if pe > start {
            self.write_indexed(b, &call, source)?;
        }
        b.version = b.data.f_internal_version().ctx(CTX)?;
        // 3. The chunk as `[rows, ...]` in logical dimension order.
        chunk_view(&b.data, x, rows, layout)
    }

    /// Step 1 of [`Positions::build`]: the buffer holding the chunk's rows unperturbed. The last
    /// chunk's buffer when it has the same layout, dtype, sample order and room, and the model
    /// did not write into it (its changes undone, rows it did not hold gathered); otherwise a
    /// buffer (the old one when it fits) with every row gathered from the inputs.
    fn unperturbed_rows<'g>(&self, guard: &'g mut Option<Buffer>, c: &Call) -> Result<&'g mut Buffer> {
        let at = &c.chunk.rows;
        let rows = at.len();
        let reusable = guard.as_ref().is_some_and(|b| {
            b.layout == c.layout
                && b.data.kind() == c.x.kind()
                && rows <= b.data.size()[0]
                && at.same_order_as(b.first)
                && b.data.f_internal_version().ok() == Some(b.version)
        });
        if reusable {
            let b = guard.as_mut().ok_or_else(|| AttribError::Internal("reused buffer missing".into()))?;
            self.undo(b, c)?;
            // A longer chunk than any before (the evaluator may join a short tail to the last
            // chunk): only its new rows are gathered.
            self.gather(c, &b.data, b.clean, rows)?;
            b.clean = b.clean.max(rows);
        } else {
            // Room for the longest chunk the evaluator may hand out in this pass.
            let capacity = c.chunk.capacity.max(rows);
            let fits = guard.as_ref().is_some_and(|b| b.data.size()[0] >= rows && b.data.kind() == c.x.kind());
            let data = match guard.take() {
                Some(b) if fits => b.data,
                _ => Tensor::f_empty([capacity, self.row], (c.x.kind(), c.x.device())).ctx(CTX)?,
            };
            self.gather(c, &data, 0, rows)?;
            *guard = Some(Buffer { data, layout: c.layout, clean: rows, first: at.start, restore: None, version: 0 });
        }
        guard.as_mut().ok_or_else(|| AttribError::Internal("chunk buffer missing".into()))
    }

    /// Undo the last chunk's writes to the buffer `b`: the elements it perturbed get their
    /// input values back.
    fn undo(&self, b: &mut Buffer, c: &Call) -> Result<()> {
        match b.restore.take() {
            Some(Undo::Tensors(dst, from)) => {
                let vals = c.xs.f_take(&from).ctx(CTX)?;
                let _ = b.data.f_view([-1]).and_then(|mut d| d.f_put_(&dst, &vals, false)).ctx(CTX)?;
            }
            Some(Undo::Rows(rows_written)) => {
                let lists = c.lists.as_ref().ok_or_else(|| AttribError::Internal("host lists missing for host writes".into()))?;
                host_copy(&b.data, &c.xs, lists, self.row, &rows_written)?;
            }
            None => {}
        }
        Ok(())
    }

    /// Whole rows `from..to` of the buffer `data` from the inputs (row `j`: sample
    /// `(start + j) % n` of the chunk starting at `start`).
    fn gather(&self, c: &Call, data: &Tensor, from: i64, to: i64) -> Result<()> {
        if to <= from {
            return Ok(());
        }
        let at = &c.chunk.rows;
        let (start, m) = (at.start, self.row);
        if c.host {
            let whole: HostLists = (vec![(0, m as usize)], vec![0]);
            let plan: Vec<[usize; 3]> = (from..to).map(|j| [j as usize, at.sample(start + j) as usize, 0]).collect();
            host_copy(data, &c.xs, &whole, m, &plan)
        } else {
            let sample = at.samples_of(start + from, start + to)?;
            data.f_narrow(0, from, to - from).and_then(|d| c.xs.f_index_select_out(&d, 0, &sample)).map(|_| ()).ctx(CTX)
        }
    }

    /// The list (index `mask row · blocks + block`) of logical row `r` of the chunk.
    fn list_of(&self, at: &ChunkRows, r: i64) -> i64 {
        (if self.mask_rows > 1 { at.sample(r) } else { 0 }) * self.blocks + at.block(r)
    }

    /// Step 2 of [`Positions::build`] on the CPU: copy the listed elements of the perturbed rows
    /// directly, row by row (a few runs per row cost less than the dozen index tensors of the
    /// general path), and note how to undo them.
    fn write_host(&self, b: &mut Buffer, c: &Call, lists: &HostLists, source: Source) -> Result<()> {
        let at = &c.chunk.rows;
        let (start, pe) = (at.start, c.chunk.perturbed_end());
        let nv = c.values.size()[0];
        let plan: Vec<[usize; 3]> = (start..pe)
            .map(|r| {
                let from = match source {
                    Source::Own => at.sample(r),
                    Source::Rows { host, .. } => host.get(r as usize).copied().unwrap_or(-1),
                };
                if from < 0 || from >= nv {
                    return Err(AttribError::Internal(format!("source row {from} out of range for {nv} rows")));
                }
                Ok([(r - start) as usize, from as usize, self.list_of(at, r) as usize])
            })
            .collect::<Result<_>>()?;
        host_copy(&b.data, &c.vs, lists, self.row, &plan)?;
        // Undo: the same elements, from the row's own sample.
        b.restore = Some(Undo::Rows(plan.into_iter().map(|[j, _, l]| [j, at.sample(start + j as i64) as usize, l]).collect()));
        Ok(())
    }

    /// Step 2 of [`Positions::build`] on other devices: the listed elements of the perturbed
    /// rows overwritten with one `put_` of values from one `take`, and the positions noted to
    /// undo them.
    fn write_indexed(&self, b: &mut Buffer, c: &Call, source: Source) -> Result<()> {
        let at = &c.chunk.rows;
        let (start, pe) = (at.start, c.chunk.perturbed_end());
        // K, the number of (row, element) pairs, is known on the host from the counts.
        let k: i64 = (start..pe).map(|r| self.count[self.list_of(at, r) as usize]).sum();
        if k == 0 {
            return Ok(());
        }
        let m = self.row;
        let idx = self.index()?;
        let rp = pe - start;
        let sample = at.samples_of(start, pe)?;
        let src = match source {
            Source::Own => sample.shallow_clone(),
            Source::Rows { tensor, .. } => tensor.f_narrow(0, start, rp).ctx(CTX)?,
        };
        let block = at.blocks_of(start, pe)?;
        let list = if self.mask_rows > 1 { sample.f_mul_scalar(self.blocks).and_then(|s| s.f_add(&block)).ctx(CTX)? } else { block };
        let (elem, row_of) = pairs(&idx, &list, rp, k, c.x.device())?;
        let elem = match &c.to_storage {
            Some(map) => map.f_index_select(0, &elem).ctx(CTX)?,
            None => elem,
        };
        let dst = row_of.f_mul_scalar(m).and_then(|d| d.f_add(&elem)).ctx(CTX)?;
        let at = |rows_src: &Tensor| {
            rows_src.f_index_select(0, &row_of).and_then(|s| s.f_mul_scalar(m)).and_then(|s| s.f_add(&elem)).ctx(CTX)
        };
        let vals = c.vs.f_take(&at(&src)?).ctx(CTX)?;
        let _ = b.data.f_view([-1]).and_then(|mut d| d.f_put_(&dst, &vals, false)).ctx(CTX)?;
        b.restore = Some(Undo::Tensors(dst, at(&sample)?));
        Ok(())
    }
}

/// The `k` (row, element) pairs of the `rp` perturbed rows whose lists are `list`: logical
/// positions within the row, and the row (within the chunk) of each pair.
fn pairs(idx: &IndexTensors, list: &Tensor, rp: i64, k: i64, device: Device) -> Result<(Tensor, Tensor)> {
    match &idx.padded {
        Some(padded) => {
            // [rp, P] positions, flattened row by row.
            let elem = padded.f_index_select(0, list).ctx(CTX)?;
            let p = elem.size()[1];
            let row_of =
                Tensor::f_arange(rp, (Kind::Int64, device)).and_then(|r| r.f_repeat_interleave_self_int(p, Some(0), None)).ctx(CTX)?;
            Ok((elem.f_reshape([-1]).ctx(CTX)?, row_of))
        }
        None => {
            let cnt = idx.count.f_index_select(0, list).ctx(CTX)?;
            let first = idx.start.f_index_select(0, list).ctx(CTX)?;
            let row_of = Tensor::f_repeat_interleave(&cnt, k).ctx(CTX)?;
            let row_begin = cnt.f_cumsum(0, Kind::Int64).and_then(|c| c.f_sub(&cnt)).ctx(CTX)?;
            let rank =
                Tensor::f_arange(k, (Kind::Int64, device)).and_then(|a| a.f_sub(&row_begin.f_index_select(0, &row_of)?)).ctx(CTX)?;
            let elem =
                first.f_index_select(0, &row_of).and_then(|f| f.f_add(&rank)).and_then(|i| idx.pos.f_index_select(0, &i)).ctx(CTX)?;
            Ok((elem, row_of))
        }
    }
}

/// Step 3 of [`Positions::build`]: the first `rows` rows of the buffer `data` (storage order of
/// `layout`) as `[rows, ...]` (the rows of `x`) in logical dimension order.
fn chunk_view(data: &Tensor, x: &Tensor, rows: i64, layout: Layout) -> Result<Tensor> {
    let mut shape = x.size();
    shape[0] = rows;
    let view = data.f_narrow(0, 0, rows).ctx(CTX)?;
    match layout {
        Layout::Contiguous => view.f_reshape(&shape).ctx(CTX),
        Layout::ChannelsLast => {
            let (to, back) = channels_last_order(shape.len());
            let stored: Vec<i64> = to.iter().map(|&d| shape[d as usize]).collect();
            view.f_reshape(&stored).and_then(|v| v.f_permute(&back)).ctx(CTX)
        }
    }
}
