//! Max-sensitivity (Yeh et al. 2019), with Captum's definition (`captum.metrics.sensitivity_max`),
//! and avg-sensitivity (Yeh et al. 2019; Quantus' `AvgSensitivity`) with the same conventions.
//!
//! For an attribution method `A`, row `x` and `S` perturbed copies `x̃_s`:
//!
//! ```text
//! sensitivity_max(x) = max_s ‖A(x̃_s) − A(x)‖ / ‖A(x)‖
//! avg_sensitivity(x) = (1/S) Σ_s ‖A(x̃_s) − A(x)‖ / ‖A(x)‖
//! ```
//!
//! Both come out of one pass over the copies ([`sensitivities`]); the two public entry points
//! only choose which aggregate to report.
//!
//! with the Frobenius norm over all elements of all inputs of the row (Captum's `norm_ord="fro"`),
//! and `‖A(x)‖` replaced by 1 where it is 0. The default perturbation is Captum's: uniform noise
//! in the L∞ ball of radius `perturb_radius = 0.02`, `x̃ = x + ε`, 10 copies per row.
//!
//! The method runs once on the inputs and once on all perturbed copies at once: the copies are
//! stacked copy-major (row `s·N + i` is copy `s` of sample `i`) and handed to the method as one
//! batch marked as stacked copies ([`Inputs::stacked_copies`]), so its per-row baselines and masks
//! follow their rows and its own chunked evaluation batches the model calls. Memory is bounded as
//! in the noise tunnel: at most [`SensitivityParams::max_copies_per_call`] copies per call of the
//! method, and never more than the memory budget holds at [`COPY_FACTOR`] times the bytes of one
//! copy of the inputs. [`Target::Argmax`] is resolved once, on the clean inputs; targets and tensor
//! forward arguments follow their rows.
//!
//! Noise comes from attrib's seeded generator, one keyed stream per row, so the result does not
//! depend on the grouping; [`sensitivity_max_with`] replays given perturbed inputs (Captum's
//! draws, for parity).

