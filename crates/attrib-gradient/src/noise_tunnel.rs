//! NoiseTunnel: SmoothGrad (Smilkov et al. 2017), SmoothGrad² and VarGrad (Adebayo et al.
//! 2018) around any [`Attribution`].
//!
//! With `M = nt_samples` noisy copies `x + ε_s`, `ε_s ~ N(0, σ²)` drawn independently per
//! element (σ absolute, one per input or one for all, Captum's `stdevs`):
//!
//! ```text
//! smoothgrad     = (1/M) Σ_s A(x + ε_s)
//! smoothgrad_sq  = (1/M) Σ_s A(x + ε_s)²
//! vargrad        = (1/M) Σ_s A(x + ε_s)² − ((1/M) Σ_s A(x + ε_s))²
//! ```
//!
//! The wrapped method is any [`Attribution`], which takes materialised inputs: the noisy copies
//! are stacked copy-major (row `s · N + i` is copy `s` of sample `i`) and handed to it as one
//! batch, whose model calls its own chunked evaluation then batches. Memory is bounded by running
//! the copies in **groups** (Captum's `nt_samples_batch_size`): at most `nt_samples_batch_size`
//! copies per call, and never more than the memory budget holds at [`COPY_FACTOR`] times the
//! bytes of one copy of the inputs ([`NoiseTunnel::copies_per_call`]; for usual inputs all copies
//! fit one call). Each group's noise is drawn when the group runs, and the statistics accumulate
//! copy by copy in copy order, so the grouping changes neither the noise nor the result. Targets
//! and tensor forward arguments follow their rows; [`Target::Argmax`] is resolved once on the
//! clean inputs. The wrapped method is told that its inputs are stacked copies
//! ([`Inputs::stacked_copies`]), so that its per-row baselines and masks (shape `[N, ...]`) are
//! tiled over the copies; without a wrapper they broadcast by NumPy's rules only.
//!
//! Noise comes from attrib's seeded generator, one keyed stream per row ([`crate::rng`]), so it
//! does not depend on the grouping or on `max_batch`; Captum's draws differ, so results agree
//! with Captum in distribution, or exactly when the same noise is passed to
//! [`NoiseTunnel::attribute_with_noise`].
//!
//! The convergence delta (when the wrapped method has one) is reported for `smoothgrad` only, as
//! the mean of the copies' deltas per row (the delta of the averaged attribution against the
//! averaged output gap); the per-copy deltas are in `meta.extra["sample_deltas"]` (`[M][N]`).

use crate::noise::{check_noise_fits, check_noise_shapes, check_stdevs, given_noise, or_zeros, seeded_noise};
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, ForwardArg, Inputs, Metadata, MethodInfo, Model, Result, Target,
    TorchResultExt,
};
use attrib_tensor::memory::default_budget;
use attrib_tensor::{Evaluator, Prepared};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::ops::Range;
use std::str::FromStr;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Memory held per noisy copy of the batch while a group of copies is attributed, as a multiple
/// of the bytes of one copy of the inputs: the noisy copy itself, the wrapped method's
/// attribution of it, its square for the statistics, and the wrapped method's own per-row state
/// (a resolved baseline, path sums, a chunk's gradients). Eight leaves room for all of them.
pub const COPY_FACTOR: u64 = 8;

/// How the attributions of the noisy copies are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NoiseTunnelType {
    /// Mean (`smoothgrad`, Captum's default).
    #[default]
    #[serde(rename = "smoothgrad")]
    SmoothGrad,
    /// Mean of squares (`smoothgrad_sq`).
    #[serde(rename = "smoothgrad_sq")]
    SmoothGradSq,
    /// Variance `E[A²] − E[A]²` (`vargrad`).
    #[serde(rename = "vargrad")]
    VarGrad,
}

impl NoiseTunnelType {
    /// Every type, by Captum's name.
    pub const ALL: [NoiseTunnelType; 3] = [NoiseTunnelType::SmoothGrad, NoiseTunnelType::SmoothGradSq, NoiseTunnelType::VarGrad];

    /// Captum's name.
    pub fn name(self) -> &'static str {
        match self {
            NoiseTunnelType::SmoothGrad => "smoothgrad",
            NoiseTunnelType::SmoothGradSq => "smoothgrad_sq",
            NoiseTunnelType::VarGrad => "vargrad",
        }
    }
}

