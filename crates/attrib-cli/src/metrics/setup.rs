//! `attrib metrics`, first half: the flags read into [`Settings`] (no file touched), then the
//! device, model, inputs, method and the metric's baseline loaded into a [`Job`].

use super::{Metric, MetricsArgs};
use attrib::methods::{Args, MethodDoc, Registry};
use attrib::metrics::Road;
use attrib::prelude::*;
use attrib::tensor::DeviceChoice;
use attrib::{BaselineSpec, MaskSpec, Result};
use serde_json::Value;
use std::path::PathBuf;

/// What removed features become (`--replace`).
pub(super) enum Replace {
    /// A baseline (`zeros`, a number, `blur:SIGMA`, `uniform:LOW,HIGH`, a .npy).
    Baseline(BaselineSpec),
    /// ROAD's noisy linear imputation, with this noise.
    Road(f64),
}

/// Parse `--replace` (zeros when absent).
pub(super) fn parse_replace(s: Option<&str>) -> Result<Replace> {
    let Some(s) = s.map(str::trim) else { return Ok(Replace::Baseline(BaselineSpec::Zeros)) };
    if s == "road" {
        return Ok(Replace::Road(Road::default().noise));
    }
    if let Some(rest) = s.strip_prefix("road:") {
        return rest
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Replace::Road)
            .ok_or_else(|| AttribError::param("replace", format!("`{s}`: write the noise as `road:0.01` (finite, >= 0)")));
    }
    s.parse::<BaselineSpec>()
        .map(Replace::Baseline)
        .map_err(|_| AttribError::param("replace", format!("`{s}` is not `road`, `road:NOISE`, `zeros`, a number, `blur:SIGMA`, `uniform:LOW,HIGH` or a .npy file")))
}

/// The metric's settings read from the flags, checked before any file is read.
pub(super) struct Settings {
    /// Which metric.
    pub metric: Metric,
    /// Perturbations (faithfulness: random subsets) per row: `--samples`.
    pub samples: usize,
    /// The metric's seed: `--seed`.
    pub seed: u64,
    /// The curves' feature groups (`--feature-mask` given to deletion / insertion).
    pub metric_masks: Vec<String>,
    /// Completeness of a method that takes no baseline: `--baseline` is the metric's alone.
    pub own_baseline: bool,
    /// The method's spec, from the method flags less the metric's own.
    pub spec: MethodSpec,
    /// Noise scale: `--radius`, or the metric's default.
    pub radius: f64,
    /// What removed features become: `--replace`.
    pub replace: Replace,
    /// `metric_masks` parsed.
    pub mask_specs: Vec<MaskSpec>,
}

impl Settings {
    /// Read the flags of `metric` (not randomization). `--samples`, `--seed` and (for the
    /// curves) `--feature-mask` are the metric's; the method's own go through `--param`. For
    /// completeness, `--baseline` is the method's, and the metric's alone for a method that
    /// takes none.
    pub(super) fn read(metric: Metric, args: &MetricsArgs, registry: &Registry) -> Result<Settings> {
        let samples = args.method_flags.samples.unwrap_or(if metric == Metric::Faithfulness { 100 } else { 10 });
        let seed = args.method_flags.seed.unwrap_or(0);
        let takes_baselines = registry.entry(&args.method)?.doc().params.iter().any(|p| p.name == "baselines");
        let metric_masks = if metric.curve() { args.method_flags.feature_mask.clone() } else { Vec::new() };
        let own_baseline = metric == Metric::Completeness && !takes_baselines;
        let flags = crate::explain::MethodFlags {
            samples: None,
            seed: None,
            feature_mask: if metric.curve() { Vec::new() } else { args.method_flags.feature_mask.clone() },
            baseline: if own_baseline { Vec::new() } else { args.method_flags.baseline.clone() },
            ..args.method_flags.clone()
        };
        let spec = crate::methods::spec_from_flags(registry, &args.method, &flags.values(), &args.batch)?;
        let radius = args.radius.unwrap_or(if metric == Metric::Infidelity { 0.1 } else { 0.02 });
        let replace = parse_replace(args.replace.as_deref())?;
        if metric == Metric::Faithfulness && matches!(replace, Replace::Road(_)) {
            return Err(AttribError::NotApplicable("--replace road applies to --metric deletion and insertion; faithfulness takes a baseline".into()));
        }
        let mask_specs = metric_masks.iter().map(|m| m.parse::<MaskSpec>()).collect::<Result<Vec<_>>>()?;
        Ok(Settings { metric, samples, seed, metric_masks, own_baseline, spec, radius, replace, mask_specs })
    }
}

