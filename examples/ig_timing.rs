//! Timing harness for `benches/side_by_side_ig.py`: Integrated Gradients through attrib versus the
//! raw libtorch forward + backward of the same `n_steps · N`-row batch, on one TorchScript model.
//!
//! `cargo run --release -p attrib-examples --example ig_timing -- MODEL.pt INPUT.npy STEPS REPS THREADS`
//! prints one JSON line: median milliseconds of attrib's IG and of the raw pass.

use attrib::convert::read_npy_tensor;
use attrib::prelude::*;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> attrib::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (model_path, input_path) = (&args[1], &args[2]);
    let steps: usize = args[3].parse().expect("STEPS");
    let reps: usize = args[4].parse().expect("REPS");
    let threads: i32 = args[5].parse().expect("THREADS");
    tch::set_num_threads(threads);
    // Process-wide settings are the binary's choice; timings are taken as the CLI runs.
    attrib::tensor::host_alloc::tune();
    attrib::model::use_simple_executor()?;
    let model = TorchScriptModel::load(model_path, Device::Cpu)?;
    let x = read_npy_tensor(input_path, Device::Cpu)?;
    let n = x.size()[0];
    let inputs = Inputs::new(x.shallow_clone());
    // ATTRIB_MAX_BATCH fixes the chunk size (default: from the memory budget).
    let batch = std::env::var("ATTRIB_MAX_BATCH").ok().and_then(|v| v.parse().ok()).map(BatchOptions::with_max_batch).unwrap_or_default();
    let ig = IntegratedGradients::params().n_steps(steps).batch(batch).check()?;

    // Raw libtorch: forward + backward of the 50·N-row batch of path points, target class 0.
    let raw = || {
        let alphas = Tensor::linspace(0.0, 1.0, steps as i64, (Kind::Float, Device::Cpu));
        let mut shape = vec![steps as i64, 1];
        shape.extend(std::iter::repeat(1).take(x.dim() - 1));
        let pts = (alphas.reshape(&shape) * x.unsqueeze(0)).reshape([-1].iter().copied().chain(x.size()[1..].iter().copied()).collect::<Vec<_>>());
        let leaf = pts.set_requires_grad(true);
        let out = model.forward(&[leaf.shallow_clone()], &[]).unwrap();
        let total = out.select(1, 0).sum(Kind::Float);
        let g = Tensor::run_backward(&[total], &[leaf], false, false);
        std::hint::black_box(g);
    };
    raw(); // warm-up
    let _ = ig.attribute(&model, &inputs, &Target::Class(0))?;
    let mut t_raw = Vec::new();
    let mut t_ig = Vec::new();
    let mut chunk_note = serde_json::Value::Null;
    for _ in 0..reps {
        let t = Instant::now();
        raw();
        t_raw.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let a = ig.attribute(&model, &inputs, &Target::Class(0))?;
        t_ig.push(t.elapsed().as_secs_f64() * 1e3);
        chunk_note = a.meta.params.clone();
    }
    println!(
        "{}",
        serde_json::json!({ "rows": n as usize * steps, "attrib_ig_ms": median(t_ig), "raw_fwd_bwd_ms": median(t_raw), "params": chunk_note })
    );
    Ok(())
}
