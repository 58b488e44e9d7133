//! Every registered method on CUDA against its result on the CPU (same weights, inputs and
//! seeds), and the chunk loop's memory budget taken from the device.
//!
//! These tests need a CUDA device, so they are `#[ignore]`d: `cargo test` lists them as ignored
//! (never as passed) on machines without one, and `scripts/gpu-check.sh` (`make gpu-check`) runs
//! them with `--ignored`. Run without a device they fail, saying so.

use attrib::methods::{DefaultsContext, InputKind, Registry};
use attrib::prelude::*;
use tch::{Device, Kind, Tensor};

fn cuda() -> Device {
    let choice = DeviceSpec::Cuda(0).choose().unwrap_or_else(|e| panic!("these tests need a CUDA device: {e}"));
    choice.device
}

/// A small CNN for [N, 3, 16, 16] inputs, with its weights on `device`.
fn cnn(weights: &[Tensor], device: Device) -> FnModel<'static> {
    let w: Vec<Tensor> = weights.iter().map(|t| t.to_device(device)).collect();
    FnModel::new(move |x: &Tensor| {
        let h = x.conv2d(&w[0], Some(&w[1]), [1, 1], [1, 1], [1, 1], 1).relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        let h = h.conv2d(&w[2], Some(&w[3]), [1, 1], [1, 1], [1, 1], 1).tanh().avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
        h.flatten(1, -1).matmul(&w[4]) + &w[5]
    })
    .on_device(device)
}

fn weights() -> Vec<Tensor> {
    tch::manual_seed(11);
    let k = (Kind::Float, Device::Cpu);
    vec![
        Tensor::randn([8, 3, 3, 3], k) * 0.3,
        Tensor::randn([8], k) * 0.1,
        Tensor::randn([16, 8, 3, 3], k) * 0.2,
        Tensor::randn([16], k) * 0.1,
        Tensor::randn([16 * 4 * 4, 10], k) * 0.1,
        Tensor::randn([10], k) * 0.1,
    ]
}

#[test]
#[ignore = "needs a CUDA device: run scripts/gpu-check.sh (make gpu-check)"]
fn every_method_on_cuda_matches_the_cpu() {
    let gpu = cuda();
    let w = weights();
    let x = Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu));
    let registry = Registry::builtin();
    let ctx = DefaultsContext { shapes: vec![x.size()], kinds: vec![InputKind::Image], differentiable: true };
    let mut worst = Vec::new();
    for entry in registry.entries() {
        // Layer methods need a TorchScript model and a layer name (tests/layer_parity.rs).
        if entry.doc().family == attrib::methods::Family::Layer {
            continue;
        }
        let mut params = entry.compare_settings(&ctx).unwrap();
        params.insert("memory_format".into(), "contiguous".into());
        let spec = MethodSpec { method: entry.doc().name.to_string(), label: None, params };
        let run = |device: Device| {
            let xs = x.to_device(device);
            let m = registry.build(&spec, &[xs.shallow_clone()]).unwrap();
            m.attribute(&cnn(&w, device), &Inputs::new(xs), &Target::Class(3)).unwrap().values[0].to_device(Device::Cpu)
        };
        let (on_cpu, on_gpu) = (run(Device::Cpu), run(gpu));
        let scale = on_cpu.abs().max().double_value(&[]).max(1e-30);
        let rel = (&on_gpu - &on_cpu).abs().max().double_value(&[]) / scale;
        println!("{:22} largest difference CUDA vs CPU, relative to the largest attribution: {rel:.2e}", entry.doc().name);
        worst.push((entry.doc().name, rel));
    }
    for (name, rel) in worst {
        assert!(rel < 1e-3, "{name}: CUDA differs from the CPU by {rel:.2e} of the largest attribution");
    }
}

#[test]
#[ignore = "needs a CUDA device: run scripts/gpu-check.sh (make gpu-check)"]
fn the_budget_comes_from_the_device() {
    let gpu = cuda();
    let (free, total) = attrib::tensor::device::cuda_memory(gpu).expect("cudaMemGetInfo answers on a CUDA device");
    println!("device memory: {free} free of {total} bytes");
    assert!(free > 0 && free <= total);
    let budget = attrib::tensor::memory::default_budget(gpu);
    println!("default budget on {gpu:?}: {budget} bytes");
    assert!(budget > 4 << 30 || total < 16 << 30, "a large card gets more than the old fixed 4 GiB");
    assert!(budget < free);
}
