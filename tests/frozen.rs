//! The frozen, inference-optimised copy of a TorchScript model (`Model::inference_model`):
//! the same function as the model, used by the evaluator for forward-only work where it is
//! faster, never for gradients, never after a dtype conversion.

use attrib::prelude::*;
use attrib::{Evaluator, Expanded, FrozenModule};
use attrib_tests::{load_model, max_rel_err};
use std::cell::Cell;
use tch::{Kind, Tensor};

#[test]
fn frozen_copy_computes_the_same_function() {
    for name in ["cnn", "mlp", "two_input", "scalar_out"] {
        let fx = load_model(name);
        let frozen = fx.model.frozen().unwrap_or_else(|| panic!("{name}: a plain TorchScript model can be frozen"));
        let want = tch::no_grad(|| fx.model.forward(&fx.inputs, &[])).unwrap();
        let got = tch::no_grad(|| frozen.forward(&fx.inputs, &[])).unwrap();
        assert_eq!(got.size(), want.size(), "{name}");
        let err = max_rel_err(&got, &want);
        assert!(err < 1e-5, "{name}: frozen copy differs by {err:e}");
    }
}

#[test]
fn frozen_copy_takes_tensor_inputs_only_and_disappears_after_to_kind() {
    let fx = load_model("extra_arg");
    let frozen = fx.model.frozen().expect("freezable");
    let extra = vec![ForwardArg::Tensor(fx.extra[0].shallow_clone())];
    let err = frozen.forward(&fx.inputs, &extra).unwrap_err().to_string();
    assert!(err.contains("tensor inputs only"), "{err}");

    let mut fx = load_model("cnn");
    assert!(fx.model.inference_model().is_some());
    fx.model.to_kind(Kind::Double).unwrap();
    assert!(fx.model.inference_model().is_none(), "the copy would keep float32");
}

#[test]
fn missing_or_corrupt_files_are_errors() {
    let err = attrib::ModelFile::read("/nonexistent/model.pt").err().unwrap();
    assert!(matches!(err, attrib::AttribError::ModelNotFound { .. }), "{err}");
    let corrupt = attrib_tests::scratch_dir().join("corrupt_frozen.pt");
    std::fs::write(&corrupt, [7u8; 64]).unwrap();
    let file = attrib::ModelFile::read(&corrupt).unwrap();
    let err = FrozenModule::load(&file, tch::Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("cannot freeze") && err.contains("corrupt_frozen.pt"), "{err}");
}

/// Counts which model runs each chunk.
struct Counting<'a> {
    model: &'a TorchScriptModel,
    frozen: CountingFrozen<'a>,
    plain_calls: Cell<usize>,
    plain_largest: Cell<i64>,
}

struct CountingFrozen<'a> {
    inner: &'a FrozenModule,
    calls: Cell<usize>,
    /// Rows of the largest chunk run.
    largest: Cell<i64>,
}

impl Model for CountingFrozen<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> attrib::Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        self.largest.set(self.largest.get().max(inputs[0].size()[0]));
        self.inner.forward(inputs, extra)
    }
}

impl Model for Counting<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> attrib::Result<Tensor> {
        self.plain_calls.set(self.plain_calls.get() + 1);
        self.plain_largest.set(self.plain_largest.get().max(inputs[0].size()[0]));
        self.model.forward(inputs, extra)
    }
    fn inference_model(&self) -> Option<&dyn Model> {
        Some(&self.frozen)
    }
}

