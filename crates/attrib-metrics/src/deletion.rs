//! Deletion and insertion curves (Petsiuk et al., 2018, "RISE"), over single features or feature
//! groups, with a baseline or ROAD's noisy linear imputation for the removed features.
//!
//! For each row, the features are ordered by attribution, largest first (ties keep their index
//! order). With `G` features and `S` steps, step `k = 0..=S` removes the `m_k = round(k·G/S)`
//! top features:
//!
//! * **deletion**: start from the input and remove the top `m_k` features;
//! * **insertion**: start from the input with every feature removed and put back the top `m_k`.
//!
//! **Features** are every scalar of every input by default; with
//! [`DeletionInsertionParams::pixels`], the pixels of image inputs (`[N, C, H, W]`: ranked by the
//! channel sum of the attribution, removed in all channels at once); with
//! [`DeletionInsertionParams::feature_masks`], the groups of a [`FeatureMask`] per input (the same
//! masks as the perturbation methods: `grid:HxW`, SLIC, label images, `.npy` ids; ids shared
//! between inputs form one group, as in Captum), ranked by the sum of the attribution over the
//! group. Groups are the distinct ids over the batch.
//!
//! **Removal**: a removed element takes the value of [`DeletionInsertionParams::baselines`]
//! (zeros by default; a number, a tensor, `Baseline::Blur(σ)`, ...), or with
//! [`DeletionInsertionParams::road`] ROAD's noisy linear imputation from the elements kept around
//! it ([`crate::road`]; image inputs only). The imputation's noise is keyed per row of the
//! expanded batch (`(seed, input, block, sample)`), so the curves do not depend on chunking
//! beyond the solver's tolerance.
//!
//! The curve records the target's score at each step: its softmax probability when the model
//! output is `[N, C]` with `C > 1`, the raw output otherwise (see [`Softmax`]). The area under
//! the curve is the trapezoid rule over the fraction of features `m_k / G ∈ [0, 1]`. A deletion
//! curve starts at `f(x)` and ends at `f(everything removed)`, an insertion curve the other way
//! round. A good attribution gives a **low deletion AUC** and a **high insertion AUC**.
//!
//! All steps of all rows (and both curves) are evaluated as one [`Expanded`] batch through the
//! shared [`Evaluator`], so chunking follows the memory budget like every method; the imputation
//! is solved for all rows and steps of a chunk at once.

use crate::perturb::Noise;
use crate::road::{impute_noisy, Road};
use crate::{trapezoid, Softmax};
use attrib_core::{AttribError, BatchOptions, Baselines, FeatureMask, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::{ChunkRows, Evaluator, Expanded};
use tch::{Device, Kind, Tensor};

/// Parameters of [`deletion_insertion`].
#[derive(Debug)]
pub struct DeletionInsertionParams {
    /// Number of steps `S` (default 20); the curves have `S + 1` points.
    pub steps: usize,
    /// The value a deleted (or not yet inserted) feature takes (default zeros); unused with
    /// [`road`](Self::road).
    pub baselines: Baselines,
    /// Fill removed features by ROAD's noisy linear imputation instead of the baseline (image
    /// inputs only; default none).
    pub road: Option<Road>,
    /// Feature groups, one mask per input (default none: see [`pixels`](Self::pixels)). Takes
    /// precedence over `pixels`.
    pub feature_masks: Option<Vec<FeatureMask>>,
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
            road: None,
            feature_masks: None,
            pixels: false,
            probabilities: true,
            batch: BatchOptions::default(),
        }
    }
}

/// Deletion and insertion curves of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// The fraction of features replaced at each step, `m_k / G`, from 0 to 1 (`S + 1` values).
    pub fractions: Vec<f64>,
    /// Per row, the target's score at each deletion step (`f(x)` first).
    pub deletion: Vec<Vec<f64>>,
    /// Per row, the target's score at each insertion step (`f(x)` last).
    pub insertion: Vec<Vec<f64>>,
    /// Per row, the area under the deletion curve (lower is better).
    pub deletion_auc: Vec<f64>,
    /// Per row, the area under the insertion curve (higher is better).
    pub insertion_auc: Vec<f64>,
    /// The number of features (groups) `G`.
    pub features: usize,
}

