//! Quality metrics of attributions: deletion and insertion curves, and rank agreement between
//! methods.
//!
//! # Deletion and insertion (Petsiuk et al., 2018, "RISE")
//!
//! [`deletion_insertion`]: the target's score as the most important features (or feature
//! groups of a [`attrib_core::FeatureMask`]) are removed one step at a time, or put back into an
//! empty input; removed features take a baseline (zeros, a number, a blurred copy, ...) or the
//! noisy linear imputation of ROAD ([`road`]). See [`deletion`].
//!
//! # Agreement
//!
//! [`rank_correlation`] is Spearman's rank correlation between two attributions of the same
//! rows, per row, with average ranks for ties (see [`spearman`]).
//!
//! # Infidelity, max- and avg-sensitivity
//!
//! [`infidelity`](mod@infidelity) and [`sensitivity`] compute Captum's `infidelity` and
//! `sensitivity_max` (Yeh et al. 2019) with seeded noise ([`Noise`]) or replayed perturbations;
//! [`avg_sensitivity`] is the mean where `sensitivity_max` takes the maximum.
//!
//! # Completeness gap
//!
//! [`completeness_gap`]: per row `|Σ Φ − (f(x) − f(b))|`, absolute and relative.
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
pub mod completeness;
pub mod deletion;
pub mod faithfulness;
pub mod infidelity;
pub mod perturb;
pub mod randomization;
pub mod road;
pub mod robustness;
pub mod sensitivity;

pub use completeness::{completeness_gap, Completeness, CompletenessParams};
pub use deletion::{deletion_insertion, Curves, DeletionInsertionParams};
pub use faithfulness::{faithfulness_correlation, FaithfulnessParams};
pub use infidelity::{infidelity, infidelity_with, InfidelityParams, Perturbations};
pub use perturb::Noise;
pub use randomization::{model_randomization, Mode, Randomization, RandomizationParams, SobelEdges};
pub use road::Road;
pub use sensitivity::{avg_sensitivity, avg_sensitivity_with, sensitivity_max, sensitivity_max_with, Sensitivity, SensitivityParams};

use attrib_core::{AttribError, ForwardArg, Model, Result, TorchResultExt};
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
    if a.len() != b.len() {
        return None;
    }
    pearson(&average_ranks(a), &average_ranks(b))
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

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
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
