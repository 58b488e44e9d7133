//! KernelSHAP and exact Shapley values side by side on the bundled breast-cancer MLP: the 30
//! features grouped into their 10 base measurements (mean, error and worst of radius, texture,
//! ...), so that the exact values (2^10 = 1024 coalitions per row) are cheap; KernelSHAP
//! estimates them from 200 model calls per row. Prints, for each of the eight rows, the
//! prediction and the three measurements that moved it most according to each method.
//!
//! Run from the repository root (after `make demo` or `make test` created the venv):
//! `cargo run --release -p attrib-examples --example shap_breast_cancer`

use attrib::convert::read_npy_tensor;
use attrib::prelude::*;
use tch::{Device, Kind, Tensor};

const CLASSES: [&str; 2] = ["malignant", "benign"];

fn main() -> attrib::Result<()> {
    let model = TorchScriptModel::load("examples/data/breast_cancer_mlp.pt", Device::Cpu)?;
    let x = read_npy_tensor("examples/data/breast_cancer.npy", Device::Cpu)?; // [8, 30], standardised
    let names: Vec<String> = serde_json::from_str(&std::fs::read_to_string("examples/data/breast_cancer_features.json").expect("feature names"))
        .expect("a JSON list of names");
    // Feature e is measurement e % 10: "mean radius", "radius error" and "worst radius" are group 0.
    let mask = || FeatureMask::new(Tensor::arange(30, (Kind::Int64, Device::Cpu)).remainder(10));
    let groups: Vec<String> = names[..10].iter().map(|n| n.trim_start_matches("mean ").to_string()).collect();
    // Baseline zeros: the training mean of the standardised features.
    let exact = ExactShapley::params().feature_mask(mask()?).check()?;
    let kernel = KernelShap::params().feature_mask(mask()?).n_samples(200).seed(0).check()?;
    let inputs = Inputs::new(x.shallow_clone());
    let a = exact.attribute(&model, &inputs, &Target::Argmax)?;
    let k = kernel.attribute(&model, &inputs, &Target::Argmax)?;
    let probs = model.forward(&[x], &[])?.softmax(1, Kind::Float);
    let targets = a.meta.targets.clone().unwrap_or_default();
    // One value per group: the attribution of the group's first feature (mean ...).
    let per_group = |t: &Tensor| -> Vec<Vec<f64>> {
        (0..t.size()[0]).map(|i| (0..10).map(|g| t.double_value(&[i, g])).collect()).collect()
    };
    let (ea, ka) = (per_group(a.single()?), per_group(k.single()?));
    println!(
        "exact Shapley ({} model rows, {:.1} ms) vs KernelSHAP ({} model rows, {:.1} ms), 10 groups of 3 features\n",
        a.meta.extra["model_rows"],
        a.meta.elapsed.as_secs_f64() * 1e3,
        k.meta.extra["model_rows"],
        k.meta.elapsed.as_secs_f64() * 1e3
    );
    let top = |v: &[f64]| -> String {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[j].abs().total_cmp(&v[i].abs()));
        order[..3].iter().map(|&g| format!("{} {:+.3}", groups[g], v[g])).collect::<Vec<_>>().join(", ")
    };
    for (i, &t) in targets.iter().enumerate() {
        let err = ea[i].iter().zip(&ka[i]).map(|(e, k)| (e - k).abs()).fold(0.0, f64::max);
        println!("row {i}: {} ({:.1} %)", CLASSES[t as usize], 100.0 * probs.double_value(&[i as i64, t]));
        println!("  exact:      {}", top(&ea[i]));
        println!("  KernelSHAP: {}   (largest difference {err:.4}; sums: {:+.4} / {:+.4})", top(&ka[i]), ea[i].iter().sum::<f64>(), ka[i].iter().sum::<f64>());
    }
    Ok(())
}
