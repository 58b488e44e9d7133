//! Feature ablation (64 grid groups) and occlusion (3×8×8 windows, stride 4) on a small CNN,
//! batch 16 of 3×32×32, with the default (memory-budget) chunking. The side-by-side comparison
//! with Captum is `benches/side_by_side_ablation.py`.

use attrib::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    // Process-wide settings are the binary's choice; timings are taken as the CLI runs.
    attrib::tensor::host_alloc::tune();
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let w1 = Tensor::randn([16, 3, 4, 4], opts) * 0.2;
    let w2 = Tensor::randn([16 * 8 * 8, 10], opts) * 0.05;
    let model = FnModel::new(|x: &Tensor| {
        x.conv2d(&w1, None::<Tensor>, [4, 4], [0, 0], [1, 1], 1).relu().flatten(1, -1).matmul(&w2)
    });
    let x = Tensor::randn([16, 3, 32, 32], opts);
    let inputs = Inputs::new(x);
    let target = Target::Class(0);
    let fa = FeatureAblation::params().feature_mask(FeatureMask::grid(32, 32, 4, 4).unwrap()).check().unwrap();
    let oc = Occlusion::params().window(&[3, 8, 8]).stride(&[3, 4, 4]).check().unwrap();
    let mut g = c.benchmark_group("perturbation");
    g.sample_size(10);
    g.bench_function("feature_ablation_64_groups", |b| b.iter(|| fa.attribute(&model, &inputs, &target).unwrap()));
    g.bench_function("occlusion_8x8_stride4", |b| b.iter(|| oc.attribute(&model, &inputs, &target).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
