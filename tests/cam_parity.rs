//! Guided Grad-CAM, layer DeepLIFT and Score-CAM (`tests/python/fixtures_cam.py`, float64):
//!
//! - Guided Grad-CAM and layer DeepLIFT (attributions and convergence deltas) equal Captum 0.9's
//!   `GuidedGradCam` and `LayerDeepLift` to 1e-4 relative on a small CNN (layer outputs and
//!   inputs, nearest and bilinear upsampling, `multiply_by_inputs = false`, Captum's hook quirk
//!   with `captum_compat`) and torchvision's ResNet-18 (`layer4`, its input, `layer3.1.conv2`,
//!   `layer3`), each model exported traced and scripted;
//! - Score-CAM equals a plain per-row, per-channel torch computation written in the fixture
//!   script (no Captum oracle exists), to 1e-9 relative, over every option; and a closed form
//!   (fixed and random images);
//! - axioms: layer DeepLIFT's attributions sum to `F(x) − F(b)` (random inputs and baselines,
//!   proptest); Score-CAM does not depend on the chunking and is non-negative;
//! - errors for bad input.

use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::DeepLiftRules;
use attrib_tests::{fixtures, read_f64};
use proptest::prelude::*;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// Largest difference relative to the largest reference value (Captum parity).
const RTOL: f64 = 1e-4;

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a.to_kind(Kind::Double) - b).abs().max().double_value(&[]) / scale
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("cam/cases.json")).expect("cam/cases.json")).unwrap()
}

fn mode(name: &str) -> Interpolate {
    if name == "bilinear" {
        Interpolate::Bilinear
    } else {
        Interpolate::Nearest
    }
}

/// Every model of the fixtures, traced and scripted: (name, export, model, case, folder).
fn each_model(mut f: impl FnMut(&str, &str, &TorchScriptModel, &Value, &std::path::Path)) {
    let root = fixtures().join("cam");
    for (name, case) in cases().as_object().unwrap() {
        let d = root.join(name);
        for export in ["traced", "scripted"] {
            let model = TorchScriptModel::load(d.join(format!("{export}.pt")), Device::Cpu).unwrap();
            f(name, export, &model, case, &d);
        }
    }
}

#[test]
fn guided_grad_cam_equals_captum() {
    let mut worst: f64 = 0.0;
    each_model(|name, export, model, case, d| {
        let x = read_f64(d.join("input0.npy"));
        let target = Target::Class(case["target"].as_i64().unwrap());
        for (key, c) in case["ggc"].as_object().unwrap() {
            let m = GuidedGradCam::params()
                .layer(c["layer"].as_str().unwrap())
                .attribute_to_layer_input(c["input"].as_bool().unwrap())
                .interpolate_mode(mode(c["mode"].as_str().unwrap()))
                .check()
                .unwrap();
            let got = m.attribute(model, &Inputs::new(x.shallow_clone()), &target).unwrap();
            let want = read_f64(d.join(format!("ggc_{key}.npy")));
            assert!(want.abs().max().double_value(&[]) > 0.0, "{name} {key}: Captum's answer is all zero, a useless case");
            let e = rel(got.single().unwrap(), &want);
            assert!(e < RTOL, "{name} {export} {key}: guided grad-cam differs from Captum by {e:.3e}");
            worst = worst.max(e);
        }
    });
    eprintln!("guided grad-cam: largest relative difference from Captum {worst:.3e}");
}

