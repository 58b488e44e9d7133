//! DeepLIFT's paired evaluation: every logical row is one (input row, baseline) pair, run as the
//! rows of `cat([inputs, baselines])` so that the rewritten graph's rules see both.
//!
//! Logical row `r = s·N + i` pairs sample `i` with baseline `s` (the evaluator's block layout:
//! block `s`, sample `r % N`). A chunk of `k` logical rows calls the rewritten model on `2k`
//! rows (the inputs, then their baselines) and hands the evaluator `F(x) − F(b)` per pair, the
//! baseline half detached: the gradient is that of `F_t(x)` under the rules (which give the
//! baseline rows the same multipliers as Captum's objective `F_t(x) + F_t(b)` would, and are
//! computed from the input rows only), and the target outputs the evaluator returns are
//! `F_t(x_i) − F_t(b_s)`, the convergence delta's reference, with no extra forward pass.

use attrib_core::{AttribError, ForwardArg, Model, Result, TorchResultExt};
use attrib_tensor::{ChunkRows, Evaluator, Expanded, Prepared};
use tch::Tensor;

/// `F(x) − F(b)` per pair from the outputs of a paired batch (`2k` rows: the inputs, then their
/// baselines), the baseline half detached; an error if the row count is odd.
pub fn paired_difference(out: &Tensor) -> Result<Tensor> {
    let rows = out.size().first().copied().unwrap_or(0);
    if rows % 2 != 0 {
        return Err(AttribError::ModelOutput(format!("the model returned {rows} rows for a paired batch")));
    }
    let k = rows / 2;
    let x = out.f_narrow(0, 0, k).ctx("splitting paired outputs")?;
    out.f_narrow(0, k, k).and_then(|b| b.f_detach()).and_then(|b| x.f_sub(&b)).ctx("pairing outputs")
}

/// The rewritten model seen by the evaluator: `2k` rows in, `k` pairwise-summed rows out.
struct Paired<'a> {
    inner: &'a dyn Model,
}

impl Model for Paired<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        // Tensor forward arguments were expanded to the k logical rows: repeat them for the
        // baseline half.
        let extra: Vec<ForwardArg> = extra
            .iter()
            .map(|a| match a {
                ForwardArg::Tensor(t) => Tensor::f_cat(&[t, t], 0).map(ForwardArg::Tensor).ctx("pairing forward arguments"),
                other => Ok(other.shallow_clone()),
            })
            .collect::<Result<_>>()?;
        let out = self.inner.forward(inputs, &extra)?;
        paired_difference(&out)
    }
    fn device(&self) -> tch::Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    // Known by the rewritten model's fingerprint (else by address: a new adapter per call).
    fn fingerprint(&self) -> Option<String> {
        self.inner.fingerprint().map(|f| format!("{f}|paired"))
    }
}

/// Baselines of a paired run: per input, `[N, ...]` (one per row, `S = 1`) or `[S, ...]`
/// (samples shared by the rows).
pub(crate) enum PairBaselines {
    /// One baseline row per input row.
    PerRow(Vec<Tensor>),
    /// `S` baseline samples shared by every row.
    Samples(Vec<Tensor>),
}

impl PairBaselines {
    fn count(&self) -> i64 {
        match self {
            PairBaselines::PerRow(_) => 1,
            PairBaselines::Samples(s) => s.first().map_or(1, |t| t.size()[0]),
        }
    }

    /// Baseline rows of input `k` for logical rows with these samples and blocks.
    fn rows(&self, k: usize, samples: &Tensor, blocks: &Tensor) -> Result<Tensor> {
        match self {
            PairBaselines::PerRow(b) => b[k].f_index_select(0, samples),
            PairBaselines::Samples(s) => s[k].f_index_select(0, blocks),
        }
        .ctx("selecting baseline rows")
    }
}

/// What a paired run returns: the input-half gradients, per sample, summed over the baselines
/// (`[N, ...]` per input, already multiplied by `x − b` when asked), and per logical row
/// (`[S·N]`, rows `s·N + i`) the convergence delta `Σ attr − (F_t(x_i) − F_t(b_s))`.
pub(crate) struct PairedGradients {
    pub sums: Vec<Tensor>,
    pub delta: Tensor,
}

