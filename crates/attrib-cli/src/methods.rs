//! The methods the CLI knows, built from the command-line flags.

use crate::explain::ExplainArgs;
use attrib::ablation::{read_label_image, slic_mask, FeatureAblation, FeaturePermutation, Occlusion, SlicParams};
use attrib::convert::{read_npy_i64, read_npy_tensor};
use attrib::gradient::{GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, NoiseTunnelType, Quadrature, Saliency};
use attrib::{AttribError, Attribution, BatchOptions, Baseline, Baselines, FeatureMask, Result};
use std::path::Path;
use tch::{Device, Tensor};

/// Names accepted by `--method`.
pub const METHODS: &[&str] = &[
    "saliency",
    "input-x-gradient",
    "integrated-gradients",
    "gradient-shap",
    "feature-ablation",
    "occlusion",
    "feature-permutation",
];

/// Build the method named on the command line, with its parameters checked. `inputs` are the
/// input tensors (some parameters, such as SLIC masks, are computed from them).
pub fn build(args: &ExplainArgs, inputs: &[Tensor]) -> Result<Box<dyn Attribution>> {
    let method = build_method(args, inputs)?;
    match &args.noise_tunnel {
        None => Ok(method),
        Some(kind) => Ok(Box::new(
            NoiseTunnel::params()
                .nt_type(kind.parse::<NoiseTunnelType>()?)
                .nt_samples(args.nt_samples)
                .stdev(args.stdevs.unwrap_or(1.0))
                .seed(args.seed)
                .check(method)?,
        )),
    }
}

/// The batching flags shared by `attrib explain` and `attrib compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Largest number of rows per model call (default: chosen from the memory budget).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Memory budget of the chunked work, in MiB (default: half of the available memory).
    #[arg(long = "memory-budget-mb")]
    pub memory_budget_mb: Option<u64>,
    /// Memory layout of 4-D/5-D inputs for the model: auto (time both on the CPU, keep the
    /// faster), contiguous, or channels-last.
    #[arg(long = "memory-format", default_value = "auto")]
    pub memory_format: String,
    /// Never run forward passes through a frozen, inference-optimised copy of the TorchScript
    /// model (by default it is used where timing shows it faster).
    #[arg(long = "no-freeze")]
    pub no_freeze: bool,
}

impl BatchArgs {
    /// The [`BatchOptions`] these flags ask for.
    pub fn options(&self) -> Result<BatchOptions> {
        Ok(BatchOptions {
            max_batch: self.max_batch,
            memory_budget: self.memory_budget_mb.map(|mb| mb << 20),
            memory_format: self.memory_format.parse()?,
            inference_copy: !self.no_freeze,
        })
    }
}

/// The method itself, without the noise tunnel.
fn build_method(args: &ExplainArgs, inputs: &[Tensor]) -> Result<Box<dyn Attribution>> {
    let batch = args.batch.options()?;
    match args.method.as_str() {
        "saliency" => Ok(Box::new(Saliency::params().abs(args.abs).batch(batch).check()?)),
        "input-x-gradient" => Ok(Box::new(InputXGradient::params().batch(batch).check()?)),
        "integrated-gradients" => Ok(Box::new(
            IntegratedGradients::params()
                .baselines(parse_baselines(&args.baseline, inputs.len())?)
                .n_steps(args.steps)
                .quadrature(args.quadrature.parse::<Quadrature>()?)
                .tolerance(args.tolerance)
                .max_steps(args.max_steps)
                .batch(batch)
                .check()?,
        )),
        "gradient-shap" => Ok(Box::new(
            GradientShap::params()
                .baselines(parse_distribution(&args.baseline, inputs.len())?)
                .n_samples(args.samples)
                .stdev(args.stdevs.unwrap_or(0.0))
                .seed(args.seed)
                .batch(batch)
                .check()?,
        )),
        "feature-ablation" => {
            let mut p = FeatureAblation::params().baselines(parse_baselines(&args.baseline, inputs.len())?).batch(batch);
            if let Some(masks) = parse_masks(&args.feature_mask, inputs)? {
                p = p.feature_masks(masks);
            }
            Ok(Box::new(p.check()?))
        }
        "feature-permutation" => {
            let mut p = FeaturePermutation::params().seed(args.seed).batch(batch);
            if let Some(masks) = parse_masks(&args.feature_mask, inputs)? {
                p = p.feature_masks(masks);
            }
            Ok(Box::new(p.check()?))
        }
        "occlusion" => {
            if args.window.is_empty() {
                return Err(AttribError::param(
                    "window",
                    "occlusion needs `--window`, one size per non-batch dimension of the input (e.g. `--window 3,8,8`)",
                ));
            }
            let windows = args.window.iter().map(|w| parse_sizes("window", w)).collect::<Result<Vec<_>>>()?;
            let mut p = Occlusion::params()
                .windows(windows)
                .baselines(parse_baselines(&args.baseline, inputs.len())?)
                .batch(batch);
            if !args.strides.is_empty() {
                p = p.strides(args.strides.iter().map(|s| parse_sizes("strides", s)).collect::<Result<Vec<_>>>()?);
            }
            Ok(Box::new(p.check()?))
        }
        other => Err(AttribError::param(
            "method",
            format!("unknown method `{other}`; available: {}", METHODS.join(", ")),
        )),
    }
}

