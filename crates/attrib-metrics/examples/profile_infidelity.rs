//! Where the time of `infidelity` goes (bench case of `benches/side_by_side_metrics.py`):
//! `cargo run --release -p attrib-metrics --example profile_infidelity -- MODEL.pt X.npy [SAMPLES]`.
//! Prints the minimum and median of 7 runs of each piece, in ms.
use attrib_core::{Inputs, Model, Target, TorchScriptModel};
use attrib_metrics::{infidelity, InfidelityParams};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn time(name: &str, mut f: impl FnMut()) {
    f();
    let mut ts: Vec<f64> = (0..7)
        .map(|_| {
            let c = Instant::now();
            f();
            c.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    println!("{name:<44} min {:8.2}  median {:8.2}", ts[0], ts[3]);
}

fn main() -> attrib_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = TorchScriptModel::load(&args[1], Device::Cpu)?;
    let x = Tensor::read_npy(&args[2]).expect("reading the input");
    let s: i64 = args.get(3).map_or(100, |v| v.parse().unwrap());
    let n = x.size()[0];
    let rows = s * n;
    let row_shape = x.size()[1..].to_vec();
    time("noise: attrib_tensor::rng::normal_rows", || {
        let _ = attrib_tensor::rng::normal_rows(0, 0, n..n + rows, n, &row_shape, 0.1, Kind::Float, Device::Cpu).unwrap();
    });
    time("noise: torch randn", || {
        let mut shape = vec![rows];
        shape.extend_from_slice(&row_shape);
        let _ = Tensor::randn(&shape, (Kind::Float, Device::Cpu));
    });
    time("noise: attrib_metrics::perturb::Noise::rows", || {
        let _ = attrib_metrics::Noise::Gaussian { stdev: 0.1 }.rows(0, 0, &x, 0..rows).unwrap();
    });
    let xr = x.repeat([s + 1, 1, 1, 1]);
    let fwd = |m: &dyn Model, t: &Tensor, chunk: i64| {
        tch::no_grad(|| {
            for c in t.split(chunk, 0) {
                let _ = m.forward(&[c], &[]).unwrap();
            }
        })
    };
    time("forward plain, one call", || fwd(&model, &xr, rows + n));
    time("forward plain, chunks of 256", || fwd(&model, &xr, 256));
    let cl = attrib_tensor::to_layout(vec![xr.shallow_clone()], attrib_tensor::Layout::ChannelsLast)?.remove(0);
    time("forward channels-last, one call", || fwd(&model, &cl, rows + n));
    time("forward channels-last, chunks of 256", || fwd(&model, &cl, 256));
    if let Some(fm) = model.inference_model() {
        time("forward frozen, one call", || fwd(fm, &xr, rows + n));
        time("forward frozen, chunks of 128", || fwd(fm, &xr, 128));
        time("forward frozen, chunks of 256", || fwd(fm, &xr, 256));
    }
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::Argmax;
    let attr = x.randn_like();
    let params = InfidelityParams { n_perturb_samples: s as usize, ..Default::default() };
    time("infidelity (whole call, auto)", || {
        let _ = infidelity(&model, &inputs, &target, &[attr.shallow_clone()], &params).unwrap();
    });
    let variants = [
        ("contiguous", attrib_core::MemoryFormat::Contiguous, false, None),
        ("channels-last", attrib_core::MemoryFormat::ChannelsLast, false, None),
        ("frozen (chunks 256)", attrib_core::MemoryFormat::Contiguous, true, Some(512)),
        ("frozen (chunks 128)", attrib_core::MemoryFormat::Contiguous, true, None),
    ];
    for (name, format, copy, max) in variants {
        let batch = attrib_core::BatchOptions { memory_format: format, inference_copy: copy, max_batch: max, ..Default::default() };
        let p = InfidelityParams { batch, ..InfidelityParams { n_perturb_samples: s as usize, ..Default::default() } };
        time(&format!("infidelity, {name}"), || {
            let _ = infidelity(&model, &inputs, &target, &[attr.shallow_clone()], &p).unwrap();
        });
    }
    Ok(())
}
