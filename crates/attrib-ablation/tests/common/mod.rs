//! Helpers shared by the Shapley, KernelSHAP/LIME and Owen tests: seeded values without a
//! generator dependency, and small random MLPs.
#![allow(dead_code)]

use tch::{Device, Kind, Tensor};

pub const D: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

pub fn tensor(seed: u64, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    Tensor::from_slice(&values(seed, n as usize)).reshape(shape)
}

pub fn host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

pub fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

pub fn mlp(seed: u64, inputs: i64, relu: bool) -> impl Fn(&Tensor) -> Tensor {
    let w1 = tensor(seed, &[inputs, 8]) * 1.5;
    let b1 = tensor(seed + 1, &[8]) * 0.5;
    let w2 = tensor(seed + 2, &[8, 2]);
    move |x: &Tensor| {
        let h = x.matmul(&w1) + &b1;
        (if relu { h.relu() } else { h.tanh() }).matmul(&w2)
    }
}

/// Mean over seeds `0..seeds` of the mean absolute difference between `run(seed)`'s attribution
/// and `reference`: a sampled estimator's error for the convergence tests.
pub fn mean_error_over_seeds(seeds: u64, reference: &Tensor, mut run: impl FnMut(u64) -> attrib_core::Attributions) -> f64 {
    (0..seeds)
        .map(|seed| (run(seed).single().unwrap() - reference).abs().mean(Kind::Double).double_value(&[]))
        .sum::<f64>()
        / seeds as f64
}
