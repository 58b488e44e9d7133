//! Where the time of PGD goes, in one process (the bench case of
//! `benches/side_by_side_attack.py`: L∞, 20 steps of 2/255 within 8/255, bounds [0, 1]):
//!
//! ```text
//! cargo run --release -p attrib-robust --example profile_pgd -- MODEL.pt X.npy [ROUNDS] [REPEATS]
//! ```
//!
//! Each round times, interleaved, in each layout (contiguous, channels-last):
//! - `raw`: the floor, 20 bare forward + backward passes from Rust (the model, PyTorch's
//!   `cross_entropy`, the gradient with respect to a fresh leaf of the input);
//! - `evaluator`: the same 20 passes through the shared evaluator, as PGD's steps call it (the
//!   loss model with the labels as its last forward argument, one chunk);
//! - `forward`: one forward pass without gradients through the evaluator, with the argmax read
//!   back (what a clean or a prediction pass costs);
//! - `Pgd::perturb`, the layout forced;
//!
//! and `Pgd::perturb` with the layout left to PGD (decided once, in the first call: printed).
//! `PROFILE_PGD_ONLY=contiguous|channels-last|auto` runs only that `Pgd::perturb`, ROUNDS ×
//! REPEATS times, untimed (for `perf record`).
//! Prints per piece the median over rounds of each round's median of REPEATS calls, in ms, and
//! the pieces PGD spends beyond the evaluator's passes. With `ATTRIB_CPU_TIME=1` (and
//! `OMP_NUM_THREADS=1`, so that every kernel runs on this thread) calls are timed in this
//! thread's CPU time, not wall time: steadier on a loaded machine.
use attrib_core::{BatchOptions, ForwardArg, Inputs, MemoryFormat, Model, ResolvedTarget, Target, TorchScriptModel};
use attrib_robust::loss::{LossKind, LossModel};
use attrib_robust::Pgd;
use attrib_tensor::{Evaluator, Expanded, Layout, Prepared};
use tch::{Device, Kind, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of `repeats` timed calls of `f` after one untimed call.
fn round_ms(repeats: usize, cpu: bool, f: &mut dyn FnMut()) -> f64 {
    f();
    attrib_tensor::clock::median_call_ms(repeats, cpu, f)
}

const STEPS: usize = 20;

fn main() -> attrib_core::Result<()> {
    // The allocator settings and executor of the `attrib` binary, so the pieces cost what they
    // cost there.
    attrib_tensor::host_alloc::tune();
    attrib_core::model::use_simple_executor()?;
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: profile_pgd MODEL.pt X.npy [ROUNDS] [REPEATS]");
        std::process::exit(2);
    }
    let cpu = std::env::var("ATTRIB_CPU_TIME").is_ok_and(|v| v == "1");
    let model = TorchScriptModel::load(&args[1], Device::Cpu)?;
    let x = Tensor::read_npy(&args[2]).expect("reading the input");
    let rounds: usize = args.get(3).map_or(5, |v| v.parse().unwrap());
    let repeats: usize = args.get(4).map_or(5, |v| v.parse().unwrap());
    let labels = tch::no_grad(|| model.forward(&[x.shallow_clone()], &[]))?.argmax(1, false);
    let cl = attrib_tensor::to_layout(vec![x.shallow_clone()], Layout::ChannelsLast)?.remove(0);
    let raw = |x0: &Tensor| {
        for _ in 0..STEPS {
            let leaf = x0.detach().set_requires_grad(true);
            let out = model.forward(&[leaf.shallow_clone()], &[]).unwrap();
            let loss = out.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::None, -100, 0.0).sum(Kind::Float);
            let _ = Tensor::run_backward(&[loss], &[leaf], false, false);
        }
    };
    let formats = [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast];
    let batch = |format: MemoryFormat| BatchOptions { memory_format: format, ..Default::default() };
    let loss_model = LossModel::new(&model, LossKind::CrossEntropy);
    let prepared = Prepared {
        inputs: vec![x.shallow_clone()],
        extra: vec![ForwardArg::Tensor(labels.shallow_clone())],
        n: x.size()[0],
        target: ResolvedTarget::Scalar,
        device: Device::Cpu,
    };
    let grad_evals = formats.map(|f| Evaluator::new(&loss_model, batch(f)).unwrap());
    let fwd_evals = formats.map(|f| Evaluator::new(&model, batch(f)).unwrap());
    let xs = [x.shallow_clone()];
    let pgd = |format: MemoryFormat| {
        Pgd::params(8.0 / 255.0).step_size(2.0 / 255.0).step_num(STEPS).bounds(0.0, 1.0).batch(batch(format)).check().unwrap()
    };
    let (pgd_c, pgd_cl, pgd_auto) = (pgd(MemoryFormat::Contiguous), pgd(MemoryFormat::ChannelsLast), pgd(MemoryFormat::Auto));
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::PerSample(Vec::<i64>::try_from(&labels).unwrap());
    let names = [
        "raw, contiguous",
        "raw, channels-last",
        "evaluator, contiguous",
        "evaluator, channels-last",
        "forward, contiguous",
        "forward, channels-last",
        "Pgd::perturb, contiguous",
        "Pgd::perturb, channels-last",
        "Pgd::perturb, auto",
    ];
    if let Ok(only) = std::env::var("PROFILE_PGD_ONLY") {
        // One piece only, ROUNDS x REPEATS times, for a sampling profiler (`perf record`).
        let p = match only.as_str() {
            "contiguous" => &pgd_c,
            "channels-last" => &pgd_cl,
            _ => &pgd_auto,
        };
        for _ in 0..rounds * repeats {
            p.perturb(&model, &inputs, &target)?;
        }
        return Ok(());
    }
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for _ in 0..rounds {
        let mut row = vec![
            round_ms(repeats, cpu, &mut || raw(&x)),
            round_ms(repeats, cpu, &mut || raw(&cl)),
        ];
        for e in &grad_evals {
            row.push(round_ms(repeats, cpu, &mut || {
                for _ in 0..STEPS {
                    e.gradients_each(&prepared, &Expanded::identity(&xs), |_, _, _| Ok(())).unwrap();
                }
            }));
        }
        for e in &fwd_evals {
            row.push(round_ms(repeats, cpu, &mut || {
                let out = e.raw_outputs(&[], &Expanded::identity(&xs)).unwrap();
                let _ = Vec::<i64>::try_from(&out.argmax(1, false)).unwrap();
            }));
        }
        for p in [&pgd_c, &pgd_cl, &pgd_auto] {
            row.push(round_ms(repeats, cpu, &mut || {
                p.perturb(&model, &inputs, &target).unwrap();
            }));
        }
        rows.push(row);
    }
    let med: Vec<f64> = (0..names.len()).map(|k| median(rows.iter().map(|r| r[k]).collect())).collect();
    println!("{} rounds x {repeats} calls, {} time, ms (median of the rounds' medians; lowest..highest round):", rounds, if cpu { "thread CPU" } else { "wall" });
    for (k, name) in names.iter().enumerate() {
        let v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| (a.min(t), b.max(t)));
        println!("  {name:<30} {:8.2}  ({lo:.2}..{hi:.2})", med[k]);
    }
    let decided = attrib_tensor::decisions::decision(&attrib_tensor::decisions::VariantKey::new(
        &loss_model,
        true,
        &batch(MemoryFormat::Auto),
        vec![(vec![1, x.size()[1], x.size()[2], x.size()[3]], x.kind())],
    ))
    .and_then(|d| d.variant)
    .map(|v| format!("{:?}", v.layout))
    .unwrap_or_else(|| "none".into());
    println!("  (auto decided: {decided})");
    for (k, layout) in ["contiguous", "channels-last"].iter().enumerate() {
        println!(
            "  {layout}: evaluator - raw {:.2} ms ({:.1} us per pass); perturb - evaluator {:.2} ms (one forward pass: {:.2})",
            med[2 + k] - med[k],
            (med[2 + k] - med[k]) * 1e3 / STEPS as f64,
            med[6 + k] - med[2 + k],
            med[4 + k]
        );
    }
    Ok(())
}
