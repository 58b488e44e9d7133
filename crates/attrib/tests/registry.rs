//! The method registry: what it says about each method is what the built method does, specs
//! build the same methods as the typed parameter structs, defaults are written once, and the
//! new baseline grammars (`blur:`, `uniform:`) give what they promise.

use attrib::methods::{DefaultsContext, InputKind, MethodEntry, Registry};
use attrib::prelude::*;
use attrib::{Baseline, BaselineSpec};
use serde_json::{json, Map, Value};
use tch::{Device, Kind, Tensor};

fn image_inputs() -> Vec<Tensor> {
    tch::manual_seed(7);
    vec![Tensor::rand([3, 3, 8, 8], (Kind::Double, Device::Cpu))]
}

fn image_ctx(inputs: &[Tensor]) -> DefaultsContext {
    DefaultsContext { shapes: inputs.iter().map(|t| t.size()).collect(), kinds: vec![InputKind::Image], differentiable: true }
}

/// Whether the method has a required parameter that its comparison settings do not set for
/// these inputs and that this test cannot supply generically (a layer name: the layer methods
/// have their own tests, `tests/layer_parity.rs`).
fn needs_unset_parameter(e: &dyn MethodEntry, ctx: &DefaultsContext) -> bool {
    let settings = e.compare_settings(ctx).unwrap();
    e.doc().params.iter().any(|p| p.required && p.name == "layer" && !settings.contains_key(p.name))
}

/// [`model`] traced to TorchScript (for the methods that rewrite the graph).
fn traced_model() -> TorchScriptModel {
    let w = Tensor::linspace(-1.0, 1.0, 3 * 8 * 8 * 2, (Kind::Double, Device::Cpu)).reshape([3 * 8 * 8, 2]);
    let mut f = move |xs: &[Tensor]| vec![xs[0].reshape([-1, 3 * 8 * 8]).matmul(&w).tanh()];
    let m = tch::CModule::create_by_tracing("M", "forward", &[Tensor::zeros([2, 3, 8, 8], (Kind::Double, Device::Cpu))], &mut f).unwrap();
    let path = attrib_scratch::scratch_dir().join("traced.pt");
    m.save(&path).unwrap();
    TorchScriptModel::load(&path, Device::Cpu).unwrap()
}

/// Three baseline samples for the inputs of [`image_inputs`], as a `.npy` file.
fn samples_file() -> String {
    let path = attrib_scratch::scratch_dir().join("samples.npy");
    attrib::convert::write_npy_tensor(&path, &(Tensor::rand([3, 3, 8, 8], (Kind::Float, Device::Cpu)) * 0.1)).unwrap();
    path.display().to_string()
}

/// A smooth two-class model on [N, 3, 8, 8] inputs, in float64.
fn model() -> FnModel<'static> {
    let w = Tensor::linspace(-1.0, 1.0, 3 * 8 * 8 * 2, (Kind::Double, Device::Cpu)).reshape([3 * 8 * 8, 2]);
    FnModel::new(move |x: &Tensor| x.reshape([-1, 3 * 8 * 8]).matmul(&w).tanh())
}

fn spec_with(entry: &dyn MethodEntry, ctx: &DefaultsContext, extra: Map<String, Value>) -> MethodSpec {
    let mut params = entry.compare_settings(ctx).unwrap();
    params.extend(extra);
    MethodSpec { method: entry.doc().name.to_string(), label: None, params }
}

