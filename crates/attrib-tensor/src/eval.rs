//! Chunked evaluation of a model on an expanded batch, and chunked gradients of the target
//! outputs with respect to the inputs.
//!
//! Methods describe their fan-out as an [`Expanded`] batch: `total` logical rows built on demand,
//! laid out in blocks of the `n` original rows, so that logical row `r` belongs to original
//! sample `r % n` (Captum's "repeat" layout). Targets and tensor forward arguments follow the
//! rows they belong to. The [`Evaluator`] cuts the rows into chunks sized from the memory budget
//! (see [`crate::memory`]), halves a chunk that runs out of memory, and hands each chunk's result
//! to the caller, so methods can reduce as they go or collect everything.
//!
//! Inside the loop nothing waits on the device: no `.item()`, no host copies; range checks
//! happen on the host against output shapes.

use crate::memory::{chunk_rows_for, default_budget, default_host_budget, PeakProbe, CPU_MAX_ROWS, FLOOR_FACTOR, NO_PROBE_FACTOR, PROBE_ROWS};
use crate::decisions::{self, VariantKey};
use crate::rows::ChunkRows;
use attrib_core::{AttribError, Autocast, BatchOptions, ForwardArg, Inputs, MemoryFormat, Model, ResolvedTarget, Result, Target, TorchResultExt};
use std::cell::Cell;
use std::ops::Range;
use std::time::Instant;
use tch::{Device, Tensor};

type BuildFn<'a> = Box<dyn Fn(i64, i64, Layout) -> Result<Vec<Tensor>> + 'a>;

/// A logical batch of `total` rows over `n` original samples, built chunk by chunk.
///
/// Row `r` belongs to sample `r % n` (see [`crate::rows`]). `build(start, end)` returns the input tensors of rows
/// `start..end` (one tensor per model input, each with `end - start` rows).
pub struct Expanded<'a> {
    n: i64,
    total: i64,
    build: BuildFn<'a>,
    /// Shape (with one row) and dtype of each input of a row, when known without building one.
    row: Option<Vec<(Vec<i64>, tch::Kind)>>,
}

