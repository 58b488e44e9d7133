//! `attrib metrics`, second half: the attribution to score (run, or read from `--attributions`),
//! the metric's per-row values ([`Outcome`]) and their timing (`--repeat`).

use super::setup::{Job, Replace, Settings};
use super::{Metric, MetricsArgs};
use attrib::metrics::sensitivity::sensitivities;
use attrib::metrics::{
    completeness_gap, deletion_insertion, faithfulness_correlation, infidelity, CompletenessParams, DeletionInsertionParams, FaithfulnessParams,
    InfidelityParams, Noise, Road, SensitivityParams,
};
use attrib::prelude::*;
use attrib::{Metadata, Result, TorchResultExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Per-row values of a metric, `None` where undefined, and what else `--json` reports.
pub(super) struct Outcome {
    /// The metric per row.
    pub values: Vec<Option<f64>>,
    /// The targets explained, when resolved.
    pub targets: Option<Vec<i64>>,
    /// The metric's own fields of the `--json` summary.
    pub extra: Value,
}

/// The attribution a metric scores, and how long the method took (`None` for one read from
/// files, and no attribution at all for the sensitivity metrics, which run the method
/// themselves).
pub(super) fn attribution(args: &MetricsArgs, metric: Metric, job: &Job) -> Result<(Option<Attributions>, Option<f64>)> {
    let clock = Instant::now();
    let attr = if !args.attributions.is_empty() {
        Some(attributions_from_files(&args.attributions, job.inputs.tensors(), job.method.info())?)
    } else if metric.sensitivity() {
        None
    } else {
        Some(job.method.attribute(&job.model, &job.inputs, &job.target)?)
    };
    let attribution_ms = attr.as_ref().filter(|_| args.attributions.is_empty()).map(|_| clock.elapsed().as_secs_f64() * 1e3);
    Ok((attr, attribution_ms))
}

/// Attributions read from `.npy` files, one per input and shaped like it (`--attributions`),
/// as made by the method `info` describes.
fn attributions_from_files(files: &[PathBuf], inputs: &[tch::Tensor], info: MethodInfo) -> Result<Attributions> {
    if files.len() != inputs.len() {
        return Err(AttribError::param("attributions", format!("{} file(s) for {} input(s); give one per input", files.len(), inputs.len())));
    }
    let mut values = Vec::with_capacity(files.len());
    for (k, (file, x)) in files.iter().zip(inputs).enumerate() {
        let a = attrib::convert::read_npy_tensor(file, x.device())?;
        if a.size() != x.size() {
            return Err(AttribError::InputShape(format!(
                "{} has shape {:?} and input {k} {:?}: attributions are shaped like their input",
                file.display(),
                a.size(),
                x.size()
            )));
        }
        values.push(a.f_to_kind(x.kind()).ctx("reading attributions")?);
    }
    let info = MethodInfo { has_convergence_delta: false, ..info };
    let meta = Metadata::new(info, json!({ "files": files }), None, std::time::Duration::ZERO);
    Ok(Attributions { values, convergence_delta: None, meta })
}

/// What one metric computation reads: the flags, the settings, the loaded job, the attribution
/// (if any) and the targets it explained.
pub(super) struct Scoring<'a> {
    /// The flags.
    pub args: &'a MetricsArgs,
    /// The settings read from them.
    pub settings: &'a Settings,
    /// Model, inputs, method.
    pub job: &'a Job,
    /// The attribution scored (none for the sensitivity metrics).
    pub attr: Option<&'a Attributions>,
    /// The targets the attribution explained (argmax resolved once).
    pub target: &'a Target,
}

