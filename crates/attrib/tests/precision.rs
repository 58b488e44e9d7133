//! The reduced-precision mode (`BatchOptions::precision`, CLI `--precision`): model calls run
//! under autocast, results stay float32 and close to the float32 run, the convergence delta still
//! reports the cost, float32 is the default and unchanged, and the thread's autocast state is
//! restored after every call.

use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::Autocast;
use serde_json::json;
use std::cell::RefCell;
use tch::{nn, nn::Module, Device, Kind, Tensor};

/// A small convolutional network (3 → 8 channels, ReLU, linear to 4 classes) and a seeded batch
/// of 6 images 3×8×8. The closure records the dtype of the model's output on every call.
fn cnn() -> (nn::VarStore, Box<dyn Fn(&Tensor) -> Tensor>, Tensor) {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let conv = nn::conv2d(&root / "conv", 3, 8, 3, nn::ConvConfig { padding: 1, ..Default::default() });
    let fc = nn::linear(&root / "fc", 8 * 8 * 8, 4, Default::default());
    let f = Box::new(move |x: &Tensor| fc.forward(&conv.forward(x).relu().flatten(1, -1)));
    let x = Tensor::randn([6, 3, 8, 8], (Kind::Float, Device::Cpu));
    (vs, f, x)
}

fn ig(precision: &str, model: &dyn Model, x: &Tensor) -> Attributions {
    let spec = json!({"method": "integrated-gradients", "n_steps": 16, "precision": precision});
    Registry::builtin()
        .build(&serde_json::from_value(spec).unwrap(), &[x.shallow_clone()])
        .unwrap()
        .attribute(model, &Inputs::new(x.shallow_clone()), &Target::Class(2))
        .unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

#[test]
fn bf16_runs_the_model_under_autocast_and_keeps_float32_results_close() {
    let (_vs, f, x) = cnn();
    let kinds = RefCell::new(Vec::new());
    let model = FnModel::new(|x: &Tensor| {
        let out = f(x);
        kinds.borrow_mut().push(out.kind());
        out
    });
    let full = ig("fp32", &model, &x);
    assert!(kinds.borrow().iter().all(|&k| k == Kind::Float), "{:?}", kinds.borrow());
    kinds.borrow_mut().clear();
    for precision in ["bf16", "fp16"] {
        let reduced = ig(precision, &model, &x);
        let seen: Vec<Kind> = kinds.borrow_mut().drain(..).collect();
        let want = if precision == "bf16" { Kind::BFloat16 } else { Kind::Half };
        assert!(!seen.is_empty() && seen.iter().all(|&k| k == want), "{precision}: model outputs {seen:?}");
        let (a, b) = (full.single().unwrap(), reduced.single().unwrap());
        assert_eq!(b.kind(), Kind::Float, "attributions stay float32");
        // bfloat16 keeps about 3 significant digits: the attributions agree to a few percent of
        // their largest value, not to float32 rounding.
        let rel = max_abs(&(a - b)) / max_abs(a);
        assert!(rel < 0.1, "{precision}: {rel}");
        assert!(rel > 1e-6, "{precision}: identical to float32 ({rel}); autocast did not run");
        // The convergence delta is still reported, as in the float32 run.
        let delta = reduced.convergence_delta.as_ref().expect("IG reports its delta");
        assert_eq!(delta.kind(), full.convergence_delta.as_ref().unwrap().kind());
        assert!(max_abs(delta).is_finite());
        assert!(!Autocast::active(Device::Cpu), "the autocast region was left open");
    }
}

#[test]
fn fp32_is_the_default_and_unchanged() {
    let (_vs, f, x) = cnn();
    let model = FnModel::new(|x: &Tensor| f(x));
    let spec = json!({"method": "integrated-gradients", "n_steps": 16});
    let default = Registry::builtin()
        .build(&serde_json::from_value(spec).unwrap(), &[x.shallow_clone()])
        .unwrap()
        .attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(2))
        .unwrap();
    let fp32 = ig("fp32", &model, &x);
    assert!(default.single().unwrap().equal(fp32.single().unwrap()));
    assert_eq!(BatchOptions::default().precision, Precision::Fp32);
}

#[test]
fn an_unknown_precision_is_an_error_naming_the_choices() {
    let x = Tensor::ones([1, 3], (Kind::Float, Device::Cpu));
    let spec = json!({"method": "saliency", "precision": "int8"});
    let err = match Registry::builtin().build(&serde_json::from_value(spec).unwrap(), &[x]) {
        Ok(_) => panic!("precision int8 was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("precision") && err.contains("bf16"), "{err}");
}
