//! `attrib metrics`: how far to trust a method's attributions (infidelity, max-sensitivity, the
//! model randomisation test).
//!
//! A thin shell over `attrib::metrics`: the method is built from the same flags as
//! `attrib explain` (through the registry), the metric's own flags fill
//! [`InfidelityParams`](attrib::metrics::InfidelityParams) or
//! [`SensitivityParams`](attrib::metrics::SensitivityParams).

use attrib::methods::Registry;
use attrib::metrics::randomization::{model_randomization, Mode, RandomizationParams, SobelEdges};
use attrib::metrics::{infidelity, sensitivity_max, InfidelityParams, Noise, SensitivityParams};
use attrib::prelude::*;
use attrib::Result;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `attrib metrics`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  attrib metrics --metric infidelity --model m.pt --input x.npy --method saliency --json
  attrib metrics --metric infidelity --model m.pt --input x.npy --method integrated-gradients --steps 32 --samples 100 --radius 0.05 --normalize-attribution --json
  attrib metrics --metric sensitivity-max --model m.pt --input x.npy --method saliency --samples 10 --radius 0.02 --seed 1 --json
  attrib metrics --metric randomization --model m.pt --input x.npy --method saliency --abs --randomization cascading --json
  attrib metrics --metric randomization --model m.pt --input x.npy --method sobel-edges --json

Here --samples, --seed and --radius are the metric's: perturbations per row (default 10), their seed
(default 0), and the noise scale (infidelity: standard deviation of Gaussian noise, default 0.1;
sensitivity-max: radius of uniform L-inf noise, default 0.02). A sampling method's own seed and
draws are set with --param seed=N and --param n_samples=N. Infidelity's perturbation is
I = x - x~ for methods that do not multiply by inputs, I = (x - x~)/x for those that do.

randomization (Adebayo et al. 2018): the method's attributions on the model against those on copies
whose weights are redrawn at random, layer by layer from the output (--randomization cascading,
default) or one layer at a time (independent); per step and row Spearman's rank correlation of
|attribution| (and signed), channels summed. --seed seeds the weights. --method sobel-edges is the
model-independent edge-detector control (correlation 1 at every step).")]
pub struct MetricsArgs {
    /// Metric: infidelity, sensitivity-max or randomization.
    #[arg(long)]
    pub metric: String,
    /// TorchScript model (`torch.jit.trace(model, example).save(path)`).
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs (.npy arrays or images) and image preprocessing.
    #[command(flatten)]
    pub inputs: crate::input::InputArgs,
    /// Attribution method (`attrib methods` lists them).
    #[arg(long, default_value = "saliency")]
    pub method: String,
    /// What to explain: a class index N, `argmax`, `none` or an int .npy with one index per row.
    #[arg(long, default_value = "argmax", allow_hyphen_values = true)]
    pub target: String,
    /// Noise scale of the perturbations (see below).
    #[arg(long, allow_negative_numbers = true)]
    pub radius: Option<f64>,
    /// Infidelity: scale the attribution by its best factor first (Captum's `normalize`; named
    /// apart from `--normalize`, the image preprocessing).
    #[arg(long = "normalize-attribution")]
    pub normalize_attribution: bool,
    /// Randomization: cascading (the top k layers at step k) or independent (layer k alone).
    #[arg(long = "randomization", default_value = "cascading")]
    pub randomization: String,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// How many more times to compute the metric after the first (benchmark mode): `--json`
    /// then reports `first_ms` apart and `elapsed_ms` as the median of the repeats.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
    /// How the shared tensor layer chunks and runs the work.
    #[command(flatten)]
    pub batch: crate::methods::BatchArgs,
    #[command(flatten)]
    pub method_flags: crate::explain::MethodFlags,
}

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    Infidelity,
    SensitivityMax,
    Randomization,
}

