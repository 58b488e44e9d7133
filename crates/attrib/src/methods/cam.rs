//! Registry entries of Guided Grad-CAM, Score-CAM and layer DeepLIFT (`attrib-layer`). Guided
//! Grad-CAM and Score-CAM return input-sized maps; layer DeepLIFT's output is shaped like the
//! layer. None of them runs in `attrib compare`'s default comparison (each needs a layer). On
//! the command line the layer is set with `--layer NAME` (and `--attribute-to-layer-input`).

use super::{Args, BuildContext, DefaultsContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use crate::spec::load_baselines;
use attrib_core::{Attribution, Result};
use attrib_layer as l;

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![Box::new(GuidedGradCam), Box::new(ScoreCam), Box::new(LayerDeepLift)]
}

const LAYER: Param = Param::required("layer", ParamType::Text, "the layer's submodule path as named_modules() prints it (layer4, layer3.1.conv2, features.3)");
const TO_INPUT: Param = Param::new("attribute_to_layer_input", ParamType::Bool, Some("false"), "use the layer's input instead of its output");

fn layer_params(args: &Args, ctx: &BuildContext<'_>) -> Result<l::LayerParams> {
    Ok(l::LayerParams { layer: args.text("layer")?, attribute_to_layer_input: args.bool("attribute_to_layer_input")?, batch: ctx.batch })
}

fn interpolate(args: &Args, key: &'static str) -> Result<l::Interpolate> {
    Ok(match args.text(key)?.as_str() {
        "bilinear" => l::Interpolate::Bilinear,
        _ => l::Interpolate::Nearest,
    })
}

struct GuidedGradCam;

const GUIDED_GRAD_CAM: MethodDoc = MethodDoc {
    name: "guided-grad-cam",
    description: "guided backprop times a layer's Grad-CAM map upsampled to the input (Selvaraju et al. 2017; Captum's GuidedGradCam)",
    family: Family::Layer,
    flags: MethodFlags { needs_gradients: true, stochastic: false, multiplies_by_inputs: false, has_convergence_delta: false },
    params: &[
        LAYER,
        TO_INPUT,
        Param::new("interpolate_mode", ParamType::Choice(&["nearest", "bilinear"]), Some("nearest"), "how the Grad-CAM map is upsampled to the input's size (Captum's interpolate_mode)"),
    ],
};

impl MethodEntry for GuidedGradCam {
    fn doc(&self) -> &MethodDoc {
        &GUIDED_GRAD_CAM
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(l::GuidedGradCamParams { layer: layer_params(args, ctx)?, interpolate_mode: interpolate(args, "interpolate_mode")? }.check()?))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}

struct ScoreCam;

const SCORE_CAM: MethodDoc = MethodDoc {
    name: "score-cam",
    description: "Score-CAM: a layer's maps weighted by the target's score of the input masked by each (normalised, upsampled) map; forward passes only (Wang et al. 2020)",
    family: Family::Layer,
    flags: MethodFlags { needs_gradients: false, stochastic: false, multiplies_by_inputs: false, has_convergence_delta: false },
    params: &[
        LAYER,
        TO_INPUT,
        Param::new("score", ParamType::Choice(&["softmax", "logit"]), Some("softmax"), "a masked input's score: the target's softmax probability (the paper) or its raw output"),
        Param::new("baselines", ParamType::Baselines, Some("zeros"), "what the masks blend towards: b + (x - b) * mask"),
        Param::new("interpolate_mode", ParamType::Choice(&["bilinear", "nearest"]), Some("bilinear"), "how maps are upsampled to the input's size"),
        Param::new("upsample_result", ParamType::Bool, Some("true"), "upsample the map to the input's size (false: the layer's size)"),
    ],
};

impl MethodEntry for ScoreCam {
    fn doc(&self) -> &MethodDoc {
        &SCORE_CAM
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let score = if args.text("score")? == "logit" { l::ScoreCamScore::Logit } else { l::ScoreCamScore::Softmax };
        Ok(Box::new(
            l::ScoreCamParams {
                layer: layer_params(args, ctx)?,
                score,
                baselines: load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?,
                interpolate_mode: interpolate(args, "interpolate_mode")?,
                upsample_result: args.bool("upsample_result")?,
            }
            .check()?,
        ))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}

struct LayerDeepLift;

const LAYER_DEEPLIFT: MethodDoc = MethodDoc {
    name: "layer-deeplift",
    description: "DeepLIFT at a layer: (A(x) - A(baseline)) times the layer's multipliers under the rescale rules (Captum's LayerDeepLift)",
    family: Family::Layer,
    flags: MethodFlags { needs_gradients: true, stochastic: false, multiplies_by_inputs: true, has_convergence_delta: true },
    params: &[
        LAYER,
        TO_INPUT,
        Param::new("baselines", ParamType::Baselines, Some("zeros"), "reference input (in the model's input space), one for all inputs or one per input"),
        Param::new("multiply_by_inputs", ParamType::Bool, Some("true"), "multiply the multipliers by A(x) - A(baseline) (Captum's multiply_by_inputs)"),
        Param::new("eps", ParamType::Float, Some("1e-10"), "below this |x - baseline| at a non-linearity, its ordinary gradient is used (Captum's eps)"),
        Param::new(
            "captum_compat",
            ParamType::Bool,
            Some("false"),
            "reproduce Captum's answer: its hooks drop the rule of a non-linearity fed directly by another (a max-pool after a ReLU) and keep one of overlapping max-pool windows' contributions",
        ),
    ],
};

impl MethodEntry for LayerDeepLift {
    fn doc(&self) -> &MethodDoc {
        &LAYER_DEEPLIFT
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let compat = if args.bool("captum_compat")? { attrib_core::DeepLiftRules::Captum } else { attrib_core::DeepLiftRules::Exact };
        Ok(Box::new(
            l::LayerDeepLiftParams {
                layer: layer_params(args, ctx)?,
                baselines: load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?,
                multiply_by_inputs: args.bool("multiply_by_inputs")?,
                eps: args.f64("eps")?,
                compat,
            }
            .check()?,
        ))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}
