//! The perturbation pass through the evaluator: chunks of perturbed rows, the output changes
//! of every perturbation, and the attributions of feature groups.

use super::groups::Groups;
use super::positions::{Positions, Source, DENSE_ABOVE};
use attrib_core::{Result, TorchResultExt};
use attrib_tensor::{ChunkRows, Evaluator, Expanded, Layout, Prepared};
use tch::Tensor;

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
