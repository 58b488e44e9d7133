//! Parity of attrib's attacks with Captum 0.9's `FGSM`, `PGD` and `MinParamPerturbation` on
//! TorchScript models (an MLP and a CNN with softmax heads, the CNN's logits with a
//! cross-entropy loss), driven by `robust/cases.json` from `tests/python/fixtures_robust.py`.
//!
//! - FGSM: equal to Captum's, element for element (float32), untargeted, targeted, bounded and
//!   masked.
//! - PGD without a random start: within 1e-5 of Captum's (L∞ and L2, targeted, bounds, mask;
//!   measured: identical).
//! - PGD with a random start (different generators): the success rate over 20 seeds within
//!   0.06 of Captum's over 20 torch seeds.
//! - MinParamPerturbation over FGSM's ε, per row: the same values as Captum run row by row.
//! - On a logits model, Captum's default loss (−log of a logit) is what attrib's
//!   `neg-log-prob` computes, element for element; attrib's `auto` picks cross-entropy there.

use attrib::convert::{read_npy_i64, read_npy_tensor};
use attrib::prelude::*;
use attrib::robust::{Fgsm, Loss, LossKind, MinParamPerturbation, Norm, Pgd, SearchMode};
use attrib_tests::fixtures;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

fn root() -> PathBuf {
    fixtures().join("robust")
}

struct Case {
    model: TorchScriptModel,
    x: Tensor,
    labels: Vec<i64>,
}

fn load(name: &str) -> Case {
    let d = root().join(name);
    Case {
        model: TorchScriptModel::load(d.join("model.pt"), Device::Cpu).unwrap(),
        x: read_npy_tensor(d.join("input.npy"), Device::Cpu).unwrap(),
        labels: read_npy_i64(d.join("labels.npy")).unwrap().iter().copied().collect(),
    }
}

fn read(p: impl AsRef<Path>) -> Tensor {
    read_npy_tensor(p, Device::Cpu).unwrap()
}

/// Contiguous chunks: the same convolution kernels as PyTorch's default run.
fn batch() -> BatchOptions {
    BatchOptions { memory_format: MemoryFormat::Contiguous, ..BatchOptions::default() }
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn fgsm_and_pgd_match_captum() {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(root().join("cases.json")).unwrap()).unwrap();
    let cases = spec["cases"].as_array().unwrap();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let (mut fgsm_cases, mut pgd_worst) = (0, 0.0f64);
    for c in cases {
        let name = c["model"].as_str().unwrap();
        let fx = load(name);
        let classes = fx.model.forward(&[fx.x.narrow(0, 0, 1)], &[]).unwrap().size()[1];
        let target = match c["target"].as_str().unwrap() {
            "labels" => fx.labels.clone(),
            "next" => fx.labels.iter().map(|l| (l + 1) % classes).collect(),
            other => panic!("{other}"),
        };
        let loss: Loss = c["loss"].as_str().unwrap().parse().unwrap();
        let bounds = c["bounds"].as_array().map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap()));
        let mask = c["mask"].as_str().map(|f| vec![read(root().join(f))]);
        let targeted = c["targeted"].as_bool().unwrap();
        let expected = read(root().join(c["adversarial"].as_str().unwrap()));
        let what = format!("{} on {name}: {c}", c["attack"]);
        let out = match c["attack"].as_str().unwrap() {
            "fgsm" => {
                let mut p = Fgsm::params(c["epsilon"].as_f64().unwrap()).targeted(targeted).loss(loss).batch(batch());
                if let Some((lo, hi)) = bounds {
                    p = p.bounds(lo, hi);
                }
                if let Some(m) = mask {
                    p = p.mask(m);
                }
                p.check().unwrap().perturb(&fx.model, &Inputs::new(fx.x.shallow_clone()), &Target::PerSample(target)).unwrap()
            }
            "pgd" => {
                let norm: Norm = c["norm"].as_str().unwrap().parse().unwrap();
                let mut p = Pgd::params(c["epsilon"].as_f64().unwrap())
                    .step_size(c["step_size"].as_f64().unwrap())
                    .step_num(c["step_num"].as_u64().unwrap() as usize)
                    .norm(norm)
                    .targeted(targeted)
                    .loss(loss)
                    .batch(batch());
                if let Some((lo, hi)) = bounds {
                    p = p.bounds(lo, hi);
                }
                if let Some(m) = mask {
                    p = p.mask(m);
                }
                p.check().unwrap().perturb(&fx.model, &Inputs::new(fx.x.shallow_clone()), &Target::PerSample(target)).unwrap()
            }
            other => panic!("{other}"),
        };
        assert_eq!(out.loss.name(), c["loss"].as_str().unwrap(), "{what}");
        let adv = &out.adversarial[0];
        assert_eq!(adv.size(), expected.size(), "{what}");
        if c["attack"] == "fgsm" {
            // Exactly Captum's float32 values.
            assert!(adv.equal(&expected), "{what}: max difference {}", max_abs(adv, &expected));
            fgsm_cases += 1;
        } else {
            let err = max_abs(adv, &expected);
            assert!(err <= 1e-5, "{what}: max difference {err}");
            pgd_worst = pgd_worst.max(err);
        }
        // The attacks move the inputs: not a trivially passing comparison.
        assert!(max_abs(adv, &fx.x) > 1e-3, "{what}: the attack left the inputs as they were");
    }
    assert!(fgsm_cases >= 10);
    eprintln!("PGD: largest difference from Captum {pgd_worst:e}");
}

