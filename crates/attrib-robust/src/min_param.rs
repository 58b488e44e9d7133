//! The smallest perturbation that changes a prediction: Captum's `MinParamPerturbation`, per
//! row.
//!
//! A [`Perturbation`] is parametrised by one number (FGSM's ε, a noise level). The search tries
//! values `arg_min, arg_min + arg_step, ...` below `arg_max` and reports, for each row, the
//! smallest value at which the model's prediction (argmax) is no longer the row's label:
//!
//! - [`SearchMode::Linear`]: the values in increasing order, `perturbations_per_eval` values
//!   per round (all still-unanswered rows at once, one chunked forward pass per round);
//! - [`SearchMode::Binary`]: Captum's bisection on the grid, run for every row in lock step,
//!   each row with its own interval (one forward pass per round for all rows). It assumes that
//!   a larger value never undoes a change.
//!
//! With `num_attempts > 1` each value is tried that many times (independent draws of a random
//! perturbation) and counts as changing the prediction if any attempt does.
//!
//! Difference from Captum: Captum answers for the whole batch (the smallest value at which
//! *some* row is misclassified, by default); attrib answers for every row. Run Captum on one
//! row at a time for the same numbers. The grid is built as Captum builds it (repeated
//! addition of `arg_step`; the bisection's midpoints with Python's float floor division), so
//! the values found are the same floats.

use crate::attack::{argmax_host, Perturbation};
use attrib_core::{AttribError, BatchOptions, ForwardArg, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::{expand_extra, Evaluator, Expanded};
use tch::Tensor;

/// How [`MinParamPerturbation`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Every value in increasing order (Captum's default, `"linear"`).
    #[default]
    Linear,
    /// Bisection on the grid (`"binary"`).
    Binary,
}

impl std::str::FromStr for SearchMode {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<SearchMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linear" => Ok(SearchMode::Linear),
            "binary" => Ok(SearchMode::Binary),
            other => Err(AttribError::param("mode", format!("unknown search mode `{other}`; use linear or binary"))),
        }
    }
}

/// The answer of [`MinParamPerturbation::evaluate`].
#[derive(Debug)]
pub struct MinParamResult {
    /// Per row, the smallest value found, or `None` when no value below `arg_max` changed the
    /// prediction.
    pub values: Vec<Option<f64>>,
    /// The perturbed inputs at those values (rows without a value: the clean input).
    pub perturbed: Vec<Tensor>,
    /// The label of every row (the given class, or the clean prediction for `Argmax`).
    pub labels: Vec<i64>,
}

/// Captum's `MinParamPerturbation` over a [`Perturbation`]; see the module docs.
pub struct MinParamPerturbation<'p> {
    perturbation: &'p dyn Perturbation,
    arg_min: f64,
    arg_max: f64,
    arg_step: f64,
    mode: SearchMode,
    num_attempts: usize,
    perturbations_per_eval: usize,
    batch: BatchOptions,
}

impl<'p> MinParamPerturbation<'p> {
    /// Search the values `arg_min, arg_min + arg_step, ...` below `arg_max` of `perturbation`'s
    /// parameter (Captum: `arg_max > arg_min + arg_step`, `arg_step > 0`).
    pub fn new(perturbation: &'p dyn Perturbation, arg_min: f64, arg_max: f64, arg_step: f64) -> Result<MinParamPerturbation<'p>> {
        if ![arg_min, arg_max, arg_step].iter().all(|v| v.is_finite()) || arg_step <= 0.0 {
            return Err(AttribError::param("arg_step", format!("need finite values and arg_step > 0, got {arg_min}, {arg_max}, {arg_step}")));
        }
        if arg_max <= arg_min + arg_step {
            return Err(AttribError::param("arg_max", format!("arg_max ({arg_max}) must exceed arg_min + arg_step ({})", arg_min + arg_step)));
        }
        Ok(MinParamPerturbation {
            perturbation,
            arg_min,
            arg_max,
            arg_step,
            mode: SearchMode::Linear,
            num_attempts: 1,
            perturbations_per_eval: 1,
            batch: BatchOptions::default(),
        })
    }

    /// Set the search mode.
    pub fn mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Set the attempts per value (> 1 for random perturbations).
    pub fn num_attempts(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(AttribError::param("num_attempts", "must be at least 1"));
        }
        self.num_attempts = n;
        Ok(self)
    }