#[test]
fn layer_deeplift_equals_captum() {
    let mut worst: f64 = 0.0;
    each_model(|name, export, model, case, d| {
        let x = read_f64(d.join("input0.npy"));
        let b = read_f64(d.join("baseline0.npy"));
        let target = Target::Class(case["target"].as_i64().unwrap());
        for (key, c) in case["ldl"].as_object().unwrap() {
            let compat = if c["compat"].as_bool().unwrap() { DeepLiftRules::Captum } else { DeepLiftRules::Exact };
            let m = LayerDeepLift::params()
                .layer(c["layer"].as_str().unwrap())
                .attribute_to_layer_input(c["input"].as_bool().unwrap())
                .multiply_by_inputs(c["multiply"].as_bool().unwrap())
                .baselines(Baseline::Tensor(b.shallow_clone()))
                .compat(compat)
                .check()
                .unwrap();
            let got = m.attribute(model, &Inputs::new(x.shallow_clone()), &target);
            let got = got.unwrap();
            let e = rel(got.single().unwrap(), &read_f64(d.join(format!("ldl_{key}.npy"))));
            assert!(e < RTOL, "{name} {export} {key}: layer deeplift differs from Captum by {e:.3e}");
            worst = worst.max(e);
            let want = read_f64(d.join(format!("ldl_delta_{key}.npy")));
            let delta = got.convergence_delta.as_ref().unwrap();
            // Deltas are differences of near-equal sums: compared against the attributions' scale.
            let scale = got.single().unwrap().abs().sum(Kind::Double).double_value(&[]).max(1.0);
            let gap = (delta - &want).abs().max().double_value(&[]) / scale;
            assert!(gap < RTOL, "{name} {export} {key}: delta {delta} differs from Captum's {want}");
        }
    });
    eprintln!("layer deeplift: largest relative difference from Captum {worst:.3e}");
}