/// Per input, the (not yet dense) feature id of every element, `[N, ...]` int64 on `device`.
fn raw_ids(inputs: &[Tensor], params: &DeletionInsertionParams, device: Device) -> Result<Vec<Tensor>> {
    if let Some(masks) = &params.feature_masks {
        if masks.len() != inputs.len() {
            return Err(AttribError::param("feature_mask", format!("{} feature masks for {} inputs; give one per input", masks.len(), inputs.len())));
        }
        return masks.iter().zip(inputs).enumerate().map(|(i, (m, x))| m.broadcast_to(&x.size(), i, device)?.f_contiguous().ctx("broadcasting the feature mask")).collect();
    }
    let mut offset = 0i64;
    inputs
        .iter()
        .map(|x| {
            let size = x.size();
            let feature_shape: Vec<i64> = if params.pixels && size.len() >= 3 { size[2..].to_vec() } else { size[1..].to_vec() };
            let count: i64 = feature_shape.iter().product();
            let ids = Tensor::f_arange_start(offset, offset + count, (Kind::Int64, device)).and_then(|t| t.f_reshape(&feature_shape)).ctx("numbering features")?;
            offset += count;
            let ids = if feature_shape.len() + 1 < size.len() { ids.f_unsqueeze(0).ctx("numbering features")? } else { ids };
            ids.f_expand(&size, false).and_then(|t| t.f_contiguous()).ctx("numbering features")
        })
        .collect()
}

/// Dense feature ids `0..G` over all inputs, `[N, E]` (E: all elements of a row) on `device`,
/// and `G`.
fn dense_ids(inputs: &[Tensor], params: &DeletionInsertionParams, device: Device, n: i64) -> Result<(Tensor, i64)> {
    let raw = raw_ids(inputs, params, device)?;
    let flat = raw.iter().map(|t| t.f_reshape([n, -1])).collect::<std::result::Result<Vec<_>, _>>().ctx("flattening feature ids")?;
    let all = Tensor::f_cat(&flat, 1).ctx("joining feature ids")?;
    let (values, inverse) = all.f_internal_unique(true, true).ctx("numbering feature groups")?;
    Ok((inverse.f_reshape(all.size()).ctx("numbering feature groups")?, values.numel() as i64))
}

/// Deletion and insertion curves of `attributions` (one tensor per input, shaped like it) for
/// `target` of `model` at `inputs`; see the [module docs](self).
pub fn deletion_insertion(
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    attributions: &[Tensor],
    params: &DeletionInsertionParams,
) -> Result<Curves> {
    check_params(params)?;
    let scored = Softmax(model);
    let plain: &dyn Model = model;
    let scorer: &dyn Model = if params.probabilities { &scored } else { plain };
    let eval = Evaluator::new(scorer, params.batch)?;
    let p = eval.prepare(inputs, target)?;
    let device = p.device;
    crate::infidelity::check_attributions(attributions, &p.inputs)?;
    check_road_inputs(params, &p.inputs)?;
    let n = p.n;
    let elements: i64 = p.inputs.iter().map(|x| x.size()[1..].iter().product::<i64>()).sum();
    if elements == 0 {
        return Err(AttribError::InputShape("the inputs have no features".into()));
    }
    let (ids, g) = dense_ids(&p.inputs, params, device, n)?;
    let element_rank = element_ranks(attributions, &ids, n, g, device)?;
    drop(ids);
    let baselines = if params.road.is_some() { Vec::new() } else { params.baselines.resolve(&p.inputs)? };
    let s = params.steps as i64;
    // Groups removed at step k: round(k G / S).
    let replaced: Vec<i64> = (0..=s).map(|k| (2 * k * g + s) / (2 * s)).collect();
    let replaced_t = Tensor::f_from_slice(&replaced).and_then(|t| t.f_to_device(device)).ctx("moving feature counts")?;
    let counts: Vec<i64> = p.inputs.iter().map(|x| x.size()[1..].iter().product()).collect();
    let blocks = 2 * (s + 1);
    let batch = Expanded::new(n, n * blocks, |start, end| {
        let chunk = ChunkRows::new(start, end, n, device);
        let sample = chunk.samples()?;
        let block = chunk.blocks()?;
        let step = block.f_remainder(s + 1).ctx("indexing curve rows")?;
        let insertion = block.f_ge(s + 1).ctx("indexing curve rows")?;
        let m = replaced_t.f_index_select(0, &step).ctx("indexing curve rows")?;
        let top = element_rank
            .f_index_select(0, &sample)
            .and_then(|rk| rk.f_lt_tensor(&m.f_unsqueeze(1)?))
            .ctx("masking features")?;
        // Deletion keeps the input outside the top features, insertion inside them.
        let keep = insertion.f_unsqueeze(1).and_then(|ins| top.f_eq_tensor(&ins)).ctx("masking features")?;
        let mut offset = 0;
        p.inputs
            .iter()
            .enumerate()
            .zip(&counts)
            .map(|((i, x), &count)| {
                let mut shape = x.size();
                shape[0] = end - start;
                let kept = keep.f_narrow(1, offset, count).and_then(|k| k.f_reshape(&shape)).ctx("masking features")?;
                offset += count;
                let xs = x.f_index_select(0, &sample).ctx("gathering inputs")?;
                match &params.road {
                    Some(road) => {
                        let removed = kept.f_logical_not().ctx("masking features")?;
                        let noise = if road.noise > 0.0 { Some(Noise::Gaussian { stdev: road.noise }.rows(road.seed, i, x, start..end)?) } else { None };
                        impute_noisy(&xs, &removed, noise.as_ref(), road)
                    }
                    None => {
                        let bs = baselines[i].f_index_select(0, &sample).ctx("gathering baselines")?;
                        xs.f_where_self(&kept, &bs).ctx("replacing features")
                    }
                }
            })
            .collect()
    })
    .rows_like(&p.inputs);
    let out = eval.forward(&p, &batch)?;
    let values = attrib_tensor::convert::tensor_to_vec_f64(&out)?;
    Ok(curves(&values, &replaced, g, n as usize, s as usize))
}

