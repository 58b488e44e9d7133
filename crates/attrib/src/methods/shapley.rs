//! Registry entries of the Shapley-value methods (`attrib-ablation`'s `shapley` module): exact
//! Shapley values, Shapley value sampling and Owen values over a hierarchy of groups.

use super::{Args, BuildContext, DefaultsContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use crate::spec::{load_baselines, load_masks};
use attrib_ablation::shapley::{Hierarchy, OwenMode, Sampler};
use attrib_ablation::{ExactShapley as Exact, OwenValues as Owen, ShapleyValueSampling as Sampling};
use attrib_core::{Attribution, Baselines, FeatureMask, Result};
use serde_json::{json, Map, Value};

const SHAPLEY: MethodFlags = MethodFlags { needs_gradients: false, stochastic: false, multiplies_by_inputs: true, has_convergence_delta: true };

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![Box::new(ExactShapley), Box::new(ShapleyValueSampling), Box::new(OwenValues)]
}

pub(super) const MASK: Param = Param::new("feature_mask", ParamType::Masks, None, "feature groups (the players), one mask per input (default: every scalar its own group)");
pub(super) const BASELINES: Param = Param::new("baselines", ParamType::Baselines, Some("zeros"), "value a feature outside the coalition takes, one for all inputs or one per input");
pub(super) const DISTRIBUTION: Param = Param::new(
    "baseline_distribution",
    ParamType::Bool,
    Some("false"),
    "read a .npy baseline as background samples [S, ...]; the values are averaged over the samples (S times the model calls)",
);

/// Baselines and masks as both methods read them.
pub(super) fn common(args: &Args, ctx: &BuildContext<'_>) -> Result<(Baselines, Option<Vec<FeatureMask>>)> {
    let baselines = load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), args.bool("baseline_distribution")?, 0)?;
    let masks = match args.masks("feature_mask")? {
        Some(m) => Some(load_masks(&m, ctx.inputs)?),
        None => None,
    };
    Ok((baselines, masks))
}

/// Scalar elements of one row, all inputs together.
fn row_elements(ctx: &DefaultsContext) -> i64 {
    ctx.shapes.iter().map(|s| s[1..].iter().product::<i64>()).sum()
}

/// Images: square patches, `per_side` or fewer per side (all channels together), so at most
/// `per_side²` groups per input.
pub(super) fn image_grid(ctx: &DefaultsContext, per_side: i64) -> Map<String, Value> {
    let mut m = Map::new();
    if ctx.kinds.iter().all(|k| k.is_image()) {
        let masks: Vec<String> = ctx
            .shapes
            .iter()
            .map(|s| {
                let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
                let p = ((h + per_side - 1) / per_side).max((w + per_side - 1) / per_side).max(1);
                format!("grid:{p}x{p}")
            })
            .collect();
        m.insert("feature_mask".into(), json!(masks));
    }
    m
}

/// Most groups for exact Shapley values in `compare`'s default set: 2^G coalitions per row
/// (16 groups took 70 s on the 10 bundled digits on the 2-core machine; 9 take well under a second).
const COMPARE_EXACT_GROUPS: i64 = 12;

struct ExactShapley;

const EXACT_SHAPLEY: MethodDoc = MethodDoc {
    name: "exact-shapley",
    description: "exact Shapley values of feature groups: all 2^G coalitions evaluated (at most 20 groups)",
    family: Family::Sampling,
    flags: SHAPLEY,
    params: &[BASELINES, MASK, DISTRIBUTION],
};

impl MethodEntry for ExactShapley {
    fn doc(&self) -> &MethodDoc {
        &EXACT_SHAPLEY
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let (baselines, masks) = common(args, ctx)?;
        let mut p = Exact::params().baselines(baselines).batch(ctx.batch);
        if let Some(m) = masks {
            p = p.feature_masks(m);
        }
        Ok(Box::new(p.check()?))
    }
    /// Images (a 4×4 grid of patches, two inputs sharing the group ids) and inputs of at most
    /// 20 scalar features per row.
    /// In the default comparison with at most [`COMPARE_EXACT_GROUPS`] groups (2^12 coalitions
    /// per row): images as a 3×3 grid of patches, flat inputs of at most that many scalars.
    fn in_default_comparison(&self, ctx: &DefaultsContext) -> bool {
        ctx.kinds.iter().all(|k| k.is_image()) || row_elements(ctx) <= COMPARE_EXACT_GROUPS
    }
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        Ok(image_grid(ctx, 3))
    }
}

struct ShapleyValueSampling;

const SHAPLEY_SAMPLING: MethodDoc = MethodDoc {
    name: "shapley-sampling",
    description: "Shapley values estimated from random permutations of the feature groups (Castro et al. 2009; Captum's ShapleyValueSampling), with antithetic or stratified permutations",
    family: Family::Sampling,
    flags: MethodFlags { stochastic: true, ..SHAPLEY },
    params: &[
        Param::new("n_samples", ParamType::Int, Some("25"), "number of permutations"),
        Param::new(
            "sampler",
            ParamType::Choice(&["random", "antithetic", "stratified"]),
            Some("antithetic"),
            "random: independent permutations (Captum); antithetic: each followed by its reverse; stratified: blocks of G from a Latin square (every group at every position once)",
        ),
        Param::new("seed", ParamType::Int, Some("0"), "seed of the permutations"),
        BASELINES,
        MASK,
        DISTRIBUTION,
    ],
};

