//! Where a process's first attribution spends its time, for `docs/performance.md` (issue 10).
//!
//! ```text
//! first_call MODEL.pt INPUT.npy [simple|profiling]
//! first_call MODEL.pt INPUT.npy method NAME REPEAT [none|forward|gradients|both] [auto|contiguous|channels-last] [freeze|no-freeze] [MAX_BATCH]
//! ```
//! (`cargo run --release -p attrib-examples --example first_call -- ...`; NAME: saliency,
//! integrated-gradients (50 steps), feature-ablation (2×2-pixel grid), occlusion (C×4×4
//! windows, strides C×2×2), `raw` (three bare forward + backward passes of the inputs) or `none`
//! (load and warm up only, a baseline for profiles).)
//!
//! The first form runs each step twice in a fresh process and prints both times: a forward pass
//! without gradients, with gradients, on channels-last inputs, at other batch sizes (oneDNN
//! makes kernels per shape), and making the frozen inference copy and its first passes. `simple`
//! (the default) puts TorchScript on its simple executor first, as the `attrib` command line
//! does.
//!
//! The second form times one method's first call and REPEAT warm calls after the library's
//! warm-up (`attrib::tensor::warm`, with the job rehearsal of `attrib explain --repeat`; `none`:
//! no warm-up; with `ATTRIB_CACHE_DIR=DIR` the
//! evaluator's decisions and chunk shapes are kept in DIR, as the CLI keeps them, so that a
//! later process's warm-up rehearses them), and prints one JSON line: wall times,
//! this thread's CPU time (with `OMP_NUM_THREADS=1` the thread does all the work, and CPU time
//! leaves out the time other processes take the core: the measure to use on a busy machine) and
//! page faults of the first and of each warm call. `ONEDNN_VERBOSE=all` on stderr, after the
//! `first_call: attribution starts` line, lists the oneDNN kernels the first call makes.

use attrib::convert::read_npy_tensor;
use attrib::prelude::*;
use attrib::tensor::clock::thread_cpu_ns;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().nth(7).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The heap's size now, on stderr (a first call that extends the heap pays page faults).
fn heap(when: &str) {
    eprintln!("first_call: heap {} MiB {when}", attrib::tensor::host_alloc::heap_bytes() >> 20);
}

fn twice(name: &str, mut f: impl FnMut()) {
    let t = Instant::now();
    f();
    let first = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    f();
    let second = t.elapsed().as_secs_f64() * 1e3;
    println!("{name:<44} first {first:8.2} ms   second {second:8.2} ms");
}

