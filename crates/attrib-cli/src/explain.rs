//! `attrib explain`.

use attrib::convert::stage_npy_tensor;
use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::Result;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Arguments of `attrib explain`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  attrib explain --model m.pt --input x.npy --method saliency --abs --out sal.npy
  attrib explain --model m.pt --input x.npy --method integrated-gradients --steps 64 --baseline blur:5 --out ig.npy --json
  attrib explain --model m.pt --input cat.jpg --resize 256 --center-crop 224 --normalize imagenet \\
                 --method occlusion --window 3,16,16 --strides 3,8,8 --out occ.npy --heatmap occ.png
  attrib explain --model m.pt --input x.npy --method smoothgrad --param noise_level=0.2 --out sg.npy
  attrib explain --model m.pt --input x.npy --method integrated-gradients --repeat 5 --out ig.npy --json   (benchmark mode)

`attrib methods NAME` lists a method's flags and defaults; a flag the method does not take is an error.")]
pub struct ExplainArgs {
    /// TorchScript model (`torch.jit.trace(model, example).save(path)`).
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs (.npy arrays or images) and image preprocessing.
    #[command(flatten)]
    pub inputs: crate::input::InputArgs,
    /// Attribution method (`attrib methods` lists them).
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
    /// Also render the attributions of the first input as a PNG, one panel per row.
    #[arg(long)]
    pub heatmap: Option<PathBuf>,
    /// Visualisation for --heatmap: heat_map, blended_heat_map, masked_image, alpha_scaling, original_image.
    #[arg(long, default_value = "blended_heat_map")]
    pub viz: String,
    /// Sign for --heatmap: absolute_value, positive, negative, all.
    #[arg(long, default_value = "absolute_value")]
    pub sign: String,
    /// How many more times to run the attribution after the first (benchmark mode): `--json`
    /// then reports `first_ms` apart and `elapsed_ms` as the median of the repeats, with min and
    /// max.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
    /// Skip the warm-up: by default the model runs once on two rows of the inputs after loading
    /// (TorchScript's first-run compilation, oneDNN and thread pools, the frozen copy for
    /// perturbation methods), timed apart as `warm_up_ms`, so that `first_ms` measures the
    /// attribution.
    #[arg(long = "no-warm-up")]
    pub no_warm_up: bool,
    /// A model with an image (float) input and a token-id input: split the attribution per
    /// modality — integrated gradients over the image (ids fixed) and layer integrated gradients
    /// at `--layer` (default `embedding`) over the tokens (image fixed), `--steps` each;
    /// `--out` gets both, `--json` each input's share of the total |attribution| per row.
    #[arg(long = "per-modality")]
    pub per_modality: bool,
    /// How the shared tensor layer chunks and runs the work.
    #[command(flatten)]
    pub batch: crate::methods::BatchArgs,
    #[command(flatten)]
    pub method_flags: MethodFlags,
}

