//! The model abstraction (closures, `tch::nn::Module`, TorchScript) and the core types'
//! validation: every kind of bad input is an error that says what to fix, never a panic.

use attrib::prelude::*;
use attrib::layer::LayerIntegratedGradients;
use attrib::{AttribError, Evaluator, Expanded};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

fn saliency() -> Saliency {
    Saliency::default()
}

/// Saliency of a linear model `x·w` is `w` for every row: a closed form.
#[test]
fn closure_model_saliency_is_the_weight_of_a_linear_model() {
    let w = Tensor::from_slice(&[0.5f32, -2.0, 3.0, 0.25]).reshape([4, 1]);
    let w2 = w.shallow_clone();
    let model = FnModel::new(move |x: &Tensor| x.matmul(&w2));
    let x = Tensor::randn([6, 4], (Kind::Float, Device::Cpu));
    let attr = saliency().attribute(&model, &Inputs::new(x), &Target::None).unwrap();
    let expected = w.reshape([1, 4]).expand([6, 4], false);
    assert!(attr.values[0].allclose(&expected, 0.0, 0.0, false));
}

/// A `tch::nn::Module` gives the same gradients as autograd on the module directly.
#[test]
fn nn_module_model_matches_autograd() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "l1", 5, 7, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(vs.root() / "l2", 7, 3, Default::default()));
    let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
    let xg = x.detach().set_requires_grad(true);
    let y = net.forward(&xg).select(1, 2).sum(Kind::Float);
    let expected = Tensor::run_backward(&[y], &[&xg], false, false).pop().unwrap();
    let model = ModuleModel::new(net, Device::Cpu);
    let attr = saliency().attribute(&model, &Inputs::new(x), &Target::Class(2)).unwrap();
    assert!(attr.values[0].allclose(&expected, 1e-6, 1e-7, false));
}

/// A closure that panics inside libtorch (shape error) becomes an error, not a crash.
#[test]
fn panicking_closure_is_an_error() {
    let model = FnModel::new(|x: &Tensor| x.matmul(&Tensor::ones([3, 2], (Kind::Float, Device::Cpu))));
    let x = Tensor::ones([2, 5], (Kind::Float, Device::Cpu));
    let err = saliency().attribute(&model, &Inputs::new(x), &Target::Class(0)).unwrap_err();
    assert!(matches!(err, AttribError::ModelForward { .. }), "{err}");
    assert!(err.to_string().contains("[2, 5]"), "{err}");
}

#[test]
fn torchscript_load_errors_are_clear() {
    let err = TorchScriptModel::load("/nonexistent.pt", Device::Cpu).err().unwrap();
    assert!(matches!(err, AttribError::ModelNotFound { .. }));
    let err = TorchScriptModel::load(std::env::temp_dir(), Device::Cpu).err().unwrap();
    assert!(err.to_string().contains("folder"), "{err}");
    let p = attrib_tests::scratch_dir().join("corrupt.pt");
    std::fs::write(&p, [0u8; 64]).unwrap();
    let err = TorchScriptModel::load(&p, Device::Cpu).err().unwrap();
    assert!(matches!(err, AttribError::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains("torch.jit.trace"), "the message says how to export: {err}");
}

fn linear_model() -> FnModel<'static> {
    FnModel::new(|x: &Tensor| x.sum_dim_intlist([1i64].as_slice(), true, Kind::Float).repeat([1, 3]))
}

#[test]
fn input_validation() {
    let model = linear_model();
    let ok = || Tensor::ones([2, 4], (Kind::Float, Device::Cpu));
    // Empty batch.
    let err = saliency().attribute(&model, &Inputs::new(Tensor::zeros([0, 4], (Kind::Float, Device::Cpu))), &Target::Class(0)).unwrap_err();
    assert!(matches!(err, AttribError::EmptyBatch { .. }), "{err}");
    // No input at all.
    let err = saliency().attribute(&model, &Inputs::multi(vec![]), &Target::Class(0)).unwrap_err();
    assert!(matches!(err, AttribError::InputShape(_)), "{err}");
    // Scalar input (no batch dimension).
    let err = saliency().attribute(&model, &Inputs::new(Tensor::from(1.0f32)), &Target::Class(0)).unwrap_err();
    assert!(err.to_string().contains("batch dimension"), "{err}");
    // Batch sizes that disagree.
    let err = saliency()
        .attribute(&model, &Inputs::multi(vec![ok(), Tensor::ones([3, 4], (Kind::Float, Device::Cpu))]), &Target::Class(0))
        .unwrap_err();
    assert!(err.to_string().contains("3 rows"), "{err}");
    // Integer inputs.
    let err = saliency().attribute(&model, &Inputs::new(Tensor::ones([2, 4], (Kind::Int64, Device::Cpu))), &Target::Class(0)).unwrap_err();
    assert!(err.to_string().contains("floating-point"), "{err}");
    // NaN and inf.
    let bad = ok();
    let _ = bad.get(1).get(2).fill_(f64::NAN);
    let _ = bad.get(0).get(0).fill_(f64::INFINITY);
    let err = saliency().attribute(&model, &Inputs::new(bad), &Target::Class(0)).unwrap_err();
    assert!(matches!(err, AttribError::NonFinite { count: 2, .. }), "{err}");
    // Extra tensor argument without the batch.
    let inputs = Inputs::new(ok()).with_extra(vec![ForwardArg::Tensor(Tensor::ones([5], (Kind::Float, Device::Cpu)))]);
    assert!(inputs.validate().is_err());
}

