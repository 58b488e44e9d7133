//! Attribution robustness: how much an attribution changes between two versions of the same rows
//! (the input and an adversarial example of it, say).
//!
//! Both measures work on per-feature scores: every scalar of every input, or with `pixels` the
//! channel sum of image inputs (as [`feature_scores`] gives them, and as deletion/insertion and
//! the agreement of `attrib compare` rank features).
//!
//! * **Top-k intersection** (Ghorbani, Abid and Zou 2019, "Interpretation of Neural Networks Is
//!   Fragile"): the `k` features of largest |score| before and after; the share of the first set
//!   that is also in the second, `|T_k(a) ∩ T_k(b)| / k ∈ [0, 1]`. Ties in |score| are broken by
//!   the feature index (lower first), so the value is deterministic.
//! * **Rank correlation**: Spearman's correlation of the |scores| before and after (the same
//!   paper's second measure, on magnitudes), through [`rank_correlation`]; the signed scores'
//!   correlation is reported beside it. `None` for a row where either side is constant.
//!
//! `k` is a number of features ([`TopK::Count`]) or a share of them ([`TopK::Fraction`]:
//! `round(f · F)`, at least 1).

use crate::{feature_scores, rank_correlation};
use attrib_core::{AttribError, Result, TorchResultExt};
use tch::Tensor;

/// How many features the top-k intersection compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TopK {
    /// Exactly this many features (1 ≤ k ≤ the number of features).
    Count(usize),
    /// This share of the features, `0 < f ≤ 1`: `k = max(1, round(f · F))`.
    Fraction(f64),
}

impl Default for TopK {
    /// A tenth of the features.
    fn default() -> Self {
        TopK::Fraction(0.1)
    }
}

impl TopK {
    /// The number of features for `features` features, or an error that says what is wrong.
    pub fn resolve(self, features: usize) -> Result<usize> {
        match self {
            TopK::Count(0) => Err(AttribError::param("k", "the top-k intersection needs k >= 1")),
            TopK::Count(k) if k > features => Err(AttribError::param(
                "k",
                format!("k = {k} is more than the {features} features of a row; choose k <= {features} (or a fraction)"),
            )),
            TopK::Count(k) => Ok(k),
            TopK::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                Err(AttribError::param("k", format!("a fraction of the features must be in (0, 1], got {f}")))
            }
            TopK::Fraction(f) => Ok(((f * features as f64).round() as usize).clamp(1, features.max(1))),
        }
    }
}

impl std::str::FromStr for TopK {
    type Err = AttribError;
    /// `N` (an integer: a count) or a decimal number with a point or exponent (a fraction).
    fn from_str(s: &str) -> Result<TopK> {
        let t = s.trim();
        if let Ok(k) = t.parse::<usize>() {
            return Ok(TopK::Count(k));
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(TopK::Fraction(f)),
            _ => Err(AttribError::param("k", format!("`{s}` is neither a number of features (e.g. 10) nor a fraction (e.g. 0.1)"))),
        }
    }
}

/// Parameters of [`attribution_change`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChangeParams {
    /// The `k` of the top-k intersection (default a tenth of the features).
    pub k: TopK,
    /// Treat inputs with at least 3 dimensions as `[N, C, ...]` images: features are pixels,
    /// scored by the channel sum of the attribution (default false: every scalar).
    pub pixels: bool,
}

/// How much attributions changed, per row.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributionChange {
    /// The `k` used.
    pub k: usize,
    /// The features per row.
    pub features: usize,
    /// Per row, the share of the top-k features (by |score|) kept, in `[0, 1]`.
    pub top_k_intersection: Vec<f64>,
    /// Per row, Spearman's correlation of |scores| (`None` where undefined).
    pub rank_correlation: Vec<Option<f64>>,
    /// Per row, Spearman's correlation of the signed scores (`None` where undefined).
    pub signed_rank_correlation: Vec<Option<f64>>,
}

/// Mean of the defined values, `None` when there is none.
pub fn mean_defined(v: &[Option<f64>]) -> Option<f64> {
    let d: Vec<f64> = v.iter().flatten().copied().collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

impl AttributionChange {
    /// Mean top-k intersection over the rows (`None` without rows).
    pub fn mean_top_k_intersection(&self) -> Option<f64> {
        let v = &self.top_k_intersection;
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
    /// Mean rank correlation of |scores| over the rows where it is defined.
    pub fn mean_rank_correlation(&self) -> Option<f64> {
        mean_defined(&self.rank_correlation)
    }
    /// Mean signed rank correlation over the rows where it is defined.
    pub fn mean_signed_rank_correlation(&self) -> Option<f64> {
        mean_defined(&self.signed_rank_correlation)
    }
}

/// Per-row feature scores as host rows, checked to be finite.
fn host_rows(t: &Tensor, which: &str) -> Result<Vec<Vec<f64>>> {
    let rows = Vec::<Vec<f64>>::try_from(t).map_err(|e| AttribError::Conversion(e.to_string()))?;
    if let Some(i) = rows.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
        return Err(AttribError::InputShape(format!(
            "the {which} attribution of row {i} is not finite (NaN or infinite); the change is undefined"
        )));
    }
    Ok(rows)
}

/// Indices of the `k` largest `|v|`, ties by lower index.
fn top_k(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    // Stable: equal magnitudes keep index order.
    idx.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()));
    idx.truncate(k);
    idx
}

