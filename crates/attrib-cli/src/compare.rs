//! `attrib compare`: run several methods on the same model and inputs, score them with
//! deletion/insertion curves and their rank agreement, and write a self-contained HTML report
//! with a JSON twin. See `docs/compare.md`.

use crate::explain::ExplainArgs;
use crate::report::{self, Figure, MethodResult, Prediction, Report};
use attrib::metrics::{deletion_insertion, rank_correlation, DeletionInsertionParams};
use attrib::prelude::*;
use attrib::convert::tensor_to_vec_f64;
use attrib::{Evaluator, Expanded, Result as AResult, TorchResultExt};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Name of the noise tunnel (SmoothGrad) over saliency in `--methods`.
pub const SMOOTHGRAD: &str = "smoothgrad";

/// Gradient methods: they need a differentiable model.
const GRADIENT_METHODS: &[&str] = &["saliency", "input-x-gradient", "integrated-gradients", "gradient-shap", SMOOTHGRAD];

/// Arguments of `attrib compare`.
#[derive(Debug, clap::Args)]
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
    /// differentiable model, feature-ablation, and occlusion for image inputs). Names are those of
    /// `attrib explain --method`, plus `smoothgrad` (noise tunnel over saliency).
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Folder for report.html, report.json and the PNG figures (created if missing).
    #[arg(long = "out-dir")]
    pub out_dir: PathBuf,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Seed of every random choice (gradient-shap, smoothgrad, feature-permutation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
    /// How the shared tensor layer chunks and runs the work.
    #[command(flatten)]
    pub batch: crate::methods::BatchArgs,
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

/// How an input tensor is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `[N, C, H, W]`.
    Image,
    /// `[N, H, W]` (one channel, no channel dimension).
    GreyImage,
    /// `[N, F]`.
    Tabular,
    /// Anything else: no figure.
    Other,
}

impl InputKind {
    fn of(t: &Tensor) -> InputKind {
        match t.dim() {
            4 => InputKind::Image,
            3 => InputKind::GreyImage,
            2 => InputKind::Tabular,
            _ => InputKind::Other,
        }
    }

    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Image => "image",
            InputKind::GreyImage => "grey image",
            InputKind::Tabular => "tabular",
            InputKind::Other => "other",
        }
    }

    fn is_image(self) -> bool {
        matches!(self, InputKind::Image | InputKind::GreyImage)
    }
}

/// Every name `--methods` accepts.
fn known_methods() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = crate::methods::METHODS.to_vec();
    v.push(SMOOTHGRAD);
    v
}

