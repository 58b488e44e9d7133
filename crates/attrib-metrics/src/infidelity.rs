//! Infidelity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations"), with
//! Captum's definition (`captum.metrics.infidelity`).
//!
//! For an attribution `Φ` of row `x`, `S` perturbations `I_s` with perturbed inputs `x̃_s`:
//!
//! ```text
//! infidelity(x) = (1/S) Σ_s ( Σ_e Φ_e · I_{s,e}  −  (f(x) − f(x̃_s)) )²
//! ```
//!
//! where `f` is the target output. With `normalize` (Captum's option) the attribution is first
//! scaled by the `β` that minimises the sum, `β = Σ_s d_s δ_s / Σ_s d_s²` with `d_s = Σ_e Φ_e I_{s,e}`
//! and `δ_s = f(x) − f(x̃_s)` (`β = Σ d δ` when `Σ d² = 0`, as Captum's `safe_div`), so that the
//! value does not change when the attribution is multiplied by a constant:
//! `(1/S) (β² Σ d² − 2β Σ d δ + Σ δ²)`.
//!
//! # Perturbations
//!
//! Captum takes any `perturb_func`. attrib draws the noise `ε ~` [`Noise`] from its seeded
//! generator, sets `x̃ = x − ε`, and takes
//!
//! * `I = ε` for local attributions (saliency, guided backprop, methods with
//!   `multiply_by_inputs = false`): Captum's `infidelity_perturb_func_decorator(False)`;
//! * `I = (x − x̃) / (x − b)` with the baseline `b` (zeros by default; 1 in place of a zero
//!   denominator) when [`InfidelityParams::multiply_by_inputs`] is set, for global attributions
//!   (input × gradient, integrated gradients): Captum's `infidelity_perturb_func_decorator(True)`.
//!   Then `Σ Φ·I = Σ (Φ / (x − b)) · ε`, which is the first-order change of `f` for input ×
//!   gradient, so its infidelity is 0 on a linear model.
//!
//! Explicit perturbations ([`Perturbations`], `[S·N, ...]` per input, copy-major) replay any
//! other perturbation function, Captum's draws included ([`infidelity_with`]).
//!
//! The clean rows and all `S·N` perturbed rows form one expanded batch (the clean rows are its
//! first block) evaluated through the shared [`Evaluator`], so the model is called as few times
//! as the memory budget allows and perturbed rows are built chunk by chunk. Seeded perturbations
//! of float32 and float64 inputs are built on the host in one pass per chunk, on the calling
//! thread: the noise drawn, `x̃ = x − ε` written and `Σ Φ·I` summed together, with no noise
//! tensor and no expanded copies of the inputs and attributions (`fill.rs`).

use crate::fill::{fill_perturbed, host_input, HostInput};
use crate::perturb::{check_copies, expanded_rows, safe_div, Noise};
use std::cell::RefCell;
use attrib_core::{AttribError, BatchOptions, Baselines, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded, Prepared};
use std::ops::Range;
use tch::{Kind, Tensor};

/// Parameters of [`infidelity`]. Defaults: 10 perturbations (Captum's `n_perturb_samples`),
/// Gaussian noise of standard deviation 0.1 (attrib's choice: Captum has no default
/// perturbation), `I = ε` (local attributions), zero baselines, no normalisation, seed 0.
#[derive(Debug)]
pub struct InfidelityParams {
    /// Perturbations per row, `S`.
    pub n_perturb_samples: usize,
    /// The noise `ε`; the perturbed input is `x − ε`.
    pub noise: Noise,
    /// `I = (x − x̃)/(x − b)` instead of `I = x − x̃` (for attributions that multiply by inputs).
    pub multiply_by_inputs: bool,
    /// The baseline `b` of `multiply_by_inputs` (default zeros: Captum's `baselines=None`).
    pub baselines: Baselines,
    /// Scale the attribution by the best `β` first (Captum's `normalize`).
    pub normalize: bool,
    /// Seed of the noise.
    pub seed: u64,
    /// Chunking of the model calls (Captum's `max_examples_per_batch` is `max_batch`).
    pub batch: BatchOptions,
}

impl Default for InfidelityParams {
    fn default() -> Self {
        InfidelityParams {
            n_perturb_samples: 10,
            noise: Noise::Gaussian { stdev: 0.1 },
            multiply_by_inputs: false,
            baselines: Baselines::default(),
            normalize: false,
            seed: 0,
            batch: BatchOptions::default(),
        }
    }
}

