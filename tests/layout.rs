//! Memory layout of image-like inputs (`BatchOptions::memory_format`): the layout changes how a
//! chunk's elements sit in memory, never the values a model sees, so every method gives the same
//! result in either layout; `Auto` times both and falls back to contiguous for models that
//! reject channels-last tensors.

use attrib::prelude::*;
use attrib::{Evaluator, Expanded, Layout};
use std::cell::RefCell;
use tch::{Device, Kind, Tensor};

/// A small float64 CNN: conv 3→4 (3×3, padding 1), ReLU, 2×2 max-pool, linear to 3 classes.
/// For `h×w` inputs.
struct Cnn {
    w: Tensor,
    b: Tensor,
    fc: Tensor,
}

impl Cnn {
    fn new() -> Cnn {
        Cnn::sized(8, 8)
    }
    fn sized(h: i64, w: i64) -> Cnn {
        let g = |seed: i64, shape: &[i64]| {
            let n: i64 = shape.iter().product();
            (Tensor::arange(n, (Kind::Double, Device::Cpu)) * (0.7 + seed as f64 * 0.13)).sin().reshape(shape)
        };
        Cnn { w: g(1, &[4, 3, 3, 3]), b: g(2, &[4]), fc: g(3, &[4 * (h / 2) * (w / 2), 3]) }
    }
    fn apply(&self, x: &Tensor) -> Tensor {
        let h = x.conv2d(&self.w, Some(&self.b), [1, 1], [1, 1], [1, 1], 1).relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        h.reshape([x.size()[0], -1]).matmul(&self.fc)
    }
}

fn is_channels_last(x: &Tensor) -> bool {
    x.dim() == 4 && x.size()[1] > 1 && x.stride()[1] == 1
}

fn input() -> Tensor {
    input_sized(8, 8)
}

fn input_sized(h: i64, w: i64) -> Tensor {
    (Tensor::arange(5 * 3 * h * w, (Kind::Double, Device::Cpu)) * 0.37).cos().reshape([5, 3, h, w])
}

