//! `attrib explain`.

use attrib::convert::{read_npy_i64, write_npy_tensor};
use attrib::prelude::*;
use attrib::Result;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Arguments of `attrib explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// TorchScript model (`torch.jit.trace(model, example).save(path)`).
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs (.npy arrays or images) and image preprocessing.
    #[command(flatten)]
    pub inputs: crate::input::InputArgs,
    /// Attribution method.
    #[arg(long, default_value = "saliency")]
    pub method: String,
    /// What to explain: a class index N, `argmax` (the model's prediction), `none` (scalar-output
    /// model) or an int .npy file with one class index per row.
    #[arg(long, default_value = "argmax", allow_hyphen_values = true)]
    pub target: String,
    /// Output .npy file(s), one per input; a single path for several inputs gets `_0`, `_1`, ... suffixes.
    #[arg(long, required = true)]
    pub out: Vec<PathBuf>,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also render the attributions of the first input as a PNG, one panel per row.
    #[arg(long)]
    pub heatmap: Option<PathBuf>,
    /// Visualisation for --heatmap: heat_map, blended_heat_map, masked_image, alpha_scaling, original_image.
    #[arg(long, default_value = "blended_heat_map")]
    pub viz: String,
    /// Sign for --heatmap: absolute_value, positive, negative, all.
    #[arg(long, default_value = "absolute_value")]
    pub sign: String,
    /// Absolute values of the gradients (saliency; Captum's `abs=True`).
    #[arg(long)]
    pub abs: bool,
    /// How the shared tensor layer chunks and runs the work.
    #[command(flatten)]
    pub batch: crate::methods::BatchArgs,
    /// Baseline (reference input): `zeros`, a number, or a float .npy file that broadcasts to the
    /// input. Repeat once per input for several inputs (default: zeros).
    #[arg(long)]
    pub baseline: Vec<String>,
    /// Seed of every random choice (feature permutation's permutations, sampling methods).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Feature groups (feature-ablation, feature-permutation): an integer .npy mask that
    /// broadcasts to the input, a label image (.png/.jpg), `grid:HxW` (patches of H×W pixels over
    /// the last two dimensions) or `slic:N` (about N SLIC superpixels per image, computed on the
    /// input). Repeat once per input for several inputs (default: every scalar its own group).
    #[arg(long = "feature-mask")]
    pub feature_mask: Vec<String>,
    /// Occlusion window, one size per non-batch dimension of the input: `C,H,W` for images,
    /// `K` for a flat feature vector. Repeat once per input for several inputs.
    #[arg(long)]
    pub window: Vec<String>,
    /// Occlusion strides, same form as `--window` (default: 1 along every dimension).
    #[arg(long)]
    pub strides: Vec<String>,
    /// Integration steps of integrated-gradients (initial count with `--tolerance`).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Quadrature of integrated-gradients: gausslegendre, riemann_left, riemann_right,
    /// riemann_middle or riemann_trapezoid.
    #[arg(long, default_value = "gausslegendre")]
    pub quadrature: String,
    /// Adaptive integrated-gradients: refine the step count per row until |delta| <= T.
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Step cap of adaptive integrated-gradients.
    #[arg(long = "max-steps", default_value_t = 1024)]
    pub max_steps: usize,
    /// Wrap the method in a noise tunnel: smoothgrad, smoothgrad_sq or vargrad.
    #[arg(long = "noise-tunnel")]
    pub noise_tunnel: Option<String>,
    /// Noisy copies of the noise tunnel.
    #[arg(long = "nt-samples", default_value_t = 5)]
    pub nt_samples: usize,
    /// Noise standard deviation (absolute): noise tunnel (default 1.0) and gradient-shap (default 0).
    #[arg(long)]
    pub stdevs: Option<f64>,
    /// Draws per row of gradient-shap.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
}

pub(crate) fn parse_target(spec: &str) -> Result<Target> {
    let s = spec.trim();
    match s {
        "argmax" => return Ok(Target::Argmax),
        "none" => return Ok(Target::None),
        _ => {}
    }
    if let Ok(c) = s.parse::<i64>() {
        return Ok(Target::Class(c));
    }
    if s.ends_with(".npy") || Path::new(s).exists() {
        let a = read_npy_i64(s)?;
        if a.ndim() != 1 {
            return Err(AttribError::TargetShape(format!(
                "target file {s} has shape {:?}; it must hold one class index per row (1-D)",
                a.shape()
            )));
        }
        return Ok(Target::PerSample(a.iter().copied().collect()));
    }
    Err(AttribError::param("target", format!("`{spec}` is not a class index, `argmax`, `none` or a .npy file")))
}

fn output_paths(out: &[PathBuf], n_inputs: usize) -> Result<Vec<PathBuf>> {
    match (out.len(), n_inputs) {
        (a, b) if a == b => Ok(out.to_vec()),
        (1, k) => {
            let p = &out[0];
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("attr");
            Ok((0..k).map(|i| p.with_file_name(format!("{stem}_{i}.npy"))).collect())
        }
        (a, b) => Err(AttribError::param("out", format!("{a} output paths for {b} inputs; give one per input, or one to be suffixed"))),
    }
}

/// Run `attrib explain`.
pub fn run(args: ExplainArgs) -> Result<()> {
    let device = args.device.parse::<DeviceSpec>()?.resolve()?;
    let target = parse_target(&args.target)?;
    let outs = output_paths(&args.out, args.inputs.input.len())?;
    let viz = args.heatmap.as_ref().map(|_| crate::heatmap::parse(&args.viz, &args.sign)).transpose()?;
    let loaded = args.inputs.load(device)?;
    let tensors = loaded.tensors;
    // Some parameters depend on the inputs (SLIC masks, baselines per input).
    let method = crate::methods::build(&args, &tensors)?;
    let model = TorchScriptModel::load(&args.model, device)?;
    let shapes: Vec<Vec<i64>> = tensors.iter().map(|t| t.size()).collect();
    let inputs = Inputs::multi(tensors);

    let attr = method.attribute(&model, &inputs, &target)?;
    if let Some(adaptive) = attr.meta.extra.get("adaptive") {
        if adaptive["all_converged"] == false {
            eprintln!(
                "warning: adaptive integrated gradients did not reach |delta| <= {} within {} steps for rows {}; raise --max-steps or --tolerance",
                adaptive["tolerance"], adaptive["max_steps"], adaptive["unconverged_rows"]
            );
        }
    }

    for (t, p) in attr.values.iter().zip(&outs) {
        write_npy_tensor(p, t)?;
    }
    if let (Some(path), Some(viz)) = (&args.heatmap, viz) {
        crate::heatmap::write(path, &attr.values[0], &loaded.display[0], viz)?;
    }
    let delta = attr.convergence_delta.as_ref().map(attrib::convert::tensor_to_vec_f64).transpose()?;
    if args.json {
        let summary = json!({
            "method": attr.meta.method,
            "params": attr.meta.params,
            "targets": attr.meta.targets,
            "elapsed_ms": attr.meta.elapsed.as_secs_f64() * 1e3,
            "convergence_delta": delta,
            "multiplies_by_inputs": method.info().multiplies_by_inputs,
            "device": attrib::tensor::device_name(device),
            "model": args.model,
            "input_shapes": shapes,
            "outputs": outs,
            "heatmap": args.heatmap,
            "input_files": loaded.files,
            "extra": attr.meta.extra,
        });
        println!("{summary}");
    } else {
        for p in &outs {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}
