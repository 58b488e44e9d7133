//! Registry entries of the layer attribution methods (`attrib-layer`). Their outputs are shaped
//! like the named layer's output (or input), not like the model's inputs, so `attrib compare`
//! does not run them by default. On the command line the layer is set with
//! `--layer NAME` (and `--attribute-to-layer-input`), or `--param layer=NAME`.

use super::{Args, BuildContext, DefaultsContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use attrib_core::{Attribution, Result};
use attrib_layer as l;

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![Box::new(LayerActivation), Box::new(LayerGradientXActivation), Box::new(LayerGradCam)]
}

const fn flags(needs_gradients: bool, multiplies: bool) -> MethodFlags {
    MethodFlags { needs_gradients, stochastic: false, multiplies_by_inputs: multiplies, has_convergence_delta: false }
}

const LAYER: Param = Param::required("layer", ParamType::Text, "the layer's submodule path as named_modules() prints it (layer4, layer3.1.conv2, features.3)");
const TO_INPUT: Param = Param::new("attribute_to_layer_input", ParamType::Bool, Some("false"), "attribute to the layer's input instead of its output");

fn layer_params(args: &Args, ctx: &BuildContext<'_>) -> Result<l::LayerParams> {
    Ok(l::LayerParams { layer: args.text("layer")?, attribute_to_layer_input: args.bool("attribute_to_layer_input")?, batch: ctx.batch })
}

struct LayerActivation;

const LAYER_ACTIVATION: MethodDoc = MethodDoc {
    name: "layer-activation",
    description: "the values a layer of a TorchScript model computes, shaped like the layer's output (Captum's LayerActivation)",
    family: Family::Layer,
    flags: flags(false, false),
    params: &[LAYER, TO_INPUT],
};

impl MethodEntry for LayerActivation {
    fn doc(&self) -> &MethodDoc {
        &LAYER_ACTIVATION
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(l::LayerActivationParams { layer: layer_params(args, ctx)? }.check()?))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}

struct LayerGradientXActivation;

const LAYER_GXA: MethodDoc = MethodDoc {
    name: "layer-gradient-x-activation",
    description: "the gradient of the target output with respect to a layer's output, times that output (Captum's LayerGradientXActivation)",
    family: Family::Layer,
    flags: flags(true, true),
    params: &[LAYER, TO_INPUT, Param::new("multiply_by_inputs", ParamType::Bool, Some("true"), "multiply the layer gradient by the layer's activation")],
};

impl MethodEntry for LayerGradientXActivation {
    fn doc(&self) -> &MethodDoc {
        &LAYER_GXA
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(l::LayerGradientXActivationParams { layer: layer_params(args, ctx)?, multiply_by_inputs: args.bool("multiply_by_inputs")? }.check()?))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}

struct LayerGradCam;

const LAYER_GRAD_CAM: MethodDoc = MethodDoc {
    name: "layer-grad-cam",
    description: "Grad-CAM: a layer's channels weighted by their spatially averaged gradients and summed (Selvaraju et al. 2017; Captum's LayerGradCam)",
    family: Family::Layer,
    flags: flags(true, false),
    params: &[
        LAYER,
        TO_INPUT,
        Param::new("relu_attributions", ParamType::Bool, Some("false"), "keep only the positive part of the map"),
        Param::new("attr_dim_summation", ParamType::Bool, Some("true"), "sum over the channels (false keeps them)"),
        Param::new("interpolate", ParamType::Choice(&["none", "nearest", "bilinear"]), Some("none"), "upsample the map to the input's spatial size (Captum's LayerAttribution.interpolate)"),
    ],
};

impl MethodEntry for LayerGradCam {
    fn doc(&self) -> &MethodDoc {
        &LAYER_GRAD_CAM
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let interpolate = match args.text("interpolate")?.as_str() {
            "nearest" => l::Interpolate::Nearest,
            "bilinear" => l::Interpolate::Bilinear,
            _ => l::Interpolate::None,
        };
        Ok(Box::new(
            l::LayerGradCamParams {
                layer: layer_params(args, ctx)?,
                relu_attributions: args.bool("relu_attributions")?,
                attr_dim_summation: args.bool("attr_dim_summation")?,
                interpolate,
            }
            .check()?,
        ))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}
