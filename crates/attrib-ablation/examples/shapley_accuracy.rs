//! Accuracy per model call of Shapley value sampling: mean absolute error against the exact
//! Shapley values, over many seeds, for each sampler and number of permutations. The driver is
//! `benches/shapley_accuracy.py`, which runs Captum's `ShapleyValueSampling` on the same model,
//! inputs, mask and exact values.
//!
//! ```text
//! cargo run --release -p attrib-ablation --example shapley_accuracy -- MODEL.pt X.npy MASK.npy TARGET EXACT_OUT.npy SEEDS P1,P2,... [N1,N2,...]
//! ```
//! With the optional last argument, KernelSHAP runs too, with each `n_samples` N and five
//! designs (`kernel-stratified`, the default: uniform draws and shares by mass;
//! `kernel-stratified-blocks`: disjoint blocks and square-root shares; `kernel-blocks-slopes`:
//! the same coalitions, `regression = size-slopes`; `kernel-paired`;
//! `kernel-independent`, Captum's draws), one JSON line each with
//! `n_samples` in place of `permutations`.
//! The model runs in float64. Writes the exact values (`ExactShapley`, zero baseline) to
//! EXACT_OUT.npy and prints one JSON line per (sampler, permutations): the mean over the seeds of
//! the mean absolute error over rows and elements, its standard error, and the model evaluations
//! per row (distinct coalitions).

use attrib_ablation::shapley::{Allocation, KernelRegression, StratumDraws};
use attrib_ablation::{ExactShapley, KernelShap, Sampler, ShapleyValueSampling};
use attrib_core::{Attribution, FeatureMask, Inputs, Target, TorchScriptModel};
use attrib_tensor::convert::{array_to_tensor_i64, read_npy_i64, read_npy_tensor, write_npy_tensor};
use tch::{Device, Kind};

fn main() -> attrib_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 7 && args.len() != 8 {
        eprintln!("usage: shapley_accuracy MODEL.pt X.npy MASK.npy TARGET EXACT_OUT.npy SEEDS P1,P2,... [N1,N2,...]");
        std::process::exit(2);
    }
    let mut model = TorchScriptModel::load(&args[0], Device::Cpu)?;
    model.to_kind(Kind::Double)?;
    let x = read_npy_tensor(&args[1], Device::Cpu)?.to_kind(Kind::Double);
    let mask = || -> attrib_core::Result<FeatureMask> { FeatureMask::new(array_to_tensor_i64(&read_npy_i64(&args[2])?, Device::Cpu)?) };
    let target = Target::Class(args[3].parse().expect("TARGET is a class index"));
    let seeds: u64 = args[5].parse().expect("SEEDS is a number");
    let budgets: Vec<usize> = args[6].split(',').map(|p| p.parse().expect("permutation counts")).collect();
    let kernel_budgets: Vec<usize> = args.get(7).map(|a| a.split(',').map(|n| n.parse().expect("n_samples")).collect()).unwrap_or_default();
    let inputs = Inputs::new(x.shallow_clone());
    let exact = ExactShapley::params().feature_mask(mask()?).check()?.attribute(&model, &inputs, &target)?;
    let exact = exact.single()?.shallow_clone();
    write_npy_tensor(&args[4], &exact)?;
    let n = x.size()[0] as f64;
    for sampler in [Sampler::Random, Sampler::Antithetic, Sampler::Stratified] {
        for &p in &budgets {
            let mut errs = Vec::new();
            let mut evals = 0.0;
            for seed in 0..seeds {
                let a = ShapleyValueSampling::params()
                    .feature_mask(mask()?)
                    .n_samples(p)
                    .sampler(sampler)
                    .seed(seed)
                    .check()?
                    .attribute(&model, &inputs, &target)?;
                errs.push((a.single()? - &exact).abs().mean(Kind::Double).double_value(&[]));
                evals += a.meta.extra["model_rows"].as_f64().unwrap_or(f64::NAN) / n;
            }
            report(sampler.name(), "permutations", p, evals / seeds as f64, &errs);
        }
    }
    let (linear, slopes) = (KernelRegression::Linear, KernelRegression::SizeSlopes);
    let designs = [
        ("kernel-stratified", true, true, Allocation::Mass, StratumDraws::Uniform, linear),
        ("kernel-stratified-blocks", true, true, Allocation::SqrtMass, StratumDraws::Blocks, linear),
        ("kernel-blocks-slopes", true, true, Allocation::SqrtMass, StratumDraws::Blocks, slopes),
        ("kernel-paired", false, true, Allocation::Mass, StratumDraws::Uniform, linear),
        ("kernel-independent", false, false, Allocation::Mass, StratumDraws::Uniform, linear),
    ];
    for (name, stratified, paired, allocation, draws, regression) in designs {
        for &n_samples in &kernel_budgets {
            let mut errs = Vec::new();
            let mut evals = 0.0;
            for seed in 0..seeds {
                let a = KernelShap::params()
                    .feature_mask(mask()?)
                    .n_samples(n_samples)
                    .stratified(stratified)
                    .paired(paired)
                    .allocation(allocation)
                    .draws(draws)
                    .regression(regression)
                    .seed(seed)
                    .check()?
                    .attribute(&model, &inputs, &target)?;
                errs.push((a.single()? - &exact).abs().mean(Kind::Double).double_value(&[]));
                evals += a.meta.extra["model_rows"].as_f64().unwrap_or(f64::NAN) / n;
            }
            report(name, "n_samples", n_samples, evals / seeds as f64, &errs);
        }
    }
    Ok(())
}

/// One JSON line: the mean absolute error over the seeds, its standard error, evaluations per row.
fn report(sampler: &str, budget_key: &str, budget: usize, evals_per_row: f64, errs: &[f64]) {
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    let var = errs.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (errs.len().max(2) - 1) as f64;
    println!(
        "{{\"sampler\": \"{sampler}\", \"{budget_key}\": {budget}, \"evals_per_row\": {evals_per_row:.2}, \"mae\": {mean:.6e}, \"stderr\": {:.3e}}}",
        (var / errs.len() as f64).sqrt()
    );
}
