//! Parity with Captum 0.9's `LRP` (default rules: the epsilon rule, ε = 1e-9, on linear,
//! convolution, batch-norm and pooling layers; ReLU and tanh passing relevance through), in
//! float64, on a ReLU MLP, a tanh MLP, a CNN with max, average and adaptive average pooling, and
//! a CNN with batch norm; and the places where attrib's graph rules and Captum's module hooks
//! part: a functional tanh (Captum cannot hook it), one Linear module called twice (Captum
//! stops), and layers Captum has no rule for. Written by `tests/python/fixtures_lrp.py`.

use attrib::deeplift::Lrp;
use attrib::prelude::*;
use attrib_tests::{fixtures, read_f64};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// Largest difference relative to the largest reference value (float64 throughout).
const RTOL: f64 = 1e-9;

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a.to_kind(Kind::Double) - b).abs().max().double_value(&[]) / scale
}

fn lrp() -> Lrp {
    Lrp::params().check().unwrap()
}

#[test]
fn lrp_equals_captum() {
    let root = fixtures().join("lrp");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(root.join("cases.json")).expect("cases.json")).unwrap();
    assert_eq!(cases.as_object().unwrap().len(), 4, "{cases}");
    for (name, case) in cases.as_object().unwrap() {
        let d = root.join(name);
        let target = Target::Class(case["target"].as_i64().unwrap());
        let model = TorchScriptModel::load(d.join("model.pt"), Device::Cpu).unwrap();
        let x = read_f64(d.join("input0.npy"));
        let got = lrp().attribute(&model, &Inputs::new(x.shallow_clone()), &target).unwrap();
        let want = read_f64(d.join("lrp0.npy"));
        let e = rel(&got.values[0], &want);
        eprintln!("{name}: relative difference from Captum {e:.3e}");
        assert!(e < RTOL, "{name}: relative difference {e:.3e}");
        // Captum's delta is F_t(x) − Σ attr; attrib's, like its other deltas, Σ attr − F_t(x).
        let captum_delta = read_f64(d.join("delta.npy")).reshape([-1]);
        let ours = got.convergence_delta.as_ref().unwrap();
        let gap = (ours + &captum_delta).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        assert!(gap / scale < 1e-9, "{name}: delta {ours} vs Captum's {captum_delta} (negated)");
        // With biases the relevance is not conserved: the delta is real, not round-off.
        assert!(captum_delta.abs().max().double_value(&[]) > 1e-4, "{name}: Captum's delta {captum_delta}");
    }
}

/// The answer does not depend on how the rows are chunked.
#[test]
fn one_row_per_call_gives_the_same_answer() {
    let d = fixtures().join("lrp/bn_cnn");
    let model = TorchScriptModel::load(d.join("model.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let one = Lrp::params().batch(BatchOptions::with_max_batch(1)).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap();
    let want = read_f64(d.join("lrp0.npy"));
    assert!(rel(&one.values[0], &want) < RTOL);
}

/// A functional `torch.tanh` gets the pass-through rule in attrib (the graph has every use);
/// Captum's hooks cannot see it, so relevance goes back through tanh's derivative there. attrib
/// on the functional model equals Captum on the twin with an `nn.Tanh` module, not Captum on the
/// functional model.
#[test]
fn a_functional_tanh_gets_the_rule_captum_misses() {
    let d = fixtures().join("lrp/differences/functional_tanh");
    let model = TorchScriptModel::load(d.join("model.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let got = lrp().attribute(&model, &Inputs::new(x), &Target::Class(1)).unwrap();
    let twin = rel(&got.values[0], &read_f64(d.join("captum_twin.npy")));
    assert!(twin < RTOL, "vs Captum on the nn.Tanh twin: {twin:.3e}");
    let functional = rel(&got.values[0], &read_f64(d.join("captum_functional.npy")));
    assert!(functional > 1e-3, "vs Captum on the functional model: {functional:.3e} (expected Captum to miss the tanh)");
}

/// One Linear module called twice: Captum stops ("used more than once"); attrib gives each use
/// its rule, which is Captum's answer on a twin with one Linear per use.
#[test]
fn a_reused_linear_layer_gets_a_rule_per_use() {
    let d = fixtures().join("lrp/differences/reused_linear");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(d.join("captum_on_original.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "error", "{report}");
    assert!(report["message"].as_str().unwrap().contains("used more than once"), "{report}");
    let model = TorchScriptModel::load(d.join("model.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let got = lrp().attribute(&model, &Inputs::new(x), &Target::Class(0)).unwrap();
    let e = rel(&got.values[0], &read_f64(d.join("captum_twin.npy")));
    assert!(e < RTOL, "vs Captum on the twin: {e:.3e}");
}

/// A sigmoid, which Captum's LRP has no rule for (it raises a TypeError), and a product of two
/// input-dependent tensors are errors naming the operation and where the model's code has it.
#[test]
fn uncovered_operations_are_named() {
    let d = fixtures().join("lrp/differences/sigmoid");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(d.join("captum_on_original.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "error", "{report}");
    assert!(report["message"].as_str().unwrap().contains("Sigmoid"), "{report}");
    let x = Tensor::randn([3, 4], (Kind::Double, Device::Cpu));
    for (file, op, why) in [("model.pt", "aten::sigmoid", "not covered by the LRP rules"), ("gate.pt", "aten::mul", "multiplies two input-dependent tensors")] {
        let model = TorchScriptModel::load(d.join(file), Device::Cpu).unwrap();
        let err = lrp().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, AttribError::NotApplicable(_)), "{file}: {msg}");
        assert!(msg.contains(op) && msg.contains(why) && msg.contains(".py:"), "{file}: {msg}");
    }
}

/// Conv1d and AvgPool1d, which Captum's LRP has no default rule for (a TypeError), get the
/// epsilon rule in attrib: on this bias-free network the relevance of each row sums to its
/// target output.
#[test]
fn layers_captum_has_no_rule_for_get_the_epsilon_rule() {
    let d = fixtures().join("lrp/differences/conv1d");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(d.join("captum_on_original.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "error", "{report}");
    assert!(report["message"].as_str().unwrap().contains("Conv1d"), "{report}");
    let model = TorchScriptModel::load(d.join("model.pt"), Device::Cpu).unwrap();
    let x = read_f64(d.join("input0.npy"));
    let got = lrp().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
    let out = model.forward(&[x], &[]).unwrap().select(1, 1);
    let sums = got.values[0].reshape([out.size()[0], -1]).sum_dim_intlist(1, false, Kind::Double);
    let gap = (&sums - &out).abs().max().double_value(&[]) / out.abs().max().double_value(&[]);
    assert!(gap < 1e-6, "Σ attr {sums} vs F_t(x) {out}");
    assert!(got.values[0].abs().max().double_value(&[]) > 0.0);
}
