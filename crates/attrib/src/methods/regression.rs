//! Registry entries of the regression estimators over coalitions (`attrib-ablation`'s `shapley`
//! module): KernelSHAP and LIME.

use super::shapley::{common, image_grid, BASELINES, DISTRIBUTION, MASK};
use super::{Args, BuildContext, DefaultsContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use attrib_ablation::shapley::{Allocation, KernelRegression, StratumDraws, Surrogate};
use attrib_ablation::{Distance, KernelShap as Kernel, Lime as LimeMethod};
use attrib_core::{AttribError, Attribution, Result};
use serde_json::{json, Map, Value};

const REGRESSION: MethodFlags = MethodFlags { needs_gradients: false, stochastic: true, multiplies_by_inputs: true, has_convergence_delta: false };

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![Box::new(KernelShap), Box::new(Lime)]
}

const SEED: Param = Param::new("seed", ParamType::Int, Some("0"), "seed of the coalition draws");

/// `compare`'s settings: images get an 8×8 grid of patches (at most 64 groups); the budget is 8
/// model calls per group (at least 25, at most 2000), so that the regression is determined.
fn compare_defaults(ctx: &DefaultsContext) -> Map<String, Value> {
    let mut m = image_grid(ctx, 8);
    let groups: i64 = if m.contains_key("feature_mask") {
        ctx.shapes
            .iter()
            .map(|s| {
                let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
                let p = ((h + 7) / 8).max((w + 7) / 8).max(1);
                ((h + p - 1) / p) * ((w + p - 1) / p)
            })
            .max()
            .unwrap_or(1)
    } else {
        ctx.shapes.iter().map(|s| s[1..].iter().product::<i64>()).sum()
    };
    m.insert("n_samples".into(), json!((8 * groups).clamp(25, 2000)));
    m
}

struct KernelShap;

const KERNEL_SHAP: MethodDoc = MethodDoc {
    name: "kernel-shap",
    description: "Shapley values of feature groups by a weighted linear regression over coalitions (sizes stratified: whole sizes enumerated while the budget covers them, the rest drawn in complementary pairs), constrained to sum to F(x) − F(baseline) (Lundberg & Lee 2017; Captum's KernelShap); exact when n_samples ≥ 2^G",
    family: Family::Sampling,
    flags: REGRESSION,
    params: &[
        Param::new("n_samples", ParamType::Int, Some("25"), "model calls per row, the empty and full coalitions included (at least 2)"),
        Param::new("stratified", ParamType::Bool, Some("true"), "group coalitions by size: enumerate sizes the budget covers (singletons first), draw the rest per size in pairs without replacement; applies from 2G sampled coalitions"),
        Param::new(
            "allocation",
            ParamType::Choice(&["mass", "sqrt-mass"]),
            Some("mass"),
            "stratified design: the drawn pairs shared among the sizes in proportion to their kernel mass, or to its square root (with draws=blocks more accurate from about 6G evaluations on 15-16 groups)",
        ),
        Param::new(
            "draws",
            ParamType::Choice(&["uniform", "blocks"]),
            Some("uniform"),
            "stratified design: a size's pairs drawn uniformly, or as disjoint blocks of random permutations (both without replacement)",
        ),
        Param::new(
            "regression",
            ParamType::Choice(&["linear", "size-slopes"]),
            Some("linear"),
            "linear: the constrained regression; size-slopes: the stratified design's pairs fitted with slopes that drift with the coalition size, the estimate being the fit's exact Shapley values (with draws=blocks, allocation=sqrt-mass the most accurate per model call)",
        ),
        Param::new("paired", ParamType::Bool, Some("true"), "without the stratified design: draw each coalition with its complement (Covert & Lee 2021); false: independent draws (Captum)"),
        SEED,
        BASELINES,
        MASK,
        DISTRIBUTION,
    ],
};

