//! Registry entries of the methods that rewrite the model's backward rules (`attrib-deeplift`):
//! DeepLIFT, DeepLIFT-SHAP, guided backprop, deconvolution and LRP.

use super::{Args, BuildContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use crate::spec::load_baselines;
use attrib_core::{Attribution, Result};
use attrib_deeplift as d;

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![Box::new(DeepLift), Box::new(DeepLiftShap), Box::new(GuidedBackprop), Box::new(Deconvolution), Box::new(Lrp)]
}

const fn flags(multiplies: bool, delta: bool) -> MethodFlags {
    MethodFlags { needs_gradients: true, stochastic: false, multiplies_by_inputs: multiplies, has_convergence_delta: delta }
}

const MULTIPLY: Param = Param::new("multiply_by_inputs", ParamType::Bool, Some("true"), "multiply the multipliers by (x - baseline) (Captum's multiply_by_inputs)");
const EPS: Param = Param::new("eps", ParamType::Float, Some("1e-10"), "below this |x - baseline| at a non-linearity, its ordinary gradient is used (Captum's eps)");
const CAPTUM_COMPAT: Param = Param::new(
    "captum_compat",
    ParamType::Bool,
    Some("false"),
    "reproduce Captum's answer: its hooks drop the rule of a non-linearity fed directly by another (a max-pool after a ReLU) and keep one of overlapping max-pool windows' contributions",
);

fn compat(args: &Args) -> Result<attrib_core::DeepLiftRules> {
    Ok(if args.bool("captum_compat")? { attrib_core::DeepLiftRules::Captum } else { attrib_core::DeepLiftRules::Exact })
}

struct DeepLift;

const DEEPLIFT: MethodDoc = MethodDoc {
    name: "deeplift",
    description: "DeepLIFT rescale rule on the TorchScript graph: (x - baseline) times multipliers that back-propagate output differences over input differences (Shrikumar et al. 2017)",
    family: Family::Gradient,
    flags: flags(true, true),
    params: &[Param::new("baselines", ParamType::Baselines, Some("zeros"), "reference input, one for all inputs or one per input"), MULTIPLY, EPS, CAPTUM_COMPAT],
};

impl MethodEntry for DeepLift {
    fn doc(&self) -> &MethodDoc {
        &DEEPLIFT
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(
            d::DeepLift::params()
                .baselines(load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?)
                .multiply_by_inputs(args.bool("multiply_by_inputs")?)
                .eps(args.f64("eps")?)
                .compat(compat(args)?)
                .batch(ctx.batch)
                .check()?,
        ))
    }
}

struct DeepLiftShap;

const DEEPLIFT_SHAP: MethodDoc = MethodDoc {
    name: "deeplift-shap",
    description: "DeepLIFT averaged over a distribution of baselines (Lundberg & Lee 2017)",
    family: Family::Gradient,
    flags: flags(true, true),
    params: &[
        Param::required("baselines", ParamType::Baselines, "baseline samples: a .npy file [S, ...] with S >= 2, one per input"),
        MULTIPLY,
        EPS,
        CAPTUM_COMPAT,
    ],
};

impl MethodEntry for DeepLiftShap {
    fn doc(&self) -> &MethodDoc {
        &DEEPLIFT_SHAP
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(
            d::DeepLiftShap::params()
                .baselines(load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), true, 0)?)
                .multiply_by_inputs(args.bool("multiply_by_inputs")?)
                .eps(args.f64("eps")?)
                .compat(compat(args)?)
                .batch(ctx.batch)
                .check()?,
        ))
    }
    // Needs a file of baseline samples: not in the default comparison.
    fn in_default_comparison(&self, _ctx: &super::DefaultsContext) -> bool {
        false
    }
}

struct GuidedBackprop;

const GUIDED_BACKPROP: MethodDoc = MethodDoc {
    name: "guided-backprop",
    description: "gradient with every ReLU passing back only positive gradients, on the TorchScript graph (Springenberg et al. 2015)",
    family: Family::Gradient,
    flags: flags(false, false),
    params: &[],
};

impl MethodEntry for GuidedBackprop {
    fn doc(&self) -> &MethodDoc {
        &GUIDED_BACKPROP
    }
    fn build(&self, _args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(d::GuidedBackprop::params().batch(ctx.batch).check()?))
    }
}

struct Deconvolution;

const DECONVOLUTION: MethodDoc = MethodDoc {
    name: "deconvolution",
    description: "gradient with every ReLU passing back the positive part of the incoming gradient, on the TorchScript graph (Zeiler & Fergus 2014)",
    family: Family::Gradient,
    flags: flags(false, false),
    params: &[],
};

impl MethodEntry for Deconvolution {
    fn doc(&self) -> &MethodDoc {
        &DECONVOLUTION
    }
    fn build(&self, _args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(d::Deconvolution::params().batch(ctx.batch).check()?))
    }
}

struct Lrp;

const LRP: MethodDoc = MethodDoc {
    name: "lrp",
    description: "layer-wise relevance propagation, epsilon rule, on the TorchScript graph: the target output's relevance handed back layer by layer in proportion to each input's contribution (Bach et al. 2015; Captum's LRP)",
    family: Family::Gradient,
    flags: flags(true, true),
    params: &[
        Param::new("epsilon", ParamType::Float, Some("1e-9"), "the epsilon rule's stabiliser, added to every layer output with its sign (Captum's EpsilonRule)"),
        Param::new("return_convergence_delta", ParamType::Bool, Some("true"), "report sum(attributions) - F_target(x) per row"),
    ],
};

impl MethodEntry for Lrp {
    fn doc(&self) -> &MethodDoc {
        &LRP
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(
            d::Lrp::params()
                .epsilon(args.f64("epsilon")?)
                .return_convergence_delta(args.bool("return_convergence_delta")?)
                .batch(ctx.batch)
                .check()?,
        ))
    }
}