impl<'a> Expanded<'a> {
    /// A batch of `total` rows (a multiple of `n` is usual but not required) built by `build`.
    pub fn new(n: i64, total: i64, build: impl Fn(i64, i64) -> Result<Vec<Tensor>> + 'a) -> Expanded<'a> {
        Expanded { n, total, build: Box::new(move |s, e, _| build(s, e)), row: None }
    }

    /// A batch whose builder writes rows directly in the layout the evaluator asks for
    /// (`build(start, end, layout)`), saving the copy that [`to_layout`] would make. Tensors
    /// returned in another layout are still converted.
    pub fn with_layout(n: i64, total: i64, build: impl Fn(i64, i64, Layout) -> Result<Vec<Tensor>> + 'a) -> Expanded<'a> {
        Expanded { n, total, build: Box::new(build), row: None }
    }

    /// Declare that every row has the shapes and dtypes of a row of `inputs`, so that the
    /// evaluator sizes chunks without building a row first (for builders with state, such as a
    /// reused buffer, building a stray one-row chunk also costs the next chunk its reuse).
    pub fn rows_like(mut self, inputs: &[Tensor]) -> Expanded<'a> {
        self.row = Some(
            inputs
                .iter()
                .map(|t| {
                    let mut size = t.size();
                    if let Some(first) = size.first_mut() {
                        *first = 1;
                    }
                    (size, t.kind())
                })
                .collect(),
        );
        self
    }

    /// The original inputs themselves (`total = n`).
    pub fn identity(inputs: &'a [Tensor]) -> Expanded<'a> {
        let n = batch_rows(inputs);
        Expanded::new(n, n, move |s, e| {
            inputs.iter().map(|x| x.f_narrow(0, s, e - s).ctx("slicing inputs")).collect()
        })
        .rows_like(inputs)
    }

    /// `blocks` copies of the inputs, one after another (row `b * n + i` is input row `i`).
    pub fn repeat(inputs: &'a [Tensor], blocks: i64) -> Expanded<'a> {
        let n = batch_rows(inputs);
        let device = inputs.first().map_or(Device::Cpu, Tensor::device);
        Expanded::new(n, n * blocks, move |s, e| {
            let idx = ChunkRows::new(s, e, n, device).samples()?;
            inputs.iter().map(|x| x.f_index_select(0, &idx).ctx("repeating inputs")).collect()
        })
        .rows_like(inputs)
    }

    /// Number of original samples.
    pub fn n(&self) -> i64 {
        self.n
    }

    /// Number of logical rows.
    pub fn total(&self) -> i64 {
        self.total
    }

    /// The input tensors of rows `start..end`.
    pub fn rows(&self, start: i64, end: i64) -> Result<Vec<Tensor>> {
        (self.build)(start, end, Layout::Contiguous)
    }

    /// The input tensors of rows `start..end` in `layout` (image-like inputs only).
    pub fn rows_in(&self, start: i64, end: i64, layout: Layout) -> Result<Vec<Tensor>> {
        to_layout((self.build)(start, end, layout)?, layout)
    }

    /// Rows `start..end` of this batch as a [`ChunkRows`] (sample and block of each row), index
    /// tensors on `device`.
    pub fn chunk(&self, start: i64, end: i64, device: Device) -> ChunkRows {
        ChunkRows::new(start, end, self.n, device)
    }
}

/// Rows of the first input (0 without inputs: an empty batch).
fn batch_rows(inputs: &[Tensor]) -> i64 {
    inputs.first().and_then(|t| t.size().first().copied()).unwrap_or(0)
}

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

/// Gradients of the target outputs of every row of an expanded batch.
#[derive(Debug)]
pub struct Gradients {
    /// One tensor per model input, `[total, ...]`.
    pub grads: Vec<Tensor>,
    /// The target output of every row, `[total]`.
    pub outputs: Tensor,
}

/// The shared batched evaluator. Create one per attribution call.
pub struct Evaluator<'m> {
    model: &'m dyn Model,
    options: BatchOptions,
    device: Device,
    /// Rows per chunk learned so far for forward-only work (from the probe, then from
    /// out-of-memory back-off); gradients cost more per row and are sized separately.
    learned_forward: Cell<Option<usize>>,
    learned_gradient: Cell<Option<usize>>,
    /// How forward-only and gradient chunks run once decided (`None`: not yet).
    variant_forward: Cell<Option<Variant>>,
    variant_gradient: Cell<Option<Variant>>,
}

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

/// The memory layout of the image-like inputs of one chunk (see [`MemoryFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As built: row-major contiguous.
    Contiguous,
    /// Channels last for every 4-D and 5-D floating-point input with more than one channel.
    ChannelsLast,
}

/// A remainder of at most this share of a chunk joins the chunk before it, when the joined chunk
/// stays within the caller's `max_batch` (if set); see [`chunk_end`].
pub const TAIL_SHARE: usize = 8;

/// Where the chunk loop ends a chunk of `len` rows that starts at row `start` of a batch of
/// `total` rows: at `start + len`, or at `total` when `join_tail` and the rows left after it are
/// at most `len / TAIL_SHARE` and the joined chunk stays within `cap` (the caller's
/// [`BatchOptions::max_batch`], a hard limit on the rows of a model call). A short tail then
/// costs no model call of its own. The one tail rule of the evaluator.
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

/// An alternative to [`Variant::PLAIN`] is kept only when its time per row is below this share
/// of the plain one.
const CLEAR_WIN: f64 = 0.85;

/// A trial under way: rows per trial chunk, rounds planned, seconds per row of each trial chunk
/// so far (chunk `i` ran candidate `i % candidates`).
#[derive(Debug)]
struct Trial {
    rows: usize,
    rounds: usize,
    times: Vec<f64>,
}

impl Trial {
    /// Three rounds of trial chunks of the chunk size, or smaller where the batch is short (the
    /// faster variant depends on the chunk size: time about the size in use), else two; no
    /// trial when even two rounds need chunks below half the chunk size.
    fn plan(candidates: usize, left: i64, rows: usize) -> Option<Trial> {
        [3usize, 2].into_iter().find_map(|rounds| {
            let fit = (left / (rounds * candidates) as i64).max(0) as usize;
            (fit >= rows.div_ceil(2)).then(|| Trial { rows: fit.min(rows), rounds, times: Vec::new() })
        })
    }

