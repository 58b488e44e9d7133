//! `attrib compare`: run several methods on the same model and inputs, score them with
//! deletion/insertion curves and their rank agreement, and write a self-contained HTML report
//! with a JSON twin. See `docs/compare.md`.

//!
//! The steps, one module each: the method specs ([`config`]), the files read and the report's
//! paths ([`files`]), the model's predictions and targets ([`predict`]), running and scoring
//! the methods ([`runs`]), the figures ([`figures`]), the `--metrics` and `--attack` options
//! ([`robustness`], [`attack_figures`]); the report itself is `crate::report`.

use crate::report::{self, Report};
use attrib::metrics::DeletionInsertionParams;
use attrib::prelude::*;
use attrib::methods::{DefaultsContext, InputKind, Registry};
use attrib::tensor::DeviceChoice;
use std::path::PathBuf;
use tch::{Kind, Tensor};

mod attack_figures;
mod config;
mod files;
mod figures;
mod predict;
pub mod robustness;
mod runs;

/// Arguments of `attrib compare`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  attrib compare --model m.pt --input x.npy --out-dir report
  attrib compare --model m.pt --input x.npy --out-dir report --methods saliency,integrated-gradients,occlusion
  attrib compare --model m.pt --input x.npy --out-dir report --config methods.toml --repeat 5
  attrib compare --model m.pt --input x.npy --out-dir report --metrics infidelity,sensitivity-max --metrics-samples 20
  attrib compare --model m.pt --input x.npy --out-dir report --attack fgsm --epsilon 0.05 --bounds 0,1
  attrib compare --model m.pt --input x.npy --out-dir report --attack pgd --epsilon 0.1 --steps 20 --intersection-k 25

methods.toml holds one [[methods]] table per configuration:
  [[methods]]
  method = \"integrated-gradients\"
  label = \"ig-blur\"
  baselines = \"blur:5\"

  [[methods]]
  method = \"saliency\"")]
