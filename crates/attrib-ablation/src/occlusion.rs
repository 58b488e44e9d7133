//! Occlusion (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks";
//! Captum's `Occlusion`).
//!
//! A window of shape `w = (w_1, ..., w_d)` (one size per non-batch dimension) slides over each
//! input with strides `s`; along dimension `j` it starts at `t·s_j` for
//! `t = 0..c_j`, `c_j = ⌈(D_j − w_j) / s_j⌉ + 1`, and is cut at the border. For every window `W`
//! and row `i`, `δ_W(i) = F_t(x_i) − F_t(x_i with W at its baseline)`, and
//!
//! `attr[i, e] = Σ_{W ∋ e} δ_W(i) / #{W : W ∋ e}`
//!
//! (the mean over the windows that cover `e`, exactly Captum's normalisation).

use crate::engine::{output_changes, rows_of, Positions, Source, DENSE_ABOVE, MAX_POSITIONS};
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, Inputs, Metadata, MethodInfo, Model, PlannedRows, Result, Target,
    TorchResultExt,
};
use attrib_tensor::Evaluator;
use serde_json::json;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Parameters of [`Occlusion`].
#[derive(Debug, Default)]
pub struct OcclusionParams {
    /// Window shape of each input, one size per non-batch dimension (required).
    pub windows: Vec<Vec<i64>>,
    /// Strides of each input (default: 1 along every dimension, Captum's default).
    pub strides: Option<Vec<Vec<i64>>>,
    /// The value occluded elements take (default: zeros).
    pub baselines: Baselines,
    /// Chunking of the perturbed rows.
    pub batch: BatchOptions,
}

impl OcclusionParams {
    /// Window shape of a single-input model (`[C, H, W]` for images, `[k]` for a vector).
    pub fn window(mut self, window: &[i64]) -> Self {
        self.windows = vec![window.to_vec()];
        self
    }

    /// One window shape per input.
    pub fn windows(mut self, windows: Vec<Vec<i64>>) -> Self {
        self.windows = windows;
        self
    }

    /// Strides of a single-input model.
    pub fn stride(mut self, strides: &[i64]) -> Self {
        self.strides = Some(vec![strides.to_vec()]);
        self
    }

    /// Strides of each input.
    pub fn strides(mut self, strides: Vec<Vec<i64>>) -> Self {
        self.strides = Some(strides);
        self
    }

    /// Set the baselines.
    pub fn baselines(mut self, baselines: impl Into<Baselines>) -> Self {
        self.baselines = baselines.into();
        self
    }

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate what can be checked without the inputs: a window per input, positive sizes and
    /// strides. Shapes are checked against the inputs by [`Occlusion::attribute`].
    pub fn check(self) -> Result<Occlusion> {
        if self.windows.is_empty() {
            return Err(AttribError::param("window", "occlusion needs a window shape (one size per non-batch dimension)"));
        }
        for w in &self.windows {
            if w.is_empty() || w.iter().any(|&v| v < 1) {
                return Err(AttribError::param("window", format!("window {w:?} must list positive sizes")));
            }
        }
        if let Some(strides) = &self.strides {
            if strides.len() != self.windows.len() {
                return Err(AttribError::param(
                    "strides",
                    format!("{} stride list(s) for {} window(s); give one per input", strides.len(), self.windows.len()),
                ));
            }
            for (s, w) in strides.iter().zip(&self.windows) {
                if s.iter().any(|&v| v < 1) {
                    return Err(AttribError::param("strides", format!("strides {s:?} must be at least 1")));
                }
                if s.len() != w.len() {
                    return Err(AttribError::param(
                        "strides",
                        format!("strides {s:?} and window {w:?} must have the same number of dimensions"),
                    ));
                }
            }
        }
        Ok(Occlusion { params: OcclusionParams { batch: self.batch.check()?, ..self } })
    }
}

/// Occlusion: the mean change of the target output over the sliding windows that cover each
/// element, when the window is replaced by the baseline.
#[derive(Debug)]
pub struct Occlusion {
    params: OcclusionParams,
}

impl Occlusion {
    /// Parameters with their defaults (a window must be set), to adjust and
    /// [`OcclusionParams::check`].
    pub fn params() -> OcclusionParams {
        OcclusionParams::default()
    }
}

