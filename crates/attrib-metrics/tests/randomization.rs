//! The model randomisation test (Adebayo et al. 2018) on the bundled digit CNN
//! (`examples/data/digits_cnn.pt`, layers conv1, conv2, fc; ten held-out digits).
//!
//! Thresholds (measured values with seed 0 in brackets): saliency's mean rank correlation of
//! |attribution| below 0.5 at every cascading step [0.263, 0.118, 0.081] and below 0.25 once
//! every layer is random [0.081]; integrated gradients' signed rank correlation below 0.3 in
//! magnitude at every step [-0.08, -0.02, -0.00]; the Sobel edge detector's exactly 1.

use attrib_core::{Inputs, Model, Target, TorchScriptModel};
use attrib_gradient::{IntegratedGradients, Saliency};
use attrib_metrics::randomization::{layer_names, model_randomization, randomized_model, Mode, RandomizationParams, SobelEdges};
use tch::{Device, Kind, Tensor};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn digits() -> (TorchScriptModel, Tensor) {
    let model = TorchScriptModel::load(root().join("examples/data/digits_cnn.pt"), Device::Cpu).unwrap();
    let x = Tensor::read_npy(root().join("examples/data/digits.npy")).unwrap();
    (model, x)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn gradients_change_with_random_weights_and_edges_do_not() {
    let (model, x) = digits();
    let inputs = Inputs::new(x.shallow_clone());
    let before = model.forward(&[x.shallow_clone()], &[]).unwrap();
    let cascading = RandomizationParams::default();
    assert_eq!(cascading.mode, Mode::Cascading);

    let saliency = Saliency::params().abs(true).check().unwrap();
    let r = model_randomization(&saliency, &model, &inputs, &Target::Argmax, &cascading).unwrap();
    assert_eq!(r.layers, vec!["fc", "conv2", "conv1"]);
    let randomized: Vec<Vec<&str>> = r.steps.iter().map(|s| s.randomized.iter().map(String::as_str).collect()).collect();
    assert_eq!(randomized, vec![vec!["fc"], vec!["fc", "conv2"], vec!["fc", "conv2", "conv1"]]);
    assert_eq!(r.targets.as_ref().map(Vec::len), Some(10));
    for s in &r.steps {
        assert_eq!(s.spearman_abs.len(), 10);
        assert!(s.mean_abs().unwrap() < 0.5, "saliency after randomising {:?}: {:?}", s.randomized, s.spearman_abs);
    }
    let last = r.steps.last().unwrap().mean_abs().unwrap();
    assert!(last < 0.25, "saliency with every layer random: {last}");

    let ig = IntegratedGradients::params().n_steps(16).check().unwrap();
    let r = model_randomization(&ig, &model, &inputs, &Target::Argmax, &cascading).unwrap();
    for s in &r.steps {
        let m = s.mean_signed().unwrap();
        assert!(m.abs() < 0.3, "integrated gradients after randomising {:?}: {m}", s.randomized);
    }

    // The edge detector does not look at the model: identical maps, correlation exactly 1.
    for mode in [Mode::Cascading, Mode::Independent] {
        let r = model_randomization(&SobelEdges, &model, &inputs, &Target::Argmax, &RandomizationParams { mode, ..Default::default() }).unwrap();
        assert_eq!(r.steps.len(), 3);
        for s in &r.steps {
            assert!(s.spearman_abs.iter().chain(&s.spearman).all(|v| *v == Some(1.0)), "{mode:?} {:?}: {:?}", s.randomized, s.spearman_abs);
        }
    }
    // The caller's model is unchanged.
    let after = model.forward(&[x], &[]).unwrap();
    assert!(before.equal(&after));
}

#[test]
fn independent_mode_randomizes_one_layer_and_draws_are_seeded() {
    let (model, x) = digits();
    assert_eq!(layer_names(&model).unwrap(), vec!["conv1", "conv2", "fc"]);
    let trained = randomized_model(&model, &[], 0, None).unwrap().named_parameters().unwrap();
    let copy = randomized_model(&model, &["conv2".to_string()], 3, None).unwrap();
    for ((name, a), (_, b)) in trained.iter().zip(copy.named_parameters().unwrap()) {
        if name.starts_with("conv2.") {
            assert!(max_abs_diff(a, &b) > 0.0, "{name} was not redrawn");
            // The scale is kept: the redrawn weights' spread is near the trained one's.
            if name.ends_with("weight") {
                let (sa, sb) = (a.std(true).double_value(&[]), b.std(true).double_value(&[]));
                assert!((sb / sa - 1.0).abs() < 0.2, "{name}: std {sa} trained, {sb} random");
            }
        } else {
            assert!(a.equal(&b), "{name} changed");
        }
    }
    // Same seed, same weights; another seed, other weights.
    let again = randomized_model(&model, &["conv2".to_string()], 3, None).unwrap();
    let other = randomized_model(&model, &["conv2".to_string()], 4, None).unwrap();
    let out = |m: &dyn Model| m.forward(&[x.shallow_clone()], &[]).unwrap();
    assert!(out(&copy).equal(&out(&again)));
    assert!(!out(&copy).equal(&out(&other)));
    // Independent steps: one layer each, top first.
    let saliency = Saliency::params().abs(true).check().unwrap();
    let params = RandomizationParams { mode: Mode::Independent, seed: 1, ..Default::default() };
    let r = model_randomization(&saliency, &model, &Inputs::new(x.shallow_clone()), &Target::Argmax, &params).unwrap();
    let randomized: Vec<Vec<&str>> = r.steps.iter().map(|s| s.randomized.iter().map(String::as_str).collect()).collect();
    assert_eq!(randomized, vec![vec!["fc"], vec!["conv2"], vec!["conv1"]]);
    // A float64 copy for float64 inputs.
    let x64 = x.to_kind(Kind::Double);
    let copy64 = randomized_model(&model, &["fc".to_string()], 0, Some(Kind::Double)).unwrap();
    assert_eq!(copy64.forward(&[x64], &[]).unwrap().kind(), Kind::Double);
}

#[test]
fn sobel_edges_closed_form_and_errors() {
    // A vertical step edge: Sobel G_x = 4 * step height next to it, 0 elsewhere (edges
    // replicated, so the borders see no edge).
    let x = Tensor::cat(&[Tensor::zeros([1, 1, 4, 2], (Kind::Double, Device::Cpu)), Tensor::ones([1, 1, 4, 3], (Kind::Double, Device::Cpu))], 3);
    let e = SobelEdges::edges(&x).unwrap();
    let want = Tensor::from_slice(&[0.0f64, 4.0, 4.0, 0.0, 0.0]).reshape([1, 1, 1, 5]).expand([1, 1, 4, 5], false);
    assert!(max_abs_diff(&e, &want) < 1e-12, "{e}");
    // Channels are independent; [N, H, W] works too.
    let two = Tensor::cat(&[x.shallow_clone(), x.zeros_like()], 1);
    let e2 = SobelEdges::edges(&two).unwrap();
    assert!(e2.narrow(1, 0, 1).equal(&e) && e2.narrow(1, 1, 1).abs().max().double_value(&[]) == 0.0);
    assert!(SobelEdges::edges(&x.squeeze_dim(1)).unwrap().equal(&e.squeeze_dim(1)));
    // Errors, not panics.
    let err = SobelEdges::edges(&Tensor::zeros([3, 5], (Kind::Float, Device::Cpu))).unwrap_err();
    assert!(err.to_string().contains("images"), "{err}");
    let (model, _) = digits();
    let err = randomized_model(&model, &["conv9".to_string()], 0, None).err().unwrap();
    assert!(err.to_string().contains("conv1, conv2, fc"), "{err}");
}
