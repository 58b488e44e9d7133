//! `attrib explain-dataset`: stream a data set through a method, one attribution file per item
//! (the library side is the `attrib-dataset` crate; this module only maps flags).

use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::Result;
use attrib_dataset::{Preprocess, Progress, RunConfig, Shard};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

/// The flags `explain-dataset` and `compare-dataset` share: the model, the data set and its
/// preprocessing, the target, how the run is blocked, threaded and written, the metrics' seed,
/// the device, and the progress, warm-up and batching switches.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// TorchScript model (`torch.jit.trace(model, example).save(path)`).
    #[arg(long)]
    pub model: PathBuf,
    /// The data set (`--input`: a folder of images, walked recursively; a list file of image
    /// paths, one a line; or a float .npy array whose rows are the items) and image preprocessing.
    #[command(flatten)]
    pub inputs: crate::input::InputArgs,
    /// What to explain: a class index N, `argmax` (the model's prediction) or `none`
    /// (scalar-output model).
    #[arg(long, default_value = "argmax", allow_hyphen_values = true)]
    pub target: String,
    /// Items per block (default: as many as one model call has rows, within a quarter of the
    /// memory budget). Kept in the run's plan.json (each method's for compare-dataset) with the
    /// rows per call.
    #[arg(long = "batch-items")]
    pub batch_items: Option<usize>,
    /// libtorch threads (default: the current setting, OMP_NUM_THREADS). Kept in plan.json.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output format: npy (one file per item, attributions/<item>.npy) or safetensors (one file
    /// per block, blocks/NNNNNN.safetensors, a tensor per item named by its id).
    #[arg(long, default_value = "npy")]
    pub format: String,
    /// Seed of the robustness metrics' noise; item p uses a seed of its own derived from it and
    /// p (recorded as `metric_seed`). Kept in plan.json.
    #[arg(long = "metrics-seed", default_value_t = 0)]
    pub metrics_seed: u64,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Skip the model warm-up before the timed part.
    #[arg(long = "no-warm-up")]
    pub no_warm_up: bool,
    /// How the shared tensor layer chunks and runs the work (every method).
    #[command(flatten)]
    pub batch: crate::methods::BatchArgs,
}

impl RunArgs {
    /// The one `--input` of a data-set run (`command` names the command in the message).
    fn one_input(&self, command: &str) -> Result<PathBuf> {
        match self.inputs.input.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(AttribError::param("input", format!("{command} takes one --input: a folder, a list file or a .npy array"))),
        }
    }

    /// The run's configuration from these flags: every method's, on all shards, writing into
    /// no folder yet and scoring nothing; the caller sets the rest.
    fn config(&self, device: tch::Device, spec: MethodSpec, target: Target, preprocess: Preprocess, input: PathBuf) -> Result<RunConfig> {
        Ok(RunConfig {
            model: self.model.clone(),
            device,
            spec,
            target,
            preprocess,
            input,
            out_dir: PathBuf::new(),
            shard: Shard::ALL,
            block_items: self.batch_items,
            threads: self.threads,
            plan_only: false,
            warm_up: !self.no_warm_up,
            format: self.format.parse()?,
            metrics: attrib_dataset::MetricSet::default(),
        })
    }
}

/// Arguments of `attrib explain-dataset`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  attrib explain-dataset --model m.pt --input images/ --resize 256 --center-crop 224 --normalize imagenet \\
                         --method integrated-gradients --out-dir out/ig
  attrib explain-dataset --model m.pt --input paths.txt --method saliency --out-dir out/sal --shard 2/8
  attrib explain-dataset --model m.pt --input big.npy --method integrated-gradients --out-dir out/ig --json

