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
//! The noisy copies are stacked copy-major (row `s · N + i` is copy `s` of sample `i`) and
//! handed to the wrapped method as one batch (or `nt_samples_batch_size` copies at a time), so
//! the wrapped method's own chunked evaluation batches them. Targets and tensor forward
//! arguments follow their rows; [`Target::Argmax`] is resolved once on the clean inputs. Per-row
//! baselines and masks of the wrapped method (shape `[N, ...]`) are repeated over the copies by
//! the core's broadcasting rule.
//!
//! Noise comes from attrib's seeded generator ([`crate::rng`]); Captum's draws differ, so results
//! agree with Captum in distribution, or exactly when the same noise is passed to
//! [`NoiseTunnel::attribute_with_noise`].
//!
//! The convergence delta (when the wrapped method has one) is reported for `smoothgrad` only, as
//! the mean of the copies' deltas per row (the delta of the averaged attribution against the
//! averaged output gap); the per-copy deltas are in `meta.extra["sample_deltas"]` (`[M][N]`).

use crate::rng::Rng;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, ForwardArg, Inputs, Metadata, MethodInfo, Model, Result, Target,
    TorchResultExt,
};
use attrib_tensor::Evaluator;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::str::FromStr;
use std::time::Instant;
use tch::{Kind, Tensor};

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
/// (absolute), all copies in one call; seed 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseTunnelParams {
    /// How copies are combined.
    pub nt_type: NoiseTunnelType,
    /// Number of noisy copies `M`.
    pub nt_samples: usize,
    /// Standard deviation of the noise: one value for all inputs or one per input.
    pub stdevs: Vec<f64>,
    /// Copies per call of the wrapped method (`None`: all at once).
    pub nt_samples_batch_size: Option<usize>,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for NoiseTunnelParams {
    fn default() -> Self {
        NoiseTunnelParams {
            nt_type: NoiseTunnelType::SmoothGrad,
            nt_samples: 5,
            stdevs: vec![1.0],
            nt_samples_batch_size: None,
            seed: 0,
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

    /// Validate and wrap `inner`.
    pub fn check(self, inner: Box<dyn Attribution>) -> Result<NoiseTunnel> {
        if self.nt_samples == 0 {
            return Err(AttribError::param("nt_samples", "must be at least 1"));
        }
        if self.nt_samples_batch_size == Some(0) {
            return Err(AttribError::param("nt_samples_batch_size", "must be at least 1 (or unset)"));
        }
        check_stdevs(&self.stdevs)?;
        Ok(NoiseTunnel { params: self, inner })
    }
}

pub(crate) fn check_stdevs(stdevs: &[f64]) -> Result<()> {
    if stdevs.is_empty() {
        return Err(AttribError::param("stdevs", "give one standard deviation (or one per input)"));
    }
    if let Some(bad) = stdevs.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(AttribError::param("stdevs", format!("standard deviations must be finite and >= 0, got {bad}")));
    }
    Ok(())
}

/// The standard deviation of input `i` of `k`.
pub(crate) fn stdev_of(stdevs: &[f64], i: usize, k: usize) -> Result<f64> {
    match stdevs.len() {
        1 => Ok(stdevs[0]),
        m if m == k => Ok(stdevs[i]),
        m => Err(AttribError::param("stdevs", format!("{m} standard deviations for {k} inputs; give one, or one per input"))),
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

    /// Draw the noise of a call: one `[M · N, ...]` tensor per input (copy-major), from the seed.
    pub fn draw_noise(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut rng = Rng::new(self.params.seed);
        let m = self.params.nt_samples as i64;
        let k = inputs.len();
        inputs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mut shape = x.size();
                shape[0] *= m;
                let s = stdev_of(&self.params.stdevs, i, k)?;
                if s == 0.0 {
                    return Tensor::f_zeros(&shape, (x.kind(), x.device())).ctx("zero noise");
                }
                rng.normal_tensor(&shape, s, x.kind(), x.device())
            })
            .collect()
    }

    /// Attribute with the given noise instead of drawing it: `noise[i]` is `[M · N, ...]` for
    /// input `i`, row `s · N + j` being the noise of copy `s` of sample `j`. Used to compare with
    /// other implementations on identical draws.
    pub fn attribute_with_noise(&self, model: &dyn Model, inputs: &Inputs, target: &Target, noise: &[Tensor]) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, BatchOptions::default())?;
        let p = eval.prepare(inputs, target)?;
        let n = p.n;
        let m_total = self.params.nt_samples as i64;
        if noise.len() != p.inputs.len() {
            return Err(AttribError::param("noise", format!("{} noise tensors for {} inputs", noise.len(), p.inputs.len())));
        }
        for (i, (z, x)) in noise.iter().zip(&p.inputs).enumerate() {
            let mut want = x.size();
            want[0] *= m_total;
            if z.size() != want {
                return Err(AttribError::param("noise", format!("noise of input {i} has shape {:?}, expected {want:?}", z.size())));
            }
        }
        let noise: Vec<Tensor> = noise
            .iter()
            .zip(&p.inputs)
            .map(|(z, x)| z.f_to_kind(x.kind()).and_then(|z| z.f_to_device(x.device())).ctx("moving noise"))
            .collect::<Result<_>>()?;
        let host_targets = p.target.indices().map(<[i64]>::to_vec);
        let per_call = self.params.nt_samples_batch_size.unwrap_or(self.params.nt_samples).min(self.params.nt_samples) as i64;
        let k = p.inputs.len();
        let mut sum: Vec<Option<Tensor>> = (0..k).map(|_| None).collect();
        let mut sum_sq: Vec<Option<Tensor>> = (0..k).map(|_| None).collect();
        let mut deltas: Vec<Tensor> = Vec::new();
        let mut c0 = 0i64;
        while c0 < m_total {
            let m = per_call.min(m_total - c0);
            let noisy: Vec<Tensor> = p
                .inputs
                .iter()
                .zip(&noise)
                .map(|(x, z)| Ok(repeat_rows(x, m)? + z.f_narrow(0, c0 * n, m * n).ctx("slicing noise")?))
                .collect::<Result<_>>()?;
            let extra: Vec<ForwardArg> = p
                .extra
                .iter()
                .map(|a| match a {
                    ForwardArg::Tensor(t) => repeat_rows(t, m).map(ForwardArg::Tensor),
                    other => Ok(other.shallow_clone()),
                })
                .collect::<Result<_>>()?;
            let t = match (&host_targets, target) {
                (None, _) => Target::None,
                (Some(_), Target::Class(c)) => Target::Class(*c),
                (Some(h), _) => Target::PerSample((0..m).flat_map(|_| h.iter().copied()).collect()),
            };
            // Per-row baselines and masks of the wrapped method follow the stacked copies
            // (attrib_core::baseline::broadcast_rows).
            let res = self.inner.attribute(model, &Inputs::multi(noisy).with_extra(extra), &t)?;
            for (i, v) in res.values.iter().enumerate() {
                let mut shape = v.size();
                shape[0] = n;
                shape.insert(0, m);
                let v = v.f_reshape(&shape).ctx("splitting copies")?;
                let s = v.f_sum_dim_intlist(Some([0i64].as_slice()), false, v.kind()).ctx("summing copies")?;
                let sq = v.f_square().and_then(|q| q.f_sum_dim_intlist(Some([0i64].as_slice()), false, v.kind())).ctx("summing squares")?;
                sum[i] = Some(match sum[i].take() {
                    Some(a) => a + s,
                    None => s,
                });
                sum_sq[i] = Some(match sum_sq[i].take() {
                    Some(a) => a + sq,
                    None => sq,
                });
            }
            if let Some(d) = res.convergence_delta {
                deltas.push(d.f_reshape([m, n]).ctx("splitting deltas")?);
            }
            c0 += m;
        }
        let inv = 1.0 / m_total as f64;
        let values: Vec<Tensor> = sum
            .into_iter()
            .zip(sum_sq)
            .map(|(s, q)| {
                let mean = s.expect("summed") * inv;
                let mean_sq = q.expect("summed") * inv;
                match self.params.nt_type {
                    NoiseTunnelType::SmoothGrad => mean,
                    NoiseTunnelType::SmoothGradSq => mean_sq,
                    NoiseTunnelType::VarGrad => mean_sq - mean.square(),
                }
            })
            .collect();
        let (delta, sample_deltas) = if deltas.is_empty() {
            (None, serde_json::Value::Null)
        } else {
            let all = Tensor::f_cat(&deltas, 0).ctx("gathering deltas")?.to_kind(Kind::Double);
            let rows: Vec<Vec<f64>> = (0..m_total).map(|s| attrib_tensor::convert::tensor_to_vec_f64(&all.get(s))).collect::<Result<_>>()?;
            let mean = all.f_mean_dim(Some([0i64].as_slice()), false, Kind::Double).ctx("mean delta")?;
            ((self.params.nt_type == NoiseTunnelType::SmoothGrad).then_some(mean), json!(rows))
        };
        let mut meta = Metadata::new(self.info(), Attribution::params(self), host_targets, start.elapsed());
        meta.extra = json!({ "inner_method": self.inner.info().name, "sample_deltas": sample_deltas });
        Ok(Attributions { values, convergence_delta: delta, meta })
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
            "seed": self.params.seed,
            "inner": { "method": self.inner.info().name, "params": self.inner.params() },
        })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        inputs.validate()?;
        let device = model.device();
        let xs: Vec<Tensor> = inputs.tensors().iter().map(|t| t.to_device(device)).collect();
        let noise = self.draw_noise(&xs)?;
        self.attribute_with_noise(model, inputs, target, &noise)
    }
}
