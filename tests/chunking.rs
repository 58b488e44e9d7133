//! The chunked evaluator gives the same result as one big batch, whatever the chunk size:
//! forward values and gradients of the target outputs, for expanded batches (several blocks of
//! scaled copies, as integration paths make), per-row targets, and two-input models.

use attrib::prelude::*;
use attrib::{Evaluator, Expanded};
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

/// Deterministic pseudo-random values in [-1, 1) from a seed (xorshift), so weights do not
/// depend on libtorch's global generator (tests run in parallel threads).
fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn tensor(seed: u64, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    Tensor::from_slice(&values(seed, n as usize)).reshape(shape)
}

/// A random two-layer network in float64 (so chunking cannot hide behind float32 rounding).
struct Net {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    relu: bool,
}

impl Net {
    fn new(seed: u64, d: i64, h: i64, c: i64, relu: bool) -> Net {
        Net { w1: tensor(seed, &[d, h]), b1: tensor(seed + 1, &[h]), w2: tensor(seed + 2, &[h, c]), relu }
    }
    fn apply(&self, x: &Tensor) -> Tensor {
        let z = x.matmul(&self.w1) + &self.b1;
        let a = if self.relu { z.relu() } else { z.tanh() };
        a.matmul(&self.w2)
    }
}

fn expanded_scaled<'a>(inputs: &'a [Tensor], blocks: i64) -> Expanded<'a> {
    let n = inputs[0].size()[0];
    Expanded::new(n, n * blocks, move |s, e| {
        let rows = Tensor::arange_start(s, e, (Kind::Int64, Device::Cpu));
        let sample = rows.remainder(n);
        let scale = (rows.divide_scalar_mode(n, "floor") + 1).to_kind(Kind::Double) / blocks as f64;
        Ok(inputs
            .iter()
            .map(|x| {
                let shape: Vec<i64> = std::iter::once(e - s).chain(std::iter::repeat(1).take(x.dim() - 1)).collect();
                x.index_select(0, &sample) * scale.reshape(&shape)
            })
            .collect())
    })
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a - b).abs().max().double_value(&[]) / scale
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn chunk_size_does_not_change_results(
        seed in 0u64..10_000,
        n in 1i64..7,
        d in 1i64..6,
        h in 1i64..9,
        c in 1i64..5,
        blocks in 1i64..6,
        chunk in 1usize..40,
        relu in any::<bool>(),
        per_row in any::<bool>(),
    ) {
        let net = Net::new(seed, d, h, c, relu);
        let model = FnModel::new(move |x: &Tensor| net.apply(x));
        let x = tensor(seed + 7, &[n, d]);
        let target = if per_row {
            Target::PerSample((0..n).map(|i| (i * 7 + seed as i64) % c).collect())
        } else {
            Target::Class(c - 1)
        };
        let inputs = Inputs::new(x);
        let whole = Evaluator::new(&model, BatchOptions::with_max_batch(usize::MAX)).unwrap();
        let chunked = Evaluator::new(&model, BatchOptions::with_max_batch(chunk)).unwrap();
        let auto = Evaluator::new(&model, BatchOptions::default()).unwrap();
        let p = whole.prepare(&inputs, &target).unwrap();
        let batch = expanded_scaled(&p.inputs, blocks);

        let g_whole = whole.gradients(&p, &batch).unwrap();
        for ev in [&chunked, &auto] {
            let g = ev.gradients(&p, &batch).unwrap();
            prop_assert_eq!(g.grads[0].size(), vec![n * blocks, d]);
            prop_assert!(rel_err(&g.grads[0], &g_whole.grads[0]) < 1e-12);
            prop_assert!(rel_err(&g.outputs, &g_whole.outputs) < 1e-12);
            let f = ev.forward(&p, &batch).unwrap();
            prop_assert!(rel_err(&f, &g_whole.outputs) < 1e-12);
        }
        prop_assert_eq!(chunked.chunk_rows(), Some(chunk));
    }

    #[test]
    fn two_input_models_chunk_consistently(seed in 0u64..10_000, n in 1i64..6, blocks in 1i64..4, chunk in 1usize..12) {
        let a = Net::new(seed, 3, 4, 2, true);
        let b = Net::new(seed + 100, 2, 4, 2, false);
        let model = FnModel::multi(move |xs: &[Tensor]| a.apply(&xs[0]) * b.apply(&xs[1]));
        let inputs = Inputs::multi(vec![tensor(seed + 5, &[n, 3]), tensor(seed + 6, &[n, 2])]);
        let whole = Evaluator::new(&model, BatchOptions::with_max_batch(usize::MAX)).unwrap();
        let chunked = Evaluator::new(&model, BatchOptions::with_max_batch(chunk)).unwrap();
        let p = whole.prepare(&inputs, &Target::Class(1)).unwrap();
        let batch = expanded_scaled(&p.inputs, blocks);
        let g1 = whole.gradients(&p, &batch).unwrap();
        let g2 = chunked.gradients(&p, &batch).unwrap();
        for k in 0..2 {
            prop_assert!(rel_err(&g2.grads[k], &g1.grads[k]) < 1e-12);
        }
    }
}