The output folder holds plan.json, attributions/<item>.npy, blocks/*.json and summary.json
(shards: shards/summary-K-of-N.json); a rerun skips the items already done. See docs/datasets.md.")]
pub struct DatasetArgs {
    /// The model, the data set and the flags every data-set run takes.
    #[command(flatten)]
    pub run: RunArgs,
    /// Attribution method (`attrib methods` lists them).
    #[arg(long, default_value = "saliency")]
    pub method: String,
    /// Output folder (created if missing; a rerun into it skips the items already done).
    #[arg(long = "out-dir")]
    pub out_dir: PathBuf,
    /// Run only shard K of N (1-based): a fixed slice of the sorted items' blocks.
    #[arg(long)]
    pub shard: Option<String>,
    /// Also score every item's attribution (values per item in the records; mean, sd and 95 %
    /// interval per run in the summary): a comma-separated list of STEPS (deletion and
    /// insertion curves with that many steps; the flag alone: 20), deletion / insertion (both
    /// curves), infidelity, sensitivity-max, faithfulness, or all. E.g.
    /// `--metrics 20,infidelity,sensitivity-max`.
    #[arg(long, num_args = 0..=1, default_missing_value = "20", value_name = "LIST")]
    pub metrics: Option<String>,
    /// Only write the run's plan (OUT/plan.json), explain nothing: run it once before starting
    /// shards in parallel (the Ray driver does).
    #[arg(long = "plan-only")]
    pub plan_only: bool,
    /// Print the run's summary JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub method_flags: crate::explain::MethodFlags,
}

/// Run `attrib explain-dataset`.
pub fn run(args: DatasetArgs, registry: &Registry) -> Result<()> {
    let spec = crate::methods::spec_from_flags(registry, &args.method, &args.method_flags.values(), &args.run.batch)?;
    let input = args.run.one_input("explain-dataset")?;
    let shard = args.shard.as_deref().map(str::parse::<Shard>).transpose()?.unwrap_or(Shard::ALL);
    let target = crate::explain::parse_target(&args.run.target)?;
    let (geometry, normalize) = args.run.inputs.transforms()?;
    let choice = args.run.device.parse::<DeviceSpec>()?.choose()?;
    crate::outputs::check_model(&args.run.model)?;
    let mut cfg = args.run.config(choice.device, spec, target, Preprocess { geometry, normalize }, input)?;
    cfg.out_dir = args.out_dir.clone();
    cfg.shard = shard;
    cfg.plan_only = args.plan_only;
    if let Some(text) = &args.metrics {
        cfg.metrics = attrib_dataset::MetricSet::parse(text, args.run.metrics_seed)?;
    }
    let bar = if args.run.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(0);
        b.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} items {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
        b
    };
    let mut on_progress = |p: &Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        let rate = p.done as f64 / p.elapsed.as_secs_f64().max(1e-9);
        let eta = (p.total - p.done) as f64 / rate.max(1e-9);
        bar.set_message(format!("{rate:.1} items/s, ETA {}", human_secs(eta)));
    };
    let report = attrib_dataset::run(registry, &cfg, &mut on_progress)?;
    bar.finish_and_clear();
    if args.plan_only {
        eprintln!("plan: {} items in {} blocks of {} items, {} rows per model call, {} threads -> {}",
            report.plan.items, report.plan.blocks, report.plan.block_items, report.plan.max_batch, report.plan.threads,
            args.out_dir.join("plan.json").display());
    } else if let Some(path) = &report.summary_path {
        let rate = report.summary["items_per_s"].as_f64().unwrap_or(0.0);
        eprintln!("{} items explained ({rate:.1} items/s), {} skipped as done; summary: {}", report.computed, report.skipped, path.display());
    }
    if args.json {
        let out = if args.plan_only { serde_json::to_value(&report.plan).map_err(|e| AttribError::Internal(e.to_string()))? } else { report.summary };
        println!("{out}");
    }
    if choice.requested == DeviceSpec::Auto {
        eprintln!("device: {choice}");
    }
    Ok(())
}

fn human_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Arguments of `attrib compare-dataset`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  attrib compare-dataset --model m.pt --input images/ --resize 16 --center-crop 16 --channels 1 \\
                         --methods saliency,integrated-gradients,smoothgrad --out-dir out/cmp
  attrib compare-dataset --model m.pt --input big.npy --out-dir out/cmp \\
                         --spec '{\"method\": \"integrated-gradients\", \"label\": \"ig-16\", \"n_steps\": 16}' --methods saliency

  attrib compare-dataset --model m.pt --input big.npy --out-dir out/cmp --methods saliency,integrated-gradients \\
                         --metrics 20,infidelity,sensitivity-max

Each method runs as `attrib explain-dataset --metrics` into OUT/<label or method>/ (resumable);
OUT/comparison.json holds per method items/s and each metric's mean with a 95 % interval
(deletion/insertion areas by default; infidelity, sensitivity-max, faithfulness when named).
See docs/datasets.md.")]
pub struct CompareDatasetArgs {
    /// The model, the data set and the flags every data-set run takes.
    #[command(flatten)]
    pub run: RunArgs,
    /// Methods by name, with their defaults (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// A method spec as JSON (`{"method": ..., "label": ..., parameters}`); repeatable.
    #[arg(long)]
    pub spec: Vec<String>,
    /// Output folder: one sub-folder per method and comparison.json.
    #[arg(long = "out-dir")]
    pub out_dir: PathBuf,
    /// Metrics per item, as explain-dataset's --metrics: STEPS (deletion/insertion curves),
    /// deletion, insertion, infidelity, sensitivity-max, faithfulness, all (comma-separated).
    #[arg(long, default_value = "20", value_name = "LIST")]
    pub metrics: String,
    /// Print comparison.json on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The specs of `compare-dataset`: `--spec` JSON first, then `--methods` names, each with the
/// batch flags, checked.
fn compare_specs(args: &CompareDatasetArgs, registry: &Registry) -> Result<Vec<MethodSpec>> {
    let mut specs = Vec::new();
    for text in &args.spec {
        specs.push(text.parse::<MethodSpec>()?);
    }
    for name in &args.methods {
        specs.push(MethodSpec { method: name.trim().to_string(), label: None, params: Default::default() });
    }
    if specs.is_empty() {
        return Err(AttribError::param("methods", "no method to compare; give --methods a,b,... or --spec JSON"));
    }
    for s in &mut specs {
        s.params.extend(args.run.batch.spec_keys());
        registry.check(s)?;
    }
    Ok(specs)
}

/// Run `attrib compare-dataset`.
pub fn run_compare(args: CompareDatasetArgs, registry: &Registry) -> Result<()> {
    let specs = compare_specs(&args, registry)?;
    let input = args.run.one_input("compare-dataset")?;
    let (geometry, normalize) = args.run.inputs.transforms()?;
    let choice = args.run.device.parse::<DeviceSpec>()?.choose()?;
    crate::outputs::check_model(&args.run.model)?;
    let target = crate::explain::parse_target(&args.run.target)?;
    let mut base = args.run.config(choice.device, specs[0].clone(), target, Preprocess { geometry, normalize }, input)?;
    base.out_dir = args.out_dir.clone();
    base.metrics = attrib_dataset::MetricSet::parse(&args.metrics, args.run.metrics_seed)?;
    let show = !args.run.quiet && std::io::stderr().is_terminal();
    let comparison = attrib_dataset::compare::compare(registry, &base, &specs, &mut |name, p| {
        if show {
            let rate = p.done as f64 / p.elapsed.as_secs_f64().max(1e-9);
            eprint!("\r{name}: {}/{} items, {rate:.1} items/s   ", p.done, p.total);
        }
    })?;
    if show {
        eprintln!();
    }
    let cell = |v: &serde_json::Value| match (v["mean"].as_f64(), v["ci95"][0].as_f64(), v["ci95"][1].as_f64()) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.4} [{lo:.4}, {hi:.4}]"),
        (Some(m), _, _) => format!("{m:.4}"),
        _ => "-".into(),
    };
    let titles = [
        ("deletion_auc", "deletion AUC"),
        ("insertion_auc", "insertion AUC"),
        ("infidelity", "infidelity"),
        ("sensitivity_max", "sensitivity-max"),
        ("faithfulness_correlation", "faithfulness corr."),
    ];
    let methods: Vec<&serde_json::Value> = comparison["methods"].as_array().into_iter().flatten().collect();
    let shown: Vec<(&str, &str)> = titles.into_iter().filter(|(k, _)| methods.iter().any(|r| r.get(*k).is_some())).collect();
    let mut head = format!("{:<24} {:>10}", "method", "items/s");
    for (_, t) in &shown {
        head.push_str(&format!(" {:>30}", format!("{t} (95 % CI)")));
    }
    eprintln!("{head}");
    for row in methods {
        let mut line = format!("{:<24} {:>10.1}", row["name"].as_str().unwrap_or(""), row["items_per_s"].as_f64().unwrap_or(0.0));
        for (k, _) in &shown {
            line.push_str(&format!(" {:>30}", cell(&row[*k])));
        }
        eprintln!("{line}");
    }
    eprintln!("comparison: {}", args.out_dir.join("comparison.json").display());
    if args.json {
        println!("{comparison}");
    }
    Ok(())
}