/// The method flags; each sets one parameter of the method's spec (`attrib methods NAME` lists
/// them). A flag the method does not take is an error.
#[derive(Debug, Clone, clap::Args)]
pub struct MethodFlags {
    /// Absolute values of the gradients (saliency, smoothgrad; Captum's `abs=True`).
    #[arg(long)]
    pub abs: bool,
    /// Baseline (reference input): `zeros`, a number, `blur:SIGMA`, `uniform:LOW,HIGH`, or a float
    /// .npy file that broadcasts to the input (for gradient-shap: baseline samples `[S, ...]`).
    /// Repeat once per input for several inputs (default: zeros).
    #[arg(long, allow_negative_numbers = true)]
    pub baseline: Vec<String>,
    /// Seed of every random choice of a sampling method (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Feature groups (feature-ablation, feature-permutation): an integer .npy mask that
    /// broadcasts to the input, a label image (.png/.jpg), `grid:HxW` or `slic:N`. Repeat once
    /// per input (default: every scalar its own group).
    #[arg(long = "feature-mask")]
    pub feature_mask: Vec<String>,
    /// Occlusion window, one size per non-batch dimension: `C,H,W` for images, `K` for a flat
    /// vector. Repeat once per input.
    #[arg(long)]
    pub window: Vec<String>,
    /// Occlusion strides, same form as `--window` (default: 1 along every dimension).
    #[arg(long)]
    pub strides: Vec<String>,
    /// Integration steps of integrated-gradients (default 50; initial count with `--tolerance`).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Quadrature of integrated-gradients: gausslegendre (default), riemann_left, riemann_right,
    /// riemann_middle or riemann_trapezoid.
    #[arg(long)]
    pub quadrature: Option<String>,
    /// Adaptive integrated-gradients: refine the step count per row until |delta| <= T.
    #[arg(long, allow_negative_numbers = true)]
    pub tolerance: Option<f64>,
    /// Step cap of adaptive integrated-gradients (default 1024).
    #[arg(long = "max-steps")]
    pub max_steps: Option<usize>,
    /// Noise tunnel type: smoothgrad, smoothgrad_sq or vargrad. Wraps any method (for
    /// `smoothgrad`, sets how its copies combine).
    #[arg(long = "noise-tunnel")]
    pub noise_tunnel: Option<String>,
    /// Noisy copies of the noise tunnel (default 5; smoothgrad: 10).
    #[arg(long = "nt-samples")]
    pub nt_samples: Option<usize>,
    /// Noise standard deviation (absolute): noise tunnel (default 1.0) and gradient-shap (default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub stdevs: Option<f64>,
    /// Draws per row of gradient-shap (default 5).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Layer of the layer and neuron methods (layer-activation, layer-integrated-gradients,
    /// neuron-gradient, ...): the submodule path as `named_modules()` prints it (`layer4`,
    /// `layer3.1.conv2`, `features.3`).
    #[arg(long)]
    pub layer: Option<String>,
    /// Layer methods: attribute to the layer's input instead of its output.
    #[arg(long = "attribute-to-layer-input")]
    pub attribute_to_layer_input: bool,
    /// Neuron methods (neuron-gradient, neuron-integrated-gradients): the neuron's indices in the
    /// layer's output after the batch dimension, `I,J,...` (Captum's `neuron_selector`).
    #[arg(long, allow_negative_numbers = true)]
    pub neuron: Option<String>,
    /// Any parameter of the method's spec, as KEY=VALUE (repeatable), e.g. `--param noise_level=0.2`;
    /// `attrib methods NAME` lists the keys.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub param: Vec<String>,
}

impl MethodFlags {
    /// The given flags as spec values.
    pub fn values(&self) -> crate::methods::MethodFlagValues {
        use serde_json::{json, Value};
        let list = |v: &[String]| -> Option<Value> {
            match v {
                [] => None,
                [one] => Some(json!(one)),
                many => Some(json!(many)),
            }
        };
        let mut values: Vec<(&'static str, Value)> = Vec::new();
        let mut put = |k: &'static str, v: Option<Value>| {
            if let Some(v) = v {
                values.push((k, v));
            }
        };
        put("abs", self.abs.then(|| json!(true)));
        put("baselines", list(&self.baseline));
        put("seed", self.seed.map(|v| json!(v)));
        put("feature_mask", list(&self.feature_mask));
        put("sliding_window_shapes", (!self.window.is_empty()).then(|| json!(self.window)));
        put("strides", (!self.strides.is_empty()).then(|| json!(self.strides)));
        put("n_steps", self.steps.map(|v| json!(v)));
        put("quadrature", self.quadrature.as_ref().map(|v| json!(v)));
        put("tolerance", self.tolerance.map(crate::methods::number));
        put("max_steps", self.max_steps.map(|v| json!(v)));
        put("n_samples", self.samples.map(|v| json!(v)));
        put("stdevs", self.stdevs.map(crate::methods::number));
        put("nt_samples", self.nt_samples.map(|v| json!(v)));
        put("layer", self.layer.as_ref().map(|v| json!(v)));
        put("attribute_to_layer_input", self.attribute_to_layer_input.then(|| json!(true)));
        put("neuron_selector", self.neuron.as_ref().map(|v| json!(v)));
        crate::methods::MethodFlagValues { values, noise_tunnel: self.noise_tunnel.clone(), params: self.param.clone() }
    }
}