    /// Set how many values the linear search tries per round.
    pub fn perturbations_per_eval(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(AttribError::param("perturbations_per_eval", "must be at least 1"));
        }
        self.perturbations_per_eval = n;
        Ok(self)
    }

    /// Set the batching options of the forward passes.
    pub fn batch(mut self, batch: BatchOptions) -> Result<Self> {
        self.batch = batch.check()?;
        Ok(self)
    }

    /// The values the linear search tries, built as Captum's `drange` builds them.
    pub fn grid(&self) -> Vec<f64> {
        let mut v = Vec::new();
        let mut cur = self.arg_min;
        while cur < self.arg_max {
            v.push(cur);
            cur += self.arg_step;
        }
        v
    }

    /// Find, for every row of `inputs`, the smallest value that changes the prediction away
    /// from `target` (a class, one per row, or `Argmax`: the clean prediction).
    pub fn evaluate(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<MinParamResult> {
        let eval = Evaluator::new(model, self.batch)?;
        let p = eval.prepare(inputs, &Target::None)?;
        let labels = match target {
            Target::Argmax => argmax_host(&eval.raw_outputs(&p.extra, &Expanded::identity(&p.inputs))?)?,
            Target::Class(c) => vec![*c; p.n as usize],
            Target::PerSample(v) if v.len() as i64 == p.n => v.clone(),
            Target::PerSample(v) => return Err(AttribError::TargetOutOfRange(format!("{} targets for {} rows", v.len(), p.n))),
            Target::None => return Err(AttribError::param("target", "the search needs class labels: an index, one per row, or argmax")),
        };
        let mut search = Search {
            owner: self,
            model,
            eval: &eval,
            inputs: &p.inputs,
            extra: &p.extra,
            labels: &labels,
            values: vec![None; p.n as usize],
            perturbed: p.inputs.iter().map(|x| x.f_detach_copy().ctx("copying inputs")).collect::<Result<_>>()?,
            round: 0,
        };
        match self.mode {
            SearchMode::Linear => search.linear()?,
            SearchMode::Binary => search.binary()?,
        }
        Ok(MinParamResult { values: search.values, perturbed: search.perturbed, labels })
    }
}

/// The state of one search.
struct Search<'a, 'p> {
    owner: &'a MinParamPerturbation<'p>,
    model: &'a dyn Model,
    eval: &'a Evaluator<'a>,
    inputs: &'a [Tensor],
    extra: &'a [ForwardArg],
    labels: &'a [i64],
    values: Vec<Option<f64>>,
    perturbed: Vec<Tensor>,
    round: u64,
}

impl Search<'_, '_> {
    /// Perturb `rows` (original row indices, repeats allowed) with one value each, every
    /// attempt; return per attempt whether each row's prediction changed, and the perturbed
    /// inputs of every attempt.
    fn try_values(&mut self, rows: &[i64], params: &[f64]) -> Result<Vec<(Vec<bool>, Vec<Tensor>)>> {
        let device = self.eval.device();
        let idx = Tensor::f_from_slice(rows).and_then(|t| t.f_to_device(device)).ctx("selecting rows")?;
        let xs: Vec<Tensor> = self.inputs.iter().map(|x| x.f_index_select(0, &idx).ctx("selecting rows")).collect::<Result<_>>()?;
        let extra = expand_extra(self.extra, &idx)?;
        let labels: Vec<i64> = rows.iter().map(|&r| self.labels[r as usize]).collect();
        let sub = Inputs::multi(xs.iter().map(Tensor::shallow_clone).collect()).with_extra(extra.iter().map(ForwardArg::shallow_clone).collect());
        let target = Target::PerSample(labels.clone());
        let k = self.owner.num_attempts as u64;
        let mut attempts = Vec::with_capacity(k as usize);
        for a in 0..k {
            let draw = self.round * k + a;
            let out = self.owner.perturbation.perturb(self.model, &sub, &target, Some(params), draw)?;
            attempts.push(out);
        }
        self.round += 1;
        // One chunked forward pass over every attempt.
        let stacked: Vec<Tensor> = (0..self.inputs.len())
            .map(|i| Tensor::f_cat(&attempts.iter().map(|a| a[i].shallow_clone()).collect::<Vec<_>>(), 0).ctx("stacking attempts"))
            .collect::<Result<_>>()?;
        let all_rows: Vec<i64> = (0..k).flat_map(|_| rows.iter().copied()).collect();
        let all_idx = Tensor::f_from_slice(&all_rows).and_then(|t| t.f_to_device(device)).ctx("selecting rows")?;
        let out = self.eval.raw_outputs(&expand_extra(self.extra, &all_idx)?, &Expanded::identity(&stacked))?;
        let pred = argmax_host(&out)?;
        let m = rows.len();
        Ok(attempts
            .into_iter()
            .enumerate()
            .map(|(a, xs)| ((0..m).map(|j| pred[a * m + j] != labels[j]).collect(), xs))
            .collect())
    }