pub struct CompareArgs {
    /// TorchScript model (`torch.jit.trace(model, example).save(path)`).
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs (.npy arrays or images) and image preprocessing.
    #[command(flatten)]
    pub inputs: crate::input::InputArgs,
    /// What to explain: a class index N, `argmax` (the model's prediction), `none` (scalar-output
    /// model) or an int .npy file with one class index per row. Every method explains the same.
    #[arg(long, default_value = "argmax", allow_hyphen_values = true)]
    pub target: String,
    /// Comma-separated methods (default: every method that applies: the gradient methods for a
    /// differentiable model, feature-ablation, and occlusion for image inputs); `attrib methods`
    /// lists the names. Each runs with its defaults for these inputs.
    #[arg(long, value_delimiter = ',', conflicts_with = "config")]
    pub methods: Vec<String>,
    /// Method configurations to run side by side: a TOML file of `[[methods]]` tables or a JSON
    /// file (`{"methods": [...]}` or an array), each a spec such as
    /// `{"method": "integrated-gradients", "label": "ig-blur", "baselines": "blur:5"}`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run each attribution this many more times after the first (benchmark mode): the report
    /// shows the first call apart and the median of the repeats with min and max.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
    /// Folder for report.html, report.json and the PNG figures (created if missing).
    #[arg(long = "out-dir")]
    pub out_dir: PathBuf,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Seed of every random choice, for the methods that take one (gradient-shap, smoothgrad,
    /// feature-permutation), unless a configuration sets its own (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress bar and no messages on stderr (errors still print).
    #[arg(long)]
    pub quiet: bool,
    /// Expected number of classes: an error when the model's output width differs.
    #[arg(long)]
    pub classes: Option<i64>,
    /// Comma-separated class names, one per model output.
    #[arg(long, value_delimiter = ',', conflicts_with = "labels_file")]
    pub labels: Vec<String>,
    /// Class names: a JSON array of strings (.json) or a text file with one name per line.
    #[arg(long = "labels-file")]
    pub labels_file: Option<PathBuf>,
    /// Feature names of a tabular first input: a JSON array of strings, one per feature.
    #[arg(long = "feature-names")]
    pub feature_names: Option<PathBuf>,
    /// Steps of the deletion and insertion curves.
    #[arg(long = "curve-steps", default_value_t = 20)]
    pub curve_steps: usize,
    /// Rows that get figures in the report (metrics cover every row).
    #[arg(long = "report-rows", default_value_t = 16)]
    pub report_rows: usize,
    /// Bars per chart for tabular inputs.
    #[arg(long = "top-k", default_value_t = 10)]
    pub top_k: usize,
    /// Token-id inputs (an integer .npy, or --text with --vocab): the embedding layer whose
    /// attributions, summed over the embedding dimension, are the token attributions compared
    /// (default methods: layer-integrated-gradients and layer-gradient-x-activation there).
    #[arg(long = "embedding-layer", default_value = "embedding")]
    pub embedding_layer: String,
    /// How the shared tensor layer chunks and runs the work.
    #[command(flatten)]
    pub batch: crate::methods::BatchArgs,
    /// Infidelity and max-sensitivity columns (--metrics), the attack section (--attack).
    #[command(flatten)]
    pub robust: robustness::RobustArgs,
}

/// What went wrong in `attrib compare`.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// An error of the library.
    #[error(transparent)]
    Attrib(#[from] AttribError),
    /// A method failed; the message names it.
    #[error("method `{name}` failed: {source}")]
    Method {
        /// The method's name in `--methods`.
        name: String,
        /// Why.
        source: AttribError,
    },
    /// Bad flags or files, with what to do.
    #[error("{0}")]
    Usage(String),
}

type Result<T> = std::result::Result<T, CompareError>;

/// The kind of an input, from its shape.
fn kind_of(t: &Tensor) -> InputKind {
    InputKind::of_shape(&t.size())
}

/// Whether the target output depends on the inputs through gradients.
fn differentiable(model: &dyn Model, tensors: &[Tensor]) -> bool {
    tch::with_grad(|| {
        let leaves: Vec<Tensor> =
            tensors.iter().map(|t| t.narrow(0, 0, 1).detach().to_kind(Kind::Float).set_requires_grad(true)).collect();
        model.forward(&leaves, &[]).map(|o| o.requires_grad()).unwrap_or(false)
    })
}

/// What `attrib compare` checks before any work: the flags, the files they name, and the
/// report's paths.
struct Checked {
    /// The specs asked for (`None`: the default comparison).
    requested: Option<Vec<MethodSpec>>,
    /// The device and how it was chosen.
    choice: DeviceChoice,
    /// `--target`.
    target: Target,
    /// The class names.
    labels: Option<Vec<String>>,
    /// The feature names of a tabular first input.
    feature_names: Option<Vec<String>>,
    /// `--metrics`.
    metric_settings: Option<report::MetricSettings>,
    /// `--attack`.
    attack_plan: Option<robustness::AttackPlan>,
    /// The files the command reads (no output may be one of them).
    reads: crate::outputs::Reads,
}

/// Check everything that can be checked without work, and create the output folder.
fn check(args: &CompareArgs, registry: &Registry) -> Result<Checked> {
    let requested = config::requested_specs(args, registry)?;
    let choice = args.device.parse::<DeviceSpec>()?.choose()?;
    let target = crate::explain::parse_target(&args.target)?;
    let labels = files::read_labels(args)?;
    let feature_names = args.feature_names.as_deref().map(|p| files::json_strings(p, "feature names")).transpose()?;
    if args.curve_steps == 0 {
        return Err(CompareError::Usage("--curve-steps must be at least 1 (default 20)".into()));
    }
    if args.top_k == 0 {
        return Err(CompareError::Usage("--top-k must be at least 1 (default 10)".into()));
    }
    if args.classes.is_some_and(|c| c < 1) {
        return Err(CompareError::Usage("--classes must be at least 1".into()));
    }
    let metric_settings = robustness::metric_settings(&args.robust, args.seed)?;
    let attack_plan = robustness::attack_plan(&args.robust, args.batch.options()?)?;
    std::fs::create_dir_all(&args.out_dir).map_err(|e| {
        CompareError::Usage(format!("cannot create the output folder {}: {}", args.out_dir.display(), attrib::fs::io_reason(&e)))
    })?;
    // The report's files before any work: writable, and none of them a file the command reads.
    let reads = files::reads(args);
    files::check_report_paths(&args.out_dir, &[], &reads)?;
    crate::outputs::check_model(&args.model)?;
    Ok(Checked { requested, choice, target, labels, feature_names, metric_settings, attack_plan, reads })
}

/// The inputs and the model, loaded.
struct Job {
    /// The inputs as read (display images, files, vocabulary).
    loaded: crate::input::Loaded,
    /// The model's inputs.
    tensors: Vec<Tensor>,
    /// Kind of each input.
    kinds: Vec<InputKind>,
    /// The model.
    model: TorchScriptModel,
    /// `tensors` as the methods take them.
    inputs: Inputs,
    /// The token-id input, if any: the methods attribute at the embedding layer, and the report
    /// compares token attributions (see `crate::text`).
    token: Option<usize>,
    /// Rows.
    n: i64,
    /// The batching flags.
    batch: BatchOptions,
}

/// Load the inputs and the model, and check that they fit the options (`metrics`: whether
/// `--metrics` was given).
fn load(args: &CompareArgs, device: tch::Device, metrics: bool) -> Result<Job> {
    let loaded = args.inputs.load(device)?;
    let tensors: Vec<Tensor> = loaded.tensors.iter().map(|t| t.shallow_clone()).collect();
    let kinds: Vec<InputKind> = tensors.iter().map(kind_of).collect();
    let model = TorchScriptModel::load(&args.model, device)?;
    let inputs = Inputs::multi(tensors.iter().map(|t| t.shallow_clone()).collect());
    let token = crate::text::token_input(&tensors);
    if token.is_some() && tensors.len() != 1 {
        return Err(CompareError::Usage(
            "compare on token ids takes the ids as the only input; explain models with several inputs with `attrib explain`".into(),
        ));
    }
    let n = if token.is_some() { inputs.validate_token_ids()? } else { inputs.validate()? };
    if token.is_some() && metrics {
        return Err(CompareError::Usage(
            "--metrics infidelity/sensitivity-max do not apply to token-id inputs (they add noise to the inputs, and token ids are integers); drop --metrics".into(),
        ));
    }
    let batch = args.batch.options()?;
    Ok(Job { loaded, tensors, kinds, model, inputs, token, n, batch })
}

/// The specs asked for, for token ids moved to the embedding layer (the text defaults when none).
fn token_specs(args: &CompareArgs, registry: &Registry, job: &Job, requested: Option<Vec<MethodSpec>>) -> Option<Vec<MethodSpec>> {
    match (job.token, requested) {
        (Some(_), None) => Some(crate::text::compare_defaults(&args.embedding_layer)),
        (Some(_), Some(given)) => Some(given.into_iter().map(|s| crate::text::with_layer(s, registry, &args.embedding_layer)).collect()),
        (None, given) => given,
    }
}

/// Run `attrib compare`: check the flags, load the inputs and model, predict, run and score
/// the methods, draw the figures and the attack section, write the report.
pub fn run(args: CompareArgs, registry: &Registry) -> Result<()> {
    let checked = check(&args, registry)?;
    let device = checked.choice.device;
    let job = load(&args, device, checked.metric_settings.is_some())?;
    let requested = token_specs(&args, registry, &job, checked.requested);
    let names = predict::Names { classes: args.classes, labels: checked.labels.as_deref(), feature_names: checked.feature_names.as_deref() };
    let predicted = predict::predict(&job, &names, checked.target)?;

    // Which methods.
    let grad_ok = job.token.is_some() || differentiable(&job.model, &job.tensors);
    if requested.is_none() && !grad_ok && !args.quiet {
        eprintln!("note: the model's output has no gradient with respect to its inputs; skipping the gradient methods");
    }
    let ctx = DefaultsContext { shapes: job.tensors.iter().map(|t| t.size()).collect(), kinds: job.kinds.clone(), differentiable: grad_ok };
    let defaults_only = requested.is_none();
    let specs = config::method_specs(&args, registry, requested, &ctx)?;
    let method_names: Vec<String> = specs.iter().map(|s| s.display_name().to_string()).collect();
    let built = runs::build(registry, &specs, &method_names, &job)?;

    let pixels = job.kinds.iter().all(|k| *k == InputKind::Image);
    let curves = DeletionInsertionParams { steps: args.curve_steps, pixels, probabilities: true, batch: job.batch, ..Default::default() };
    if let Some(plan) = &checked.attack_plan {
        plan.check(job.token.is_some(), grad_ok, predicted.classes, robustness::features_per_row(&job.tensors, pixels))?;
    }
    let scoring = runs::Scoring { target: &predicted.target, curves, metrics: checked.metric_settings.as_ref(), defaults_only };
    let (results, used) = runs::run_all(&args, &job, &scoring, &specs, &method_names, &built)?;
    let agreement = runs::agreement(&results, pixels)?;

    let figures = figures::figures(&args, &job.loaded, &job.kinds, &results, checked.feature_names.as_deref(), job.n)?;
    let robustness = match &checked.attack_plan {
        Some(plan) => {
            if !args.quiet {
                eprintln!("attacking ({}) and explaining the adversarial examples", args.robust.attack.as_deref().unwrap_or(""));
            }
            let pictures = attack_figures::Pictures { loaded: &job.loaded, kinds: &job.kinds, normalize: args.inputs.transforms()?.1 };
            Some(plan.run(&job.model, &job.inputs, &predicted.target, &results, &used, pixels, &pictures)?)
        }
        None => None,
    };
    let report = Report {
        model: args.model.display().to_string(),
        device: attrib::tensor::device_name(device),
        inputs: args
            .inputs
            .input
            .iter()
            .map(|p| p.display().to_string())
            .chain((!args.inputs.text.is_empty()).then(|| format!("--text ({} sentences)", args.inputs.text.len())))
            .collect(),
        input_shapes: job.tensors.iter().map(|t| t.size()).collect(),
        input_kinds: job.kinds.iter().map(|k| k.name()).collect(),
        output_shape: predicted.out_size,
        labels: checked.labels,
        predictions: predicted.predictions,
        targets: predicted.targets,
        methods: results,
        agreement,
        pixels,
        curve_steps: args.curve_steps,
        figures,
        figure_rows: (job.n as usize).min(args.report_rows),
        rows: job.n as usize,
        metric_settings: checked.metric_settings,
        robustness,
    };
    write(&args, &report, &checked.reads, &checked.choice)
}

/// Check the report's paths again (the figures' names are known now), write it, and say where.
fn write(args: &CompareArgs, report: &Report, reads: &crate::outputs::Reads, choice: &DeviceChoice) -> Result<()> {
    let attack_figures = report.robustness.iter().flat_map(|r| &r.figures);
    let files: Vec<String> = report.figures.iter().chain(attack_figures).map(|f| f.file.clone()).collect();
    files::check_report_paths(&args.out_dir, &files, reads)?;
    let (html, json) = report::write(report, &args.out_dir)?;
    if !args.quiet {
        eprintln!("wrote {} and {}", html.display(), json.display());
        if choice.requested == DeviceSpec::Auto {
            eprintln!("device: {choice}");
        }
    }
    Ok(())
}