impl MethodEntry for ShapleyValueSampling {
    fn doc(&self) -> &MethodDoc {
        &SHAPLEY_SAMPLING
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let (baselines, masks) = common(args, ctx)?;
        let mut p = Sampling::params()
            .baselines(baselines)
            .n_samples(args.usize("n_samples")?)
            .sampler(args.text("sampler")?.parse::<Sampler>()?)
            .seed(args.u64("seed")?)
            .batch(ctx.batch);
        if let Some(m) = masks {
            p = p.feature_masks(m);
        }
        Ok(Box::new(p.check()?))
    }
    /// Images: an 8×8 grid of patches (64 groups).
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        Ok(image_grid(ctx, 8))
    }
}

struct OwenValues;

const OWEN_VALUES: MethodDoc = MethodDoc {
    name: "owen-values",
    description: "Owen values of feature groups over a hierarchy (groups merged into regions; SHAP's PartitionExplainer idea): exact for small hierarchies, else sampled orders consistent with the hierarchy",
    family: Family::Sampling,
    flags: MethodFlags { stochastic: true, ..SHAPLEY },
    params: &[
        Param::new(
            "hierarchy",
            ParamType::Text,
            Some("auto"),
            "auto: adjacent groups merged bottom-up into a binary tree (images: spatial neighbours; flat inputs: group-id order); flat: Shapley values; P0,P1,...: a parent id per group (two levels); CHILD:PARENT,...: any depth (root or -1: the root)",
        ),
        Param::new("mode", ParamType::Choice(&["auto", "exact", "sampled"]), Some("auto"), "exact: every coalition of the hierarchy; sampled: n_samples orders; auto: exact up to 65536 coalition differences per row"),
        Param::new("n_samples", ParamType::Int, Some("25"), "orders consistent with the hierarchy, when sampling"),
        Param::new("sampler", ParamType::Choice(&["random", "antithetic"]), Some("antithetic"), "random: independent orders; antithetic: each followed by its reverse"),
        Param::new("seed", ParamType::Int, Some("0"), "seed of the orders"),
        BASELINES,
        MASK,
        DISTRIBUTION,
    ],
};

impl MethodEntry for OwenValues {
    fn doc(&self) -> &MethodDoc {
        &OWEN_VALUES
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let (baselines, masks) = common(args, ctx)?;
        let mut p = Owen::params()
            .baselines(baselines)
            .hierarchy(args.text("hierarchy")?.parse::<Hierarchy>()?)
            .mode(args.text("mode")?.parse::<OwenMode>()?)
            .n_samples(args.usize("n_samples")?)
            .antithetic(args.text("sampler")?.parse::<Sampler>()? == Sampler::Antithetic)
            .seed(args.u64("seed")?)
            .batch(ctx.batch);
        if let Some(m) = masks {
            p = p.feature_masks(m);
        }
        Ok(Box::new(p.check()?))
    }
    /// Not in the default comparison (name it in `compare --methods`): with the automatic
    /// hierarchy it is one more Shapley-type column beside exact values and sampling.
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
    /// Images: a 4×4 grid of patches (16 groups, a binary tree: exact, 256 differences per row).
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        Ok(image_grid(ctx, 4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::InputKind;

    #[test]
    fn the_registry_default_sampler_is_the_library_default() {
        let p = SHAPLEY_SAMPLING.params.iter().find(|p| p.name == "sampler").unwrap();
        assert_eq!(p.default, Some(Sampler::default().name()));
    }

    #[test]
    fn exact_values_join_the_comparison_only_with_few_groups() {
        let ctx = |shapes: Vec<Vec<i64>>| DefaultsContext {
            kinds: shapes.iter().map(|s| InputKind::of_shape(s)).collect(),
            shapes,
            differentiable: true,
        };
        let img = ctx(vec![vec![2, 3, 30, 17]]);
        assert!(ExactShapley.in_default_comparison(&img));
        // 10-pixel patches: 3 × 2 groups (at most 3 per side).
        assert_eq!(ExactShapley.compare_settings(&img).unwrap()["feature_mask"], json!(["grid:10x10"]));
        assert_eq!(ShapleyValueSampling.compare_settings(&img).unwrap()["feature_mask"], json!(["grid:4x4"]));
        assert!(ExactShapley.in_default_comparison(&ctx(vec![vec![8, 12]])));
        assert!(!ExactShapley.in_default_comparison(&ctx(vec![vec![8, 13]])));
        assert!(ShapleyValueSampling.in_default_comparison(&ctx(vec![vec![8, 30]])));
        assert_eq!(OwenValues.compare_settings(&img).unwrap()["feature_mask"], json!(["grid:8x8"]));
    }
}
