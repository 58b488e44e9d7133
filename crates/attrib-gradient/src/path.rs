//! Shared pieces of the path methods (Integrated Gradients, GradientSHAP): weighted gradient
//! sums along straight-line paths, endpoint outputs and convergence deltas. Everything goes
//! through the chunked [`Evaluator`]; nothing here batches or differentiates on its own.
//! Public so that the layer methods (`attrib-layer`: layer integrated gradients, neuron
//! integrated gradients) integrate with the same machinery.

use attrib_core::{AttribError, Result, TorchResultExt};
use attrib_tensor::{ChunkRows, Evaluator, Expanded, Prepared};
use tch::{Kind, Tensor};

/// `Σ_k w_k ∇F(base + α_k · diff)` for every row, one tensor per input, plus the target outputs at
/// `α = 0` and `α = 1` when those nodes are part of the rule (so the delta needs no extra pass).
pub struct PathSum {
    /// `Σ_k w_k ∇F` per input, shaped like it.
    pub sums: Vec<Tensor>,
    /// Target outputs at `α = 0`, when the rule has that node.
    pub at_start: Option<Tensor>,
    /// Target outputs at `α = 1`, when the rule has that node.
    pub at_end: Option<Tensor>,
}

/// Gradients of the target output at the inputs themselves (one chunked forward + backward of
/// the batch), with the prepared call they belong to.
pub(crate) fn gradients_at_inputs(
    model: &dyn attrib_core::Model,
    batch: attrib_core::BatchOptions,
    inputs: &attrib_core::Inputs,
    target: &attrib_core::Target,
) -> Result<(Prepared, Vec<Tensor>)> {
    let eval = Evaluator::new(model, batch)?;
    let p = eval.prepare(inputs, target)?;
    let grads = eval.gradients(&p, &Expanded::identity(&p.inputs))?.grads;
    Ok((p, grads))
}

/// A column `[rows, 1, 1, ...]` for broadcasting a per-row value against a `dims`-d tensor.
pub fn column(values: &[f64], dims: usize, t: &Tensor) -> Result<Tensor> {
    let mut shape = vec![values.len() as i64];
    shape.extend(std::iter::repeat_n(1, dims.saturating_sub(1)));
    Tensor::f_from_slice(values)
        .and_then(|c| c.f_to_kind(t.kind()))
        .and_then(|c| c.f_to_device(t.device()))
        .and_then(|c| c.f_reshape(&shape))
        .ctx("making a per-row column")
}

/// Rows `s..e` of a path batch over `n` samples (step-major: row `k · n + i` is node `k` of
/// sample `i`): `base + α_k · diff` for every input, on `device`.
pub fn path_points(base: &[Tensor], diff: &[Tensor], alphas: &[f64], n: i64, s: i64, e: i64, device: tch::Device) -> Result<Vec<Tensor>> {
    let rows = ChunkRows::new(s, e, n, device);
    let sample = rows.samples()?;
    let a: Vec<f64> = rows.blocks_host().map(|b| alphas[b as usize]).collect();
    base.iter()
        .zip(diff)
        .map(|(b, d)| {
            let col = column(&a, b.dim(), b)?;
            let bs = b.f_index_select(0, &sample).ctx("selecting baseline rows")?;
            let ds = d.f_index_select(0, &sample).ctx("selecting path rows")?;
            bs.f_addcmul(&col, &ds).ctx("making path points")
        })
        .collect()
}