#[test]
fn target_validation() {
    let model = linear_model();
    let x = || Inputs::new(Tensor::ones([2, 4], (Kind::Float, Device::Cpu)));
    let err = saliency().attribute(&model, &x(), &Target::Class(3)).unwrap_err();
    assert!(matches!(err, AttribError::TargetOutOfRange(_)), "{err}");
    assert!(err.to_string().contains("0..=2"), "{err}");
    let err = saliency().attribute(&model, &x(), &Target::PerSample(vec![0, 1, 2])).unwrap_err();
    assert!(err.to_string().contains("3 per-sample targets"), "{err}");
    let err = saliency().attribute(&model, &x(), &Target::PerSample(vec![0, -4])).unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
    let err = saliency().attribute(&model, &x(), &Target::None).unwrap_err();
    assert!(matches!(err, AttribError::TargetShape(_)), "{err}");
    // A model returning one value per row cannot take a class target.
    let scalar = FnModel::new(|x: &Tensor| x.sum_dim_intlist([1i64].as_slice(), false, Kind::Float));
    let err = saliency().attribute(&scalar, &x(), &Target::Class(0)).unwrap_err();
    assert!(err.to_string().contains("one value per row"), "{err}");
    assert!(saliency().attribute(&scalar, &x(), &Target::None).is_ok());
    // A model that drops the batch dimension.
    let bad = FnModel::new(|x: &Tensor| x.sum(Kind::Float).reshape([1, 1]));
    let err = saliency().attribute(&bad, &x(), &Target::None).unwrap_err();
    assert!(matches!(err, AttribError::ModelOutput(_)), "{err}");
}

