//! How a chunk runs ([`Variant`]: layout, inference copy), the variants worth timing for a batch,
//! and the trial that chooses among them.

use super::sizing::RowInfo;
use super::{Evaluator, Layout};
use crate::decisions::VariantKey;
use attrib_core::{MemoryFormat, Model};
use tch::Device;

/// How a chunk runs: the layout of its image-like inputs, and whether the model's
/// inference-only copy ([`Model::inference_model`]) runs it instead of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Memory layout of the image-like inputs.
    pub layout: Layout,
    /// Run by the model's inference-only copy (forward-only work).
    pub inference: bool,
}

impl Variant {
    /// The model itself on contiguous inputs: what runs unless timing shows better.
    pub const PLAIN: Variant = Variant { layout: Layout::Contiguous, inference: false };

    /// Rows per chunk of this variant for a chunk size of `rows`: the inference copy runs
    /// [`INFERENCE_ROWS_DIVISOR`] times smaller chunks.
    pub fn chunk_rows(self, rows: usize) -> usize {
        if self.inference {
            (rows / INFERENCE_ROWS_DIVISOR).max(1)
        } else {
            rows
        }
    }
}

/// The inference copy's chunks are this many times smaller than the chunk size. Its oneDNN
/// kernels keep their own blocked activations, and it ran fastest with smaller chunks than the
/// plain model: feature ablation on the medium CNN of `benches/side_by_side_ablation.py` (1040
/// rows), best of 7 in four interleaved rounds, took 13.4–14.5 ms with chunks of 96 or 128 rows
/// against 15.2–16.6 ms with 256 (the plain model: flat between 64 and 520 rows; the small CNN,
/// which the plain model serves, is fastest at 256).
pub const INFERENCE_ROWS_DIVISOR: usize = 2;

/// An alternative to [`Variant::PLAIN`] is kept only when its time per row is below this share
/// of the plain one.
const CLEAR_WIN: f64 = 0.85;

/// A trial under way: rows per trial chunk, rounds planned, seconds per row of each trial chunk
/// so far (chunk `i` ran candidate `i % candidates`).
#[derive(Debug)]
pub(super) struct Trial {
    pub(super) rows: usize,
    pub(super) rounds: usize,
    pub(super) times: Vec<f64>,
}

impl Trial {
    /// Three rounds of trial chunks of the chunk size, or smaller where the batch is short (the
    /// faster variant depends on the chunk size: time about the size in use), else two; no
    /// trial when even two rounds need chunks below half the chunk size.
    pub(super) fn plan(candidates: usize, left: i64, rows: usize) -> Option<Trial> {
        [3usize, 2].into_iter().find_map(|rounds| {
            let fit = (left / (rounds * candidates) as i64).max(0) as usize;
            (fit >= rows.div_ceil(2)).then(|| Trial { rows: fit.min(rows), rounds, times: Vec::new() })
        })
    }

    /// The fastest candidate by its best chunk after the first round; an alternative to the
    /// plain variant only if clearly faster.
    pub(super) fn winner(&self, candidates: &[Variant]) -> Variant {
        let k = candidates.len();
        let best = |c: usize| self.times.iter().enumerate().skip(k).filter(|(i, _)| i % k == c).map(|(_, t)| *t).fold(f64::INFINITY, f64::min);
        let plain = candidates.iter().position(|&v| v == Variant::PLAIN).map(best);
        let (fastest, time) = (0..k).map(|c| (c, best(c))).fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        match plain {
            Some(p) if candidates[fastest] != Variant::PLAIN && time >= CLEAR_WIN * p => Variant::PLAIN,
            _ => candidates[fastest],
        }
    }
}

impl<'m> Evaluator<'m> {
    /// The model that runs a chunk of variant `v`.
    pub(super) fn runner(&self, v: Variant) -> &dyn Model {
        if v.inference {
            self.model.inference_model().unwrap_or(self.model)
        } else {
            self.model
        }
    }

    /// Whether a failing chunk of `v` may be retried another way: only variants the evaluator
    /// chose itself, not ones the options force.
    pub(super) fn may_fall_back(&self, v: Variant) -> bool {
        v.inference || self.options.memory_format == MemoryFormat::Auto
    }

    /// The variants worth timing for this batch: the layouts the options allow (both only for
    /// image-like inputs on the CPU under [`MemoryFormat::Auto`]), and, for forward-only work
    /// without extra forward arguments on the CPU, the model's inference-only copy when the
    /// options allow it and the batch is large enough to repay making it (four chunks or more).
    pub(super) fn candidates(&self, row: &RowInfo, with_grad: bool, no_extra: bool, left: i64, rows: usize) -> Vec<Variant> {
        let cpu = self.device == Device::Cpu;
        let image_like = row.image_like;
        let layouts: &[Layout] = match self.options.memory_format {
            MemoryFormat::Contiguous => &[Layout::Contiguous],
            MemoryFormat::ChannelsLast => &[Layout::ChannelsLast],
            MemoryFormat::Auto if cpu && image_like => &[Layout::ChannelsLast, Layout::Contiguous],
            MemoryFormat::Auto => &[Layout::Contiguous],
        };
        let mut out: Vec<Variant> = layouts.iter().map(|&layout| Variant { layout, inference: false }).collect();
        // A copy made already (by a warm-up or an earlier call) costs nothing more to use.
        let worth_it = left >= 4 * rows as i64 || self.model.inference_model_ready();
        // The frozen copy's prepacked float32 kernels are not for autocast regions.
        let full_precision = self.options.precision == attrib_core::Precision::Fp32;
        if cpu && !with_grad && no_extra && worth_it && full_precision && self.options.inference_copy && self.model.inference_model().is_some() {
            out.push(Variant { layout: Layout::Contiguous, inference: true });
        }
        out
    }

    /// The memo key of this batch's variant, or `None` off the CPU.
    pub(super) fn variant_key(&self, row: &RowInfo, with_grad: bool) -> Option<VariantKey> {
        if self.device != Device::Cpu {
            return None;
        }
        Some(VariantKey::new(self.model, with_grad, &self.options, row.shapes.clone()))
    }
}
