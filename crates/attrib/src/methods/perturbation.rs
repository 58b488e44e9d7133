//! Registry entries of the perturbation methods (`attrib-ablation`).

use super::{Args, BuildContext, DefaultsContext, Family, InputKind, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use crate::spec::{load_baselines, load_masks};
use attrib_ablation as a;
use attrib_core::{AttribError, Attribution, Result};
use serde_json::{json, Map, Value};

const PERTURBATION: MethodFlags =
    MethodFlags { needs_gradients: false, stochastic: false, multiplies_by_inputs: true, has_convergence_delta: false };

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![Box::new(FeatureAblation), Box::new(Occlusion), Box::new(FeaturePermutation)]
}

const MASK: Param = Param::new("feature_mask", ParamType::Masks, None, "feature groups, one mask per input (default: every scalar its own group)");
const BASELINES: Param = Param::new("baselines", ParamType::Baselines, Some("zeros"), "value a removed feature takes, one for all inputs or one per input");

/// Image inputs: square patches of about 1/16 of the shorter side (1 pixel up to 16×16), all
/// channels together.
fn grid_masks(ctx: &DefaultsContext) -> Map<String, Value> {
    let mut m = Map::new();
    if ctx.kinds.iter().all(|k| k.is_image()) {
        let masks: Vec<String> = ctx
            .shapes
            .iter()
            .map(|s| {
                let side = s[s.len() - 2].min(s[s.len() - 1]);
                let p = ((side + 15) / 16).max(1);
                format!("grid:{p}x{p}")
            })
            .collect();
        m.insert("feature_mask".into(), json!(masks));
    }
    m
}

struct FeatureAblation;

const FEATURE_ABLATION: MethodDoc = MethodDoc {
    name: "feature-ablation",
    description: "output change when each feature group is replaced by its baseline",
    family: Family::Perturbation,
    flags: PERTURBATION,
    params: &[BASELINES, MASK],
};

impl MethodEntry for FeatureAblation {
    fn doc(&self) -> &MethodDoc {
        &FEATURE_ABLATION
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let mut p = a::FeatureAblation::params().baselines(load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?).batch(ctx.batch);
        if let Some(masks) = args.masks("feature_mask")? {
            p = p.feature_masks(load_masks(&masks, ctx.inputs)?);
        }
        Ok(Box::new(p.check()?))
    }
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        Ok(grid_masks(ctx))
    }
}

struct Occlusion;

const OCCLUSION: MethodDoc = MethodDoc {
    name: "occlusion",
    description: "output change when a sliding window is replaced by the baseline, averaged over the windows covering each element (Zeiler & Fergus 2014)",
    family: Family::Perturbation,
    flags: PERTURBATION,
    params: &[
        Param::required("sliding_window_shapes", ParamType::SizesPerInput, "window size per non-batch dimension, one per input (`3,8,8` for images, `K` for a flat vector)"),
        Param::new("strides", ParamType::SizesPerInput, None, "window step per non-batch dimension, one per input (default 1)"),
        BASELINES,
    ],
};

impl MethodEntry for Occlusion {
    fn doc(&self) -> &MethodDoc {
        &OCCLUSION
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let windows = args.sizes("sliding_window_shapes")?.unwrap_or_default();
        let mut p = a::Occlusion::params()
            .windows(windows.into_iter().map(|s| s.0).collect())
            .baselines(load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?)
            .batch(ctx.batch);
        if let Some(strides) = args.sizes("strides")? {
            p = p.strides(strides.into_iter().map(|s| s.0).collect());
        }
        Ok(Box::new(p.check()?))
    }
    fn in_default_comparison(&self, ctx: &DefaultsContext) -> bool {
        ctx.kinds.iter().all(|k| k.is_image())
    }
    /// Images: square windows of 1/8 of the shorter side (at least 2), half-overlapping, all
    /// channels together; tabular inputs: windows of 3 features, stride 1.
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        let mut windows = Vec::new();
        let mut strides = Vec::new();
        for (s, k) in ctx.shapes.iter().zip(&ctx.kinds) {
            match k {
                InputKind::Image | InputKind::GreyImage => {
                    let side = s[s.len() - 2].min(s[s.len() - 1]);
                    let w = ((side + 7) / 8).max(2).min(side);
                    let st = (w / 2).max(1);
                    if *k == InputKind::Image {
                        windows.push(format!("{},{w},{w}", s[1]));
                        strides.push(format!("{},{st},{st}", s[1]));
                    } else {
                        windows.push(format!("{w},{w}"));
                        strides.push(format!("{st},{st}"));
                    }
                }
                InputKind::Tabular => {
                    windows.push(s[1].min(3).to_string());
                    strides.push("1".into());
                }
                InputKind::Other => {
                    return Err(AttribError::param(
                        "sliding_window_shapes",
                        format!("occlusion has default windows only for image [N, C, H, W] / [N, H, W] and tabular [N, F] inputs; input has shape {s:?}: give `sliding_window_shapes`"),
                    ))
                }
            }
        }
        let mut m = Map::new();
        m.insert("sliding_window_shapes".into(), json!(windows));
        m.insert("strides".into(), json!(strides));
        Ok(m)
    }
}

struct FeaturePermutation;

const FEATURE_PERMUTATION: MethodDoc = MethodDoc {
    name: "feature-permutation",
    description: "output change when each feature group is shuffled across the batch (needs a batch of 2 or more rows)",
    family: Family::Perturbation,
    flags: MethodFlags { stochastic: true, ..PERTURBATION },
    params: &[MASK, Param::new("seed", ParamType::Int, Some("0"), "seed of the permutations")],
};

impl MethodEntry for FeaturePermutation {
    fn doc(&self) -> &MethodDoc {
        &FEATURE_PERMUTATION
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let mut p = a::FeaturePermutation::params().seed(args.u64("seed")?).batch(ctx.batch);
        if let Some(masks) = args.masks("feature_mask")? {
            p = p.feature_masks(load_masks(&masks, ctx.inputs)?);
        }
        Ok(Box::new(p.check()?))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        Ok(grid_masks(ctx))
    }
}
