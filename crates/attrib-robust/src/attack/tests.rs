use super::clean::{clean_pass, first_pass, Clean};
use super::gradients::LossGradients;
use super::params::row_values;
use super::step::{fused_step, StepRule};
use super::Bounds;
use crate::loss::{Loss, LossKind, LossModel};
use attrib_core::{AttribError, BatchOptions, Inputs, ResolvedTarget, Target};
use attrib_tensor::{Evaluator, Prepared};
use tch::{Device, Tensor};
use crate::layout::decide_layout;
use attrib_core::{FnModel, MemoryFormat};
use attrib_tensor::decisions::{self, VariantKey};
use attrib_tensor::Layout;
use tch::Kind;

#[test]
fn the_one_pass_step_equals_the_tensor_by_tensor_step() {
    tch::manual_seed(11);
    for kind in [Kind::Float, Kind::Double] {
        let opts = (kind, Device::Cpu);
        let x0 = Tensor::rand([5, 2, 3, 3], opts);
        let x = &x0 + Tensor::randn([5, 2, 3, 3], opts) * 0.05;
        // Gradients with exact zeros and values at and below the zero threshold.
        let g = Tensor::randn([5, 2, 3, 3], opts) * Tensor::rand([5, 2, 3, 3], opts).gt(0.2).to_kind(kind);
        let g = g.where_self(&Tensor::rand([5, 2, 3, 3], opts).gt(0.1), &Tensor::full([5, 2, 3, 3], 1e-6, opts));
        let mask = Tensor::rand([1, 2, 3, 3], opts).gt(0.3).to_kind(kind);
        let full_mask = mask.expand_as(&x).contiguous();
        let steps = [0.03, -0.05, 0.02, 0.0, -0.01];
        let radii = [0.04, 0.1, 0.01, 0.02, 0.0];
        let bounds = Bounds::new(0.1, 0.9);
        let s = row_values(&steps, &x).unwrap();
        let r = row_values(&radii, &x).unwrap();
        let reference = |m: Option<&Tensor>, project: bool, b: Bounds| {
            let stepped = crate::fgsm::step_one(&x, &g, &s, 1e-6, m).unwrap();
            let projected = if project { &x0 + (&stepped - &x0).clamp_tensor(Some(&r.neg()), Some(&r)) } else { stepped };
            b.apply(&projected).unwrap()
        };
        for (m, full) in [(None, None), (Some(&mask), Some(&full_mask))] {
            for project in [false, true] {
                for b in [bounds, Bounds::default()] {
                    let rule = StepRule { steps: &steps, radius: project.then_some(radii.as_slice()), threshold: 1e-6, bounds: b };
                    let fused = fused_step(&x, &x0, &g, full, &rule, false).unwrap().expect("a contiguous CPU batch takes the one-pass step");
                    let expected = reference(m, project, b);
                    assert!(fused.equal(&expected), "{kind:?}, mask {}, projection {project}, bounds {b:?}", m.is_some());
                    assert!(fused.ne_tensor(&x).any().int64_value(&[]) == 1, "the step moved nothing");
                    // In place: the same values, written into the stepped tensor itself.
                    let own = x.copy();
                    let in_place = fused_step(&own, &x0, &g, full, &rule, true).unwrap().expect("the one-pass step");
                    assert_eq!(in_place.data_ptr(), own.data_ptr());
                    assert!(own.equal(&expected), "in place: {kind:?}, mask {}, projection {project}, bounds {b:?}", m.is_some());
                }
            }
        }
        // Inputs it does not handle are left to the tensor-by-tensor way.
        let rule = StepRule { steps: &steps, radius: None, threshold: 1e-6, bounds };
        let strided = x.transpose(2, 3);
        assert!(fused_step(&strided, &x0.transpose(2, 3), &g.transpose(2, 3), None, &rule, false).unwrap().is_none());
        assert!(fused_step(&x.to_kind(Kind::Half), &x0, &g, None, &rule, false).unwrap().is_none());
    }
}

#[test]
fn bad_masks_and_step_sizes_are_refused_before_any_model_call() {
    use crate::{Fgsm, Pgd};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let w = Tensor::randn([12, 3], (Kind::Float, Device::Cpu));
    let model = FnModel::new(move |x: &Tensor| {
        seen.fetch_add(1, Ordering::SeqCst);
        x.flatten(1, -1).matmul(&w)
    });
    let inputs = Inputs::new(Tensor::rand([2, 3, 2, 2], (Kind::Float, Device::Cpu)));
    let target = Target::Class(0);
    let bad_mask = vec![Tensor::ones([3, 3, 2, 2], (Kind::Float, Device::Cpu))];
    let two_masks: Vec<Tensor> = (0..2).map(|_| Tensor::ones([1, 3, 2, 2], (Kind::Float, Device::Cpu))).collect();
    for mask in [bad_mask, two_masks] {
        let fgsm = Fgsm::params(0.1).mask(mask.iter().map(Tensor::shallow_clone).collect()).check().unwrap();
        assert!(fgsm.perturb(&model, &inputs, &target).is_err());
        let pgd = Pgd::params(0.1).step_num(3).step_size(0.05).mask(mask).check().unwrap();
        assert!(pgd.perturb(&model, &inputs, &target).is_err());
    }
    let fgsm = Fgsm::params(0.1).check().unwrap();
    let err = fgsm.perturb_rows(&model, &inputs, &target, Some(&[0.1, -1.0])).unwrap_err();
    assert!(err.to_string().contains("epsilon"), "{err}");
    assert!(fgsm.perturb_rows(&model, &inputs, &target, Some(&[0.1])).is_err(), "one value for two rows");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the model ran before the parameters were checked");
    // Good parameters reach the model.
    fgsm.perturb(&model, &inputs, &target).unwrap();
    assert!(calls.load(Ordering::SeqCst) > 0);
}

