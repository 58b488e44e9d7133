//! `attrib compare`: run several methods on the same model and inputs, score them with
//! deletion/insertion curves and their rank agreement, and write a self-contained HTML report
//! with a JSON twin. See `docs/compare.md`.

use crate::report::{self, Figure, MethodResult, Prediction, Report};
use attrib::metrics::{deletion_insertion, rank_correlation, DeletionInsertionParams};
use attrib::prelude::*;
use attrib::convert::tensor_to_vec_f64;
use attrib::methods::{DefaultsContext, InputKind, Registry};
use attrib::{Evaluator, Expanded, Result as AResult, TorchResultExt};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

pub mod robustness;

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

fn kind_of(t: &Tensor) -> InputKind {
    InputKind::of_shape(&t.size())
}

/// The specs the user asked for (`--config`, else `--methods` names), or `None` for the default
/// comparison; unknown names fail here, before any work.
fn requested_specs(args: &CompareArgs, registry: &Registry) -> Result<Option<Vec<MethodSpec>>> {
    let given: Vec<MethodSpec> = if let Some(path) = &args.config {
        read_config(path)?
    } else {
        let names: Vec<String> = args.methods.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Ok(None);
        }
        names.into_iter().map(MethodSpec::new).collect()
    };
    for spec in &given {
        registry.entry(&spec.method).map_err(|_| {
            CompareError::Usage(format!("unknown method `{}`; available: {}", spec.method, registry.names().join(", ")))
        })?;
        registry.check_given(spec).map_err(|source| CompareError::Method { name: spec.display_name().to_string(), source })?;
    }
    Ok(Some(given))
}

/// The specs to run: those asked for, else the registry's default comparison. The registry's
/// settings for these inputs sit under what a configuration sets; `--seed` and the batching flags
/// fill in what it leaves unset.
fn method_specs(args: &CompareArgs, registry: &Registry, given: Option<Vec<MethodSpec>>, ctx: &DefaultsContext) -> Result<Vec<MethodSpec>> {
    let given = match given {
        Some(g) => g,
        None => registry.compare_defaults(ctx)?.into_iter().map(|s| MethodSpec::new(s.method)).collect(),
    };
    if given.is_empty() {
        return Err(CompareError::Usage("no method to compare; list some with --methods or --config".into()));
    }
    let mut out: Vec<MethodSpec> = Vec::new();
    for spec in given {
        let entry = registry.get(&spec.method).ok_or_else(|| {
            CompareError::Usage(format!("unknown method `{}`; available: {}", spec.method, registry.names().join(", ")))
        })?;
        let label = spec.display_name().to_string();
        if label.is_empty() || label.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return Err(CompareError::Usage(format!("label `{label}` must be non-empty and contain no slashes or control characters")));
        }
        if out.iter().any(|o| o.display_name() == label) {
            return Err(CompareError::Usage(format!(
                "`{label}` is listed twice; list each method once, or give each configuration of a method its own `label`"
            )));
        }
        let fail = |source| CompareError::Method { name: label.clone(), source };
        let mut params = entry.compare_settings(ctx).map_err(fail)?;
        params.extend(spec.params);
        if let Some(seed) = args.seed {
            if entry.doc().params.iter().any(|p| p.name == "seed") {
                params.entry("seed").or_insert(seed.into());
            }
        }
        for (k, v) in args.batch.spec_keys() {
            params.entry(k).or_insert(v);
        }
        let spec = MethodSpec { method: spec.method, label: spec.label, params };
        registry.check(&spec).map_err(fail)?;
        out.push(spec);
    }
    Ok(out)
}