/// Evaluate the gradients at `base + α_k · diff` for all nodes `k` of all rows of `p` as one
/// logical batch of `n · K` rows (step-major: row `k · n + i`), and reduce them per chunk into
/// `Σ_k w_k ∇F` (never holding all gradients at once).
pub fn path_gradient_sum(
    eval: &Evaluator,
    p: &Prepared,
    base: &[Tensor],
    diff: &[Tensor],
    alphas: &[f64],
    weights: &[f64],
) -> Result<PathSum> {
    let n = p.n;
    let k = alphas.len() as i64;
    let device = p.device;
    let batch = Expanded::new(n, n * k, |s, e| path_points(base, diff, alphas, n, s, e, device));
    let mut sums: Vec<Tensor> = diff.iter().map(|d| d.f_zeros_like().ctx("allocating sums")).collect::<Result<_>>()?;
    let start_block = alphas.iter().position(|&a| a == 0.0);
    let end_block = alphas.iter().position(|&a| a == 1.0);
    let zeros = || Tensor::f_zeros([n], (Kind::Double, device)).ctx("allocating endpoint outputs");
    let at_start = start_block.map(|_| zeros()).transpose()?;
    let at_end = end_block.map(|_| zeros()).transpose()?;
    eval.gradients_each(p, &batch, |range, grads, outs| {
        let rows = ChunkRows::of(range.clone(), n, device);
        let sample = rows.samples()?;
        let w: Vec<f64> = rows.blocks_host().map(|b| weights[b as usize]).collect();
        for (acc, g) in sums.iter_mut().zip(&grads) {
            let col = column(&w, g.dim(), g)?;
            let weighted = g.f_mul(&col).ctx("weighting gradients")?;
            let _ = acc.f_index_add_(0, &sample, &weighted).ctx("accumulating gradients")?;
        }
        for (block, slot) in [(start_block, &at_start), (end_block, &at_end)] {
            if let (Some(b), Some(slot)) = (block, slot) {
                let (lo, hi) = (b as i64 * n, (b as i64 + 1) * n);
                let (s, e) = (range.start.max(lo), range.end.min(hi));
                if s < e {
                    let src = outs.f_narrow(0, s - range.start, e - s).and_then(|o| o.f_to_kind(Kind::Double)).ctx("endpoint outputs")?;
                    slot.f_narrow(0, s - lo, e - s).and_then(|mut d| d.f_copy_(&src)).ctx("storing endpoint outputs")?;
                }
            }
        }
        Ok(())
    })?;
    Ok(PathSum { sums, at_start, at_end })
}

/// Target outputs `(f(end), f(start))` per row, evaluated as one logical batch of `2n` rows
/// (only the ones not already known).
pub fn endpoint_outputs(
    eval: &Evaluator,
    p: &Prepared,
    end: &[Tensor],
    start: &[Tensor],
    known_end: Option<Tensor>,
    known_start: Option<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let n = p.n;
    let mut blocks: Vec<&[Tensor]> = Vec::new();
    if known_end.is_none() {
        blocks.push(end);
    }
    if known_start.is_none() {
        blocks.push(start);
    }
    let mut computed = Vec::new();
    if !blocks.is_empty() {
        let stacked: Vec<Tensor> = (0..end.len())
            .map(|i| Tensor::f_cat(&blocks.iter().map(|b| &b[i]).collect::<Vec<_>>(), 0).ctx("stacking endpoints"))
            .collect::<Result<_>>()?;
        let batch = Expanded::new(n, n * blocks.len() as i64, |s, e| {
            stacked.iter().map(|t| t.f_narrow(0, s, e - s).ctx("slicing endpoints")).collect()
        });
        let out = eval.forward(p, &batch)?.f_to_kind(Kind::Double).ctx("endpoint outputs")?;
        computed = (0..blocks.len() as i64).map(|b| out.f_narrow(0, b * n, n).ctx("endpoint outputs")).collect::<Result<_>>()?;
    }
    let mut it = computed.into_iter();
    let missing = || AttribError::Internal("an endpoint output was not computed".into());
    let f_end = match known_end {
        Some(t) => t,
        None => it.next().ok_or_else(missing)?,
    };
    let f_start = match known_start {
        Some(t) => t,
        None => it.next().ok_or_else(missing)?,
    };
    Ok((f_end, f_start))
}

/// `Σ_inputs Σ_elements attr` per row, in float64, `[n]`.
pub fn row_sums(values: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for v in values {
        let n = v.size()[0];
        let s = v
            .f_to_kind(Kind::Double)
            .and_then(|t| t.f_reshape([n, -1]))
            .and_then(|t| t.f_sum_dim_intlist(Some([1i64].as_slice()), false, Kind::Double))
            .ctx("summing attributions per row")?;
        total = Some(match total {
            Some(t) => t.f_add(&s).ctx("summing attributions per row")?,
            None => s,
        });
    }
    total.ok_or_else(|| AttribError::Internal("row sums of no input".into()))
}

/// Convergence delta `Σ attr − (f(end) − f(start))` per row, float64 `[n]`.
pub fn convergence_delta(values: &[Tensor], f_end: &Tensor, f_start: &Tensor) -> Result<Tensor> {
    let sums = row_sums(values)?;
    let gap = f_end.f_to_kind(Kind::Double).and_then(|a| a.f_sub(&f_start.f_to_kind(Kind::Double)?)).ctx("delta")?;
    sums.f_sub(&gap).ctx("delta")
}

