//! `attrib metrics --metric randomization`: the model randomisation test (Adebayo et al. 2018),
//! which runs the method itself on randomised copies of the model.

use super::MetricsArgs;
use attrib::methods::Registry;
use attrib::metrics::randomization::{model_randomization, Mode, RandomizationParams, SobelEdges};
use attrib::prelude::*;
use attrib::Result;
use serde_json::json;
use std::time::Instant;

/// Run `attrib metrics --metric randomization`.
pub(super) fn run(args: MetricsArgs, registry: &Registry) -> Result<()> {
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
