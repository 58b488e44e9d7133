//! Numbers that cannot work are errors that say why: NaN or inf in the results of a method built
//! by the registry (with its likely cause, and an opt-out), scalar baselines, uniform bounds and
//! noise that do not fit the inputs' dtype, and blurs wider than the image.

use attrib::methods::Registry;
use attrib::prelude::*;
use serde_json::json;
use tch::{Device, Kind, Tensor};

fn build(spec: serde_json::Value, x: &Tensor) -> attrib::Result<Box<dyn Attribution>> {
    Registry::builtin().build(&serde_json::from_value(spec).unwrap(), &[x.shallow_clone()])
}

fn run(spec: serde_json::Value, model: &dyn Model, x: &Tensor, target: &Target) -> attrib::Result<Attributions> {
    build(spec, x)?.attribute(model, &Inputs::new(x.shallow_clone()), target)
}

fn err(spec: serde_json::Value, model: &dyn Model, x: &Tensor, target: &Target) -> String {
    match run(spec.clone(), model, x, target) {
        Ok(_) => panic!("{spec} should fail"),
        Err(e) => e.to_string(),
    }
}

/// Four rows; rows 1 and 3 hold a negative value.
fn x() -> Tensor {
    Tensor::from_slice(&[1.0f32, 2.0, 3.0, 1.0, -1.0, 2.0, 0.5, 0.5, 4.0, 2.0, 1.0, -2.0]).reshape([4, 3])
}

fn has_nan(t: &Tensor) -> bool {
    t.isnan().any().int64_value(&[]) == 1
}

#[test]
fn a_nan_output_is_an_error_naming_the_rows_for_every_family() {
    // sqrt of a negative input: the output itself is NaN for rows 1 and 3.
    let model = FnModel::new(|x: &Tensor| x.sqrt().sum_dim_intlist(1, false, Kind::Float));
    for method in ["saliency", "input-x-gradient", "integrated-gradients", "feature-ablation", "occlusion"] {
        let mut spec = json!({"method": method});
        if method == "occlusion" {
            spec["sliding_window_shapes"] = json!("1");
        }
        let e = err(spec, &model, &x(), &Target::None);
        assert!(e.starts_with(method), "{e}");
        assert!(e.contains("the model's output itself is NaN or inf for 2 of 4 rows (1, 3)"), "{method}: {e}");
        assert!(e.contains("allow_nonfinite") && e.contains("--allow-nonfinite"), "{e}");
    }
}

#[test]
fn a_nan_gradient_under_a_finite_output_is_named_as_such() {
    // where(x > 0, sqrt(x), 0): the output is finite, the gradient NaN where x < 0.
    let model = FnModel::new(|x: &Tensor| x.sqrt().where_self(&x.gt(0.0), &x.zeros_like()).sum_dim_intlist(1, false, Kind::Float));
    let e = err(json!({"method": "saliency"}), &model, &x(), &Target::None);
    assert!(e.contains("the attributions are NaN or inf for 2 of 4 rows (1, 3)"), "{e}");
    assert!(e.contains("output at the inputs is finite") && e.contains("gradient") && e.contains("sqrt or log of a non-positive"), "{e}");
    // Through a noise tunnel too: the check wraps the whole method.
    let e = err(json!({"method": "saliency", "noise_tunnel": {"nt_samples": 2, "stdevs": 0.01}}), &model, &x(), &Target::None);
    assert!(e.contains("NaN or inf for 2 of 4 rows (1, 3)"), "{e}");
}

#[test]
fn a_nan_output_at_the_baseline_shows_in_the_delta() {
    // log: finite at the (positive) inputs, -inf at the zero baseline. Gauss–Legendre never
    // evaluates α = 0, so the attributions are finite and only the delta is not.
    let x = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 0.5]).reshape([2, 2]);
    let model = FnModel::new(|x: &Tensor| x.log().sum_dim_intlist(1, false, Kind::Double));
    let e = err(json!({"method": "integrated-gradients", "n_steps": 8}), &model, &x, &Target::None);
    assert!(e.contains("the convergence delta is NaN or inf for 2 of 2 rows (0, 1)"), "{e}");
    assert!(e.contains("output at the baseline"), "{e}");
    // A baseline where the model is finite works.
    assert!(run(json!({"method": "integrated-gradients", "n_steps": 8, "baselines": 0.25}), &model, &x, &Target::None).is_ok());
}

#[test]
fn perturbation_methods_name_the_perturbed_inputs() {
    // log(x): finite at the inputs, -inf where ablation puts the zero baseline.
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 0.5]).reshape([2, 2]);
    let model = FnModel::new(|x: &Tensor| x.log().sum_dim_intlist(1, false, Kind::Float));
    let e = err(json!({"method": "feature-ablation"}), &model, &x, &Target::None);
    assert!(e.contains("NaN or inf for 2 of 2 rows (0, 1)") && e.contains("perturbed inputs") && e.contains("another baseline"), "{e}");
    assert!(run(json!({"method": "feature-ablation", "baselines": 1.0}), &model, &x, &Target::None).is_ok());
}

