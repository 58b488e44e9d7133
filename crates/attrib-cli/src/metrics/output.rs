//! `attrib metrics`' output: the `--json` summary, or one line per row and the mean.

use super::compute::Outcome;
use super::setup::{Job, Replace, Settings};
use super::{Metric, MetricsArgs};
use attrib::metrics::Road;
use serde_json::{json, Value};

/// How long the work took, in milliseconds.
pub(super) struct Times {
    /// The method's attribution (`None` when read from files or run by the metric).
    pub attribution_ms: Option<f64>,
    /// The metric's first computation.
    pub first_ms: f64,
    /// The median of the repeats (the first computation's without `--repeat`).
    pub elapsed_ms: f64,
}

/// Print the outcome: the `--json` summary on stdout, else one line per row and the mean.
pub(super) fn print(args: &MetricsArgs, s: &Settings, job: &Job, outcome: Outcome, times: &Times) {
    let defined: Vec<f64> = outcome.values.iter().flatten().copied().collect();
    let mean = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
    let undefined = outcome.values.len() - defined.len();
    if args.json {
        println!("{}", summary(args, s, job, outcome, mean, undefined, times));
    } else {
        let name = s.metric.name();
        for (i, v) in outcome.values.iter().enumerate() {
            match v {
                Some(v) => println!("row {i}: {name} {v:.6e}"),
                None => println!("row {i}: {name} undefined"),
            }
        }
        match mean {
            Some(m) => println!("mean: {m:.6e}"),
            None => println!("mean: undefined"),
        }
    }
}

/// The `--json` summary: the values, their mean, the settings used and the times, with the
/// metric's own fields (`outcome.extra`) added.
fn summary(args: &MetricsArgs, s: &Settings, job: &Job, outcome: Outcome, mean: Option<f64>, undefined: usize, times: &Times) -> Value {
    let metric = s.metric;
    let noise = match metric {
        Metric::Infidelity => json!({"gaussian": {"stdev": s.radius}}),
        m if m.sensitivity() => json!({"uniform": {"radius": s.radius}}),
        _ => Value::Null,
    };
    let replacement = match (&s.replace, metric) {
        (_, Metric::Completeness) => json!({"baselines": job.reference.describe()}),
        (Replace::Road(noise), _) => json!({"road": {"noise": noise, "tolerance": Road::default().tolerance}}),
        (Replace::Baseline(_), _) => json!({"baselines": job.reference.describe()}),
    };
    let mut summary = json!({
        "metric": metric.name(),
        "method": job.method.info().name,
        "spec": s.spec,
        "values": outcome.values,
        "mean": mean,
        "undefined": undefined,
        "targets": outcome.targets,
        "samples": (!metric.curve() && metric != Metric::Completeness).then_some(s.samples),
        "seed": s.seed,
        "noise": noise,
        "replace": (metric.curve() || metric == Metric::Faithfulness || metric == Metric::Completeness).then_some(replacement),
        "feature_mask": (!s.metric_masks.is_empty()).then_some(&s.metric_masks),
        "normalize": args.normalize_attribution,
        "multiply_by_inputs": Value::Null,
        "attribution_ms": times.attribution_ms,
        "attributions": (!args.attributions.is_empty()).then_some(&args.attributions),
        "first_ms": times.first_ms,
        "elapsed_ms": times.elapsed_ms,
        "repeats": args.repeat,
        "device": attrib::tensor::device_name(job.choice.device),
        "model": args.model,
        "input_files": job.files,
    });
    if let (Value::Object(out), Value::Object(extra)) = (&mut summary, outcome.extra) {
        out.extend(extra);
    }
    summary
}