use crate::perturb::{check_copies, expanded_rows, Noise};
use attrib_core::{AttribError, Attribution, Attributions, BatchOptions, ForwardArg, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::memory::default_budget;
use attrib_tensor::Evaluator;
use tch::{Device, Kind, Tensor};

/// Memory held per perturbed copy while a group of copies is attributed, as a multiple of the
/// bytes of one copy of the inputs: the copy, its attribution, the difference to the clean
/// attribution and the method's own per-row state.
pub const COPY_FACTOR: u64 = 8;

/// Parameters of [`sensitivity_max`]. Defaults (Captum's): 10 copies, uniform noise of radius
/// 0.02; all copies in one call of the method unless the memory budget says otherwise; seed 0.
#[derive(Debug, Clone)]
pub struct SensitivityParams {
    /// Perturbed copies per row, `S`.
    pub n_perturb_samples: usize,
    /// The noise `ε`; the perturbed input is `x + ε`.
    pub noise: Noise,
    /// Copies per call of the method at most (`None`: all that the memory budget holds).
    pub max_copies_per_call: Option<usize>,
    /// Bytes the copies of one call may take at [`COPY_FACTOR`] times one copy of the inputs
    /// (`None`: the default budget of the model's device).
    pub memory_budget: Option<u64>,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for SensitivityParams {
    fn default() -> Self {
        SensitivityParams { n_perturb_samples: 10, noise: Noise::Uniform { radius: 0.02 }, max_copies_per_call: None, memory_budget: None, seed: 0 }
    }
}

/// The result of [`sensitivity_max`] or [`avg_sensitivity`].
#[derive(Debug)]
pub struct Sensitivity {
    /// Max- (or avg-) sensitivity per row.
    pub values: Vec<f64>,
    /// The method's attribution of the clean inputs.
    pub attributions: Attributions,
}

/// Where the perturbed copies come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Seeded,
    Given(&'a [Tensor]),
}

/// Max-sensitivity of `method` for `target` of `model` at `inputs`, with seeded perturbations;
/// see the [module docs](self).
pub fn sensitivity_max(method: &dyn Attribution, model: &dyn Model, inputs: &Inputs, target: &Target, params: &SensitivityParams) -> Result<Sensitivity> {
    let (both, attributions) = run(method, model, inputs, target, params, Source::Seeded)?;
    Ok(Sensitivity { values: both.max, attributions })
}

/// Avg-sensitivity of `method` for `target` of `model` at `inputs`, with seeded perturbations:
/// the mean over the copies where [`sensitivity_max`] takes the maximum (same draws, same
/// norms); see the [module docs](self).
pub fn avg_sensitivity(method: &dyn Attribution, model: &dyn Model, inputs: &Inputs, target: &Target, params: &SensitivityParams) -> Result<Sensitivity> {
    let (both, attributions) = run(method, model, inputs, target, params, Source::Seeded)?;
    Ok(Sensitivity { values: both.mean, attributions })
}

/// Max- and avg-sensitivity per row from one pass over the same perturbed copies.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivities {
    /// `max_s r_s` per row.
    pub max: Vec<f64>,
    /// `(1/S) Σ_s r_s` per row.
    pub mean: Vec<f64>,
}

/// Both aggregates of the ratios `r_s = ‖A(x̃_s) − A(x)‖ / ‖A(x)‖` with seeded perturbations,
/// and the clean attribution.
pub fn sensitivities(method: &dyn Attribution, model: &dyn Model, inputs: &Inputs, target: &Target, params: &SensitivityParams) -> Result<(Sensitivities, Attributions)> {
    run(method, model, inputs, target, params, Source::Seeded)
}

/// Max-sensitivity with the given perturbed inputs: per input `[S·N, ...]`, copy-major, with
/// `S = params.n_perturb_samples` (noise and seed unused).
pub fn sensitivity_max_with(
    method: &dyn Attribution,
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    perturbed: &[Tensor],
    params: &SensitivityParams,
) -> Result<Sensitivity> {
    let (both, attributions) = run(method, model, inputs, target, params, Source::Given(perturbed))?;
    Ok(Sensitivity { values: both.max, attributions })
}

/// Avg-sensitivity with the given perturbed inputs (as [`sensitivity_max_with`]).
pub fn avg_sensitivity_with(
    method: &dyn Attribution,
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    perturbed: &[Tensor],
    params: &SensitivityParams,
) -> Result<Sensitivity> {
    let (both, attributions) = run(method, model, inputs, target, params, Source::Given(perturbed))?;
    Ok(Sensitivity { values: both.mean, attributions })
}

/// The perturbed copies [`sensitivity_max`] draws (`[S·N, ...]` per input, copy-major):
/// `sensitivity_max_with(draw_perturbed(x))` equals `sensitivity_max(x)`.
pub fn draw_perturbed(inputs: &[Tensor], params: &SensitivityParams) -> Result<Vec<Tensor>> {
    params.noise.check("noise")?;
    let n = inputs.first().map_or(0, |x| x.size()[0]);
    let total = params.n_perturb_samples as i64 * n;
    inputs.iter().enumerate().map(|(i, x)| perturbed_rows(params, i, x, 0..total, Source::Seeded)).collect()
}

/// Rows `rows` of the perturbed copies of input `i` (`x`, on the model's device).
fn perturbed_rows(params: &SensitivityParams, i: usize, x: &Tensor, rows: std::ops::Range<i64>, source: Source) -> Result<Tensor> {
    match source {
        Source::Seeded => {
            let eps = params.noise.rows(params.seed, i, x, rows.clone())?;
            expanded_rows(x, rows)?.f_add(&eps).ctx("perturbing inputs")
        }
        Source::Given(given) => given[i]
            .f_narrow(0, rows.start, rows.end - rows.start)
            .and_then(|t| t.f_to_device(x.device()))
            .and_then(|t| t.f_to_kind(x.kind()))
            .ctx("moving perturbed inputs"),
    }
}

/// Copies of the batch per call of the method (at least 1).
fn copies_per_call(params: &SensitivityParams, inputs: &[Tensor], device: Device) -> i64 {
    let s = params.n_perturb_samples;
    let asked = params.max_copies_per_call.unwrap_or(s).min(s);
    let copy_bytes: u64 = inputs.iter().map(|t| (t.numel() as u64).saturating_mul(t.kind().elt_size_in_bytes() as u64)).sum();
    let budget = params.memory_budget.unwrap_or_else(|| default_budget(device));
    let fit = budget / copy_bytes.saturating_mul(COPY_FACTOR).max(1);
    asked.min(usize::try_from(fit).unwrap_or(usize::MAX)).max(1) as i64
}

fn repeat_rows(t: &Tensor, m: i64) -> Result<Tensor> {
    let mut reps = vec![1i64; t.dim()];
    reps[0] = m;
    t.f_repeat(&reps).ctx("repeating rows")
}

/// Per row, `[rows, F]` float64 on the CPU: the attribution of every input flattened and joined.
fn flat(values: &[Tensor], rows: i64) -> Result<Tensor> {
    let parts = values
        .iter()
        .map(|v| v.f_to_kind(Kind::Double).and_then(|v| v.f_reshape([rows, -1])).and_then(|v| v.f_to_device(Device::Cpu)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .ctx("flattening attributions")?;
    Tensor::f_cat(&parts, 1).ctx("joining attributions")
}

/// Frobenius (L2) norm of every row of `[rows, F]`.
fn row_norms(t: &Tensor) -> Result<Tensor> {
    t.f_square().and_then(|q| q.f_sum_dim_intlist(1, false, Kind::Double)).and_then(|q| q.f_sqrt()).ctx("norms of attributions")
}

fn run(method: &dyn Attribution, model: &dyn Model, inputs: &Inputs, target: &Target, params: &SensitivityParams, source: Source) -> Result<(Sensitivities, Attributions)> {
    let s = params.n_perturb_samples as i64;
    if s == 0 {
        return Err(AttribError::param("n_perturb_samples", "sensitivity needs at least 1 perturbed copy per row (default 10)"));
    }
    if params.max_copies_per_call == Some(0) {
        return Err(AttribError::param("max_copies_per_call", "must be at least 1 (or unset)"));
    }
    params.noise.check("noise")?;
    let eval = Evaluator::new(model, BatchOptions::default())?;
    let p = eval.prepare(inputs, target)?;
    let n = p.n;
    if let Source::Given(given) = source {
        check_copies("perturbed", given, &p.inputs, s)?;
    }
    let host_targets = p.target.indices().map(<[i64]>::to_vec);
    let resolved = match (&host_targets, target) {
        (None, _) => Target::None,
        (Some(_), Target::Class(c)) => Target::Class(*c),
        (Some(h), _) => Target::PerSample(h.clone()),
    };
    let clean = method.attribute(model, &Inputs::multi(p.inputs.iter().map(Tensor::shallow_clone).collect()).with_extra(p.extra.iter().map(ForwardArg::shallow_clone).collect()).stacked_copies(inputs.copies()), &resolved)?;
    if clean.values.len() != p.inputs.len() {
        return Err(AttribError::Internal(format!("the method returned {} attributions for {} inputs", clean.values.len(), p.inputs.len())));
    }
    let a0 = flat(&clean.values, n)?;
    let norm0 = row_norms(&a0)?;
    let norm0 = norm0.f_eq(0.0).and_then(|z| norm0.f_ones_like()?.f_where_self(&z, &norm0)).ctx("attribution norms")?;
    let per_call = copies_per_call(params, &p.inputs, p.device);
    let mut best: Option<Tensor> = None;
    let mut total: Option<Tensor> = None;
    let mut c0 = 0i64;
    while c0 < s {
        let m = per_call.min(s - c0);
        let rows = c0 * n..(c0 + m) * n;
        let noisy = p.inputs.iter().enumerate().map(|(i, x)| perturbed_rows(params, i, x, rows.clone(), source)).collect::<Result<Vec<_>>>()?;
        let extra = p
            .extra
            .iter()
            .map(|a| match a {
                ForwardArg::Tensor(t) => repeat_rows(t, m).map(ForwardArg::Tensor),
                other => Ok(other.shallow_clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        let t = match &resolved {
            Target::PerSample(h) => Target::PerSample((0..m).flat_map(|_| h.iter().copied()).collect()),
            other => other.clone(),
        };
        let res = method.attribute(model, &Inputs::multi(noisy).with_extra(extra).stacked_copies(m * inputs.copies()), &t)?;
        if res.values.len() != p.inputs.len() || res.values.iter().any(|v| v.size().first() != Some(&(m * n))) {
            return Err(AttribError::Internal("the method returned attributions of another shape for the perturbed copies".into()));
        }
        let a = flat(&res.values, m * n)?;
        let gap = a.f_sub(&expanded_rows(&a0, 0..m * n)?).ctx("attribution differences")?;
        let ratios = row_norms(&gap)?.f_reshape([m, n]).and_then(|g| g.f_div(&norm0)).ctx("attribution differences")?;
        let ratio = ratios.f_amax([0i64].as_slice(), false).ctx("maximum over copies")?;
        let sum = ratios.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Double).ctx("sum over copies")?;
        best = Some(match best {
            Some(b) => b.f_maximum(&ratio).ctx("maximum over copies")?,
            None => ratio,
        });
        total = Some(match total {
            Some(t) => t.f_add(&sum).ctx("sum over copies")?,
            None => sum,
        });
        c0 += m;
    }
    let (max, mean) = match (best, total) {
        (Some(b), Some(t)) => (attrib_tensor::convert::tensor_to_vec_f64(&b)?, attrib_tensor::convert::tensor_to_vec_f64(&t.f_div_scalar(s as f64).ctx("mean over copies")?)?),
        _ => return Err(AttribError::Internal("no perturbed copy was attributed".into())),
    };
    Ok((Sensitivities { max, mean }, clean))
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::FnModel;
    use attrib_gradient::{InputXGradient, Saliency};

    /// f(x) = x · w on 4 features (float64), 3 rows.
    fn linear() -> (FnModel<'static>, Tensor, Tensor) {
        let w = Tensor::from_slice(&[1.5f64, -2.0, 0.5, 3.0]);
        let wm = w.shallow_clone();
        let x = Tensor::from_slice(&[1.0f64, 2.0, -1.0, 0.5, 0.2, 0.4, 0.6, 0.8, -3.0, 1.0, 2.0, -0.5]).reshape([3, 4]);
        (FnModel::new(move |x: &Tensor| x.matmul(&wm)), w, x)
    }

    #[test]
    fn avg_sensitivity_of_input_x_gradient_is_the_mean_ratio() {
        let (model, w, x) = linear();
        let inputs = Inputs::new(x.shallow_clone());
        let ixg = InputXGradient::params().check().unwrap();
        let params = SensitivityParams { n_perturb_samples: 5, noise: Noise::Uniform { radius: 0.1 }, seed: 4, ..Default::default() };
        let perturbed = draw_perturbed(&[x.shallow_clone()], &params).unwrap();
        let avg = avg_sensitivity_with(&ixg, &model, &inputs, &Target::None, &perturbed, &params).unwrap();
        assert_eq!(avg_sensitivity(&ixg, &model, &inputs, &Target::None, &params).unwrap().values, avg.values);
        let max = sensitivity_max(&ixg, &model, &inputs, &Target::None, &params).unwrap();
        // Closed form: A(x̃) − A(x) = w ⊙ ε, so r_s = ‖w ⊙ ε_s‖ / ‖w ⊙ x‖.
        let eps = (&perturbed[0] - x.repeat([5, 1])).reshape([5, 3, 4]);
        let num = (&eps * &w).square().sum_dim_intlist([2i64].as_slice(), false, Kind::Double).sqrt();
        let den = (&x * &w).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double).sqrt();
        let ratios = num / den;
        let want_avg = Vec::<f64>::try_from(ratios.mean_dim([0i64].as_slice(), false, Kind::Double)).unwrap();
        let want_max = Vec::<f64>::try_from(ratios.amax([0i64].as_slice(), false)).unwrap();
        for i in 0..3 {
            assert!((avg.values[i] - want_avg[i]).abs() < 1e-12, "{:?} vs {want_avg:?}", avg.values);
            assert!((max.values[i] - want_max[i]).abs() < 1e-12);
            assert!(avg.values[i] <= max.values[i] && avg.values[i] > 0.0);
        }
        // Groups of copies per call change nothing.
        let grouped = SensitivityParams { max_copies_per_call: Some(2), ..params.clone() };
        let g = avg_sensitivity(&ixg, &model, &inputs, &Target::None, &grouped).unwrap();
        for (a, b) in g.values.iter().zip(&avg.values) {
            assert!((a - b).abs() < 1e-12);
        }
        // Saliency of a linear model does not move.
        let sal = Saliency::params().check().unwrap();
        assert!(avg_sensitivity(&sal, &model, &inputs, &Target::None, &params).unwrap().values.iter().all(|v| *v == 0.0));
        let e = avg_sensitivity(&sal, &model, &inputs, &Target::None, &SensitivityParams { n_perturb_samples: 0, ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
    }
}
