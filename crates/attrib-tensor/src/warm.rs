//! Model warm-up: pay a process's and a model's one-time costs before the first attribution.
//!
//! The first call of a model in a process costs more than later calls, whatever the method:
//! TorchScript compiles an execution plan per grad mode the first time it runs, libtorch starts
//! its thread pools and autograd engine, oneDNN sets up its kernels, and the evaluator makes the
//! frozen inference copy of a TorchScript model the first time forward-only work may use it.
//! [`warm_up`] runs those costs now, on **two rows** of the inputs ([`WARM_UP_ROWS`]): a forward
//! pass without gradients in each memory layout the evaluator may choose, a forward + backward
//! pass in each (for gradient work), and the frozen copy made and run once (for forward-only
//! work). A server
//! that loads a model once and explains many requests, or a benchmark that reports load time
//! apart from attribution time (`attrib explain --json` reports `warm_up_ms`), calls it right
//! after loading the model.
//!
//! Costs that depend on the job's own chunk sizes (oneDNN makes kernels per input shape, the
//! first chunks touch fresh memory) are moved too once the job is known: an attribution notes the
//! chunk lengths it ran with the evaluator's variant decision ([`crate::decisions`]), and a later
//! warm-up on the same model, work and row shape — in the same process, or in a later one when
//! the program keeps decisions on disk, as the `attrib` CLI does — **rehearses** each of those
//! chunk lengths once in the decided variant, on the inputs' rows, when they took at most
//! [`REHEARSAL_MS`] in all. The evaluator's timing of chunk variants runs in the first call
//! that has no decision (see the evaluator's trial in [`crate::eval`]), unless a job of the
//! method's size ran first: [`rehearse_job`] runs one through the evaluator when the method
//! states its size ([`attrib_core::Attribution::planned_rows`]), so that the first process to
//! see a model also times its first call without the trial (the CLI does this in benchmark
//! mode, `--repeat`). Warm-up never changes results: it keeps nothing but what libtorch and the
//! model cache (the frozen copy) and the evaluator's decisions, which the first call would have
//! made by the same trial.
//!
//! ```no_run
//! # use attrib_core::{BatchOptions, Inputs, TorchScriptModel};
//! # fn main() -> attrib_core::Result<()> {
//! let model = TorchScriptModel::load("model.pt", tch::Device::Cpu)?;
//! let inputs = Inputs::new(tch::Tensor::zeros([16, 3, 16, 16], (tch::Kind::Float, tch::Device::Cpu)));
//! let report = attrib_tensor::warm::warm_up(&model, &inputs, &BatchOptions::default(), attrib_tensor::warm::Work::Both);
//! println!("warm-up took {:?}", report.elapsed);
//! # Ok(()) }
//! ```

use crate::decisions::{self, VariantKey};
use crate::eval::{channels_last_applies, to_layout, Evaluator, Expanded, Layout};
use attrib_core::{BatchOptions, ForwardArg, Inputs, MemoryFormat, Model, PlannedRows};
use std::time::{Duration, Instant};
use tch::{Device, Tensor};

/// The work an attribution will ask of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Forward passes only (perturbation methods): also makes the frozen inference copy when
    /// the options allow it.
    Forward,
    /// Gradients (gradient and sampling methods), and forward passes without gradients for
    /// targets and convergence deltas; no frozen copy.
    Gradients,
    /// Both.
    Both,
}

/// What a warm-up did.
#[derive(Debug, Clone)]
pub struct WarmUpReport {
    /// Wall time of the whole warm-up.
    pub elapsed: Duration,
    /// The steps that ran, e.g. `forward contiguous`, `gradients channels-last`,
    /// `inference copy`.
    pub steps: Vec<String>,
    /// Steps that failed, with the reason. A failure is not an error: the attribution itself
    /// reports what is wrong (or runs another way, as the evaluator does for a model that
    /// rejects channels-last inputs).
    pub failed: Vec<String>,
}

