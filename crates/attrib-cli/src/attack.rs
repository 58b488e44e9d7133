//! `attrib attack`: FGSM or PGD on a model's inputs; writes the adversarial inputs as .npy.
//!
//! A thin shell over `attrib::robust`: the flags fill [`FgsmParams`](attrib::robust::FgsmParams)
//! or [`PgdParams`](attrib::robust::PgdParams); outputs are checked before any work and
//! written atomically (see `crate::outputs`).

use attrib::convert::stage_npy_tensor;
use attrib::prelude::*;
use attrib::robust::{Fgsm, Loss, Norm, Pgd, PgdParams};
use attrib::Result;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Arguments of `attrib attack`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  attrib attack --model m.pt --input x.npy --method fgsm --epsilon 0.1 --bounds 0,1 --out adv.npy --json
  attrib attack --model m.pt --input x.npy --method pgd --epsilon 0.1 --steps 20 --step-size 0.01 --norm linf --out adv.npy
  attrib attack --model m.pt --input x.npy --method pgd --epsilon 1.0 --norm l2 --random-start --seed 3 --out adv.npy
  attrib attack --model m.pt --input x.npy --method fgsm --epsilon 0.05 --targeted --target 3 --out adv.npy

The loss (--loss auto): -log(output[target]) as Captum when the model's outputs are probabilities,
cross-entropy on the logits otherwise; --json reports which.")]
pub struct AttackArgs {
    /// TorchScript model (`torch.jit.trace(model, example).save(path)`); its output: `[N, classes]`.
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs (.npy arrays or images) and image preprocessing.
    #[command(flatten)]
    pub inputs: crate::input::InputArgs,
    /// Attack: fgsm or pgd.
    #[arg(long)]
    pub method: String,
    /// ε: FGSM's step, PGD's radius.
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: f64,
    /// PGD: size of each step (default 2.5 · ε / steps).
    #[arg(long = "step-size", allow_negative_numbers = true)]
    pub step_size: Option<f64>,
    /// PGD: number of steps (default 10).
    #[arg(long)]
    pub steps: Option<usize>,
    /// PGD: the ball's norm, linf (default) or l2.
    #[arg(long)]
    pub norm: Option<String>,
    /// PGD: start from a random point of the ball (seeded by --seed).
    #[arg(long = "random-start")]
    pub random_start: bool,
    /// PGD: seed of the random start (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Move towards --target instead of away from it.
    #[arg(long)]
    pub targeted: bool,
    /// Bounds of the input values after the attack, as LO,HI (default: none).
    #[arg(long, allow_hyphen_values = true)]
    pub bounds: Option<String>,
    /// Loss: auto (default), neg-log-prob (Captum's) or cross-entropy.
    #[arg(long, default_value = "auto")]
    pub loss: String,
    /// Untargeted: the true class (N, an int .npy with one per row, or `argmax`, the model's
    /// prediction); targeted: the class to reach.
    #[arg(long, default_value = "argmax", allow_hyphen_values = true)]
    pub target: String,
    /// Output .npy file(s) of the adversarial inputs, one per input; a single path for several
    /// inputs gets `_0`, `_1`, ... suffixes.
    #[arg(long, required = true)]
    pub out: Vec<PathBuf>,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// How many more times to run the attack after the first (benchmark mode): `--json` then
    /// reports `first_ms` apart and `elapsed_ms` as the median of the repeats, with min and max.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
    /// Skip the warm-up (by default the model runs forward and backward on two rows after
    /// loading, timed apart as `warm_up_ms`).
    #[arg(long = "no-warm-up")]
    pub no_warm_up: bool,
    /// How the shared tensor layer chunks and runs the work.
    #[command(flatten)]
    pub batch: crate::methods::BatchArgs,
}

/// The attack the flags describe, checked before any file is read.
enum Attack {
    Fgsm(Fgsm),
    Pgd(Pgd),
}

/// `--bounds LO,HI` (of `attrib attack` and `compare --attack`) as two numbers; the message
/// names the flag and the value.
pub(crate) fn parse_bounds(s: &str) -> std::result::Result<(f64, f64), String> {
    let bad = || format!("--bounds `{s}` is not LO,HI (two numbers, e.g. 0,1)");
    let (lo, hi) = s.split_once(',').ok_or_else(bad)?;
    let num = |v: &str| v.trim().parse::<f64>().map_err(|_| bad());
    Ok((num(lo)?, num(hi)?))
}

/// PGD's optional flags that `attrib attack` and `compare --attack` share (steps, step size,
/// norm, bounds), applied to `p` where given.
pub(crate) fn with_pgd_flags(
    mut p: PgdParams,
    steps: Option<usize>,
    step_size: Option<f64>,
    norm: Option<&str>,
    bounds: Option<(f64, f64)>,
) -> Result<PgdParams> {
    if let Some(n) = steps {
        p = p.step_num(n);
    }
    if let Some(s) = step_size {
        p = p.step_size(s);
    }
    if let Some(n) = norm {
        p = p.norm(n.parse::<Norm>()?);
    }
    if let Some((lo, hi)) = bounds {
        p = p.bounds(lo, hi);
    }
    Ok(p)
}