/// Explicit perturbations for [`infidelity_with`]: per input, `[S·N, ...]` tensors, copy-major
/// (row `s·N + i` is perturbation `s` of sample `i`).
#[derive(Debug)]
pub struct Perturbations {
    /// The perturbations `I`, one tensor per input.
    pub perturbations: Vec<Tensor>,
    /// The perturbed inputs `x̃`, one tensor per input.
    pub perturbed: Vec<Tensor>,
}

/// Where the perturbations of a call come from.
enum Source<'a> {
    Seeded,
    Given(&'a Perturbations),
}

/// Infidelity of `attributions` (one tensor per input, shaped like it) for `target` of `model` at
/// `inputs`, one value per row, with seeded perturbations; see the [module docs](self).
pub fn infidelity(model: &dyn Model, inputs: &Inputs, target: &Target, attributions: &[Tensor], params: &InfidelityParams) -> Result<Vec<f64>> {
    run(model, inputs, target, attributions, params, Source::Seeded)
}

/// Infidelity with the given perturbations (`S = params.n_perturb_samples` copies); the noise,
/// seed, baselines and `multiply_by_inputs` of `params` are not used.
pub fn infidelity_with(
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    attributions: &[Tensor],
    perturbations: &Perturbations,
    params: &InfidelityParams,
) -> Result<Vec<f64>> {
    run(model, inputs, target, attributions, params, Source::Given(perturbations))
}

/// The perturbations [`infidelity`] draws for `inputs` (on the inputs' device), to inspect or to
/// replay: `infidelity_with(draw_perturbations(x))` equals `infidelity(x)`.
pub fn draw_perturbations(inputs: &[Tensor], params: &InfidelityParams) -> Result<Perturbations> {
    params.noise.check("noise")?;
    let baselines = params.baselines.resolve(inputs)?;
    let n = inputs.first().map_or(0, |x| x.size()[0]);
    let total = params.n_perturb_samples as i64 * n;
    let (mut perturbations, mut perturbed) = (Vec::new(), Vec::new());
    for (i, (x, b)) in inputs.iter().zip(&baselines).enumerate() {
        let (pert, xt) = seeded_rows(params, i, x, b, 0..total)?;
        perturbations.push(pert);
        perturbed.push(xt);
    }
    Ok(Perturbations { perturbations, perturbed })
}

/// Perturbation and perturbed input of rows `rows` (copy-major over `x`'s samples) of input `i`.
fn seeded_rows(params: &InfidelityParams, i: usize, x: &Tensor, b: &Tensor, rows: Range<i64>) -> Result<(Tensor, Tensor)> {
    let eps = params.noise.rows(params.seed, i, x, rows.clone())?;
    let xs = expanded_rows(x, rows.clone())?;
    let perturbed = xs.f_sub(&eps).ctx("perturbing inputs")?;
    let perturbation = if params.multiply_by_inputs {
        let gap = expanded_rows(b, rows)?.f_neg().and_then(|nb| nb.f_add(&xs)).ctx("input minus baseline")?;
        safe_div(&eps, &gap)?
    } else {
        eps
    };
    Ok((perturbation, perturbed))
}

/// Error unless there is one attribution per input, shaped like it.
pub(crate) fn check_attributions(attributions: &[Tensor], inputs: &[Tensor]) -> Result<()> {
    if attributions.len() != inputs.len() {
        return Err(AttribError::InputShape(format!(
            "{} attribution tensors for {} inputs; pass one per input",
            attributions.len(),
            inputs.len()
        )));
    }
    for (i, (a, x)) in attributions.iter().zip(inputs).enumerate() {
        if a.size() != x.size() {
            return Err(AttribError::InputShape(format!(
                "the attribution of input {i} has shape {:?}, the input {:?}; they must match",
                a.size(),
                x.size()
            )));
        }
    }
    Ok(())
}

fn run(model: &dyn Model, inputs: &Inputs, target: &Target, attributions: &[Tensor], params: &InfidelityParams, source: Source) -> Result<Vec<f64>> {
    if params.n_perturb_samples == 0 {
        return Err(AttribError::param("n_perturb_samples", "infidelity needs at least 1 perturbation per row (default 10)"));
    }
    params.noise.check("noise")?;
    let eval = Evaluator::new(model, params.batch)?;
    let p = eval.prepare(inputs, target)?;
    check_attributions(attributions, &p.inputs)?;
    let s = params.n_perturb_samples as i64;
    if let Source::Given(given) = source {
        check_copies("perturbations", &given.perturbations, &p.inputs, s)?;
        check_copies("perturbed", &given.perturbed, &p.inputs, s)?;
    }
    let attrs: Vec<Tensor> = attributions
        .iter()
        .map(|a| a.f_detach().and_then(|a| a.f_to_device(p.device)))
        .collect::<std::result::Result<_, _>>()
        .ctx("moving attributions to the model's device")?;
    let baselines = match source {
        Source::Seeded if params.multiply_by_inputs => params.baselines.resolve(&p.inputs)?,
        _ => p.inputs.iter().map(|x| x.f_zeros_like()).collect::<std::result::Result<_, _>>().ctx("zero baselines")?,
    };
    let (fx, fx_pert, dots) = evaluate(&eval, &p, &attrs, &baselines, params, &source)?;
    reduce(&fx, &fx_pert, &dots, p.n, s, params.normalize)
}

