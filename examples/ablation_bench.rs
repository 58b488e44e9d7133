//! Time attrib's feature ablation and occlusion on a TorchScript model, for
//! `benches/side_by_side_ablation.py`.
//!
//! ```text
//! cargo run --release -p attrib-examples --example ablation_bench -- MODEL.pt INPUT.npy REPEATS [MAX_BATCH]
//! ```
//! Prints one JSON object: the best wall time (ms) of each method over REPEATS runs, after one
//! warm-up run. The mask is a 4×4-pixel grid over the last two dimensions; occlusion uses a
//! `C×8×8` window with strides `C×4×4`; the target is class 0.

use attrib::prelude::*;
use std::time::Instant;

fn best(repeats: usize, mut f: impl FnMut() -> attrib::Result<()>) -> attrib::Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

fn main() -> attrib::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: ablation_bench MODEL.pt INPUT.npy REPEATS [MAX_BATCH]");
        std::process::exit(2);
    }
    // Process-wide settings are the binary's choice; timings are taken as the CLI runs.
    attrib::tensor::host_alloc::tune();
    attrib::model::use_simple_executor()?;
    let device = tch::Device::Cpu;
    let model = TorchScriptModel::load(&args[1], device)?;
    let x = attrib::convert::read_npy_tensor(&args[2], device)?;
    let repeats: usize = args[3].parse().unwrap_or(5);
    let batch = BatchOptions { max_batch: args.get(4).and_then(|s| s.parse().ok()), ..BatchOptions::default() };
    let size = x.size();
    let (c, h, w) = (size[1], size[2], size[3]);
    let inputs = Inputs::new(x);
    let target = Target::Class(0);

    let fa = FeatureAblation::params().feature_mask(FeatureMask::grid(h, w, 4, 4)?).batch(batch).check()?;
    let groups = FeatureMask::grid(h, w, 4, 4)?.groups()?.len();
    let fa_ms = best(repeats, || fa.attribute(&model, &inputs, &target).map(|_| ()))?;
    let oc = Occlusion::params().window(&[c, 8, 8]).stride(&[c, 4, 4]).batch(batch).check()?;
    let oc_ms = best(repeats, || oc.attribute(&model, &inputs, &target).map(|_| ()))?;
    println!(
        "{{\"feature_ablation_ms\": {fa_ms:.3}, \"occlusion_ms\": {oc_ms:.3}, \"groups\": {groups}, \"max_batch\": {}}}",
        batch.max_batch.map_or("null".to_string(), |b| b.to_string())
    );
    Ok(())
}