fn parse_methods(given: &[String]) -> Result<Option<Vec<String>>> {
    let given: Vec<String> = given.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if given.is_empty() {
        return Ok(None);
    }
    let known = known_methods();
    for (i, m) in given.iter().enumerate() {
        if !known.contains(&m.as_str()) {
            return Err(CompareError::Usage(format!(
                "unknown method `{m}` in --methods; available: {}",
                known.join(", ")
            )));
        }
        if given[..i].contains(m) {
            return Err(CompareError::Usage(format!("method `{m}` is listed twice in --methods; list each once")));
        }
    }
    Ok(Some(given))
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

/// Parameters of one method, as `attrib explain` flags with the same defaults.
fn explain_args(args: &CompareArgs, name: &str, kinds: &[InputKind], tensors: &[Tensor]) -> Result<ExplainArgs> {
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        args: ExplainArgs,
    }
    let mut e = Defaults::try_parse_from(["attrib-compare", "--model", "-", "--input", "-", "--out", "-"])
        .map_err(|err| CompareError::Usage(format!("internal: default method flags: {err}")))?
        .args;
    e.model = args.model.clone();
    e.inputs = args.inputs.clone();
    e.device = args.device.clone();
    e.seed = args.seed;
    e.batch = args.batch.clone();
    e.method = name.to_string();
    match name {
        SMOOTHGRAD => {
            // SmoothGrad: 10 noisy copies with σ = 15 % of the inputs' value range.
            e.method = "saliency".into();
            e.noise_tunnel = Some("smoothgrad".into());
            e.nt_samples = 10;
            let mut range = 0.0f64;
            for t in tensors {
                let lo = t.f_min().and_then(|v| v.f_double_value(&[])).ctx("input range").map_err(CompareError::Attrib)?;
                let hi = t.f_max().and_then(|v| v.f_double_value(&[])).ctx("input range").map_err(CompareError::Attrib)?;
                range = range.max(hi - lo);
            }
            e.stdevs = Some(if range > 0.0 { 0.15 * range } else { 0.15 });
        }
        // Images: square patches of ~1/16 of the shorter side (1 pixel for up to 16×16), all
        // channels together; otherwise every scalar its own group.
        "feature-ablation" | "feature-permutation" if kinds.iter().all(|k| k.is_image()) => {
            e.feature_mask = tensors
                .iter()
                .map(|t| {
                    let s = t.size();
                    let side = s[s.len() - 2].min(s[s.len() - 1]);
                    let p = ((side + 15) / 16).max(1);
                    format!("grid:{p}x{p}")
                })
                .collect();
        }
        "occlusion" => {
            let mut windows = Vec::new();
            let mut strides = Vec::new();
            for (t, k) in tensors.iter().zip(kinds) {
                let s = t.size();
                match k {
                    InputKind::Image | InputKind::GreyImage => {
                        // Square windows of 1/8 of the shorter side (at least 2), half-overlapping.
                        let side = s[s.len() - 2].min(s[s.len() - 1]);
                        let w = ((side + 7) / 8).max(2).min(side);
                        let st = (w / 2).max(1);
                        if *k == InputKind::Image {
                            windows.push(format!("{},{w},{w}", s[1]));
                            strides.push(format!("{},{st},{st}", s[1]));
                        } else {
                            windows.push(format!("{w},{w}"));
                            strides.push(format!("{st},{st}"));
                        }
                    }
                    InputKind::Tabular => {
                        windows.push(s[1].min(3).to_string());
                        strides.push("1".into());
                    }
                    InputKind::Other => {
                        return Err(CompareError::Usage(format!(
                            "occlusion in `attrib compare` needs image [N, C, H, W] / [N, H, W] or tabular [N, F] inputs; input has shape {s:?} (use `attrib explain --method occlusion --window ...`)"
                        )))
                    }
                }
            }
            e.window = windows;
            e.strides = strides;
        }
        _ => {}
    }
    Ok(e)
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
pub fn run(args: CompareArgs) -> Result<()> {
    // Everything that can be checked without work first.
    let requested = parse_methods(&args.methods)?;
    let device = args.device.parse::<DeviceSpec>()?.resolve()?;
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
    std::fs::create_dir_all(&args.out_dir).map_err(|e| {
        CompareError::Usage(format!("cannot create the output folder {}: {e}", args.out_dir.display()))
    })?;

    let loaded = args.inputs.load(device)?;
    let tensors: Vec<Tensor> = loaded.tensors.iter().map(|t| t.shallow_clone()).collect();
    let kinds: Vec<InputKind> = tensors.iter().map(InputKind::of).collect();
    let model = TorchScriptModel::load(&args.model, device)?;
    let inputs = Inputs::multi(tensors.iter().map(|t| t.shallow_clone()).collect());
    let n = inputs.validate()?;
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
    let grad_ok = differentiable(&model, &tensors);
    let names: Vec<String> = match requested {
        Some(v) => v,
        None => {
            let mut v: Vec<String> = Vec::new();
            if grad_ok {
                v.extend(GRADIENT_METHODS.iter().map(|s| s.to_string()));
            } else if !args.quiet {
                eprintln!("note: the model's output has no gradient with respect to its inputs; skipping the gradient methods");
            }
            v.push("feature-ablation".into());
            if kinds.iter().all(|k| k.is_image()) {
                v.push("occlusion".into());
            }
            v
        }
    };

    // Build every method before running any, so that a bad parameter fails fast.
    let built = names
        .iter()
        .map(|name| {
            let e = explain_args(&args, name, &kinds, &tensors)?;
            crate::methods::build(&e, &tensors).map_err(|source| CompareError::Method { name: name.clone(), source })
        })
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
    let mut results = Vec::new();
    for (name, method) in names.iter().zip(&built) {
        bar.set_message(name.clone());
        let fail = |source| CompareError::Method { name: name.clone(), source };
        let attr = method.attribute(&model, &inputs, &target).map_err(fail)?;
        let delta = attr.convergence_delta.as_ref().map(|d| tensor_to_vec_f64(d)).transpose().map_err(fail)?;
        let curves = deletion_insertion(&model, &inputs, &target, &attr.values, &metric_params).map_err(fail)?;
        results.push(MethodResult {
            name: name.clone(),
            method: attr.meta.method.clone(),
            params: attr.meta.params.clone(),
            elapsed_ms: attr.meta.elapsed.as_secs_f64() * 1e3,
            delta,
            curves,
            extra: attr.meta.extra.clone(),
            values: attr.values,
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
    let report = Report {
        model: args.model.display().to_string(),
        device: attrib::tensor::device_name(device),
        inputs: args.inputs.input.iter().map(|p| p.display().to_string()).collect(),
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
    };
    let (html, json) = report::write(&report, &args.out_dir)?;
    if !args.quiet {
        eprintln!("wrote {} and {}", html.display(), json.display());
    }
    Ok(())
}

/// Render the figures of the first `--report-rows` rows into the output folder.
fn figures(
    args: &CompareArgs,
    loaded: &crate::input::Loaded,
    kinds: &[InputKind],
    results: &[MethodResult],
    feature_names: Option<&[String]>,
    n: i64,
) -> Result<Vec<Figure>> {
    use attrib::viz::{render_bar_chart, render_panels, save_png, BarChartParams, GridParams, Panel, Sign, VizMethod, VizParams};
    let viz_err = |e: attrib::viz::VizError| CompareError::Usage(format!("cannot render the report figures: {e}"));
    let save = |img: &attrib::viz::RgbaImage, name: &str| -> Result<()> {
        let path = args.out_dir.join(name);
        save_png(img, &path).map_err(viz_err)
    };
    let rows = (n as usize).min(args.report_rows) as i64;
    let mut out = Vec::new();
    for (j, kind) in kinds.iter().enumerate() {
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
                    save(&grid.image, &file)?;
                    out.push(Figure { file, input: j, row: i as usize, method: None, columns: grid.columns, bars: Vec::new() });
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
                        let file = format!("input{j}_row{i}_{}.png", r.name);
                        save(&chart.image, &file)?;
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
                        });
                    }
                }
            }
            InputKind::Other => {}
        }
    }
    Ok(out)
}