/// One expanded batch: block 0 the clean rows, blocks `1..=S` the perturbed ones. Returns
/// `f(x)` `[N]`, `f(x̃)` `[S·N]` and the dot products `Σ Φ·I` `[S·N]` (float64).
fn evaluate(
    eval: &Evaluator,
    p: &Prepared,
    attrs: &[Tensor],
    baselines: &[Tensor],
    params: &InfidelityParams,
    source: &Source,
) -> Result<(Tensor, Tensor, Tensor)> {
    let n = p.n;
    let s = params.n_perturb_samples as i64;
    let host = match source {
        Source::Seeded => host_inputs(p, attrs, baselines, params)?,
        Source::Given(_) => None,
    };
    // Dot products of the host fill, by row of the perturbed blocks.
    let host_dots = RefCell::new(vec![0.0f64; (s * n) as usize]);
    let dots = Tensor::f_zeros([s * n], (Kind::Double, p.device)).ctx("allocating dot products")?;
    let batch = Expanded::new(n, (s + 1) * n, |start, end| {
        let clean = start.min(n)..end.min(n);
        let pert = (start.max(n) - n)..(end.max(n) - n);
        let mut out: Vec<Vec<Tensor>> = p.inputs.iter().map(|_| Vec::with_capacity(2)).collect();
        if !clean.is_empty() {
            for (o, x) in out.iter_mut().zip(&p.inputs) {
                o.push(x.f_narrow(0, clean.start, clean.end - clean.start).ctx("slicing inputs")?);
            }
        }
        if !pert.is_empty() {
            match &host {
                Some(h) => {
                    // Rebuilding a chunk (after running out of memory) writes the same values.
                    let mut dots = host_dots.borrow_mut();
                    let d = &mut dots[pert.start as usize..pert.end as usize];
                    d.iter_mut().for_each(|v| *v = 0.0);
                    for (i, (o, hi)) in out.iter_mut().zip(h).enumerate() {
                        o.push(hi.perturbed(params, i, pert.clone(), d, &p.inputs[i], p.device)?);
                    }
                }
                None => {
                    let d = tensor_rows_of(p, attrs, baselines, params, source, pert.clone(), &mut out)?;
                    dots.f_narrow(0, pert.start, pert.end - pert.start).and_then(|mut v| v.f_copy_(&d)).ctx("storing dot products")?;
                }
            }
        }
        out.into_iter()
            .map(|mut parts| if parts.len() == 1 { Ok(parts.swap_remove(0)) } else { Tensor::f_cat(&parts, 0).ctx("joining rows") })
            .collect()
    })
    .rows_like(&p.inputs);
    let out = eval.forward(p, &batch)?.f_to_kind(Kind::Double).ctx("reading outputs")?;
    drop(batch);
    let dots = match host {
        Some(_) => Tensor::f_from_slice(&host_dots.into_inner()).ctx("storing dot products")?,
        None => dots,
    };
    let fx = out.f_narrow(0, 0, n).ctx("clean outputs")?;
    let fx_pert = out.f_narrow(0, n, s * n).ctx("perturbed outputs")?;
    Ok((fx, fx_pert, dots))
}

/// The perturbed rows `pert` of every input as tensor operations (replayed perturbations, and
/// seeded ones of dtypes the host fill does not write), appended to `out`; returns their dot
/// products `Σ Φ·I` (float64, on the device).
fn tensor_rows_of(
    p: &Prepared,
    attrs: &[Tensor],
    baselines: &[Tensor],
    params: &InfidelityParams,
    source: &Source,
    pert: Range<i64>,
    out: &mut [Vec<Tensor>],
) -> Result<Tensor> {
    let mut dot: Option<Tensor> = None;
    for (i, x) in p.inputs.iter().enumerate() {
        let (perturbation, perturbed) = match source {
            Source::Seeded => seeded_rows(params, i, x, &baselines[i], pert.clone())?,
            Source::Given(g) => {
                let take = |t: &Tensor| {
                    t.f_narrow(0, pert.start, pert.end - pert.start).and_then(|t| t.f_to_device(p.device)).ctx("moving perturbations")
                };
                let xt = take(&g.perturbed[i])?.f_to_kind(x.kind()).ctx("converting perturbed inputs")?;
                (take(&g.perturbations[i])?, xt)
            }
        };
        let a = expanded_rows(&attrs[i], pert.clone())?;
        let d = a
            .f_mul(&perturbation)
            .and_then(|t| t.f_reshape([pert.end - pert.start, -1]))
            .and_then(|t| t.f_sum_dim_intlist(1, false, Kind::Double))
            .ctx("attribution times perturbation")?;
        dot = Some(match dot {
            Some(acc) => acc.f_add(&d).ctx("summing over inputs")?,
            None => d,
        });
        out[i].push(perturbed);
    }
    dot.ok_or_else(|| AttribError::Internal("no inputs".into()))
}