/// Gradients from the evaluator equal autograd on each row alone: rows are independent.
#[test]
fn gradients_are_per_row() {
    let net = Net::new(3, 4, 5, 3, false);
    let x = tensor(9, &[5, 4]);
    let expected: Vec<Tensor> = (0..5)
        .map(|i| {
            let xi = x.narrow(0, i, 1).detach().set_requires_grad(true);
            let y = net.apply(&xi).select(1, 2).sum(Kind::Double);
            Tensor::run_backward(&[y], &[&xi], false, false).pop().unwrap()
        })
        .collect();
    let expected = Tensor::cat(&expected, 0);
    let model = FnModel::new(move |x: &Tensor| net.apply(x));
    let ev = Evaluator::new(&model, BatchOptions::with_max_batch(2)).unwrap();
    let p = ev.prepare(&Inputs::new(x), &Target::Class(2)).unwrap();
    let g = ev.gradients(&p, &Expanded::identity(&p.inputs)).unwrap();
    assert!(rel_err(&g.grads[0], &expected) < 1e-12);
}

/// The automatic chunk size respects an explicit memory budget: a tiny budget forces
/// one-row chunks, and results stay identical.
#[test]
fn memory_budget_bounds_the_chunk_size() {
    let net = Net::new(5, 64, 32, 4, true);
    let x = tensor(1, &[40, 64]);
    let model = FnModel::new(move |x: &Tensor| net.apply(x));
    let tiny = Evaluator::new(&model, BatchOptions { max_batch: None, memory_budget: Some(1), ..BatchOptions::default() }).unwrap();
    let roomy = Evaluator::new(&model, BatchOptions { max_batch: None, memory_budget: Some(1 << 30), ..BatchOptions::default() }).unwrap();
    let inputs = Inputs::new(x);
    let p = tiny.prepare(&inputs, &Target::Class(0)).unwrap();
    let batch = Expanded::repeat(&p.inputs, 10);
    let a = tiny.gradients(&p, &batch).unwrap();
    let b = roomy.gradients(&p, &batch).unwrap();
    assert_eq!(tiny.chunk_rows(), Some(1));
    assert_eq!(roomy.chunk_rows(), Some(attrib::tensor::memory::CPU_MAX_ROWS), "1 GiB holds the CPU's largest chunk of a 64-wide MLP");
    assert!(rel_err(&a.grads[0], &b.grads[0]) < 1e-12);
}

