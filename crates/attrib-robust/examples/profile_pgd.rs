//! Where the time of PGD goes (bench case of `benches/side_by_side_attack.py`):
//! `cargo run --release -p attrib-robust --example profile_pgd -- MODEL.pt X.npy [ROUNDS]`.
//! Each round times, interleaved, the floor (20 bare forward+backward passes of the cross-entropy
//! on the logits, from Rust, contiguous and channels-last inputs) and `Pgd::perturb` (automatic
//! and channels-last layout); prints per piece the median over rounds of each round's minimum of
//! 5 calls, in ms.
use attrib_core::{BatchOptions, Inputs, MemoryFormat, Model, Target, TorchScriptModel};
use attrib_robust::Pgd;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn min_ms(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let c = Instant::now();
            f();
            c.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> attrib_core::Result<()> {
    // The allocator settings and executor of the `attrib` binary, so the pieces cost what they
    // cost there.
    attrib_tensor::host_alloc::tune();
    attrib_core::model::use_simple_executor()?;
    let args: Vec<String> = std::env::args().collect();
    let model = TorchScriptModel::load(&args[1], Device::Cpu)?;
    let x = Tensor::read_npy(&args[2]).expect("reading the input");
    let rounds: usize = args.get(3).map_or(5, |v| v.parse().unwrap());
    let labels = tch::no_grad(|| model.forward(&[x.shallow_clone()], &[]))?.argmax(1, false);
    let cl = attrib_tensor::to_layout(vec![x.shallow_clone()], attrib_tensor::Layout::ChannelsLast)?.remove(0);
    let floor = |x0: &Tensor| {
        for _ in 0..20 {
            let leaf = x0.detach().set_requires_grad(true);
            let out = model.forward(&[leaf.shallow_clone()], &[]).unwrap();
            let loss = out.log_softmax(1, Kind::Float).gather(1, &labels.unsqueeze(1), false).neg().sum(Kind::Float);
            let _ = Tensor::run_backward(&[loss], &[leaf], false, false);
        }
    };
    let pgd = |format: MemoryFormat| {
        let batch = BatchOptions { memory_format: format, ..Default::default() };
        Pgd::params(8.0 / 255.0).step_size(2.0 / 255.0).step_num(20).bounds(0.0, 1.0).batch(batch).check().unwrap()
    };
    let (auto, chl) = (pgd(MemoryFormat::Auto), pgd(MemoryFormat::ChannelsLast));
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::PerSample(Vec::<i64>::try_from(&labels).unwrap());
    let mut rows: Vec<[f64; 4]> = Vec::new();
    for _ in 0..rounds {
        rows.push([
            min_ms(|| floor(&x)),
            min_ms(|| floor(&cl)),
            min_ms(|| {
                auto.perturb(&model, &inputs, &target).unwrap();
            }),
            min_ms(|| {
                chl.perturb(&model, &inputs, &target).unwrap();
            }),
        ]);
    }
    let names = ["floor, contiguous", "floor, channels-last", "Pgd::perturb, auto", "Pgd::perturb, channels-last"];
    for (k, name) in names.iter().enumerate() {
        let mut v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        println!("{name:<30} {:8.2}  (rounds {:.2}..{:.2})", v[v.len() / 2], v[0], v[v.len() - 1]);
    }
    Ok(())
}
