//! GradientSHAP / expected gradients (Lundberg & Lee 2017; Erion et al. 2021).
//!
//! With baseline samples `B_1..B_S` (a distribution), `M = n_samples` draws per row, and for
//! draw `s` of row `i` a baseline `b = B_{j_s}` (uniform), a path coefficient `α_s ~ U(0, 1)` and
//! Gaussian noise `ε_s ~ N(0, σ²)` (absolute σ, default 0):
//!
//! ```text
//! x̃   = x_i + ε_s
//! attr = (1/M) Σ_s (x̃ − b) · ∇F(b + α_s (x̃ − b))
//! ```
//!
//! which estimates `E_{b, α}[(x − b) · ∇F(b + α (x − b))]`, the expectation of Integrated
//! Gradients over the baseline distribution. This is Captum's `GradientShap` (NoiseTunnel
//! smoothgrad over `InputBaselineXGradient`, where the noisy input also multiplies the
//! gradient). All `M · N` draws form one logical batch (row `s · N + i`), chunked by the
//! shared evaluator; the noisy inputs, baselines and path points of a chunk are made when the
//! chunk is built, inside the memory budget (the noise of each draw from its own keyed stream,
//! so results do not depend on the chunk size).
//!
//! Differences from Captum: the baseline index of a draw is shared by all inputs of a
//! multi-input model (Captum draws one index per input tensor independently); baselines default
//! to a single zero sample (Captum requires them); random draws come from attrib's seeded
//! generator ([`crate::rng`]) — use [`GradientShap::attribute_with_draws`] to inject draws.
//!
//! Convergence delta: per draw, `Σ attr_draw − (F(x̃) − F(b))`; the returned delta is its mean
//! over the draws of each row (completeness holds only in expectation), the per-draw values are
//! in `meta.extra["sample_deltas"]` (`[M][N]`).

use crate::noise::{check_noise_fits, check_noise_shapes, check_stdevs, given_noise, or_zeros, seeded_noise};
use crate::path::row_sums;
use attrib_tensor::convert::tensor_to_vec_f64;
use crate::rng::Rng;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, Inputs, Metadata, MethodInfo, Model, Result, Target,
    TorchResultExt,
};
use attrib_tensor::{ChunkRows, Evaluator, Expanded, Prepared};
use serde_json::json;
use std::cell::RefCell;
use std::ops::Range;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Parameters of [`GradientShap`]. Defaults: one zero baseline, 5 samples, σ = 0, seed 0.
#[derive(Debug)]
pub struct GradientShapParams {
    /// Baseline distribution: [`attrib_core::Baseline::Distribution`] (`[S, ...]` per input), or
    /// a single baseline (zeros, scalar, tensor of one row).
    pub baselines: Baselines,
    /// Draws per row `M`.
    pub n_samples: usize,
    /// Noise standard deviation, one for all inputs or one per input.
    pub stdevs: Vec<f64>,
    /// Seed of the draws.
    pub seed: u64,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl Default for GradientShapParams {
    fn default() -> Self {
        GradientShapParams { baselines: Baselines::default(), n_samples: 5, stdevs: vec![0.0], seed: 0, batch: BatchOptions::default() }
    }
}

impl GradientShapParams {
    /// Set the baseline distribution.
    pub fn baselines(mut self, b: impl Into<Baselines>) -> Self {
        self.baselines = b.into();
        self
    }
    /// Set the number of draws per row.
    pub fn n_samples(mut self, n: usize) -> Self {
        self.n_samples = n;
        self
    }
    /// One noise standard deviation for all inputs.
    pub fn stdev(mut self, s: f64) -> Self {
        self.stdevs = vec![s];
        self
    }
    /// One noise standard deviation per input.
    pub fn stdevs(mut self, s: Vec<f64>) -> Self {
        self.stdevs = s;
        self
    }
    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }
    /// Validate into a ready-to-use [`GradientShap`].
    pub fn check(self) -> Result<GradientShap> {
        if self.n_samples == 0 {
            return Err(AttribError::param("n_samples", "must be at least 1"));
        }
        check_stdevs(&self.stdevs)?;
        let batch = self.batch.check()?;
        Ok(GradientShap { params: GradientShapParams { batch, ..self } })
    }
}

/// The random draws of one GradientSHAP call, for `M` draws of `N` rows (row `s · N + i`).
#[derive(Debug)]
pub struct ShapDraws {
    /// Per input, the baseline sample index of every draw (`M · N` values in `0..S`).
    pub baseline_index: Vec<Vec<i64>>,
    /// Path coefficient of every draw (`M · N` values in `[0, 1]`).
    pub alphas: Vec<f64>,
    /// Per input, the noise of every draw (`[M · N, ...]`).
    pub noise: Vec<Tensor>,
}

