//! LRP with the epsilon rule on TorchScript graphs: the relevances of a one-hidden-layer ReLU
//! network computed by hand from its weights, conservation (Σ attr = F_t(x)) on random bias-free
//! networks (proptest), and clear errors for what the rules do not cover.

use attrib_core::{AttribError, Attribution, FnModel, Inputs, Model, Target, TorchScriptModel};
use attrib_deeplift::Lrp;
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

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

/// `z + ε·sign(z)` with the sign of 0 taken as +1 (Captum's stabiliser).
fn stabilised(z: f64, eps: f64) -> f64 {
    if z >= 0.0 {
        z + eps
    } else {
        z - eps
    }
}

/// F(x) = V · relu(W x), bias-free: the output's relevance F_t goes to hidden unit j as
/// `a_j V_tj F_t / (F_t ± ε)`, passes the ReLU unchanged, and reaches input i as
/// `Σ_j x_i W_ji R_j / (z_j ± ε)`: computed here with loops over the weights, for a small and a
/// large ε (which absorbs relevance, so the delta is then far from 0).
#[test]
fn one_hidden_layer_relu_network_has_the_hand_computed_relevances() {
    let (d_in, hidden, classes) = (4usize, 5usize, 3usize);
    tch::manual_seed(11);
    let w = Tensor::randn([hidden as i64, d_in as i64], (Kind::Double, Device::Cpu));
    let v = Tensor::randn([classes as i64, hidden as i64], (Kind::Double, Device::Cpu));
    let (wc, vc) = (w.shallow_clone(), v.shallow_clone());
    // One layer as aten::linear, the other as aten::matmul: both get the epsilon rule.
    let model = traced("closed_form", &[Tensor::randn([2, d_in as i64], (Kind::Double, Device::Cpu))], move |xs| {
        xs[0].linear::<Tensor>(&wc, None).relu().matmul(&vc.tr())
    });
    let x = Tensor::randn([6, d_in as i64], (Kind::Double, Device::Cpu));
    let _ = x.get(5).fill_(0.0); // a zero row: every z is 0, every relevance 0
    let (wv, vv, xv) = (values(&w), values(&v), values(&x));
    let t = 2usize;
    for eps in [1e-9, 0.5] {
        let a = Lrp::params().epsilon(eps).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(t as i64)).unwrap();
        let got = values(a.single().unwrap());
        let delta = values(a.convergence_delta.as_ref().unwrap());
        for r in 0..6 {
            let xr = &xv[r * d_in..(r + 1) * d_in];
            let z: Vec<f64> = (0..hidden).map(|j| (0..d_in).map(|i| wv[j * d_in + i] * xr[i]).sum()).collect();
            let act: Vec<f64> = z.iter().map(|&z| z.max(0.0)).collect();
            let out: f64 = (0..hidden).map(|j| vv[t * hidden + j] * act[j]).sum();
            let r_hidden: Vec<f64> = (0..hidden).map(|j| act[j] * vv[t * hidden + j] * out / stabilised(out, eps)).collect();
            let want: Vec<f64> = (0..d_in)
                .map(|i| (0..hidden).map(|j| if z[j] == 0.0 { 0.0 } else { xr[i] * wv[j * d_in + i] * r_hidden[j] / stabilised(z[j], eps) }).sum())
                .collect();
            for i in 0..d_in {
                let g = got[r * d_in + i];
                assert!((g - want[i]).abs() <= 1e-12 * (1.0 + want[i].abs()), "eps {eps} row {r} input {i}: {g} vs hand {}", want[i]);
            }
            let sum: f64 = want.iter().sum();
            assert!((delta[r] - (sum - out)).abs() < 1e-12 * (1.0 + out.abs()), "eps {eps} row {r}: delta {} vs {}", delta[r], sum - out);
        }
        if eps == 0.5 {
            assert!(delta.iter().any(|d| d.abs() > 1e-3), "a large epsilon absorbs relevance: {delta:?}");
        }
        assert_eq!(&got[5 * d_in..], &[0.0; 4], "the zero row");
    }
}

