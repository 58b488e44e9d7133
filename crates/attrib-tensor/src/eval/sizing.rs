//! Chunk sizes: the tail rule ([`chunk_end`], [`longest_chunk`]), what the chunk loop knows about
//! one row of a batch, and rows per chunk from the memory budget, with or without a probe.

use super::layout::image_like;
use super::{Evaluator, Expanded};
use crate::memory::{chunk_rows_for, default_budget, default_host_budget, PeakProbe, CPU_MAX_ROWS, FLOOR_FACTOR, NO_PROBE_FACTOR};
use attrib_core::{AttribError, Result};
use tch::Device;

/// A remainder of at most this share of a chunk joins the chunk before it, when the joined chunk
/// stays within the caller's `max_batch` (if set); see [`chunk_end`].
pub const TAIL_SHARE: usize = 8;

/// Where the chunk loop ends a chunk of `len` rows that starts at row `start` of a batch of
/// `total` rows: at `start + len`, or at `total` when `join_tail` and the rows left after it are
/// at most `len / TAIL_SHARE` and the joined chunk stays within `cap` (the caller's
/// [`BatchOptions::max_batch`], a hard limit on the rows of a model call). A short tail then
/// costs no model call of its own. The one tail rule of the evaluator.
///
/// [`BatchOptions::max_batch`]: attrib_core::BatchOptions::max_batch
pub fn chunk_end(start: i64, len: usize, total: i64, join_tail: bool, cap: Option<usize>) -> i64 {
    let end = start.saturating_add(i64::try_from(len).unwrap_or(i64::MAX)).min(total);
    let tail = total - end;
    let within_cap = cap.map_or(true, |c| total - start <= i64::try_from(c).unwrap_or(i64::MAX));
    if join_tail && tail > 0 && tail <= (len / TAIL_SHARE) as i64 && within_cap {
        total
    } else {
        end
    }
}

/// The longest chunk the chunk loop hands out when its chunks are `rows` long: `rows` plus a
/// joined tail ([`chunk_end`]), never more than `cap` (unless `rows` itself is). Builders that
/// keep a buffer from chunk to chunk size it from this.
pub fn longest_chunk(rows: usize, cap: Option<usize>) -> usize {
    let joined = rows.saturating_add(rows / TAIL_SHARE);
    match cap {
        Some(c) => joined.min(c.max(rows)),
        None => joined,
    }
}

/// What the chunk loop needs to know about one row of a batch: each input's shape and dtype,
/// whether any is image-like, and the bytes of the row's inputs (a floor on its working memory
/// is [`FLOOR_FACTOR`] times that, with gradients twice).
pub(super) struct RowInfo {
    pub(super) shapes: Vec<(Vec<i64>, tch::Kind)>,
    pub(super) image_like: bool,
    pub(super) bytes: u64,
}

/// The [`RowInfo`] of `batch`, from its declared row shapes ([`Expanded::rows_like`]) or else
/// built from its first row, once per chunk loop.
pub(super) fn row_info<'c>(cache: &'c mut Option<RowInfo>, batch: &Expanded) -> Result<&'c RowInfo> {
    if cache.is_none() {
        let shapes: Vec<(Vec<i64>, tch::Kind)> = match &batch.row {
            Some(row) => row.clone(),
            None => batch.rows(0, 1)?.iter().map(|t| (t.size(), t.kind())).collect(),
        };
        *cache = Some(RowInfo {
            image_like: shapes.iter().any(|(size, kind)| image_like(size, *kind)),
            bytes: shapes.iter().map(|(size, kind)| size.iter().product::<i64>().max(0) as u64 * kind.elt_size_in_bytes() as u64).sum(),
            shapes,
        });
    }
    cache.as_ref().ok_or_else(|| AttribError::Internal("row shapes were not recorded".into()))
}

impl<'m> Evaluator<'m> {
    /// Rows per chunk after a probe chunk of `probe_rows` rows: what the memory budget allows,
    /// and on the CPU also what keeps a chunk's working set near the cache
    /// ([`chunk_rows_for`]). Not clamped to this batch, so that the size carries over to later,
    /// larger batches of the same call.
    pub(super) fn size_from_probe(&self, row: &RowInfo, probe_rows: i64, probe: Option<PeakProbe>, with_grad: bool) -> usize {
        let floor = row.bytes * FLOOR_FACTOR * if with_grad { 2 } else { 1 };
        let measured = probe.and_then(PeakProbe::finish).map(|b| b / probe_rows.max(1) as u64);
        let per_row = measured.unwrap_or(0).max(floor);
        // On CUDA: a share of the device's free memory (see `default_budget`), and the
        // out-of-memory back-off.
        let budget = self.options.memory_budget.unwrap_or_else(|| default_budget(self.device));
        chunk_rows_for(budget, per_row, self.device == Device::Cpu)
    }

    /// On the CPU, when even a pessimistic working memory per row ([`NO_PROBE_FACTOR`] times
    /// the row's inputs, twice that with gradients) fits the budget at the largest automatic
    /// chunk size, that chunk size without a probe (a probe is a model call of two rows, a
    /// noticeable share of small jobs). `None`: probe.
    pub(super) fn size_without_probe(&self, row: &RowInfo, with_grad: bool) -> Option<usize> {
        if self.device != Device::Cpu || self.options.memory_budget.is_some() {
            return None;
        }
        let pessimistic = row.bytes.saturating_mul(NO_PROBE_FACTOR * if with_grad { 2 } else { 1 });
        let rows = chunk_rows_for(default_host_budget(), pessimistic, true);
        (rows >= CPU_MAX_ROWS).then_some(rows)
    }
}