fn build(args: &AttackArgs, batch: BatchOptions) -> Result<Attack> {
    let loss: Loss = args.loss.parse()?;
    let bounds = args.bounds.as_deref().map(parse_bounds).transpose().map_err(|m| AttribError::param("bounds", m))?;
    match args.method.as_str() {
        "fgsm" => {
            let pgd_only = [
                ("--step-size", args.step_size.is_some()),
                ("--steps", args.steps.is_some()),
                ("--norm", args.norm.is_some()),
                ("--random-start", args.random_start),
                ("--seed", args.seed.is_some()),
            ];
            if let Some((flag, _)) = pgd_only.iter().find(|(_, given)| *given) {
                return Err(AttribError::NotApplicable(format!("{flag} applies to --method pgd only; fgsm takes --epsilon, --targeted, --bounds, --loss")));
            }
            let mut p = Fgsm::params(args.epsilon).targeted(args.targeted).loss(loss).batch(batch);
            if let Some((lo, hi)) = bounds {
                p = p.bounds(lo, hi);
            }
            Ok(Attack::Fgsm(p.check()?))
        }
        "pgd" => {
            let p = Pgd::params(args.epsilon).targeted(args.targeted).random_start(args.random_start).loss(loss).batch(batch);
            let mut p = with_pgd_flags(p, args.steps, args.step_size, args.norm.as_deref(), bounds)?;
            if let Some(s) = args.seed {
                p = p.seed(s);
            }
            Ok(Attack::Pgd(p.check()?))
        }
        other => Err(AttribError::param("method", format!("unknown attack `{other}`; use fgsm or pgd"))),
    }
}

/// Run `attrib attack`.
pub fn run(args: AttackArgs) -> Result<()> {
    let batch = args.batch.options()?;
    let attack = build(&args, batch)?;
    let choice = args.device.parse::<DeviceSpec>()?.choose()?;
    let device = choice.device;
    let target = crate::explain::parse_target(&args.target)?;
    let outs = crate::explain::output_paths(&args.out, args.inputs.count())?;
    let outputs: Vec<(&str, &Path)> = outs.iter().map(|p| ("--out", p.as_path())).collect();
    let reads = crate::outputs::Reads::model_run(&args.inputs, &args.model, &args.target);
    crate::outputs::check(&outputs, &reads)?;
    crate::outputs::check_model(&args.model)?;
    let loaded = args.inputs.load(device)?;
    let shapes: Vec<Vec<i64>> = loaded.tensors.iter().map(|t| t.size()).collect();
    let model = TorchScriptModel::load(&args.model, device)?;
    let inputs = Inputs::multi(loaded.tensors);
    let warm_up_ms = (!args.no_warm_up).then(|| {
        let report = attrib::tensor::warm::warm_up(&model, &inputs, &batch, attrib::tensor::warm::Work::Gradients);
        report.elapsed.as_secs_f64() * 1e3
    });
    let once = || match &attack {
        Attack::Fgsm(f) => f.perturb(&model, &inputs, &target),
        Attack::Pgd(p) => p.perturb(&model, &inputs, &target),
    };
    let params = match &attack {
        Attack::Fgsm(f) => f.describe(),
        Attack::Pgd(p) => p.describe(),
    };
    let outcome = once()?;
    let first_ms = outcome.elapsed.as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        times.push(once()?.elapsed.as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median_ms = if times.is_empty() { first_ms } else { times[times.len() / 2] };
    let mut staged = Vec::new();
    for (t, p) in outcome.adversarial.iter().zip(&outs) {
        staged.push(stage_npy_tensor(p, t)?);
    }
    crate::outputs::commit(staged)?;
    if args.json {
        let summary = json!({
            "method": args.method,
            "params": params,
            "loss": outcome.loss.name(),
            "targeted": outcome.targeted,
            "labels": outcome.labels,
            "before": outcome.before,
            "after": outcome.after,
            "success": outcome.success,
            "success_rate": outcome.success_rate(),
            "elapsed_ms": median_ms,
            "first_ms": first_ms,
            "repeats": args.repeat,
            "elapsed_min_ms": times.first().copied().unwrap_or(first_ms),
            "elapsed_max_ms": times.last().copied().unwrap_or(first_ms),
            "warm_up_ms": warm_up_ms,
            "device": attrib::tensor::device_name(device),
            "device_choice": choice.reason,
            "model": args.model,
            "input_shapes": shapes,
            "outputs": outs,
        });
        println!("{summary}");
    } else {
        for p in &outs {
            eprintln!("wrote {}", p.display());
        }
        eprintln!(
            "{}: {} of {} rows {} ({} loss)",
            args.method,
            outcome.success.iter().filter(|&&s| s).count(),
            outcome.success.len(),
            if outcome.targeted { "reached the target" } else { "changed prediction" },
            outcome.loss.name()
        );
    }
    if choice.requested == DeviceSpec::Auto {
        eprintln!("device: {choice}");
    }
    Ok(())
}