/// The sliding-window geometry of one input.
#[derive(Debug)]
pub(crate) struct Windows {
    /// Window positions per dimension, `c_j`.
    pub counts: Vec<i64>,
    /// Per dimension: `[c_j + 1, D_j]` indicator (row `t` covers the elements of window
    /// position `t`; the last row is all false), boolean.
    pub cover: Vec<Tensor>,
    /// Per dimension: the `[lo, hi)` range of every window position.
    pub spans: Vec<Vec<(i64, i64)>>,
    /// The row shape.
    pub dims: Vec<i64>,
}

impl Windows {
    /// Geometry of `window`/`stride` over a row shape `dims` (input `index`, for messages).
    pub fn new(dims: &[i64], window: &[i64], stride: &[i64], index: usize, device: Device) -> Result<Windows> {
        if window.len() != dims.len() {
            return Err(AttribError::param(
                "window",
                format!(
                    "window {window:?} has {} size(s) but input {index} has {} non-batch dimension(s) {dims:?}; give one size per dimension",
                    window.len(),
                    dims.len()
                ),
            ));
        }
        let mut counts = Vec::with_capacity(dims.len());
        let mut cover = Vec::with_capacity(dims.len());
        let mut spans = Vec::with_capacity(dims.len());
        for (j, ((&d, &w), &s)) in dims.iter().zip(window).zip(stride).enumerate() {
            if w > d {
                return Err(AttribError::param(
                    "window",
                    format!("window {window:?} is larger than input {index} ({dims:?}) along dimension {}", j + 1),
                ));
            }
            if s > w && d != w {
                return Err(AttribError::param(
                    "strides",
                    format!(
                        "stride {s} is larger than the window size {w} along dimension {} of input {index}: some elements would never be occluded",
                        j + 1
                    ),
                ));
            }
            let c = (d - w + s - 1) / s + 1;
            let mut m = vec![0u8; ((c + 1) * d) as usize];
            let mut span = Vec::with_capacity(c as usize);
            for t in 0..c {
                let lo = t * s;
                let hi = (lo + w).min(d);
                for e in lo..hi {
                    m[(t * d + e) as usize] = 1;
                }
                span.push((lo, hi));
            }
            spans.push(span);
            let t = Tensor::f_from_slice(&m)
                .and_then(|t| t.f_reshape([c + 1, d]))
                .and_then(|t| t.f_to_kind(Kind::Bool))
                .and_then(|t| t.f_to_device(device))
                .ctx("building window indicators")?;
            counts.push(c);
            cover.push(t);
        }
        Ok(Windows { counts, cover, spans, dims: dims.to_vec() })
    }

