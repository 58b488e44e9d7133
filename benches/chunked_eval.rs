//! Overhead of the shared chunked evaluator: gradients of the target outputs of a batch through
//! `Evaluator::gradients` (validation, target resolution, memory probe, chunking) against one raw
//! libtorch forward + backward of the same batch.
//!
//! `cargo bench -p attrib-benches --bench chunked_eval` prints criterion's timings and, at the
//! end, the ratio attrib / raw (median of repeated runs) for automatic and for fixed chunks.

use attrib::prelude::*;
use attrib::{Evaluator, Expanded};
use criterion::{criterion_group, Criterion};
use std::time::{Duration, Instant};
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

const ROWS: i64 = 64;

fn cnn(vs: &nn::Path) -> impl Module {
    let conv = |p: nn::Path, i, o| nn::conv2d(p, i, o, 3, nn::ConvConfig { padding: 1, ..Default::default() });
    nn::seq()
        .add(conv(vs / "c1", 3, 16))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(conv(vs / "c2", 16, 32))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add_fn(|x| x.flatten(1, -1))
        .add(nn::linear(vs / "fc", 32 * 8 * 8, 10, Default::default()))
}

fn raw_forward_backward(net: &impl Module, x: &Tensor) -> Tensor {
    let leaf = x.detach().set_requires_grad(true);
    let out = net.forward_t(&leaf, false).select(1, 3).sum(Kind::Float);
    Tensor::run_backward(&[out], &[&leaf], false, false).pop().unwrap()
}

fn attrib_gradients(model: &dyn Model, x: &Tensor, options: BatchOptions) -> Tensor {
    let ev = Evaluator::new(model, options).unwrap();
    let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::Class(3)).unwrap();
    let batch = Expanded::identity(&p.inputs);
    let mut g = ev.gradients(&p, &batch).unwrap();
    g.grads.pop().unwrap()
}

fn median(mut f: impl FnMut(), reps: usize) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[reps / 2]
}

fn bench(c: &mut Criterion) {
    // Process-wide settings are the binary's choice; timings are taken as the CLI runs.
    attrib::tensor::host_alloc::tune();
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ModuleModel::new(cnn(&vs.root()), Device::Cpu);
    let net = model.module();
    let x = Tensor::randn([ROWS, 3, 32, 32], (Kind::Float, Device::Cpu));
    let mut g = c.benchmark_group("gradients_64x3x32x32");
    g.sample_size(20);
    g.bench_function("raw_libtorch", |b| b.iter(|| raw_forward_backward(net, &x)));
    g.bench_function("attrib_auto_chunks", |b| b.iter(|| attrib_gradients(&model, &x, BatchOptions::default())));
    g.bench_function("attrib_chunks_of_16", |b| b.iter(|| attrib_gradients(&model, &x, BatchOptions::with_max_batch(16))));
    g.finish();

    // Same gradients either way.
    let a = attrib_gradients(&model, &x, BatchOptions::default());
    let r = raw_forward_backward(net, &x);
    assert!(a.allclose(&r, 1e-4, 1e-6, false), "attrib and raw gradients differ");

    let raw = median(|| drop(raw_forward_backward(net, &x)), 15);
    let auto = median(|| drop(attrib_gradients(&model, &x, BatchOptions::default())), 15);
    let fixed = median(|| drop(attrib_gradients(&model, &x, BatchOptions::with_max_batch(16))), 15);
    println!("\nchunked-evaluator overhead, {ROWS} rows of 3x32x32, {} threads:", tch::get_num_threads());
    println!("  attrib (auto chunks)  / raw forward+backward = {:.3}", auto.as_secs_f64() / raw.as_secs_f64());
    println!("  attrib (chunks of 16) / raw forward+backward = {:.3}", fixed.as_secs_f64() / raw.as_secs_f64());
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