#[test]
fn flags_match_what_the_built_methods_say() {
    let r = Registry::builtin();
    let x = image_inputs();
    let ctx = image_ctx(&x);
    let traced = traced_model();
    for e in r.entries() {
        if needs_unset_parameter(e, &ctx) {
            continue;
        }
        let extra = match e.doc().name {
            // Its baselines are a required distribution of samples.
            "deeplift-shap" => [("baselines".to_string(), json!(samples_file()))].into_iter().collect(),
            _ => Map::new(),
        };
        let m = r.build(&spec_with(e, &ctx, extra), &x).unwrap();
        let info = m.info();
        let flags = e.doc().flags;
        assert_eq!(info.multiplies_by_inputs, flags.multiplies_by_inputs, "{}", e.doc().name);
        assert_eq!(info.has_convergence_delta, flags.has_convergence_delta, "{}", e.doc().name);
        assert_eq!(flags.stochastic, e.doc().params.iter().any(|p| p.name == "seed"), "{}: stochastic methods take a seed", e.doc().name);
        // Every method runs on these inputs through its spec (the graph-rule methods need the
        // TorchScript form of the model; on the closure they say so).
        let attr = match m.attribute(&model(), &Inputs::new(x[0].shallow_clone()), &Target::Class(1)) {
            Err(AttribError::NotApplicable(why)) if why.contains("TorchScript") => {
                m.attribute(&traced, &Inputs::new(x[0].shallow_clone()), &Target::Class(1)).unwrap()
            }
            other => other.unwrap(),
        };
        assert_eq!(attr.values[0].size(), x[0].size(), "{}", e.doc().name);
    }
}

#[test]
fn documented_defaults_are_the_defaults() {
    let r = Registry::builtin();
    let x = image_inputs();
    let ctx = image_ctx(&x);
    for e in r.entries() {
        if e.doc().name == "deeplift-shap" || needs_unset_parameter(e, &ctx) {
            continue; // required parameters without a default: nothing to write
        }
        let implicit = r.build(&spec_with(e, &ctx, Map::new()), &x).unwrap();
        let settings = e.compare_settings(&ctx).unwrap();
        let mut written = Map::new();
        for p in e.doc().params {
            // Keys the comparison settings choose for these inputs stay as they set them.
            if let (Some(v), false) = (p.default_value(), settings.contains_key(p.name)) {
                written.insert(p.name.to_string(), v);
            }
        }
        let explicit = r.build(&spec_with(e, &ctx, written), &x).unwrap();
        assert_eq!(implicit.params(), explicit.params(), "{}: writing the documented defaults changes nothing", e.doc().name);
    }
    // And they are the typed structs' defaults.
    let ig = r.build(&MethodSpec::new("integrated-gradients"), &x).unwrap();
    assert_eq!(ig.params(), IntegratedGradients::params().check().unwrap().params());
    let sal = r.build(&MethodSpec::new("saliency"), &x).unwrap();
    assert_eq!(sal.params(), Saliency::params().check().unwrap().params());
}

#[test]
fn a_spec_builds_the_same_method_as_the_typed_parameters() {
    let r = Registry::builtin();
    let x = image_inputs();
    let inputs = Inputs::new(x[0].shallow_clone());
    let spec: MethodSpec = r#"{"method": "integrated-gradients", "n_steps": 16, "quadrature": "riemann_middle", "baselines": 0.25, "max_batch": 5}"#.parse().unwrap();
    let a = r.build(&spec, &x).unwrap().attribute(&model(), &inputs, &Target::Class(0)).unwrap();
    let direct = IntegratedGradients::params()
        .n_steps(16)
        .quadrature(Quadrature::RiemannMiddle)
        .baselines(Baseline::Scalar(0.25))
        .batch(BatchOptions::with_max_batch(5))
        .check()
        .unwrap();
    let b = direct.attribute(&model(), &inputs, &Target::Class(0)).unwrap();
    assert!(a.values[0].equal(&b.values[0]));
    // A noise tunnel through the spec key equals the wrapper built by hand.
    let spec: MethodSpec = serde_json::from_value(json!({"method": "saliency", "noise_tunnel": {"nt_type": "vargrad", "nt_samples": 3, "stdevs": 0.1, "seed": 4}})).unwrap();
    let a = r.build(&spec, &x).unwrap().attribute(&model(), &inputs, &Target::Class(0)).unwrap();
    let nt = NoiseTunnel::params()
        .nt_type(NoiseTunnelType::VarGrad)
        .nt_samples(3)
        .stdev(0.1)
        .seed(4)
        .check(Box::new(Saliency::params().check().unwrap()))
        .unwrap();
    let b = nt.attribute(&model(), &inputs, &Target::Class(0)).unwrap();
    assert!(a.values[0].equal(&b.values[0]));
}

