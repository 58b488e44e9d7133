//! LIME (Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?"), with Captum's defaults:
//! a weighted linear surrogate fitted to the model's outputs on random coalitions of feature
//! groups.
//!
//! Each sample is a binary vector `z` over the groups (Captum's default `perturb_func`: every
//! group independently on with probability ½); the model sees the input with the groups that
//! are off at the baseline, `x̃ = z∘x + (1 − z)∘b`. The sample's weight is the exponential kernel
//! of its distance to the input in the input space, `exp(−d(x, x̃)² / (2 w²))` with
//! `d = 1 − cos(x, x̃)` (all inputs flattened and joined; each norm clamped at 1e-8 as in
//! PyTorch's `CosineSimilarity`) or the Euclidean distance, and kernel width `w = 1`. The
//! surrogate is scikit-learn's `Lasso(alpha=0.01)` by default (or ridge / plain least squares),
//! with an unpenalised intercept; the attribution of a group is its coefficient. The original
//! input is not added to the samples (Captum does not either).
//!
//! Differences from Captum: the coalitions are drawn once and shared by all rows of the batch
//! (Captum draws per row; the distribution is the same), from attrib's generator (seeds do not
//! carry over; parity tests replay Captum's draws through [`LimeParams::coalitions`]); the
//! weights are computed in closed form from per-group sums (`⟨x_g, x_g⟩`, `⟨x_g, b_g⟩`,
//! `⟨b_g, b_g⟩`), never from the perturbed rows; the fits of all rows are batched
//! (`solve::fit_surrogate`). A background distribution (baseline samples) fits each
//! sample and averages the coefficients.