/// GradientSHAP; see the [module docs](self).
#[derive(Debug)]
pub struct GradientShap {
    params: GradientShapParams,
}

impl GradientShap {
    /// Parameters with their defaults, to adjust and [`GradientShapParams::check`].
    pub fn params() -> GradientShapParams {
        GradientShapParams::default()
    }

    /// The draws `attribute` makes for these inputs (seeded): one baseline index per draw shared
    /// by all inputs, then the coefficients (one stream from the seed), and the noise of each
    /// input, every row from its own keyed generator ([`crate::rng::normal_rows`]), which
    /// `attribute` draws chunk by chunk instead of all at once. `attribute_with_draws(draw(x))`
    /// equals `attribute(x)`.
    pub fn draw(&self, inputs: &[Tensor], n_baselines: i64) -> Result<ShapDraws> {
        let n = inputs.first().and_then(|t| t.size().first().copied()).unwrap_or(0);
        let (index, alphas) = self.draw_scalars(n, n_baselines);
        let total = n * self.params.n_samples as i64;
        let k = inputs.len();
        let noise = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| or_zeros(self.seeded_noise(i, k, x, 0..total, n)?, x, total))
            .collect::<Result<_>>()?;
        Ok(ShapDraws { baseline_index: vec![index; k], alphas, noise })
    }

    /// The baseline index and path coefficient of each of the `M · N` draws (host values, one
    /// stream from the seed).
    fn draw_scalars(&self, n: i64, n_baselines: i64) -> (Vec<i64>, Vec<f64>) {
        let mut rng = Rng::new(self.params.seed);
        let total = n * self.params.n_samples as i64;
        let index: Vec<i64> = (0..total).map(|_| rng.below(n_baselines.max(1) as u64) as i64).collect();
        let alphas: Vec<f64> = (0..total).map(|_| rng.uniform()).collect();
        (index, alphas)
    }

    /// Seeded noise of draws `rows` of input `i` of `k` (`x`: `[N, ...]`), or `None` when its
    /// standard deviation is 0.
    fn seeded_noise(&self, i: usize, k: usize, x: &Tensor, rows: Range<i64>, n: i64) -> Result<Option<Tensor>> {
        seeded_noise(&self.params.stdevs, self.params.seed, i, k, x, rows, n)
    }

    /// Attribute with the given draws instead of drawing them.
    pub fn attribute_with_draws(&self, model: &dyn Model, inputs: &Inputs, target: &Target, draws: &ShapDraws) -> Result<Attributions> {
        self.run(model, inputs, target, DrawSource::Given(draws))
    }

    /// The shared body of [`Attribution::attribute`] and [`GradientShap::attribute_with_draws`].
    /// The noisy inputs, baselines and path points of a chunk's draws are made when the chunk is
    /// built (seeded noise row by row, so it does not depend on the chunking).
    fn run(&self, model: &dyn Model, inputs: &Inputs, target: &Target, source: DrawSource) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let n = p.n;
        let m = self.params.n_samples as i64;
        let total = n * m;
        let k = p.inputs.len();
        let dist = self.params.baselines.samples(&p.inputs)?;
        let s_count = dist.first().map_or(0, |d| d.size()[0]);
        let seeded;
        let (index_host, alphas): (&[Vec<i64>], &[f64]) = match source {
            DrawSource::Given(draws) => {
                check_given_draws(draws, &p.inputs, total)?;
                (&draws.baseline_index, &draws.alphas)
            }
            DrawSource::Seeded => {
                check_noise_fits(&self.params.stdevs, &p.inputs)?;
                let (index, alphas) = self.draw_scalars(n, s_count);
                seeded = (vec![index; k], alphas);
                (&seeded.0, &seeded.1)
            }
        };
        let index = baseline_indices(index_host, alphas.len(), m, n, s_count, p.device)?;
        let pass = ShapPass { shap: self, p: &p, source, dist, index, alphas };
        let (values, draw_sums) = pass.gradients(&eval)?;
        let per_draw = pass.per_draw_deltas(&eval, draw_sums)?;
        let delta = per_draw.f_mean_dim(Some([0i64].as_slice()), false, Kind::Double).ctx("mean delta")?;
        let rows: Vec<Vec<f64>> = (0..m)
            .map(|s| per_draw.f_select(0, s).ctx("reading deltas").and_then(|r| tensor_to_vec_f64(&r)))
            .collect::<Result<_>>()?;
        let mut meta = Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({ "sample_deltas": rows });
        Ok(Attributions { values, convergence_delta: Some(delta), meta })
    }
}