#[test]
fn allow_nonfinite_returns_the_raw_values_and_typed_methods_stay_raw() {
    let model = FnModel::new(|x: &Tensor| x.sqrt().sum_dim_intlist(1, false, Kind::Float));
    let a = run(json!({"method": "integrated-gradients", "allow_nonfinite": true}), &model, &x(), &Target::None).unwrap();
    assert!(has_nan(&a.values[0]) && has_nan(a.convergence_delta.as_ref().unwrap()));
    // Finite rows are untouched.
    assert!(!has_nan(&a.values[0].select(0, 0)));
    let a = run(json!({"method": "saliency", "allow_nonfinite": "true"}), &model, &x(), &Target::None).unwrap();
    assert!(has_nan(&a.values[0]));
    // The typed structs return what they compute.
    let a = Saliency::default().attribute(&model, &Inputs::new(x()), &Target::None).unwrap();
    assert!(has_nan(&a.values[0]));
    // And FiniteChecked gives them the check.
    let checked = attrib::methods::FiniteChecked::new(Box::new(Saliency::default()), BatchOptions::default(), true);
    assert!(checked.attribute(&model, &Inputs::new(x()), &Target::None).unwrap_err().to_string().contains("2 of 4 rows"));
    // Not a boolean: an error before any work.
    let e = build(json!({"method": "saliency", "allow_nonfinite": "sometimes"}), &x()).err().expect("an error").to_string();
    assert!(e.contains("allow_nonfinite"), "{e}");
    // Finite results pass unchanged, with the method's own name and parameters.
    let model = FnModel::new(|x: &Tensor| (x * x).sum_dim_intlist(1, false, Kind::Float));
    let m = build(json!({"method": "saliency", "abs": true}), &x()).unwrap();
    assert_eq!(m.info().name, "saliency");
    assert_eq!(m.params()["abs"], json!(true));
    let a = m.attribute(&model, &Inputs::new(x()), &Target::None).unwrap();
    assert!(a.values[0].allclose(&(x() * 2.0).abs(), 0.0, 0.0, false));
}

#[test]
fn scalar_and_uniform_baselines_must_fit_the_dtype() {
    let model = FnModel::new(|x: &Tensor| x.sum_dim_intlist(1, false, Kind::Float));
    let x = x().abs();
    let e = err(json!({"method": "integrated-gradients", "baselines": 1e40}), &model, &x, &Target::None);
    assert!(e.contains("1e40") && e.contains("float32") && e.contains("±3.4028235e38"), "{e}");
    let e = err(json!({"method": "feature-ablation", "baselines": "-1e39"}), &model, &x, &Target::None);
    assert!(e.contains("-1e39") && e.contains("float32"), "{e}");
    let e = err(json!({"method": "integrated-gradients", "baselines": "uniform:0,1e40"}), &model, &x, &Target::None);
    assert!(e.contains("uniform") && e.contains("float32"), "{e}");
    // float64 inputs hold it.
    let x64 = x.to_kind(Kind::Double);
    let model64 = FnModel::new(|x: &Tensor| x.sum_dim_intlist(1, false, Kind::Double));
    assert!(run(json!({"method": "integrated-gradients", "baselines": 1e40, "allow_nonfinite": true}), &model64, &x64, &Target::None).is_ok());
    // float16: past 65504.
    let half = Tensor::ones([2, 3], (Kind::Half, Device::Cpu));
    let e = Baseline::Scalar(70000.0).resolve(&half, 0).unwrap_err().to_string();
    assert!(e.contains("float16") && e.contains("±65504"), "{e}");
    assert!(Baseline::Scalar(60000.0).resolve(&half, 0).is_ok());
    // A float64 baseline tensor with values float32 cannot hold.
    let wide = Tensor::from_slice(&[0.0f64, 1e300, 0.0]).reshape([1, 3]);
    let e = Baseline::Tensor(wide).resolve(&x, 0).unwrap_err().to_string();
    assert!(e.contains("1e300") && e.contains("float32"), "{e}");
}

#[test]
fn noise_that_would_overflow_is_refused() {
    let model = FnModel::new(|x: &Tensor| x.sum_dim_intlist(1, false, Kind::Float));
    let x = x().abs();
    let e = err(json!({"method": "saliency", "noise_tunnel": {"stdevs": 1e38}}), &model, &x, &Target::None);
    assert!(e.contains("stdevs") && e.contains("float32"), "{e}");
    let e = err(json!({"method": "gradient-shap", "stdevs": 1e38}), &model, &x, &Target::None);
    assert!(e.contains("stdevs") && e.contains("float32"), "{e}");
    // Large but representable noise is fine.
    assert!(run(json!({"method": "gradient-shap", "stdevs": 1e30}), &model, &x, &Target::None).is_ok());
}

#[test]
fn a_blur_wider_than_the_image_is_refused_without_allocating() {
    let x = Tensor::rand([2, 1, 12, 12], (Kind::Float, Device::Cpu));
    for sigma in ["1e40", "1e6", "33"] {
        let e = build(json!({"method": "integrated-gradients", "baselines": format!("blur:{sigma}")}), &x)
            .and_then(|m| m.attribute(&FnModel::new(|x: &Tensor| x.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)), &Inputs::new(x.shallow_clone()), &Target::None))
            .expect_err("an error")
            .to_string();
        assert!(e.contains("far wider than the 12×12 image") && e.contains("σ ≤ 32"), "{e}");
    }
    let model = FnModel::new(|x: &Tensor| x.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float));
    assert!(run(json!({"method": "integrated-gradients", "baselines": "blur:32"}), &model, &x, &Target::None).is_ok());
}
