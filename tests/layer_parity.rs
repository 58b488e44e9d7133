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

// ---- Path and neuron methods (layer integrated gradients, conductance, neuron gradient and
// neuron integrated gradients): Captum parity from `path_cases.json`, token-id inputs,
// completeness, errors.

use attrib::layer::{LayerConductance, LayerIntegratedGradients, NeuronGradient, NeuronIntegratedGradients};

/// Captum's `method` and `n_steps` from a case's kwargs.
fn steps(kw: &Value) -> (usize, Quadrature) {
    let n = kw.get("n_steps").and_then(Value::as_u64).unwrap_or(50) as usize;
    let q = kw.get("method").and_then(Value::as_str).unwrap_or("gausslegendre").parse().unwrap();
    (n, q)
}

/// Run one case of `path_cases.json` with attrib: the attributions and the delta, if any.
fn run_path_case(model: &TorchScriptModel, inputs: &Inputs, target: &Target, case: &Value) -> (Tensor, Option<Tensor>) {
    let layer = case["layer"].as_str().unwrap();
    let to_input = case["input"].as_bool().unwrap();
    let empty = serde_json::json!({});
    let kw = case.get("kwargs").unwrap_or(&empty);
    let (n, q) = steps(kw);
    let multiply = kw.get("multiply_by_inputs").and_then(Value::as_bool).unwrap_or(true);
    let baseline = || match case.get("baseline").and_then(Value::as_f64) {
        Some(v) => Baseline::Scalar(v),
        None => Baseline::Zeros,
    };
    let neuron = || case["neuron"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect::<Vec<_>>();
    let attr = match case["method"].as_str().unwrap() {
        "lig" => LayerIntegratedGradients::params()
            .layer(layer)
            .attribute_to_layer_input(to_input)
            .baselines(baseline())
            .n_steps(n)
            .quadrature(q)
            .multiply_by_inputs(multiply)
            .check()
            .unwrap()
            .attribute(model, inputs, target),
        "cond" => LayerConductance::params()
            .layer(layer)
            .attribute_to_layer_input(to_input)
            .baselines(baseline())
            .n_steps(n)
            .quadrature(q)
            .check()
            .unwrap()
            .attribute(model, inputs, target),
        "ng" => NeuronGradient::params().layer(layer).attribute_to_layer_input(to_input).neuron_selector(neuron()).check().unwrap().attribute(model, inputs, target),
        "nig" => NeuronIntegratedGradients::params()
            .layer(layer)
            .attribute_to_layer_input(to_input)
            .neuron_selector(neuron())
            .baselines(baseline())
            .n_steps(n)
            .quadrature(q)
            .multiply_by_inputs(multiply)
            .check()
            .unwrap()
            .attribute(model, inputs, target),
        other => panic!("unknown method {other}"),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", case["key"]));
    (attr.single().unwrap().shallow_clone(), attr.convergence_delta)
}

/// The inputs of a fixture folder: token ids (stored as float64) for the text model.
fn path_inputs(name: &str, d: &std::path::Path) -> Tensor {
    let x = read_f64(d.join("input0.npy"));
    if name.starts_with("text") {
        x.to_kind(Kind::Int64)
    } else {
        x
    }
}

#[test]
fn path_and_neuron_methods_equal_captum_traced_and_scripted() {
    let root = fixtures().join("layer");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(root.join("path_cases.json")).expect("path_cases.json")).unwrap();
    let (mut worst, mut worst_delta, mut count): (f64, f64, usize) = (0.0, 0.0, 0);
    for (name, model_case) in all.as_object().unwrap() {
        let d = root.join(name);
        let target = Target::Class(model_case["target"].as_i64().unwrap());
        let inputs = Inputs::new(path_inputs(name, &d));
        for export in ["traced", "scripted"] {
            let model = TorchScriptModel::load(d.join(format!("{export}.pt")), Device::Cpu).unwrap();
            for case in model_case["cases"].as_array().unwrap() {
                let key = case["key"].as_str().unwrap();
                let (got, delta) = run_path_case(&model, &inputs, &target, case);
                let want = read_f64(d.join(format!("path_{key}.npy")));
                let e = rel(&got, &want);
                assert!(e < RTOL, "{name} {export} {key}: relative difference {e:.3e} from Captum");
                worst = worst.max(e);
                let delta_file = d.join(format!("path_{key}_delta.npy"));
                if delta_file.exists() {
                    let want_delta = read_f64(delta_file);
                    let got_delta = delta.unwrap_or_else(|| panic!("{key}: no convergence delta"));
                    // Deltas are differences of nearly equal numbers: compare against the scale of
                    // the attributions' row sums.
                    let scale = want.abs().sum(Kind::Double).double_value(&[]).max(1e-12);
                    let e = (got_delta - &want_delta).abs().max().double_value(&[]) / scale;
                    assert!(e < RTOL, "{name} {export} {key}: convergence delta differs from Captum's by {e:.3e} of the attribution mass");
                    worst_delta = worst_delta.max(e);
                }
                count += 1;
            }
        }
    }
    assert!(count >= 50, "only {count} cases ran");
    eprintln!("{count} cases; largest relative difference from Captum: {worst:.3e} (deltas: {worst_delta:.3e})");
}

/// The model's target output per row, by its own forward (not through any attribution code).
fn outputs(model: &TorchScriptModel, x: &Tensor, class: i64) -> Tensor {
    model.forward(&[x.shallow_clone()], &[]).unwrap().select(1, class).to_kind(Kind::Double)
}

#[test]
fn layer_ig_at_the_embedding_is_complete_within_its_delta() {
    let d = fixtures().join("layer/text");
    let model = TorchScriptModel::load(d.join("scripted.pt"), Device::Cpu).unwrap();
    let ids = path_inputs("text", &d);
    let pad = ids.zeros_like();
    for (n, q) in [(50, Quadrature::GaussLegendre), (200, Quadrature::GaussLegendre), (64, Quadrature::RiemannMiddle)] {
        let lig = LayerIntegratedGradients::params().layer("embedding").n_steps(n).quadrature(q).check().unwrap();
        let attr = lig.attribute(&model, &Inputs::new(ids.shallow_clone()), &Target::Class(1)).unwrap();
        let values = attr.single().unwrap();
        assert_eq!(values.size(), vec![3, 7, 6], "shaped like the embedding's output");
        let per_token = values.sum_dim_intlist(-1, false, Kind::Double);
        let gap = outputs(&model, &ids, 1) - outputs(&model, &pad, 1);
        let delta = attr.convergence_delta.unwrap();
        // The reported delta is the completeness gap, computed from the model's own outputs.
        let sums = per_token.sum_dim_intlist(1, false, Kind::Double);
        let recomputed = &sums - &gap;
        assert!((&delta - &recomputed).abs().max().double_value(&[]) < 1e-10, "{q} {n}: delta {delta} vs {recomputed}");
        // And it is small: the sum of token attributions is F(x) - F(pad) within the delta.
        eprintln!("{q} {n}: delta {:?} gap {:?}", Vec::<f64>::try_from(&delta).unwrap(), Vec::<f64>::try_from(&gap).unwrap());
        // The model has ReLU and a max over time (kinks along the path), so the quadrature error
        // is of the order of a few per cent of the gap (Captum's own delta here is the same).
        let bound = 5e-2 * gap.abs().max().double_value(&[]);
        assert!(delta.abs().max().double_value(&[]) < bound, "{q} {n}: |delta| {delta} above {bound}");
        // Pad tokens (id 0, equal to the baseline) get exactly zero.
        let padded = per_token.get(2).narrow(0, 5, 2);
        assert_eq!(padded.abs().max().double_value(&[]), 0.0, "pad tokens: {padded}");
    }
}

#[test]
fn token_id_inputs_are_checked() {
    let d = fixtures().join("layer/text");
    let model = TorchScriptModel::load(d.join("traced.pt"), Device::Cpu).unwrap();
    let ids = path_inputs("text", &d);
    let lig = LayerIntegratedGradients::params().layer("embedding").check().unwrap();
    let t = Target::Class(0);
    let err = |r: attrib::Result<Attributions>| r.err().expect("an error").to_string();
    // Ids out of the embedding's range (40 rows).
    let high = ids.copy();
    let _ = high.get(1).get(3).fill_(40);
    let msg = err(lig.attribute(&model, &Inputs::new(high), &t));
    assert!(msg.contains("token id 40") && msg.contains("'embedding'") && msg.contains("40 rows"), "{msg}");
    let neg = ids.copy();
    let _ = neg.get(0).get(0).fill_(-2);
    assert!(err(lig.attribute(&model, &Inputs::new(neg), &t)).contains("token id -2"));
    // Float values where the embedding expects ids.
    let msg = err(lig.attribute(&model, &Inputs::new(ids.to_kind(Kind::Double)), &t));
    assert!(msg.contains("nn.Embedding") && msg.contains("token ids"), "{msg}");
    let bag = TorchScriptModel::load(fixtures().join("layer/text_bag/scripted.pt"), Device::Cpu).unwrap();
    let floats = read_f64(fixtures().join("layer/text_bag/input0.npy"));
    let msg = err(LayerIntegratedGradients::params().layer("bag").check().unwrap().attribute(&bag, &Inputs::new(floats), &t));
    assert!(msg.contains("nn.EmbeddingBag"), "{msg}");
    // An unknown layer.
    let msg = err(LayerIntegratedGradients::params().layer("embedding.0").check().unwrap().attribute(&model, &Inputs::new(ids.shallow_clone()), &t));
    assert!(msg.contains("no layer named 'embedding.0'") && msg.contains("embedding, conv, head"), "{msg}");
    // A baseline that is not token ids.
    let blur = LayerIntegratedGradients::params().layer("embedding").baselines(Baseline::Blur(1.0)).check().unwrap();
    assert!(err(blur.attribute(&model, &Inputs::new(ids.shallow_clone()), &t)).contains("token ids too"));
    // Methods that differentiate the inputs themselves: a clear error, never an abort.
    let ig = IntegratedGradients::params().check().unwrap();
    let msg = err(ig.attribute(&model, &Inputs::new(ids.shallow_clone()), &t));
    assert!(msg.contains("Only layer methods at an embedding layer"), "{msg}");
    let nig = NeuronIntegratedGradients::params().layer("conv").neuron_selector(vec![1, 2]).check().unwrap();
    assert!(err(nig.attribute(&model, &Inputs::new(ids.shallow_clone()), &t)).contains("layer-integrated-gradients"));
    let cond = LayerConductance::params().layer("conv").check().unwrap();
    assert!(err(cond.attribute(&model, &Inputs::new(ids.shallow_clone()), &t)).contains("layer-integrated-gradients"));
    // Attributing to the embedding's input (the ids themselves): no gradient there.
    let to_ids = LayerIntegratedGradients::params().layer("embedding").attribute_to_layer_input(true).check().unwrap();
    let msg = err(to_ids.attribute(&model, &Inputs::new(ids.shallow_clone()), &t));
    assert!(msg.contains("token ids themselves"), "{msg}");
    // Token ids given to a model without an embedding.
    let cnn = TorchScriptModel::load(fixtures().join("layer/cnn/traced.pt"), Device::Cpu).unwrap();
    let int_x = read_f64(fixtures().join("layer/cnn/input0.npy")).to_kind(Kind::Int64);
    let msg = err(LayerIntegratedGradients::params().layer("features.3").check().unwrap().attribute(&cnn, &Inputs::new(int_x), &t));
    assert!(msg.contains("no nn.Embedding"), "{msg}");
}

#[test]
fn neuron_selectors_are_checked() {
    let d = fixtures().join("layer/cnn");
    let model = TorchScriptModel::load(d.join("traced.pt"), Device::Cpu).unwrap();
    let x = Inputs::new(read_f64(d.join("input0.npy")));
    let err = |sel: Vec<i64>| NeuronGradient::params().layer("features.3").neuron_selector(sel).check().and_then(|m| m.attribute(&model, &x, &Target::None)).err().expect("an error").to_string();
    assert!(err(vec![6, 0, 0]).contains("index 6 is out of range for dimension 1"));
    assert!(err(vec![0, 0, 0, 0]).contains("4 index(es)"));
    assert!(err(vec![]).contains("name the neuron"));
    assert!(attrib::layer::parse_neuron_selector("1,x").is_err());
    assert_eq!(attrib::layer::parse_neuron_selector("[2, -1, 0]").unwrap(), vec![2, -1, 0]);
    // Negative indices count from the end; fewer indices sum over the rest.
    let g = |sel: Vec<i64>| NeuronGradient::params().layer("features.3").neuron_selector(sel).check().unwrap().attribute(&model, &x, &Target::None).unwrap().single().unwrap().shallow_clone();
    assert!(rel(&g(vec![5, -1, 0]), &g(vec![5, 3, 0])) < 1e-15);
    let mut sum = g(vec![2, 0, 0]);
    for (i, j) in (0..4).flat_map(|i| (0..4).map(move |j| (i, j))).skip(1) {
        sum += g(vec![2, i, j]);
    }
    assert!(rel(&g(vec![2]), &sum) < 1e-12, "a channel is the sum of its neurons");
}

mod completeness {
    //! Layer IG completeness on random small MLPs (proptest): the fixture MLP
    //! (`Linear → ReLU → Linear → Tanh → Linear`) with random weights, saved as TorchScript; at
    //! the second linear layer the rest of the network is smooth, so Gauss–Legendre
    //! (100 nodes) gives `Σ LIG = F(x) − F(x')` to 1e-8 of the outputs' scale, and the reported
    //! delta is that gap.
    use super::*;
    use proptest::prelude::*;

    fn random_mlp(seed: u64, dir: &std::path::Path) -> std::path::PathBuf {
        let fx = attrib_tests::load_model("mlp");
        let mut module = tch::CModule::load(fx.dir.join("model.pt")).unwrap();
        module.to(Device::Cpu, Kind::Double, false);
        tch::manual_seed(seed as i64);
        tch::no_grad(|| {
            for (_, mut p) in module.named_parameters().unwrap() {
                let _ = p.copy_(&(Tensor::randn(p.size(), (Kind::Double, Device::Cpu)) * 0.5));
            }
        });
        let path = dir.join(format!("mlp_{seed}.pt"));
        module.save(&path).unwrap();
        path
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn layer_ig_sums_to_the_output_gap(seed in 0u64..1_000_000, class in 0i64..3, base in -1.0f64..1.0) {
            let path = random_mlp(seed, attrib_tests::scratch_dir());
            let model = TorchScriptModel::load(&path, Device::Cpu).unwrap();
            tch::manual_seed(seed as i64 + 1);
            let x = Tensor::randn([4, 10], (Kind::Double, Device::Cpu));
            let b = x.full_like(base);
            let lig = LayerIntegratedGradients::params().layer("net.2").baselines(Baseline::Scalar(base)).n_steps(100).check().unwrap();
            let attr = lig.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(class)).unwrap();
            let sums = attr.single().unwrap().sum_dim_intlist(1, false, Kind::Double);
            let gap = outputs(&model, &x, class) - outputs(&model, &b, class);
            let scale = 1.0 + gap.abs().max().double_value(&[]);
            let err = (&sums - &gap).abs().max().double_value(&[]);
            prop_assert!(err < 1e-8 * scale, "sum {sums} vs gap {gap}: {err:e}");
            let delta = attr.convergence_delta.unwrap();
            prop_assert!((delta - (&sums - &gap)).abs().max().double_value(&[]) < 1e-12 * scale);
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The registry builds layer IG for token-id inputs (what `attrib explain` runs on an int64
/// `.npy`): the same attributions and delta as the typed method, with a pad-id baseline.
#[test]
fn registry_layer_ig_takes_token_ids() {
    let d = fixtures().join("layer/text");
    let model = TorchScriptModel::load(d.join("traced.pt"), Device::Cpu).unwrap();
    let ids = path_inputs("text", &d);
    let spec: MethodSpec = r#"{"method": "layer-integrated-gradients", "layer": "embedding", "baselines": 0, "n_steps": 20}"#.parse().unwrap();
    let built = attrib::methods::Registry::builtin().build(&spec, &[ids.shallow_clone()]).unwrap();
    let a = built.attribute(&model, &Inputs::new(ids.shallow_clone()), &Target::Argmax).unwrap();
    let typed = LayerIntegratedGradients::params().layer("embedding").n_steps(20).check().unwrap();
    let b = typed.attribute(&model, &Inputs::new(ids.shallow_clone()), &Target::Argmax).unwrap();
    assert_eq!(a.meta.targets, b.meta.targets);
    assert!(rel(a.single().unwrap(), b.single().unwrap()) < 1e-15);
    assert!(rel(a.convergence_delta.as_ref().unwrap(), b.convergence_delta.as_ref().unwrap()) < 1e-15);
    // The predicted classes are the model's argmax on the ids.
    let pred: Vec<i64> = Vec::try_from(model.forward(&[ids], &[]).unwrap().argmax(1, false)).unwrap();
    assert_eq!(a.meta.targets.as_deref(), Some(pred.as_slice()));
}