impl FromStr for NoiseTunnelType {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<NoiseTunnelType> {
        NoiseTunnelType::ALL.into_iter().find(|t| t.name() == s.trim()).ok_or_else(|| {
            AttribError::param("nt_type", format!("unknown noise tunnel type `{s}`; use smoothgrad, smoothgrad_sq or vargrad"))
        })
    }
}

/// Parameters of [`NoiseTunnel`]. Defaults (Captum's): `smoothgrad`, 5 samples, σ = 1.0
/// (absolute), all copies in one call unless the memory budget says otherwise; seed 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseTunnelParams {
    /// How copies are combined.
    pub nt_type: NoiseTunnelType,
    /// Number of noisy copies `M`.
    pub nt_samples: usize,
    /// Standard deviation of the noise: one value for all inputs or one per input.
    pub stdevs: Vec<f64>,
    /// Copies per call of the wrapped method at most (`None`: as many as the memory budget
    /// holds, all of them for usual inputs).
    pub nt_samples_batch_size: Option<usize>,
    /// Seed of the noise.
    pub seed: u64,
    /// Bytes that the noisy copies of one call of the wrapped method may take, at
    /// [`COPY_FACTOR`] times the bytes of one copy of the inputs (`None`: the default budget of
    /// the model's device, as for chunking).
    #[serde(default)]
    pub memory_budget: Option<u64>,
}

impl Default for NoiseTunnelParams {
    fn default() -> Self {
        NoiseTunnelParams {
            nt_type: NoiseTunnelType::SmoothGrad,
            nt_samples: 5,
            stdevs: vec![1.0],
            nt_samples_batch_size: None,
            seed: 0,
            memory_budget: None,
        }
    }
}

impl NoiseTunnelParams {
    /// Set the combination type.
    pub fn nt_type(mut self, t: NoiseTunnelType) -> Self {
        self.nt_type = t;
        self
    }
    /// Set the number of noisy copies.
    pub fn nt_samples(mut self, n: usize) -> Self {
        self.nt_samples = n;
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
    /// Copies per call of the wrapped method.
    pub fn nt_samples_batch_size(mut self, k: Option<usize>) -> Self {
        self.nt_samples_batch_size = k;
        self
    }
    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Bytes the noisy copies of one call of the wrapped method may take (`None`: the default
    /// budget of the model's device).
    pub fn memory_budget(mut self, bytes: Option<u64>) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Validate and wrap `inner`.
    pub fn check(self, inner: Box<dyn Attribution>) -> Result<NoiseTunnel> {
        if self.nt_samples == 0 {
            return Err(AttribError::param("nt_samples", "must be at least 1"));
        }
        if self.nt_samples_batch_size == Some(0) {
            return Err(AttribError::param("nt_samples_batch_size", "must be at least 1 (or unset)"));
        }
        if self.memory_budget == Some(0) {
            return Err(AttribError::param("memory_budget", "must be positive (or unset for the default)"));
        }
        check_stdevs(&self.stdevs)?;
        Ok(NoiseTunnel { params: self, inner })
    }
}

/// Repeat a tensor `m` times along dimension 0 (copy-major).
pub(crate) fn repeat_rows(t: &Tensor, m: i64) -> Result<Tensor> {
    let mut reps = vec![1i64; t.dim()];
    reps[0] = m;
    t.f_repeat(&reps).ctx("repeating rows")
}

/// A method evaluated on noisy copies of the inputs; see the [module docs](self).
pub struct NoiseTunnel {
    params: NoiseTunnelParams,
    inner: Box<dyn Attribution>,
}

impl std::fmt::Debug for NoiseTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseTunnel").field("params", &self.params).field("inner", &self.inner.info().name).finish()
    }
}

impl NoiseTunnel {
    /// Parameters with their defaults, to adjust and [`NoiseTunnelParams::check`].
    pub fn params() -> NoiseTunnelParams {
        NoiseTunnelParams::default()
    }

