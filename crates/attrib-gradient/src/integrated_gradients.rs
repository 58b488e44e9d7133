//! Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep
//! Networks"), with a fixed step count or an adaptive one.
//!
//! For input `x`, baseline `x'` and target output `F`:
//!
//! ```text
//! IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂F(x' + α (x − x')) / ∂x_i dα
//!         ≈ (x_i − x'_i) · Σ_k w_k ∂F(x' + α_k (x − x')) / ∂x_i
//! ```
//!
//! with the nodes `α_k` and weights `w_k` of a [`Quadrature`] rule. Completeness says
//! `Σ_i IG_i = F(x) − F(x')`; the returned convergence delta is, per row,
//! `Σ_i IG_i − (F(x) − F(x'))` (Captum's sign convention), summed over all inputs of a
//! multi-input model.
//!
//! All steps of all rows form one logical batch of `n_steps · N` rows, step-major (row
//! `k · N + i` is step `k` of sample `i`, as Captum concatenates them); the shared evaluator cuts
//! it into chunks sized from the memory budget and the weighted gradients are summed chunk by
//! chunk, so memory stays bounded whatever the step count.
//!
//! **Adaptive steps** (not in Captum): with a tolerance, rows whose `|delta|` exceeds it are
//! refined — the step count grows (×2 for Gauss–Legendre and the left/right rules, ×3 for the
//! midpoint rule, `2n − 1` for the trapezoid) until every row meets the tolerance or the next
//! refinement would pass `max_steps`. The Riemann rules are nested under these refinements, so
//! only the new nodes are evaluated and the earlier gradients are reused; Gauss–Legendre nodes
//! are not nested, so a refined Gauss–Legendre row is evaluated afresh. Only unconverged rows are
//! re-evaluated. The steps used, evaluations spent and whether each row converged are reported in
//! [`Metadata::extra`](attrib_core::Metadata) under `"adaptive"`.

use crate::path::{convergence_delta, endpoint_outputs, path_gradient_sum};
use attrib_tensor::convert::tensor_to_vec_f64;
use crate::quadrature::Quadrature;
use attrib_core::{
    AttribError, Attribution, Attributions, BatchOptions, Baselines, Inputs, Metadata, MethodInfo, Model, PlannedRows, Result, Target,
    TorchResultExt,
};
use attrib_tensor::{Evaluator, Prepared};
use serde_json::json;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Default number of integration steps (Captum's `n_steps=50`).
pub const DEFAULT_STEPS: usize = 50;
/// Default cap on the step count of adaptive IG.
pub const DEFAULT_MAX_STEPS: usize = 1024;

/// Parameters of [`IntegratedGradients`]. Defaults: zero baselines, 50 steps, Gauss–Legendre,
/// fixed steps (no tolerance), step cap 1024 for the adaptive mode.
#[derive(Debug)]
pub struct IntegratedGradientsParams {
    /// Reference inputs `x'` (zeros by default; scalars, tensors broadcasting to the input, one
    /// per input for multi-input models).
    pub baselines: Baselines,
    /// Number of quadrature nodes (initial count in adaptive mode).
    pub n_steps: usize,
    /// The quadrature rule.
    pub quadrature: Quadrature,
    /// Adaptive mode: largest acceptable `|delta|` per row (in the units of the model's output).
    pub tolerance: Option<f64>,
    /// Adaptive mode: the step count never exceeds this.
    pub max_steps: usize,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl Default for IntegratedGradientsParams {
    fn default() -> Self {
        IntegratedGradientsParams {
            baselines: Baselines::default(),
            n_steps: DEFAULT_STEPS,
            quadrature: Quadrature::default(),
            tolerance: None,
            max_steps: DEFAULT_MAX_STEPS,
            batch: BatchOptions::default(),
        }
    }
}

impl IntegratedGradientsParams {
    /// Set the baselines.
    pub fn baselines(mut self, baselines: impl Into<Baselines>) -> Self {
        self.baselines = baselines.into();
        self
    }
    /// Set the number of steps.
    pub fn n_steps(mut self, n_steps: usize) -> Self {
        self.n_steps = n_steps;
        self
    }
    /// Set the quadrature rule.
    pub fn quadrature(mut self, quadrature: Quadrature) -> Self {
        self.quadrature = quadrature;
        self
    }
    /// Switch to adaptive steps with this tolerance on `|delta|` (`None`: fixed steps).
    pub fn tolerance(mut self, tolerance: Option<f64>) -> Self {
        self.tolerance = tolerance;
        self
    }
    /// Set the step cap of the adaptive mode.
    pub fn max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }
    /// Set the batching options.
    pub fn batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Validate into a ready-to-use [`IntegratedGradients`].
    pub fn check(self) -> Result<IntegratedGradients> {
        let min = self.quadrature.min_steps();
        if self.n_steps < min {
            return Err(AttribError::param(
                "n_steps",
                format!("{} needs at least {min} step(s), got {}", self.quadrature.name(), self.n_steps),
            ));
        }
        if let Some(t) = self.tolerance {
            if !(t.is_finite() && t > 0.0) {
                return Err(AttribError::param("tolerance", format!("must be a positive finite number, got {t}")));
            }
            if self.max_steps < self.n_steps {
                return Err(AttribError::param(
                    "max_steps",
                    format!("the step cap ({}) is below the initial step count ({})", self.max_steps, self.n_steps),
                ));
            }
        }
        let batch = self.batch.check()?;
        Ok(IntegratedGradients { params: IntegratedGradientsParams { batch, ..self } })
    }
}

/// Integrated Gradients; see the [module docs](self) for the formula and the adaptive mode.
///
/// Multiplies by `x − x'`; returns a convergence delta per row.
#[derive(Debug)]
pub struct IntegratedGradients {
    params: IntegratedGradientsParams,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        IntegratedGradients { params: IntegratedGradientsParams::default() }
    }
}