/// With the rules as defined, the attributions of each row sum to F(x) − F(b) at any layer of
/// the CNN, even where Captum's hooks lose a rule (c1: a max-pool right after a ReLU).
#[test]
fn layer_deeplift_sums_to_the_output_difference() {
    let d = fixtures().join("cam/cnn");
    let model = TorchScriptModel::load(d.join("traced.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let b = read_f64(d.join("baseline0.npy"));
    for (layer, to_input) in [("c1", false), ("c2", false), ("c2", true), ("p1", false)] {
        let m = LayerDeepLift::params().layer(layer).attribute_to_layer_input(to_input).baselines(Baseline::Tensor(b.shallow_clone())).check().unwrap();
        let a = m.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
        let delta = a.convergence_delta.as_ref().unwrap().abs().max().double_value(&[]);
        assert!(delta < 1e-10, "{layer} (input: {to_input}): |delta| {delta:.3e}");
    }
    // Captum's hooks at c1 lose the max-pool's rule: its delta is not zero (so the compat mode
    // in layer_deeplift_equals_captum reproduces a real difference).
    let captum = read_f64(d.join("ldl_delta_c1_compat.npy")).abs().max().double_value(&[]);
    assert!(captum > 1e-6, "Captum's delta at c1 is {captum:.3e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
    /// Summation to delta on random rows and baselines of any scale.
    #[test]
    fn layer_deeplift_completeness_on_random_rows(seed in 0i64..1_000_000, scale in 0.1f64..3.0, target in 0i64..4) {
        tch::manual_seed(seed);
        let model = TorchScriptModel::load(fixtures().join("cam/cnn/traced.pt"), Device::Cpu).unwrap();
        let x = Tensor::randn([3, 2, 8, 8], (Kind::Double, Device::Cpu)) * scale;
        let b = Tensor::randn([3, 2, 8, 8], (Kind::Double, Device::Cpu)) * (scale * 0.5);
        let m = LayerDeepLift::params().layer("c2").baselines(Baseline::Tensor(b.shallow_clone())).check().unwrap();
        let a = m.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(target)).unwrap();
        let delta = a.convergence_delta.as_ref().unwrap().abs().max().double_value(&[]);
        prop_assert!(delta < 1e-9, "|delta| {}", delta);
        // The attributions are not trivially zero.
        prop_assert!(a.single().unwrap().abs().max().double_value(&[]) > 0.0);
    }
}

fn score_cam(c: &Value, b: &Tensor) -> ScoreCam {
    let mut p = ScoreCam::params()
        .layer(c["layer"].as_str().unwrap())
        .attribute_to_layer_input(c.get("to_input").and_then(Value::as_bool).unwrap_or(false))
        .interpolate_mode(mode(c.get("mode").and_then(Value::as_str).unwrap_or("bilinear")))
        .upsample_result(c.get("upsample").and_then(Value::as_bool).unwrap_or(true));
    if c.get("score").and_then(Value::as_str) == Some("logit") {
        p = p.score(ScoreCamScore::Logit);
    }
    if c["baseline"].as_bool().unwrap() {
        p = p.baselines(Baseline::Tensor(b.shallow_clone()));
    }
    p.check().unwrap()
}

#[test]
fn score_cam_equals_the_loop_computation() {
    let mut worst: f64 = 0.0;
    each_model(|name, export, model, case, d| {
        let x = read_f64(d.join("input0.npy"));
        let b = read_f64(d.join("baseline0.npy"));
        let target = Target::Class(case["target"].as_i64().unwrap());
        // ResNet-18: 256 masked forwards per row at layer3; the fixture has the first row only.
        let rows = if name == "resnet18" { 1 } else { x.size()[0] };
        let (x, b) = (x.narrow(0, 0, rows), b.narrow(0, 0, rows));
        for (key, c) in case["sc"].as_object().unwrap() {
            let got = score_cam(c, &b).attribute(model, &Inputs::new(x.shallow_clone()), &target).unwrap();
            let want = read_f64(d.join(format!("sc_{key}.npy")));
            assert!(want.abs().max().double_value(&[]) > 0.0, "{name} {key}: the reference is all zero, a useless case");
            let e = rel(got.single().unwrap(), &want);
            assert!(e < 1e-9, "{name} {export} {key}: score-cam differs from the loop by {e:.3e}");
            worst = worst.max(e);
        }
    });
    eprintln!("score-cam: largest relative difference from the loop {worst:.3e}");
}

/// `r2`'s output (a ReLU) has channels that are zero everywhere on some rows: constant maps,
/// which must get no weight. The loop skips them; check the case exercises that.
#[test]
fn score_cam_case_has_constant_maps() {
    let d = fixtures().join("cam/cnn");
    let model = TorchScriptModel::load(d.join("traced.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let acts = LayerActivation::params().layer("r2").check().unwrap().attribute(&model, &Inputs::new(x), &Target::None).unwrap();
    let a = acts.single().unwrap();
    let range = a.amax([2, 3], false) - a.amin([2, 3], false);
    let constant = range.eq(0.0).sum(Kind::Int64).int64_value(&[]);
    assert!(constant > 0, "no constant map at r2 in the fixture rows");
}

/// Closed form. The model: A = conv1x1(x) with weights 2 and −1 (no bias) on a one-channel
/// image, output F = Σ A_0 (channel 1 is ignored by the output). The maps have the input's size,
/// so upsampling changes nothing; M_0 = (x − min x)/(max x − min x) and M_1 = (max x − x)/(max x
/// − min x) (the −1 weight flips the map). With the logit score, w_k = F(x ⊙ M_k) = 2 Σ x ⊙ M_k,
/// and the map is relu(w_0 · 2x − w_1 · x).
/// The closed form of the model below for the image `v` (3×4, not constant).
fn closed_form(v: &[f64]) -> Tensor {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w0: f64 = v.iter().map(|&t| 2.0 * t * (t - lo) / (hi - lo)).sum();
    let w1: f64 = v.iter().map(|&t| 2.0 * t * (hi - t) / (hi - lo)).sum();
    let want: Vec<f64> = v.iter().map(|&t| (w0 * 2.0 * t - w1 * t).max(0.0)).collect();
    Tensor::from_slice(&want).view([1, 1, 3, 4])
}

fn closed_gap(v: &[f64], mode: Interpolate) -> f64 {
    let model = TorchScriptModel::load(fixtures().join("cam/closed/traced.pt"), Device::Cpu).unwrap();
    let x = Tensor::from_slice(v).view([1, 1, 3, 4]);
    let m = ScoreCam::params().layer("conv").score(ScoreCamScore::Logit).interpolate_mode(mode).check().unwrap();
    let got = m.attribute(&model, &Inputs::new(x), &Target::Class(0)).unwrap();
    let want = closed_form(v);
    (got.single().unwrap() - &want).abs().max().double_value(&[]) / want.abs().max().double_value(&[]).max(1.0)
}

/// Closed form. The model: A = conv1x1(x) with weights 2 and −1 (no bias) on a one-channel
/// image, output F = Σ A_0 (channel 1 is ignored by the output, but its map still masks the
/// input, so it still gets a weight: Score-CAM's weights are scores of masked inputs, not the
/// output's use of the channel). The maps have the input's size, so upsampling changes nothing;
/// M_0 = (x − min x)/(max x − min x) and M_1 = (max x − x)/(max x − min x) (the −1 weight flips
/// the map). With the logit score, w_k = F(x ⊙ M_k) = 2 Σ x ⊙ M_k, and the map is
/// relu(w_0 · 2x − w_1 · x).
#[test]
fn score_cam_closed_form() {
    let v = [0.5f64, -1.0, 2.0, 0.0, 1.5, -0.5, 3.0, 1.0, -2.0, 0.25, 0.75, 2.5];
    for mode in [Interpolate::Bilinear, Interpolate::Nearest] {
        let e = closed_gap(&v, mode);
        assert!(e < 1e-12, "{mode:?}: differs from the closed form by {e:.3e}");
    }
    assert!(closed_form(&v).max().double_value(&[]) > 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// The closed form on random images.
    #[test]
    fn score_cam_closed_form_on_random_images(v in proptest::collection::vec(-3.0f64..3.0, 12)) {
        let range = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - v.iter().cloned().fold(f64::INFINITY, f64::min);
        prop_assume!(range > 1e-3);
        let e = closed_gap(&v, Interpolate::Bilinear);
        prop_assert!(e < 1e-10, "differs from the closed form by {}", e);
    }
}

/// The K·N masked rows are one batch of the shared evaluator: any chunking gives the same map,
/// and the map is non-negative.
#[test]
fn score_cam_does_not_depend_on_the_chunking() {
    let d = fixtures().join("cam/cnn");
    let model = TorchScriptModel::load(d.join("traced.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let whole = ScoreCam::params().layer("r2").check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Argmax).unwrap();
    // 5 channels x 3 rows = 15 masked rows in chunks of 4: chunks cross channel and row boundaries.
    let small = ScoreCam::params().layer("r2").batch(BatchOptions::with_max_batch(4)).check().unwrap();
    let chunked = small.attribute(&model, &Inputs::new(x), &Target::Argmax).unwrap();
    let (a, b) = (whole.single().unwrap(), chunked.single().unwrap());
    assert!(rel(b, a) < 1e-12, "chunked score-cam differs by {:.3e}", rel(b, a));
    assert!(a.min().double_value(&[]) >= 0.0);
    assert!(a.max().double_value(&[]) > 0.0);
    assert_eq!(whole.meta.targets, chunked.meta.targets);
}

#[test]
fn methods_run_from_the_registry() {
    let d = fixtures().join("cam/cnn");
    let model = TorchScriptModel::load(d.join("traced.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let registry = Registry::builtin();
    for (spec, shape) in [
        (r#"{"method": "guided-grad-cam", "layer": "c2"}"#, vec![3, 2, 8, 8]),
        (r#"{"method": "score-cam", "layer": "c2", "score": "logit"}"#, vec![3, 1, 8, 8]),
        (r#"{"method": "layer-deeplift", "layer": "c2", "baselines": "0.1"}"#, vec![3, 5, 4, 4]),
    ] {
        let m = registry.build(&spec.parse().unwrap(), &[x.shallow_clone()]).unwrap();
        let a = m.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(2)).unwrap();
        assert_eq!(a.single().unwrap().size(), shape, "{spec}");
    }
    let a = registry.build(&r#"{"method": "layer-deeplift", "layer": "c2"}"#.parse().unwrap(), &[x.shallow_clone()]).unwrap();
    assert!(a.attribute(&model, &Inputs::new(x), &Target::Class(2)).unwrap().convergence_delta.is_some());
}

#[test]
fn bad_input_is_a_clear_error() {
    let d = fixtures().join("cam/cnn");
    let model = TorchScriptModel::load(d.join("scripted.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let inputs = Inputs::new(x.shallow_clone());
    let t = Target::Class(0);
    let msg = |r: attrib::Result<Attributions>| r.err().expect("an error").to_string();
    // No layer; unknown layer (listing the submodules).
    assert!(GuidedGradCam::params().check().unwrap_err().to_string().contains("layer"));
    assert!(ScoreCam::params().check().unwrap_err().to_string().contains("layer"));
    assert!(LayerDeepLift::params().check().unwrap_err().to_string().contains("layer"));
    for e in [
        msg(GuidedGradCam::params().layer("c9").check().unwrap().attribute(&model, &inputs, &t)),
        msg(ScoreCam::params().layer("c9").check().unwrap().attribute(&model, &inputs, &t)),
        msg(LayerDeepLift::params().layer("c9").check().unwrap().attribute(&model, &inputs, &t)),
    ] {
        assert!(e.contains("no layer named 'c9'") && e.contains("c1, r1, p1, c2, r2, fc"), "{e}");
    }
    // Options that cannot work.
    let e = GuidedGradCam::params().layer("c2").interpolate_mode(Interpolate::None).check().unwrap_err().to_string();
    assert!(e.contains("interpolate_mode"), "{e}");
    let e = ScoreCam::params().layer("c2").interpolate_mode(Interpolate::None).check().unwrap_err().to_string();
    assert!(e.contains("interpolate_mode"), "{e}");
    let e = LayerDeepLift::params().layer("c2").eps(-1.0).check().unwrap_err().to_string();
    assert!(e.contains("eps"), "{e}");
    let samples = Tensor::zeros([4, 2, 8, 8], (Kind::Double, Device::Cpu));
    let e = LayerDeepLift::params().layer("c2").baselines(Baseline::Distribution(samples)).check().unwrap_err().to_string();
    assert!(e.contains("distribution"), "{e}");
    // A layer without spatial maps.
    let e = msg(ScoreCam::params().layer("fc").check().unwrap().attribute(&model, &inputs, &t));
    assert!(e.contains("spatial maps"), "{e}");
    let e = msg(GuidedGradCam::params().layer("fc").check().unwrap().attribute(&model, &inputs, &t));
    assert!(e.contains("cannot upsample"), "{e}");
    // A target out of range.
    let e = msg(ScoreCam::params().layer("c2").check().unwrap().attribute(&model, &inputs, &Target::Class(9)));
    assert!(e.contains("out of range"), "{e}");
    // A model without a graph.
    let f = FnModel::new(|x: &Tensor| x.flatten(1, -1).sum_dim_intlist(1, true, Kind::Double));
    let e = msg(LayerDeepLift::params().layer("c2").check().unwrap().attribute(&f, &inputs, &t));
    assert!(e.contains("TorchScript"), "{e}");
    // Softmax scores need class outputs.
    let closed = TorchScriptModel::load(fixtures().join("cam/closed/traced.pt"), Device::Cpu).unwrap();
    let one = Tensor::ones([1, 1, 3, 4], (Kind::Double, Device::Cpu));
    let e = msg(ScoreCam::params().layer("conv").check().unwrap().attribute(&closed, &Inputs::new(one), &Target::None));
    assert!(e.contains("score=logit"), "{e}");
}