pub(crate) fn parse_target(spec: &str) -> Result<Target> {
    attrib::spec::load_target(&spec.parse::<attrib::TargetSpec>()?)
}

pub(crate) fn output_paths(out: &[PathBuf], n_inputs: usize) -> Result<Vec<PathBuf>> {
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

/// Without `--json`: the files written and, in benchmark mode, the call times, on stderr.
fn say_written(outs: &[PathBuf], method: &str, timing: &attrib::timing::Timing) {
    for p in outs {
        eprintln!("wrote {}", p.display());
    }
    if timing.repeats > 0 {
        eprintln!(
            "{method}: first call {:.2} ms; {} repeats: median {:.2} ms (min {:.2}, max {:.2})",
            timing.first_ms, timing.repeats, timing.median_ms, timing.min_ms, timing.max_ms
        );
    }
}

/// Say on stderr when adaptive integrated gradients left rows above its tolerance.
fn warn_unconverged(attr: &Attributions) {
    if let Some(adaptive) = attr.meta.extra.get("adaptive") {
        if adaptive["all_converged"] == false {
            eprintln!(
                "warning: adaptive integrated gradients did not reach |delta| <= {} within {} steps for rows {}; raise --max-steps or --tolerance",
                adaptive["tolerance"], adaptive["max_steps"], adaptive["unconverged_rows"]
            );
        }
    }
}

/// The views of the attributions that `--heatmap` and `--json` show, made before any output is
/// staged (their rendering can fail).
struct Views {
    /// Token attributions, for token-id inputs (an extra of `--json`; the page of `--heatmap`).
    text_rows: Option<Vec<attrib::viz::TextRow>>,
    /// The HTML page of `--heatmap` for token-id inputs.
    text_page: Option<String>,
    /// The image heat map of `--heatmap` for other inputs.
    heatmap: Option<attrib::viz::RgbaImage>,
}

/// Render what `--heatmap` asks and the token view `--json` reports.
fn views(args: &ExplainArgs, attr: &Attributions, token_ids: Option<&tch::Tensor>, loaded: &crate::input::Loaded, viz: Option<(attrib::viz::VizMethod, attrib::viz::Sign)>) -> Result<Views> {
    let text_rows = match token_ids {
        Some(ids) => {
            let captions: Vec<String> = match &attr.meta.targets {
                Some(t) => t.iter().enumerate().map(|(i, t)| format!("row {i}, target {t}")).collect(),
                None => Vec::new(),
            };
            let rows = crate::text::view_rows(ids, &attr.values[0], loaded.vocab.as_ref(), &captions);
            // Without --heatmap, token attributions are an extra of --json when they apply.
            if args.heatmap.is_some() { Some(rows?) } else { rows.ok() }
        }
        None => None,
    };
    let text_page = match (&args.heatmap, &text_rows) {
        (Some(_), Some(rows)) => Some(
            attrib::viz::render_text_page(&format!("{} token attributions", attr.meta.method), rows)
                .map_err(|e| AttribError::param("heatmap", e.to_string()))?,
        ),
        _ => None,
    };
    let heatmap = match (&args.heatmap, viz, &text_page) {
        (Some(_), Some(viz), None) => Some(crate::heatmap::render_rows(&attr.values[0], &loaded.display[0], viz)?),
        _ => None,
    };
    Ok(Views { text_rows, text_page, heatmap })
}

/// Stage every output (the attributions, the heat map or token page), then put them all in
/// place: a failure replaces nothing.
fn stage_and_commit(args: &ExplainArgs, attr: &Attributions, outs: &[PathBuf], views: &Views) -> Result<()> {
    let mut staged = Vec::new();
    for (t, p) in attr.values.iter().zip(outs) {
        staged.push(stage_npy_tensor(p, t)?);
    }
    if let (Some(path), Some(img)) = (&args.heatmap, &views.heatmap) {
        crate::outputs::create_parent(path)?;
        staged.push(attrib::viz::stage_png(img, path).map_err(|e| AttribError::Io {
            action: "cannot write",
            path: path.to_path_buf(),
            reason: match e {
                attrib::viz::VizError::Write { reason, .. } => reason,
                other => other.to_string(),
            },
        })?);
    }
    if let (Some(path), Some(page)) = (&args.heatmap, &views.text_page) {
        staged.push(crate::outputs::stage_text(path, page)?);
    }
    crate::outputs::commit(staged)
}

/// What the warm-up before the timed calls did: its time and the steps that ran (failed ones
/// with the reason), as `--json` reports them.
struct WarmUp {
    ms: f64,
    steps: Vec<String>,
}

/// Pay the model's one-time costs before the first timed call (see `attrib::tensor::warm`): the
/// model's warm-up with the chunk shapes earlier runs noted, the method's rewritten copy of the
/// model if it runs one, and in benchmark mode (`--repeat`) a rehearsal of a job the method's
/// size.
fn warm_up(args: &ExplainArgs, registry: &Registry, method: &dyn attrib::Attribution, model: &TorchScriptModel, inputs: &Inputs, target: &Target) -> Result<WarmUp> {
    use attrib::tensor::warm::{rehearse_job, warm_up_rehearsing, Work, BENCHMARK_REHEARSAL_MS, REHEARSAL_MS};
    let work = if registry.entry(&args.method)?.doc().flags.needs_gradients { Work::Gradients } else { Work::Forward };
    let options = args.batch.options()?;
    // Benchmark mode times the first call apart: rehearse the job's chunk shapes (noted by
    // earlier runs) unless they are long; a one-shot run rehearses only short ones.
    let cap = if args.repeat > 1 { BENCHMARK_REHEARSAL_MS } else { REHEARSAL_MS };
    let clock = std::time::Instant::now();
    let mut reports = vec![warm_up_rehearsing(model, inputs, &options, work, cap)];
    // A method that runs a rewritten copy of the model (DeepLIFT, guided backprop): make it
    // and warm it up too. A failure here is the attribution's to report.
    if let Ok(Some(copy)) = method.model_to_warm_up(model) {
        reports.push(warm_up_rehearsing(copy.as_ref(), inputs, &options, work, cap));
    }
    // Benchmark mode: a job the size of the method's own, so that the first call does not
    // also time memory layouts or meet its chunk shapes for the first time on a model no
    // earlier run has noted.
    if args.repeat > 0 {
        if let Some(plan) = method.planned_rows(inputs) {
            reports.push(rehearse_job(model, inputs, target, &options, plan, cap));
        }
    }
    let ms = clock.elapsed().as_secs_f64() * 1e3;
    let steps = reports.into_iter().flat_map(|r| r.steps.into_iter().chain(r.failed.into_iter().map(|f| format!("failed: {f}")))).collect();
    Ok(WarmUp { ms, steps })
}

/// The files `attrib explain` reads: no output may be one of them.
pub(crate) fn reads(args: &ExplainArgs) -> crate::outputs::Reads {
    let mut r = crate::outputs::Reads::model_run(&args.inputs, &args.model, &args.target);
    let f = &args.method_flags;
    for v in &f.baseline {
        r.maybe("--baseline", v);
    }
    for v in &f.feature_mask {
        r.maybe("--feature-mask", v);
    }
    for p in &f.param {
        // Read as `--param` reads it: the files named in its JSON value (a string or a list).
        if let Ok((k, v)) = crate::methods::parse_param(p) {
            r.maybe_json(&format!("--param {k}"), &v);
        }
    }
    r
}

/// Run `attrib explain`.
pub fn run(args: ExplainArgs, registry: &Registry) -> Result<()> {
    if args.per_modality {
        return crate::text::explain_per_modality(&args, &reads(&args));
    }
    // The spec first: a flag the method does not take fails before any file is read.
    let spec = crate::methods::spec_from_flags(registry, &args.method, &args.method_flags.values(), &args.batch)?;
    let choice = args.device.parse::<DeviceSpec>()?.choose()?;
    let device = choice.device;
    let target = parse_target(&args.target)?;
    let outs = output_paths(&args.out, args.inputs.count())?;
    let viz = args.heatmap.as_ref().map(|_| crate::heatmap::parse(&args.viz, &args.sign)).transpose()?;
    // Every output path before any input is read or the model loaded (see crate::outputs).
    let mut outputs: Vec<(&str, &Path)> = outs.iter().map(|p| ("--out", p.as_path())).collect();
    if let Some(h) = &args.heatmap {
        outputs.push(("--heatmap", h));
    }
    crate::outputs::check(&outputs, &reads(&args))?;
    crate::outputs::check_model(&args.model)?;
    let mut loaded = args.inputs.load(device)?;
    // Token ids: the heat map is the text view (an HTML page) of the token attributions.
    let token_input = crate::text::token_input(&loaded.tensors);
    match (&args.heatmap, token_input, viz) {
        (Some(path), Some(_), _) => crate::text::check_html_path(path)?,
        (_, None, Some(viz)) => crate::heatmap::check(&loaded.display[0], viz)?,
        _ => {}
    }
    let token_ids = token_input.map(|j| loaded.tensors[j].shallow_clone());
    let tensors = std::mem::take(&mut loaded.tensors);
    // Some parameters depend on the inputs (SLIC masks, baselines per input).
    let method = registry.build(&spec, &tensors)?;
    let clock = std::time::Instant::now();
    let model = TorchScriptModel::load(&args.model, device)?;
    let load_ms = clock.elapsed().as_secs_f64() * 1e3;
    let shapes: Vec<Vec<i64>> = tensors.iter().map(|t| t.size()).collect();
    let inputs = Inputs::multi(tensors);
    // One-time costs of the model (see attrib::tensor::warm), before anything is timed.
    let warm_up = if args.no_warm_up { None } else { Some(warm_up(&args, registry, method.as_ref(), &model, &inputs, &target)?) };

    let (attr, timing) = attrib::timing::attribute_repeated(method.as_ref(), &model, &inputs, &target, args.repeat)?;
    warn_unconverged(&attr);
    // Everything that can fail before the outputs (the heat map's rendering, the delta's copy),
    // then every output staged, then all put in place: a failure replaces nothing.
    let views = views(&args, &attr, token_ids.as_ref(), &loaded, viz)?;
    let delta = attr.convergence_delta.as_ref().map(attrib::convert::tensor_to_vec_f64).transpose()?;
    stage_and_commit(&args, &attr, &outs, &views)?;
    if args.json {
        let summary = json!({
            "method": attr.meta.method,
            "params": attr.meta.params,
            "targets": attr.meta.targets,
            "elapsed_ms": timing.median_ms,
            "first_ms": timing.first_ms,
            "load_ms": load_ms,
            "warm_up_ms": warm_up.as_ref().map(|w| w.ms),
            "warm_up_steps": warm_up.as_ref().map(|w| &w.steps),
            "repeats": timing.repeats,
            "elapsed_min_ms": timing.min_ms,
            "elapsed_max_ms": timing.max_ms,
            "spec": spec,
            "convergence_delta": delta,
            "multiplies_by_inputs": method.info().multiplies_by_inputs,
            "device": attrib::tensor::device_name(device),
            "device_choice": choice.reason,
            "cuda_backend": crate::cuda_backend_json(),
            "model": args.model,
            "input_shapes": shapes,
            "outputs": outs,
            "heatmap": args.heatmap,
            "input_files": loaded.files,
            "extra": attr.meta.extra,
            "tokens": views.text_rows.as_deref().map(crate::text::rows_json),
        });
        println!("{summary}");
    } else {
        say_written(&outs, &attr.meta.method, &timing);
    }
    // Said once the run succeeded, so that a failing run prints one `error:` line only.
    if choice.requested == DeviceSpec::Auto {
        eprintln!("device: {choice}");
    }
    Ok(())
}