/// Per-row top-k intersection of two attributions of the same rows (one tensor per input
/// each, shaped alike); returns the `k` used and the values.
pub fn top_k_intersection(before: &[Tensor], after: &[Tensor], k: TopK, pixels: bool) -> Result<(usize, Vec<f64>)> {
    let (a, b) = scores(before, after, pixels)?;
    let (ra, rb) = (host_rows(&a, "first")?, host_rows(&b, "second")?);
    let features = ra.first().map_or(0, Vec::len);
    let k = k.resolve(features)?;
    let values = ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| {
            let mut in_b = vec![false; features];
            for j in top_k(y, k) {
                in_b[j] = true;
            }
            top_k(x, k).into_iter().filter(|&j| in_b[j]).count() as f64 / k as f64
        })
        .collect();
    Ok((k, values))
}

/// Feature scores of both sides, `[N, F]` on the host, with matching shapes.
fn scores(before: &[Tensor], after: &[Tensor], pixels: bool) -> Result<(Tensor, Tensor)> {
    if before.len() != after.len() {
        return Err(AttribError::InputShape(format!(
            "{} attribution tensors before and {} after; pass one per input on both sides",
            before.len(),
            after.len()
        )));
    }
    for (i, (x, y)) in before.iter().zip(after).enumerate() {
        if x.size() != y.size() {
            return Err(AttribError::InputShape(format!(
                "the attributions of input {i} have shapes {:?} and {:?}; they must match",
                x.size(),
                y.size()
            )));
        }
    }
    let (a, b) = (feature_scores(before, pixels)?, feature_scores(after, pixels)?);
    if a.size().get(1).copied().unwrap_or(0) == 0 {
        return Err(AttribError::InputShape("the attributions have no features".into()));
    }
    Ok((a, b))
}