#[test]
fn specs_are_checked_before_any_work() {
    let r = Registry::builtin();
    let x = image_inputs();
    let err = |spec: Value| r.build(&serde_json::from_value(spec).unwrap(), &x).map(|_| ()).unwrap_err().to_string();
    assert!(err(json!({"method": "saliency", "n_steps": 3})).contains("takes no parameter `n_steps`"));
    assert!(err(json!({"method": "occlusion"})).contains("needs `sliding_window_shapes`"));
    assert!(err(json!({"method": "integrated-gradients", "n_steps": "many"})).contains("integer"));
    assert!(err(json!({"method": "saliency", "noise_tunnel": {"samples": 3}})).contains("nt_samples"));
    assert!(err(json!({"method": "nope"})).contains("available: saliency"));
    let mut r2 = Registry::builtin();
    struct Dup;
    impl MethodEntry for Dup {
        fn doc(&self) -> &attrib::MethodDoc {
            &DUP
        }
        fn build(&self, _: &attrib::Args, _: &attrib::BuildContext<'_>) -> attrib::Result<Box<dyn Attribution>> {
            unreachable!()
        }
    }
    const DUP: attrib::MethodDoc = attrib::MethodDoc {
        name: "saliency",
        description: "a second saliency",
        family: attrib::Family::Gradient,
        flags: attrib::MethodFlags { needs_gradients: true, stochastic: false, multiplies_by_inputs: false, has_convergence_delta: false },
        params: &[],
    };
    assert!(r2.register(Dup).unwrap_err().to_string().contains("already registered"));
}

#[test]
fn blurred_baseline_keeps_constants_and_mass() {
    let constant = Tensor::full([2, 3, 9, 9], 0.7, (Kind::Double, Device::Cpu));
    let b = Baseline::Blur(1.5).resolve(&constant, 0).unwrap();
    assert!((b - 0.7).abs().max().double_value(&[]) < 1e-12);
    // An impulse far from the edges spreads symmetrically and keeps its mass.
    let impulse = Tensor::zeros([1, 1, 15, 15], (Kind::Double, Device::Cpu));
    let _ = impulse.get(0).get(0).get(7).get(7).fill_(1.0);
    let b = Baseline::Blur(1.0).resolve(&impulse, 0).unwrap();
    assert!((b.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-12);
    assert!(b.equal(&b.flip([2])) && b.equal(&b.flip([3])) && b.equal(&b.transpose(2, 3)));
    let centre = b.double_value(&[0, 0, 7, 7]);
    let g = |d: f64| (-d * d / 2.0).exp();
    let norm: f64 = (-3..=3).map(|i| g(i as f64)).sum();
    assert!((centre - 1.0 / (norm * norm)).abs() < 1e-12, "separable Gaussian of radius 3");
    let flat = Tensor::zeros([2, 5], (Kind::Double, Device::Cpu));
    assert!(Baseline::Blur(1.0).resolve(&flat, 0).unwrap_err().to_string().contains("image inputs"));
}

#[test]
fn uniform_baseline_is_seeded_and_in_range() {
    let x = Tensor::zeros([4, 3, 5, 5], (Kind::Float, Device::Cpu));
    let draw = |seed| Baseline::Uniform { low: -2.0, high: 3.0, seed }.resolve(&x, 0).unwrap();
    let (a, b, c) = (draw(1), draw(1), draw(2));
    assert!(a.equal(&b) && !a.equal(&c));
    assert!(a.min().double_value(&[]) >= -2.0 && a.max().double_value(&[]) < 3.0);
    let mean = a.mean(Kind::Double).double_value(&[]);
    assert!((mean - 0.5).abs() < 0.3, "mean of 300 uniform draws on [-2, 3): {mean}");
    assert_eq!(a.kind(), Kind::Float);
    let spec: BaselineSpec = "uniform:-2,3".parse().unwrap();
    let loaded = attrib::spec::load_baselines(&[spec], 1, false, 1).unwrap();
    assert!(loaded.resolve(&[x.shallow_clone()]).unwrap()[0].equal(&a));
}