impl IntegratedGradients {
    /// Parameters with their defaults, to adjust and [`IntegratedGradientsParams::check`].
    pub fn params() -> IntegratedGradientsParams {
        IntegratedGradientsParams::default()
    }

    /// The validated parameters.
    pub fn settings(&self) -> &IntegratedGradientsParams {
        &self.params
    }
}

/// How an adaptive refinement adds nodes: the new nodes, their (unnormalised) coefficients, the
/// new step count, the scale of the accumulated sum, and whether earlier sums are kept.
struct Level {
    alphas: Vec<f64>,
    coeffs: Vec<f64>,
    steps: usize,
    scale: f64,
    reuse: bool,
}

/// The first level of a rule: all nodes, with coefficients relative to `scale`.
fn first_level(q: Quadrature, n: usize) -> Result<Level> {
    let (alphas, weights) = q.nodes(n)?;
    let scale = match q {
        Quadrature::GaussLegendre => 1.0,
        Quadrature::RiemannTrapezoid => 1.0 / (n as f64 - 1.0),
        _ => 1.0 / n as f64,
    };
    let coeffs = weights.iter().map(|w| w / scale).collect();
    Ok(Level { alphas, coeffs, steps: n, scale, reuse: true })
}

/// The refinement of an `n`-step rule, or `None` when it would pass `cap`.
fn refine(q: Quadrature, n: usize, cap: usize) -> Result<Option<Level>> {
    let next = match q {
        Quadrature::GaussLegendre | Quadrature::RiemannLeft | Quadrature::RiemannRight => 2 * n,
        Quadrature::RiemannMiddle => 3 * n,
        Quadrature::RiemannTrapezoid => 2 * n - 1,
    };
    if next > cap || next <= n {
        return Ok(None);
    }
    let nf = next as f64;
    let level = match q {
        Quadrature::GaussLegendre => {
            let (alphas, coeffs) = q.nodes(next)?;
            Level { alphas, coeffs, steps: next, scale: 1.0, reuse: false }
        }
        // Left and right rules both gain the odd multiples of 1/(2n).
        Quadrature::RiemannLeft | Quadrature::RiemannRight => Level {
            alphas: (0..n).map(|j| (2 * j + 1) as f64 / nf).collect(),
            coeffs: vec![1.0; n],
            steps: next,
            scale: 1.0 / nf,
            reuse: true,
        },
        Quadrature::RiemannMiddle => Level {
            alphas: (0..next).filter(|k| k % 3 != 1).map(|k| (k as f64 + 0.5) / nf).collect(),
            coeffs: vec![1.0; 2 * n],
            steps: next,
            scale: 1.0 / nf,
            reuse: true,
        },
        Quadrature::RiemannTrapezoid => Level {
            alphas: (0..n - 1).map(|j| (2 * j + 1) as f64 / (nf - 1.0)).collect(),
            coeffs: vec![1.0; n - 1],
            steps: next,
            scale: 1.0 / (nf - 1.0),
            reuse: true,
        },
    };
    Ok(Some(level))
}