/// Run the rewritten model `rules` on every (row, baseline) pair and accumulate
/// `(x − b) · m` (or `m` when `!multiply`) per sample over the baselines.
pub(crate) fn paired_gradients(
    rules: &dyn Model,
    batch_options: attrib_core::BatchOptions,
    p: &Prepared,
    base: &PairBaselines,
    multiply: bool,
) -> Result<PairedGradients> {
    let n = p.n;
    let s = base.count();
    let paired = Paired { inner: rules };
    let eval = Evaluator::new(&paired, batch_options)?;
    // A chunk that is every row once, in order (one baseline per row, one chunk): the inputs and
    // baselines as they are, with no row selection.
    let whole = |start: i64, end: i64| s == 1 && start == 0 && end == n;
    let batch = Expanded::new(n, s * n, |start, end| pair_rows(p, base, start, end, whole(start, end))).rows_like(&p.inputs);
    // Per input, the sum over baselines; built by the first chunk (the whole batch's products
    // as they are when one chunk covers every pair, else zeros and index_add).
    let mut sums: Vec<Option<Tensor>> = p.inputs.iter().map(|_| None).collect();
    let mut totals = Vec::new();
    eval.gradients_each(p, &batch, |range, grads, gaps| {
        let all = whole(range.start, range.end) && matches!(base, PairBaselines::PerRow(_));
        // Row indices only where rows are selected (not for the whole batch at once).
        let picks = if all {
            None
        } else {
            let rows = ChunkRows::new(range.start, range.end, n, p.device);
            Some((rows.samples()?, rows.blocks()?))
        };
        let k = range.end - range.start;
        let mut total: Option<Tensor> = None;
        for (j, g) in grads.iter().enumerate() {
            // The input half's gradients (the baseline half's are dropped).
            let m = g.f_narrow(0, 0, k).ctx("input-half gradients")?;
            let attr = if multiply { times_difference(p, base, j, &picks, &m)? } else { m };
            let flat = attr.f_reshape([k, -1]).and_then(|t| t.f_sum_dim_intlist(1, false, tch::Kind::Double)).ctx("row totals")?;
            total = Some(match total {
                None => flat,
                Some(t) => t.f_add(&flat).ctx("row totals")?,
            });
            sums[j] = Some(add_to_sum(sums[j].take(), &attr, &p.inputs[j], &picks)?);
        }
        if let Some(t) = total {
            // `t` is float64: the subtraction promotes the target outputs exactly.
            totals.push(t.f_sub(&gaps).ctx("convergence delta")?);
        }
        Ok(())
    })?;
    finish(sums, &p.inputs, totals)
}

/// The paired rows `start..end` of every input: the logical rows' inputs, then their
/// baselines. `whole`: the rows are every row once, in order.
fn pair_rows(p: &Prepared, base: &PairBaselines, start: i64, end: i64, whole: bool) -> Result<Vec<Tensor>> {
    if whole {
        if let PairBaselines::PerRow(b) = base {
            return p.inputs.iter().zip(b).map(|(x, b)| Tensor::f_cat(&[x, b], 0).ctx("pairing inputs and baselines")).collect();
        }
    }
    let rows = ChunkRows::new(start, end, p.n, p.device);
    let (samples, blocks) = (rows.samples()?, rows.blocks()?);
    p.inputs
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let xs = x.f_index_select(0, &samples).ctx("selecting input rows")?;
            let bs = base.rows(k, &samples, &blocks)?;
            Tensor::f_cat(&[xs, bs], 0).ctx("pairing inputs and baselines")
        })
        .collect()
}

/// `(x − b) · m` for input `j` of a chunk: `m` its input-half gradients, `picks` the chunk's
/// samples and blocks (`None`: every row once, in order, one baseline per row).
fn times_difference(p: &Prepared, base: &PairBaselines, j: usize, picks: &Option<(Tensor, Tensor)>, m: &Tensor) -> Result<Tensor> {
    let d = match (base, picks) {
        (_, Some((samples, blocks))) => {
            let x = p.inputs[j].f_index_select(0, samples).ctx("selecting input rows")?;
            x.f_sub(&base.rows(j, samples, blocks)?)
        }
        (PairBaselines::PerRow(b), None) => p.inputs[j].f_sub(&b[j]),
        // `all` holds only for one baseline per row.
        (PairBaselines::Samples(_), None) => return Err(AttribError::ModelOutput("baseline samples without row indices".into())),
    };
    // `x − b` is a new tensor: multiplied in place (no second product tensor).
    d.and_then(|mut d| d.f_mul_(m)).ctx("(x − b) · m")
}

/// The sum over baselines of input `x` so far (`acc`) with a chunk's attributions `attr` added
/// (`picks`: the chunk's samples and blocks, `None` for every row once, in order).
fn add_to_sum(acc: Option<Tensor>, attr: &Tensor, x: &Tensor, picks: &Option<(Tensor, Tensor)>) -> Result<Tensor> {
    let kind = x.kind();
    match (picks, acc) {
        // One chunk of every pair in order: the products are the sums.
        (None, None) => attr.f_to_kind(kind).and_then(|a| a.f_contiguous()),
        (None, Some(acc)) => attr.f_to_kind(kind).and_then(|a| acc.f_add(&a)),
        (Some((samples, _)), acc) => {
            let acc = match acc {
                Some(acc) => acc,
                None => x.f_zeros_like().ctx("attribution sums")?,
            };
            attr.f_to_kind(kind).and_then(|a| acc.f_index_add(0, samples, &a))
        }
    }
    .ctx("summing over baselines")
}

/// The sums (zeros for an input no chunk reached) and the convergence deltas of every chunk.
fn finish(sums: Vec<Option<Tensor>>, inputs: &[Tensor], mut totals: Vec<Tensor>) -> Result<PairedGradients> {
    let sums = sums
        .into_iter()
        .zip(inputs)
        .map(|(s, x)| match s {
            Some(s) => Ok(s),
            None => x.f_zeros_like().ctx("attribution sums"),
        })
        .collect::<Result<_>>()?;
    // One chunk (the usual case): its deltas as they are, without a concatenation's copy.
    let delta = if totals.len() == 1 { totals.pop().ok_or_else(|| AttribError::ModelOutput("no convergence delta".into()))? } else { Tensor::f_cat(&totals, 0).ctx("convergence delta")? };
    Ok(PairedGradients { sums, delta })
}