impl MethodEntry for KernelShap {
    fn doc(&self) -> &MethodDoc {
        &KERNEL_SHAP
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let (baselines, masks) = common(args, ctx)?;
        let mut p = Kernel::params()
            .baselines(baselines)
            .n_samples(args.usize("n_samples")?)
            .paired(args.bool("paired")?)
            .stratified(args.bool("stratified")?)
            .allocation(args.text("allocation")?.parse::<Allocation>()?)
            .draws(args.text("draws")?.parse::<StratumDraws>()?)
            .regression(args.text("regression")?.parse::<KernelRegression>()?)
            .seed(args.u64("seed")?)
            .batch(ctx.batch);
        if let Some(m) = masks {
            p = p.feature_masks(m);
        }
        Ok(Box::new(p.check()?))
    }
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        Ok(compare_defaults(ctx))
    }
}

struct Lime;

const LIME: MethodDoc = MethodDoc {
    name: "lime",
    description: "coefficients of a weighted linear surrogate (lasso by default) fitted to the model on random coalitions of feature groups, weighted by an exponential cosine kernel (Ribeiro et al. 2016; Captum's Lime defaults)",
    family: Family::Sampling,
    flags: REGRESSION,
    params: &[
        Param::new("n_samples", ParamType::Int, Some("25"), "random samples (model calls) per row; each group is on with probability 1/2"),
        Param::new("surrogate", ParamType::Choice(&["lasso", "ridge", "linear"]), Some("lasso"), "the interpretable model: scikit-learn's Lasso(alpha), Ridge(alpha) or LinearRegression, with an intercept"),
        Param::new("alpha", ParamType::Float, Some("0.01"), "penalty of the lasso or ridge surrogate"),
        Param::new("distance", ParamType::Choice(&["cosine", "euclidean"]), Some("cosine"), "distance of the similarity kernel exp(-d²/(2 width²)) between the input and a perturbed input"),
        Param::new("kernel_width", ParamType::Float, Some("1.0"), "width of the similarity kernel"),
        SEED,
        BASELINES,
        MASK,
        DISTRIBUTION,
    ],
};

impl MethodEntry for Lime {
    fn doc(&self) -> &MethodDoc {
        &LIME
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let (baselines, masks) = common(args, ctx)?;
        let alpha = args.f64("alpha")?;
        let surrogate = match args.text("surrogate")?.as_str() {
            "lasso" => Surrogate::Lasso { alpha },
            "ridge" => Surrogate::Ridge { alpha },
            "linear" => Surrogate::Linear,
            other => return Err(AttribError::param("surrogate", format!("unknown surrogate `{other}`; use lasso, ridge or linear"))),
        };
        let distance = match args.text("distance")?.as_str() {
            "cosine" => Distance::Cosine,
            "euclidean" => Distance::Euclidean,
            other => return Err(AttribError::param("distance", format!("unknown distance `{other}`; use cosine or euclidean"))),
        };
        let mut p = LimeMethod::params()
            .baselines(baselines)
            .n_samples(args.usize("n_samples")?)
            .surrogate(surrogate)
            .distance(distance)
            .kernel_width(args.f64("kernel_width")?)
            .seed(args.u64("seed")?)
            .batch(ctx.batch);
        if let Some(m) = masks {
            p = p.feature_masks(m);
        }
        Ok(Box::new(p.check()?))
    }
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        Ok(compare_defaults(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::InputKind;

    fn ctx(shapes: Vec<Vec<i64>>) -> DefaultsContext {
        DefaultsContext { kinds: shapes.iter().map(|s| InputKind::of_shape(s)).collect(), shapes, differentiable: false }
    }

    #[test]
    fn compare_gives_images_at_most_64_groups_and_a_determined_budget() {
        for entry in [&KernelShap as &dyn MethodEntry, &Lime] {
            assert!(entry.in_default_comparison(&ctx(vec![vec![8, 30]])));
            let img = entry.compare_settings(&ctx(vec![vec![10, 1, 16, 16]])).unwrap();
            assert_eq!(img["feature_mask"], json!(["grid:2x2"]));
            assert_eq!(img["n_samples"], json!(512));
            let tab = entry.compare_settings(&ctx(vec![vec![8, 30]])).unwrap();
            assert!(!tab.contains_key("feature_mask"));
            assert_eq!(tab["n_samples"], json!(240));
            assert_eq!(entry.compare_settings(&ctx(vec![vec![8, 2]])).unwrap()["n_samples"], json!(25));
        }
    }
}