/// A small CPU job is sized without a probe chunk (its inputs are tiny against the budget), and
/// a short remainder joins the last chunk instead of costing a model call of its own; the result
/// is that of one big batch.
#[test]
fn small_jobs_skip_the_probe_and_absorb_a_short_tail() {
    let net = Net::new(11, 10, 6, 3, true);
    let sizes = std::cell::RefCell::new(Vec::new());
    let model = FnModel::new(|x: &Tensor| {
        sizes.borrow_mut().push(x.size()[0]);
        net.apply(x)
    });
    let x = tensor(5, &[16, 10]);
    let ev = Evaluator::new(&model, BatchOptions::default()).unwrap();
    let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::Class(2)).unwrap();
    sizes.borrow_mut().clear();
    let out = ev.forward(&p, &Expanded::repeat(&p.inputs, 65)).unwrap();
    assert_eq!(*sizes.borrow(), vec![256, 256, 256, 272], "1040 rows: no 2-row probe, 16-row tail absorbed");
    let want = net.apply(&x.repeat([65, 1])).select(1, 2);
    assert!(rel_err(&out, &want) < 1e-12);
}

/// A scalar-output model that returns a view of its input (`x.select(1, 0)`,
/// `x.narrow(1, 0, 1).view([-1])`): the perturbation engine builds every chunk in one reused
/// buffer, and the outputs of earlier chunks must not change when it does. Feature ablation and
/// occlusion give the closed form `x[i, 0]` on element 0 and zero elsewhere, at any chunk size,
/// in float64 and float32.
#[test]
fn outputs_that_view_the_input_survive_the_perturbation_buffer() {
    for kind in [Kind::Double, Kind::Float] {
        let x = tensor(21, &[3, 6]).to_kind(kind);
        let want = Tensor::zeros([3, 6], (kind, Device::Cpu));
        want.narrow(1, 0, 1).copy_(&x.narrow(1, 0, 1));
        for view in [0, 1] {
            let model = FnModel::new(move |x: &Tensor| if view == 0 { x.select(1, 0) } else { x.narrow(1, 0, 1).view([-1]) });
            for max_batch in [1usize, 4, 5, 7, 100] {
                let batch = BatchOptions::with_max_batch(max_batch);
                let inputs = Inputs::new(x.shallow_clone());
                let ablation = FeatureAblation::params().batch(batch).check().unwrap().attribute(&model, &inputs, &Target::None).unwrap();
                let occlusion =
                    Occlusion::params().window(&[1]).batch(batch).check().unwrap().attribute(&model, &inputs, &Target::None).unwrap();
                for (name, got) in [("ablation", ablation.single().unwrap()), ("occlusion", occlusion.single().unwrap())] {
                    let d = (got - &want).abs().max().double_value(&[]);
                    assert!(d == 0.0, "{name}, view {view}, {kind:?}, chunks of {max_batch}: off by {d}\n{got}");
                }
            }
        }
    }
}

/// NoiseTunnel over feature ablation with a per-row mask and a per-row baseline (`[N, ...]`):
/// the wrapped method is told its rows are stacked copies, so mask and baseline follow each
/// copy's rows; with zero noise the result is the ablation itself, at any chunk size.
#[test]
fn noise_tunnel_tiles_per_row_masks_and_baselines_over_its_copies() {
    let net = Net::new(31, 6, 5, 3, true);
    let model = FnModel::new(move |x: &Tensor| net.apply(x));
    let x = tensor(32, &[3, 6]);
    let ids = Tensor::from_slice(&[0i64, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2, 5, 5, 5, 7, 7, 7]).reshape([3, 6]);
    let base = tensor(33, &[3, 6]) * 0.1;
    for max_batch in [2usize, 5, 64] {
        let fa = || {
            FeatureAblation::params()
                .feature_mask(FeatureMask::new(ids.shallow_clone()).unwrap())
                .baselines(Baseline::Tensor(base.shallow_clone()))
                .batch(BatchOptions::with_max_batch(max_batch))
                .check()
                .unwrap()
        };
        let target = Target::PerSample(vec![0, 2, 1]);
        let direct = fa().attribute(&model, &Inputs::new(x.shallow_clone()), &target).unwrap();
        let nt = NoiseTunnel::params().stdev(0.0).nt_samples(3).check(Box::new(fa())).unwrap();
        let smooth = nt.attribute(&model, &Inputs::new(x.shallow_clone()), &target).unwrap();
        assert!(rel_err(smooth.single().unwrap(), direct.single().unwrap()) < 1e-12, "chunks of {max_batch}");
    }
}
