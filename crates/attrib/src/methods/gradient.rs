//! Registry entries of the gradient methods (`attrib-gradient`).

use super::{Args, BuildContext, DefaultsContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType};
use crate::spec::load_baselines;
use attrib_core::{Attribution, Result, TorchResultExt};
use attrib_gradient as g;
use attrib_gradient::Quadrature;

const QUADRATURES: &[&str] = &["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"];

const fn grad(multiplies: bool, delta: bool, stochastic: bool) -> MethodFlags {
    MethodFlags { needs_gradients: true, stochastic, multiplies_by_inputs: multiplies, has_convergence_delta: delta }
}

pub(super) fn entries() -> Vec<Box<dyn MethodEntry>> {
    vec![Box::new(Saliency), Box::new(InputXGradient), Box::new(IntegratedGradients), Box::new(GradientShap), Box::new(SmoothGrad)]
}

pub(super) struct Saliency;

const SALIENCY: MethodDoc = MethodDoc {
    name: "saliency",
    description: "gradient of the target output with respect to each input element (Simonyan et al. 2013)",
    family: Family::Gradient,
    flags: grad(false, false, false),
    params: &[Param::new("abs", ParamType::Bool, Some("false"), "absolute gradients (Captum's default is abs=True; attrib's is the signed gradient)")],
};

impl MethodEntry for Saliency {
    fn doc(&self) -> &MethodDoc {
        &SALIENCY
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(g::Saliency::params().abs(args.bool("abs")?).batch(ctx.batch).check()?))
    }
}

struct InputXGradient;

const INPUT_X_GRADIENT: MethodDoc = MethodDoc {
    name: "input-x-gradient",
    description: "input times the gradient of the target output (Shrikumar et al. 2016)",
    family: Family::Gradient,
    flags: grad(true, false, false),
    params: &[],
};

impl MethodEntry for InputXGradient {
    fn doc(&self) -> &MethodDoc {
        &INPUT_X_GRADIENT
    }
    fn build(&self, _args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(g::InputXGradient::params().batch(ctx.batch).check()?))
    }
}

struct IntegratedGradients;

const INTEGRATED_GRADIENTS: MethodDoc = MethodDoc {
    name: "integrated-gradients",
    description: "(x - baseline) times the path integral of the gradient from the baseline to x (Sundararajan et al. 2017)",
    family: Family::Gradient,
    flags: grad(true, true, false),
    params: &[
        Param::new("n_steps", ParamType::Int, Some("50"), "integration steps (initial count with a tolerance)"),
        Param::new("quadrature", ParamType::Choice(QUADRATURES), Some("gausslegendre"), "quadrature rule (Captum's `method`)"),
        Param::new("baselines", ParamType::Baselines, Some("zeros"), "reference input, one for all inputs or one per input"),
        Param::new("tolerance", ParamType::Float, None, "adaptive steps: refine each row until |delta| <= tolerance"),
        Param::new("max_steps", ParamType::Int, Some("1024"), "adaptive steps: cap on the step count"),
    ],
};

impl MethodEntry for IntegratedGradients {
    fn doc(&self) -> &MethodDoc {
        &INTEGRATED_GRADIENTS
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(
            g::IntegratedGradients::params()
                .baselines(load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), false, 0)?)
                .n_steps(args.usize("n_steps")?)
                .quadrature(args.text("quadrature")?.parse::<Quadrature>()?)
                .tolerance(args.opt_f64("tolerance")?)
                .max_steps(args.usize("max_steps")?)
                .batch(ctx.batch)
                .check()?,
        ))
    }
}

struct GradientShap;

const GRADIENT_SHAP: MethodDoc = MethodDoc {
    name: "gradient-shap",
    description: "expected gradients between baselines drawn from a distribution and noisy inputs (Lundberg & Lee 2017)",
    family: Family::Gradient,
    flags: grad(true, true, true),
    params: &[
        Param::new("n_samples", ParamType::Int, Some("5"), "draws per row"),
        Param::new("stdevs", ParamType::Float, Some("0.0"), "standard deviation of the Gaussian noise added to the inputs"),
        Param::new("baselines", ParamType::Baselines, Some("zeros"), "baseline distribution: a .npy file of samples [S, ...], zeros or a number"),
        Param::new("seed", ParamType::Int, Some("0"), "seed of the draws"),
    ],
};

impl MethodEntry for GradientShap {
    fn doc(&self) -> &MethodDoc {
        &GRADIENT_SHAP
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let seed = args.u64("seed")?;
        Ok(Box::new(
            g::GradientShap::params()
                .baselines(load_baselines(&args.baselines("baselines")?, ctx.inputs.len(), true, seed)?)
                .n_samples(args.usize("n_samples")?)
                .stdev(args.f64("stdevs")?)
                .seed(seed)
                .batch(ctx.batch)
                .check()?,
        ))
    }
}

struct SmoothGrad;

const SMOOTHGRAD: MethodDoc = MethodDoc {
    name: "smoothgrad",
    description: "saliency averaged over noisy copies of the input, noise relative to the input's range (Smilkov et al. 2017)",
    family: Family::Gradient,
    flags: grad(false, false, true),
    params: &[
        Param::new("nt_type", ParamType::Choice(&["smoothgrad", "smoothgrad_sq", "vargrad"]), Some("smoothgrad"), "how the copies combine"),
        Param::new("nt_samples", ParamType::Int, Some("10"), "noisy copies per row"),
        Param::new("noise_level", ParamType::Float, Some("0.15"), "noise standard deviation as a share of the inputs' value range (max - min)"),
        Param::new("abs", ParamType::Bool, Some("false"), "absolute gradients"),
        Param::new("seed", ParamType::Int, Some("0"), "seed of the noise"),
    ],
};

impl MethodEntry for SmoothGrad {
    fn doc(&self) -> &MethodDoc {
        &SMOOTHGRAD
    }
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        let level = args.f64("noise_level")?;
        if !(level.is_finite() && level >= 0.0) {
            return Err(attrib_core::AttribError::param("noise_level", format!("must be a finite number >= 0, got {level}")));
        }
        let mut range = 0.0f64;
        for t in ctx.inputs {
            let lo = t.f_min().and_then(|v| v.f_double_value(&[])).ctx("input range")?;
            let hi = t.f_max().and_then(|v| v.f_double_value(&[])).ctx("input range")?;
            range = range.max(hi - lo);
        }
        let stdev = if range > 0.0 { level * range } else { level };
        let saliency = g::Saliency::params().abs(args.bool("abs")?).batch(ctx.batch).check()?;
        Ok(Box::new(
            g::NoiseTunnel::params()
                .nt_type(args.text("nt_type")?.parse()?)
                .nt_samples(args.usize("nt_samples")?)
                .stdev(stdev)
                .seed(args.u64("seed")?)
                .memory_budget(ctx.batch.memory_budget)
                .check(Box::new(saliency))?,
        ))
    }
    fn in_default_comparison(&self, ctx: &DefaultsContext) -> bool {
        ctx.differentiable
    }
}