fn parse_metric(s: &str) -> Result<Metric> {
    match s.trim() {
        "infidelity" => Ok(Metric::Infidelity),
        "sensitivity-max" | "sensitivity_max" => Ok(Metric::SensitivityMax),
        "randomization" | "randomisation" => Ok(Metric::Randomization),
        other => Err(AttribError::param("metric", format!("unknown metric `{other}`; use infidelity, sensitivity-max or randomization"))),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// Run `attrib metrics`.
pub fn run(args: MetricsArgs, registry: &Registry) -> Result<()> {
    let metric = parse_metric(&args.metric)?;
    if metric == Metric::Randomization {
        return run_randomization(args, registry);
    }
    if args.method == "sobel-edges" {
        return Err(AttribError::NotApplicable("--method sobel-edges is the control of --metric randomization only".into()));
    }
    // --samples and --seed are the metric's; the method's own go through --param.
    let samples = args.method_flags.samples.unwrap_or(10);
    let seed = args.method_flags.seed.unwrap_or(0);
    let flags = crate::explain::MethodFlags { samples: None, seed: None, ..args.method_flags.clone() };
    let spec = crate::methods::spec_from_flags(registry, &args.method, &flags.values(), &args.batch)?;
    let radius = args.radius.unwrap_or(if metric == Metric::Infidelity { 0.1 } else { 0.02 });
    if args.normalize_attribution && metric != Metric::Infidelity {
        return Err(AttribError::NotApplicable("--normalize-attribution applies to --metric infidelity only".into()));
    }
    let choice = args.device.parse::<DeviceSpec>()?.choose()?;
    let device = choice.device;
    let target = crate::explain::parse_target(&args.target)?;
    crate::outputs::check_model(&args.model)?;
    let loaded = args.inputs.load(device)?;
    let tensors = loaded.tensors;
    let method = registry.build(&spec, &tensors)?;
    let model = TorchScriptModel::load(&args.model, device)?;
    let inputs = Inputs::multi(tensors);
    let options = args.batch.options()?;
    let work = if registry.entry(&args.method)?.doc().flags.needs_gradients {
        attrib::tensor::warm::Work::Gradients
    } else {
        attrib::tensor::warm::Work::Forward
    };
    attrib::tensor::warm::warm_up(&model, &inputs, &options, work);
    let multiply = method.info().multiplies_by_inputs;

    let clock = Instant::now();
    let attr = if metric == Metric::Infidelity { Some(method.attribute(&model, &inputs, &target)?) } else { None };
    let attribution_ms = attr.as_ref().map(|_| clock.elapsed().as_secs_f64() * 1e3);
    // Explain the targets the attribution explained (argmax resolved once).
    let target = match attr.as_ref().and_then(|a| a.meta.targets.clone()) {
        Some(t) => Target::PerSample(t),
        None => target,
    };
    let compute = || -> Result<(Vec<f64>, Option<Vec<i64>>)> {
        match metric {
            Metric::Infidelity => {
                let a = attr.as_ref().ok_or_else(|| AttribError::Internal("no attribution".into()))?;
                let params = InfidelityParams {
                    n_perturb_samples: samples,
                    noise: Noise::Gaussian { stdev: radius },
                    multiply_by_inputs: multiply,
                    normalize: args.normalize_attribution,
                    seed,
                    batch: options,
                    ..Default::default()
                };
                Ok((infidelity(&model, &inputs, &target, &a.values, &params)?, a.meta.targets.clone()))
            }
            Metric::SensitivityMax => {
                let params = SensitivityParams { n_perturb_samples: samples, noise: Noise::Uniform { radius }, seed, ..Default::default() };
                let s = sensitivity_max(method.as_ref(), &model, &inputs, &target, &params)?;
                Ok((s.values, s.attributions.meta.targets))
            }
            Metric::Randomization => Err(AttribError::Internal("the randomization test runs apart".into())),
        }
    };
    let clock = Instant::now();
    let (values, targets) = compute()?;
    let first_ms = clock.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let clock = Instant::now();
        compute()?;
        times.push(clock.elapsed().as_secs_f64() * 1e3);
    }
    let elapsed_ms = if times.is_empty() { first_ms } else { median(times.clone()) };
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    if args.json {
        let summary = json!({
            "metric": if metric == Metric::Infidelity { "infidelity" } else { "sensitivity-max" },
            "method": method.info().name,
            "spec": spec,
            "values": values,
            "mean": mean,
            "targets": targets,
            "samples": samples,
            "seed": seed,
            "noise": if metric == Metric::Infidelity { json!({"gaussian": {"stdev": radius}}) } else { json!({"uniform": {"radius": radius}}) },
            "normalize": args.normalize_attribution,
            "multiply_by_inputs": (metric == Metric::Infidelity).then_some(multiply),
            "attribution_ms": attribution_ms,
            "first_ms": first_ms,
            "elapsed_ms": elapsed_ms,
            "repeats": args.repeat,
            "device": attrib::tensor::device_name(device),
            "model": args.model,
            "input_files": loaded.files,
        });
        println!("{summary}");
    } else {
        for (i, v) in values.iter().enumerate() {
            println!("row {i}: {} {v:.6e}", args.metric);
        }
        println!("mean: {mean:.6e}");
    }
    if choice.requested == DeviceSpec::Auto {
        eprintln!("device: {choice}");
    }
    Ok(())
}

/// `attrib metrics --metric randomization`.
fn run_randomization(args: MetricsArgs, registry: &Registry) -> Result<()> {
    if args.normalize_attribution || args.radius.is_some() || args.method_flags.samples.is_some() || args.repeat > 0 {
        return Err(AttribError::NotApplicable(
            "--normalize-attribution, --radius, --samples and --repeat do not apply to --metric randomization".into(),
        ));
    }
    let mode: Mode = args.randomization.parse()?;
    let seed = args.method_flags.seed.unwrap_or(0);
    let choice = args.device.parse::<DeviceSpec>()?.choose()?;
    let device = choice.device;
    let target = crate::explain::parse_target(&args.target)?;
    crate::outputs::check_model(&args.model)?;
    let tensors = args.inputs.load(device)?.tensors;
    let flags = crate::explain::MethodFlags { seed: None, ..args.method_flags.clone() };
    let (method, spec): (Box<dyn Attribution>, serde_json::Value) = if args.method == "sobel-edges" {
        (Box::new(SobelEdges), json!({"method": "sobel-edges"}))
    } else {
        let spec = crate::methods::spec_from_flags(registry, &args.method, &flags.values(), &args.batch)?;
        (registry.build(&spec, &tensors)?, serde_json::to_value(&spec).map_err(|e| AttribError::Internal(e.to_string()))?)
    };
    let model = TorchScriptModel::load(&args.model, device)?;
    let clock = Instant::now();
    let params = RandomizationParams { mode, seed, ..Default::default() };
    let r = model_randomization(method.as_ref(), &model, &Inputs::multi(tensors), &target, &params)?;
    let elapsed_ms = clock.elapsed().as_secs_f64() * 1e3;
    if args.json {
        let steps: Vec<serde_json::Value> = r
            .steps
            .iter()
            .map(|s| json!({"randomized": s.randomized, "spearman_abs": s.spearman_abs, "mean_abs": s.mean_abs(), "spearman": s.spearman, "mean": s.mean_signed()}))
            .collect();
        let summary = json!({
            "metric": "randomization", "method": method.info().name, "spec": spec, "mode": r.mode, "seed": seed,
            "layers": r.layers, "steps": steps, "targets": r.targets, "elapsed_ms": elapsed_ms,
            "device": attrib::tensor::device_name(device), "model": args.model,
        });
        println!("{summary}");
    } else {
        for s in &r.steps {
            let show = |v: Option<f64>| v.map_or("undefined".to_string(), |v| format!("{v:.4}"));
            println!("random {}: spearman |attr| {}, signed {}", s.randomized.join("+"), show(s.mean_abs()), show(s.mean_signed()));
        }
    }
    if choice.requested == DeviceSpec::Auto {
        eprintln!("device: {choice}");
    }
    Ok(())
}
