//! The chunk loop shared by every evaluation ([`Evaluator::run_chunks`]).

use super::sizing::{chunk_end, row_info, RowInfo};
use super::variant::Trial;
use super::{Evaluator, Expanded, Variant};
use crate::decisions::{self, VariantKey};
use crate::memory::{PeakProbe, PROBE_ROWS};
use attrib_core::{AttribError, Result};
use std::cell::Cell;
use std::ops::Range;
use std::time::Instant;

impl<'m> Evaluator<'m> {
    /// The chunk loop shared by every evaluation: probe, size, choose how chunks run, back off
    /// on out-of-memory.
    ///
    /// Trial (on the CPU, where there is a choice; see [`Variant`]): once the chunk size is
    /// known, the candidate variants take turns over two or three rounds of chunks ([`Trial`]
    /// rules); each candidate's first chunk pays its one-time costs (kernel set-up for a new
    /// shape, freezing the model), its best later chunk is compared, and the fastest — an
    /// alternative to the plain model on contiguous inputs only if clearly faster
    /// (`CLEAR_WIN` in `variant.rs`) — serves the rest of the call and later calls on the same model and
    /// input shape ([`crate::decisions`]: also in later processes when the program keeps
    /// decisions on disk). Trial chunks are part of the work, but their results are held back
    /// until the winner is known and those a loser computed are computed again in the winner, so
    /// that every result of the call comes from one variant. When a candidate's chunk
    /// fails, the chunk runs again the plain way: if that works, the candidate is dropped (a
    /// model that rejects channels-last inputs, a graph that cannot be frozen); if not, the
    /// error is returned and no decision changes.
    pub(super) fn run_chunks<T>(
        &self,
        batch: &Expanded,
        with_grad: bool,
        no_extra: bool,
        mut work: impl FnMut(Range<i64>, Variant) -> Result<T>,
        mut sink: impl FnMut(Range<i64>, T) -> Result<()>,
    ) -> Result<()> {
        let total = batch.total();
        if total <= 0 {
            return Ok(());
        }
        let mut state = ChunkLoop::new(self, batch, with_grad, no_extra)?;
        // Results of the chunks since a trial began, held back until the winner is known (see
        // `flush_pending`), so that no result depends on the trial.
        let mut pending: Vec<(Range<i64>, Variant, T)> = Vec::new();
        while state.start < total {
            let start = state.start;
            let (variant, timed, len) = state.next_chunk()?;
            let len = variant.chunk_rows(len);
            // A short remainder joins this chunk instead of costing a model call of its own,
            // unless that would break the caller's `max_batch`.
            let end = chunk_end(start, len, total, state.sized && !timed, self.options.max_batch);
            let probe = if state.sized { None } else { PeakProbe::start_on(self.device) };
            let clock = Instant::now();
            let value = match work(start..end, variant) {
                Ok(value) => value,
                Err(e) if e.is_out_of_memory() => {
                    state.back_off(e, (end - start) as usize)?;
                    continue;
                }
                Err(_) if variant != Variant::PLAIN && self.may_fall_back(variant) => {
                    state.suspect = Some(variant);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !timed {
                state.ran.push(decisions::ChunkSeen { variant, rows: (end - start) as usize, ms: clock.elapsed().as_secs_f64() * 1e3 });
            }
            if timed || !pending.is_empty() {
                pending.push((start..end, variant, value));
            } else {
                sink(start..end, value)?;
            }
            state.drop_suspect()?;
            if timed {
                state.time_trial_chunk(clock.elapsed().as_secs_f64() / (end - start) as f64)?;
            }
            if !state.sized {
                state.size_after_probe(end - start, probe)?;
            }
            if let Some(winner) = state.chosen.get() {
                flush_pending(&mut pending, Some(winner), &mut work, &mut sink)?;
            }
            state.start = end;
        }
        flush_pending(&mut pending, state.chosen.get(), &mut work, &mut sink)?;
        state.note_chunks()
    }
}

/// The state of one run of the chunk loop ([`Evaluator::run_chunks`]) over `batch`, apart from
/// the held-back results: where the next chunk starts, its size, and the variant trial.
struct ChunkLoop<'e> {
    eval: &'e Evaluator<'e>,
    batch: &'e Expanded<'e>,
    with_grad: bool,
    no_extra: bool,
    total: i64,
    /// The first row of the next chunk.
    start: i64,
    /// Rows per chunk learned and the variant chosen, for this kind of work (forward-only or
    /// gradients): the evaluator's cells.
    learned: &'e Cell<Option<usize>>,
    chosen: &'e Cell<Option<Variant>>,
    one_row: Option<RowInfo>,
    /// Rows per chunk, and whether they are known (from the probe, the budget or a back-off).
    rows: usize,
    sized: bool,
    // The candidates still in the race (known once the chunk size is), the memo key of this
    // batch, and the trial under way.
    candidates: Option<Vec<Variant>>,
    key: Option<VariantKey>,
    trial: Option<Trial>,
    // A variant whose chunk failed: the same rows run the plain way next, and only if that
    // works is the variant dropped (otherwise the error is the caller's, e.g. a wrong input
    // shape, and is returned without touching any decision).
    suspect: Option<Variant>,
    // Chunks run outside the trial (their shapes are noted at the end).
    ran: Vec<decisions::ChunkSeen>,
}

impl<'e> ChunkLoop<'e> {
    /// The loop's state before its first chunk: the chunk size learned so far, or one chosen
    /// without a probe when the budget allows ([`Evaluator::size_without_probe`]).
    fn new(eval: &'e Evaluator<'e>, batch: &'e Expanded<'e>, with_grad: bool, no_extra: bool) -> Result<ChunkLoop<'e>> {
        let (learned, chosen) =
            if with_grad { (&eval.learned_gradient, &eval.variant_gradient) } else { (&eval.learned_forward, &eval.variant_forward) };
        let mut one_row: Option<RowInfo> = None;
        if learned.get().is_none() {
            if let Some(r) = eval.size_without_probe(row_info(&mut one_row, batch)?, with_grad) {
                learned.set(Some(r));
            }
        }
        let rows = learned.get().unwrap_or(PROBE_ROWS);
        let sized = learned.get().is_some();
        Ok(ChunkLoop {
            eval,
            batch,
            with_grad,
            no_extra,
            total: batch.total(),
            start: 0,
            learned,
            chosen,
            one_row,
            rows,
            sized,
            candidates: None,
            key: None,
            trial: None,
            suspect: None,
            ran: Vec::new(),
        })
    }

