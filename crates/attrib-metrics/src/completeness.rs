//! The completeness gap: how far the attributions of a row are from summing to the change of the
//! output between the baseline and the input (the completeness axiom of integrated gradients,
//! Sundararajan et al. 2017; the efficiency axiom of Shapley values; Captum's convergence delta is
//! the signed version for the methods that report one).
//!
//! Per row, with `Σ Φ` the sum of the attributions over every element of every input and
//! `Δf = f(x) − f(b)` the change of the target's **raw** output (the output the methods explain,
//! no softmax):
//!
//! ```text
//! gap      = Σ Φ − Δf                 (signed)
//! |gap|    = |Σ Φ − Δf|
//! relative = |Σ Φ − Δf| / |Δf|        (None where Δf = 0)
//! ```
//!
//! For a distribution of baseline samples (GradientSHAP, DeepLIFT-SHAP) `f(b)` is the mean of
//! the output over the samples, which is what those methods' attributions sum to in expectation.
//! Any method can be measured: exact methods (integrated gradients on a linear model,
//! DeepLIFT on piecewise-linear networks, exact Shapley values) give 0, local methods (saliency)
//! have no reason to.
//!
//! `f(x)` and `f(b)` are one expanded batch through the shared [`Evaluator`] (block 0 the inputs,
//! then one block per baseline sample).