fn options(format: MemoryFormat, max_batch: usize) -> BatchOptions {
    BatchOptions { max_batch: Some(max_batch), memory_format: format, ..BatchOptions::default() }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn to_layout_changes_strides_not_values() {
    let x = input();
    let cl = attrib::tensor::to_layout(vec![x.shallow_clone()], Layout::ChannelsLast).unwrap().pop().unwrap();
    assert!(is_channels_last(&cl), "strides {:?}", cl.stride());
    assert_eq!(cl.size(), x.size());
    assert!(cl.equal(&x));
    // One channel, 2-D inputs and integer tensors are left as they are.
    for t in [Tensor::ones([2, 1, 4, 4], (Kind::Float, Device::Cpu)), Tensor::ones([2, 5], (Kind::Float, Device::Cpu))] {
        let same = attrib::tensor::to_layout(vec![t.shallow_clone()], Layout::ChannelsLast).unwrap().pop().unwrap();
        assert_eq!(same.stride(), t.stride());
    }
}

/// Forced layouts reach the model as asked, and forward values and gradients agree (float64).
#[test]
fn forced_layouts_reach_the_model_and_agree() {
    let cnn = Cnn::new();
    let seen = RefCell::new(Vec::new());
    let model = FnModel::new(|x: &Tensor| {
        seen.borrow_mut().push(is_channels_last(x));
        cnn.apply(x)
    });
    let x = input();
    let run = |format| {
        seen.borrow_mut().clear();
        let ev = Evaluator::new(&model, options(format, 4)).unwrap();
        let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap();
        let batch = Expanded::repeat(&p.inputs, 6);
        let f = ev.forward(&p, &batch).unwrap();
        let g = ev.gradients(&p, &batch).unwrap();
        // `prepare` runs no model call of its own: every call is a chunk.
        let calls: Vec<bool> = seen.borrow().to_vec();
        (f, g, calls)
    };
    let (f_c, g_c, calls_c) = run(MemoryFormat::Contiguous);
    let (f_l, g_l, calls_l) = run(MemoryFormat::ChannelsLast);
    assert!(calls_c.iter().all(|&c| !c), "{calls_c:?}");
    assert!(calls_l.iter().all(|&c| c), "{calls_l:?}");
    assert!(max_abs_diff(&f_c, &f_l) < 1e-12);
    assert!(max_abs_diff(&g_c.grads[0], &g_l.grads[0]) < 1e-12);
    assert!(g_l.grads[0].is_contiguous(), "gradients are handed on contiguous");
}

/// `Auto` alternates the layouts over six chunks (the first of each pays set-up costs, the best
/// of the others is compared), computes the loser's chunks again in the winner, then keeps one
/// layout for the rest of the call, and for later calls on the same model and input shape.
#[test]
fn auto_times_both_layouts_then_keeps_one() {
    // An input shape no other test uses: layout decisions are remembered per model and shape.
    let cnn = Cnn::sized(6, 10);
    let seen = RefCell::new(Vec::new());
    let model = FnModel::new(|x: &Tensor| {
        seen.borrow_mut().push((x.size()[0], is_channels_last(x)));
        cnn.apply(x)
    });
    let x = input_sized(6, 10);
    let ev = Evaluator::new(&model, options(MemoryFormat::Auto, 8)).unwrap();
    let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap();
    assert_eq!(ev.forward_layout(), None);
    let out = ev.forward(&p, &Expanded::repeat(&p.inputs, 8)).unwrap();
    let chosen = ev.forward_layout().expect("40 rows leave room for the trial");
    let calls: Vec<(i64, bool)> = seen.borrow().to_vec();
    // 40 rows: six alternating trial chunks of 40/6 = 6 rows (at least half of 8), the loser's
    // three chunks again in the chosen layout (no result depends on the trial), then 4 rows.
    assert_eq!(calls.len(), 10, "{calls:?}");
    let alternating: Vec<(i64, bool)> = (0..6).map(|i| (6, i % 2 == 0)).collect();
    assert_eq!(&calls[..6], &alternating[..], "three chunks per layout, channels-last first");
    let want = chosen == Layout::ChannelsLast;
    assert_eq!(&calls[6..], &[(6, want), (6, want), (6, want), (4, want)], "the loser's chunks computed again, then the rest");
    let reference = cnn.apply(&x.repeat([8, 1, 1, 1])).select(1, 0);
    assert!(max_abs_diff(&out, &reference) < 1e-12);
    // Gradients are timed separately.
    assert_eq!(ev.gradient_layout(), None);

    // A later call on the same model and shape starts from the remembered layout: no trial.
    seen.borrow_mut().clear();
    let again = Evaluator::new(&model, options(MemoryFormat::Auto, 8)).unwrap();
    let p = again.prepare(&Inputs::new(x), &Target::Class(0)).unwrap();
    let _ = again.forward(&p, &Expanded::repeat(&p.inputs, 8)).unwrap();
    assert_eq!(again.forward_layout(), Some(chosen));
    let calls: Vec<(i64, bool)> = seen.borrow().to_vec();
    assert!(calls.iter().all(|&(r, cl)| cl == want && r == 8), "{calls:?}");
}

/// A model that cannot take channels-last inputs (it calls `view`) works under `Auto`: the
/// failed trial chunk is run again contiguous and that layout is kept. Forced channels-last
/// reports the model's error.
#[test]
fn auto_falls_back_when_the_model_rejects_channels_last() {
    let w = (Tensor::arange(3 * 8 * 8 * 2, (Kind::Double, Device::Cpu)) * 0.01).sin().reshape([192, 2]);
    let model = FnModel::new(|x: &Tensor| x.view([-1, 192]).matmul(&w));
    let x = input();
    let fa = |format| {
        FeatureAblation::params()
            .feature_mask(FeatureMask::grid(8, 8, 4, 4).unwrap())
            .batch(options(format, 3))
            .check()
            .unwrap()
            .attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1))
    };
    let auto = fa(MemoryFormat::Auto).unwrap();
    let contiguous = fa(MemoryFormat::Contiguous).unwrap();
    assert!(max_abs_diff(auto.single().unwrap(), contiguous.single().unwrap()) < 1e-12);
    let err = fa(MemoryFormat::ChannelsLast).unwrap_err();
    assert!(err.to_string().contains("view"), "{err}");

    let ev = Evaluator::new(&model, options(MemoryFormat::Auto, 3)).unwrap();
    let p = ev.prepare(&Inputs::new(x), &Target::Class(0)).unwrap();
    let _ = ev.forward(&p, &Expanded::repeat(&p.inputs, 4)).unwrap();
    assert_eq!(ev.forward_layout(), Some(Layout::Contiguous));
}