/// Error unless the given draws are for the model's `inputs` (one list of baseline indices and
/// one noise tensor per input) and the noise of each input has `total` rows of its row shape.
fn check_given_draws(draws: &ShapDraws, inputs: &[Tensor], total: i64) -> Result<()> {
    let k = inputs.len();
    if draws.baseline_index.len() != k || draws.noise.len() != k {
        return Err(AttribError::param("draws", format!("draws for {} inputs, the model has {k}", draws.noise.len())));
    }
    check_noise_shapes("draws", &draws.noise, inputs, total)
}

/// Check the number of draws (`alphas` path coefficients and the baseline indices of every input,
/// `M · N` each) and the baseline indices (in `0..S`, `S = s_count`), and move the indices to
/// `device`.
fn baseline_indices(index_host: &[Vec<i64>], alphas: usize, m: i64, n: i64, s_count: i64, device: Device) -> Result<Vec<Tensor>> {
    let total = n * m;
    if alphas as i64 != total || index_host.iter().any(|v| v.len() as i64 != total) {
        return Err(AttribError::param("draws", format!("expected {total} draws ({m} samples x {n} rows)")));
    }
    if let Some(bad) = index_host.iter().flatten().find(|&&j| j < 0 || j >= s_count) {
        return Err(AttribError::param("draws", format!("baseline index {bad} is out of range for {s_count} baseline samples")));
    }
    index_host
        .iter()
        .map(|v| Tensor::f_from_slice(v).and_then(|t| t.f_to_device(device)).ctx("moving baseline indices"))
        .collect()
}

/// The draws of one call resolved against the prepared inputs, and the two passes over them: the
/// endpoints (noisy input `x̃`, baseline `b`) and path points of draws `s..e` (row `s · N + i` is
/// draw `s` of sample `i`) are made when their chunk is built.
struct ShapPass<'a> {
    shap: &'a GradientShap,
    p: &'a Prepared,
    source: DrawSource<'a>,
    /// Baseline samples per input (`[S, ...]`).
    dist: Vec<Tensor>,
    /// Per input, the baseline index of every draw, on the device.
    index: Vec<Tensor>,
    /// Path coefficient of every draw.
    alphas: &'a [f64],
}