use attrib_core::{AttribError, BatchOptions, Baselines, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::{ChunkRows, Evaluator, Expanded};
use tch::{Device, Kind, Tensor};

/// Parameters of [`completeness_gap`].
#[derive(Debug, Default)]
pub struct CompletenessParams {
    /// The baseline the attributions were computed against (default zeros); a distribution of
    /// baseline samples is averaged over.
    pub baselines: Baselines,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

/// The result of [`completeness_gap`], one value per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Completeness {
    /// `Σ Φ`, the sum of the attributions.
    pub sum: Vec<f64>,
    /// `Δf = f(x) − f(b)`.
    pub delta: Vec<f64>,
    /// `Σ Φ − Δf`.
    pub gap: Vec<f64>,
    /// `|Σ Φ − Δf|`.
    pub abs_gap: Vec<f64>,
    /// `|Σ Φ − Δf| / |Δf|`, `None` where `Δf = 0`.
    pub relative: Vec<Option<f64>>,
}

/// The completeness gap of `attributions` (one tensor per input, shaped like it) for `target` of
/// `model` at `inputs` against `params.baselines`; see the [module docs](self).
pub fn completeness_gap(
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    attributions: &[Tensor],
    params: &CompletenessParams,
) -> Result<Completeness> {
    let eval = Evaluator::new(model, params.batch)?;
    let p = eval.prepare(inputs, target)?;
    crate::infidelity::check_attributions(attributions, &p.inputs)?;
    let n = p.n;
    let sums = crate::feature_scores(attributions, false)?.f_sum_dim_intlist(1, false, Kind::Double).ctx("summing attributions")?;
    let sum = attrib_tensor::convert::tensor_to_vec_f64(&sums)?;
    // Baseline samples per input: [S, ...] shared by all rows, or [N, ...] per row (S = 1 block).
    let (references, shared) = if params.baselines.is_distribution() {
        (params.baselines.samples(&p.inputs)?, true)
    } else {
        (params.baselines.resolve(&p.inputs)?, false)
    };
    let blocks = if shared { references.first().map_or(1, |r| r.size()[0]) } else { 1 };
    if shared && references.iter().any(|r| r.size()[0] != blocks) {
        let counts: Vec<i64> = references.iter().map(|r| r.size()[0]).collect();
        return Err(AttribError::param("baselines", format!("every input needs the same number of baseline samples, got {counts:?}")));
    }
    let device = p.device;
    let batch = Expanded::new(n, (blocks + 1) * n, |start, end| {
        let chunk = ChunkRows::new(start, end, n, device);
        let samples = chunk.samples()?;
        let block = chunk.blocks()?;
        let is_input = block.f_eq(0).ctx("indexing rows")?;
        // Row of the reference tensor for each expanded row (block 0 rows take any valid index).
        let reference_row = if shared { block.f_sub_scalar(1).and_then(|b| b.f_clamp_min(0)) } else { Ok(samples.shallow_clone()) }.ctx("indexing rows")?;
        p.inputs
            .iter()
            .zip(&references)
            .map(|(x, b)| {
                let xs = x.f_index_select(0, &samples).ctx("gathering inputs")?;
                let bs = b.f_index_select(0, &reference_row).ctx("gathering baselines")?;
                let mut shape = vec![end - start];
                shape.extend(std::iter::repeat(1).take(x.dim() - 1));
                let pick = is_input.f_reshape(&shape).ctx("indexing rows")?;
                xs.f_where_self(&pick, &bs).ctx("choosing rows")
            })
            .collect()
    })
    .rows_like(&p.inputs);
    let out = eval.forward(&p, &batch)?;
    let out = attrib_tensor::convert::tensor_to_vec_f64(&out.f_to_kind(Kind::Double).and_then(|t| t.f_to_device(Device::Cpu)).ctx("reading outputs")?)?;
    if out.len() != ((blocks + 1) * n) as usize {
        return Err(AttribError::Internal(format!("{} outputs for {} rows", out.len(), (blocks + 1) * n)));
    }
    let n = n as usize;
    let delta: Vec<f64> = (0..n)
        .map(|i| {
            let reference = (1..=blocks as usize).map(|b| out[b * n + i]).sum::<f64>() / blocks as f64;
            out[i] - reference
        })
        .collect();
    let gap: Vec<f64> = sum.iter().zip(&delta).map(|(s, d)| s - d).collect();
    let abs_gap: Vec<f64> = gap.iter().map(|g| g.abs()).collect();
    let relative = abs_gap.iter().zip(&delta).map(|(g, d)| (*d != 0.0).then(|| g / d.abs())).collect();
    Ok(Completeness { sum, delta, gap, abs_gap, relative })
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::{Attribution, Baseline, FnModel};
    use attrib_gradient::{IntegratedGradients, Saliency};
    use proptest::prelude::*;

    /// f(x) = x · w on 5 features (float64), 3 rows.
    fn linear() -> (FnModel<'static>, Tensor, Tensor) {
        let w = Tensor::from_slice(&[2.0f64, -1.0, 0.5, 3.0, -2.5]);
        let wm = w.shallow_clone();
        let model = FnModel::new(move |x: &Tensor| x.matmul(&wm));
        let x = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 6.0, -1.0, 0.5, 2.0, 0.0, 1.0, 0.3, 0.3, 0.3, 0.3, 0.3]).reshape([3, 5]);
        (model, w, x)
    }

    #[test]
    fn integrated_gradients_of_a_linear_model_are_complete() {
        let (model, w, x) = linear();
        let inputs = Inputs::new(x.shallow_clone());
        let ig = IntegratedGradients::params().n_steps(8).baselines(Baseline::Scalar(0.5)).check().unwrap();
        let a = ig.attribute(&model, &inputs, &Target::None).unwrap();
        let params = CompletenessParams { baselines: Baseline::Scalar(0.5).into(), ..Default::default() };
        let c = completeness_gap(&model, &inputs, &Target::None, &a.values, &params).unwrap();
        let want = Vec::<f64>::try_from((&x - 0.5).matmul(&w)).unwrap();
        for i in 0..3 {
            assert!((c.delta[i] - want[i]).abs() < 1e-12, "{:?} vs {want:?}", c.delta);
            assert!(c.abs_gap[i] < 1e-10, "{c:?}");
        }
        // Saliency (Φ = w) misses by Σ w − w · (x − b).
        let sal = Saliency::params().check().unwrap().attribute(&model, &inputs, &Target::None).unwrap();
        let c = completeness_gap(&model, &inputs, &Target::None, &sal.values, &params).unwrap();
        let sum_w = f64::try_from(w.sum(Kind::Double)).unwrap();
        for i in 0..3 {
            assert!((c.gap[i] - (sum_w - want[i])).abs() < 1e-12, "{c:?}");
            assert!((c.abs_gap[i] - (sum_w - want[i]).abs()).abs() < 1e-12);
            assert!((c.relative[i].unwrap() - (sum_w - want[i]).abs() / want[i].abs()).abs() < 1e-12);
        }
    }

    #[test]
    fn baseline_samples_are_averaged_and_zero_change_has_no_relative_gap() {
        let (model, w, x) = linear();
        let inputs = Inputs::new(x.shallow_clone());
        let samples = Tensor::from_slice(&[0.0f64, 1.0, 0.0, 1.0, 0.0, 2.0, -1.0, 0.0, 1.0, 4.0]).reshape([2, 5]);
        // Φ = w ⊙ (x − mean b): sums to f(x) − mean_s f(b_s) for a linear f.
        let mean_b = samples.mean_dim([0i64].as_slice(), true, Kind::Double);
        let attr = (&x - &mean_b) * &w;
        let params = CompletenessParams { baselines: Baseline::Distribution(samples).into(), batch: BatchOptions { max_batch: Some(2), ..Default::default() } };
        let c = completeness_gap(&model, &inputs, &Target::None, &[attr], &params).unwrap();
        assert!(c.abs_gap.iter().all(|g| *g < 1e-12), "{c:?}");
        // The input as its own baseline: Δf = 0, the relative gap is undefined.
        let same = CompletenessParams { baselines: Baseline::Tensor(x.shallow_clone()).into(), ..Default::default() };
        let c = completeness_gap(&model, &inputs, &Target::None, &[x.ones_like()], &same).unwrap();
        assert!(c.relative.iter().all(Option::is_none));
        assert_eq!(c.abs_gap, vec![5.0; 3]);
        let e = completeness_gap(&model, &inputs, &Target::None, &[Tensor::ones([3, 4], (Kind::Double, Device::Cpu))], &same).unwrap_err();
        assert!(e.to_string().contains("must match"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        /// On a random tanh network with a class target: an attribution that spreads Δf over
        /// the features has gap 0, and adding δ to one feature moves the gap by δ.
        #[test]
        fn the_gap_is_the_missing_mass(seed in 0i64..1000, delta in -3.0f64..3.0, j in 0i64..6) {
            tch::manual_seed(seed);
            let w1 = Tensor::randn([6, 5], (Kind::Double, Device::Cpu));
            let w2 = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
            let model = FnModel::new(move |x: &Tensor| x.matmul(&w1).tanh().matmul(&w2));
            let x = Tensor::randn([4, 6], (Kind::Double, Device::Cpu));
            let b = Tensor::randn([1, 6], (Kind::Double, Device::Cpu));
            let df = model.forward(&[x.shallow_clone()], &[]).unwrap().select(1, 1) - model.forward(&[b.shallow_clone()], &[]).unwrap().select(1, 1);
            let spread = (df / 6.0).unsqueeze(1).expand([4, 6], false).contiguous();
            let params = CompletenessParams { baselines: Baseline::Tensor(b).into(), ..Default::default() };
            let inputs = Inputs::new(x);
            let c = completeness_gap(&model, &inputs, &Target::Class(1), &[spread.shallow_clone()], &params).unwrap();
            prop_assert!(c.abs_gap.iter().all(|g| *g < 1e-12), "{:?}", c);
            let bumped = spread.copy();
            let _ = bumped.narrow(1, j, 1).g_add_scalar_(delta);
            let c = completeness_gap(&model, &inputs, &Target::Class(1), &[bumped], &params).unwrap();
            prop_assert!(c.gap.iter().all(|g| (g - delta).abs() < 1e-12), "{:?}", c);
        }
    }
}