/// A caller's mistake caught on the first chunk (here a class index the model does not have)
/// is reported as such even when that chunk ran a trial candidate: the chunk is run again the
/// plain way, fails the same way, and the error comes back without any layout decision made or
/// remembered. The next call on the same model and shape runs the whole trial.
#[test]
fn a_wrong_target_fails_on_the_first_chunk_and_decides_nothing() {
    // An input shape no other test uses: layout decisions are remembered per model and shape.
    let cnn = Cnn::sized(6, 12);
    let seen = RefCell::new(Vec::new());
    let model = FnModel::new(|x: &Tensor| {
        seen.borrow_mut().push((x.size()[0], is_channels_last(x)));
        cnn.apply(x)
    });
    let x = input_sized(6, 12);
    let ev = Evaluator::new(&model, options(MemoryFormat::Auto, 8)).unwrap();
    let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::Class(7)).unwrap();
    assert!(seen.borrow().is_empty(), "prepare runs no model call for a class target");
    let err = ev.forward(&p, &Expanded::repeat(&p.inputs, 8)).unwrap_err();
    assert!(matches!(err, AttribError::TargetOutOfRange(_)), "{err}");
    assert!(err.to_string().contains("class index 7"), "{err}");
    // The channels-last trial chunk (6 rows), then the first rows again, contiguous, in a chunk
    // of the chunk size; nothing after.
    assert_eq!(*seen.borrow(), vec![(6, true), (8, false)]);
    assert_eq!(ev.forward_layout(), None);

    seen.borrow_mut().clear();
    let again = Evaluator::new(&model, options(MemoryFormat::Auto, 8)).unwrap();
    let p = again.prepare(&Inputs::new(x), &Target::Class(2)).unwrap();
    let _ = again.forward(&p, &Expanded::repeat(&p.inputs, 8)).unwrap();
    let calls: Vec<bool> = seen.borrow().iter().take(6).map(|&(_, cl)| cl).collect();
    assert_eq!(calls, vec![true, false, true, false, true, false], "the trial runs in full");
}

/// Every perturbation and gradient method gives the same attributions in both layouts.
#[test]
fn methods_agree_across_layouts() {
    let cnn = Cnn::new();
    let model = FnModel::new(|x: &Tensor| cnn.apply(x));
    let inputs = Inputs::new(input());
    let target = Target::PerSample(vec![0, 1, 2, 1, 0]);
    let methods = |format: MemoryFormat| -> Vec<Box<dyn Attribution>> {
        let b = options(format, 7);
        vec![
            Box::new(FeatureAblation::params().feature_mask(FeatureMask::grid(8, 8, 2, 2).unwrap()).batch(b).check().unwrap()),
            Box::new(Occlusion::params().window(&[3, 4, 4]).stride(&[3, 2, 2]).batch(b).check().unwrap()),
            Box::new(IntegratedGradients::params().n_steps(16).batch(b).check().unwrap()),
        ]
    };
    for (a, b) in methods(MemoryFormat::Contiguous).iter().zip(methods(MemoryFormat::ChannelsLast)) {
        let x = a.attribute(&model, &inputs, &target).unwrap();
        let y = b.attribute(&model, &inputs, &target).unwrap();
        let d = max_abs_diff(x.single().unwrap(), y.single().unwrap());
        assert!(d < 1e-12, "{}: {d}", a.info().name);
    }
}

