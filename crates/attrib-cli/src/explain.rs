//! `attrib explain`.

use attrib::convert::{read_npy_i64, read_npy_tensor, write_npy_tensor};
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
    /// Input tensor as a float32 .npy file, batch first. Repeat for models with several inputs, in order.
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
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
    /// Absolute values of the gradients (saliency; Captum's `abs=True`).
    #[arg(long)]
    pub abs: bool,
    /// Largest number of rows per model call (default: chosen from the memory budget).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Memory budget of the chunked work, in MiB (default: half of the available memory).
    #[arg(long = "memory-budget-mb")]
    pub memory_budget_mb: Option<u64>,
}

fn parse_target(spec: &str) -> Result<Target> {
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
    let method = crate::methods::build(&args)?;
    let device = args.device.parse::<DeviceSpec>()?.resolve()?;
    let target = parse_target(&args.target)?;
    let outs = output_paths(&args.out, args.input.len())?;
    let model = TorchScriptModel::load(&args.model, device)?;
    let tensors = args.input.iter().map(|p| read_npy_tensor(p, device)).collect::<Result<Vec<_>>>()?;
    let shapes: Vec<Vec<i64>> = tensors.iter().map(|t| t.size()).collect();
    let inputs = Inputs::multi(tensors);

    let attr = method.attribute(&model, &inputs, &target)?;

    for (t, p) in attr.values.iter().zip(&outs) {
        write_npy_tensor(p, t)?;
    }
    let delta = match &attr.convergence_delta {
        Some(d) => Some(Vec::<f64>::try_from(&d.to_kind(tch::Kind::Double).to_device(tch::Device::Cpu).reshape([-1])).map_err(
            |e| AttribError::Conversion(e.to_string()),
        )?),
        None => None,
    };
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
