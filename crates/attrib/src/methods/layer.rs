//! Registry entries of the layer attribution methods (`attrib-layer`). Their outputs are shaped
//! like the named layer's output (or input), not like the model's inputs, so `attrib compare`
//! does not run them by default. On the command line the layer is set with
//! `--layer NAME` (and `--attribute-to-layer-input`), or `--param layer=NAME`; the neuron methods'
//! neuron with `--neuron I,J,...` (spec key `neuron_selector`).

use super::{Args, BuildContext, DefaultsContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use crate::spec::load_baselines;
use attrib_core::{Attribution, Result};
use attrib_gradient::Quadrature;
use attrib_layer as l;

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![
        Box::new(LayerActivation),
        Box::new(LayerGradientXActivation),
        Box::new(LayerGradCam),
        Box::new(LayerIntegratedGradients),
        Box::new(LayerConductance),
        Box::new(NeuronGradient),
        Box::new(NeuronIntegratedGradients),
    ]
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

const QUADRATURES: &[&str] = &["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"];
const N_STEPS: Param = Param::new("n_steps", ParamType::Int, Some("50"), "integration steps (Captum's n_steps)");
const QUADRATURE: Param = Param::new("quadrature", ParamType::Choice(QUADRATURES), Some("gausslegendre"), "quadrature rule (Captum's `method`)");
const BASELINES: Param = Param::new("baselines", ParamType::Baselines, Some("zeros"), "reference input in the model's input space (token ids: a pad id such as 0), one for all inputs or one per input");
const NEURON: Param = Param::required("neuron_selector", ParamType::Text, "the neuron: its indices in the layer's output after the batch dimension, I,J,... (fewer indices sum over the rest)");
const MULTIPLY: Param = Param::new("multiply_by_inputs", ParamType::Bool, Some("true"), "multiply the integrated gradients by the change between baseline and input");

const fn path_flags(multiplies: bool, delta: bool) -> MethodFlags {
    MethodFlags { needs_gradients: true, stochastic: false, multiplies_by_inputs: multiplies, has_convergence_delta: delta }
}

struct LayerIntegratedGradients;

const LAYER_IG: MethodDoc = MethodDoc {
    name: "layer-integrated-gradients",
    description: "integrated gradients over a layer's activations, between the layer's values at the baseline input and at the input; token-id inputs at an embedding layer (Captum's LayerIntegratedGradients)",
    family: Family::Layer,
    flags: path_flags(true, true),
    params: &[
        LAYER,
        TO_INPUT,
        BASELINES,
        N_STEPS,
        QUADRATURE,
        MULTIPLY,
        Param::new("return_convergence_delta", ParamType::Bool, Some("true"), "report sum(attributions) - (F(x) - F(baseline)) per row"),
    ],
};

impl MethodEntry for LayerIntegratedGradients {
    fn doc(&self) -> &MethodDoc {
        &LAYER_IG
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(
            l::LayerIntegratedGradientsParams {
                layer: layer_params(args, ctx)?,
                baselines: load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?,
                n_steps: args.usize("n_steps")?,
                quadrature: args.text("quadrature")?.parse::<Quadrature>()?,
                multiply_by_inputs: args.bool("multiply_by_inputs")?,
                return_convergence_delta: args.bool("return_convergence_delta")?,
            }
            .check()?,
        ))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}

struct LayerConductance;

const LAYER_CONDUCTANCE: MethodDoc = MethodDoc {
    name: "layer-conductance",
    description: "conductance: the gradient at a layer times the layer's change, summed along the path of inputs from the baseline (Dhamdhere et al. 2018; Captum's LayerConductance)",
    family: Family::Layer,
    flags: path_flags(true, true),
    params: &[LAYER, TO_INPUT, BASELINES, N_STEPS, QUADRATURE],
};

impl MethodEntry for LayerConductance {
    fn doc(&self) -> &MethodDoc {
        &LAYER_CONDUCTANCE
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(
            l::LayerConductanceParams {
                layer: layer_params(args, ctx)?,
                baselines: load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?,
                n_steps: args.usize("n_steps")?,
                quadrature: args.text("quadrature")?.parse::<Quadrature>()?,
            }
            .check()?,
        ))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}

struct NeuronGradient;

const NEURON_GRADIENT: MethodDoc = MethodDoc {
    name: "neuron-gradient",
    description: "the gradient of one neuron of a layer with respect to the inputs, shaped like the inputs (Captum's NeuronGradient)",
    family: Family::Layer,
    flags: path_flags(false, false),
    params: &[LAYER, TO_INPUT, NEURON],
};

impl MethodEntry for NeuronGradient {
    fn doc(&self) -> &MethodDoc {
        &NEURON_GRADIENT
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let neuron_selector = l::parse_neuron_selector(&args.text("neuron_selector")?)?;
        Ok(Box::new(l::NeuronGradientParams { layer: layer_params(args, ctx)?, neuron_selector }.check()?))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}

struct NeuronIntegratedGradients;

const NEURON_IG: MethodDoc = MethodDoc {
    name: "neuron-integrated-gradients",
    description: "integrated gradients of one neuron of a layer with respect to the inputs, shaped like the inputs (Captum's NeuronIntegratedGradients)",
    family: Family::Layer,
    flags: path_flags(true, false),
    params: &[LAYER, TO_INPUT, NEURON, BASELINES, N_STEPS, QUADRATURE, MULTIPLY],
};

impl MethodEntry for NeuronIntegratedGradients {
    fn doc(&self) -> &MethodDoc {
        &NEURON_IG
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(
            l::NeuronIntegratedGradientsParams {
                layer: layer_params(args, ctx)?,
                neuron_selector: l::parse_neuron_selector(&args.text("neuron_selector")?)?,
                baselines: load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?,
                n_steps: args.usize("n_steps")?,
                quadrature: args.text("quadrature")?.parse::<Quadrature>()?,
                multiply_by_inputs: args.bool("multiply_by_inputs")?,
            }
            .check()?,
        ))
    }
    fn in_default_comparison(&self, _ctx: &DefaultsContext) -> bool {
        false
    }
}