    /// How the next chunk runs: its variant, whether it is a timed trial chunk, and its rows
    /// before [`Variant::chunk_rows`].
    fn next_chunk(&mut self) -> Result<(Variant, bool, usize)> {
        let rows = self.rows;
        Ok(match self.chosen.get() {
            _ if self.suspect.is_some() => (Variant::PLAIN, false, rows),
            Some(v) => (v, false, rows),
            None if !self.sized => (Variant::PLAIN, false, rows),
            None => {
                if self.candidates.is_none() {
                    self.list_candidates()?;
                }
                let cands = self.candidates.as_ref().ok_or_else(|| AttribError::Internal("chunk variants were not listed".into()))?;
                if self.chosen.get().is_none() && cands.len() <= 1 {
                    self.chosen.set(Some(cands.first().copied().unwrap_or(Variant::PLAIN)));
                }
                if self.chosen.get().is_none() && self.trial.is_none() {
                    self.trial = Trial::plan(cands.len(), self.total - self.start, rows);
                }
                match (self.chosen.get(), &self.trial) {
                    (Some(v), _) => (v, false, rows),
                    (None, Some(t)) => (cands[t.times.len() % cands.len()], true, t.rows),
                    (None, None) => (Variant::PLAIN, false, rows),
                }
            }
        })
    }

    /// Once the chunk size is known: the memo key of this batch (taking a variant decided
    /// earlier for it) and the candidate variants for the rest of the batch.
    fn list_candidates(&mut self) -> Result<()> {
        let k = self.eval.variant_key(row_info(&mut self.one_row, self.batch)?, self.with_grad);
        if let Some(v) = k.as_ref().and_then(decisions::get) {
            self.chosen.set(Some(v));
        }
        self.key = k;
        self.candidates =
            Some(self.eval.candidates(row_info(&mut self.one_row, self.batch)?, self.with_grad, self.no_extra, self.total - self.start, self.rows));
        Ok(())
    }