/// Run the model's one-time costs on two rows of `inputs` (see the [module docs](self)), for the
/// memory layouts and inference copy that `options` allow the evaluator on the model's device.
///
/// Best effort: a step that fails is recorded in [`WarmUpReport::failed`] and skipped.
pub fn warm_up(model: &dyn Model, inputs: &Inputs, options: &BatchOptions, work: Work) -> WarmUpReport {
    warm_up_rehearsing(model, inputs, options, work, REHEARSAL_MS)
}

/// [`warm_up`], rehearsing the noted chunk shapes when they took at most `rehearsal_ms` in all
/// (0: no rehearsal). A benchmark that reports the first call apart from the warm calls (the
/// CLI's `--repeat`) passes a larger cap ([`BENCHMARK_REHEARSAL_MS`]) than a one-shot run,
/// for which rehearsing a long job would only add its cost to the process.
pub fn warm_up_rehearsing(model: &dyn Model, inputs: &Inputs, options: &BatchOptions, work: Work, rehearsal_ms: f64) -> WarmUpReport {
    let clock = Instant::now();
    let mut report = WarmUpReport { elapsed: Duration::ZERO, steps: Vec::new(), failed: Vec::new() };
    let device = model.device();
    let row = match first_rows(inputs, device) {
        Ok(row) => row,
        Err(e) => {
            report.failed.push(format!("rows of the inputs: {e}"));
            report.elapsed = clock.elapsed();
            return report;
        }
    };
    let cpu = device == Device::Cpu;
    // Kernels are made per dtype: warm up in the precision the attribution will run in.
    let _region = match attrib_core::Autocast::enter(device, options.precision) {
        Ok(region) => region,
        Err(e) => {
            report.failed.push(format!("precision: {e}"));
            None
        }
    };
    let image_like = row.0.iter().any(channels_last_applies);
    let layouts: &[Layout] = match options.memory_format {
        MemoryFormat::Contiguous => &[Layout::Contiguous],
        MemoryFormat::ChannelsLast => &[Layout::ChannelsLast],
        MemoryFormat::Auto if cpu && image_like => &[Layout::Contiguous, Layout::ChannelsLast],
        MemoryFormat::Auto => &[Layout::Contiguous],
    };
    let (xs, extra) = (&row.0, &row.1);
    let mut step = |name: String, f: &mut dyn FnMut() -> Result<(), String>| match f() {
        Ok(()) => report.steps.push(name),
        Err(e) => report.failed.push(format!("{name}: {e}")),
    };
    for &layout in layouts {
        let label = if layout == Layout::Contiguous { "contiguous" } else { "channels-last" };
        let laid = match to_layout(xs.iter().map(Tensor::shallow_clone).collect(), layout) {
            Ok(t) => t,
            Err(e) => {
                step(format!("{label} layout"), &mut || Err(e.to_string()));
                continue;
            }
        };
        step(format!("forward {label}"), &mut || {
            tch::no_grad(|| model.forward(&laid, extra)).map(drop).map_err(|e| e.to_string())
        });
        if work != Work::Forward {
            step(format!("gradients {label}"), &mut || forward_backward(model, &laid, extra));
        }
    }
    if work != Work::Gradients && cpu && extra.is_empty() && options.inference_copy && options.precision == attrib_core::Precision::Fp32 {
        if let Some(copy) = model.inference_model() {
            step("inference copy".into(), &mut || tch::no_grad(|| copy.forward(xs, &[])).map(drop).map_err(|e| e.to_string()));
        }
    }
    if cpu {
        if work != Work::Forward {
            rehearse(model, inputs, options, true, rehearsal_ms, &mut report);
        }
        rehearse(model, inputs, options, false, rehearsal_ms, &mut report);
    }
    report.elapsed = clock.elapsed();
    report
}

/// Rehearsals are skipped when the chunks to rehearse took more than this in total (ms): a
/// rehearsal costs about what they cost, and the one-time costs it moves (kernels made per
/// shape, first touch of memory) matter only next to short jobs.
pub const REHEARSAL_MS: f64 = 100.0;

/// The rehearsal cap for benchmark runs, which time the first call apart ([`warm_up_rehearsing`]).
pub const BENCHMARK_REHEARSAL_MS: f64 = 1000.0;

