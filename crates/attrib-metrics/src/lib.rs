//! Quality metrics of attributions: deletion and insertion curves, and rank agreement between
//! methods.
//!
//! # Deletion and insertion (Petsiuk et al., 2018, "RISE")
//!
//! For each row, the features are ordered by attribution, largest first (ties keep their index
//! order). With `F` features and `S` steps, step `k = 0..=S` replaces the `m_k = round(k·F/S)`
//! top features:
//!
//! * **deletion**: start from the input and replace the top `m_k` features by the baseline;
//! * **insertion**: start from the baseline and put back the top `m_k` features of the input.
//!
//! The curve records the target's score at each step: its softmax probability when the model
//! output is `[N, C]` with `C > 1`, the raw output otherwise (see [`Softmax`]). The area under
//! the curve is the trapezoid rule over the fraction of features `m_k / F ∈ [0, 1]`. A deletion
//! curve starts at `f(x)` and ends at `f(baseline)`, an insertion curve the other way round.
//! A good attribution gives a **low deletion AUC** (the score drops as soon as the most
//! important features go) and a **high insertion AUC**.
//!
//! With [`DeletionInsertionParams::pixels`] set, inputs with at least three dimensions
//! (`[N, C, H, W]`) are treated as images: features are pixels ranked by the sum of the
//! attribution over channels, and a pixel is replaced in all channels at once.
//!
//! All steps of all rows (and both curves) are evaluated as one [`Expanded`] batch through the
//! shared [`Evaluator`], so chunking follows the memory budget like every method.
//!
//! # Agreement
//!
//! [`rank_correlation`] is Spearman's rank correlation between two attributions of the same
//! rows, per row, with average ranks for ties (see [`spearman`]).
//!
//! # Infidelity and max-sensitivity
//!
//! [`infidelity`](mod@infidelity) and [`sensitivity`] compute Captum's `infidelity` and
//! `sensitivity_max` (Yeh et al. 2019) with seeded noise ([`Noise`]) or replayed perturbations.
//!
//! # Faithfulness correlation
//!
//! [`faithfulness_correlation`] (Bhatt et al. 2020, Quantus' `FaithfulnessCorrelation`): per row,
//! the Pearson correlation between the attribution mass of random feature subsets and the output
//! drop when they are set to the baseline.
//!
//! # Model randomisation
//!
//! [`model_randomization`] is the sanity check of Adebayo et al. (2018): attributions of the
//! trained model against those of copies with randomised weights (cascading from the top layer,
//! or one layer at a time), with [`SobelEdges`] as the model-independent control.
#![warn(missing_docs)]

mod fill;
pub mod faithfulness;
pub mod infidelity;
pub mod perturb;
pub mod randomization;
pub mod sensitivity;

pub use faithfulness::{faithfulness_correlation, FaithfulnessParams};
pub use infidelity::{infidelity, infidelity_with, InfidelityParams, Perturbations};
pub use perturb::Noise;
pub use randomization::{model_randomization, Mode, Randomization, RandomizationParams, SobelEdges};
pub use sensitivity::{sensitivity_max, sensitivity_max_with, Sensitivity, SensitivityParams};

use attrib_core::{AttribError, BatchOptions, Baselines, ForwardArg, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::{Evaluator, Expanded};
use tch::{Device, Kind, Tensor};

/// A model whose `[N, C]` outputs (`C > 1`) are turned into probabilities by a softmax over
/// dimension 1; other outputs (`[N]`, `[N, 1]`) pass through unchanged.
pub struct Softmax<'a>(pub &'a dyn Model);

impl Model for Softmax<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let out = self.0.forward(inputs, extra)?;
        if out.dim() == 2 && out.size()[1] > 1 {
            out.f_softmax(1, out.kind()).ctx("taking the softmax of the model output")
        } else {
            Ok(out)
        }
    }
    fn device(&self) -> Device {
        self.0.device()
    }
    fn describe(&self) -> String {
        format!("softmax({})", self.0.describe())
    }
}