    /// Draw the noise of a call: one `[M · N, ...]` tensor per input (copy-major), from the seed,
    /// the same values that [`Attribution::attribute`] draws group by group (each row from its
    /// own keyed generator, [`crate::rng::normal_rows`]). `attribute_with_noise(draw_noise(x))`
    /// equals `attribute(x)`.
    pub fn draw_noise(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let n = inputs.first().and_then(|t| t.size().first().copied()).unwrap_or(0);
        let m = self.params.nt_samples as i64;
        let k = inputs.len();
        inputs
            .iter()
            .enumerate()
            .map(|(i, x)| or_zeros(self.noise_of(i, k, x, 0..m, n, NoiseSource::Seeded)?, x, m * n))
            .collect()
    }

    /// Attribute with the given noise instead of drawing it: `noise[i]` is `[M · N, ...]` for
    /// input `i`, row `s · N + j` being the noise of copy `s` of sample `j`. Used to compare with
    /// other implementations on identical draws. The noise of each group of copies is moved to
    /// the model's device when the group runs.
    pub fn attribute_with_noise(&self, model: &dyn Model, inputs: &Inputs, target: &Target, noise: &[Tensor]) -> Result<Attributions> {
        self.run(model, inputs, target, NoiseSource::Given(noise))
    }

    /// Copies of the batch per call of the wrapped method: `nt_samples_batch_size` (all copies
    /// when unset), and never more than the memory budget holds at [`COPY_FACTOR`] times the
    /// bytes of one copy of the inputs (at least one copy).
    pub fn copies_per_call(&self, inputs: &[Tensor], device: Device) -> usize {
        let m = self.params.nt_samples;
        let asked = self.params.nt_samples_batch_size.unwrap_or(m).min(m);
        let copy_bytes: u64 = inputs.iter().map(|t| (t.numel() as u64).saturating_mul(t.kind().elt_size_in_bytes() as u64)).sum();
        let budget = self.params.memory_budget.unwrap_or_else(|| default_budget(device));
        let fit = budget / copy_bytes.saturating_mul(COPY_FACTOR).max(1);
        asked.min(usize::try_from(fit).unwrap_or(usize::MAX)).max(1)
    }

    /// The noise of copies `copies` of input `i` of `k` (`x`: the input, `[N, ...]`), as
    /// `[len · N, ...]` of the input's dtype on its device; `None` for seeded noise of zero
    /// standard deviation.
    fn noise_of(&self, i: usize, k: usize, x: &Tensor, copies: Range<i64>, n: i64, source: NoiseSource) -> Result<Option<Tensor>> {
        match source {
            NoiseSource::Given(noise) => {
                let z = noise.get(i).ok_or_else(|| AttribError::param("noise", format!("no noise for input {i}")))?;
                given_noise(z, copies.start * n..copies.end * n, x.kind(), x.device()).map(Some)
            }
            NoiseSource::Seeded => seeded_noise(&self.params.stdevs, self.params.seed, i, k, x, copies.start * n..copies.end * n, n),
        }
    }

