//! Faithfulness correlation (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model
//! Explanations"; Quantus' `FaithfulnessCorrelation`): does removing features change the output by
//! as much as their attributions say?
//!
//! For each row, `S` random subsets `T_s` of `k` features (every scalar of every input is a
//! feature) are replaced by the baseline; the value is the Pearson correlation over the subsets
//! between the attribution mass of the subset and the output drop:
//!
//! ```text
//! corr_s( Σ_{j ∈ T_s} Φ_j ,  f(x) − f(x with T_s at the baseline) )
//! ```
//!
//! 1 for an attribution that is exactly additive in the removed features (a linear model with
//! `Φ = w ⊙ (x − b)`), `None` where either side is constant over the subsets. Subsets are drawn
//! per row from seeded streams keyed by `(seed, subset, sample)`, so they do not depend on
//! chunking. The clean rows and all `S·N` perturbed rows are one expanded batch through the
//! shared evaluator.

use crate::pearson;
use attrib_core::{AttribError, BatchOptions, Baselines, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::rng::Rng;
use attrib_tensor::rows::{block_of, sample_of};
use attrib_tensor::{ChunkRows, Evaluator, Expanded};
use tch::{Device, Kind, Tensor};

/// Parameters of [`faithfulness_correlation`].
#[derive(Debug)]
pub struct FaithfulnessParams {
    /// Subsets per row, `S` (default 100, Quantus' `nr_runs`).
    pub n_subsets: usize,
    /// Features per subset, `k`; `None` (default): a tenth of the features (at least 1).
    pub subset_size: Option<usize>,
    /// The value removed features take (default zeros, Quantus' "black").
    pub baselines: Baselines,
    /// Seed of the subsets.
    pub seed: u64,
    /// Chunking of the model calls.
    pub batch: BatchOptions,
}

impl Default for FaithfulnessParams {
    fn default() -> Self {
        FaithfulnessParams { n_subsets: 100, subset_size: None, baselines: Baselines::default(), seed: 0, batch: BatchOptions::default() }
    }
}

/// `k` distinct indices of `0..f` for row `r` of the expanded batch over `n` samples (a partial
/// Fisher–Yates shuffle of a seeded stream).
fn subset(seed: u64, r: i64, n: i64, f: usize, k: usize, scratch: &mut Vec<usize>) -> Vec<usize> {
    let mut rng = Rng::keyed(seed, &[block_of(r, n) as u64, sample_of(r, n) as u64]);
    scratch.clear();
    scratch.extend(0..f);
    for j in 0..k {
        let pick = j + rng.below((f - j) as u64) as usize;
        scratch.swap(j, pick);
    }
    scratch[..k].to_vec()
}

/// Faithfulness correlation of `attributions` (one tensor per input, shaped like it) for
/// `target` of `model` at `inputs`, one value per row; see the [module docs](self).
pub fn faithfulness_correlation(
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    attributions: &[Tensor],
    params: &FaithfulnessParams,
) -> Result<Vec<Option<f64>>> {
    if params.n_subsets < 2 {
        return Err(AttribError::param("n_subsets", "a correlation needs at least 2 subsets per row (default 100)"));
    }
    let eval = Evaluator::new(model, params.batch)?;
    let p = eval.prepare(inputs, target)?;
    crate::infidelity::check_attributions(attributions, &p.inputs)?;
    let n = p.n;
    let counts: Vec<usize> = p.inputs.iter().map(|x| x.size()[1..].iter().product::<i64>().max(0) as usize).collect();
    let f: usize = counts.iter().sum();
    let k = params.subset_size.unwrap_or((f / 10).max(1));
    if f == 0 || k == 0 || k > f {
        return Err(AttribError::param("subset_size", format!("must be between 1 and the number of features ({f}), got {k}")));
    }
    // Per row, the flattened attributions of all inputs (float64, host).
    let scores = crate::feature_scores(attributions, false)?;
    let scores = Vec::<Vec<f64>>::try_from(&scores).map_err(|e| AttribError::Conversion(e.to_string()))?;
    let baselines = params.baselines.resolve(&p.inputs)?;
    let s = params.n_subsets as i64;
    let device = p.device;
    let mass = std::cell::RefCell::new(vec![0.0f64; (s * n) as usize]);
    let batch = Expanded::new(n, (s + 1) * n, |start, end| {
        let rows = end - start;
        // Removal mask [rows, F]: true where the feature goes to the baseline (none in block 0).
        let mut remove = vec![false; rows as usize * f];
        let mut scratch = Vec::with_capacity(f);
        let mut mass = mass.borrow_mut();
        for r in start.max(n)..end {
            let picked = subset(params.seed, r - n, n, f, k, &mut scratch);
            let row = &mut remove[(r - start) as usize * f..(r - start + 1) as usize * f];
            let sample = sample_of(r, n) as usize;
            let mut m = 0.0;
            for j in picked {
                row[j] = true;
                m += scores[sample][j];
            }
            mass[(r - n) as usize] = m;
        }
        let remove = Tensor::f_from_slice(&remove).and_then(|t| t.f_reshape([rows, f as i64])).and_then(|t| t.f_to_device(device)).ctx("masking features")?;
        let samples = ChunkRows::new(start, end, n, device).samples()?;
        let mut offset = 0;
        p.inputs
            .iter()
            .zip(&baselines)
            .zip(&counts)
            .map(|((x, b), &count)| {
                let mask = remove.f_narrow(1, offset, count as i64).and_then(|m| m.f_reshape([vec![rows], x.size()[1..].to_vec()].concat())).ctx("masking features")?;
                offset += count as i64;
                let xs = x.f_index_select(0, &samples).ctx("gathering inputs")?;
                let bs = b.f_index_select(0, &samples).ctx("gathering baselines")?;
                bs.f_where_self(&mask, &xs).ctx("removing features")
            })
            .collect()
    })
    .rows_like(&p.inputs);
    let out = eval.forward(&p, &batch)?;
    drop(batch);
    let out = attrib_tensor::convert::tensor_to_vec_f64(&out.f_to_kind(Kind::Double).and_then(|t| t.f_to_device(Device::Cpu)).ctx("reading outputs")?)?;
    let mass = mass.into_inner();
    Ok((0..n as usize)
        .map(|i| {
            let drops: Vec<f64> = (0..s as usize).map(|c| out[i] - out[(c + 1) * n as usize + i]).collect();
            let masses: Vec<f64> = (0..s as usize).map(|c| mass[c * n as usize + i]).collect();
            pearson(&masses, &drops)
        })
        .collect())
}