    /// Record `value` for original row `row`, with row `j` of the perturbed inputs `xs`.
    fn record(&mut self, row: i64, value: f64, xs: &[Tensor], j: i64) -> Result<()> {
        self.values[row as usize] = Some(value);
        for (dst, src) in self.perturbed.iter_mut().zip(xs) {
            dst.f_select(0, row).and_then(|mut d| d.f_copy_(&src.f_select(0, j)?)).ctx("keeping a perturbed row")?;
        }
        Ok(())
    }

    fn linear(&mut self) -> Result<()> {
        let grid = self.owner.grid();
        for values in grid.chunks(self.owner.perturbations_per_eval) {
            let open: Vec<i64> = (0..self.values.len() as i64).filter(|&r| self.values[r as usize].is_none()).collect();
            if open.is_empty() {
                break;
            }
            // Rows value-major: value v of row r is entry v * open.len() + r.
            let rows: Vec<i64> = values.iter().flat_map(|_| open.iter().copied()).collect();
            let params: Vec<f64> = values.iter().flat_map(|&v| open.iter().map(move |_| v)).collect();
            let tried = self.try_values(&rows, &params)?;
            for (i, &r) in open.iter().enumerate() {
                'first: for (v, &value) in values.iter().enumerate() {
                    for (changed, xs) in &tried {
                        let j = v * open.len() + i;
                        if changed[j] {
                            self.record(r, value, xs, j as i64)?;
                            break 'first;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn binary(&mut self) -> Result<()> {
        let (step, n) = (self.owner.arg_step, self.values.len());
        let mut lo = vec![self.owner.arg_min; n];
        let mut hi = vec![self.owner.arg_max; n];
        let mut open: Vec<i64> = (0..n as i64).collect();
        while !open.is_empty() {
            open.retain(|&r| hi[r as usize] > lo[r as usize]);
            if open.is_empty() {
                break;
            }
            let mids: Vec<f64> = open
                .iter()
                .map(|&r| {
                    let (a, b) = (lo[r as usize], hi[r as usize]);
                    let mut mid_step = py_floordiv(py_floordiv(b - a, step), 2.0);
                    if mid_step == 0.0 && a + step < b {
                        mid_step = 1.0;
                    }
                    a + mid_step * step
                })
                .collect();
            let tried = self.try_values(&open, &mids)?;
            let mut still = Vec::with_capacity(open.len());
            for (i, &r) in open.iter().enumerate() {
                let mid = mids[i];
                let hit = tried.iter().find(|(changed, _)| changed[i]);
                if let Some((_, xs)) = hit {
                    hi[r as usize] = mid;
                    if !matches!(self.values[r as usize], Some(v) if v <= mid) {
                        self.record(r, mid, xs, i as i64)?;
                    }
                }
                if is_close(lo[r as usize], mid) {
                    continue;
                }
                if hit.is_none() {
                    lo[r as usize] = mid;
                }
                still.push(r);
            }
            open = still;
        }
        Ok(())
    }
}

/// Python's float floor division `a // b`.
fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0.0f64.copysign(a / b);
    }
    let floor = div.floor();
    if div - floor > 0.5 {
        floor + 1.0
    } else {
        floor
    }
}

/// Python's `math.isclose(a, b)` with its default tolerances.
fn is_close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_is_pythons() {
        // Values checked in CPython 3.11: 1.0 // 0.1 == 9.0 (not floor(10.0)), 0.3 // 0.1 == 2.0.
        assert_eq!(py_floordiv(1.0, 0.1), 9.0);
        assert_eq!(py_floordiv(0.3, 0.1), 2.0);
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(-7.0, 2.0), -4.0);
        assert_eq!(py_floordiv(0.0, 0.1), 0.0);
        assert!(is_close(0.1 + 0.2, 0.3) && !is_close(0.1, 0.1000001));
    }
}
