//! Layer attribution: parity with Captum 0.9's LayerActivation, LayerGradientXActivation and
//! LayerGradCam (and `LayerAttribution.interpolate`) in float64 on a small CNN (`features.3`, its
//! input, `features`) and torchvision's ResNet-18 at 32×32 (`layer4`, `layer3.1.conv2`), each
//! exported traced and scripted (`tests/python/fixtures_layer.py`); Grad-CAM's closed form on a
//! one-convolution model with known weights; an unknown layer name is an error listing the
//! submodules.

use attrib::prelude::*;
use attrib_tests::{fixtures, read_f64};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// Largest difference relative to the largest reference value.
const RTOL: f64 = 1e-4;

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a.to_kind(Kind::Double) - b).abs().max().double_value(&[]) / scale
}

#[test]
fn layer_methods_equal_captum_traced_and_scripted() {
    let root = fixtures().join("layer");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(root.join("cases.json")).expect("cases.json")).unwrap();
    let mut worst: f64 = 0.0;
    for (name, model_case) in all.as_object().unwrap() {
        let d = root.join(name);
        let target = Target::Class(model_case["target"].as_i64().unwrap());
        let x = read_f64(d.join("input0.npy"));
        let inputs = Inputs::new(x.shallow_clone());
        for export in ["traced", "scripted"] {
            let model = TorchScriptModel::load(d.join(format!("{export}.pt")), Device::Cpu).unwrap();
            for (key, case) in model_case["cases"].as_object().unwrap() {
                let layer = case["layer"].as_str().unwrap();
                let to_input = case["input"].as_bool().unwrap();
                let what = |m: &str| format!("{name} {export} {key} {m}");
                let mut check = |got: &Tensor, stem: &str, m: &str| {
                    let e = rel(got, &read_f64(d.join(format!("{stem}_{key}.npy"))));
                    assert!(e < RTOL, "{}: relative difference {e:.3e}", what(m));
                    worst = worst.max(e);
                };
                let act = LayerActivation::params().layer(layer).attribute_to_layer_input(to_input).check().unwrap();
                check(act.attribute(&model, &inputs, &target).unwrap().single().unwrap(), "act", "layer activation");
                let gxa = LayerGradientXActivation::params().layer(layer).attribute_to_layer_input(to_input).check().unwrap();
                check(gxa.attribute(&model, &inputs, &target).unwrap().single().unwrap(), "gxa", "gradient x activation");
                let grad = LayerGradientXActivation::params().layer(layer).attribute_to_layer_input(to_input).multiply_by_inputs(false).check().unwrap();
                check(grad.attribute(&model, &inputs, &target).unwrap().single().unwrap(), "gxa_nomul", "layer gradient");
                let cam = LayerGradCam::params().layer(layer).attribute_to_layer_input(to_input);
                check(cam.clone().check().unwrap().attribute(&model, &inputs, &target).unwrap().single().unwrap(), "cam", "grad-cam");
                let relu = cam.clone().relu_attributions(true).check().unwrap();
                check(relu.attribute(&model, &inputs, &target).unwrap().single().unwrap(), "cam_relu", "grad-cam relu");
                if !to_input {
                    let up = cam.interpolate(Interpolate::Bilinear).check().unwrap();
                    check(up.attribute(&model, &inputs, &target).unwrap().single().unwrap(), "cam_up", "grad-cam upsampled");
                }
            }
        }
    }
    eprintln!("largest relative difference from Captum: {worst:.3e}");
}

/// Grad-CAM by hand on `relu(fc1(relu(conv1(x)).view(-1, 8)))`: conv1 has two 3×3 filters of
/// ones with biases −50 and −75, fc1's rows are five ones then three minus ones, no bias; the
/// input is 0..15 as a 4×4 image. The 3×3 window sums are 45, 54, 81, 90, so the conv outputs
/// are A0 = [−5, 4, 31, 40] and A1 = [−30, −21, 6, 15]; output 0 = 4 + 31 + 40 + 0 − (0 + 6 + 15)
/// = 54 > 0. Its gradient with respect to A is fc1's row times the ReLU mask: channel 0
/// [0, 1, 1, 1] (mean 3/4), channel 1 [0, 0, −1, −1] (mean −1/2). Grad-CAM = 3/4·A0 − 1/2·A1 =
/// [11.25, 13.5, 20.25, 22.5] (the answer in Captum's own test), with relu unchanged.
#[test]
fn grad_cam_closed_form_on_one_conv_model() {
    let model = TorchScriptModel::load(fixtures().join("layer/one_conv/traced.pt"), Device::Cpu).unwrap();
    let x = Tensor::arange(16, (Kind::Double, Device::Cpu)).view([1, 1, 4, 4]);
    let cam = LayerGradCam::params().layer("conv1").check().unwrap().attribute(&model, &Inputs::new(x), &Target::Class(0)).unwrap();
    let want = Tensor::from_slice(&[11.25f64, 13.5, 20.25, 22.5]).view([1, 1, 2, 2]);
    let got = cam.single().unwrap();
    assert!(rel(got, &want) < 1e-12, "grad-cam {got} differs from the closed form");
}

#[test]
fn unknown_layer_is_an_error_listing_the_submodules() {
    let model = TorchScriptModel::load(fixtures().join("layer/cnn/scripted.pt"), Device::Cpu).unwrap();
    let x = read_f64(fixtures().join("layer/cnn/input0.npy"));
    let err = LayerGradCam::params().layer("features.9").check().unwrap().attribute(&model, &Inputs::new(x), &Target::Class(0)).unwrap_err();
    let msg = err.to_string();
    for name in ["no layer named 'features.9'", "features, features.0", "features.3", "head"] {
        assert!(msg.contains(name), "message lacks {name:?}: {msg}");
    }
    let err = LayerActivation::params().check().unwrap_err().to_string();
    assert!(err.contains("layer"), "{err}");
}