/// The parameters' own checks: at least one step, and ROAD's settings.
fn check_params(params: &DeletionInsertionParams) -> Result<()> {
    if params.steps == 0 {
        return Err(AttribError::param("steps", "deletion/insertion needs at least 1 step (default 20)"));
    }
    if let Some(road) = &params.road {
        road.check()?;
    }
    Ok(())
}

/// ROAD imputes images only: an error for an input of fewer than 3 dimensions.
fn check_road_inputs(params: &DeletionInsertionParams, inputs: &[Tensor]) -> Result<()> {
    if params.road.is_some() {
        if let Some((i, x)) = inputs.iter().enumerate().find(|(_, x)| x.dim() < 3) {
            return Err(AttribError::NotApplicable(format!(
                "ROAD imputation needs image inputs [N, (C,) H, W]; input {i} has shape {:?} (use a baseline instead)",
                x.size()
            )));
        }
    }
    Ok(())
}

/// Per element of every row (`[N, E]`, on `device`), the rank of its feature group (`ids`, `g`
/// groups) in the row's order of attributions, 0 for the largest.
fn element_ranks(attributions: &[Tensor], ids: &Tensor, n: i64, g: i64, device: Device) -> Result<Tensor> {
    // Per-row group scores: the attribution summed over each group's elements.
    let flat_attr = attributions
        .iter()
        .map(|a| a.f_to_kind(Kind::Double).and_then(|a| a.f_to_device(device)).and_then(|a| a.f_reshape([n, -1])))
        .collect::<std::result::Result<Vec<_>, _>>()
        .ctx("reading attributions")?;
    let flat_attr = Tensor::f_cat(&flat_attr, 1).ctx("joining attributions")?;
    let scores = Tensor::f_zeros([n, g], (Kind::Double, device))
        .and_then(|z| z.f_scatter_add(1, ids, &flat_attr))
        .and_then(|s| s.f_to_device(Device::Cpu))
        .ctx("scoring feature groups")?;
    // Rank of every group in its row, 0 for the largest attribution; ties keep index order.
    let (_, order) = scores.f_sort_stable(true, 1, true).ctx("ranking features")?;
    let positions = Tensor::f_arange(g, (Kind::Int64, Device::Cpu)).and_then(|t| t.f_expand([n, g], false)).ctx("ranking features")?;
    let rank = order
        .f_zeros_like()
        .and_then(|z| z.f_scatter(1, &order, &positions))
        .and_then(|r| r.f_to_device(device))
        .ctx("ranking features")?;
    // Per element of every row, the rank of its group.
    let element_rank = rank.f_gather(1, ids, false).ctx("ranking elements")?;
    Ok(element_rank)
}