/// Everything a metric runs on, loaded.
pub(super) struct Job {
    /// The device and how it was chosen.
    pub choice: DeviceChoice,
    /// `--target` as given (argmax not yet resolved).
    pub target: Target,
    /// Per input: the image files of each row (empty for .npy inputs).
    pub files: Vec<Vec<PathBuf>>,
    /// The method, built for these inputs.
    pub method: Box<dyn Attribution>,
    /// The model.
    pub model: TorchScriptModel,
    /// The batching flags.
    pub options: BatchOptions,
    /// The curves' feature groups (`--feature-mask`), loaded.
    pub masks: Option<Vec<FeatureMask>>,
    /// Whether features are pixels (every input 4-D or more).
    pub pixels: bool,
    /// The metric's baseline: `--replace`, or for completeness the method's.
    pub reference: Baselines,
    /// The inputs.
    pub inputs: Inputs,
    /// Whether the method multiplies by inputs (infidelity's perturbation).
    pub multiply: bool,
}

impl Job {
    /// Choose the device, load the inputs, the method and the model, the metric's masks and
    /// baseline, and warm the model up.
    pub(super) fn load(args: &MetricsArgs, registry: &Registry, s: &Settings) -> Result<Job> {
        let choice = args.device.parse::<DeviceSpec>()?.choose()?;
        let device = choice.device;
        let target = crate::explain::parse_target(&args.target)?;
        crate::outputs::check_model(&args.model)?;
        let loaded = args.inputs.load(device)?;
        let tensors = loaded.tensors;
        let method = registry.build(&s.spec, &tensors)?;
        let model = TorchScriptModel::load(&args.model, device)?;
        let options = args.batch.options()?;
        let masks = if s.mask_specs.is_empty() { None } else { Some(attrib::spec::load_masks(&s.mask_specs, &tensors)?) };
        let pixels = tensors.iter().all(|t| t.dim() >= 4);
        let reference = reference(args, registry, s, tensors.len())?;
        let inputs = Inputs::multi(tensors);
        let work = if registry.entry(&args.method)?.doc().flags.needs_gradients {
            attrib::tensor::warm::Work::Gradients
        } else {
            attrib::tensor::warm::Work::Forward
        };
        attrib::tensor::warm::warm_up(&model, &inputs, &options, work);
        let multiply = method.info().multiplies_by_inputs;
        Ok(Job { choice, target, files: loaded.files, method, model, options, masks, pixels, reference, inputs, multiply })
    }
}

/// The metric's baseline: `--replace`, or for completeness the method's.
fn reference(args: &MetricsArgs, registry: &Registry, s: &Settings, n_inputs: usize) -> Result<Baselines> {
    Ok(match (&s.replace, s.metric) {
        (_, Metric::Completeness) => {
            let given = if s.own_baseline {
                args.method_flags.baseline.iter().map(|b| b.parse::<BaselineSpec>()).collect::<Result<Vec<_>>>()?
            } else {
                s.spec.params.get("baselines").map(baseline_specs).transpose()?.unwrap_or_default()
            };
            let distribution = reads_distribution(registry.entry(&args.method)?.doc(), s)?;
            attrib::spec::load_baselines(&given, n_inputs, distribution, s.seed)?
        }
        (Replace::Baseline(b), _) => attrib::spec::load_baselines(std::slice::from_ref(b), n_inputs, false, s.seed)?,
        (Replace::Road(_), _) => Baselines::default(),
    })
}

/// Whether the method reads a `.npy` baseline as samples `[S, ...]` to average over, as the
/// completeness reference must then: always for the methods that draw baselines from samples
/// (gradient-shap, deep-lift-shap: their `baselines` parameter says so), and for the Shapley
/// family (exact-shapley, shapley-sampling, owen-values, kernel-shap, lime) when the spec sets
/// `baseline_distribution`, its value read as the method reads it (its default when unset).
fn reads_distribution(doc: &MethodDoc, s: &Settings) -> Result<bool> {
    const FLAG: &str = "baseline_distribution";
    if doc.params.iter().any(|p| p.name == "baselines" && p.doc.contains("samples")) {
        return Ok(true);
    }
    let Some(param) = doc.params.iter().find(|p| p.name == FLAG) else { return Ok(false) };
    let given: serde_json::Map<String, Value> = s.spec.params.get(FLAG).map(|v| (FLAG.to_string(), v.clone())).into_iter().collect();
    Args::check_given(doc.name, std::slice::from_ref(param), &Value::Object(given))?.bool(FLAG)
}

/// Baseline specs of a JSON spec value (one string or a list).
fn baseline_specs(v: &Value) -> Result<Vec<BaselineSpec>> {
    let texts: Vec<String> = match v {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect(),
        other => return Err(AttribError::param("baselines", format!("`{other}` is not a baseline or a list of baselines"))),
    };
    texts.iter().map(|t| t.parse::<BaselineSpec>()).collect()
}