/// `3,8,8` -> `[3, 8, 8]`.
fn parse_sizes(name: &'static str, spec: &str) -> Result<Vec<i64>> {
    spec.split(',')
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                AttribError::param(name, format!("`{spec}` is not a comma-separated list of integers (e.g. `3,8,8`)"))
            })
        })
        .collect()
}

/// Baselines from `--baseline` values: none -> zeros; one per input (or one zero/scalar for all).
/// Each is `zeros`, a number, or a float .npy file.
pub fn parse_baselines(specs: &[String], n_inputs: usize) -> Result<Baselines> {
    parse_baseline_specs(specs, n_inputs, Baseline::Tensor, "a .npy file")
}

/// The `--baseline` grammar shared by per-row baselines and baseline distributions: `zeros`, a
/// number, or a .npy file turned into a baseline by `from_file`.
fn parse_baseline_specs(
    specs: &[String],
    n_inputs: usize,
    from_file: fn(tch::Tensor) -> Baseline,
    file_kind: &str,
) -> Result<Baselines> {
    if specs.is_empty() {
        return Ok(Baselines::default());
    }
    if specs.len() != 1 && specs.len() != n_inputs {
        return Err(AttribError::param(
            "baseline",
            format!("{} baselines for {n_inputs} inputs; give one per input, or one for all", specs.len()),
        ));
    }
    let one = |s: &str| -> Result<Baseline> {
        let s = s.trim();
        if s == "zeros" || s == "zero" {
            return Ok(Baseline::Zeros);
        }
        if let Ok(v) = s.parse::<f64>() {
            return Ok(Baseline::Scalar(v));
        }
        if s.ends_with(".npy") || Path::new(s).exists() {
            return Ok(from_file(read_npy_tensor(s, Device::Cpu)?));
        }
        Err(AttribError::param("baseline", format!("`{s}` is not `zeros`, a number or {file_kind}")))
    };
    Ok(Baselines::per_input(specs.iter().map(|s| one(s)).collect::<Result<Vec<_>>>()?))
}

/// Feature masks from `--feature-mask` values (one per input), or `None` without the flag.
fn parse_masks(specs: &[String], inputs: &[Tensor]) -> Result<Option<Vec<FeatureMask>>> {
    if specs.is_empty() {
        return Ok(None);
    }
    if specs.len() != inputs.len() {
        return Err(AttribError::param(
            "feature-mask",
            format!("{} feature masks for {} inputs; give one per input", specs.len(), inputs.len()),
        ));
    }
    specs.iter().zip(inputs).map(|(s, x)| parse_mask(s, x)).collect::<Result<Vec<_>>>().map(Some)
}

fn parse_mask(spec: &str, input: &Tensor) -> Result<FeatureMask> {
    let s = spec.trim();
    let size = input.size();
    if let Some(rest) = s.strip_prefix("grid:") {
        let (ph, pw) = rest
            .split_once(['x', 'X'])
            .and_then(|(a, b)| Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?)))
            .ok_or_else(|| AttribError::param("feature-mask", format!("`{s}`: write the patch size as `grid:HxW`, e.g. `grid:4x4`")))?;
        if size.len() < 3 {
            return Err(AttribError::param(
                "feature-mask",
                format!("`grid:` needs an image input [N, (C,) H, W]; input has shape {size:?}"),
            ));
        }
        let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
        return FeatureMask::grid(h, w, ph, pw);
    }
    if let Some(rest) = s.strip_prefix("slic:") {
        let n = rest.trim().parse::<usize>().map_err(|_| {
            AttribError::param("feature-mask", format!("`{s}`: give the number of superpixels, e.g. `slic:50`"))
        })?;
        return slic_mask(input, &SlicParams::new(n));
    }
    let lower = s.to_ascii_lowercase();
    if lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        return read_label_image(s);
    }
    if lower.ends_with(".npy") || Path::new(s).exists() {
        // Group ids as given (not relabelled), so that ids shared between inputs stay shared.
        return match read_npy_i64(s) {
            Ok(a) => FeatureMask::new(attrib::convert::array_to_tensor_i64(&a, Device::Cpu)?),
            // Float masks are accepted when every value is a whole number.
            Err(_) => FeatureMask::new(read_npy_tensor(s, Device::Cpu)?),
        };
    }
    Err(AttribError::param("feature-mask", format!("`{s}` is not a .npy/.png mask, `grid:HxW` or `slic:N`")))
}

/// Baseline distributions for gradient-shap from `--baseline`: a .npy file holds baseline
/// samples `[S, ...]` (each shaped like one input row); `zeros` or a number is a single sample.
fn parse_distribution(specs: &[String], n_inputs: usize) -> Result<Baselines> {
    parse_baseline_specs(specs, n_inputs, Baseline::Distribution, "a .npy file of baseline samples")
}