    /// The shared body of [`Attribution::attribute`] and [`NoiseTunnel::attribute_with_noise`]:
    /// the copies run in groups ([`NoiseTunnel::copies_per_call`]), each group's noise made
    /// when it runs, and the statistics accumulate copy by copy in copy order (so the grouping
    /// does not change the result, not even in the last bit).
    fn run(&self, model: &dyn Model, inputs: &Inputs, target: &Target, source: NoiseSource) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, BatchOptions::default())?;
        let p = eval.prepare(inputs, target)?;
        let n = p.n;
        let m_total = self.params.nt_samples as i64;
        self.check_source(source, &p.inputs, n * m_total)?;
        let host_targets = p.target.indices().map(<[i64]>::to_vec);
        let per_call = self.copies_per_call(&p.inputs, p.device) as i64;
        let mut stats = CopyStats::new(p.inputs.len());
        let mut c0 = 0i64;
        while c0 < m_total {
            let m = per_call.min(m_total - c0);
            let noisy = self.noisy_copies(&p, c0..c0 + m, source)?;
            let (extra, t) = repeated_call_args(&p, host_targets.as_deref(), target, m)?;
            // The wrapped method sees `m` stacked copies (of inputs that may themselves be
            // stacked copies, for a NoiseTunnel inside another): its per-row baselines and masks
            // of the original rows are tiled over them (attrib_core::baseline::tile_copies).
            let res = self.inner.attribute(model, &Inputs::multi(noisy).with_extra(extra).stacked_copies(m * inputs.copies()), &t)?;
            stats.add(res, m, n)?;
            c0 += m;
        }
        let (values, delta, sample_deltas) = stats.finish(self.params.nt_type, m_total)?;
        let mut meta = Metadata::new(self.info(), Attribution::params(self), host_targets, start.elapsed());
        meta.extra = json!({ "inner_method": self.inner.info().name, "sample_deltas": sample_deltas, "copies_per_call": per_call });
        Ok(Attributions { values, convergence_delta: delta, meta })
    }

    /// Check the noise of a call against the prepared `inputs`: seeded noise must stay within
    /// the inputs' dtypes; given noise must be one `[M · N, ...]` tensor (`rows = M · N`) per
    /// input.
    fn check_source(&self, source: NoiseSource, inputs: &[Tensor], rows: i64) -> Result<()> {
        if let NoiseSource::Seeded = source {
            check_noise_fits(&self.params.stdevs, inputs)?;
        }
        if let NoiseSource::Given(noise) = source {
            if noise.len() != inputs.len() {
                return Err(AttribError::param("noise", format!("{} noise tensors for {} inputs", noise.len(), inputs.len())));
            }
            check_noise_shapes("noise", noise, inputs, rows)?;
        }
        Ok(())
    }

    /// The noisy copies `copies` of every input of `p`, stacked copy-major (`[len · N, ...]`).
    fn noisy_copies(&self, p: &Prepared, copies: Range<i64>, source: NoiseSource) -> Result<Vec<Tensor>> {
        let (n, k, m) = (p.n, p.inputs.len(), copies.end - copies.start);
        p.inputs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let stacked = repeat_rows(x, m)?;
                match self.noise_of(i, k, x, copies.clone(), n, source)? {
                    Some(z) => stacked.f_add(&z).ctx("adding noise"),
                    None => Ok(stacked),
                }
            })
            .collect()
    }
}

/// The tensor forward arguments of `p` repeated for `m` stacked copies, and the target of the
/// copies: none, the same class, or the resolved per-row targets (`host_targets`) repeated.
fn repeated_call_args(p: &Prepared, host_targets: Option<&[i64]>, target: &Target, m: i64) -> Result<(Vec<ForwardArg>, Target)> {
    let extra: Vec<ForwardArg> = p
        .extra
        .iter()
        .map(|a| match a {
            ForwardArg::Tensor(t) => repeat_rows(t, m).map(ForwardArg::Tensor),
            other => Ok(other.shallow_clone()),
        })
        .collect::<Result<_>>()?;
    let t = match (host_targets, target) {
        (None, _) => Target::None,
        (Some(_), Target::Class(c)) => Target::Class(*c),
        (Some(h), _) => Target::PerSample((0..m).flat_map(|_| h.iter().copied()).collect()),
    };
    Ok((extra, t))
}

/// The statistics of the copies attributed so far, per input: the sums of the attributions and
/// of their squares, accumulated copy by copy in copy order (so that the grouping does not
/// change them), and the wrapped method's deltas of every group (`[m, N]` each).
struct CopyStats {
    sum: Vec<Option<Tensor>>,
    sum_sq: Vec<Option<Tensor>>,
    deltas: Vec<Tensor>,
}

impl CopyStats {
    /// No copies yet, for `k` inputs.
    fn new(k: usize) -> CopyStats {
        CopyStats { sum: (0..k).map(|_| None).collect(), sum_sq: (0..k).map(|_| None).collect(), deltas: Vec::new() }
    }

    /// Add the wrapped method's result `res` for a group of `m` copies of `n` rows, copy by copy.
    fn add(&mut self, res: Attributions, m: i64, n: i64) -> Result<()> {
        let k = self.sum.len();
        if res.values.len() != k {
            return Err(AttribError::Internal(format!("the wrapped method returned {} attributions for {k} inputs", res.values.len())));
        }
        for (i, v) in res.values.iter().enumerate() {
            let mut shape = v.size();
            if shape.first() != Some(&(m * n)) {
                return Err(AttribError::Internal(format!("the wrapped method returned shape {shape:?} for {} rows", m * n)));
            }
            shape[0] = n;
            shape.insert(0, m);
            let v = v.f_reshape(&shape).ctx("splitting copies")?;
            for c in 0..m {
                let a = v.f_select(0, c).ctx("splitting copies")?;
                let sq = a.f_square().ctx("squaring attributions")?;
                self.sum[i] = Some(accumulate(self.sum[i].take(), &a)?);
                self.sum_sq[i] = Some(accumulate(self.sum_sq[i].take(), &sq)?);
            }
        }
        if let Some(d) = res.convergence_delta {
            self.deltas.push(d.f_reshape([m, n]).ctx("splitting deltas")?);
        }
        Ok(())
    }

