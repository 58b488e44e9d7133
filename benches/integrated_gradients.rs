//! Integrated Gradients on a small CNN (batch 16 of 3×32×32, 50 steps, 2 threads) against the
//! raw libtorch forward + backward of the same 800-row batch. The Captum comparison and
//! ResNet-18 are in `benches/side_by_side_ig.py`.

use attrib::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};
use tch::{nn, nn::Module, Device, Kind, Tensor};

fn small_cnn(vs: &nn::Path) -> nn::Sequential {
    let conv = |_c_in: i64, _c_out: i64| nn::ConvConfig { padding: 1, ..Default::default() };
    nn::seq()
        .add(nn::conv2d(vs / "c1", 3, 16, 3, conv(3, 16)))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(nn::conv2d(vs / "c2", 16, 32, 3, conv(16, 32)))
        .add_fn(|x| x.relu().max_pool2d_default(2).flatten(1, -1))
        .add(nn::linear(vs / "fc", 32 * 8 * 8, 10, Default::default()))
}

fn bench(c: &mut Criterion) {
    // Process-wide settings are the binary's choice; timings are taken as the CLI runs.
    attrib::tensor::host_alloc::tune();
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = small_cnn(&vs.root());
    let model = ModuleModel::new(net, Device::Cpu);
    let x = Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu));
    let inputs = Inputs::new(x.shallow_clone());
    let ig = IntegratedGradients::params().n_steps(50).check().unwrap();
    let mut g = c.benchmark_group("ig_small_cnn_16x32_50steps");
    g.sample_size(10);
    g.bench_function("attrib_ig", |b| b.iter(|| ig.attribute(&model, &inputs, &Target::Class(0)).unwrap()));
    g.bench_function("raw_fwd_bwd_800_rows", |b| {
        b.iter(|| {
            let pts = x.repeat([50, 1, 1, 1]).set_requires_grad(true);
            let out = model.module().forward(&pts).select(1, 0).sum(Kind::Float);
            Tensor::run_backward(&[out], &[pts], false, false)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