impl Scoring<'_> {
    fn attr(&self) -> Result<&Attributions> {
        self.attr.ok_or_else(|| AttribError::Internal("no attribution".into()))
    }

    /// The metric's values once.
    pub(super) fn compute(&self) -> Result<Outcome> {
        let (s, job, target) = (self.settings, self.job, self.target);
        let some = |v: Vec<f64>| v.into_iter().map(Some).collect::<Vec<_>>();
        match s.metric {
            Metric::Infidelity => {
                let a = self.attr()?;
                let params = InfidelityParams {
                    n_perturb_samples: s.samples,
                    noise: Noise::Gaussian { stdev: s.radius },
                    multiply_by_inputs: job.multiply,
                    normalize: self.args.normalize_attribution,
                    seed: s.seed,
                    batch: job.options,
                    ..Default::default()
                };
                let values = infidelity(&job.model, &job.inputs, target, &a.values, &params)?;
                Ok(Outcome { values: some(values), targets: a.meta.targets.clone(), extra: json!({"multiply_by_inputs": job.multiply}) })
            }
            Metric::SensitivityMax | Metric::AvgSensitivity => {
                let params = SensitivityParams { n_perturb_samples: s.samples, noise: Noise::Uniform { radius: s.radius }, seed: s.seed, ..Default::default() };
                let (both, clean) = sensitivities(job.method.as_ref(), &job.model, &job.inputs, target, &params)?;
                let values = if s.metric == Metric::SensitivityMax { both.max } else { both.mean };
                Ok(Outcome { values: some(values), targets: clean.meta.targets, extra: json!({}) })
            }
            Metric::Deletion | Metric::Insertion => self.curve(),
            Metric::Faithfulness => {
                let a = self.attr()?;
                let params = FaithfulnessParams {
                    n_subsets: s.samples,
                    subset_size: self.args.subset_size,
                    baselines: job.reference.shallow_clone(),
                    seed: s.seed,
                    batch: job.options,
                };
                let values = faithfulness_correlation(&job.model, &job.inputs, target, &a.values, &params)?;
                Ok(Outcome { values, targets: a.meta.targets.clone(), extra: json!({"subset_size": self.args.subset_size}) })
            }
            Metric::Completeness => self.completeness(),
            Metric::Randomization => Err(AttribError::Internal("the randomization test runs apart".into())),
        }
    }

    /// Deletion or insertion: the area under the curve per row, the curves in `extra`.
    fn curve(&self) -> Result<Outcome> {
        let (s, job, args) = (self.settings, self.job, self.args);
        let a = self.attr()?;
        let road = match s.replace {
            Replace::Road(noise) => Some(Road { noise, seed: s.seed, ..Default::default() }),
            Replace::Baseline(_) => None,
        };
        let params = DeletionInsertionParams {
            steps: args.curve_steps.unwrap_or(20),
            baselines: job.reference.shallow_clone(),
            road,
            feature_masks: job.masks.as_ref().map(|m| m.iter().map(|f| FeatureMask::new(f.ids().shallow_clone())).collect::<Result<Vec<_>>>()).transpose()?,
            pixels: job.pixels,
            probabilities: !args.raw_scores,
            batch: job.options,
        };
        let c = deletion_insertion(&job.model, &job.inputs, self.target, &a.values, &params)?;
        let (values, curves) = if s.metric == Metric::Deletion { (c.deletion_auc, c.deletion) } else { (c.insertion_auc, c.insertion) };
        let extra = json!({"curves": curves, "fractions": c.fractions, "features": c.features, "steps": params.steps,
            "scores": if args.raw_scores { "raw" } else { "probabilities" }});
        Ok(Outcome { values: values.into_iter().map(Some).collect(), targets: a.meta.targets.clone(), extra })
    }

    /// The completeness gap per row, the signed and relative gaps in `extra`.
    fn completeness(&self) -> Result<Outcome> {
        let job = self.job;
        let a = self.attr()?;
        let params = CompletenessParams { baselines: job.reference.shallow_clone(), batch: job.options };
        let c = completeness_gap(&job.model, &job.inputs, self.target, &a.values, &params)?;
        let defined: Vec<f64> = c.relative.iter().flatten().copied().collect();
        let extra = json!({"gap": c.gap, "relative": c.relative, "sum": c.sum, "delta": c.delta,
            "mean_relative": (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)});
        Ok(Outcome { values: c.abs_gap.into_iter().map(Some).collect(), targets: a.meta.targets.clone(), extra })
    }
}

/// The median of `v` (0 when empty).
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

/// Run `compute` once and `repeat` more times: its first outcome, the first call's time and
/// the median of the repeats (the first call's without repeats), in milliseconds.
pub(super) fn timed(repeat: usize, compute: impl Fn() -> Result<Outcome>) -> Result<(Outcome, f64, f64)> {
    let clock = Instant::now();
    let outcome = compute()?;
    let first_ms = clock.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let clock = Instant::now();
        compute()?;
        times.push(clock.elapsed().as_secs_f64() * 1e3);
    }
    let elapsed_ms = if times.is_empty() { first_ms } else { median(times.clone()) };
    Ok((outcome, first_ms, elapsed_ms))
}