#[test]
fn memory_format_parses_and_rejects_unknown_names() {
    assert_eq!("auto".parse::<MemoryFormat>().unwrap(), MemoryFormat::Auto);
    assert_eq!("channels-last".parse::<MemoryFormat>().unwrap(), MemoryFormat::ChannelsLast);
    assert_eq!("contiguous".parse::<MemoryFormat>().unwrap(), MemoryFormat::Contiguous);
    let err = "nhwc".parse::<MemoryFormat>().unwrap_err().to_string();
    assert!(err.contains("auto, contiguous or channels-last"), "{err}");
}

/// The host allocator settings are process-wide, so they are the binary's choice: a CPU
/// evaluator does not apply them, `host_alloc::tune()` does (Linux with glibc, unless the
/// environment opts out). The only test of this binary that calls `tune`.
#[test]
fn host_allocator_is_tuned_only_on_request() {
    let model = FnModel::new(|x: &Tensor| x.sum_dim_intlist([1i64].as_slice(), false, Kind::Double));
    let ev = Evaluator::new(&model, BatchOptions::default()).unwrap();
    let x = Tensor::ones([4, 3], (Kind::Double, Device::Cpu));
    let p = ev.prepare(&Inputs::new(x), &Target::None).unwrap();
    let _ = ev.forward(&p, &Expanded::repeat(&p.inputs, 3)).unwrap();
    assert!(!attrib::tensor::host_alloc::tuned(), "the library changed the allocator settings on its own");
    let opted_out = ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES", "ATTRIB_MALLOC_TUNING"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    let applied = attrib::tensor::host_alloc::tune();
    assert_eq!(applied, attrib::tensor::host_alloc::tuned());
    if cfg!(all(target_os = "linux", target_env = "gnu")) && !opted_out {
        assert!(applied);
    }
}

/// A model that writes into its input (here: doubles it in place) still gets correct perturbed
/// rows in every chunk: the perturbation engine notices the write (the tensor's version counter)
/// and rebuilds its reused buffer instead of only undoing its own changes.
#[test]
fn perturbed_rows_survive_a_model_that_writes_into_its_input() {
    let w = (Tensor::arange(3 * 8 * 8, (Kind::Double, Device::Cpu)) * 0.05).cos().reshape([1, 3, 8, 8]);
    let inplace = FnModel::new(|x: &Tensor| {
        let mut y = x.shallow_clone();
        let _ = y.f_mul_scalar_(2.0).unwrap();
        (&y * &w).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double).unsqueeze(1)
    });
    let pure = FnModel::new(|x: &Tensor| (x * 2.0 * &w).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double).unsqueeze(1));
    let x = input();
    for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
        for max_batch in [5, 10, 7] {
            let run = |model: &FnModel| {
                FeatureAblation::params()
                    .feature_mask(FeatureMask::grid(8, 8, 2, 2).unwrap())
                    .batch(options(format, max_batch))
                    .check()
                    .unwrap()
                    .attribute(model, &Inputs::new(x.shallow_clone()), &Target::Class(0))
                    .unwrap()
            };
            let got = run(&inplace);
            let want = run(&pure);
            let d = max_abs_diff(got.single().unwrap(), want.single().unwrap());
            assert!(d < 1e-12, "{format:?}, chunks of {max_batch}: {d}");
            // And the closed form: 2·w·x summed over each 2×2 patch (all channels).
            let per_elem = &x * 2.0 * &w;
            let patch = per_elem.sum_dim_intlist([1i64].as_slice(), true, Kind::Double).avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>) * 4.0;
            let closed = patch.upsample_nearest2d([8, 8], None, None).expand([5, 3, 8, 8], false);
            assert!(max_abs_diff(got.single().unwrap(), &closed) < 1e-9);
        }
    }
}