fn small_cnn(softmax: bool) -> FnModel<'static> {
    tch::manual_seed(3);
    let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
    FnModel::new(move |x: &Tensor| {
        let z = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1).relu().mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        if softmax {
            z.softmax(1, Kind::Float)
        } else {
            z
        }
    })
}

#[test]
fn a_long_attack_decides_its_layout_once_and_runs_it() {
    // A small convolutional classifier on 3-channel images (image-like: both layouts apply).
    let model = small_cnn(false);
    let x = Tensor::rand([6, 3, 8, 8], (Kind::Float, Device::Cpu));
    let batch = BatchOptions::default();
    let eval = Evaluator::new(&model, batch).unwrap();
    let p = eval.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
    let loss_model = LossModel::new(&model, LossKind::CrossEntropy);
    let key = VariantKey::new(&loss_model, true, &batch, vec![(vec![1, 3, 8, 8], Kind::Float)]);
    assert!(decisions::decision(&key).is_none());
    let layout = decide_layout(&loss_model, &p, batch).unwrap().expect("a layout for image-like CPU inputs");
    let decided = decisions::decision(&key).and_then(|d| d.variant).expect("a decision");
    assert_eq!(decided.layout, layout);
    assert!(!decided.inference);
    // The attack's evaluators run the decided layout; its gradients equal a forced run's.
    let (clean, first) = first_pass(&loss_model, p, &Target::Argmax, Loss::Auto, false, batch).unwrap();
    let grads = LossGradients::new(&loss_model, &clean, batch).unwrap();
    let g = grads.at(&clean.inputs).unwrap();
    assert_eq!(grads.eval.gradient_layout(), Some(decided.layout));
    assert!(g[0].equal(&first[0]), "the first pass's gradients are a labelled pass's");
    let format = if decided.layout == Layout::ChannelsLast { MemoryFormat::ChannelsLast } else { MemoryFormat::Contiguous };
    let forced = LossGradients::new(&loss_model, &clean, BatchOptions { memory_format: format, ..batch }).unwrap();
    assert!(g[0].equal(&forced.at(&clean.inputs).unwrap()[0]));
    // Decided once: a second call keeps the decision (the loss does not change the key).
    loss_model.set_kind(LossKind::NegLogProb);
    assert_eq!(decide_layout(&loss_model, &clean_prepared(&clean), batch).unwrap(), Some(layout));
    assert_eq!(decisions::decision(&key).and_then(|d| d.variant), Some(decided));
    // Nothing to decide with a forced layout.
    assert_eq!(decide_layout(&loss_model, &clean_prepared(&clean), BatchOptions { memory_format: format, ..batch }).unwrap(), None);
}

fn clean_prepared(clean: &Clean) -> Prepared {
    Prepared {
        inputs: clean.inputs.iter().map(Tensor::shallow_clone).collect(),
        extra: Vec::new(),
        n: clean.n,
        target: ResolvedTarget::Scalar,
        device: Device::Cpu,
    }
}

#[test]
fn the_first_pass_is_the_clean_pass_and_a_labelled_pass() {
    // Against the two-pass way (a forward pass for predictions, labels and loss, then a
    // gradient pass with the labels): logits and probabilities, argmax and given labels, one
    // chunk and chunks of 2 rows (gathered, then taken again).
    let x = Tensor::rand([5, 3, 6, 6], (Kind::Float, Device::Cpu));
    let given = Target::PerSample(vec![0, 3, 1, 2, 3]);
    for softmax in [false, true] {
        let model = small_cnn(softmax);
        for target in [Target::Argmax, given.clone()] {
            for max_batch in [None, Some(2)] {
                let batch = BatchOptions { max_batch, memory_format: MemoryFormat::Contiguous, ..Default::default() };
                let eval = Evaluator::new(&model, batch).unwrap();
                let prepare = || eval.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
                let expected = clean_pass(&eval, prepare(), &target, Loss::Auto, false).unwrap();
                let reference = LossModel::new(&model, expected.loss);
                let g = LossGradients::new(&reference, &expected, batch).unwrap().at(&expected.inputs).unwrap();
                let loss_model = LossModel::new(&model, LossKind::CrossEntropy);
                let (clean, first) = first_pass(&loss_model, prepare(), &target, Loss::Auto, false, batch).unwrap();
                let what = format!("softmax {softmax}, {target:?}, max_batch {max_batch:?}");
                assert_eq!(clean.loss, if softmax { LossKind::NegLogProb } else { LossKind::CrossEntropy }, "{what}");
                assert_eq!(loss_model.kind(), clean.loss, "{what}");
                assert_eq!((&clean.before, &clean.labels_host), (&expected.before, &expected.labels_host), "{what}");
                assert!(clean.labels.equal(&expected.labels), "{what}");
                assert!(first[0].equal(&g[0]), "{what}");
            }
        }
    }
    // Errors as from the forward pass: a label out of range, a targeted argmax, no target.
    let model = small_cnn(false);
    let batch = BatchOptions::default();
    let eval = Evaluator::new(&model, batch).unwrap();
    let loss_model = LossModel::new(&model, LossKind::CrossEntropy);
    for (target, targeted) in [(Target::Class(4), false), (Target::Argmax, true), (Target::None, false)] {
        let p = eval.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
        let err = first_pass(&loss_model, p, &target, Loss::Auto, targeted, batch).err().expect("an error");
        assert!(matches!(err, AttribError::TargetOutOfRange(_) | AttribError::InvalidParameter { .. }), "{err}");
    }
}
