//! Time ROAD's batched imputation (`attrib_metrics::road::impute`) on random images and removal
//! masks: `cargo run --release -p attrib-metrics --example road_bench [ROWS] [SIZE] [ROUNDS]`.
//! Prints per removed fraction the conjugate-gradient iterations, the final relative residual and
//! the median wall time of ROUNDS calls.

use attrib_metrics::road::impute;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    let args: Vec<i64> = std::env::args().skip(1).map(|a| a.parse().expect("integer arguments")).collect();
    let (rows, size, rounds) = (args.first().copied().unwrap_or(420), args.get(1).copied().unwrap_or(16), args.get(2).copied().unwrap_or(3));
    tch::manual_seed(0);
    let x = Tensor::rand([rows, 1, size, size], (Kind::Float, Device::Cpu));
    println!("| removed | rows | image | iterations | residual | median ms |");
    println!("|---|---|---|---|---|---|");
    for fraction in [0.1, 0.5, 0.9, 0.99] {
        let removed = Tensor::rand([rows, 1, size, size], (Kind::Float, Device::Cpu)).lt(fraction);
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..rounds {
            let clock = Instant::now();
            let r = impute(&x, &removed, 1e-6, 5000).expect("imputation");
            times.push(clock.elapsed().as_secs_f64() * 1e3);
            last = Some(r);
        }
        times.sort_by(f64::total_cmp);
        let r = last.expect("one round");
        println!("| {fraction} | {rows} | {size}x{size} | {} | {:.1e} | {:.1} |", r.iterations, r.residual, times[times.len() / 2]);
    }
}
