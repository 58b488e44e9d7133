//! `attrib metrics`: how far to trust a method's attributions (infidelity, max- and
//! avg-sensitivity, deletion and insertion curves, faithfulness correlation, the completeness gap,
//! the model randomisation test).
//!
//! A thin shell over `attrib::metrics`: the method is built from the same flags as
//! `attrib explain` (through the registry), the metric's own flags fill the library's parameter
//! structs ([`InfidelityParams`], [`SensitivityParams`], [`DeletionInsertionParams`],
//! [`FaithfulnessParams`], [`CompletenessParams`]).

use attrib::methods::Registry;
use attrib::metrics::randomization::{model_randomization, Mode, RandomizationParams, SobelEdges};
use attrib::metrics::sensitivity::sensitivities;
use attrib::metrics::{
    completeness_gap, deletion_insertion, faithfulness_correlation, infidelity, CompletenessParams, DeletionInsertionParams, FaithfulnessParams,
    InfidelityParams, Noise, Road, SensitivityParams,
};
use attrib::prelude::*;
use attrib::{BaselineSpec, MaskSpec, Metadata, Result, TorchResultExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `attrib metrics`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  attrib metrics --metric infidelity --model m.pt --input x.npy --method saliency --json
  attrib metrics --metric infidelity --model m.pt --input x.npy --method integrated-gradients --steps 32 --samples 100 --radius 0.05 --normalize-attribution --json
  attrib metrics --metric sensitivity-max --model m.pt --input x.npy --method saliency --samples 10 --radius 0.02 --seed 1 --json
  attrib metrics --metric avg-sensitivity --model m.pt --input x.npy --method saliency --samples 10 --json
  attrib metrics --metric deletion --model m.pt --input x.npy --method integrated-gradients --feature-mask grid:4x4 --replace road --json
  attrib metrics --metric insertion --model m.pt --input x.npy --method saliency --abs --replace blur:3 --curve-steps 10 --json
  attrib metrics --metric faithfulness --model m.pt --input x.npy --method input-x-gradient --samples 100 --subset-size 20 --json
  attrib metrics --metric deletion --model m.pt --input x.npy --method integrated-gradients --attributions ig.npy --json
  attrib metrics --metric completeness --model m.pt --input x.npy --method integrated-gradients --baseline 0.5 --json
  attrib metrics --metric randomization --model m.pt --input x.npy --method saliency --abs --randomization cascading --json
  attrib metrics --metric randomization --model m.pt --input x.npy --method sobel-edges --json

Here --samples, --seed and --radius are the metric's: perturbations (faithfulness: random subsets) per
row, their seed (default 0), and the noise scale (infidelity: standard deviation of Gaussian noise,
default 0.1; sensitivity-max and avg-sensitivity: radius of uniform L-inf noise, default 0.02).
Defaults of --samples: 10, faithfulness 100. A sampling method's own seed and draws are set with
--param seed=N and --param n_samples=N. Infidelity's perturbation is I = x - x~ for methods that do
not multiply by inputs, I = (x - x~)/x for those that do.

deletion / insertion (Petsiuk et al. 2018): the target's softmax probability (--raw-scores: the raw
output) as the top-attributed features are removed (or put back into an empty input) in
--curve-steps steps (default 20); the value per row is the area under the curve (deletion: lower is
better, insertion: higher). Features: pixels of 4-D image inputs, every scalar otherwise, or the
groups of --feature-mask (grid:HxW, slic:N, a .npy or label image: the metric's groups here; a
method's own mask goes through --param feature_mask=...). --replace: what removed features become,
a baseline (zeros, a number, blur:SIGMA, uniform:LOW,HIGH, a .npy) or `road` / `road:NOISE`, ROAD's
noisy linear imputation from the neighbouring pixels (Rong et al. 2022; noise 0.01, seeded by --seed).

faithfulness (Bhatt et al. 2020): per row the Pearson correlation between the attribution mass of
--samples random subsets of --subset-size features (default a tenth) and the output drop when they
take the --replace baseline (default zeros); undefined rows are null.

avg-sensitivity: the mean over the perturbed copies where sensitivity-max takes the maximum.

completeness: per row |sum of attributions - (f(x) - f(baseline))| of the raw output, with the
signed and relative gap in --json; the baseline is the method's --baseline (zeros by default; for a
method without one, --baseline is the metric's alone).

randomization (Adebayo et al. 2018): the method's attributions on the model against those on copies
whose weights are redrawn at random, layer by layer from the output (--randomization cascading,
default) or one layer at a time (independent); per step and row Spearman's rank correlation of
|attribution| (and signed), channels summed. --seed seeds the weights. --method sobel-edges is the
model-independent edge-detector control (correlation 1 at every step).")]
pub struct MetricsArgs {
    /// Metric: infidelity, sensitivity-max, avg-sensitivity, deletion, insertion, faithfulness,
    /// completeness or randomization.
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
    /// Deletion / insertion: number of steps (default 20).
    #[arg(long = "curve-steps")]
    pub curve_steps: Option<usize>,
    /// Deletion / insertion / faithfulness: what removed features become: a baseline (`zeros`,
    /// a number, `blur:SIGMA`, `uniform:LOW,HIGH`, a .npy) or `road[:NOISE]` (deletion and
    /// insertion only). Default zeros.
    #[arg(long, allow_negative_numbers = true)]
    pub replace: Option<String>,
    /// Deletion / insertion: score the raw output instead of softmax probabilities.
    #[arg(long = "raw-scores")]
    pub raw_scores: bool,
    /// Faithfulness: features per random subset (default a tenth of the features).
    #[arg(long = "subset-size")]
    pub subset_size: Option<usize>,
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
    /// Score attributions read from files (one .npy per input, shaped like it, comma-separated)
    /// instead of running the method: infidelity, deletion, insertion, faithfulness and
    /// completeness. `--method` then names the method that made them (infidelity reads whether
    /// it multiplies by inputs).
    #[arg(long, value_delimiter = ',')]
    pub attributions: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Metric {
    Infidelity,
    SensitivityMax,
    AvgSensitivity,
    Deletion,
    Insertion,
    Faithfulness,
    Completeness,
    Randomization,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Infidelity => "infidelity",
            Metric::SensitivityMax => "sensitivity-max",
            Metric::AvgSensitivity => "avg-sensitivity",
            Metric::Deletion => "deletion",
            Metric::Insertion => "insertion",
            Metric::Faithfulness => "faithfulness",
            Metric::Completeness => "completeness",
            Metric::Randomization => "randomization",
        }
    }
    fn sensitivity(self) -> bool {
        matches!(self, Metric::SensitivityMax | Metric::AvgSensitivity)
    }
    fn curve(self) -> bool {
        matches!(self, Metric::Deletion | Metric::Insertion)
    }
}