    /// The flat positions (row-major within a row) covered by every window, in window order;
    /// `None` when they would exceed [`MAX_POSITIONS`] together.
    pub fn lists(&self) -> Option<Vec<Vec<i64>>> {
        let total: i64 = self.spans.iter().map(|sp| sp.iter().map(|(lo, hi)| hi - lo).sum::<i64>()).product();
        if total > MAX_POSITIONS {
            return None;
        }
        let d = self.dims.len();
        // Row-major strides of the row.
        let mut strides = vec![1i64; d];
        for j in (0..d.saturating_sub(1)).rev() {
            strides[j] = strides[j + 1] * self.dims[j + 1];
        }
        let mut lists = Vec::with_capacity(self.total() as usize);
        let mut t = vec![0usize; d];
        for _ in 0..self.total() {
            // The box of window t, row-major.
            let ranges: Vec<(i64, i64)> = (0..d).map(|j| self.spans[j][t[j]]).collect();
            let size: i64 = ranges.iter().map(|(lo, hi)| hi - lo).product();
            let mut list = Vec::with_capacity(size as usize);
            let mut e: Vec<i64> = ranges.iter().map(|r| r.0).collect();
            'outer: loop {
                list.push(e.iter().zip(&strides).map(|(a, b)| a * b).sum());
                for j in (0..d).rev() {
                    e[j] += 1;
                    if e[j] < ranges[j].1 {
                        continue 'outer;
                    }
                    e[j] = ranges[j].0;
                }
                break;
            }
            lists.push(list);
            // Next window number: dimension 1 varies fastest.
            for (tj, &c) in t.iter_mut().zip(&self.counts) {
                *tj += 1;
                if (*tj as i64) < c {
                    break;
                }
                *tj = 0;
            }
        }
        Some(lists)
    }

    /// Number of windows.
    pub fn total(&self) -> i64 {
        self.counts.iter().product()
    }

    /// `[rows, D_1, ..., D_d]` boolean: the window of each row (`local`: window number, or out of
    /// `0..total` for rows that occlude another input).
    pub fn masks(&self, local: &Tensor) -> Result<Tensor> {
        let total = self.total();
        let rows = local.size()[0];
        let valid = local.f_ge(0).and_then(|a| local.f_lt(total).and_then(|b| a.f_logical_and(&b))).ctx("window rows")?;
        let mut rem = local.f_clamp(0, (total - 1).max(0)).ctx("window rows")?;
        let d = self.counts.len();
        let mut out: Option<Tensor> = None;
        for (j, (&c, cover)) in self.counts.iter().zip(&self.cover).enumerate() {
            // Dimension 1 varies fastest, as in Captum's window numbering.
            let t = rem.f_remainder(c).ctx("window position")?;
            rem = rem.f_floor_divide_scalar(c).ctx("window position")?;
            let t = Tensor::f_scalar_tensor(c, (Kind::Int64, local.device()))
                .and_then(|c| t.f_where_self(&valid, &c))
                .ctx("window position")?;
            let mut shape = vec![1i64; d + 1];
            shape[0] = rows;
            shape[j + 1] = cover.size()[1];
            let part = cover.f_index_select(0, &t).and_then(|m| m.f_reshape(&shape)).ctx("window mask")?;
            out = Some(match out {
                None => part,
                Some(o) => o.f_logical_and(&part).ctx("window mask")?,
            });
        }
        out.ok_or_else(|| AttribError::param("window", "empty window"))
    }

    /// `attr[i, e] = Σ_{W ∋ e} δ_W(i) / #{W ∋ e}` from `delta` (`[total, N]`), as `[N, D...]` f64.
    pub fn average(&self, delta: &Tensor) -> Result<Tensor> {
        let n = delta.size()[1];
        let d = self.counts.len();
        // Window number = t_1 + c_1 (t_2 + c_2 (...)): row-major shape [c_d, ..., c_1].
        let mut rev: Vec<i64> = self.counts.iter().rev().copied().collect();
        rev.push(n);
        let mut t = delta.f_to_kind(Kind::Double).and_then(|t| t.f_reshape(&rev)).ctx("averaging windows")?;
        // Now [c_d, ..., c_1, N]; reorder to [N, c_1, ..., c_d].
        let mut perm = vec![d as i64];
        perm.extend((0..d as i64).rev());
        t = t.f_permute(&perm).ctx("averaging windows")?;
        let mut count: Option<Tensor> = None;
        for (j, cover) in self.cover.iter().enumerate() {
            let c = self.counts[j];
            let m = cover.f_narrow(0, 0, c).and_then(|m| m.f_to_kind(Kind::Double)).ctx("averaging windows")?;
            t = t
                .f_movedim([j as i64 + 1], [-1])
                .and_then(|t| t.f_matmul(&m))
                .and_then(|t| t.f_movedim([-1], [j as i64 + 1]))
                .ctx("averaging windows")?;
            let cj = m.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Double).ctx("window counts")?;
            let mut shape = vec![1i64; d + 1];
            shape[j + 1] = cj.size()[0];
            let cj = cj.f_reshape(&shape).ctx("window counts")?;
            count = Some(match count {
                None => cj,
                Some(o) => o.f_mul(&cj).ctx("window counts")?,
            });
        }
        match count {
            Some(c) => t.f_div(&c).ctx("averaging windows"),
            None => Ok(t),
        }
    }
}