    /// After all `m_total` copies: the combined attribution of every input (by `nt_type`), the
    /// convergence delta (`smoothgrad` only: the mean of the copies' deltas per row) and the
    /// per-copy deltas (`[M][N]`, or null when the wrapped method has none).
    fn finish(self, nt_type: NoiseTunnelType, m_total: i64) -> Result<(Vec<Tensor>, Option<Tensor>, serde_json::Value)> {
        let inv = 1.0 / m_total as f64;
        let values: Vec<Tensor> = self
            .sum
            .into_iter()
            .zip(self.sum_sq)
            .map(|(s, q)| {
                let (Some(s), Some(q)) = (s, q) else {
                    return Err(AttribError::Internal("no noisy copy was attributed".into()));
                };
                let mean = s.f_mul_scalar(inv).ctx("averaging copies")?;
                let mean_sq = q.f_mul_scalar(inv).ctx("averaging copies")?;
                match nt_type {
                    NoiseTunnelType::SmoothGrad => Ok(mean),
                    NoiseTunnelType::SmoothGradSq => Ok(mean_sq),
                    NoiseTunnelType::VarGrad => mean.f_square().and_then(|m2| mean_sq.f_sub(&m2)).ctx("variance of copies"),
                }
            })
            .collect::<Result<_>>()?;
        if self.deltas.is_empty() {
            return Ok((values, None, serde_json::Value::Null));
        }
        let all = Tensor::f_cat(&self.deltas, 0).and_then(|d| d.f_to_kind(Kind::Double)).ctx("gathering deltas")?;
        let rows: Vec<Vec<f64>> = (0..m_total)
            .map(|s| all.f_select(0, s).ctx("reading deltas").and_then(|r| attrib_tensor::convert::tensor_to_vec_f64(&r)))
            .collect::<Result<_>>()?;
        let mean = all.f_mean_dim(Some([0i64].as_slice()), false, Kind::Double).ctx("mean delta")?;
        Ok((values, (nt_type == NoiseTunnelType::SmoothGrad).then_some(mean), json!(rows)))
    }
}

/// Where the noise of a call comes from.
#[derive(Clone, Copy)]
enum NoiseSource<'a> {
    /// Drawn per row from the seed, group by group ([`Attribution::attribute`]).
    Seeded,
    /// Given, `[M · N, ...]` per input ([`NoiseTunnel::attribute_with_noise`]).
    Given(&'a [Tensor]),
}

/// `acc + a` (in place when `acc` exists; a fresh copy of `a` otherwise, so that the sum never
/// keeps a group's attributions alive).
fn accumulate(acc: Option<Tensor>, a: &Tensor) -> Result<Tensor> {
    match acc {
        Some(mut acc) => {
            let _ = acc.f_add_(a).ctx("summing copies")?;
            Ok(acc)
        }
        None => {
            let mut fresh = a.f_empty_like().ctx("summing copies")?;
            fresh.f_copy_(a).ctx("summing copies")?;
            Ok(fresh)
        }
    }
}

impl Attribution for NoiseTunnel {
    fn info(&self) -> MethodInfo {
        let inner = self.inner.info();
        MethodInfo {
            name: "noise-tunnel",
            multiplies_by_inputs: inner.multiplies_by_inputs,
            has_convergence_delta: inner.has_convergence_delta && self.params.nt_type == NoiseTunnelType::SmoothGrad,
        }
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "nt_type": self.params.nt_type.name(),
            "nt_samples": self.params.nt_samples,
            "stdevs": self.params.stdevs,
            "nt_samples_batch_size": self.params.nt_samples_batch_size,
            "memory_budget": self.params.memory_budget,
            "seed": self.params.seed,
            "inner": { "method": self.inner.info().name, "params": self.inner.params() },
        })
    }

    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        self.inner.model_to_warm_up(model)
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        self.run(model, inputs, target, NoiseSource::Seeded)
    }
}