const METRICS: &str = "infidelity, sensitivity-max, avg-sensitivity, deletion, insertion, faithfulness, completeness or randomization";

fn parse_metric(s: &str) -> Result<Metric> {
    match s.trim() {
        "infidelity" => Ok(Metric::Infidelity),
        "sensitivity-max" | "sensitivity_max" => Ok(Metric::SensitivityMax),
        "avg-sensitivity" | "avg_sensitivity" => Ok(Metric::AvgSensitivity),
        "deletion" => Ok(Metric::Deletion),
        "insertion" => Ok(Metric::Insertion),
        "faithfulness" | "faithfulness-correlation" | "faithfulness_correlation" => Ok(Metric::Faithfulness),
        "completeness" | "completeness-gap" | "completeness_gap" => Ok(Metric::Completeness),
        "randomization" | "randomisation" => Ok(Metric::Randomization),
        other => Err(AttribError::param("metric", format!("unknown metric `{other}`; use {METRICS}"))),
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

/// What removed features become (`--replace`).
enum Replace {
    Baseline(BaselineSpec),
    Road(f64),
}

fn parse_replace(s: Option<&str>) -> Result<Replace> {
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

/// Flags that apply only to some metrics: an error naming the flag when given to another.
fn check_flags(metric: Metric, args: &MetricsArgs) -> Result<()> {
    let flags = &args.method_flags;
    let given: [(&str, bool, bool); 8] = [
        ("--normalize-attribution", args.normalize_attribution, metric == Metric::Infidelity),
        ("--radius", args.radius.is_some(), metric == Metric::Infidelity || metric.sensitivity()),
        ("--curve-steps", args.curve_steps.is_some(), metric.curve()),
        ("--raw-scores", args.raw_scores, metric.curve()),
        ("--replace", args.replace.is_some(), metric.curve() || metric == Metric::Faithfulness),
        ("--subset-size", args.subset_size.is_some(), metric == Metric::Faithfulness),
        ("--samples", flags.samples.is_some(), !metric.curve() && metric != Metric::Completeness),
        ("--seed", flags.seed.is_some(), metric != Metric::Completeness),
    ];
    for (flag, set, applies) in given {
        if set && !applies {
            return Err(AttribError::NotApplicable(format!("{flag} does not apply to --metric {}", metric.name())));
        }
    }
    Ok(())
}

/// Per-row values of a metric, `None` where undefined, and what else `--json` reports.
struct Outcome {
    values: Vec<Option<f64>>,
    targets: Option<Vec<i64>>,
    extra: Value,
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

/// Run `attrib metrics`.
pub fn run(args: MetricsArgs, registry: &Registry) -> Result<()> {
    let metric = parse_metric(&args.metric)?;
    if !args.attributions.is_empty() && (metric == Metric::Randomization || metric.sensitivity()) {
        return Err(AttribError::NotApplicable(format!(
            "--attributions does not apply to --metric {}: it runs the method itself (on perturbed inputs or randomised models)",
            metric.name()
        )));
    }
    if metric == Metric::Randomization {
        return run_randomization(args, registry);
    }
    if args.method == "sobel-edges" {
        return Err(AttribError::NotApplicable("--method sobel-edges is the control of --metric randomization only".into()));
    }
    check_flags(metric, &args)?;
    // --samples, --seed and (for the curves) --feature-mask are the metric's; the method's own go
    // through --param. For completeness, --baseline is the method's, and the metric's alone for a
    // method that takes none.
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
    let choice = args.device.parse::<DeviceSpec>()?.choose()?;
    let device = choice.device;
    let target = crate::explain::parse_target(&args.target)?;
    crate::outputs::check_model(&args.model)?;
    let loaded = args.inputs.load(device)?;
    let tensors = loaded.tensors;
    let method = registry.build(&spec, &tensors)?;
    let model = TorchScriptModel::load(&args.model, device)?;
    let options = args.batch.options()?;
    let masks = if mask_specs.is_empty() { None } else { Some(attrib::spec::load_masks(&mask_specs, &tensors)?) };
    let n_inputs = tensors.len();
    let pixels = tensors.iter().all(|t| t.dim() >= 4);
    // The metric's baseline: --replace, or for completeness the method's.
    let reference = match (&replace, metric) {
        (_, Metric::Completeness) => {
            let given = if own_baseline { args.method_flags.baseline.iter().map(|b| b.parse::<BaselineSpec>()).collect::<Result<Vec<_>>>()? } else { spec.params.get("baselines").map(baseline_specs).transpose()?.unwrap_or_default() };
            // Methods that draw baselines from samples (gradient-shap, deep-lift-shap) read a .npy as a distribution.
            let distribution = registry.entry(&args.method)?.doc().params.iter().any(|p| p.name == "baselines" && p.doc.contains("samples"));
            attrib::spec::load_baselines(&given, n_inputs, distribution, seed)?
        }
        (Replace::Baseline(b), _) => attrib::spec::load_baselines(std::slice::from_ref(b), n_inputs, false, seed)?,
        (Replace::Road(_), _) => Baselines::default(),
    };
    let inputs = Inputs::multi(tensors);
    let work = if registry.entry(&args.method)?.doc().flags.needs_gradients {
        attrib::tensor::warm::Work::Gradients
    } else {
        attrib::tensor::warm::Work::Forward
    };
    attrib::tensor::warm::warm_up(&model, &inputs, &options, work);
    let multiply = method.info().multiplies_by_inputs;

    let clock = Instant::now();
    let attr = if !args.attributions.is_empty() {
        Some(attributions_from_files(&args.attributions, inputs.tensors(), method.info())?)
    } else if metric.sensitivity() {
        None
    } else {
        Some(method.attribute(&model, &inputs, &target)?)
    };
    let attribution_ms = attr.as_ref().filter(|_| args.attributions.is_empty()).map(|_| clock.elapsed().as_secs_f64() * 1e3);
    // Explain the targets the attribution explained (argmax resolved once).
    let target = match attr.as_ref().and_then(|a| a.meta.targets.clone()) {
        Some(t) => Target::PerSample(t),
        None => target,
    };
    let some = |v: Vec<f64>| v.into_iter().map(Some).collect::<Vec<_>>();
    let compute = || -> Result<Outcome> {
        let a = || attr.as_ref().ok_or_else(|| AttribError::Internal("no attribution".into()));
        match metric {
            Metric::Infidelity => {
                let a = a()?;
                let params = InfidelityParams {
                    n_perturb_samples: samples,
                    noise: Noise::Gaussian { stdev: radius },
                    multiply_by_inputs: multiply,
                    normalize: args.normalize_attribution,
                    seed,
                    batch: options,
                    ..Default::default()
                };
                let values = infidelity(&model, &inputs, &target, &a.values, &params)?;
                Ok(Outcome { values: some(values), targets: a.meta.targets.clone(), extra: json!({"multiply_by_inputs": multiply}) })
            }
            Metric::SensitivityMax | Metric::AvgSensitivity => {
                let params = SensitivityParams { n_perturb_samples: samples, noise: Noise::Uniform { radius }, seed, ..Default::default() };
                let (both, clean) = sensitivities(method.as_ref(), &model, &inputs, &target, &params)?;
                let values = if metric == Metric::SensitivityMax { both.max } else { both.mean };
                Ok(Outcome { values: some(values), targets: clean.meta.targets, extra: json!({}) })
            }
            Metric::Deletion | Metric::Insertion => {
                let a = a()?;
                let road = match replace {
                    Replace::Road(noise) => Some(Road { noise, seed, ..Default::default() }),
                    Replace::Baseline(_) => None,
                };
                let params = DeletionInsertionParams {
                    steps: args.curve_steps.unwrap_or(20),
                    baselines: reference.shallow_clone(),
                    road,
                    feature_masks: masks.as_ref().map(|m| m.iter().map(|f| FeatureMask::new(f.ids().shallow_clone())).collect::<Result<Vec<_>>>()).transpose()?,
                    pixels,
                    probabilities: !args.raw_scores,
                    batch: options,
                };
                let c = deletion_insertion(&model, &inputs, &target, &a.values, &params)?;
                let (values, curves) = if metric == Metric::Deletion { (c.deletion_auc, c.deletion) } else { (c.insertion_auc, c.insertion) };
                let extra = json!({"curves": curves, "fractions": c.fractions, "features": c.features, "steps": params.steps,
                    "scores": if args.raw_scores { "raw" } else { "probabilities" }});
                Ok(Outcome { values: some(values), targets: a.meta.targets.clone(), extra })
            }
            Metric::Faithfulness => {
                let a = a()?;
                let params = FaithfulnessParams { n_subsets: samples, subset_size: args.subset_size, baselines: reference.shallow_clone(), seed, batch: options };
                let values = faithfulness_correlation(&model, &inputs, &target, &a.values, &params)?;
                Ok(Outcome { values, targets: a.meta.targets.clone(), extra: json!({"subset_size": args.subset_size}) })
            }
            Metric::Completeness => {
                let a = a()?;
                let params = CompletenessParams { baselines: reference.shallow_clone(), batch: options };
                let c = completeness_gap(&model, &inputs, &target, &a.values, &params)?;
                let defined: Vec<f64> = c.relative.iter().flatten().copied().collect();
                let extra = json!({"gap": c.gap, "relative": c.relative, "sum": c.sum, "delta": c.delta,
                    "mean_relative": (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)});
                Ok(Outcome { values: some(c.abs_gap), targets: a.meta.targets.clone(), extra })
            }
            Metric::Randomization => Err(AttribError::Internal("the randomization test runs apart".into())),
        }
    };
    let clock = Instant::now();
    let outcome = compute()?;
    let first_ms = clock.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let clock = Instant::now();
        compute()?;
        times.push(clock.elapsed().as_secs_f64() * 1e3);
    }
    let elapsed_ms = if times.is_empty() { first_ms } else { median(times.clone()) };
    let defined: Vec<f64> = outcome.values.iter().flatten().copied().collect();
    let mean = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
    let undefined = outcome.values.len() - defined.len();
    if args.json {
        let noise = match metric {
            Metric::Infidelity => json!({"gaussian": {"stdev": radius}}),
            m if m.sensitivity() => json!({"uniform": {"radius": radius}}),
            _ => Value::Null,
        };
        let replacement = match (&replace, metric) {
            (_, Metric::Completeness) => json!({"baselines": reference.describe()}),
            (Replace::Road(noise), _) => json!({"road": {"noise": noise, "tolerance": Road::default().tolerance}}),
            (Replace::Baseline(_), _) => json!({"baselines": reference.describe()}),
        };
        let mut summary = json!({
            "metric": metric.name(),
            "method": method.info().name,
            "spec": spec,
            "values": outcome.values,
            "mean": mean,
            "undefined": undefined,
            "targets": outcome.targets,
            "samples": (!metric.curve() && metric != Metric::Completeness).then_some(samples),
            "seed": seed,
            "noise": noise,
            "replace": (metric.curve() || metric == Metric::Faithfulness || metric == Metric::Completeness).then_some(replacement),
            "feature_mask": (!metric_masks.is_empty()).then_some(&metric_masks),
            "normalize": args.normalize_attribution,
            "multiply_by_inputs": Value::Null,
            "attribution_ms": attribution_ms,
            "attributions": (!args.attributions.is_empty()).then_some(&args.attributions),
            "first_ms": first_ms,
            "elapsed_ms": elapsed_ms,
            "repeats": args.repeat,
            "device": attrib::tensor::device_name(device),
            "model": args.model,
            "input_files": loaded.files,
        });
        if let (Value::Object(out), Value::Object(extra)) = (&mut summary, outcome.extra) {
            out.extend(extra);
        }
        println!("{summary}");
    } else {
        for (i, v) in outcome.values.iter().enumerate() {
            match v {
                Some(v) => println!("row {i}: {} {v:.6e}", metric.name()),
                None => println!("row {i}: {} undefined", metric.name()),
            }
        }
        match mean {
            Some(m) => println!("mean: {m:.6e}"),
            None => println!("mean: undefined"),
        }
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