use super::kernel_shap::check_coalitions;
use super::solve::{fit_surrogate, Surrogate};
use crate::ablation::mask_json;
use crate::coalition::{baseline_sets, coalition_outputs, group_values_to_elements};
use crate::engine::Groups;
use crate::permutation::SplitMix64;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, FeatureMask, Inputs, Metadata, MethodInfo, Model, Result,
    Target, TorchResultExt,
};
use attrib_tensor::{Evaluator, Prepared};
use serde_json::json;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The distance of LIME's similarity kernel (Captum's `distance_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// `1 − cos(x, x̃)` (Captum's default).
    Cosine,
    /// `‖x − x̃‖₂`.
    Euclidean,
}

/// Parameters of [`Lime`]. Defaults as Captum's `Lime`: 25 samples, zero baselines, one group
/// per scalar element, cosine distance with kernel width 1, `Lasso(alpha=0.01)`; seed 0.
#[derive(Debug)]
pub struct LimeParams {
    /// The value a feature that is off takes (default zeros); a
    /// [`attrib_core::Baseline::Distribution`] fits each sample and averages the coefficients.
    pub baselines: Baselines,
    /// One mask per input; `None`: every scalar element is its own group.
    pub feature_mask: Option<Vec<FeatureMask>>,
    /// Samples (model evaluations) per row.
    pub n_samples: usize,
    /// Seed of the coalition draws.
    pub seed: u64,
    /// The interpretable model.
    pub surrogate: Surrogate,
    /// Distance of the similarity kernel.
    pub distance: Distance,
    /// Width of the similarity kernel.
    pub kernel_width: f64,
    /// Coalitions given instead of drawn (`[m, G]`, 0/1 or Bool, columns in increasing group
    /// id). For replaying another implementation's draws.
    pub coalitions: Option<Tensor>,
    /// Chunking of the sample rows.
    pub batch: BatchOptions,
}

impl Default for LimeParams {
    fn default() -> Self {
        LimeParams {
            baselines: Baselines::default(),
            feature_mask: None,
            n_samples: 25,
            seed: 0,
            surrogate: Surrogate::Lasso { alpha: 0.01 },
            distance: Distance::Cosine,
            kernel_width: 1.0,
            coalitions: None,
            batch: BatchOptions::default(),
        }
    }
}

impl LimeParams {
    /// Set the baselines (a [`attrib_core::Baseline`] or one per input).
    pub fn baselines(mut self, baselines: impl Into<Baselines>) -> Self {
        self.baselines = baselines.into();
        self
    }

    /// Group the elements of a single-input model with `mask`.
    pub fn feature_mask(mut self, mask: FeatureMask) -> Self {
        self.feature_mask = Some(vec![mask]);
        self
    }

    /// One mask per input (a group id shared by several inputs is one interpretable feature).
    pub fn feature_masks(mut self, masks: Vec<FeatureMask>) -> Self {
        self.feature_mask = Some(masks);
        self
    }

    /// Samples per row.
    pub fn n_samples(mut self, n: usize) -> Self {
        self.n_samples = n;
        self
    }

    /// Seed of the coalition draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The interpretable model.
    pub fn surrogate(mut self, s: Surrogate) -> Self {
        self.surrogate = s;
        self
    }

    /// Distance of the similarity kernel.
    pub fn distance(mut self, d: Distance) -> Self {
        self.distance = d;
        self
    }

    /// Width of the similarity kernel.
    pub fn kernel_width(mut self, w: f64) -> Self {
        self.kernel_width = w;
        self
    }

    /// Use these coalitions (`[m, G]`) instead of drawing.
    pub fn coalitions(mut self, z: Tensor) -> Self {
        self.coalitions = Some(z);
        self
    }

    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`Lime`].
    pub fn check(self) -> Result<Lime> {
        if self.n_samples < 1 && self.coalitions.is_none() {
            return Err(AttribError::param("n_samples", "LIME needs at least one sample per row"));
        }
        if !(self.kernel_width.is_finite() && self.kernel_width > 0.0) {
            return Err(AttribError::param("kernel_width", format!("must be a positive number; got {}", self.kernel_width)));
        }
        if let Surrogate::Lasso { alpha } | Surrogate::Ridge { alpha } = self.surrogate {
            if !(alpha.is_finite() && alpha >= 0.0) {
                return Err(AttribError::param("alpha", format!("the penalty must be a finite number ≥ 0; got {alpha}")));
            }
        }
        let coalitions = self.coalitions.as_ref().map(|z| check_coalitions(z, "coalitions")).transpose()?;
        Ok(Lime { params: LimeParams { batch: self.batch.check()?, coalitions, ..self } })
    }
}

/// LIME: the coefficients of a weighted linear surrogate (lasso by default) fitted to the model's
/// outputs on random coalitions of feature groups, given to every element of the group.
#[derive(Debug)]
pub struct Lime {
    params: LimeParams,
}

impl Lime {
    /// Parameters with their defaults, to adjust and [`LimeParams::check`].
    pub fn params() -> LimeParams {
        LimeParams::default()
    }

    /// The samples for `g` groups: given, or `n_samples` rows of independent fair coin flips.
    fn samples(&self, g: usize, device: Device) -> Result<Tensor> {
        let ctx = "LIME samples";
        if let Some(z) = &self.params.coalitions {
            if z.size()[1] != g as i64 {
                return Err(AttribError::param(
                    "coalitions",
                    format!("the given coalitions have {} columns; these inputs and masks make {g} feature groups", z.size()[1]),
                ));
            }
            return z.f_to_device(device).ctx(ctx);
        }
        let m = self.params.n_samples;
        let mut rng = SplitMix64(self.params.seed);
        // 64 coin flips per draw.
        let mut bits = 0u64;
        let flat: Vec<bool> = (0..m * g)
            .map(|i| {
                if i % 64 == 0 {
                    bits = rng.next();
                }
                (bits >> (i % 64)) & 1 == 1
            })
            .collect();
        Tensor::f_from_slice(&flat).and_then(|t| t.f_reshape([m as i64, g as i64])).and_then(|t| t.f_to_device(device)).ctx(ctx)
    }
}

/// Per-row, per-group sums over the elements of each group, `[n, G]` float64 each: `⟨x, x⟩`,
/// `⟨x, b⟩`, `⟨b, b⟩` and `‖x − b‖²`.
fn group_sums(p: &Prepared, groups: &Groups, base: &[Tensor]) -> Result<[Tensor; 4]> {
    let ctx = "LIME kernel sums";
    let g = groups.groups.len() as i64;
    let zero = || Tensor::f_zeros([p.n, g], (Kind::Double, p.device)).ctx(ctx);
    let mut sums = [zero()?, zero()?, zero()?, zero()?];
    for (k, (x, b)) in p.inputs.iter().zip(base).enumerate() {
        let x = x.f_to_kind(Kind::Double).and_then(|t| t.f_reshape([p.n, -1])).ctx(ctx)?;
        let b = b.f_to_kind(Kind::Double).and_then(|t| t.f_reshape([p.n, -1])).ctx(ctx)?;
        let index = groups.block_of_elements(k)?.f_expand(x.size(), false).ctx(ctx)?;
        let terms = [x.f_mul(&x), x.f_mul(&b), b.f_mul(&b), x.f_sub(&b).and_then(|d| d.f_square())];
        for (sum, term) in sums.iter_mut().zip(terms) {
            *sum = sum.f_scatter_add(1, &index, &term.ctx(ctx)?).ctx(ctx)?;
        }
    }
    Ok(sums)
}

/// The similarity weights `[m, n]` of the samples `z` (`[m, G]` Bool) for every row.
fn similarity_weights(p: &Prepared, groups: &Groups, base: &[Tensor], z: &Tensor, distance: Distance, width: f64) -> Result<Tensor> {
    let ctx = "LIME similarity weights";
    let [xx, xb, bb, dd] = group_sums(p, groups, base)?;
    let on = z.f_to_kind(Kind::Double).ctx(ctx)?;
    let off = on.f_neg().and_then(|t| t.f_add_scalar(1.0)).ctx(ctx)?;
    let mix = |a: &Tensor, b: &Tensor| -> Result<Tensor> {
        let first = on.f_matmul(&a.f_tr().ctx(ctx)?).ctx(ctx)?;
        let second = off.f_matmul(&b.f_tr().ctx(ctx)?).ctx(ctx)?;
        first.f_add(&second).ctx(ctx)
    };
    let d2 = match distance {
        Distance::Cosine => {
            let eps = 1e-8;
            let dot = mix(&xx, &xb)?; // ⟨x, x̃⟩
            let perturbed = mix(&xx, &bb)?.f_clamp_min(0.0).and_then(|t| t.f_sqrt()).and_then(|t| t.f_clamp_min(eps)).ctx(ctx)?;
            let own = xx.f_sum_dim_intlist(1, false, Kind::Double).and_then(|t| t.f_sqrt()).and_then(|t| t.f_clamp_min(eps)).ctx(ctx)?;
            let cos = dot.f_div(&perturbed).and_then(|c| c.f_div(&own.f_unsqueeze(0)?)).ctx(ctx)?;
            cos.f_neg().and_then(|c| c.f_add_scalar(1.0)).and_then(|d| d.f_square()).ctx(ctx)?
        }
        Distance::Euclidean => off.f_matmul(&dd.f_tr().ctx(ctx)?).ctx(ctx)?,
    };
    d2.f_div_scalar(-2.0 * width * width).and_then(|t| t.f_exp()).ctx(ctx)
}

impl Attribution for Lime {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "lime", multiplies_by_inputs: true, has_convergence_delta: false }
    }

    fn params(&self) -> serde_json::Value {
        let alpha = match self.params.surrogate {
            Surrogate::Lasso { alpha } | Surrogate::Ridge { alpha } => Some(alpha),
            Surrogate::Linear => None,
        };
        json!({
            "n_samples": self.params.n_samples,
            "seed": self.params.seed,
            "surrogate": self.params.surrogate.name(),
            "alpha": alpha,
            "distance": match self.params.distance { Distance::Cosine => "cosine", Distance::Euclidean => "euclidean" },
            "kernel_width": self.params.kernel_width,
            "coalitions": self.params.coalitions.as_ref().map(Tensor::size),
            "feature_mask_shapes": mask_json(&self.params.feature_mask),
            "baselines": self.params.baselines.describe(),
            "batch": self.params.batch,
        })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let ctx = "LIME";
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let groups = Groups::resolve(self.params.feature_mask.as_deref(), &p.inputs, inputs.copies(), p.device)?;
        let g = groups.groups.len() as i64;
        let z = self.samples(g as usize, p.device)?;
        let m = z.size()[0];
        let sets = baseline_sets(&self.params.baselines, &p, inputs.copies())?;
        let mut ys = Vec::with_capacity(sets.len());
        let mut ws = Vec::with_capacity(sets.len());
        for base in &sets {
            ys.push(coalition_outputs(&eval, &p, &groups, base, &z)?);
            ws.push(similarity_weights(&p, &groups, base, &z, self.params.distance, self.params.kernel_width)?);
        }
        let y = Tensor::f_cat(&ys, 1).ctx(ctx)?; // [m, S·n]
        let w = Tensor::f_cat(&ws, 1).ctx(ctx)?;
        let (beta, _) = fit_surrogate(&z, &w, &y, self.params.surrogate)?; // [G, S·n]
        let s = sets.len() as i64;
        let phi = beta.f_reshape([g, s, p.n]).and_then(|b| b.f_mean_dim(1, false, Kind::Double)).ctx(ctx)?;
        let values = group_values_to_elements(&p, &groups, &phi)?;
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = json!({
            "groups": g,
            "samples": m,
            "baseline_samples": s,
            "model_rows": m * p.n * s,
            "chunk_rows": eval.forward_chunk_rows(),
        });
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::{FnModel, Inputs};

    #[test]
    fn weights_equal_the_kernel_on_explicit_perturbed_rows() {
        // Two inputs, a group spanning both, a non-zero baseline: the closed-form weights equal
        // the kernel computed on the perturbed rows built element by element.
        tch::manual_seed(4);
        let a = Tensor::randn([2, 3], (Kind::Double, Device::Cpu));
        let b = Tensor::randn([2, 2], (Kind::Double, Device::Cpu));
        let model = FnModel::multi(|xs: &[Tensor]| xs[0].sum_dim_intlist(1, false, Kind::Double) + xs[1].sum_dim_intlist(1, false, Kind::Double));
        let eval = Evaluator::new(&model, BatchOptions::default()).unwrap();
        let p = eval.prepare(&Inputs::multi(vec![a.shallow_clone(), b.shallow_clone()]), &Target::None).unwrap();
        let masks = [FeatureMask::new(Tensor::from_slice(&[0i64, 1, 1])).unwrap(), FeatureMask::new(Tensor::from_slice(&[1i64, 2])).unwrap()];
        let groups = Groups::resolve(Some(&masks), &p.inputs, 1, Device::Cpu).unwrap();
        let base = vec![Tensor::randn([2, 3], (Kind::Double, Device::Cpu)), Tensor::randn([2, 2], (Kind::Double, Device::Cpu))];
        let z = Tensor::from_slice(&[true, false, true, false, false, false, true, true, true, false, true, false]).reshape([4, 3]);
        let group_of = [vec![0usize, 1, 1], vec![1, 2]];
        for distance in [Distance::Cosine, Distance::Euclidean] {
            let w = similarity_weights(&p, &groups, &base, &z, distance, 0.7).unwrap();
            for j in 0..4 {
                for i in 0..2 {
                    let mut orig = Vec::new();
                    let mut pert = Vec::new();
                    for (k, x) in [&a, &b].iter().enumerate() {
                        for (e, &gk) in group_of[k].iter().enumerate() {
                            let xv = x.double_value(&[i, e as i64]);
                            let bv = base[k].double_value(&[i, e as i64]);
                            orig.push(xv);
                            pert.push(if z.int64_value(&[j, gk as i64]) != 0 { xv } else { bv });
                        }
                    }
                    let dot: f64 = orig.iter().zip(&pert).map(|(u, v)| u * v).sum();
                    let nu = orig.iter().map(|u| u * u).sum::<f64>().sqrt();
                    let nv = pert.iter().map(|u| u * u).sum::<f64>().sqrt();
                    let d = match distance {
                        Distance::Cosine => 1.0 - dot / (nu * nv),
                        Distance::Euclidean => orig.iter().zip(&pert).map(|(u, v)| (u - v).powi(2)).sum::<f64>().sqrt(),
                    };
                    let expect = (-d * d / (2.0 * 0.49)).exp();
                    let got = w.double_value(&[j, i]);
                    assert!((got - expect).abs() < 1e-12, "{distance:?} sample {j} row {i}: {got} vs {expect}");
                }
            }
        }
    }

    #[test]
    fn samples_are_fair_coins_and_seeded() {
        let lime = Lime::params().n_samples(4000).seed(3).check().unwrap();
        let z = lime.samples(5, Device::Cpu).unwrap();
        let mean = z.to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!(z.equal(&lime.samples(5, Device::Cpu).unwrap()));
        let other = Lime::params().n_samples(4000).seed(4).check().unwrap();
        assert!(!z.equal(&other.samples(5, Device::Cpu).unwrap()));
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Lime::params().n_samples(0).check().is_err());
        assert!(Lime::params().kernel_width(0.0).check().is_err());
        assert!(Lime::params().surrogate(Surrogate::Lasso { alpha: -1.0 }).check().is_err());
        assert!(Lime::params().surrogate(Surrogate::Ridge { alpha: f64::NAN }).check().is_err());
    }
}
