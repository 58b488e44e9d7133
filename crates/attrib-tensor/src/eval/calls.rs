//! The evaluations methods ask for (outputs, target outputs, gradients), one model call in the
//! options' precision, and the checks of what a chunk's model call returned.

use super::{expand_extra, Evaluator, Expanded, Prepared};
use attrib_core::{AttribError, Autocast, ForwardArg, Model, Result, TorchResultExt};
use std::ops::Range;
use tch::Tensor;

/// Gradients of the target outputs of every row of an expanded batch.
#[derive(Debug)]
pub struct Gradients {
    /// One tensor per model input, `[total, ...]`.
    pub grads: Vec<Tensor>,
    /// The target output of every row, `[total]`.
    pub outputs: Tensor,
}

impl<'m> Evaluator<'m> {
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
}

/// The dtypes an autocast region computes in.
fn region_kinds(k: tch::Kind) -> bool {
    matches!(k, tch::Kind::BFloat16 | tch::Kind::Half)
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
pub(super) fn user_shapes(e: AttribError, inputs: &[Tensor]) -> AttribError {
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
