//! Attribution robustness under attack on the bundled digit CNN: the attack's success per row, the
//! change of each method's attribution on the attacked rows, and errors for a bad k.

use attrib::convert::read_npy_tensor;
use attrib::metrics::robustness::{attribution_change, ChangeParams, TopK};
use attrib::prelude::*;
use attrib::robust::Fgsm;
use attrib::robust_attribution::{attribution_robustness, AfterTarget, Attack, MethodRun, RobustnessParams};
use std::path::PathBuf;
use tch::{Device, Tensor};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/data").join(name)
}

fn digits() -> (TorchScriptModel, Tensor) {
    let model = TorchScriptModel::load(data("digits_cnn.pt"), Device::Cpu).unwrap();
    let x = read_npy_tensor(data("digits.npy"), Device::Cpu).unwrap();
    (model, x)
}

fn params(k: TopK) -> RobustnessParams {
    RobustnessParams { change: ChangeParams { k, pixels: true }, after_target: AfterTarget::Same }
}

#[test]
fn fgsm_on_the_digit_cnn_succeeds_on_some_rows_and_moves_the_attributions() {
    let (model, x) = digits();
    let inputs = Inputs::new(x.shallow_clone());
    let saliency = Saliency::params().check().unwrap();
    let ig = IntegratedGradients::params().n_steps(16).check().unwrap();
    let methods = [
        MethodRun { name: "saliency".into(), method: &saliency, before: None },
        MethodRun { name: "ig".into(), method: &ig, before: None },
    ];
    let attack = Attack::Fgsm(Fgsm::params(0.05).bounds(0.0, 1.0).check().unwrap());
    let r = attribution_robustness(&model, &inputs, &Target::Argmax, &attack, &Target::Argmax, &methods, &params(TopK::Count(25))).unwrap();
    let o = &r.outcome;
    // Some rows flip, not all (measured: 5 of 10 at ε = 0.05; PyTorch's own FGSM gives the same).
    assert!(!r.attacked.is_empty() && r.attacked.len() < 10, "attacked {:?}", r.attacked);
    for i in 0..10 {
        assert_eq!(o.success[i], o.after[i] != o.before[i], "row {i}");
        assert_eq!(r.attacked.contains(&i), o.success[i]);
    }
    for m in &r.methods {
        let c = &m.change;
        assert_eq!((c.k, c.features), (25, 256));
        assert_eq!(c.top_k_intersection.len(), r.attacked.len());
        assert!(c.top_k_intersection.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(c.rank_correlation.iter().flatten().all(|v| (-1.0..=1.0).contains(v)));
        // A prediction-changing attack moves every method's top pixels (measured means well below 1).
        let mean = c.mean_top_k_intersection().unwrap();
        assert!(mean < 0.95, "{}: mean top-k intersection {mean}", m.name);
        // The values are those of the two attributions, row by row, recomputed apart: the clean
        // attribution, and the method on the adversarial batch explaining the clean prediction.
        let target = Target::PerSample(o.before.clone());
        let method: &dyn Attribution = if m.name == "saliency" { &saliency } else { &ig };
        let before = method.attribute(&model, &inputs, &target).unwrap();
        let adv = Inputs::new(o.adversarial[0].shallow_clone());
        let after = method.attribute(&model, &adv, &target).unwrap();
        assert!(before.values[0].allclose(&m.before[0], 1e-6, 1e-7, false));
        let all = attribution_change(&before.values, &after.values, &ChangeParams { k: TopK::Count(25), pixels: true }).unwrap();
        for (j, &i) in r.attacked.iter().enumerate() {
            assert!((all.top_k_intersection[i] - c.top_k_intersection[j]).abs() < 1e-12);
            assert_eq!(all.rank_correlation[i].is_some(), c.rank_correlation[j].is_some());
        }
    }
    // A clean attribution passed in is used as it is.
    let given = vec![r.methods[0].before[0].shallow_clone()];
    let with_before = [MethodRun { name: "saliency".into(), method: &saliency, before: Some(given) }];
    let r2 = attribution_robustness(&model, &inputs, &Target::Argmax, &attack, &Target::Argmax, &with_before, &params(TopK::Count(25))).unwrap();
    assert_eq!(r2.methods[0].change, r.methods[0].change);
    // Explaining the adversarial prediction instead: a different class on every attacked row.
    let p = RobustnessParams { after_target: AfterTarget::Prediction, ..params(TopK::Fraction(0.1)) };
    let r3 = attribution_robustness(&model, &inputs, &Target::Argmax, &attack, &Target::Argmax, &methods[..1], &p).unwrap();
    assert_eq!(r3.methods[0].change.k, 26);
    assert_eq!(r3.attacked, r.attacked);
}

#[test]
fn no_attack_no_rows_and_bad_k_is_an_error() {
    let (model, x) = digits();
    let inputs = Inputs::new(x.narrow(0, 0, 3));
    let saliency = Saliency::params().check().unwrap();
    let methods = [MethodRun { name: "saliency".into(), method: &saliency, before: None }];
    // ε = 0 changes nothing: no attacked row, empty changes.
    let none = Attack::Fgsm(Fgsm::params(0.0).check().unwrap());
    let r = attribution_robustness(&model, &inputs, &Target::Argmax, &none, &Target::Argmax, &methods, &params(TopK::Count(5))).unwrap();
    assert!(r.attacked.is_empty() && r.methods[0].change.top_k_intersection.is_empty());
    assert_eq!(r.methods[0].change.mean_top_k_intersection(), None);
    for (k, needle) in [(TopK::Count(0), "k >= 1"), (TopK::Count(257), "256 features"), (TopK::Fraction(2.0), "(0, 1]")] {
        let e = attribution_robustness(&model, &inputs, &Target::Argmax, &none, &Target::Argmax, &methods, &params(k)).err().unwrap();
        assert!(e.to_string().contains(needle), "{k:?}: {e}");
    }
    // Attacks need a class target.
    let e = attribution_robustness(&model, &inputs, &Target::Argmax, &none, &Target::None, &methods, &params(TopK::Count(5))).err().unwrap();
    assert!(e.to_string().contains("class target"), "{e}");
}