#[test]
fn baselines_broadcast_or_say_why_not() {
    let x = Tensor::ones([3, 2, 4], (Kind::Float, Device::Cpu));
    let ok = |b: Baseline| Baselines::from(b).resolve(&[x.shallow_clone()]).unwrap().pop().unwrap();
    assert_eq!(ok(Baseline::Zeros).size(), vec![3, 2, 4]);
    assert_eq!(ok(Baseline::Scalar(0.5)).mean(Kind::Float).double_value(&[]), 0.5);
    assert_eq!(ok(Baseline::Tensor(Tensor::ones([1, 2, 4], (Kind::Float, Device::Cpu)))).size(), vec![3, 2, 4]);
    assert_eq!(ok(Baseline::Tensor(Tensor::ones([4], (Kind::Float, Device::Cpu)))).size(), vec![3, 2, 4]);
    let err = Baselines::from(Baseline::Tensor(Tensor::ones([2, 2, 4], (Kind::Float, Device::Cpu))))
        .resolve(&[x.shallow_clone()])
        .unwrap_err();
    assert!(matches!(err, AttribError::BaselineShape { .. }), "{err}");
    assert!(err.to_string().contains("expected 3 or 1"), "{err}");
    let err = Baselines::from(Baseline::Scalar(f64::NAN)).resolve(&[x.shallow_clone()]).unwrap_err();
    assert!(matches!(err, AttribError::NonFinite { .. }));
    // Two inputs, one tensor baseline: ambiguous.
    let err = Baselines::from(Baseline::Tensor(Tensor::ones([4], (Kind::Float, Device::Cpu))))
        .resolve(&[x.shallow_clone(), x.shallow_clone()])
        .unwrap_err();
    assert!(err.to_string().contains("one baseline per input"), "{err}");
    // Per-row baselines broadcast by NumPy's rules: 2 rows do not fit 6...
    let per_row = Tensor::from_slice(&[1.0f32, 2.0]).reshape([2, 1]);
    let stacked = Tensor::zeros([6, 1], (Kind::Float, Device::Cpu));
    let b = Baselines::from(Baseline::Tensor(per_row.shallow_clone()));
    let err = b.resolve(&[stacked.shallow_clone()]).unwrap_err();
    assert!(matches!(err, AttribError::BaselineShape { .. }), "{err}");
    // ...unless the rows are declared as stacked copies (NoiseTunnel): then they are tiled.
    let tiled = b.resolve_copies(&[stacked.shallow_clone()], 3).unwrap().pop().unwrap();
    assert_eq!(Vec::<f32>::try_from(tiled.reshape([-1])).unwrap(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    // Rows that are not the copies' rows are an error either way.
    let err = Baselines::from(Baseline::Tensor(Tensor::ones([4, 1], (Kind::Float, Device::Cpu))))
        .resolve_copies(&[Tensor::zeros([6, 1], (Kind::Float, Device::Cpu))], 3)
        .unwrap_err();
    assert!(matches!(err, AttribError::BaselineShape { .. }), "{err}");
    // Distributions: [S, ...row shape].
    let d = Baselines::from(Baseline::Distribution(Tensor::zeros([5, 2, 4], (Kind::Float, Device::Cpu))));
    assert_eq!(d.samples(&[x.shallow_clone()]).unwrap()[0].size(), vec![5, 2, 4]);
    let d = Baselines::from(Baseline::Distribution(Tensor::zeros([5, 4], (Kind::Float, Device::Cpu))));
    assert!(d.samples(&[x.shallow_clone()]).is_err());
    assert_eq!(Baselines::default().samples(&[x.shallow_clone()]).unwrap()[0].size(), vec![1, 2, 4]);
}

#[test]
fn feature_masks() {
    // A 5x6 image in 2x4 patches: 3 rows x 2 columns of patches, the last ones smaller.
    let g = FeatureMask::grid(5, 6, 2, 4).unwrap();
    let ids: Vec<i64> = Vec::try_from(g.ids().reshape([-1])).unwrap();
    #[rustfmt::skip]
    assert_eq!(ids, vec![
        0, 0, 0, 0, 1, 1,
        0, 0, 0, 0, 1, 1,
        2, 2, 2, 2, 3, 3,
        2, 2, 2, 2, 3, 3,
        4, 4, 4, 4, 5, 5,
    ]);
    assert_eq!(g.groups().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    // Broadcasts over batch and channels of [N, C, 5, 6]; not over a 5x7 image.
    assert_eq!(g.broadcast_to(&[2, 3, 5, 6], 0, Device::Cpu).unwrap().size(), vec![2, 3, 5, 6]);
    let err = g.broadcast_to(&[2, 3, 5, 7], 0, Device::Cpu).unwrap_err();
    assert!(matches!(err, AttribError::MaskShape { .. }), "{err}");
    assert!(FeatureMask::grid(5, 6, 0, 2).is_err());
    // A per-row mask (2 rows) broadcasts by NumPy's rules: not to 6 rows; tiled over 3 stacked
    // copies on request.
    let per_row = FeatureMask::new(Tensor::from_slice(&[0i64, 1, 1, 0]).reshape([2, 2])).unwrap();
    assert!(per_row.broadcast_to(&[6, 2], 0, Device::Cpu).is_err());
    let tiled = attrib::baseline::tile_copies(per_row.ids(), &[6, 2], 3).unwrap();
    let ids = attrib::baseline::broadcast_rows(&tiled, &[6, 2]).unwrap();
    assert_eq!(Vec::<i64>::try_from(ids.get(4).contiguous()).unwrap(), vec![0, 1]);
    assert!(per_row.broadcast_to(&[5, 2], 0, Device::Cpu).is_err());
    // Label images are relabelled to 0..G in the order of the labels.
    let labels = Tensor::from_slice(&[7i64, 7, -1, 3, 3, 7]).reshape([2, 3]);
    let m = FeatureMask::from_labels(&labels).unwrap();
    let ids: Vec<i64> = Vec::try_from(m.ids().reshape([-1])).unwrap();
    assert_eq!(ids, vec![2, 2, 0, 1, 1, 2]);
    // Invalid ids.
    assert!(FeatureMask::new(Tensor::from_slice(&[0i64, -1])).is_err());
    assert!(FeatureMask::new(Tensor::from_slice(&[0.5f32, 1.0])).is_err());
    assert_eq!(FeatureMask::per_element(&[2, 3]).groups().unwrap().len(), 6);
}

#[test]
fn devices() {
    assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
    assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
    assert_eq!("auto".parse::<DeviceSpec>().unwrap().resolve().unwrap(), Device::cuda_if_available());
    assert!(matches!("tpu".parse::<DeviceSpec>(), Err(AttribError::UnknownDevice(_))));
    assert!(matches!("cuda:x".parse::<DeviceSpec>(), Err(AttribError::UnknownDevice(_))));
    if !tch::Cuda::is_available() {
        assert!(matches!(DeviceSpec::Cuda(0).resolve(), Err(AttribError::DeviceUnavailable { .. })));
    }
}

#[test]
fn batch_options_are_checked() {
    assert!(BatchOptions::with_max_batch(0).check().is_err());
    assert!(BatchOptions { memory_budget: Some(0), ..BatchOptions::default() }.check().is_err());
    assert!(Saliency::params().batch(BatchOptions::with_max_batch(0)).check().is_err());
}

/// An input whose output does not depend on it gets zero gradients, not an error.
#[test]
fn unused_input_has_zero_gradient() {
    let model = FnModel::multi(|xs: &[Tensor]| xs[0].matmul(&Tensor::ones([2, 2], (Kind::Float, Device::Cpu))));
    let inputs = Inputs::multi(vec![
        Tensor::ones([3, 2], (Kind::Float, Device::Cpu)),
        Tensor::ones([3, 5], (Kind::Float, Device::Cpu)),
    ]);
    let attr = saliency().attribute(&model, &inputs, &Target::Class(1)).unwrap();
    assert_eq!(attr.values[1].abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert_eq!(attr.values[0].sum(Kind::Float).double_value(&[]), 6.0);
}

/// Expanded batches hand each chunk the rows it asked for.
#[test]
fn expanded_repeat_layout_is_block_major() {
    let x = Tensor::arange(3, (Kind::Float, Device::Cpu)).reshape([3, 1]);
    let inputs = [x];
    let e = Expanded::repeat(&inputs, 2);
    let rows: Vec<f32> = Vec::try_from(e.rows(2, 6).unwrap()[0].reshape([-1])).unwrap();
    assert_eq!(rows, vec![2.0, 0.0, 1.0, 2.0]);
    let model = FnModel::new(|x: &Tensor| x * 2.0);
    let ev = Evaluator::new(&model, BatchOptions::with_max_batch(4)).unwrap();
    let p = ev.prepare(&Inputs::new(inputs[0].shallow_clone()), &Target::None).unwrap();
    let f: Vec<f32> = Vec::try_from(ev.forward(&p, &Expanded::repeat(&p.inputs, 2)).unwrap()).unwrap();
    assert_eq!(f, vec![0.0, 2.0, 4.0, 0.0, 2.0, 4.0]);
}

/// A loaded model is the model as it was when loaded. Replacing its file afterwards (a training
/// loop saving the next checkpoint under the same name) or deleting it changes none of its
/// copies: the inference copy (perturbation methods), the rewritten copy (DeepLIFT) and the
/// layer copy (layer methods) are all made from the bytes read by `load`.
#[test]
fn a_loaded_model_does_not_follow_its_file() {
    let dir = attrib_tests::scratch_dir().join("replaced_model");
    std::fs::create_dir_all(&dir).unwrap();
    let original = attrib_tests::fixtures().join("models/mlp/model.pt");
    let path = dir.join("model.pt");
    std::fs::copy(&original, &path).unwrap();
    let x = Tensor::randn([5, 10], (Kind::Float, Device::Cpu));
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::Class(1);
    let deeplift = DeepLift::params().check().unwrap();
    let layer_ig = LayerIntegratedGradients::params().layer("net.2").n_steps(16).check().unwrap();
    let results = |m: &TorchScriptModel| {
        let inference = m.inference_model().expect("the MLP freezes").forward(&[x.shallow_clone()], &[]).unwrap();
        let dl = deeplift.attribute(m, &inputs, &target).unwrap().single().unwrap().shallow_clone();
        let lig = layer_ig.attribute(m, &inputs, &target).unwrap().single().unwrap().shallow_clone();
        [inference, dl, lig]
    };
    let reference = results(&TorchScriptModel::load(&original, Device::Cpu).unwrap());

    for change in ["replaced", "deleted"] {
        std::fs::copy(&original, &path).unwrap();
        let model = TorchScriptModel::load(&path, Device::Cpu).unwrap();
        let fingerprint = model.fingerprint();
        if change == "replaced" {
            // The same architecture with other weights, saved over the loaded file.
            let other = tch::CModule::load(&original).unwrap();
            tch::no_grad(|| {
                for (_, mut p) in other.named_parameters().unwrap() {
                    let _ = p.copy_(&(p.randn_like() * 3.0));
                }
            });
            other.save(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        for (name, (got, want)) in ["inference copy", "DeepLIFT", "layer IG"].iter().zip(results(&model).iter().zip(&reference)) {
            assert!(got.allclose(want, 1e-5, 1e-6, false), "{change} file: the {name} follows the file, not the loaded model");
        }
        assert_eq!(model.fingerprint(), fingerprint, "{change} file: the fingerprint is the loaded model's");
    }
}