/// Top-k intersection and rank correlations between `before` and `after`, two attributions of
/// the same rows (one tensor per input each); see the module documentation.
pub fn attribution_change(before: &[Tensor], after: &[Tensor], params: &ChangeParams) -> Result<AttributionChange> {
    let (a, b) = scores(before, after, params.pixels)?;
    let features = a.size()[1] as usize;
    let (k, top_k_intersection) = top_k_intersection(before, after, params.k, params.pixels)?;
    let (abs_a, abs_b) = (a.f_abs().ctx("taking |scores|")?, b.f_abs().ctx("taking |scores|")?);
    // The scores are already [N, F]: rank them as they are.
    let rank_correlation = rank_correlation(&[abs_a], &[abs_b], false)?;
    let signed_rank_correlation = crate::rank_correlation(&[a], &[b], false)?;
    Ok(AttributionChange { k, features, top_k_intersection, rank_correlation, signed_rank_correlation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn t(v: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).reshape(shape)
    }

    #[test]
    fn identical_attributions_keep_everything() {
        let a = Tensor::randn([3, 2, 4, 4], (Kind::Float, Device::Cpu));
        let c = attribution_change(&[a.shallow_clone()], &[a.shallow_clone()], &ChangeParams { k: TopK::Count(5), pixels: true }).unwrap();
        assert_eq!((c.k, c.features), (5, 16));
        assert_eq!(c.top_k_intersection, vec![1.0; 3]);
        for r in c.rank_correlation.iter().chain(&c.signed_rank_correlation) {
            assert!((r.unwrap() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn a_known_permutation_gives_known_values() {
        // |a| ranks features 0 > 1 > 2 > 3 > 4 > 5; b swaps the first and the last magnitude.
        let a = t(&[6.0, -5.0, 4.0, 3.0, -2.0, 1.0], &[1, 6]);
        let b = t(&[1.0, -5.0, 4.0, 3.0, -2.0, 6.0], &[1, 6]);
        let c = attribution_change(&[a.shallow_clone()], &[b.shallow_clone()], &ChangeParams { k: TopK::Count(2), pixels: false }).unwrap();
        // Top 2: {0, 1} before, {5, 1} after.
        assert_eq!(c.top_k_intersection, vec![0.5]);
        // |a| ranks (ascending) 6,5,4,3,2,1 and |b| 1,5,4,3,2,6: d = (5, 0, 0, 0, 0, -5), Σd² = 50,
        // ρ = 1 − 6·50 / (6·35) = −3/7.
        assert!((c.rank_correlation[0].unwrap() - (1.0 - 300.0 / 210.0)).abs() < 1e-12);
        // k = 3 keeps {1, 2} of {0, 1, 2}: 2/3; k = 6 keeps all.
        let (_, v) = top_k_intersection(&[a.shallow_clone()], &[b.shallow_clone()], TopK::Count(3), false).unwrap();
        assert!((v[0] - 2.0 / 3.0).abs() < 1e-12);
        let (k, v) = top_k_intersection(&[a.shallow_clone()], &[b.shallow_clone()], TopK::Fraction(1.0), false).unwrap();
        assert_eq!((k, v), (6, vec![1.0]));
        // A fraction: round(0.5 · 6) = 3.
        assert_eq!(TopK::Fraction(0.5).resolve(6).unwrap(), 3);
        assert_eq!(TopK::Fraction(0.01).resolve(6).unwrap(), 1);
        // Reversing every magnitude: ρ = −1, and the top 3 are disjoint.
        let r = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1, 6]);
        let c = attribution_change(&[a.shallow_clone()], &[r], &ChangeParams { k: TopK::Count(3), pixels: false }).unwrap();
        assert_eq!(c.top_k_intersection, vec![0.0]);
        assert!((c.rank_correlation[0].unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn pixels_are_channel_sums_and_signs_do_not_matter_for_magnitudes() {
        // Two channels of 2×2; channel sums [3, -4, 1, 0] before; after, the sign of every pixel
        // flips: the magnitudes (and so intersection and |rank| correlation) are unchanged, the
        // signed correlation is -1.
        let a = t(&[1.0, -1.0, 0.5, 0.0, 2.0, -3.0, 0.5, 0.0], &[1, 2, 2, 2]);
        let b = -&a;
        let c = attribution_change(&[a], &[b], &ChangeParams { k: TopK::Count(2), pixels: true }).unwrap();
        assert_eq!((c.features, c.top_k_intersection.clone()), (4, vec![1.0]));
        assert!((c.rank_correlation[0].unwrap() - 1.0).abs() < 1e-12);
        assert!((c.signed_rank_correlation[0].unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ties_break_by_index_and_constant_rows_have_no_correlation() {
        let a = t(&[1.0, 1.0, 1.0, 1.0], &[1, 4]);
        let b = t(&[0.0, 0.0, 1.0, 1.0], &[1, 4]);
        let c = attribution_change(&[a], &[b], &ChangeParams { k: TopK::Count(2), pixels: false }).unwrap();
        // Top 2 of a: {0, 1} (ties by index); of b: {2, 3}.
        assert_eq!(c.top_k_intersection, vec![0.0]);
        assert_eq!(c.rank_correlation, vec![None]);
        assert_eq!(c.mean_rank_correlation(), None);
    }

    #[test]
    fn bad_k_and_shapes_are_errors() {
        let a = t(&[1.0, 2.0, 3.0], &[1, 3]);
        let p = |k| ChangeParams { k, pixels: false };
        for (k, needle) in [
            (TopK::Count(0), "k >= 1"),
            (TopK::Count(4), "more than the 3 features"),
            (TopK::Fraction(0.0), "(0, 1]"),
            (TopK::Fraction(1.5), "(0, 1]"),
            (TopK::Fraction(f64::NAN), "(0, 1]"),
        ] {
            let e = attribution_change(&[a.shallow_clone()], &[a.shallow_clone()], &p(k)).unwrap_err();
            assert!(e.to_string().contains(needle), "{k:?}: {e}");
        }
        let b = t(&[1.0, 2.0], &[1, 2]);
        let e = attribution_change(&[a.shallow_clone()], &[b], &p(TopK::Count(1))).unwrap_err();
        assert!(e.to_string().contains("must match"), "{e}");
        let nan = t(&[1.0, f64::NAN, 3.0], &[1, 3]);
        let e = attribution_change(&[a.shallow_clone()], &[nan], &p(TopK::Count(1))).unwrap_err();
        assert!(e.to_string().contains("not finite"), "{e}");
        assert!("abc".parse::<TopK>().is_err());
        assert_eq!("10".parse::<TopK>().unwrap(), TopK::Count(10));
        assert_eq!("0.25".parse::<TopK>().unwrap(), TopK::Fraction(0.25));
    }
}