impl IntegratedGradients {
    fn fixed(&self, eval: &Evaluator, p: &Prepared, base: &[Tensor], diff: &[Tensor]) -> Result<(Vec<Tensor>, Tensor)> {
        let (alphas, weights) = self.params.quadrature.nodes(self.params.n_steps)?;
        let ps = path_gradient_sum(eval, p, base, diff, &alphas, &weights)?;
        let values: Vec<Tensor> =
            ps.sums.iter().zip(diff).map(|(g, d)| g.f_mul(d).ctx("multiplying by x - baseline")).collect::<Result<_>>()?;
        let (f_x, f_b) = endpoint_outputs(eval, p, &p.inputs, base, ps.at_end, ps.at_start)?;
        let delta = convergence_delta(&values, &f_x, &f_b)?;
        Ok((values, delta))
    }

    fn adaptive(
        &self,
        eval: &Evaluator,
        p: &Prepared,
        base: &[Tensor],
        diff: &[Tensor],
        tol: f64,
    ) -> Result<(Vec<Tensor>, Tensor, serde_json::Value)> {
        let q = self.params.quadrature;
        let n = p.n as usize;
        let device = p.device;
        let (f_x, f_b) = endpoint_outputs(eval, p, &p.inputs, base, None, None)?;
        let gap = f_x.f_to_kind(Kind::Double).and_then(|a| a.f_sub(&f_b.f_to_kind(Kind::Double)?)).ctx("output gaps")?;
        let mut raw: Vec<Tensor> = diff.iter().map(|d| d.f_zeros_like().ctx("allocating sums")).collect::<Result<_>>()?;
        let mut scale = vec![0f64; n];
        let mut steps = vec![0usize; n];
        let mut evaluations = vec![0usize; n];
        let mut converged = vec![false; n];
        let mut active: Vec<i64> = (0..n as i64).collect();
        let mut level = first_level(q, self.params.n_steps)?;
        let mut levels = 0usize;
        let mut values: Vec<Tensor>;
        let mut delta: Tensor;
        loop {
            levels += 1;
            let sub = if active.len() == n { None } else { Some(p.select_rows(&active)?) };
            let sp = sub.as_ref().unwrap_or(p);
            let idx = Tensor::f_from_slice(&active).and_then(|i| i.f_to_device(device)).ctx("moving row indices")?;
            let (sb, sd): (Vec<Tensor>, Vec<Tensor>) = if sub.is_some() {
                (
                    base.iter().map(|b| b.f_index_select(0, &idx).ctx("selecting baselines")).collect::<Result<_>>()?,
                    diff.iter().map(|d| d.f_index_select(0, &idx).ctx("selecting paths")).collect::<Result<_>>()?,
                )
            } else {
                (base.iter().map(|b| b.shallow_clone()).collect(), diff.iter().map(|d| d.shallow_clone()).collect())
            };
            let ps = path_gradient_sum(eval, sp, &sb, &sd, &level.alphas, &level.coeffs)?;
            for (r, s) in raw.iter_mut().zip(&ps.sums) {
                if level.reuse {
                    let _ = r.f_index_add_(0, &idx, s).ctx("accumulating refined sums")?;
                } else {
                    let _ = r.f_index_copy_(0, &idx, s).ctx("replacing refined sums")?;
                }
            }
            for &i in &active {
                scale[i as usize] = level.scale;
                steps[i as usize] = level.steps;
                evaluations[i as usize] += level.alphas.len();
            }
            values = raw
                .iter()
                .zip(diff)
                .map(|(r, d)| {
                    let col = crate::path::column(&scale, d.dim(), d)?;
                    r.f_mul(&col).and_then(|v| v.f_mul(d)).ctx("scaling refined sums")
                })
                .collect::<Result<_>>()?;
            delta = crate::path::row_sums(&values)?.f_sub(&gap).ctx("convergence delta")?;
            let host = tensor_to_vec_f64(&delta)?;
            active.retain(|&i| {
                let ok = host[i as usize].abs() <= tol;
                converged[i as usize] = ok;
                !ok
            });
            if active.is_empty() {
                break;
            }
            match refine(q, level.steps, self.params.max_steps)? {
                Some(next) => level = next,
                None => break,
            }
        }
        let extra = json!({
            "adaptive": {
                "tolerance": tol,
                "max_steps": self.params.max_steps,
                "steps_per_row": steps,
                "evaluations_per_row": evaluations,
                "converged": converged,
                "all_converged": converged.iter().all(|&c| c),
                "unconverged_rows": converged.iter().enumerate().filter(|(_, &c)| !c).map(|(i, _)| i).collect::<Vec<_>>(),
                "levels": levels,
            }
        });
        Ok((values, delta, extra))
    }
}