#[test]
fn captum_loss_on_logits_is_neg_log_prob_and_auto_picks_cross_entropy() {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(root().join("cases.json")).unwrap()).unwrap();
    let case = spec["cases"].as_array().unwrap().iter().find(|c| c["model"] == "mlp_logits").unwrap();
    let fx = load("mlp_logits");
    let captum = read(root().join(case["adversarial"].as_str().unwrap()));
    let eps = case["epsilon"].as_f64().unwrap();
    let target = Target::PerSample(fx.labels.clone());
    let inputs = Inputs::new(fx.x.shallow_clone());
    // Forced Captum loss: the same (misdirected) step, element for element.
    let forced = Fgsm::params(eps).loss(Loss::NegLogProb).batch(batch()).check().unwrap().perturb(&fx.model, &inputs, &target).unwrap();
    assert!(forced.adversarial[0].equal(&captum));
    // Where the label's logit is negative, −log(z) is NaN and its gradient −1/z points the
    // wrong way: Captum's untargeted step *raises* the label's logit.
    let logits = fx.model.forward(&[fx.x.shallow_clone()], &[]).unwrap();
    let after = fx.model.forward(&[captum.shallow_clone()], &[]).unwrap();
    let auto = Fgsm::params(eps).batch(batch()).check().unwrap().perturb(&fx.model, &inputs, &target).unwrap();
    assert_eq!(auto.loss, LossKind::CrossEntropy);
    let after_auto = fx.model.forward(&[auto.adversarial[0].shallow_clone()], &[]).unwrap();
    let margin = |out: &Tensor, i: i64, l: i64| {
        let row = out.get(i);
        let z = row.double_value(&[l]);
        let other = (0..row.size()[0]).filter(|&j| j != l).map(|j| row.double_value(&[j])).fold(f64::NEG_INFINITY, f64::max);
        z - other
    };
    let mut negative_rows = 0;
    for (i, &l) in fx.labels.iter().enumerate() {
        let i = i as i64;
        if logits.double_value(&[i, l]) < 0.0 {
            negative_rows += 1;
            assert!(after.double_value(&[i, l]) > logits.double_value(&[i, l]), "row {i}: Captum's step should raise a negative label logit");
        }
        // Cross-entropy always lowers the label's margin over the other classes.
        assert!(margin(&after_auto, i, l) < margin(&logits, i, l), "row {i}");
    }
    assert!(negative_rows >= 2, "the fixture should hold rows with a negative label logit ({negative_rows})");
}

#[test]
fn pgd_random_start_success_rate_agrees_with_captum() {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(root().join("cases.json")).unwrap()).unwrap();
    let rs = &spec["random_start"];
    let captum: Vec<f64> = rs["rates"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let model = TorchScriptModel::load(root().join("cnn_softmax/model.pt"), Device::Cpu).unwrap();
    let x = read(root().join("random_start_input.npy"));
    let labels: Vec<i64> = read_npy_i64(root().join("random_start_labels.npy")).unwrap().iter().copied().collect();
    let mut ours = Vec::new();
    for seed in 0..20u64 {
        let pgd = Pgd::params(rs["epsilon"].as_f64().unwrap())
            .step_size(rs["step_size"].as_f64().unwrap())
            .step_num(rs["step_num"].as_u64().unwrap() as usize)
            .random_start(true)
            .seed(seed)
            .check()
            .unwrap();
        ours.push(pgd.perturb(&model, &Inputs::new(x.shallow_clone()), &Target::PerSample(labels.clone())).unwrap().success_rate());
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (a, b) = (mean(&ours), mean(&captum));
    eprintln!("random-start success rate: attrib {a:.4}, Captum {b:.4}");
    assert!((a - b).abs() <= 0.06, "attrib {a} vs Captum {b}");
    // The draws differ from seed to seed.
    assert!(ours.iter().any(|&r| r != ours[0]));
}

#[test]
fn min_param_over_fgsm_epsilon_matches_captum_row_by_row() {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(root().join("cases.json")).unwrap()).unwrap();
    let fx = load("mlp_softmax");
    let fgsm = Fgsm::params(0.0).batch(batch()).check().unwrap();
    for (mode, key) in [(SearchMode::Linear, "linear"), (SearchMode::Binary, "binary")] {
        let expected: Vec<Option<f64>> = spec["min_param"][key].as_array().unwrap().iter().map(Value::as_f64).collect();
        let mp = MinParamPerturbation::new(&fgsm, 0.0, 1.0, 0.01).unwrap().mode(mode);
        let got = mp.evaluate(&fx.model, &Inputs::new(fx.x.shallow_clone()), &Target::PerSample(fx.labels.clone())).unwrap();
        // serde_json reads floats to within an ulp: compare at 1e-12 (the grid's spacing is 0.01).
        assert_eq!(got.values.len(), expected.len());
        for (g, e) in got.values.iter().zip(&expected) {
            match (g, e) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-12, "{key}: {g} vs Captum's {e}"),
                (None, None) => {}
                _ => panic!("{key}: {:?} vs Captum's {expected:?}", got.values),
            }
        }
        assert!(expected.iter().any(Option::is_none) && expected.iter().filter(|v| v.is_some()).count() >= 5);
    }
}