impl ShapPass<'_> {
    /// Noisy inputs of draws s..e, per input.
    fn noisy(&self, s: i64, e: i64) -> Result<Vec<Tensor>> {
        let (p, n, device) = (self.p, self.p.n, self.p.device);
        let k = p.inputs.len();
        let sample = ChunkRows::new(s, e, n, device).samples()?;
        (0..k)
            .map(|i| {
                let x = p.inputs[i].f_index_select(0, &sample).ctx("selecting rows")?;
                let z = match self.source {
                    DrawSource::Given(draws) => Some(given_noise(&draws.noise[i], s..e, x.kind(), device)?),
                    DrawSource::Seeded => self.shap.seeded_noise(i, k, &p.inputs[i], s..e, n)?,
                };
                match z {
                    Some(z) => x.f_add(&z).ctx("adding noise"),
                    None => Ok(x),
                }
            })
            .collect()
    }

    /// Baselines of draws s..e, per input.
    fn baselines(&self, s: i64, e: i64) -> Result<Vec<Tensor>> {
        (0..self.p.inputs.len())
            .map(|i| {
                let idx = self.index[i].f_narrow(0, s, e - s).ctx("slicing indices")?;
                self.dist[i].f_index_select(0, &idx).ctx("selecting baselines")
            })
            .collect()
    }

    /// Path points `b + α (x̃ − b)` of draws s..e, per input, from their endpoints.
    fn points(&self, s: i64, e: i64, xn: &[Tensor], bs: &[Tensor]) -> Result<Vec<Tensor>> {
        xn.iter()
            .zip(bs)
            .map(|(x, b)| {
                let col = crate::path::column(&self.alphas[s as usize..e as usize], b.dim(), b)?;
                let d = x.f_sub(b).ctx("x - baseline")?;
                b.f_addcmul(&col, &d).ctx("path points")
            })
            .collect()
    }

    /// The gradient pass over all `M · N` draws: per input the mean over the draws of
    /// `(x̃ − b) · ∇F(b + α (x̃ − b))`, and the row sums of every chunk's per-draw contributions
    /// in draw order (for the deltas).
    fn gradients(&self, eval: &Evaluator) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let (p, n, device) = (self.p, self.p.n, self.p.device);
        let m = self.shap.params.n_samples as i64;
        let k = p.inputs.len();
        // The endpoints of the last chunk built, for the gradient sink of the same rows (seeded
        // noise is then drawn once per chunk, not twice).
        let last: RefCell<Option<(i64, i64, Vec<Tensor>, Vec<Tensor>)>> = RefCell::new(None);
        let endpoints = |s: i64, e: i64| -> Result<(Vec<Tensor>, Vec<Tensor>)> {
            if let Some((a, b, xn, bs)) = last.borrow_mut().take() {
                if (a, b) == (s, e) {
                    return Ok((xn, bs));
                }
            }
            Ok((self.noisy(s, e)?, self.baselines(s, e)?))
        };
        let batch = Expanded::new(n, n * m, |s, e| {
            let (xn, bs) = (self.noisy(s, e)?, self.baselines(s, e)?);
            let points = self.points(s, e, &xn, &bs)?;
            *last.borrow_mut() = Some((s, e, xn, bs));
            Ok(points)
        })
        .rows_like(&p.inputs);
        let mut acc: Vec<Tensor> = p.inputs.iter().map(|x| x.f_zeros_like().ctx("allocating sums")).collect::<Result<_>>()?;
        let mut draw_sums: Vec<Tensor> = Vec::new();
        eval.gradients_each(p, &batch, |range, grads, _| {
            let sample = ChunkRows::of(range.clone(), n, device).samples()?;
            let (xn, bs) = endpoints(range.start, range.end)?;
            let mut contrib = Vec::with_capacity(k);
            for ((a, g), (x, b)) in acc.iter_mut().zip(&grads).zip(xn.iter().zip(&bs)) {
                let c = x.f_sub(b).and_then(|d| d.f_mul(g)).ctx("multiplying by x - baseline")?;
                let _ = a.f_index_add_(0, &sample, &c).ctx("accumulating draws")?;
                contrib.push(c);
            }
            draw_sums.push(row_sums(&contrib)?);
            Ok(())
        })?;
        last.borrow_mut().take();
        let values: Vec<Tensor> = acc.into_iter().map(|a| a.f_div_scalar(m as f64).ctx("averaging draws")).collect::<Result<_>>()?;
        Ok((values, draw_sums))
    }

    /// Per-draw deltas `Σ attr_draw − (F(x̃) − F(b))` as `[M, N]`, from the row sums of the
    /// gradient pass (`draw_sums`) and one forward pass over both endpoints of every draw.
    fn per_draw_deltas(&self, eval: &Evaluator, draw_sums: Vec<Tensor>) -> Result<Tensor> {
        let (p, n) = (self.p, self.p.n);
        let m = self.shap.params.n_samples as i64;
        let total = n * m;
        let k = p.inputs.len();
        // F(x̃) and F(b) of every draw: 2·M·N rows, noisy inputs first.
        let fwd = Expanded::new(n, 2 * total, |s, e| {
            let mut parts: Vec<Vec<Tensor>> = (0..k).map(|_| Vec::new()).collect();
            if s < total {
                for (i, xn) in self.noisy(s, e.min(total))?.into_iter().enumerate() {
                    parts[i].push(xn);
                }
            }
            if e > total {
                for (i, b) in self.baselines(s.max(total) - total, e - total)?.into_iter().enumerate() {
                    parts[i].push(b);
                }
            }
            parts.iter().map(|v| Tensor::f_cat(v, 0).ctx("stacking endpoints")).collect()
        })
        .rows_like(&p.inputs);
        let outs = eval.forward(p, &fwd)?.f_to_kind(Kind::Double).ctx("endpoint outputs")?;
        let gap = outs.f_narrow(0, 0, total).and_then(|a| a.f_sub(&outs.f_narrow(0, total, total)?)).ctx("output gaps")?;
        Tensor::f_cat(&draw_sums, 0)
            .and_then(|d| d.f_sub(&gap))
            .and_then(|d| d.f_reshape([m, n]))
            .ctx("per-draw deltas")
    }
}

/// Where the draws of a call come from.
#[derive(Clone, Copy)]
enum DrawSource<'a> {
    /// From the seed; noise row by row when a chunk is built ([`Attribution::attribute`]).
    Seeded,
    /// Given ([`GradientShap::attribute_with_draws`]).
    Given(&'a ShapDraws),
}

impl Attribution for GradientShap {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "gradient-shap", multiplies_by_inputs: true, has_convergence_delta: true }
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        json!({
            "baselines": p.baselines.describe(),
            "n_samples": p.n_samples,
            "stdevs": p.stdevs,
            "seed": p.seed,
            "batch": p.batch,
        })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        self.run(model, inputs, target, DrawSource::Seeded)
    }
}