/// The curves from the model's outputs `values` on the curve rows (deletion steps `0..=s`, then
/// insertion steps, `n` rows per step), `replaced[k]` of `g` groups removed at step `k`.
fn curves(values: &[f64], replaced: &[i64], g: i64, n: usize, s: usize) -> Curves {
    let fractions: Vec<f64> = replaced.iter().map(|&m| m as f64 / g as f64).collect();
    let curve = |i: usize, first_block: usize| -> Vec<f64> { (0..=s).map(|k| values[(first_block + k) * n + i]).collect() };
    let deletion: Vec<Vec<f64>> = (0..n).map(|i| curve(i, 0)).collect();
    let insertion: Vec<Vec<f64>> = (0..n).map(|i| curve(i, s + 1)).collect();
    let deletion_auc = deletion.iter().map(|c| trapezoid(&fractions, c)).collect();
    let insertion_auc = insertion.iter().map(|c| trapezoid(&fractions, c)).collect();
    Curves { fractions, deletion, insertion, deletion_auc, insertion_auc, features: g as usize }
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

    /// f(x) = Σ w ⊙ x over a `[N, 1, H, W]` image, one scalar per row.
    fn weighted_sum(w: Tensor) -> FnModel<'static> {
        FnModel::new(move |x| (x * &w).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float))
    }

    #[test]
    fn feature_groups_are_removed_together() {
        let w = Tensor::arange_start(1, 9, (Kind::Float, Device::Cpu)).reshape([1, 1, 2, 4]);
        let model = weighted_sum(w.shallow_clone());
        let x = Tensor::ones([1, 1, 2, 4], (Kind::Float, Device::Cpu));
        // grid 2x2 on 2x4: left group {1, 2, 5, 6} (mass 14), right group {3, 4, 7, 8} (mass 22).
        let params = DeletionInsertionParams { steps: 2, feature_masks: Some(vec![FeatureMask::grid(2, 4, 2, 2).unwrap()]), ..Default::default() };
        let c = deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[&x * &w], &params).unwrap();
        assert_eq!(c.features, 2);
        assert_eq!(c.deletion[0], vec![36.0, 14.0, 0.0]);
        assert_eq!(c.insertion[0], vec![0.0, 22.0, 36.0]);
        assert_eq!(c.fractions, vec![0.0, 0.5, 1.0]);
        // Ids shared by two inputs are one feature; a mask per input is required.
        let two = Inputs::multi(vec![x.shallow_clone(), x.shallow_clone()]);
        let model2 = FnModel::multi(|xs: &[Tensor]| (&xs[0] + &xs[1]).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float));
        let masks = || vec![FeatureMask::grid(2, 4, 2, 2).unwrap(), FeatureMask::grid(2, 4, 2, 2).unwrap()];
        let p2 = DeletionInsertionParams { steps: 2, feature_masks: Some(masks()), ..Default::default() };
        let c2 = deletion_insertion(&model2, &two, &Target::None, &[&x * &w, x.ones_like()], &p2).unwrap();
        assert_eq!(c2.features, 2);
        assert_eq!(c2.deletion[0], vec![16.0, 8.0, 0.0]);
        let p3 = DeletionInsertionParams { feature_masks: Some(masks()), ..Default::default() };
        let e = deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[x.shallow_clone()], &p3).unwrap_err();
        assert!(e.to_string().contains("2 feature masks for 1 inputs"), "{e}");
        let bad = DeletionInsertionParams { feature_masks: Some(vec![FeatureMask::grid(3, 3, 1, 1).unwrap()]), ..Default::default() };
        assert!(deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[x.shallow_clone()], &bad).is_err());
    }

    /// A ramp image `[n, 1, 8, 8]`, an interior 4×4 block as group 1 (the rest group 0), and an
    /// attribution that ranks the block first.
    fn ramp_case(n: i64) -> (Tensor, FeatureMask, Tensor) {
        let r = Tensor::arange(8, (Kind::Float, Device::Cpu)).reshape([1, 1, 8, 1]);
        let c = Tensor::arange(8, (Kind::Float, Device::Cpu)).reshape([1, 1, 1, 8]);
        let scale = Tensor::arange_start(1, n + 1, (Kind::Float, Device::Cpu)).reshape([n, 1, 1, 1]);
        let x = (r * 0.25 + c * 0.5 + 1.0) * scale;
        let ids = Tensor::zeros([8, 8], (Kind::Int64, Device::Cpu));
        let _ = ids.narrow(0, 2, 4).narrow(1, 2, 4).fill_(1);
        let attr = ids.to_kind(Kind::Float).unsqueeze(0).unsqueeze(0).expand([n, 1, 8, 8], false).contiguous();
        (x, FeatureMask::new(ids).unwrap(), attr)
    }

    #[test]
    fn road_imputes_a_ramp_exactly_where_zeros_do_not() {
        let (x, mask, attr) = ramp_case(2);
        let model = weighted_sum(Tensor::ones([1, 1, 8, 8], (Kind::Float, Device::Cpu)));
        let fx = Vec::<f64>::try_from(x.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double)).unwrap();
        let block = Vec::<f64>::try_from(x.narrow(2, 2, 4).narrow(3, 2, 4).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double)).unwrap();
        let road = Road { noise: 0.0, tolerance: 1e-10, ..Default::default() };
        let params = |road: Option<Road>| DeletionInsertionParams { steps: 2, road, feature_masks: Some(vec![FeatureMask::new(mask.ids().shallow_clone()).unwrap()]), ..Default::default() };
        let imputed = deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[attr.shallow_clone()], &params(Some(road))).unwrap();
        let zeroed = deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[attr.shallow_clone()], &params(None)).unwrap();
        for i in 0..2 {
            // Removing the interior block: ROAD puts the ramp back, zeros remove its mass.
            assert!(close(imputed.deletion[i][1], fx[i], 1e-5), "{:?}", imputed.deletion[i]);
            assert!(close(zeroed.deletion[i][1], fx[i] - block[i], 1e-6), "{:?}", zeroed.deletion[i]);
            // Everything removed: no kept pixel to impute from, so 0 (noise off).
            assert_eq!(imputed.deletion[i][2], 0.0);
            assert!(close(imputed.insertion[i][2], fx[i], 1e-6));
        }
    }

    #[test]
    fn road_noise_is_seeded_and_chunking_changes_nothing() {
        let (x, mask, attr) = ramp_case(3);
        tch::manual_seed(1);
        let x = &x + Tensor::rand([3, 1, 8, 8], (Kind::Float, Device::Cpu));
        let model = weighted_sum(Tensor::rand([1, 1, 8, 8], (Kind::Float, Device::Cpu)));
        let run = |seed: u64, max_batch: Option<usize>| {
            let params = DeletionInsertionParams {
                steps: 4,
                road: Some(Road { seed, tolerance: 1e-9, ..Default::default() }),
                feature_masks: Some(vec![FeatureMask::new(mask.ids().shallow_clone()).unwrap()]),
                batch: BatchOptions { max_batch, ..Default::default() },
                ..Default::default()
            };
            deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[attr.shallow_clone()], &params).unwrap()
        };
        let a = run(3, None);
        assert_eq!(a, run(3, None));
        let other = run(4, None);
        assert_ne!(a.deletion, other.deletion);
        // Noise of 0.01 on the imputed pixels moves the sum by a little, not a lot.
        for (p, q) in a.deletion.iter().flatten().zip(other.deletion.iter().flatten()) {
            assert!((p - q).abs() < 1.0, "{p} vs {q}");
        }
        let chunked = run(3, Some(5));
        for (p, q) in a.deletion.iter().chain(&a.insertion).flatten().zip(chunked.deletion.iter().chain(&chunked.insertion).flatten()) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }

    #[test]
    fn road_needs_images() {
        let model = FnModel::new(|x| x.sum_dim_intlist(1, false, Kind::Float));
        let x = Tensor::ones([2, 5], (Kind::Float, Device::Cpu));
        let params = DeletionInsertionParams { road: Some(Road::default()), ..Default::default() };
        let e = deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[x.shallow_clone()], &params).unwrap_err();
        assert!(e.to_string().contains("image inputs"), "{e}");
        let params = DeletionInsertionParams { road: Some(Road { noise: f64::NAN, ..Default::default() }), ..Default::default() };
        assert!(deletion_insertion(&model, &Inputs::new(x.shallow_clone()), &Target::None, &[x], &params).is_err());
    }
}