/// Random bias-free network: `kind` 0 a ReLU MLP with a residual addition, 1 a tanh MLP, 2 a
/// CNN (conv, ReLU, max-pool, conv, ReLU, average pool, linear), 3 a 1-D CNN (conv1d, ReLU,
/// max_pool1d, avg_pool1d, linear; layers Captum's LRP has no rule for). Feature 0 (a column of
/// the first weights, or a channel) is ignored by the model.
fn random_network(seed: i64, kind: usize) -> (TorchScriptModel, Tensor) {
    tch::manual_seed(seed);
    let o = (Kind::Double, Device::Cpu);
    if kind < 2 {
        let w1 = Tensor::randn([7, 6], o);
        let _ = w1.select(1, 0).fill_(0.0);
        let w2 = Tensor::randn([7, 7], o);
        let w3 = Tensor::randn([3, 7], o);
        let model = traced(&format!("mlp_{seed}_{kind}"), &[Tensor::randn([2, 6], o)], move |xs| {
            let act = |h: Tensor| if kind == 0 { h.relu() } else { h.tanh() };
            let h = act(xs[0].linear::<Tensor>(&w1, None));
            let h2 = act(h.linear::<Tensor>(&w2, None));
            let h2 = if kind == 0 { h2 + h } else { h2 };
            h2.matmul(&w3.tr())
        });
        (model, Tensor::randn([4, 6], o))
    } else if kind == 3 {
        let c1 = Tensor::randn([3, 2, 3], o);
        let _ = c1.select(1, 0).fill_(0.0);
        let fc = Tensor::randn([3, 3 * 3], o);
        let model = traced(&format!("cnn1d_{seed}"), &[Tensor::randn([2, 2, 14], o)], move |xs| {
            let h = xs[0].conv1d(&c1, None::<Tensor>, [1], [0], [1], 1).relu().max_pool1d([2], [2], [0], [1], false);
            h.avg_pool1d([2], [2], [0], false, true).flatten(1, -1).linear::<Tensor>(&fc, None)
        });
        (model, Tensor::randn([3, 2, 14], o))
    } else {
        let c1 = Tensor::randn([3, 2, 3, 3], o);
        let _ = c1.select(1, 0).fill_(0.0);
        let c2 = Tensor::randn([4, 3, 3, 3], o);
        let fc = Tensor::randn([3, 4 * 2 * 2], o);
        let model = traced(&format!("cnn_{seed}"), &[Tensor::randn([2, 2, 8, 8], o)], move |xs| {
            let h = xs[0].conv2d(&c1, None::<Tensor>, [1], [1], [1], 1).relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            let h = h.conv2d(&c2, None::<Tensor>, [1], [1], [1], 1).relu().avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
            h.flatten(1, -1).linear::<Tensor>(&fc, None)
        });
        (model, Tensor::randn([3, 2, 8, 8], o))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Conservation: on bias-free networks of covered layers the relevance of a row sums to its
    /// target output (to what ε = 1e-9 absorbs), the delta says so, and an ignored feature gets 0.
    #[test]
    fn relevance_is_conserved_on_random_bias_free_networks(seed in 0i64..1000, kind in 0usize..4, t in 0i64..3) {
        let (model, x) = random_network(seed, kind);
        let a = Lrp::params().check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(t)).unwrap();
        let out = model.forward(&[x.shallow_clone()], &[]).unwrap().select(1, t);
        let attr = a.single().unwrap();
        let sums = attr.reshape([attr.size()[0], -1]).sum_dim_intlist(1, false, Kind::Double);
        let scale = max_abs(&out).max(1e-6);
        let gap = max_abs(&(&sums - &out));
        prop_assert!(gap / scale < 1e-5, "Σ attr {} vs F_t(x) {}", sums, out);
        let delta = max_abs(a.convergence_delta.as_ref().unwrap());
        prop_assert!(delta / scale < 1e-5, "delta {}", delta);
        // Feature 0: a column of the MLP's first weights, or the CNN's first input channel.
        prop_assert_eq!(max_abs(&attr.select(1, 0)), 0.0);
    }
}

/// With ε → 0, LRP on ReLU networks of covered layers is input × gradient (relu's a/z is its
/// derivative, and the epsilon factors are 1); at a tanh, a/z is not tanh's derivative, so a tanh
/// network's LRP is not input × gradient.
#[test]
fn on_relu_networks_lrp_is_input_times_gradient_and_on_tanh_networks_it_is_not() {
    for (kind, same) in [(0usize, true), (2, true), (3, true), (1, false)] {
        let (model, x) = random_network(40 + kind as i64, kind);
        let a = Lrp::params().epsilon(0.0).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
        let xg = x.set_requires_grad(true);
        let out = model.forward(&[xg.shallow_clone()], &[]).unwrap().select(1, 1).sum(Kind::Double);
        let g = Tensor::run_backward(&[out], &[&xg], false, false).remove(0);
        let ixg = &g * &x;
        let gap = max_abs(&(a.single().unwrap() - &ixg)) / max_abs(&ixg);
        if same {
            assert!(gap < 1e-9, "network {kind}: LRP vs input × gradient {gap:.3e}");
        } else {
            assert!(gap > 1e-2, "network {kind} (tanh): LRP should differ from input × gradient, {gap:.3e}");
        }
    }
}

#[test]
fn what_the_rules_do_not_cover_is_a_clear_error() {
    let o = (Kind::Double, Device::Cpu);
    let x = Tensor::randn([3, 4], o);
    let lrp = Lrp::params().check().unwrap();
    // A non-linearity that does not pass relevance through.
    let w = Tensor::randn([4, 4], o);
    let m = traced("softplus", &[x.shallow_clone()], move |xs| xs[0].matmul(&w).softplus());
    let err = lrp.attribute(&m, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap_err().to_string();
    assert!(err.contains("aten::softplus") && err.contains("not covered by the LRP rules"), "{err}");
    // A product of two input-dependent tensors.
    let m = traced("square", &[x.shallow_clone()], |xs| &xs[0] * &xs[0].relu());
    let err = lrp.attribute(&m, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap_err().to_string();
    assert!(err.contains("aten::mul") && err.contains("multiplies two input-dependent tensors"), "{err}");
    // A closure has no graph to rewrite.
    let f = FnModel::new(|x: &Tensor| x.relu());
    let err = lrp.attribute(&f, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap_err();
    assert!(matches!(err, AttribError::NotApplicable(_)) && err.to_string().contains("TorchScript"), "{err}");
    // A stabiliser that is not a small non-negative number.
    for bad in [-1e-9, f64::NAN, f64::INFINITY] {
        let err = Lrp::params().epsilon(bad).check().unwrap_err().to_string();
        assert!(err.contains("epsilon"), "{err}");
    }
}
