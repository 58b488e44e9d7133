//! Where DeepLIFT's time goes, in one process: the floor (one forward + backward of the paired
//! rows through the model), the same pass through the rewritten model (the rules' own cost), and
//! the whole attribution (pairing, evaluator, delta).
//!
//! ```text
//! cargo run --release -p attrib-deeplift --example deeplift_overhead -- MODEL.pt INPUT.npy [ROUNDS] [REPEATS]
//! ```
//! Zero baselines, target class 0, the CLI's process settings (simple executor, allocator).
//! The three measurements are interleaved in ROUNDS rounds of REPEATS calls each (for a loaded
//! machine); prints per measurement the median over rounds of each round's median, and the
//! fastest round's median, in milliseconds. `ATTRIB_STEPS=1` adds two parts of the attribution
//! timed apart: `prepare` (evaluator, inputs, target, baselines) and `paired_pass` (the
//! evaluator's gradient pass over the paired rows with nothing done with its results), so that
//! `deeplift − paired_pass` is the pairing's own work after the model call and `paired_pass −
//! rewritten_pass` the evaluator's per-call work.

use attrib_core::{Attribution, BackwardRules, DeepLiftRules, Inputs, Model, Target, TorchScriptModel};
use attrib_deeplift::DeepLift;
use attrib_tensor::{Evaluator, Expanded};
use tch::{Device, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// With `ATTRIB_CPU_TIME=1` (and `OMP_NUM_THREADS=1`, so that every kernel runs on this thread)
/// the calls are timed in this thread's CPU time instead of wall time: steadier on a loaded
/// machine, where waiting for a core does not count.
fn round_ms(repeats: usize, f: &mut dyn FnMut()) -> f64 {
    let cpu = std::env::var("ATTRIB_CPU_TIME").is_ok_and(|v| v == "1");
    attrib_tensor::clock::median_call_ms(repeats, cpu, f)
}

/// One forward + backward of `rows` through `model`, gradient of the class-0 outputs' sum.
fn pass(model: &dyn Model, rows: &Tensor) {
    let x = rows.copy().set_requires_grad(true);
    let out = model.forward(&[x.shallow_clone()], &[]).unwrap();
    let _ = Tensor::run_backward(&[out.select(1, 0).sum(None)], &[&x], false, false);
}

/// The paired adapter of `pairs.rs` (private there), for `ATTRIB_STEPS`.
struct Paired<'a> {
    inner: &'a dyn Model,
}

impl Model for Paired<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[attrib_core::ForwardArg]) -> attrib_core::Result<Tensor> {
        attrib_deeplift::paired_difference(&self.inner.forward(inputs, extra)?)
    }
    fn device(&self) -> Device {
        self.inner.device()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn fingerprint(&self) -> Option<String> {
        self.inner.fingerprint().map(|f| format!("{f}|paired"))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: deeplift_overhead MODEL.pt INPUT.npy [ROUNDS] [REPEATS]");
        std::process::exit(2);
    }
    attrib_tensor::host_alloc::tune();
    attrib_core::model::use_simple_executor().unwrap();
    let model = TorchScriptModel::load(&args[1], Device::Cpu).unwrap();
    let x = attrib_tensor::convert::read_npy_tensor(&args[2], Device::Cpu).unwrap();
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let repeats: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(20);
    let rows = Tensor::cat(&[&x, &x.zeros_like()], 0);
    let rules = model.with_rules(BackwardRules::DeepLift { eps: 1e-10, compat: DeepLiftRules::Exact }).unwrap();
    let method = DeepLift::params().check().unwrap();
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::Class(0);
    let mut floor = || pass(&model, &rows);
    let mut rewritten = || pass(rules.as_ref(), &rows);
    let mut attribution = || {
        method.attribute(&model, &inputs, &target).unwrap();
    };
    // The attribution's steps apart (`ATTRIB_STEPS=1`): preparing the call (evaluator, inputs,
    // target, baselines), and the evaluator's paired gradient pass with nothing done with its
    // results (pairing the inputs, the model call, target selection, the backward pass).
    let batch = attrib_core::BatchOptions::default();
    let mut prepare = || {
        let eval = Evaluator::new(&model, batch).unwrap();
        let p = eval.prepare(&inputs, &target).unwrap();
        let _ = attrib_core::Baselines::default().resolve_copies(&p.inputs, inputs.copies()).unwrap();
    };
    let eval = Evaluator::new(&model, batch).unwrap();
    let p = eval.prepare(&inputs, &target).unwrap();
    let base = attrib_core::Baselines::default().resolve_copies(&p.inputs, inputs.copies()).unwrap();
    let mut paired_pass = || {
        let paired = Paired { inner: rules.as_ref() };
        let e = Evaluator::new(&paired, batch).unwrap();
        let b = Expanded::new(p.n, p.n, |s, e| Ok(p.inputs.iter().zip(&base).map(|(x, b)| Tensor::cat(&[x.narrow(0, s, e - s), b.narrow(0, s, e - s)], 0)).collect())).rows_like(&p.inputs);
        e.gradients_each(&p, &b, |_, _, _| Ok(())).unwrap();
    };
    let mut fns: Vec<(&str, &mut dyn FnMut())> = vec![("floor", &mut floor), ("rewritten_pass", &mut rewritten), ("deeplift", &mut attribution)];
    if std::env::var("ATTRIB_STEPS").is_ok_and(|v| v == "1") {
        fns.push(("prepare", &mut prepare));
        fns.push(("paired_pass", &mut paired_pass));
    }
    // For profilers: `ATTRIB_ONLY=deeplift` (or `floor`, `rewritten_pass`) runs only that, ROUNDS × REPEATS times.
    if let Ok(only) = std::env::var("ATTRIB_ONLY") {
        let (_, f) = fns.iter_mut().find(|(n, _)| *n == only).expect("ATTRIB_ONLY: floor, rewritten_pass or deeplift");
        for _ in 0..rounds * repeats {
            f();
        }
        return;
    }
    for (_, f) in fns.iter_mut() {
        for _ in 0..3 {
            f();
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); fns.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in fns.iter_mut().enumerate() {
            times[i].push(round_ms(repeats, *f));
        }
    }
    let floor_med = median(times[0].clone());
    for (i, (name, _)) in fns.iter().enumerate() {
        let med = median(times[i].clone());
        let best = times[i].iter().cloned().fold(f64::INFINITY, f64::min);
        println!("{name:>15}: median {med:.3} ms, best round {best:.3} ms, / floor {:.3}", med / floor_med);
    }
}