impl Attribution for Occlusion {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "occlusion", multiplies_by_inputs: true, has_convergence_delta: false }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "windows": self.params.windows,
            "strides": self.params.strides,
            "baselines": self.params.baselines.describe(),
            "batch": self.params.batch,
        })
    }

    /// One occluded row per window and sample, then the samples themselves.
    fn planned_rows(&self, inputs: &Inputs) -> Option<PlannedRows> {
        if self.params.windows.len() != inputs.len() {
            return None;
        }
        let mut total = 0i64;
        for (k, x) in inputs.tensors().iter().enumerate() {
            let w = &self.params.windows[k];
            let ones = vec![1i64; w.len()];
            let s = self.params.strides.as_ref().map(|s| &s[k]).unwrap_or(&ones);
            total += Windows::new(&x.size()[1..], w, s, k, tch::Device::Cpu).ok()?.total();
        }
        PlannedRows::per_sample(inputs, total + 1, false)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let k_inputs = inputs.len();
        if self.params.windows.len() != k_inputs {
            return Err(AttribError::param(
                "window",
                format!("{} window shape(s) for {k_inputs} input(s); give one per input", self.params.windows.len()),
            ));
        }
        let p = eval.prepare(inputs, target)?;
        let mut geo = Vec::with_capacity(k_inputs);
        let mut offsets = Vec::with_capacity(k_inputs);
        let mut total = 0i64;
        for (k, x) in p.inputs.iter().enumerate() {
            let w = &self.params.windows[k];
            let ones = vec![1i64; w.len()];
            let s = self.params.strides.as_ref().map(|s| &s[k]).unwrap_or(&ones);
            let g = Windows::new(&x.size()[1..], w, s, k, p.device)?;
            offsets.push(total);
            total += g.total();
            geo.push(g);
        }
        let base = self.params.baselines.resolve_copies(&p.inputs, inputs.copies())?;
        // Element lists per block (the windows of this input, then empty lists for the windows of
        // the other inputs), unless too many or too dense: then dense masks per chunk.
        let plans = geo
            .iter()
            .enumerate()
            .map(|(k, g)| {
                let Some(lists) = g.lists() else { return Ok(None) };
                let row: i64 = g.dims.iter().product();
                let mut all = vec![Vec::new(); total as usize];
                for (w, l) in lists.into_iter().enumerate() {
                    all[offsets[k] as usize + w] = l;
                }
                let plan = Positions::from_lists(&all, row, p.device)?;
                Ok((plan.density() * total as f64 / g.total().max(1) as f64 <= DENSE_ABOVE).then_some(plan))
            })
            .collect::<Result<Vec<_>>>()?;
        let diff = output_changes(&eval, &p, total, |chunk, layout| {
            p.inputs
                .iter()
                .zip(&base)
                .enumerate()
                .map(|(k, (x, b))| match &plans[k] {
                    Some(plan) => plan.build(x, b, chunk, Source::Own, layout),
                    None => chunk.dense(x, |sample, block| {
                        let local = block.f_sub_scalar(offsets[k]).ctx("window rows")?;
                        let sel = geo[k].masks(&local)?;
                        rows_of(b, sample)?.f_where_self(&sel, &rows_of(x, sample)?).ctx("occluding a window")
                    }),
                })
                .collect()
        })?;
        let values = p
            .inputs
            .iter()
            .enumerate()
            .map(|(k, x)| {
                let d = diff.f_narrow(0, offsets[k], geo[k].total()).ctx("window changes")?;
                geo[k].average(&d)?.f_to_kind(x.kind()).ctx("occlusion attributions")
            })
            .collect::<Result<Vec<_>>>()?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({ "windows": total, "model_rows": total * p.n + p.n, "chunk_rows": eval.chunk_rows() });
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_follow_captum() {
        // D = 10, w = 3, s = 4: ceil(7/4) + 1 = 3 positions (0, 4, 8), the last cut at the border.
        let g = Windows::new(&[10], &[3], &[3], 0, Device::Cpu).unwrap();
        assert_eq!(g.counts, vec![4]);
        let g = Windows::new(&[10], &[4], &[4], 0, Device::Cpu).unwrap();
        assert_eq!(g.counts, vec![3]);
        let covered = g.cover[0].narrow(0, 2, 1).to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(covered, 2, "last window is cut at the border");
        let g = Windows::new(&[3, 32, 32], &[3, 8, 8], &[3, 4, 4], 0, Device::Cpu).unwrap();
        assert_eq!(g.counts, vec![1, 7, 7]);
    }

    #[test]
    fn bad_windows_are_rejected() {
        assert!(Windows::new(&[3, 8], &[3], &[1], 0, Device::Cpu).is_err());
        assert!(Windows::new(&[3, 8], &[4, 2], &[1, 1], 0, Device::Cpu).is_err());
        assert!(Windows::new(&[3, 8], &[1, 2], &[1, 3], 0, Device::Cpu).is_err());
        assert!(Occlusion::params().window(&[2]).stride(&[0]).check().is_err());
        assert!(Occlusion::params().check().is_err());
        assert!(Occlusion::params().window(&[0, 2]).check().is_err());
    }
}