/// Parameters of [`deletion_insertion`].
#[derive(Debug)]
pub struct DeletionInsertionParams {
    /// Number of steps `S` (default 20); the curves have `S + 1` points.
    pub steps: usize,
    /// The value a deleted (or not yet inserted) feature takes (default zeros).
    pub baselines: Baselines,
    /// Treat inputs with at least 3 dimensions as `[N, C, ...]` images: rank pixels by the
    /// channel sum of the attribution and replace whole pixels (default false: every scalar is
    /// a feature).
    pub pixels: bool,
    /// Score with softmax probabilities for `[N, C > 1]` outputs (default true); false scores
    /// the raw output.
    pub probabilities: bool,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl Default for DeletionInsertionParams {
    fn default() -> Self {
        DeletionInsertionParams {
            steps: 20,
            baselines: Baselines::default(),
            pixels: false,
            probabilities: true,
            batch: BatchOptions::default(),
        }
    }
}

/// Deletion and insertion curves of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// The fraction of features replaced at each step, `m_k / F`, from 0 to 1 (`S + 1` values).
    pub fractions: Vec<f64>,
    /// Per row, the target's score at each deletion step (`f(x)` first, `f(baseline)` last).
    pub deletion: Vec<Vec<f64>>,
    /// Per row, the target's score at each insertion step (`f(baseline)` first, `f(x)` last).
    pub insertion: Vec<Vec<f64>>,
    /// Per row, the area under the deletion curve (lower is better).
    pub deletion_auc: Vec<f64>,
    /// Per row, the area under the insertion curve (higher is better).
    pub insertion_auc: Vec<f64>,
}

/// Area under `ys` over `xs` by the trapezoid rule.
pub fn trapezoid(xs: &[f64], ys: &[f64]) -> f64 {
    xs.windows(2).zip(ys.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0).sum()
}