/// Run once each chunk length that an earlier call (of this process, or of an earlier one when
/// the program keeps decisions on disk: [`crate::decisions`]) ran for this model, work and row
/// shape, in the variant decided for them, on rows of `inputs` (cycled). This moves the
/// per-shape costs of the job (oneDNN kernels made for each chunk shape, the first touch of the
/// chunk's working memory) out of the first call. Nothing is kept but libtorch's caches.
fn rehearse(model: &dyn Model, inputs: &Inputs, options: &BatchOptions, with_grad: bool, cap_ms: f64, report: &mut WarmUpReport) {
    let key = VariantKey::new(model, with_grad, options, row_shapes(inputs));
    let Some(decision) = decisions::decision(&key) else { return };
    let what = if with_grad { "gradients" } else { "forward" };
    let total_ms: f64 = decision.chunks.iter().map(|c| c.ms).sum();
    if decision.chunks.is_empty() || total_ms > cap_ms {
        return;
    }
    for chunk in &decision.chunks {
        let (rows, variant) = (chunk.rows, chunk.variant);
        let runner: &dyn Model = if variant.inference { model.inference_model().unwrap_or(model) } else { model };
        let name = format!("rehearse {what} {rows} rows");
        let run = || -> Result<(), String> {
            let n = inputs.tensors().first().map_or(0, |t| t.size().first().copied().unwrap_or(0));
            if n < 1 {
                return Err("an input without rows".into());
            }
            let device = model.device();
            let idx = Tensor::f_arange(rows as i64, (tch::Kind::Int64, device))
                .and_then(|r| r.f_remainder(n))
                .map_err(|e| e.to_string())?;
            let xs = inputs
                .tensors()
                .iter()
                .map(|t| t.f_to_device(device).and_then(|t| t.f_index_select(0, &idx)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let xs = to_layout(xs, variant.layout).map_err(|e| e.to_string())?;
            let extra = crate::eval::expand_extra(inputs.extra(), &idx).map_err(|e| e.to_string())?;
            if with_grad {
                forward_backward(model, &xs, &extra)
            } else {
                tch::no_grad(|| runner.forward(&xs, &extra)).map(drop).map_err(|e| e.to_string())
            }
        };
        match run() {
            Ok(()) => report.steps.push(name),
            Err(e) => report.failed.push(format!("{name}: {e}")),
        }
    }
}

/// Run a job of `plan.rows` model rows (the inputs' rows cycled) through the evaluator, as the
/// attribution will (same options, target and row shapes), when its estimated cost is at most
/// `cap_ms`: the evaluator sizes its chunks, times the memory layouts when no decision is known
/// for this model and row shape (see [`crate::decisions`]), and notes the chunk lengths, and the
/// chunk shapes of the job get their kernels made, before the first attribution call is timed.
/// This is what [`warm_up_rehearsing`] does from decisions noted by an earlier call, for a job
/// whose size the method states ([`attrib_core::Attribution::planned_rows`]): it also serves the
/// first process that sees a model. Nothing is kept but libtorch's caches and the evaluator's
/// decisions; results do not depend on it (the variant chosen is the one the first call would
/// have chosen by the same trial).
///
/// The cost is estimated from a pass over the inputs' own rows (run twice, the faster counts: the
/// first pays that shape's one-time costs; short jobs run chunks of that shape too), scaled to
/// the job's rows. Under heavy load (more busy threads than cores) even the faster pass can be
/// tens of times its cost, and the job is then not rehearsed: that first call pays the shapes'
/// one-time costs, as it would without the rehearsal.
pub fn rehearse_job(model: &dyn Model, inputs: &Inputs, target: &attrib_core::Target, options: &BatchOptions, plan: PlannedRows, cap_ms: f64) -> WarmUpReport {
    let clock = Instant::now();
    let mut report = WarmUpReport { elapsed: Duration::ZERO, steps: Vec::new(), failed: Vec::new() };
    let what = if plan.gradients { "gradients" } else { "forward" };
    let run = |rows: i64, gradients: bool| run_job(model, inputs, target, options, rows, gradients);
    let n = inputs.tensors().first().map_or(0, |t| t.size().first().copied().unwrap_or(0));
    if n < 1 || plan.rows < 1 {
        report.failed.push("job rehearsal: an input without rows".into());
        report.elapsed = clock.elapsed();
        return report;
    }
    let mut step = |name: String, result: Result<f64, String>| match result {
        Ok(_) => report.steps.push(name),
        Err(e) => report.failed.push(format!("{name}: {e}")),
    };
    // Twice: the first pass over the inputs' rows also pays their shape's one-time costs. The
    // faster of the two is the estimate: on a busy machine a pass this short can take many times
    // its cost (a thread of the pool waits for its core at every barrier), and one such pass
    // would skip a short job's rehearsal.
    let ms = match run(n, plan.gradients).and_then(|a| run(n, plan.gradients).map(|b| a.min(b))) {
        Ok(ms) => ms,
        Err(e) => {
            step(format!("{what} of the input rows"), Err(e));
            report.elapsed = clock.elapsed();
            return report;
        }
    };
    step(format!("{what} of the {n} input rows"), Ok(ms));
    let estimate = ms * plan.rows as f64 / n as f64;
    let key = VariantKey::new(model, plan.gradients, options, row_shapes(inputs));
    let decided = || decisions::decision(&key).and_then(|d| d.variant).is_some();
    if plan.rows > n && estimate <= cap_ms {
        let before = decided();
        step(format!("rehearse job: {what} {} rows", plan.rows), run(plan.rows, plan.gradients));
        // A job that timed the variants ran its trial chunks at trial sizes: run it once more in
        // the chosen variant, at the chunk sizes the attribution will use.
        if !before && decided() && estimate * 2.0 <= cap_ms {
            step(format!("rehearse job in the chosen variant: {what} {} rows", plan.rows), run(plan.rows, plan.gradients));
        }
    }
    // The method's smaller forward-only pass (kernels without gradients are made per shape too).
    if plan.forward_rows > 0 && (estimate <= cap_ms || plan.forward_rows <= n) {
        step(format!("rehearse job: forward {} rows", plan.forward_rows), run(plan.forward_rows, false));
    }
    report.elapsed = clock.elapsed();
    report
}

/// One row's shape (batch dimension 1) and dtype of each input.
fn row_shapes(inputs: &Inputs) -> Vec<(Vec<i64>, tch::Kind)> {
    inputs
        .tensors()
        .iter()
        .map(|t| {
            let mut size = t.size();
            if let Some(first) = size.first_mut() {
                *first = 1;
            }
            (size, t.kind())
        })
        .collect()
}

/// A job of `rows` rows (the inputs' rows cycled) through a fresh evaluator, with gradients or
/// forward only, as an attribution runs it; its wall time in ms.
fn run_job(model: &dyn Model, inputs: &Inputs, target: &attrib_core::Target, options: &BatchOptions, rows: i64, gradients: bool) -> Result<f64, String> {
    let started = Instant::now();
    let eval = Evaluator::new(model, *options).map_err(|e| e.to_string())?;
    let p = eval.prepare(inputs, target).map_err(|e| e.to_string())?;
    let (n, device, xs) = (p.n, p.device, &p.inputs);
    let batch = Expanded::new(n, rows, |start, end| {
        let bad = |e: tch::TchError| attrib_core::AttribError::Internal(format!("warm-up rows: {e}"));
        let idx = Tensor::f_arange_start(start, end, (tch::Kind::Int64, device)).and_then(|r| r.f_remainder(n)).map_err(bad)?;
        xs.iter().map(|x| x.f_index_select(0, &idx).map_err(bad)).collect()
    })
    .rows_like(xs);
    if gradients {
        eval.gradients(&p, &batch).map(drop).map_err(|e| e.to_string())?;
    } else {
        eval.forward(&p, &batch).map(drop).map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// Rows in a warm-up batch. Two, not one: libtorch runs some operations another way on a
/// single row (a CPU convolution with a small kernel on one small image skips oneDNN), so a
/// one-row pass would leave oneDNN's own first-use set-up to the first real chunk.
pub const WARM_UP_ROWS: i64 = 2;

/// [`WARM_UP_ROWS`] rows of every input and tensor forward argument (the first rows, the first
/// one repeated for a batch of one), on `device`.
fn first_rows(inputs: &Inputs, device: Device) -> Result<(Vec<Tensor>, Vec<ForwardArg>), String> {
    let first = |t: &Tensor| -> Result<Tensor, String> {
        if t.dim() == 0 || t.size()[0] < 1 {
            return Err("an input without rows".into());
        }
        let rows = t.size()[0].min(WARM_UP_ROWS);
        let picked = t.f_narrow(0, 0, rows).and_then(|t| t.f_to_device(device)).and_then(|t| t.f_detach());
        let picked = if rows < WARM_UP_ROWS {
            let mut times = vec![1i64; t.dim()];
            times[0] = WARM_UP_ROWS;
            picked.and_then(|t| t.f_repeat(&times))
        } else {
            picked
        };
        picked.map_err(|e| e.to_string())
    };
    let xs = inputs.tensors().iter().map(first).collect::<Result<Vec<_>, _>>()?;
    let extra = inputs
        .extra()
        .iter()
        .map(|a| match a {
            ForwardArg::Tensor(t) => first(t).map(ForwardArg::Tensor),
            other => Ok(other.shallow_clone()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((xs, extra))
}

/// One forward + backward pass, the way the evaluator computes gradients: fresh leaves, the
/// sum of the outputs backpropagated to them only.
fn forward_backward(model: &dyn Model, xs: &[Tensor], extra: &[ForwardArg]) -> Result<(), String> {
    tch::with_grad(|| {
        let leaves: Vec<Tensor> = xs
            .iter()
            .map(|x| x.f_detach().map(|x| if x.is_floating_point() { x.set_requires_grad(true) } else { x }))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let out = model.forward(&leaves, extra).map_err(|e| e.to_string())?;
        if !out.requires_grad() || !out.is_floating_point() {
            return Ok(());
        }
        let wrt: Vec<Tensor> = leaves.iter().filter(|l| l.requires_grad()).map(Tensor::shallow_clone).collect();
        let total = out.f_sum(out.kind()).map_err(|e| e.to_string())?;
        Tensor::f_run_backward(&[total], &wrt, false, false).map(drop).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::FnModel;
    use tch::Kind;

    #[test]
    fn warms_up_each_layout_and_reports_failures_without_failing() {
        let w = Tensor::ones([3, 2], (Kind::Float, Device::Cpu));
        let model = FnModel::new(move |x: &Tensor| x.flatten(1, -1).narrow(1, 0, 3).matmul(&w));
        let inputs = Inputs::new(Tensor::ones([4, 3, 2, 2], (Kind::Float, Device::Cpu)));
        let r = warm_up(&model, &inputs, &BatchOptions::default(), Work::Both);
        assert_eq!(r.steps, ["forward contiguous", "gradients contiguous", "forward channels-last", "gradients channels-last"]);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        let r = warm_up(&model, &inputs, &BatchOptions { memory_format: MemoryFormat::Contiguous, ..BatchOptions::default() }, Work::Forward);
        assert_eq!(r.steps, ["forward contiguous"]);

        // A model that fails on channels-last inputs (a `view` of a non-contiguous tensor).
        let strict = FnModel::new(|x: &Tensor| x.f_view([-1, 12]).unwrap().sum_dim_intlist(1, true, Kind::Float));
        let r = warm_up(&strict, &inputs, &BatchOptions::default(), Work::Both);
        assert_eq!(r.steps, ["forward contiguous", "gradients contiguous"]);
        assert_eq!(r.failed.len(), 2, "{:?}", r.failed);
    }

    #[test]
    fn a_warm_up_rehearses_the_chunk_shapes_an_earlier_call_ran() {
        use crate::eval::{Evaluator, Expanded};
        let w = Tensor::ones([5, 2], (Kind::Float, Device::Cpu));
        let model = FnModel::new(move |x: &Tensor| x.matmul(&w));
        let inputs = Inputs::new(Tensor::ones([4, 5], (Kind::Float, Device::Cpu)));
        let options = BatchOptions { max_batch: Some(8), ..BatchOptions::default() };
        let before = warm_up(&model, &inputs, &options, Work::Gradients);
        assert!(before.steps.iter().all(|s| !s.starts_with("rehearse")), "{:?}", before.steps);
        // 4 rows × 5 blocks = 20 rows in chunks of 8: 8, 8, 4.
        let ev = Evaluator::new(&model, options).unwrap();
        let p = ev.prepare(&inputs, &attrib_core::Target::Class(1)).unwrap();
        ev.gradients(&p, &Expanded::repeat(&p.inputs, 5)).unwrap();
        let after = warm_up(&model, &inputs, &options, Work::Gradients);
        assert!(after.failed.is_empty(), "{:?}", after.failed);
        let rehearsed: Vec<&String> = after.steps.iter().filter(|s| s.starts_with("rehearse")).collect();
        assert_eq!(rehearsed, ["rehearse gradients 8 rows", "rehearse gradients 4 rows"]);
    }

    #[test]
    fn a_job_rehearsal_decides_the_variant_and_notes_the_chunks_before_the_first_call() {
        let w = Tensor::ones([12, 2], (Kind::Float, Device::Cpu));
        let model = FnModel::new(move |x: &Tensor| x.flatten(1, -1).matmul(&w));
        let inputs = Inputs::new(Tensor::ones([4, 3, 2, 2], (Kind::Float, Device::Cpu)));
        let options = BatchOptions { max_batch: Some(8), ..BatchOptions::default() };
        let key = VariantKey::new(&model, true, &options, vec![(vec![1, 3, 2, 2], Kind::Float)]);
        let target = attrib_core::Target::Class(1);
        let plan = PlannedRows { rows: 400, gradients: true, forward_rows: 0 };
        // Over the cap: only the pass over the inputs' rows, which decides nothing (too short
        // for a trial).
        let r = rehearse_job(&model, &inputs, &target, &options, plan, 0.0);
        assert_eq!(r.steps, ["gradients of the 4 input rows"], "{:?}", r.failed);
        assert!(decisions::get(&key).is_none());
        // Within the cap: the job's 50 chunks of 8 rows time both layouts and decide, and the job
        // runs once more in the chosen variant.
        let r = rehearse_job(&model, &inputs, &target, &options, plan, f64::INFINITY);
        assert_eq!(
            r.steps,
            ["gradients of the 4 input rows", "rehearse job: gradients 400 rows", "rehearse job in the chosen variant: gradients 400 rows"],
            "{:?}",
            r.failed
        );
        assert!(decisions::get(&key).is_some());
        let noted = decisions::decision(&key).expect("chunks noted");
        assert!(noted.chunks.iter().any(|c| c.rows == 8), "{noted:?}");
        // Decided: the job runs once; a forward-only pass besides runs after it.
        let r = rehearse_job(&model, &inputs, &target, &options, PlannedRows { forward_rows: 8, ..plan }, f64::INFINITY);
        assert_eq!(
            r.steps,
            ["gradients of the 4 input rows", "rehearse job: gradients 400 rows", "rehearse job: forward 8 rows"],
            "{:?}",
            r.failed
        );
        // A plan without rows is reported, not run.
        let empty = Inputs::new(Tensor::zeros([0, 3, 2, 2], (Kind::Float, Device::Cpu)));
        let r = rehearse_job(&model, &empty, &target, &options, plan, f64::INFINITY);
        assert!(r.steps.is_empty() && r.failed.len() == 1, "{r:?}");
    }

    #[test]
    fn inputs_without_rows_are_reported() {
        let model = FnModel::new(|x: &Tensor| x.shallow_clone());
        let inputs = Inputs::new(Tensor::zeros([0, 3], (Kind::Float, Device::Cpu)));
        let r = warm_up(&model, &inputs, &BatchOptions::default(), Work::Both);
        assert!(r.steps.is_empty());
        assert_eq!(r.failed.len(), 1);
    }
}