/// The `method` form (see the module docs).
fn method(args: &[String]) -> attrib::Result<()> {
    use attrib::tensor::warm::Work;
    let (model_path, input, name) = (&args[1], &args[2], args[4].as_str());
    let repeat: usize = args[5].parse().unwrap_or(5);
    let work = match args.get(6).map_or("none", |s| s.as_str()) {
        "forward" => Some(Work::Forward),
        "gradients" => Some(Work::Gradients),
        "both" => Some(Work::Both),
        _ => None,
    };
    let memory_format = match args.get(7).map_or("auto", |s| s.as_str()) {
        "contiguous" => MemoryFormat::Contiguous,
        "channels-last" => MemoryFormat::ChannelsLast,
        _ => MemoryFormat::Auto,
    };
    let batch = BatchOptions {
        memory_format,
        inference_copy: args.get(8).map_or(true, |s| s != "no-freeze"),
        max_batch: args.get(9).and_then(|s| s.parse().ok()),
        ..BatchOptions::default()
    };
    let t = Instant::now();
    let model = TorchScriptModel::load(model_path, Device::Cpu)?;
    let load = t.elapsed().as_secs_f64() * 1e3;
    let x = read_npy_tensor(input, Device::Cpu)?;
    let (c, h, w) = (x.size()[1], x.size()[2], x.size()[3]);
    let inputs = Inputs::new(x);
    // As `attrib explain --repeat`: benchmark mode rehearses the noted chunk shapes.
    let warm_ms = work.map_or(0.0, |w| {
        attrib::tensor::warm::warm_up_rehearsing(&model, &inputs, &batch, w, attrib::tensor::warm::BENCHMARK_REHEARSAL_MS).elapsed.as_secs_f64() * 1e3
    });
    let m: Box<dyn Attribution> = match name {
        // Load and warm up only (a baseline for profiles of the first call).
        "none" => return Ok(()),
        // The raw forward + backward of the inputs, contiguous, three times (CPU ms each).
        "raw" => {
            let x = &inputs.tensors()[0];
            let times: Vec<f64> = (0..3)
                .map(|_| {
                    let c = thread_cpu_ns();
                    let leaf = x.detach().set_requires_grad(true);
                    let out = model.forward(&[leaf.shallow_clone()], &[]).unwrap();
                    let _ = Tensor::run_backward(&[out.select(1, 0).sum(Kind::Float)], &[leaf], false, false);
                    (thread_cpu_ns() - c) as f64 / 1e6
                })
                .collect();
            println!("{}", serde_json::json!({"raw_fwd_bwd_cpu_ms": times}));
            return Ok(());
        }
        "saliency" => Box::new(Saliency::params().batch(batch).check()?),
        "integrated-gradients" => Box::new(IntegratedGradients::params().n_steps(50).batch(batch).check()?),
        "feature-ablation" => Box::new(FeatureAblation::params().feature_mask(FeatureMask::grid(h, w, 2, 2)?).batch(batch).check()?),
        "occlusion" => Box::new(Occlusion::params().window(&[c, 4, 4]).stride(&[c, 2, 2]).batch(batch).check()?),
        other => panic!("unknown method {other}"),
    };
    let target = Target::Class(0);
    // As `attrib explain --repeat`: then a job of the method's size (`rehearse_job`).
    let warm_ms = warm_ms
        + match (work, m.planned_rows(&inputs)) {
            (Some(_), Some(plan)) => {
                let cap = attrib::tensor::warm::BENCHMARK_REHEARSAL_MS;
                let r = attrib::tensor::warm::rehearse_job(&model, &inputs, &target, &batch, plan, cap);
                eprintln!("first_call: job rehearsal {:?} failed {:?}", r.steps, r.failed);
                r.elapsed.as_secs_f64() * 1e3
            }
            _ => 0.0,
        };
    heap("after rehearsal");
    // Markers for logs interleaved on stderr (ONEDNN_VERBOSE=1 shows each kernel made).
    eprintln!("first_call: attribution starts at {:.6} s (monotonic)", monotonic_s());
    let (f0, c0, t0) = (minor_faults(), thread_cpu_ns(), Instant::now());
    m.attribute(&model, &inputs, &target)?;
    let (f1, c1, first) = (minor_faults(), thread_cpu_ns(), t0.elapsed().as_secs_f64() * 1e3);
    eprintln!("first_call: first call ends at {:.6} s (monotonic)", monotonic_s());
    heap("after first call");
    let (mut wall, mut cpu, mut faults) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        let (c, t, f) = (thread_cpu_ns(), Instant::now(), minor_faults());
        m.attribute(&model, &inputs, &target)?;
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push((thread_cpu_ns() - c) as f64 / 1e6);
        faults.push(minor_faults() - f);
    }
    eprintln!("first_call: warm calls end at {:.6} s (monotonic)", monotonic_s());
    heap("after warm calls");
    let f2 = minor_faults();
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        serde_json::json!({"method": name, "load_ms": load, "warm_up_ms": warm_ms, "first_ms": first, "elapsed_ms": med(wall),
            "first_cpu_ms": (c1 - c0) as f64 / 1e6, "warm_cpu_ms": med(cpu.clone()),
            "first_faults": f1 - f0, "warm_faults_per_call": (f2 - f1) / (repeat.max(1) as u64), "warm_faults": faults, "warm_cpu": cpu})
    );
    Ok(())
}