impl Attribution for IntegratedGradients {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "integrated-gradients", multiplies_by_inputs: true, has_convergence_delta: true }
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        json!({
            "baselines": p.baselines.describe(),
            "n_steps": p.n_steps,
            "quadrature": p.quadrature.name(),
            "tolerance": p.tolerance,
            "max_steps": p.tolerance.map(|_| p.max_steps),
            "batch": p.batch,
        })
    }

    /// The path points of the first (in adaptive mode: the initial) step count, and the
    /// forward pass of the inputs and baselines for the convergence delta.
    fn planned_rows(&self, inputs: &Inputs) -> Option<PlannedRows> {
        Some(PlannedRows::per_sample(inputs, i64::try_from(self.params.n_steps).ok()?, true)?.with_forward(inputs, 2))
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.params.batch)?;
        let p = eval.prepare(inputs, target)?;
        let base = self.params.baselines.resolve_copies(&p.inputs, inputs.copies())?;
        let diff: Vec<Tensor> =
            p.inputs.iter().zip(&base).map(|(x, b)| x.f_sub(b).ctx("x - baseline")).collect::<Result<_>>()?;
        let (values, delta, extra) = match self.params.tolerance {
            None => {
                let (v, d) = self.fixed(&eval, &p, &base, &diff)?;
                (v, d, serde_json::Value::Null)
            }
            Some(tol) => self.adaptive(&eval, &p, &base, &diff, tol)?,
        };
        let mut meta =
            Metadata::new(self.info(), Attribution::params(self), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        meta.extra = extra;
        Ok(Attributions { values, convergence_delta: Some(delta), meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refinements_are_nested() {
        // The refined node set is the union of the old nodes and the new ones, and the
        // coefficients times the scale reproduce the rule's own weights.
        for q in [Quadrature::RiemannLeft, Quadrature::RiemannRight, Quadrature::RiemannMiddle, Quadrature::RiemannTrapezoid] {
            let first = first_level(q, 4).unwrap();
            let next = refine(q, 4, 100).unwrap().unwrap();
            let mut all: Vec<(f64, f64)> = first
                .alphas
                .iter()
                .zip(&first.coeffs)
                .chain(next.alphas.iter().zip(&next.coeffs))
                .map(|(&a, &c)| (a, c * next.scale))
                .collect();
            all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            let (a, w) = q.nodes(next.steps).unwrap();
            assert_eq!(all.len(), a.len(), "{q}");
            for ((x, c), (y, v)) in all.iter().zip(a.iter().zip(&w)) {
                assert!((x - y).abs() < 1e-12 && (c - v).abs() < 1e-12, "{q}: ({x}, {c}) vs ({y}, {v})");
            }
        }
        assert!(refine(Quadrature::GaussLegendre, 600, 1024).unwrap().is_none());
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(IntegratedGradients::params().n_steps(0).check().is_err());
        assert!(IntegratedGradients::params().n_steps(1).quadrature(Quadrature::RiemannTrapezoid).check().is_err());
        assert!(IntegratedGradients::params().tolerance(Some(0.0)).check().is_err());
        assert!(IntegratedGradients::params().tolerance(Some(-1.0)).check().is_err());
        assert!(IntegratedGradients::params().tolerance(Some(f64::NAN)).check().is_err());
        assert!(IntegratedGradients::params().tolerance(Some(1e-3)).max_steps(10).check().is_err());
        assert!(IntegratedGradients::params().check().is_ok());
    }
}