    /// A chunk of `tried` rows ran out of memory (`e`): halve the chunk size and end any trial;
    /// a chunk of one row is an error.
    fn back_off(&mut self, e: AttribError, tried: usize) -> Result<()> {
        if tried <= 1 {
            return Err(AttribError::OutOfMemory {
                device: crate::device::device_name(self.eval.device),
                rows: 1,
                reason: e.to_string(),
            });
        }
        self.rows = tried / 2;
        self.learned.set(Some(self.rows));
        self.sized = true;
        self.trial = None;
        Ok(())
    }

    /// After a chunk that ran the plain way in place of a suspect variant.
    fn drop_suspect(&mut self) -> Result<()> {
        if let Some(failed) = self.suspect.take() {
            // The plain way worked where `failed` did not (e.g. a model that calls `view` on
            // channels-last inputs): drop it.
            let cands = self.candidates.take().unwrap_or_else(|| vec![Variant::PLAIN]);
            let left: Vec<Variant> = cands.into_iter().filter(|&c| c != failed).collect();
            if self.chosen.get() == Some(failed) || left.len() <= 1 {
                let v = left.first().copied().unwrap_or(Variant::PLAIN);
                self.chosen.set(Some(v));
                let k = match self.key.take() {
                    Some(k) => Some(k),
                    None => self.eval.variant_key(row_info(&mut self.one_row, self.batch)?, self.with_grad),
                };
                if let Some(k) = k {
                    decisions::put(k, v);
                }
            }
            self.candidates = Some(left);
            self.trial = None;
        }
        Ok(())
    }

    /// Record the time per row of a trial chunk; after the last round, the winner is chosen and
    /// remembered.
    fn time_trial_chunk(&mut self, per_row: f64) -> Result<()> {
        let cands = self.candidates.as_ref().ok_or_else(|| AttribError::Internal("timed a chunk without variants".into()))?;
        if let Some(t) = self.trial.as_mut() {
            t.times.push(per_row);
            if t.times.len() == t.rounds * cands.len() {
                let v = t.winner(cands);
                self.chosen.set(Some(v));
                self.trial = None;
                if let Some(k) = self.key.take() {
                    decisions::put(k, v);
                }
            }
        }
        Ok(())
    }

    /// Size the chunks from the probe of the first chunk (`probe_rows` rows).
    fn size_after_probe(&mut self, probe_rows: i64, probe: Option<PeakProbe>) -> Result<()> {
        self.rows = self.eval.size_from_probe(row_info(&mut self.one_row, self.batch)?, probe_rows, probe, self.with_grad);
        self.learned.set(Some(self.rows));
        self.sized = true;
        Ok(())
    }

    /// After the last chunk.
    fn note_chunks(&mut self) -> Result<()> {
        if !self.ran.is_empty() {
            // The chunk shapes of this call, so that a model warm-up in a later call or process
            // can rehearse them (`crate::warm`). CPU only (no key elsewhere).
            if let Some(key) = self.eval.variant_key(row_info(&mut self.one_row, self.batch)?, self.with_grad) {
                decisions::note_chunks(&key, &self.ran);
            }
        }
        Ok(())
    }
}

/// Hand the held-back chunk results to `sink`, in row order: a chunk computed in a variant other
/// than `winner` is computed again in `winner` first (if that runs out of memory, its first
/// result is kept: same function, other rounding). Without a winner (the batch ended before a
/// trial could decide) the results go as they are.
fn flush_pending<T>(
    pending: &mut Vec<(Range<i64>, Variant, T)>,
    winner: Option<Variant>,
    work: &mut impl FnMut(Range<i64>, Variant) -> Result<T>,
    sink: &mut impl FnMut(Range<i64>, T) -> Result<()>,
) -> Result<()> {
    for (range, variant, value) in pending.drain(..) {
        let value = match winner {
            Some(w) if w != variant => match work(range.clone(), w) {
                Ok(again) => again,
                Err(e) if e.is_out_of_memory() => value,
                Err(e) => return Err(e),
            },
            _ => value,
        };
        sink(range, value)?;
    }
    Ok(())
}
