//! Saliency equals Captum's `Saliency` on the same TorchScript models and inputs, to 1e-5
//! relative: one MLP, a CNN with max-pooling, a two-input model, a model with an additional
//! forward argument, and a scalar-output model; class and per-row targets; signed and `abs`.

use attrib::prelude::*;
use attrib_tests::{assert_close, load_model, read};

const RTOL: f64 = 1e-5;

fn check(name: &str) {
    let fx = load_model(name);
    let dir = attrib_tests::fixtures().join("saliency").join(name);
    let cases: Vec<(&str, Target)> = match &fx.targets {
        Some(t) => vec![("class0", Target::Class(0)), ("per_row", Target::PerSample(t.clone()))],
        None => vec![("none", Target::None)],
    };
    for (tname, target) in cases {
        for abs in [false, true] {
            let method = Saliency::params().abs(abs).check().unwrap();
            let attr = method.attribute(&fx.model, &fx.inputs(), &target).unwrap();
            assert_eq!(attr.values.len(), fx.inputs.len());
            for (i, (a, x)) in attr.values.iter().zip(&fx.inputs).enumerate() {
                assert_eq!(a.size(), x.size(), "attribution shaped like input {i}");
                let expected = read(dir.join(format!("{tname}_abs{}_{i}.npy", abs as u8)));
                assert_close(a, &expected, RTOL, &format!("{name} target={tname} abs={abs} input {i}"));
            }
            assert!(attr.convergence_delta.is_none());
            assert_eq!(attr.meta.method, "saliency");
        }
    }
}

#[test]
fn mlp_matches_captum() {
    check("mlp");
}

#[test]
fn cnn_with_max_pooling_matches_captum() {
    check("cnn");
}

#[test]
fn two_input_model_matches_captum() {
    check("two_input");
}

#[test]
fn additional_forward_argument_matches_captum() {
    check("extra_arg");
}

#[test]
fn scalar_output_model_matches_captum() {
    check("scalar_out");
}

#[test]
fn argmax_target_is_the_model_prediction() {
    let fx = load_model("cnn");
    let out = fx.model.forward(&fx.inputs, &[]).unwrap();
    let predicted: Vec<i64> = Vec::try_from(&out.argmax(1, false)).unwrap();
    let a = Saliency::default().attribute(&fx.model, &fx.inputs(), &Target::Argmax).unwrap();
    let b = Saliency::default().attribute(&fx.model, &fx.inputs(), &Target::PerSample(predicted.clone())).unwrap();
    assert_eq!(a.meta.targets.as_deref(), Some(predicted.as_slice()));
    assert_close(&a.values[0], &b.values[0], 0.0, "argmax vs explicit per-row targets");
}
