//! `attrib metrics`: how far to trust a method's attributions (infidelity, max- and
//! avg-sensitivity, deletion and insertion curves, faithfulness correlation, the completeness gap,
//! the model randomisation test).
//!
//! A thin shell over `attrib::metrics`: the method is built from the same flags as
//! `attrib explain` (through the registry), the metric's own flags fill the library's parameter
//! structs ([`InfidelityParams`], [`SensitivityParams`], [`DeletionInsertionParams`],
//! [`FaithfulnessParams`], [`CompletenessParams`]).

use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::Result;
use std::path::PathBuf;

mod compute;
mod output;
mod randomization;
mod setup;

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

/// The metric `--metric` names.
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

/// Run `attrib metrics`: read the flags ([`setup::Settings`]), load the job
/// ([`setup::Job`]), take the attribution, compute the metric (timed, `--repeat`) and print it.
pub fn run(args: MetricsArgs, registry: &Registry) -> Result<()> {
    let metric = parse_metric(&args.metric)?;
    if !args.attributions.is_empty() && (metric == Metric::Randomization || metric.sensitivity()) {
        return Err(AttribError::NotApplicable(format!(
            "--attributions does not apply to --metric {}: it runs the method itself (on perturbed inputs or randomised models)",
            metric.name()
        )));
    }
    if metric == Metric::Randomization {
        return randomization::run(args, registry);
    }
    if args.method == "sobel-edges" {
        return Err(AttribError::NotApplicable("--method sobel-edges is the control of --metric randomization only".into()));
    }
    check_flags(metric, &args)?;
    let settings = setup::Settings::read(metric, &args, registry)?;
    let job = setup::Job::load(&args, registry, &settings)?;
    let (attr, attribution_ms) = compute::attribution(&args, metric, &job)?;
    // Explain the targets the attribution explained (argmax resolved once).
    let target = match attr.as_ref().and_then(|a| a.meta.targets.clone()) {
        Some(t) => Target::PerSample(t),
        None => job.target.clone(),
    };
    let scoring = compute::Scoring { args: &args, settings: &settings, job: &job, attr: attr.as_ref(), target: &target };
    let (outcome, first_ms, elapsed_ms) = compute::timed(args.repeat, || scoring.compute())?;
    output::print(&args, &settings, &job, outcome, &output::Times { attribution_ms, first_ms, elapsed_ms });
    if job.choice.requested == DeviceSpec::Auto {
        eprintln!("device: {}", job.choice);
    }
    Ok(())
}