/// A `--config` file: TOML (`[[methods]]` tables) or JSON (`{"methods": [...]}` or an array).
fn read_config(path: &Path) -> Result<Vec<MethodSpec>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        methods: Vec<MethodSpec>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Json {
        Wrapped(Config),
        List(Vec<MethodSpec>),
    }
    let text = read_text(path, "config")?;
    let bad = |e: String| {
        CompareError::Usage(format!(
            "config file {} is not a list of method specs ({e}); write `[[methods]]` tables in TOML, e.g.\n[[methods]]\nmethod = \"integrated-gradients\"\nlabel = \"ig-zeros\"\nbaselines = \"zeros\"",
            path.display()
        ))
    };
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let start = text.trim_start();
    let is_json = match ext.as_deref() {
        Some("json") => true,
        Some("toml") => false,
        _ => start.starts_with('{') || (start.starts_with('[') && !start.starts_with("[[")),
    };
    if is_json {
        match serde_json::from_str::<Json>(&text).map_err(|e| bad(e.to_string()))? {
            Json::Wrapped(c) => Ok(c.methods),
            Json::List(v) => Ok(v),
        }
    } else {
        toml::from_str::<Config>(&text).map(|c| c.methods).map_err(|e| bad(e.to_string().trim().to_string()))
    }
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CompareError::Usage(format!("cannot read {what} file {}: {e}", path.display())))
}

fn json_strings(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = read_text(path, what)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CompareError::Usage(format!("{what} file {} is not valid JSON ({e}); write a JSON array of strings", path.display()))
    })?;
    v.as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| {
            CompareError::Usage(format!("{what} file {} must hold a JSON array of strings, like [\"a\", \"b\"]", path.display()))
        })
}

fn read_labels(args: &CompareArgs) -> Result<Option<Vec<String>>> {
    if !args.labels.is_empty() {
        return Ok(Some(args.labels.iter().map(|s| s.trim().to_string()).collect()));
    }
    let Some(path) = &args.labels_file else { return Ok(None) };
    let labels = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        json_strings(path, "labels")?
    } else {
        read_text(path, "labels")?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    };
    if labels.is_empty() {
        return Err(CompareError::Usage(format!("labels file {} holds no class names", path.display())));
    }
    Ok(Some(labels))
}

/// Whether the target output depends on the inputs through gradients.
fn differentiable(model: &dyn Model, tensors: &[Tensor]) -> bool {
    tch::with_grad(|| {
        let leaves: Vec<Tensor> =
            tensors.iter().map(|t| t.narrow(0, 0, 1).detach().to_kind(Kind::Float).set_requires_grad(true)).collect();
        model.forward(&leaves, &[]).map(|o| o.requires_grad()).unwrap_or(false)
    })
}