/// `CLOCK_MONOTONIC` in seconds: the clock of `perf record -k monotonic`, so that the markers
/// on stderr can cut a profile into the first and the warm calls (`perf report --time A,B`).
fn monotonic_s() -> f64 {
    attrib::tensor::clock::monotonic_ns() as f64 / 1e9
}

fn main() -> attrib::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 5 && args[3] == "method" {
        attrib::tensor::host_alloc::tune();
        attrib::model::use_simple_executor()?;
        // As the CLI: evaluator decisions and chunk shapes kept for later processes (the
        // warm-up rehearses them), when ATTRIB_CACHE_DIR names a folder.
        if let Some(dir) = std::env::var_os("ATTRIB_CACHE_DIR").filter(|d| !d.is_empty() && d != "off") {
            attrib::tensor::decisions::keep_on_disk(dir);
        }
        return method(&args);
    }
    if args.len() < 3 {
        eprintln!("usage: first_call MODEL.pt INPUT.npy [simple|profiling]\n       first_call MODEL.pt INPUT.npy method NAME REPEAT [WARM] [FORMAT] [freeze|no-freeze] [MAX_BATCH]");
        std::process::exit(2);
    }
    attrib::tensor::host_alloc::tune();
    if args.get(3).map_or(true, |m| m == "simple") {
        attrib::model::use_simple_executor()?;
    }
    let t = Instant::now();
    let model = TorchScriptModel::load(&args[1], Device::Cpu)?;
    println!("{:<44} {:8.2} ms", "load", t.elapsed().as_secs_f64() * 1e3);
    let x = read_npy_tensor(&args[2], Device::Cpu)?;
    let n = x.size()[0];
    let rows = |k: i64| x.repeat([(k + n - 1) / n, 1, 1, 1]).narrow(0, 0, k).contiguous();
    let fwd = |m: &dyn Model, xs: &Tensor| {
        let _ = std::hint::black_box(tch::no_grad(|| m.forward(&[xs.shallow_clone()], &[]).unwrap()));
    };
    let fwd_bwd = |xs: &Tensor| {
        let leaf = xs.detach().set_requires_grad(true);
        let out = model.forward(&[leaf.shallow_clone()], &[]).unwrap();
        let g = Tensor::run_backward(&[out.select(1, 0).sum(Kind::Float)], &[leaf], false, false);
        std::hint::black_box(g);
    };
    let cl = |t: &Tensor| attrib::tensor::eval::to_layout(vec![t.shallow_clone()], attrib::Layout::ChannelsLast).unwrap().remove(0);

    let one = rows(1);
    twice("forward, 1 row", || fwd(&model, &one));
    twice(&format!("forward, {n} rows"), || fwd(&model, &x));
    twice(&format!("forward+backward, {n} rows"), || fwd_bwd(&x));
    twice("forward+backward, 1 row", || fwd_bwd(&one));
    twice(&format!("forward, {n} rows channels-last"), || fwd(&model, &cl(&x)));
    twice(&format!("forward+backward, {n} rows channels-last"), || fwd_bwd(&cl(&x)));
    for k in [173, 256, 272] {
        let xs = rows(k);
        twice(&format!("forward, {k} rows"), || fwd(&model, &xs));
        twice(&format!("forward, {k} rows channels-last"), || fwd(&model, &cl(&xs)));
    }
    for k in [200, 256] {
        let xs = rows(k);
        twice(&format!("forward+backward, {k} rows"), || fwd_bwd(&xs));
    }
    let t = Instant::now();
    let frozen = model.inference_model();
    println!("{:<44} {:8.2} ms ({})", "frozen copy made", t.elapsed().as_secs_f64() * 1e3, frozen.is_some());
    if let Some(f) = frozen {
        twice("frozen forward, 1 row", || fwd(f, &one));
        for k in [86, 128, 136] {
            let xs = rows(k);
            twice(&format!("frozen forward, {k} rows"), || fwd(f, &xs));
        }
    }
    Ok(())
}
