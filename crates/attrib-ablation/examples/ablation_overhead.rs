//! How much of a perturbation attribution is the model's own forward passes, and how much is
//! attrib's overhead (building perturbed rows, the evaluator, the scatter-back).
//!
//! ```text
//! cargo run --release -p attrib-ablation --example ablation_overhead -- MODEL.pt INPUT.npy [REPEATS] [MAX_BATCH]
//! ```
//! INPUT is `[N, C, H, W]`. Feature ablation uses a 4×4-pixel grid mask; occlusion a `C×8×8`
//! window with strides `C×4×4`; target class 0 (the workload of `benches/side_by_side_ablation.py`).
//! For each method it prints the median wall time of the attribution and of the bare forward
//! passes over the same rows, pre-built, in chunks of the size the attribution used
//! (`MAX_BATCH`, or 256 rows: the automatic CPU cap).

use attrib_ablation::{FeatureAblation, Occlusion};
use attrib_core::{Attribution, BatchOptions, FeatureMask, Inputs, Model, Target, TorchScriptModel};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn median_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Forward passes only: the original rows, then `rows` in chunks of `chunk`.
fn bare_forward(model: &TorchScriptModel, x: &Tensor, rows: &Tensor, chunk: i64) {
    tch::no_grad(|| {
        let _ = model.forward(&[x.shallow_clone()], &[]).unwrap();
        let total = rows.size()[0];
        let mut s = 0;
        while s < total {
            let e = (s + chunk).min(total);
            let _ = model.forward(&[rows.narrow(0, s, e - s)], &[]).unwrap();
            s = e;
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: ablation_overhead MODEL.pt INPUT.npy [REPEATS] [MAX_BATCH]");
        std::process::exit(2);
    }
    // Process-wide settings are the binary's choice; timings are taken as the CLI runs.
    attrib_tensor::host_alloc::tune();
    attrib_core::model::use_simple_executor().unwrap();
    let model = TorchScriptModel::load(&args[1], Device::Cpu).unwrap();
    let x = attrib_tensor::convert::read_npy_tensor(&args[2], Device::Cpu).unwrap();
    let repeats: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let max_batch: Option<usize> = args.get(4).and_then(|s| s.parse().ok());
    let chunk = max_batch.unwrap_or(256) as i64;
    let batch = BatchOptions { max_batch, ..BatchOptions::default() };
    let size = x.size();
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::Class(0);
    // For profilers: `ATTRIB_ONLY=fa` (or `oc`) runs only that attribution, REPEATS times.
    if let Ok(only) = std::env::var("ATTRIB_ONLY") {
        let method: Box<dyn Attribution> = if only == "oc" {
            Box::new(Occlusion::params().window(&[c, 8, 8]).stride(&[c, 4, 4]).batch(batch).check().unwrap())
        } else {
            Box::new(FeatureAblation::params().feature_mask(FeatureMask::grid(h, w, 4, 4).unwrap()).batch(batch).check().unwrap())
        };
        let ms = median_ms(repeats, || {
            method.attribute(&model, &inputs, &target).unwrap();
        });
        println!("{{\"{only}_ms\": {ms:.3}}}");
        return;
    }

    // Feature ablation: 4x4 grid, zero baseline.
    let mask = FeatureMask::grid(h, w, 4, 4).unwrap();
    let ids = mask.ids().reshape([1, 1, h, w]);
    let groups = mask.groups().unwrap().len() as i64;
    let g = Tensor::arange(groups, (Kind::Int64, Device::Cpu)).reshape([groups, 1, 1, 1, 1]);
    let fa_rows = x.unsqueeze(0).masked_fill(&ids.unsqueeze(0).eq_tensor(&g), 0.0).reshape([groups * n, c, h, w]);
    let fa = FeatureAblation::params().feature_mask(mask).batch(batch).check().unwrap();
    let fa_ms = median_ms(repeats, || {
        fa.attribute(&model, &inputs, &target).unwrap();
    });
    let fa_fwd = median_ms(repeats, || bare_forward(&model, &x, &fa_rows, chunk));

    // Occlusion: C×8×8 windows, strides C×4×4: 7×7 positions on 32×32.
    let oc = Occlusion::params().window(&[c, 8, 8]).stride(&[c, 4, 4]).batch(batch).check().unwrap();
    let ph = (h - 8 + 3) / 4 + 1;
    let pw = (w - 8 + 3) / 4 + 1;
    let mut wins = Vec::new();
    for i in 0..ph {
        for j in 0..pw {
            let m = Tensor::zeros([1, 1, h, w], (Kind::Bool, Device::Cpu));
            let _ = m.narrow(2, i * 4, 8.min(h - i * 4)).narrow(3, j * 4, 8.min(w - j * 4)).fill_(1);
            wins.push(x.masked_fill(&m, 0.0));
        }
    }
    let oc_rows = Tensor::cat(&wins, 0);
    let oc_ms = median_ms(repeats, || {
        oc.attribute(&model, &inputs, &target).unwrap();
    });
    let oc_fwd = median_ms(repeats, || bare_forward(&model, &x, &oc_rows, chunk));
    println!(
        "{{\"feature_ablation_ms\": {fa_ms:.3}, \"feature_ablation_forward_ms\": {fa_fwd:.3}, \"occlusion_ms\": {oc_ms:.3}, \"occlusion_forward_ms\": {oc_fwd:.3}, \"chunk\": {chunk}}}"
    );
}