    /// The fastest candidate by its best chunk after the first round; an alternative to the
    /// plain variant only if clearly faster.
    fn winner(&self, candidates: &[Variant]) -> Variant {
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

/// Whether a tensor has an image-like shape that a channels-last layout can change.
pub fn channels_last_applies(x: &Tensor) -> bool {
    image_like(&x.size(), x.kind())
}

/// [`channels_last_applies`] from a shape and dtype: 4-D or 5-D, more than one channel,
/// floating point.
fn image_like(size: &[i64], kind: tch::Kind) -> bool {
    matches!(size.len(), 4 | 5)
        && size[1] > 1
        && matches!(kind, tch::Kind::Half | tch::Kind::Float | tch::Kind::Double | tch::Kind::BFloat16)
}

/// For a rank-`dim` tensor in channels-last layout: the order in which its dimensions are
/// stored (`[0, 2, 3, 1]` for 4-D), and the permutation back to the logical order.
pub fn channels_last_order(dim: usize) -> (Vec<i64>, Vec<i64>) {
    let d = dim as i64;
    let to: Vec<i64> = std::iter::once(0).chain(2..d).chain(std::iter::once(1)).collect();
    let back: Vec<i64> = std::iter::once(0).chain(std::iter::once(d - 1)).chain(1..d - 1).collect();
    (to, back)
}

/// Whether `x` is stored channels-last exactly as [`to_layout`] makes it.
fn is_channels_last(x: &Tensor) -> bool {
    let (to, _) = channels_last_order(x.dim());
    let size = x.size();
    let mut expected = vec![0i64; size.len()];
    let mut acc = 1i64;
    for &d in to.iter().rev() {
        expected[d as usize] = acc;
        acc *= size[d as usize];
    }
    x.stride() == expected
}

/// The inputs of a chunk in `layout` (a copy for the inputs it changes, the same tensors
/// otherwise). Shapes and values are unchanged; only strides differ.
pub fn to_layout(xs: Vec<Tensor>, layout: Layout) -> Result<Vec<Tensor>> {
    if layout == Layout::Contiguous {
        return Ok(xs);
    }
    xs.into_iter()
        .map(|x| {
            if !channels_last_applies(&x) || is_channels_last(&x) {
                return Ok(x);
            }
            let (to, back) = channels_last_order(x.dim());
            x.f_permute(&to).and_then(|t| t.f_contiguous()).and_then(|t| t.f_permute(&back)).ctx("converting inputs to channels-last")
        })
        .collect()
}

impl<'m> Evaluator<'m> {
    /// An evaluator for `model` with the given batching options.
    pub fn new(model: &'m dyn Model, options: BatchOptions) -> Result<Evaluator<'m>> {
        let options = options.check()?;
        Ok(Evaluator {
            model,
            options,
            device: model.device(),
            learned_forward: Cell::new(options.max_batch),
            learned_gradient: Cell::new(options.max_batch),
            variant_forward: Cell::new(None),
            variant_gradient: Cell::new(None),
        })
    }

    /// The model's device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The model.
    pub fn model(&self) -> &'m dyn Model {
        self.model
    }

    /// The longest chunk this evaluator hands a builder whose chunks are `rows` long (a short
    /// tail may join the last chunk; never beyond `max_batch`). See [`longest_chunk`].
    pub fn longest_chunk(&self, rows: usize) -> usize {
        longest_chunk(rows, self.options.max_batch)
    }

    /// Rows per gradient chunk in use after the probe (for metadata and tests).
    pub fn chunk_rows(&self) -> Option<usize> {
        self.learned_gradient.get()
    }

    /// Rows per forward-only chunk in use after the probe (for metadata and tests).
    pub fn forward_chunk_rows(&self) -> Option<usize> {
        self.learned_forward.get()
    }

    /// Layout of image-like inputs in use for forward-only work (`None` while undecided), for
    /// metadata and tests.
    pub fn forward_layout(&self) -> Option<Layout> {
        self.variant_forward.get().map(|v| v.layout)
    }

    /// How forward-only chunks run (`None` while undecided), for metadata and tests.
    pub fn forward_variant(&self) -> Option<Variant> {
        self.variant_forward.get()
    }

    /// Layout of image-like inputs in use for gradient work (`None` while undecided).
    pub fn gradient_layout(&self) -> Option<Layout> {
        self.variant_gradient.get().map(|v| v.layout)
    }

    /// The model that runs a chunk of variant `v`.
    /// One model call in the options' precision: inside an autocast region for bf16/fp16
    /// ([`attrib_core::precision`]), the output then converted back to the inputs' floating
    /// dtype (float32 unless the inputs are float64), so that every method accumulates in it.
    fn call(&self, runner: &dyn Model, xs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let region = Autocast::enter(self.device, self.options.precision)?;
        let out = runner.forward(xs, extra)?;
        drop(region);
        if region_kinds(out.kind()) {
            let kind = xs.iter().map(Tensor::kind).find(|k| matches!(k, tch::Kind::Float | tch::Kind::Double)).unwrap_or(tch::Kind::Float);
            out.f_to_kind(kind).ctx("converting reduced-precision outputs")
        } else {
            Ok(out)
        }
    }

    fn runner(&self, v: Variant) -> &dyn Model {
        if v.inference {
            self.model.inference_model().unwrap_or(self.model)
        } else {
            self.model
        }
    }

    /// Validate the inputs (shapes, dtype, NaN/inf), move them to the model's device and resolve
    /// the target (running the model once on the inputs for [`Target::Argmax`]).
    ///
    /// The target is checked against the model's output shape on every chunk, before anything
    /// else is done with it, so a wrong target or input shape costs at most one chunk (a separate
    /// one-row model call here cost a tenth of a small job).
    pub fn prepare(&self, inputs: &Inputs, target: &Target) -> Result<Prepared> {
        let n = inputs.validate()?;
        let device = self.device;
        let tensors: Vec<Tensor> = inputs
            .tensors()
            .iter()
            .map(|t| t.f_to_device(device).and_then(|t| t.f_detach()).ctx("moving inputs to the model's device"))
            .collect::<Result<_>>()?;
        let extra: Vec<ForwardArg> = inputs
            .extra()
            .iter()
            .map(|a| match a {
                ForwardArg::Tensor(t) => t.f_to_device(device).map(ForwardArg::Tensor).ctx("moving forward arguments"),
                other => Ok(other.shallow_clone()),
            })
            .collect::<Result<_>>()?;
        let resolved = target
            .resolve(n, device, || {
                let batch = Expanded::identity(&tensors);
                self.raw_outputs(&extra, &batch)
            })
            .map_err(|e| user_shapes(e, &tensors))?;
        Ok(Prepared { inputs: tensors, extra, n, target: resolved, device })
    }

    /// Full model outputs (no target selection) of every row of `batch`, without gradients.
    pub fn raw_outputs(&self, extra: &[ForwardArg], batch: &Expanded) -> Result<Tensor> {
        let mut parts = Vec::new();
        self.run_chunks(batch, false, extra.is_empty(), |range, v| {
            let xs = batch.rows_in(range.start, range.end, v.layout)?;
            let rows = batch.chunk(range.start, range.end, self.device).samples()?;
            let extra_rows = expand_extra(extra, &rows)?;
            let out = tch::no_grad(|| self.call(self.runner(v), &xs, &extra_rows))?;
            check_output_rows(&out, range.end - range.start)?;
            owned(out, &xs)
        }, |_, out| {
            parts.push(out);
            Ok(())
        })?;
        Tensor::f_cat(&parts, 0).ctx("gathering outputs")
    }

    /// Target outputs of every row of `batch`, without gradients, chunk by chunk:
    /// `sink(rows, outputs)` receives `[rows.len()]` target values.
    pub fn forward_each(
        &self,
        p: &Prepared,
        batch: &Expanded,
        mut sink: impl FnMut(Range<i64>, Tensor) -> Result<()>,
    ) -> Result<()> {
        self.run_chunks(batch, false, p.extra.is_empty(), |range, v| {
            let xs = batch.rows_in(range.start, range.end, v.layout)?;
            let rows = batch.chunk(range.start, range.end, self.device).samples()?;
            let extra_rows = expand_extra(&p.extra, &rows)?;
            let out = tch::no_grad(|| self.call(self.runner(v), &xs, &extra_rows)).map_err(|e| user_shapes(e, &p.inputs))?;
            check_chunk_output(p, &out, range.end - range.start)?;
            owned(p.target.select(&out, &rows)?, &xs)
        }, &mut sink)
    }

    /// Target outputs of every row of `batch`, `[total]`.
    pub fn forward(&self, p: &Prepared, batch: &Expanded) -> Result<Tensor> {
        let mut parts = Vec::new();
        self.forward_each(p, batch, |_, out| {
            parts.push(out);
            Ok(())
        })?;
        Tensor::f_cat(&parts, 0).ctx("gathering target outputs")
    }

    /// Gradients of the target output of every row of `batch` with respect to that row's inputs,
    /// chunk by chunk: `sink(rows, grads, outputs)` receives one `[rows.len(), ...]` gradient per
    /// input and the `[rows.len()]` target outputs.
    ///
    /// Rows are independent (the model is in evaluation mode), so the gradient of the sum of the
    /// target outputs of a chunk is, row by row, the gradient of each row's own output.
    pub fn gradients_each(
        &self,
        p: &Prepared,
        batch: &Expanded,
        mut sink: impl FnMut(Range<i64>, Vec<Tensor>, Tensor) -> Result<()>,
    ) -> Result<()> {
        self.run_chunks(batch, true, false, |range, v| {
            let xs = batch.rows_in(range.start, range.end, v.layout)?;
            let rows = batch.chunk(range.start, range.end, self.device).samples()?;
            let extra_rows = expand_extra(&p.extra, &rows)?;
            let (grads, sel) = tch::with_grad(|| -> Result<(Vec<Tensor>, Tensor)> {
                let leaves: Vec<Tensor> = xs
                    .iter()
                    .map(|x| x.f_detach().and_then(|x| x.f_set_requires_grad(true)))
                    .collect::<std::result::Result<_, _>>()
                    .ctx("preparing inputs for gradients")?;
                let out = self.call(self.model, &leaves, &extra_rows).map_err(|e| user_shapes(e, &p.inputs))?;
                check_chunk_output(p, &out, range.end - range.start)?;
                let sel = p.target.select(&out, &rows)?;
                if !sel.requires_grad() {
                    // The output does not depend on any input: all gradients are zero.
                    let zeros = leaves
                        .iter()
                        .map(|l| Tensor::f_zeros(l.size(), (l.kind(), l.device())).ctx("zero gradients"))
                        .collect::<Result<_>>()?;
                    return Ok((zeros, sel));
                }
                let total = sel.f_sum(sel.kind()).ctx("summing target outputs")?;
                let grads = Tensor::f_run_backward(&[total], &leaves, false, false).ctx("computing gradients")?;
                // Gradients come back in the layout of their inputs; hand them on contiguous.
                let grads = grads
                    .into_iter()
                    .zip(&leaves)
                    .map(|(g, l)| if g.defined() { g.f_contiguous() } else { l.f_zeros_like() })
                    .collect::<std::result::Result<_, _>>()
                    .ctx("collecting gradients")?;
                Ok((grads, sel.f_detach().ctx("detaching target outputs")?))
            })?;
            Ok((grads, owned(sel, &xs)?))
        }, |range, (grads, sel)| sink(range, grads, sel))
    }

    /// Gradients of the target outputs of every row of `batch`, collected.
    pub fn gradients(&self, p: &Prepared, batch: &Expanded) -> Result<Gradients> {
        let k = p.inputs.len();
        let mut parts: Vec<Vec<Tensor>> = (0..k).map(|_| Vec::new()).collect();
        let mut outs = Vec::new();
        self.gradients_each(p, batch, |_, grads, out| {
            for (slot, g) in parts.iter_mut().zip(grads) {
                slot.push(g);
            }
            outs.push(out);
            Ok(())
        })?;
        let grads = parts.iter().map(|v| Tensor::f_cat(v, 0).ctx("gathering gradients")).collect::<Result<_>>()?;
        let outputs = Tensor::f_cat(&outs, 0).ctx("gathering target outputs")?;
        Ok(Gradients { grads, outputs })
    }

    /// The chunk loop shared by every evaluation: probe, size, choose how chunks run, back off
    /// on out-of-memory.
    ///
    /// Trial (on the CPU, where there is a choice; see [`Variant`]): once the chunk size is
    /// known, the candidate variants take turns over two or three rounds of chunks ([`trial`]
    /// rules); each candidate's first chunk pays its one-time costs (kernel set-up for a new
    /// shape, freezing the model), its best later chunk is compared, and the fastest — an
    /// alternative to the plain model on contiguous inputs only if clearly faster
    /// ([`CLEAR_WIN`]) — serves the rest of the call and later calls on the same model and
    /// input shape ([`crate::decisions`]: also in later processes when the program keeps
    /// decisions on disk). Trial chunks are part of the work, but their results are held back
    /// until the winner is known and those a loser computed are computed again in the winner, so
    /// that every result of the call comes from one variant. When a candidate's chunk
    /// fails, the chunk runs again the plain way: if that works, the candidate is dropped (a
    /// model that rejects channels-last inputs, a graph that cannot be frozen); if not, the
    /// error is returned and no decision changes.
    fn run_chunks<T>(
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
        let mut start = 0i64;
        let (learned, chosen) =
            if with_grad { (&self.learned_gradient, &self.variant_gradient) } else { (&self.learned_forward, &self.variant_forward) };
        let mut one_row: Option<RowInfo> = None;
        if learned.get().is_none() {
            if let Some(r) = self.size_without_probe(row_info(&mut one_row, batch)?, with_grad) {
                learned.set(Some(r));
            }
        }
        let mut rows = learned.get().unwrap_or(PROBE_ROWS);
        let mut sized = learned.get().is_some();
        // The candidates still in the race (known once the chunk size is), the memo key of this
        // batch, and the trial under way.
        let mut candidates: Option<Vec<Variant>> = None;
        let mut key: Option<VariantKey> = None;
        let mut trial: Option<Trial> = None;
        // A variant whose chunk failed: the same rows run the plain way next, and only if that
        // works is the variant dropped (otherwise the error is the caller's, e.g. a wrong input
        // shape, and is returned without touching any decision).
        let mut suspect: Option<Variant> = None;
        // Results of the chunks since a trial began, held back until the winner is known (see
        // `flush_pending`), so that no result depends on the trial.
        let mut pending: Vec<(Range<i64>, Variant, T)> = Vec::new();
        // Chunks run outside the trial (their shapes are noted at the end).
        let mut ran: Vec<decisions::ChunkSeen> = Vec::new();
        while start < total {
            let (variant, timed, len) = match chosen.get() {
                _ if suspect.is_some() => (Variant::PLAIN, false, rows),
                Some(v) => (v, false, rows),
                None if !sized => (Variant::PLAIN, false, rows),
                None => {
                    if candidates.is_none() {
                        let k = self.variant_key(row_info(&mut one_row, batch)?, with_grad);
                        if let Some(v) = k.as_ref().and_then(decisions::get) {
                            chosen.set(Some(v));
                        }
                        key = k;
                        candidates = Some(self.candidates(row_info(&mut one_row, batch)?, with_grad, no_extra, total - start, rows));
                    }
                    let cands = candidates.as_ref().ok_or_else(|| AttribError::Internal("chunk variants were not listed".into()))?;
                    if chosen.get().is_none() && cands.len() <= 1 {
                        chosen.set(Some(cands.first().copied().unwrap_or(Variant::PLAIN)));
                    }
                    if chosen.get().is_none() && trial.is_none() {
                        trial = Trial::plan(cands.len(), total - start, rows);
                    }
                    match (chosen.get(), &trial) {
                        (Some(v), _) => (v, false, rows),
                        (None, Some(t)) => (cands[t.times.len() % cands.len()], true, t.rows),
                        (None, None) => (Variant::PLAIN, false, rows),
                    }
                }
            };
            let len = variant.chunk_rows(len);
            // A short remainder joins this chunk instead of costing a model call of its own,
            // unless that would break the caller's `max_batch`.
            let end = chunk_end(start, len, total, sized && !timed, self.options.max_batch);
            let probe = if sized { None } else { PeakProbe::start_on(self.device) };
            let clock = Instant::now();
            let value = match work(start..end, variant) {
                Ok(value) => value,
                Err(e) if e.is_out_of_memory() => {
                    let tried = (end - start) as usize;
                    if tried <= 1 {
                        return Err(AttribError::OutOfMemory {
                            device: crate::device::device_name(self.device),
                            rows: 1,
                            reason: e.to_string(),
                        });
                    }
                    rows = tried / 2;
                    learned.set(Some(rows));
                    sized = true;
                    trial = None;
                    continue;
                }
                Err(_) if variant != Variant::PLAIN && self.may_fall_back(variant) => {
                    suspect = Some(variant);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !timed {
                ran.push(decisions::ChunkSeen { variant, rows: (end - start) as usize, ms: clock.elapsed().as_secs_f64() * 1e3 });
            }
            if timed || !pending.is_empty() {
                pending.push((start..end, variant, value));
            } else {
                sink(start..end, value)?;
            }
            if let Some(failed) = suspect.take() {
                // The plain way worked where `failed` did not (e.g. a model that calls `view` on
                // channels-last inputs): drop it.
                let cands = candidates.take().unwrap_or_else(|| vec![Variant::PLAIN]);
                let left: Vec<Variant> = cands.into_iter().filter(|&c| c != failed).collect();
                if chosen.get() == Some(failed) || left.len() <= 1 {
                    let v = left.first().copied().unwrap_or(Variant::PLAIN);
                    chosen.set(Some(v));
                    let k = match key.take() {
                        Some(k) => Some(k),
                        None => self.variant_key(row_info(&mut one_row, batch)?, with_grad),
                    };
                    if let Some(k) = k {
                        decisions::put(k, v);
                    }
                }
                candidates = Some(left);
                trial = None;
            }
            if timed {
                let per_row = clock.elapsed().as_secs_f64() / (end - start) as f64;
                let cands = candidates.as_ref().ok_or_else(|| AttribError::Internal("timed a chunk without variants".into()))?;
                if let Some(t) = trial.as_mut() {
                    t.times.push(per_row);
                    if t.times.len() == t.rounds * cands.len() {
                        let v = t.winner(cands);
                        chosen.set(Some(v));
                        trial = None;
                        if let Some(k) = key.take() {
                            decisions::put(k, v);
                        }
                    }
                }
            }
            if !sized {
                rows = self.size_from_probe(row_info(&mut one_row, batch)?, end - start, probe, with_grad);
                learned.set(Some(rows));
                sized = true;
            }
            if let Some(winner) = chosen.get() {
                flush_pending(&mut pending, Some(winner), &mut work, &mut sink)?;
            }
            start = end;
        }
        flush_pending(&mut pending, chosen.get(), &mut work, &mut sink)?;
        if !ran.is_empty() {
            // The chunk shapes of this call, so that a model warm-up in a later call or process
            // can rehearse them (`crate::warm`). CPU only (no key elsewhere).
            if let Some(key) = self.variant_key(row_info(&mut one_row, batch)?, with_grad) {
                decisions::note_chunks(&key, &ran);
            }
        }
        Ok(())
    }

    /// Whether a failing chunk of `v` may be retried another way: only variants the evaluator
    /// chose itself, not ones the options force.
    fn may_fall_back(&self, v: Variant) -> bool {
        v.inference || self.options.memory_format == MemoryFormat::Auto
    }

    /// The variants worth timing for this batch: the layouts the options allow (both only for
    /// image-like inputs on the CPU under [`MemoryFormat::Auto`]), and, for forward-only work
    /// without extra forward arguments on the CPU, the model's inference-only copy when the
    /// options allow it and the batch is large enough to repay making it (four chunks or more).
    fn candidates(&self, row: &RowInfo, with_grad: bool, no_extra: bool, left: i64, rows: usize) -> Vec<Variant> {
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
    fn variant_key(&self, row: &RowInfo, with_grad: bool) -> Option<VariantKey> {
        if self.device != Device::Cpu {
            return None;
        }
        Some(VariantKey::new(self.model, with_grad, &self.options, row.shapes.clone()))
    }

    /// Rows per chunk after a probe chunk of `probe_rows` rows: what the memory budget allows,
    /// and on the CPU also what keeps a chunk's working set near the cache
    /// ([`chunk_rows_for`]). Not clamped to this batch, so that the size carries over to later,
    /// larger batches of the same call.
    fn size_from_probe(&self, row: &RowInfo, probe_rows: i64, probe: Option<PeakProbe>, with_grad: bool) -> usize {
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
    fn size_without_probe(&self, row: &RowInfo, with_grad: bool) -> Option<usize> {
        if self.device != Device::Cpu || self.options.memory_budget.is_some() {
            return None;
        }
        let pessimistic = row.bytes.saturating_mul(NO_PROBE_FACTOR * if with_grad { 2 } else { 1 });
        let rows = chunk_rows_for(default_host_budget(), pessimistic, true);
        (rows >= CPU_MAX_ROWS).then_some(rows)
    }
}

/// The dtypes an autocast region computes in.
fn region_kinds(k: tch::Kind) -> bool {
    matches!(k, tch::Kind::BFloat16 | tch::Kind::Half)
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

/// What the chunk loop needs to know about one row of a batch: each input's shape and dtype,
/// whether any is image-like, and the bytes of the row's inputs (a floor on its working memory
/// is [`FLOOR_FACTOR`] times that, with gradients twice).
struct RowInfo {
    shapes: Vec<(Vec<i64>, tch::Kind)>,
    image_like: bool,
    bytes: u64,
}

/// The [`RowInfo`] of `batch`, from its declared row shapes ([`Expanded::rows_like`]) or else
/// built from its first row, once per chunk loop.
fn row_info<'c>(cache: &'c mut Option<RowInfo>, batch: &Expanded) -> Result<&'c RowInfo> {
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

/// `out` itself, or a copy of it when it shares memory with the chunk's inputs `xs`.
///
/// A model may return a view of its input (`x.select(1, 0)`, `x.narrow(1, 0, 1).view([-1])`),
/// and builders may build the next chunk in the same buffer as this one (the perturbation
/// engine restores and rewrites its buffer in place): what a sink keeps must not change when the
/// next chunk is built. The test compares address ranges on the host; no device work unless the
/// memory is shared.
fn owned(out: Tensor, xs: &[Tensor]) -> Result<Tensor> {
    let span = |t: &Tensor| -> Option<(usize, usize)> {
        let numel = t.numel();
        if numel == 0 || !t.defined() {
            return None;
        }
        let elt = t.kind().elt_size_in_bytes();
        let last: i64 = t.size().iter().zip(t.stride()).map(|(&d, s)| (d - 1).max(0) * s.abs()).sum();
        let lo = t.data_ptr() as usize;
        Some((lo, lo + (last.max(0) as usize + 1) * elt))
    };
    let Some((a, b)) = span(&out) else { return Ok(out) };
    let shared = xs.iter().filter_map(span).any(|(c, d)| a < d && c < b);
    if shared {
        let mut copy = out.f_empty_like().ctx("copying an output that shares memory with the model's input")?;
        copy.f_copy_(&out).ctx("copying an output that shares memory with the model's input")?;
        Ok(copy)
    } else {
        Ok(out)
    }
}

/// A model failure reported with the shapes of the inputs the user passed, not those of the
/// chunk that failed.
fn user_shapes(e: AttribError, inputs: &[Tensor]) -> AttribError {
    match e {
        AttribError::ModelForward { reason, .. } => {
            AttribError::ModelForward { shapes: attrib_core::inputs::format_shapes(inputs), reason }
        }
        other => other,
    }
}

/// The output of a chunk of `rows` rows: one row per input row, floating point, and of a shape
/// the target applies to (checked on the host, against the output's shape).
fn check_chunk_output(p: &Prepared, out: &Tensor, rows: i64) -> Result<()> {
    check_output_rows(out, rows)?;
    let mut size = out.size();
    size[0] = p.n;
    p.target.check_output(&size)
}

fn check_output_rows(out: &Tensor, rows: i64) -> Result<()> {
    let size = out.size();
    if size.first() != Some(&rows) {
        return Err(AttribError::ModelOutput(format!(
            "the model returned shape {size:?} for a batch of {rows} rows; its output must keep the batch in dimension 0"
        )));
    }
    if !out.is_floating_point() {
        return Err(AttribError::ModelOutput(format!(
            "the model returned dtype {:?}; attributions need a floating-point output",
            out.kind()
        )));
    }
    Ok(())
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