/// A fan-out large enough to repay freezing times the frozen copy with the other candidates;
/// whichever wins, outputs and attributions equal the plain model's to float32 rounding, and
/// gradients never use the copy.
#[test]
fn evaluator_times_the_frozen_copy_and_results_do_not_change() {
    let fx = load_model("cnn");
    let frozen = fx.model.frozen().unwrap();
    let counting = Counting {
        model: &fx.model,
        frozen: CountingFrozen { inner: frozen, calls: Cell::new(0), largest: Cell::new(0) },
        plain_calls: Cell::new(0),
        plain_largest: Cell::new(0),
    };
    let options = BatchOptions { max_batch: Some(6), ..BatchOptions::default() };
    let ev = Evaluator::new(&counting, options).unwrap();
    let p = ev.prepare(&fx.inputs(), &Target::Class(1)).unwrap();
    let batch = Expanded::repeat(&p.inputs, 20);
    let out = ev.forward(&p, &batch).unwrap();
    assert!(counting.frozen.calls.get() >= 2, "the frozen copy ran its trial chunks");
    assert!(ev.forward_variant().is_some());
    // The copy runs chunks of half the size (INFERENCE_ROWS_DIVISOR), the model full ones.
    assert_eq!(counting.plain_largest.get(), 6);
    assert!(counting.frozen.largest.get() <= 3, "frozen chunks of {} rows", counting.frozen.largest.get());
    let plain = {
        let ev = Evaluator::new(&fx.model, BatchOptions { inference_copy: false, ..options }).unwrap();
        let p = ev.prepare(&fx.inputs(), &Target::Class(1)).unwrap();
        let out = ev.forward(&p, &Expanded::repeat(&p.inputs, 20)).unwrap();
        out
    };
    assert!(max_rel_err(&out, &plain) < 1e-5);

    let before = counting.frozen.calls.get();
    let _ = ev.gradients(&p, &batch).unwrap();
    assert_eq!(counting.frozen.calls.get(), before, "gradients never run through the frozen copy");

    // Feature ablation on the same model with and without the copy: float32 differences of
    // close outputs, bounded relative to the largest attribution.
    let fa = |inference_copy: bool| {
        FeatureAblation::params()
            .feature_mask(FeatureMask::grid(12, 12, 2, 2).unwrap())
            .batch(BatchOptions { max_batch: Some(8), inference_copy, ..BatchOptions::default() })
            .check()
            .unwrap()
            .attribute(&fx.model, &fx.inputs(), &Target::Class(1))
            .unwrap()
    };
    let (a, b) = (fa(true), fa(false));
    let (a, b) = (a.single().unwrap(), b.single().unwrap());
    let scale = b.abs().max().double_value(&[]);
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff <= 1e-4 * scale, "{diff:e} vs largest attribution {scale:e}");
}

/// A copy made already (by `attrib::tensor::warm::warm_up`, or an earlier call) costs nothing
/// more to use, so the evaluator times it even on fan-outs too short to repay making one (under
/// four chunks); gradient warm-ups make no copy.
#[test]
fn a_copy_made_by_the_warm_up_is_timed_on_short_fan_outs() {
    use attrib::tensor::warm::{warm_up, Work};

    struct Ready<'a> {
        model: &'a TorchScriptModel,
        frozen: CountingFrozen<'a>,
    }
    impl Model for Ready<'_> {
        fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> attrib::Result<Tensor> {
            self.model.forward(inputs, extra)
        }
        fn inference_model(&self) -> Option<&dyn Model> {
            Some(&self.frozen)
        }
        fn inference_model_ready(&self) -> bool {
            self.model.inference_model_ready()
        }
    }

    let fx = load_model("cnn");
    assert!(!fx.model.inference_model_ready(), "made on first request");
    let report = warm_up(&fx.model, &fx.inputs(), &BatchOptions::default(), Work::Gradients);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(!fx.model.inference_model_ready(), "gradient work needs no copy");
    let report = warm_up(&fx.model, &fx.inputs(), &BatchOptions::default(), Work::Forward);
    assert!(report.steps.iter().any(|s| s == "inference copy"), "{:?}", report.steps);
    assert!(fx.model.inference_model_ready());

    let ready = Ready {
        model: &fx.model,
        frozen: CountingFrozen { inner: fx.model.frozen().unwrap(), calls: Cell::new(0), largest: Cell::new(0) },
    };
    let options = BatchOptions { max_batch: Some(6), ..BatchOptions::default() };
    let ev = Evaluator::new(&ready, options).unwrap();
    let p = ev.prepare(&fx.inputs(), &Target::Class(1)).unwrap();
    // Three chunks of 6 rows: long enough for a trial, too short to repay making a copy.
    let out = ev.forward(&p, &Expanded::repeat(&p.inputs, 18 / p.n)).unwrap();
    assert!(ready.frozen.calls.get() >= 2, "the ready copy ran its trial chunks");
    let plain = tch::no_grad(|| fx.model.forward(&fx.inputs, &[])).unwrap().select(1, 1).repeat([18 / p.n]);
    assert!(max_rel_err(&out, &plain) < 1e-5);
}