/// Run `attrib compare`.
pub fn run(args: CompareArgs, registry: &Registry) -> Result<()> {
    // Everything that can be checked without work first.
    let requested = requested_specs(&args, registry)?;
    let choice = args.device.parse::<DeviceSpec>()?.choose()?;
    let device = choice.device;
    let target_spec = crate::explain::parse_target(&args.target)?;
    let labels = read_labels(&args)?;
    let feature_names = args.feature_names.as_deref().map(|p| json_strings(p, "feature names")).transpose()?;
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
    let reads = reads(&args);
    check_report_paths(&args.out_dir, &[], &reads)?;
    crate::outputs::check_model(&args.model)?;

    let loaded = args.inputs.load(device)?;
    let tensors: Vec<Tensor> = loaded.tensors.iter().map(|t| t.shallow_clone()).collect();
    let kinds: Vec<InputKind> = tensors.iter().map(kind_of).collect();
    let model = TorchScriptModel::load(&args.model, device)?;
    let inputs = Inputs::multi(tensors.iter().map(|t| t.shallow_clone()).collect());
    // Token ids: the methods attribute at the embedding layer, and the report compares token
    // attributions (see crate::text).
    let token = crate::text::token_input(&tensors);
    if token.is_some() && tensors.len() != 1 {
        return Err(CompareError::Usage(
            "compare on token ids takes the ids as the only input; explain models with several inputs with `attrib explain`".into(),
        ));
    }
    let n = if token.is_some() { inputs.validate_token_ids()? } else { inputs.validate()? };
    if token.is_some() && metric_settings.is_some() {
        return Err(CompareError::Usage(
            "--metrics infidelity/sensitivity-max do not apply to token-id inputs (they add noise to the inputs, and token ids are integers); drop --metrics".into(),
        ));
    }
    let requested = match (token, requested) {
        (Some(_), None) => Some(crate::text::compare_defaults(&args.embedding_layer)),
        (Some(_), Some(given)) => {
            Some(given.into_iter().map(|s| crate::text::with_layer(s, registry, &args.embedding_layer)).collect())
        }
        (None, given) => given,
    };
    let batch = args.batch.options()?;

    // The model's outputs and predictions.
    let eval = Evaluator::new(&model, batch)?;
    let outputs = eval.raw_outputs(&[], &Expanded::identity(&tensors)).map_err(|e| match e {
        // Name the shapes the user passed, not those of a chunk.
        AttribError::ModelForward { reason, .. } => {
            AttribError::ModelForward { shapes: attrib::inputs::format_shapes(&tensors), reason }
        }
        other => other,
    })?;
    let out_size = outputs.size();
    let width = match out_size.as_slice() {
        [_] => 1,
        [_, c] => *c,
        other => {
            return Err(CompareError::Usage(format!(
                "the model returns shape {other:?}; `attrib compare` needs one score per class and row, [N, classes], or one value per row, [N] / [N, 1]"
            )))
        }
    };
    if let Some(c) = args.classes {
        if c != width {
            return Err(CompareError::Usage(format!(
                "the model returns {width} value(s) per row but --classes is {c}; check that the model matches the data set (or drop --classes)"
            )));
        }
    }
    if let Some(l) = &labels {
        if l.len() as i64 != width {
            return Err(CompareError::Usage(format!(
                "{} class labels for a model with {width} output(s); give exactly one label per output class",
                l.len()
            )));
        }
    }
    if let (Some(names), Some(first)) = (&feature_names, tensors.first()) {
        let s = first.size();
        if kinds[0] != InputKind::Tabular || names.len() as i64 != s[1] {
            return Err(CompareError::Usage(format!(
                "{} feature names for the first input of shape {s:?}; --feature-names needs a tabular input [N, F] and one name per feature",
                names.len()
            )));
        }
    }
    let classes = width > 1;
    let scores = if classes { outputs.f_softmax(1, Kind::Double).ctx("softmax")? } else { outputs.to_kind(Kind::Double) };
    let score_rows: Vec<Vec<f64>> = (0..n).map(|i| tensor_to_vec_f64(&scores.get(i))).collect::<AResult<_>>()?;
    let predicted: Vec<i64> = score_rows
        .iter()
        .map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as i64).unwrap_or(0))
        .collect();
    let target = match (target_spec, classes) {
        (Target::Argmax, true) => Target::PerSample(predicted.clone()),
        (Target::Argmax, false) | (Target::None, false) => Target::None,
        (Target::None, true) => {
            return Err(CompareError::Usage(format!(
                "--target none needs a model with one output per row, but it returns {width}; choose a class (an index, argmax or a .npy file)"
            )))
        }
        (Target::Class(c), _) => Target::PerSample(vec![c; n as usize]),
        (t @ Target::PerSample(_), _) => t,
    };
    let targets: Option<Vec<i64>> = match &target {
        Target::PerSample(v) => {
            if v.len() as i64 != n {
                return Err(CompareError::Usage(format!(
                    "{} target classes for {n} input rows; give one class index per row",
                    v.len()
                )));
            }
            if let Some(bad) = v.iter().find(|&&c| c < 0 || c >= width) {
                return Err(CompareError::Usage(format!(
                    "target class {bad} is out of range for a model with {width} output(s) (valid: 0..={})",
                    width - 1
                )));
            }
            Some(v.clone())
        }
        _ => None,
    };
    let label = |c: i64| labels.as_ref().and_then(|l| l.get(c as usize).cloned()).unwrap_or_else(|| c.to_string());
    let files: Vec<Option<String>> = (0..n as usize)
        .map(|i| loaded.files.iter().find_map(|f| f.get(i)).map(|p| p.display().to_string()))
        .collect();
    let predictions: Vec<Prediction> = (0..n as usize)
        .map(|i| {
            let row = &score_rows[i];
            match &targets {
                Some(t) => Prediction {
                    row: i,
                    file: files[i].clone(),
                    predicted: Some(predicted[i]),
                    predicted_label: Some(label(predicted[i])),
                    probability: Some(row[predicted[i] as usize]),
                    target: Some(t[i]),
                    target_label: Some(label(t[i])),
                    target_score: row[t[i] as usize],
                    value: None,
                },
                None => Prediction {
                    row: i,
                    file: files[i].clone(),
                    predicted: None,
                    predicted_label: None,
                    probability: None,
                    target: None,
                    target_label: None,
                    target_score: row[0],
                    value: Some(row[0]),
                },
            }
        })
        .collect();

    // Which methods.
    let grad_ok = token.is_some() || differentiable(&model, &tensors);
    if requested.is_none() && !grad_ok && !args.quiet {
        eprintln!("note: the model's output has no gradient with respect to its inputs; skipping the gradient methods");
    }
    let ctx = DefaultsContext { shapes: tensors.iter().map(|t| t.size()).collect(), kinds: kinds.clone(), differentiable: grad_ok };
    let defaults_only = requested.is_none();
    let specs = method_specs(&args, registry, requested, &ctx)?;
    let names: Vec<String> = specs.iter().map(|s| s.display_name().to_string()).collect();

    // Build every method before running any, so that a bad parameter fails fast.
    let built = specs
        .iter()
        .zip(&names)
        .map(|(spec, name)| registry.build(spec, &tensors).map_err(|source| CompareError::Method { name: name.clone(), source }))
        .collect::<Result<Vec<_>>>()?;

    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(names.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})") {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_prefix("attrib compare");
        b
    };
    let pixels = kinds.iter().all(|k| *k == InputKind::Image);
    let metric_params = DeletionInsertionParams {
        steps: args.curve_steps,
        pixels,
        probabilities: true,
        batch,
        ..Default::default()
    };
    if let Some(plan) = &attack_plan {
        plan.check(token.is_some(), grad_ok, classes, robustness::features_per_row(&tensors, pixels))?;
    }
    let mut results = Vec::new();
    // The method of each result (a default method that does not apply is left out).
    let mut used: Vec<&dyn Attribution> = Vec::new();
    for ((name, method), spec) in names.iter().zip(&built).zip(&specs) {
        bar.set_message(name.clone());
        let fail = |source| CompareError::Method { name: name.clone(), source };
        let (attr, timing) = match attrib::timing::attribute_repeated(method.as_ref(), &model, &inputs, &target, args.repeat) {
            Ok(done) => done,
            // A method of the default comparison that cannot apply to this model (the graph
            // rules of DeepLIFT and guided backprop on an operation they do not cover) is left
            // out with a note; a method asked for by name fails the run.
            Err(AttribError::NotApplicable(why)) if defaults_only => {
                eprintln!("note: {name} left out of the comparison: {why}");
                bar.inc(1);
                continue;
            }
            Err(e) => return Err(fail(e)),
        };
        let delta = attr.convergence_delta.as_ref().map(|d| tensor_to_vec_f64(d)).transpose().map_err(fail)?;
        let (values, curves) = match token {
            // Token attributions; the curves replace tokens by the pad id 0 in their order.
            Some(j) => {
                let values = vec![crate::text::compare_values(&attr.values[0], &tensors[j]).map_err(fail)?];
                let as_float = Inputs::new(tensors[j].to_kind(Kind::Float));
                let m = crate::text::IdsAsFloat(&model);
                let curves = deletion_insertion(&m, &as_float, &target, &values, &metric_params).map_err(fail)?;
                (values, curves)
            }
            None => {
                let curves = deletion_insertion(&model, &inputs, &target, &attr.values, &metric_params).map_err(fail)?;
                (attr.values, curves)
            }
        };
        let (infidelity, sensitivity) = match (&metric_settings, token) {
            (Some(m), None) => robustness::method_metrics(m, method.as_ref(), &model, &inputs, &target, &values, batch).map_err(fail)?,
            _ => (None, None),
        };
        used.push(method.as_ref());
        results.push(MethodResult {
            name: name.clone(),
            method: attr.meta.method.clone(),
            params: attr.meta.params.clone(),
            spec: spec.clone(),
            timing,
            delta,
            curves,
            extra: attr.meta.extra.clone(),
            values,
            infidelity,
            sensitivity,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    // Agreement: Spearman per row, averaged over the rows where it is defined.
    let k = results.len();
    let mut agreement = vec![vec![None; k]; k];
    for a in 0..k {
        agreement[a][a] = Some(1.0);
        for b in a + 1..k {
            let per_row = rank_correlation(&results[a].values, &results[b].values, pixels)?;
            let defined: Vec<f64> = per_row.into_iter().flatten().collect();
            let mean = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
            agreement[a][b] = mean;
            agreement[b][a] = mean;
        }
    }

    let figures = figures(&args, &loaded, &kinds, &results, feature_names.as_deref(), n)?;
    let robustness = match &attack_plan {
        Some(plan) => {
            if !args.quiet {
                eprintln!("attacking ({}) and explaining the adversarial examples", args.robust.attack.as_deref().unwrap_or(""));
            }
            let pictures = robustness::Pictures { loaded: &loaded, kinds: &kinds, normalize: args.inputs.transforms()?.1 };
            Some(plan.run(&model, &inputs, &target, &results, &used, pixels, &pictures)?)
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
        input_shapes: tensors.iter().map(|t| t.size()).collect(),
        input_kinds: kinds.iter().map(|k| k.name()).collect(),
        output_shape: out_size,
        labels,
        predictions,
        targets,
        methods: results,
        agreement,
        pixels,
        curve_steps: args.curve_steps,
        figures,
        figure_rows: (n as usize).min(args.report_rows),
        rows: n as usize,
        metric_settings,
        robustness,
    };
    let attack_figures = report.robustness.iter().flat_map(|r| &r.figures);
    let files: Vec<String> = report.figures.iter().chain(attack_figures).map(|f| f.file.clone()).collect();
    check_report_paths(&args.out_dir, &files, &reads)?;
    let (html, json) = report::write(&report, &args.out_dir)?;
    if !args.quiet {
        eprintln!("wrote {} and {}", html.display(), json.display());
        if choice.requested == DeviceSpec::Auto {
            eprintln!("device: {choice}");
        }
    }
    Ok(())
}

/// The files `attrib compare` reads: no output may be one of them.
fn reads(args: &CompareArgs) -> crate::outputs::Reads {
    let mut r = crate::outputs::Reads::default();
    r.inputs(&args.inputs.input);
    if let Some(v) = &args.inputs.vocab {
        r.add("--vocab", v);
    }
    r.add("--model", &args.model);
    r.maybe("--target", &args.target);
    for (flag, p) in [("--config", &args.config), ("--labels-file", &args.labels_file), ("--feature-names", &args.feature_names)] {
        if let Some(p) = p {
            r.add(flag, p);
        }
    }
    r
}

/// Check the report's paths in `dir`: `report.html`, `report.json` and the figures `files`.
/// Before the work, when the figures' names are not known yet, a file the command reads that sits
/// in `dir` under a figure's name pattern (`input*_row*.png`) is refused too.
fn check_report_paths(dir: &Path, files: &[String], reads: &crate::outputs::Reads) -> Result<()> {
    let mut paths: Vec<(&str, PathBuf)> = vec![("report.json", dir.join("report.json")), ("report.html", dir.join("report.html"))];
    paths.extend(files.iter().map(|f| ("a report figure", dir.join(f))));
    let outputs: Vec<(&str, &Path)> = paths.iter().map(|(f, p)| (*f, p.as_path())).collect();
    crate::outputs::check(&outputs, reads)?;
    if files.is_empty() {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        for (flag, p) in reads.files() {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let inside = p.parent().and_then(|d| std::fs::canonicalize(if d.as_os_str().is_empty() { Path::new(".") } else { d }).ok()) == Some(dir.clone());
            let figure_like = name.starts_with("input") || name.starts_with("attack_input");
            if inside && figure_like && name.contains("_row") && name.ends_with(".png") {
                return Err(CompareError::Usage(format!(
                    "{flag} {} is in --out-dir, where a report figure of the same name may replace it; choose another --out-dir",
                    p.display()
                )));
            }
        }
    }
    Ok(())
}

/// Render the figures of the first `--report-rows` rows, encoded as PNG in memory (written with
/// the report, last).
fn figures(
    args: &CompareArgs,
    loaded: &crate::input::Loaded,
    kinds: &[InputKind],
    results: &[MethodResult],
    feature_names: Option<&[String]>,
    n: i64,
) -> Result<Vec<Figure>> {
    use attrib::viz::{png_bytes, render_bar_chart, render_panels, BarChartParams, GridParams, Panel, Sign, VizMethod, VizParams};
    let viz_err = |e: attrib::viz::VizError| CompareError::Usage(format!("cannot render the report figures: {e}"));
    let encode = |img: &attrib::viz::RgbaImage| -> Result<Vec<u8>> { png_bytes(img).map_err(viz_err) };
    let rows = (n as usize).min(args.report_rows) as i64;
    let mut out = Vec::new();
    for (j, kind) in kinds.iter().enumerate() {
        if crate::text::is_token_ids(&loaded.tensors[j]) {
            // One text view per row: a line per method.
            for i in 0..rows {
                let ids = loaded.tensors[j].narrow(0, i, 1);
                let mut text_rows = Vec::new();
                for r in results {
                    let row = crate::text::text_rows(&ids, &r.values[j].narrow(0, i, 1), loaded.vocab.as_ref(), &[r.name.clone()])?;
                    text_rows.extend(row);
                }
                let html = attrib::viz::render_text_html(&text_rows).map_err(viz_err)?;
                let file = format!("input{j}_row{i}_text.html");
                let columns = results.iter().map(|r| r.name.clone()).collect();
                out.push(Figure { file, input: j, row: i as usize, method: None, columns, bars: Vec::new(), png: Vec::new(), html: Some(html) });
            }
            continue;
        }
        match kind {
            InputKind::Image | InputKind::GreyImage => {
                let display = &loaded.display[j];
                let from_files = !loaded.files[j].is_empty();
                for i in 0..rows {
                    let mut img = crate::heatmap::row_chw(display, i)?;
                    if !from_files {
                        // Arrays: stretch each row to [0, 1] for display.
                        let (lo, hi) = img.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
                        if hi > lo {
                            img.mapv_inplace(|v| (v - lo) / (hi - lo));
                        } else {
                            img.fill(0.5);
                        }
                    }
                    let side = img.shape()[1].min(img.shape()[2]).max(1);
                    let scale = 128usize.div_ceil(side).clamp(1, attrib::viz::MAX_SCALE as usize) as u32;
                    let with_image = matches!(img.shape()[0], 1 | 3);
                    let method = if with_image { VizMethod::BlendedHeatMap } else { VizMethod::HeatMap };
                    let params = VizParams::new(method, Sign::All).scale(scale).check().map_err(viz_err)?;
                    let attrs =
                        results.iter().map(|r| crate::heatmap::row_chw(&r.values[j], i)).collect::<AResult<Vec<_>>>()?;
                    let panels: Vec<Panel<'_>> = results
                        .iter()
                        .zip(&attrs)
                        .map(|(r, a)| Panel { title: r.name.clone(), attr: a.view(), params: params.clone() })
                        .collect();
                    let grid = render_panels(
                        with_image.then(|| img.view()),
                        &panels,
                        &GridParams { include_original: with_image, ..Default::default() },
                    )
                    .map_err(viz_err)?;
                    let file = format!("input{j}_row{i}.png");
                    let png = encode(&grid.image)?;
                    out.push(Figure { file, input: j, row: i as usize, method: None, columns: grid.columns, bars: Vec::new(), png, html: None });
                }
            }
            InputKind::Tabular => {
                let names = if j == 0 { feature_names } else { None };
                let params = BarChartParams { top_k: args.top_k, ..Default::default() };
                for i in 0..rows {
                    for r in results {
                        let v = tensor_to_vec_f64(&r.values[j].get(i))?;
                        let v = ndarray::Array1::from_iter(v.iter().map(|&x| x as f32));
                        let chart = render_bar_chart(v.view(), names, &params).map_err(viz_err)?;
                        let file = format!("input{j}_row{i}_{}.png", file_safe(&r.name));
                        let png = encode(&chart.image)?;
                        let bars = chart
                            .bars
                            .iter()
                            .map(|b| (b.label.clone().unwrap_or_else(|| format!("feature {}", b.feature)), f64::from(b.value)))
                            .collect();
                        out.push(Figure {
                            file,
                            input: j,
                            row: i as usize,
                            method: Some(r.name.clone()),
                            columns: Vec::new(),
                            bars,
                            png,
                            html: None,
                        });
                    }
                }
            }
            InputKind::Other => {}
        }
    }
    Ok(out)
}

/// A label as part of a file name: letters, digits, `-`, `_` and `.` kept, anything else `_`.
fn file_safe(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}
