//! DeepLIFT, guided backprop and deconvolution on TorchScript graphs: closed forms,
//! summation-to-delta (proptest over random small networks), rules on every use of a reused or
//! functional activation, and clear errors for operations the rules do not cover.

use attrib_core::{Attribution, Baseline, Baselines, FnModel, Inputs, Model, Target, TorchScriptModel};
use attrib_deeplift::{Deconvolution, DeepLift, DeepLiftShap, GuidedBackprop};
use proptest::prelude::*;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// A path in this test process's scratch folder (removed when the process exits).
fn scratch(name: &str) -> PathBuf {
    attrib_scratch::scratch_dir().join(name)
}

/// Trace `f` on `examples` and load it back as a TorchScript model.
fn traced(name: &str, examples: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor) -> TorchScriptModel {
    let mut closure = |xs: &[Tensor]| vec![f(xs)];
    let m = tch::CModule::create_by_tracing("M", "forward", examples, &mut closure).expect("traces");
    let path = scratch(&format!("{name}.pt"));
    m.save(&path).expect("saves");
    TorchScriptModel::load(&path, Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

#[test]
fn two_relu_model_has_the_closed_form_attributions() {
    // F(x1, x2) = 2·relu(x1) + 2·relu(x2 − 1.5), baseline 0: DeepLIFT gives x1 → 2·(1 − 0) = 2 and
    // x2 → 2·(relu(0.5) − relu(−1.5)) = 1 (gradient × input would say 4 for x2).
    let ex = [Tensor::ones([2, 1], (Kind::Float, Device::Cpu)), Tensor::ones([2, 1], (Kind::Float, Device::Cpu))];
    let model = traced("two_relu", &ex, |xs| (xs[0].relu() * 2.0 + (&xs[1] - 1.5).relu() * 2.0).sum_dim_intlist(1, false, Kind::Float));
    let x1 = Tensor::from_slice(&[1.0f32]).reshape([1, 1]);
    let x2 = Tensor::from_slice(&[2.0f32]).reshape([1, 1]);
    let a = DeepLift::params().check().unwrap().attribute(&model, &Inputs::multi(vec![x1, x2]), &Target::None).unwrap();
    assert!((a.values[0].double_value(&[0, 0]) - 2.0).abs() < 1e-6, "{}", a.values[0]);
    assert!((a.values[1].double_value(&[0, 0]) - 1.0).abs() < 1e-6, "{}", a.values[1]);
    assert!(max_abs(a.convergence_delta.as_ref().unwrap()) < 1e-6);
}

/// A small CNN with max-pooling whose one ReLU is applied twice (as torchvision's BasicBlock).
fn cnn(seed: i64, name: &str) -> TorchScriptModel {
    tch::manual_seed(seed);
    let w1 = Tensor::randn([4, 2, 3, 3], (Kind::Float, Device::Cpu)) * 0.5;
    let w2 = Tensor::randn([4, 4, 3, 3], (Kind::Float, Device::Cpu)) * 0.5;
    let fc = Tensor::randn([4 * 3 * 3, 3], (Kind::Float, Device::Cpu)) * 0.3;
    let ex = [Tensor::randn([2, 2, 6, 6], (Kind::Float, Device::Cpu))];
    traced(name, &ex, move |xs| {
        let h = xs[0].conv2d(&w1, None::<Tensor>, [1], [1], [1], 1).relu();
        let h = h.conv2d(&w2, None::<Tensor>, [1], [1], [1], 1).relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        h.flatten(1, -1).matmul(&fc)
    })
}

#[test]
fn deeplift_sums_to_the_output_difference_on_a_relu_cnn_with_max_pooling() {
    let model = cnn(1, "cnn_sum");
    tch::manual_seed(5);
    let x = Tensor::randn([5, 2, 6, 6], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([5, 2, 6, 6], (Kind::Float, Device::Cpu)) * 0.3;
    let a = DeepLift::params().baselines(Baseline::Tensor(b.shallow_clone())).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
    let delta = a.convergence_delta.as_ref().unwrap();
    let fx = model.forward(&[x], &[]).unwrap().select(1, 1);
    let fb = model.forward(&[b], &[]).unwrap().select(1, 1);
    let scale = max_abs(&(fx - fb)).max(1e-3);
    assert!(max_abs(delta) / scale < 1e-5, "delta {delta} (scale {scale})");
}

#[test]
fn where_the_baseline_equals_the_input_the_multipliers_are_the_ordinary_gradient() {
    // Row 0's baseline is the input itself: every Δx in the network is 0 (below eps), so every
    // ReLU and the max-pool pass their ordinary gradient and the multipliers are ∂F_1/∂x. Row 1
    // has a different baseline in the same call: its multipliers are not the gradient, and its
    // attributions still sum to F_1(x) − F_1(b).
    let model = cnn(3, "cnn_same");
    tch::manual_seed(7);
    let x = Tensor::randn([2, 2, 6, 6], (Kind::Float, Device::Cpu));
    let b = Tensor::cat(&[x.narrow(0, 0, 1), Tensor::randn([1, 2, 6, 6], (Kind::Float, Device::Cpu)) * 0.3], 0);
    let dl = DeepLift::params().baselines(Baseline::Tensor(b.shallow_clone())).multiply_by_inputs(false).check().unwrap();
    let m = dl.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
    let leaf = x.copy().set_requires_grad(true);
    let out = model.forward(&[leaf.shallow_clone()], &[]).unwrap().select(1, 1).sum(Kind::Float);
    let grad = Tensor::run_backward(&[out], &[&leaf], false, false).remove(0);
    let rel0 = max_abs(&(m.values[0].get(0) - grad.get(0))) / max_abs(&grad.get(0)).max(1e-6);
    assert!(rel0 < 1e-5, "row 0: multipliers differ from the gradient by {rel0:.3e}");
    assert!(max_abs(&(m.values[0].get(1) - grad.get(1))) > 1e-3, "row 1 should not get the plain gradient");
    let a = DeepLift::params().baselines(Baseline::Tensor(b.shallow_clone())).check().unwrap();
    let a = a.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
    let delta = a.convergence_delta.as_ref().unwrap();
    assert!(max_abs(delta) < 1e-5, "delta {delta}");
}

#[test]
fn guided_backprop_and_deconvolution_keep_positive_gradients_at_every_relu_use() {
    let model = cnn(2, "cnn_gb");
    tch::manual_seed(6);
    let x = Tensor::randn([3, 2, 6, 6], (Kind::Float, Device::Cpu));
    let gb = GuidedBackprop::params().check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap();
    let dc = Deconvolution::params().check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap();
    // Both differ from the plain gradient, and from each other.
    let plain = {
        let xg = x.set_requires_grad(true);
        let out = model.forward(&[xg.shallow_clone()], &[]).unwrap().select(1, 0).sum(Kind::Float);
        Tensor::run_backward(&[out], &[&xg], false, false)[0].shallow_clone()
    };
    assert!(max_abs(&(gb.single().unwrap() - &plain)) > 1e-4);
    assert!(max_abs(&(dc.single().unwrap() - &plain)) > 1e-4);
    assert!(max_abs(&(gb.single().unwrap() - dc.single().unwrap())) > 1e-4);
}

#[test]
fn an_uncovered_operation_is_an_error_naming_it() {
    let ex = [Tensor::ones([2, 3], (Kind::Float, Device::Cpu))];
    // x · x: a product of two input-dependent tensors, which no rule covers.
    let square = traced("square", &ex, |xs| (&xs[0] * &xs[0]).sum_dim_intlist(1, false, Kind::Float));
    let err = DeepLift::params().check().unwrap().attribute(&square, &Inputs::new(ex[0].shallow_clone()), &Target::None).unwrap_err().to_string();
    assert!(err.contains("aten::mul") && err.contains("two input-dependent"), "{err}");
    let erf = traced("erf", &ex, |xs| xs[0].erf().sum_dim_intlist(1, false, Kind::Float));
    let err = DeepLift::params().check().unwrap().attribute(&erf, &Inputs::new(ex[0].shallow_clone()), &Target::None).unwrap_err().to_string();
    assert!(err.contains("aten::erf") && err.contains("not covered"), "{err}");
    // A closure model has no graph.
    let f = FnModel::new(|x: &Tensor| x.relu().sum_dim_intlist(1, false, Kind::Float));
    let err = DeepLift::params().check().unwrap().attribute(&f, &Inputs::new(ex[0].shallow_clone()), &Target::None).unwrap_err().to_string();
    assert!(err.contains("TorchScript"), "{err}");
}

#[test]
fn deeplift_shap_is_the_mean_of_deeplift_over_the_samples() {
    let model = cnn(3, "cnn_shap");
    tch::manual_seed(7);
    let x = Tensor::randn([2, 2, 6, 6], (Kind::Float, Device::Cpu));
    let samples = Tensor::randn([3, 2, 6, 6], (Kind::Float, Device::Cpu)) * 0.5;
    let shap = DeepLiftShap::params()
        .baselines(Baseline::Distribution(samples.shallow_clone()))
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(2))
        .unwrap();
    let mut mean = x.zeros_like();
    for s in 0..3 {
        let b = samples.narrow(0, s, 1);
        let one = DeepLift::params().baselines(Baselines::from(Baseline::Tensor(b))).check().unwrap();
        mean += one.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(2)).unwrap().single().unwrap() / 3.0;
    }
    assert!(max_abs(&(shap.single().unwrap() - &mean)) < 1e-5);
    assert_eq!(shap.convergence_delta.as_ref().unwrap().size(), [6]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Summation-to-delta on random tanh/sigmoid/ReLU MLPs in float64, and a feature the model
    /// ignores gets exactly zero.
    #[test]
    fn deeplift_completeness_on_random_mlps(seed in 0i64..1000, act in 0usize..3) {
        tch::manual_seed(seed);
        let w1 = Tensor::randn([5, 6], (Kind::Double, Device::Cpu));
        // Feature 4 is ignored: its weights are zero.
        let _ = w1.get(4).fill_(0.0);
        let w2 = Tensor::randn([6, 2], (Kind::Double, Device::Cpu));
        let ex = [Tensor::randn([2, 5], (Kind::Double, Device::Cpu))];
        let model = traced(&format!("mlp_{seed}_{act}"), &ex, move |xs| {
            let h = xs[0].matmul(&w1);
            let h = match act { 0 => h.tanh(), 1 => h.sigmoid(), _ => h.relu() };
            h.matmul(&w2)
        });
        let x = Tensor::randn([4, 5], (Kind::Double, Device::Cpu));
        let a = DeepLift::params().baselines(Baseline::Scalar(0.1)).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
        let delta = max_abs(a.convergence_delta.as_ref().unwrap());
        prop_assert!(delta < 1e-9, "delta {}", delta);
        prop_assert_eq!(max_abs(&a.single().unwrap().select(1, 4)), 0.0);
    }
}

/// Max pooling in five configurations, flattened side by side.
fn pools(x: &Tensor) -> Tensor {
    let a = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], true);
    let b = x.max_pool2d([2, 3], [1, 2], [0, 1], [2, 1], false);
    let c = x.max_pool2d([3, 2], [3, 3], [1, 0], [1, 2], true);
    // 2×2 windows with stride 2 (a row and a column left over), which have a loop of their own,
    // and the same with dilation, which does not.
    let d = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
    let e = x.max_pool2d([2, 2], [2, 2], [0, 0], [2, 2], false);
    Tensor::cat(&[a.flatten(1, -1), b.flatten(1, -1), c.flatten(1, -1), d.flatten(1, -1), e.flatten(1, -1)], 1)
}