/// One input read to the host for the seeded fill ([`crate::fill`]).
enum HostAny {
    F32(HostInput<f32>),
    F64(HostInput<f64>),
}

impl HostAny {
    /// Perturbed rows `rows` of input `i` as a tensor like `x` on `device`; adds their dot
    /// products to `dots`.
    fn perturbed(&self, params: &InfidelityParams, i: usize, rows: Range<i64>, dots: &mut [f64], x: &Tensor, device: tch::Device) -> Result<Tensor> {
        let mut shape = x.size();
        shape[0] = rows.end - rows.start;
        let t = match self {
            HostAny::F32(h) => Tensor::f_from_slice(&fill_perturbed(params.noise, params.seed, i, h, rows, dots)),
            HostAny::F64(h) => Tensor::f_from_slice(&fill_perturbed(params.noise, params.seed, i, h, rows, dots)),
        };
        t.and_then(|t| t.f_reshape(&shape)).and_then(|t| t.f_to_device(device)).ctx("making perturbed rows")
    }
}

/// The inputs and the weights of the dot products on the host, when every input is float32 or
/// float64 (`None`: the tensor path). With `I = ε` the weights are the attributions; with
/// `I = ε / (x − b)` they are `Φ / (x − b)` (1 in place of a zero denominator), since
/// `Σ Φ·ε/(x − b) = Σ (Φ/(x − b))·ε`.
fn host_inputs(p: &Prepared, attrs: &[Tensor], baselines: &[Tensor], params: &InfidelityParams) -> Result<Option<Vec<HostAny>>> {
    if !p.inputs.iter().all(|x| matches!(x.kind(), Kind::Float | Kind::Double)) {
        return Ok(None);
    }
    p.inputs
        .iter()
        .zip(attrs.iter().zip(baselines))
        .map(|(x, (a, b))| {
            let w = if params.multiply_by_inputs {
                let gap = x.f_sub(b).ctx("input minus baseline")?;
                safe_div(&a.f_to_kind(Kind::Double).ctx("widening attributions")?, &gap.f_to_kind(Kind::Double).ctx("widening")?)?
            } else {
                a.shallow_clone()
            };
            Ok(if x.kind() == Kind::Float { HostAny::F32(host_input(x, &w)?) } else { HostAny::F64(host_input(x, &w)?) })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Per row: the mean squared gap (normalised or not) over the `S` copies.
fn reduce(fx: &Tensor, fx_pert: &Tensor, dots: &Tensor, n: i64, s: i64, normalize: bool) -> Result<Vec<f64>> {
    let fx = fx.f_to_device(tch::Device::Cpu).ctx("reading outputs")?;
    let delta = fx
        .f_unsqueeze(0)
        .and_then(|f| f.f_sub(&fx_pert.f_reshape([s, n])?.f_to_device(tch::Device::Cpu)?))
        .ctx("output differences")?;
    let d = dots.f_reshape([s, n]).and_then(|d| d.f_to_device(tch::Device::Cpu)).ctx("reading dot products")?;
    let (delta, d) = (tensor_rows(&delta)?, tensor_rows(&d)?);
    let mut values = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let (mut a, mut b, mut c, mut plain) = (0.0, 0.0, 0.0, 0.0);
        for k in 0..s as usize {
            let (dk, fk) = (d[k][i], delta[k][i]);
            a += dk * dk;
            b += dk * fk;
            c += fk * fk;
            plain += (dk - fk) * (dk - fk);
        }
        let v = if normalize {
            let beta = b / if a != 0.0 { a } else { 1.0 };
            beta * beta * a - 2.0 * beta * b + c
        } else {
            plain
        };
        values.push(v / s as f64);
    }
    Ok(values)
}

fn tensor_rows(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    Vec::<Vec<f64>>::try_from(t).map_err(|e| AttribError::Conversion(e.to_string()))
}