/// Per-row feature scores `[N, F]` of attributions (one tensor per input, batch first), on the
/// CPU as `f64`: every scalar flattened, or with `pixels` the channel sum of inputs with at
/// least 3 dimensions. Inputs are concatenated along the features.
pub fn feature_scores(attributions: &[Tensor], pixels: bool) -> Result<Tensor> {
    let parts = attributions
        .iter()
        .map(|a| {
            let a = a.f_to_kind(Kind::Double).and_then(|a| a.f_to_device(Device::Cpu)).ctx("reading attributions")?;
            let a = if pixels && a.dim() >= 3 { a.f_sum_dim_intlist(1, false, Kind::Double).ctx("summing channels")? } else { a };
            let n = a.size()[0];
            a.f_reshape([n, -1]).ctx("flattening attributions")
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::f_cat(&parts, 1).ctx("joining the attributions of several inputs")
}

/// Deletion and insertion curves of `attributions` (one tensor per input, shaped like it) for
/// `target` of `model` at `inputs`; see the crate documentation for the definitions.
pub fn deletion_insertion(
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    attributions: &[Tensor],
    params: &DeletionInsertionParams,
) -> Result<Curves> {
    if params.steps == 0 {
        return Err(AttribError::param("steps", "deletion/insertion needs at least 1 step (default 20)"));
    }
    let scored = Softmax(model);
    let plain: &dyn Model = model;
    let scorer: &dyn Model = if params.probabilities { &scored } else { plain };
    let eval = Evaluator::new(scorer, params.batch)?;
    let p = eval.prepare(inputs, target)?;
    let device = p.device;
    if attributions.len() != p.inputs.len() {
        return Err(AttribError::InputShape(format!(
            "{} attribution tensors for {} inputs; pass one per input",
            attributions.len(),
            p.inputs.len()
        )));
    }
    for (i, (a, x)) in attributions.iter().zip(&p.inputs).enumerate() {
        if a.size() != x.size() {
            return Err(AttribError::InputShape(format!(
                "the attribution of input {i} has shape {:?}, the input {:?}; they must match",
                a.size(),
                x.size()
            )));
        }
    }
    let n = p.n;
    // The feature shape of each input (without the batch) and its feature count.
    let feature_shapes: Vec<Vec<i64>> = p
        .inputs
        .iter()
        .map(|x| {
            let s = x.size();
            if params.pixels && s.len() >= 3 {
                s[2..].to_vec()
            } else {
                s[1..].to_vec()
            }
        })
        .collect();
    let counts: Vec<i64> = feature_shapes.iter().map(|s| s.iter().product()).collect();
    let f: i64 = counts.iter().sum();
    if f == 0 {
        return Err(AttribError::InputShape("the inputs have no features".into()));
    }
    let scores = feature_scores(attributions, params.pixels)?;
    // Rank of every feature in its row, 0 for the largest attribution; ties keep index order.
    let (_, order) = scores.f_sort_stable(true, 1, true).ctx("ranking features")?;
    let positions = Tensor::f_arange(f, (Kind::Int64, Device::Cpu))
        .and_then(|t| t.f_expand([n, f], false))
        .ctx("ranking features")?;
    let rank = order
        .f_zeros_like()
        .and_then(|z| z.f_scatter(1, &order, &positions))
        .and_then(|r| r.f_to_device(device))
        .ctx("ranking features")?;
    let baselines = params.baselines.resolve(&p.inputs)?;
    let s = params.steps as i64;
    // Features replaced at step k: round(k F / S).
    let replaced: Vec<i64> = (0..=s).map(|k| (2 * k * f + s) / (2 * s)).collect();
    let replaced_t = Tensor::f_from_slice(&replaced).and_then(|t| t.f_to_device(device)).ctx("moving feature counts")?;
    let blocks = 2 * (s + 1);
    let batch = Expanded::new(n, n * blocks, |start, end| {
        let chunk = attrib_tensor::ChunkRows::new(start, end, n, device);
        let sample = chunk.samples()?;
        let block = chunk.blocks()?;
        let step = block.f_remainder(s + 1).ctx("indexing curve rows")?;
        let insertion = block.f_ge(s + 1).ctx("indexing curve rows")?;
        let m = replaced_t.f_index_select(0, &step).ctx("indexing curve rows")?;
        let top = rank
            .f_index_select(0, &sample)
            .and_then(|rk| rk.f_lt_tensor(&m.f_unsqueeze(1)?))
            .ctx("masking features")?;
        // Deletion keeps the input outside the top features, insertion inside them.
        let keep = insertion.f_unsqueeze(1).and_then(|ins| top.f_eq_tensor(&ins)).ctx("masking features")?;
        let rows = end - start;
        let mut offset = 0;
        p.inputs
            .iter()
            .zip(&baselines)
            .zip(feature_shapes.iter().zip(&counts))
            .map(|((x, b), (shape, &count))| {
                let mut mask_shape = vec![rows];
                mask_shape.extend_from_slice(shape);
                let mut mask = keep.f_narrow(1, offset, count).and_then(|k| k.f_reshape(&mask_shape)).ctx("masking features")?;
                offset += count;
                if mask.dim() < x.dim() {
                    mask = mask.f_unsqueeze(1).ctx("masking features")?;
                }
                let xs = x.f_index_select(0, &sample).ctx("gathering inputs")?;
                let bs = b.f_index_select(0, &sample).ctx("gathering baselines")?;
                xs.f_where_self(&mask, &bs).ctx("replacing features")
            })
            .collect()
    });
    let out = eval.forward(&p, &batch)?;
    let values = attrib_tensor::convert::tensor_to_vec_f64(&out)?;
    let fractions: Vec<f64> = replaced.iter().map(|&m| m as f64 / f as f64).collect();
    let (n, s) = (n as usize, s as usize);
    let curve = |i: usize, first_block: usize| -> Vec<f64> { (0..=s).map(|k| values[(first_block + k) * n + i]).collect() };
    let deletion: Vec<Vec<f64>> = (0..n).map(|i| curve(i, 0)).collect();
    let insertion: Vec<Vec<f64>> = (0..n).map(|i| curve(i, s + 1)).collect();
    let deletion_auc = deletion.iter().map(|c| trapezoid(&fractions, c)).collect();
    let insertion_auc = insertion.iter().map(|c| trapezoid(&fractions, c)).collect();
    Ok(Curves { fractions, deletion, insertion, deletion_auc, insertion_auc })
}

/// Ranks of `v` starting at 1, ties given the average of the ranks they span.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation of `a` and `b` (same length): the Pearson correlation of their
/// average ranks. `None` when either is constant (or shorter than 2), where it is undefined.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ra, rb) = (average_ranks(a), average_ranks(b));
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        let (dx, dy) = (x - mean, y - mean);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    Some((sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// Pearson's correlation of `a` and `b` (same length); `None` when either is constant (or
/// shorter than 2).
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let m = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / m, b.iter().sum::<f64>() / m);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    Some((sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's rank correlation between two attributions of the same batch (one tensor per input
/// each), per row, over the features of [`feature_scores`] (channel sums with `pixels`).
/// `None` for a row where either attribution is constant.
pub fn rank_correlation(a: &[Tensor], b: &[Tensor], pixels: bool) -> Result<Vec<Option<f64>>> {
    let (sa, sb) = (feature_scores(a, pixels)?, feature_scores(b, pixels)?);
    if sa.size() != sb.size() {
        return Err(AttribError::InputShape(format!(
            "attributions of shapes {:?} and {:?} cannot be compared",
            sa.size(),
            sb.size()
        )));
    }
    let rows = |t: &Tensor| -> Result<Vec<Vec<f64>>> {
        Vec::<Vec<f64>>::try_from(t).map_err(|e| AttribError::Conversion(e.to_string()))
    };
    let (ra, rb) = (rows(&sa)?, rows(&sb)?);
    Ok(ra.iter().zip(&rb).map(|(x, y)| spearman(x, y)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::{Baseline, FnModel};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    /// f(x) = x · w on 6 features, one scalar per row.
    fn linear() -> (Tensor, Tensor) {
        let w = Tensor::from_slice(&[3.0f32, -1.0, 2.0, 0.5, -2.0, 1.0]);
        let x = Tensor::from_slice(&[1.0f32, 2.0, 1.0, 2.0, 1.0, 1.0, 0.5, 1.0, 2.0, 1.0, 0.5, 3.0]).reshape([2, 6]);
        (w, x)
    }

    #[test]
    fn exact_order_deletes_faster_than_reverse_order() {
        let (w, x) = linear();
        let wm = w.shallow_clone();
        let model = FnModel::new(move |x| x.matmul(&wm));
        let exact = &x * &w; // the exact attribution of a linear model with a zero baseline
        let params = DeletionInsertionParams { steps: 6, ..Default::default() };
        let inputs = Inputs::new(x.shallow_clone());
        let good = deletion_insertion(&model, &inputs, &Target::None, &[exact.shallow_clone()], &params).unwrap();
        let bad = deletion_insertion(&model, &inputs, &Target::None, &[-&exact], &params).unwrap();
        for i in 0..2 {
            assert!(good.deletion_auc[i] < bad.deletion_auc[i], "row {i}: {:?} vs {:?}", good, bad);
            assert!(good.insertion_auc[i] > bad.insertion_auc[i], "row {i}");
        }
        // Curves start at f(x) and end at f(baseline) = 0 (deletion), the other way for insertion.
        let fx = Vec::<f64>::try_from(x.matmul(&w).to_kind(Kind::Double)).unwrap();
        for (i, &f) in fx.iter().enumerate() {
            assert!(close(good.deletion[i][0], f, 1e-6));
            assert!(close(*good.deletion[i].last().unwrap(), 0.0, 1e-6));
            assert!(close(good.insertion[i][0], 0.0, 1e-6));
            assert!(close(*good.insertion[i].last().unwrap(), f, 1e-6));
        }
        assert_eq!(good.fractions, (0..=6).map(|k| k as f64 / 6.0).collect::<Vec<_>>());
    }

    #[test]
    fn curve_values_match_a_hand_computation() {
        // Row [1, 2, 3], weights 1: f = sum. Attribution [3, 1, 2] deletes feature 0, 2, 1.
        let model = FnModel::new(|x| x.sum_dim_intlist(1, false, Kind::Float));
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).reshape([1, 3]);
        let attr = Tensor::from_slice(&[3.0f32, 1.0, 2.0]).reshape([1, 3]);
        let params = DeletionInsertionParams { steps: 3, ..Default::default() };
        let c = deletion_insertion(&model, &Inputs::new(x), &Target::None, &[attr], &params).unwrap();
        assert_eq!(c.deletion[0], vec![6.0, 5.0, 2.0, 0.0]);
        assert_eq!(c.insertion[0], vec![0.0, 1.0, 4.0, 6.0]);
        // Trapezoids over steps of 1/3.
        assert!(close(c.deletion_auc[0], (5.5 + 3.5 + 1.0) / 3.0, 1e-12));
        assert!(close(c.insertion_auc[0], (0.5 + 2.5 + 5.0) / 3.0, 1e-12));
    }

    #[test]
    fn softmax_probabilities_pixels_and_scalar_baseline() {
        // Two classes from an image [N, 2, 2, 2]: logit 1 = sum of channel 0, logit 0 = 0.
        let model = FnModel::new(|x| {
            let s = x.narrow(1, 0, 1).sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
            Tensor::stack(&[s.zeros_like(), s], 1)
        });
        let x = Tensor::ones([3, 2, 2, 2], (Kind::Float, Device::Cpu));
        let attr = Tensor::rand([3, 2, 2, 2], (Kind::Float, Device::Cpu));
        let params = DeletionInsertionParams {
            steps: 4,
            pixels: true,
            baselines: Baseline::Scalar(0.0).into(),
            ..Default::default()
        };
        let c = deletion_insertion(&model, &Inputs::new(x), &Target::Class(1), &[attr], &params).unwrap();
        let p_full = 1.0 / (1.0 + (-4.0f64).exp());
        for i in 0..3 {
            assert!(close(c.deletion[i][0], p_full, 1e-6));
            // Pixels go one at a time (4 pixels, 4 steps): logit 4, 3, 2, 1, 0.
            for (k, v) in c.deletion[i].iter().enumerate() {
                let logit = 4.0 - k as f64;
                assert!(close(*v, 1.0 / (1.0 + (-logit).exp()), 1e-6), "step {k}: {v}");
            }
            assert!(close(c.insertion[i][0], 0.5, 1e-6));
        }
    }

    #[test]
    fn more_steps_than_features_and_shape_errors() {
        let model = FnModel::new(|x| x.sum_dim_intlist(1, false, Kind::Float));
        let x = Tensor::from_slice(&[1.0f32, 2.0]).reshape([1, 2]);
        let attr = Tensor::from_slice(&[1.0f32, 2.0]).reshape([1, 2]);
        let c = deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[attr], &Default::default())
            .unwrap();
        assert_eq!(c.fractions.len(), 21);
        assert_eq!(c.deletion[0][0], 3.0);
        assert_eq!(*c.deletion[0].last().unwrap(), 0.0);
        assert!(close(c.deletion_auc[0], 0.5 * (3.0 + 1.0) / 2.0 + 0.5 * 1.0 / 2.0, 1e-12));
        let wrong = Tensor::zeros([1, 3], (Kind::Float, Device::Cpu));
        let e = deletion_insertion(&model, &Inputs::new(x), &Target::None, &[wrong], &Default::default()).unwrap_err();
        assert!(e.to_string().contains("must match"), "{e}");
    }

    #[test]
    fn spearman_with_ties() {
        assert_eq!(average_ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]).unwrap(), 1.0, 1e-12));
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap(), -1.0, 1e-12));
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic = 0.9486832980505138
        assert!(close(spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap(), 0.9486832980505138, 1e-12));
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0]).reshape([2, 1, 2, 2]);
        let b = Tensor::from_slice(&[2.0f32, 4.0, 6.0, 8.0, 1.0, 2.0, 3.0, 4.0]).reshape([2, 1, 2, 2]);
        let r = rank_correlation(&[a], &[b], true).unwrap();
        assert!(close(r[0].unwrap(), 1.0, 1e-12));
        assert_eq!(r[1], None);
    }
}