#[test]
fn the_max_pool_rule_pools_as_aten_does() {
    // The max-pool rule node pools contiguous float inputs with its own kernel: its outputs must
    // equal ATen's bit for bit (ties, padding, dilation, ceil mode, -inf), and the indices it keeps
    // must route the ordinary gradient as ATen's do (a baseline equal to the input gives every
    // rule its ordinary gradient; the target sums every window of every pooling).
    let ex = [Tensor::randn([2, 2, 9, 11], (Kind::Float, Device::Cpu))];
    let model = traced("pools", &ex, |xs| pools(&xs[0]));
    let summed = traced("pools_sum", &ex, |xs| pools(&xs[0]).sum_dim_intlist(1, false, None::<Kind>));
    let rules = model.with_rules(attrib_core::BackwardRules::DeepLift { eps: 1e-10, compat: attrib_core::DeepLiftRules::Exact }).unwrap();
    tch::manual_seed(11);
    for kind in [Kind::Float, Kind::Double] {
        // Rounded values: many ties within windows; some -inf.
        let x = (Tensor::randn([4, 2, 9, 11], (kind, Device::Cpu)) * 2.0).round();
        let _ = x.view([-1]).narrow(0, 5, 3).fill_(f64::NEG_INFINITY);
        let (plain, ours) = (model.forward(&[x.shallow_clone()], &[]).unwrap(), rules.forward(&[x.shallow_clone()], &[]).unwrap());
        assert!(plain.equal(&ours), "{kind:?}: the rule node's pooling differs from ATen's");
        let x = (Tensor::randn([4, 2, 9, 11], (kind, Device::Cpu)) * 2.0).round();
        let m = DeepLift::params().baselines(Baseline::Tensor(x.shallow_clone())).multiply_by_inputs(false).check().unwrap();
        let m = m.attribute(&summed, &Inputs::new(x.shallow_clone()), &Target::None).unwrap();
        let leaf = x.copy().set_requires_grad(true);
        let out = summed.forward(&[leaf.shallow_clone()], &[]).unwrap().sum(kind);
        let grad = Tensor::run_backward(&[out], &[&leaf], false, false).remove(0);
        assert!(m.values[0].equal(&grad), "{kind:?}: the ordinary gradient is routed differently from ATen's");
    }
}
