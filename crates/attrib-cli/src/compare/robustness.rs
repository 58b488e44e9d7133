//! `attrib compare`'s robustness options: infidelity and max-sensitivity columns per method
//! (`--metrics`) and the attack section (`--attack`): attack success, each method's attribution
//! change on the attacked rows, and pictures of adversarial examples beside their attributions.
//! See `docs/compare.md`.

use super::{CompareError, Result};
use crate::report::{MethodResult, MethodRobustness, MetricSettings, Robustness};
use attrib::metrics::robustness::{ChangeParams, TopK};
use attrib::metrics::{infidelity, sensitivity_max, InfidelityParams, Noise, SensitivityParams};
use attrib::prelude::*;
use attrib::robust::{Fgsm, Pgd};
use attrib::robust_attribution::{attribution_robustness, AfterTarget, Attack, MethodRun, RobustnessParams};
use attrib::Result as AResult;
use tch::Tensor;

/// Default perturbations per row of infidelity and max-sensitivity (`attrib metrics`' default).
const METRIC_SAMPLES: usize = 10;
/// Default standard deviation of infidelity's Gaussian noise (`attrib metrics`' default).
const INFIDELITY_STDEV: f64 = 0.1;
/// Default radius of max-sensitivity's uniform noise (Captum's and `attrib metrics`' default).
const SENSITIVITY_RADIUS: f64 = 0.02;
/// Default attacked rows that get pictures.
const ATTACK_FIGURES: usize = 4;

/// Robustness flags of `attrib compare`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RobustArgs {
    /// Robustness metrics per method, comma-separated: infidelity, sensitivity-max (or all).
    /// Each adds a column (mean over the rows) and per-row values in report.json.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Perturbations per row of --metrics (default 10).
    #[arg(long = "metrics-samples")]
    pub metrics_samples: Option<usize>,
    /// Seed of the --metrics noise (default: --seed, else 0).
    #[arg(long = "metrics-seed")]
    pub metrics_seed: Option<u64>,
    /// Standard deviation of infidelity's Gaussian perturbations (default 0.1).
    #[arg(long = "infidelity-stdev")]
    pub infidelity_stdev: Option<f64>,
    /// Radius of max-sensitivity's uniform L-inf perturbations (default 0.02).
    #[arg(long = "sensitivity-radius")]
    pub sensitivity_radius: Option<f64>,
    /// Attack the inputs (fgsm or pgd, away from the model's prediction) and report each
    /// method's attribution change on the rows whose prediction changed. Needs --epsilon.
    #[arg(long)]
    pub attack: Option<String>,
    /// ε of --attack: FGSM's step, PGD's radius.
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
    /// PGD: number of steps (default 10).
    #[arg(long)]
    pub steps: Option<usize>,
    /// PGD: size of each step (default 2.5 · ε / steps).
    #[arg(long = "step-size", allow_negative_numbers = true)]
    pub step_size: Option<f64>,
    /// PGD: the ball's norm, linf (default) or l2.
    #[arg(long)]
    pub norm: Option<String>,
    /// Bounds of the input values after the attack, as LO,HI (default: none).
    #[arg(long, allow_hyphen_values = true)]
    pub bounds: Option<String>,
    /// k of the top-k intersection: a number of features (pixels for images), e.g. 25, or a
    /// fraction of them, e.g. 0.1 (default 0.1).
    #[arg(long = "intersection-k")]
    pub intersection_k: Option<String>,
    /// Attacked rows (the first ones) that get pictures: the input, the adversarial example and
    /// each method's attribution of both (default 4; image inputs only).
    #[arg(long = "attack-figures")]
    pub attack_figures: Option<usize>,
}

fn usage(s: impl Into<String>) -> CompareError {
    CompareError::Usage(s.into())
}

/// The metric settings `--metrics` asks for, checked before any work; `seed` is `--seed`.
pub(super) fn metric_settings(args: &RobustArgs, seed: Option<u64>) -> Result<Option<MetricSettings>> {
    let (mut infidelity, mut sensitivity) = (false, false);
    for word in args.metrics.iter().map(|w| w.trim()).filter(|w| !w.is_empty()) {
        match word {
            "infidelity" => infidelity = true,
            "sensitivity-max" | "sensitivity_max" | "sensitivity" => sensitivity = true,
            "all" => (infidelity, sensitivity) = (true, true),
            other => return Err(usage(format!("unknown --metrics entry `{other}`; use infidelity, sensitivity-max or all"))),
        }
    }
    if !infidelity && !sensitivity {
        let given = [
            ("--metrics-samples", args.metrics_samples.is_some()),
            ("--metrics-seed", args.metrics_seed.is_some()),
            ("--infidelity-stdev", args.infidelity_stdev.is_some()),
            ("--sensitivity-radius", args.sensitivity_radius.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
            return Err(usage(format!("{flag} applies with --metrics infidelity,sensitivity-max")));
        }
        return Ok(None);
    }
    if args.infidelity_stdev.is_some() && !infidelity {
        return Err(usage("--infidelity-stdev applies with --metrics infidelity"));
    }
    if args.sensitivity_radius.is_some() && !sensitivity {
        return Err(usage("--sensitivity-radius applies with --metrics sensitivity-max"));
    }
    let samples = args.metrics_samples.unwrap_or(METRIC_SAMPLES);
    if samples == 0 {
        return Err(usage("--metrics-samples must be at least 1 (default 10)"));
    }
    let stdev = args.infidelity_stdev.unwrap_or(INFIDELITY_STDEV);
    let radius = args.sensitivity_radius.unwrap_or(SENSITIVITY_RADIUS);
    for (flag, v) in [("--infidelity-stdev", stdev), ("--sensitivity-radius", radius)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(usage(format!("{flag} must be a finite number >= 0, got {v}")));
        }
    }
    Ok(Some(MetricSettings {
        infidelity,
        sensitivity,
        samples,
        infidelity_stdev: stdev,
        sensitivity_radius: radius,
        seed: args.metrics_seed.or(seed).unwrap_or(0),
    }))
}

/// Infidelity and max-sensitivity of one method's attribution `values` (of `target`).
pub(super) fn method_metrics(
    s: &MetricSettings,
    method: &dyn Attribution,
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    values: &[Tensor],
    batch: BatchOptions,
) -> AResult<(Option<Vec<f64>>, Option<Vec<f64>>)> {
    let inf = if s.infidelity {
        let params = InfidelityParams {
            n_perturb_samples: s.samples,
            noise: Noise::Gaussian { stdev: s.infidelity_stdev },
            multiply_by_inputs: method.info().multiplies_by_inputs,
            seed: s.seed,
            batch,
            ..Default::default()
        };
        Some(infidelity(model, inputs, target, values, &params)?)
    } else {
        None
    };
    let sens = if s.sensitivity {
        let params = SensitivityParams {
            n_perturb_samples: s.samples,
            noise: Noise::Uniform { radius: s.sensitivity_radius },
            seed: s.seed,
            ..Default::default()
        };
        Some(sensitivity_max(method, model, inputs, target, &params)?.values)
    } else {
        None
    };
    Ok((inf, sens))
}

/// The attack `--attack` asks for, checked before any work.
pub(super) struct AttackPlan {
    attack: Attack,
    k: TopK,
    figures: usize,
}

/// Build the attack of `--attack` (`None` without it; its flags alone are an error).
pub(super) fn attack_plan(args: &RobustArgs, batch: BatchOptions) -> Result<Option<AttackPlan>> {
    let pgd_only = [("--steps", args.steps.is_some()), ("--step-size", args.step_size.is_some()), ("--norm", args.norm.is_some())];
    let Some(name) = args.attack.as_deref() else {
        let attack_flags = [
            ("--epsilon", args.epsilon.is_some()),
            ("--bounds", args.bounds.is_some()),
            ("--intersection-k", args.intersection_k.is_some()),
            ("--attack-figures", args.attack_figures.is_some()),
        ];
        if let Some((flag, _)) = attack_flags.iter().chain(&pgd_only).find(|(_, g)| *g) {
            return Err(usage(format!("{flag} applies with --attack fgsm|pgd")));
        }
        return Ok(None);
    };
    let epsilon = args.epsilon.ok_or_else(|| usage(format!("--attack {name} needs --epsilon E (FGSM's step, PGD's radius)")))?;
    let bounds = args.bounds.as_deref().map(crate::attack::parse_bounds).transpose().map_err(usage)?;
    let attack = match name.trim() {
        "fgsm" => {
            if let Some((flag, _)) = pgd_only.iter().find(|(_, g)| *g) {
                return Err(usage(format!("{flag} applies to --attack pgd only; fgsm takes --epsilon and --bounds")));
            }
            let mut p = Fgsm::params(epsilon).batch(batch);
            if let Some((lo, hi)) = bounds {
                p = p.bounds(lo, hi);
            }
            Attack::Fgsm(p.check()?)
        }
        "pgd" => {
            let p = Pgd::params(epsilon).batch(batch);
            Attack::Pgd(crate::attack::with_pgd_flags(p, args.steps, args.step_size, args.norm.as_deref(), bounds)?.check()?)
        }
        other => return Err(usage(format!("unknown --attack `{other}`; use fgsm or pgd"))),
    };
    let k = match &args.intersection_k {
        Some(s) => s.parse::<TopK>()?,
        None => TopK::default(),
    };
    Ok(Some(AttackPlan { attack, k, figures: args.attack_figures.unwrap_or(ATTACK_FIGURES) }))
}

impl AttackPlan {
    /// Refuse inputs and models an attack cannot run on, and a k that does not fit the
    /// features (`features`: per row, pixels for images), before any method runs.
    pub(super) fn check(&self, token: bool, differentiable: bool, classes: bool, features: usize) -> Result<()> {
        if token {
            return Err(usage(
                "--attack does not apply to token-id inputs: attacks move inputs along gradients, and token ids are integers; attack the embedding with your own code, or drop --attack",
            ));
        }
        if !differentiable {
            return Err(usage("--attack needs the gradient of the model's output with respect to its inputs, and this model's output has none"));
        }
        if !classes {
            return Err(usage("--attack needs a classifier (output [N, classes] with classes > 1): success means the predicted class changed"));
        }
        self.k.resolve(features).map_err(|e| usage(format!("--intersection-k: {e}")))?;
        Ok(())
    }

    /// Attack, explain the adversarial examples with every method of `results` (`methods`
    /// alongside), and measure the attribution change on the attacked rows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        target: &Target,
        results: &[MethodResult],
        methods: &[&dyn Attribution],
        pixels: bool,
        pictures: &super::attack_figures::Pictures<'_>,
    ) -> Result<Robustness> {
        let runs: Vec<MethodRun<'_>> = results
            .iter()
            .zip(methods)
            .map(|(r, m)| MethodRun { name: r.name.clone(), method: *m, before: Some(r.values.iter().map(Tensor::shallow_clone).collect()) })
            .collect();
        let params = RobustnessParams { change: ChangeParams { k: self.k, pixels }, after_target: AfterTarget::Same };
        let r = attribution_robustness(model, inputs, target, &self.attack, &Target::Argmax, &runs, &params)
            .map_err(|e| usage(format!("--attack {}: {e}", self.attack.name())))?;
        let shown: Vec<usize> = r.attacked.iter().copied().take(self.figures).collect();
        let figures = pictures.draw(&shown, &r.outcome.adversarial, &r.methods)?;
        let (k, features) = r.methods.first().map_or((0, 0), |m| (m.change.k, m.change.features));
        Ok(Robustness {
            attack: self.attack.name().to_string(),
            params: self.attack.describe(),
            loss: r.outcome.loss.name().to_string(),
            labels: r.outcome.labels.clone(),
            before: r.outcome.before.clone(),
            after: r.outcome.after.clone(),
            success: r.outcome.success.clone(),
            attacked: r.attacked.clone(),
            k,
            features,
            elapsed_ms: r.outcome.elapsed.as_secs_f64() * 1e3,
            methods: r
                .methods
                .iter()
                .map(|m| MethodRobustness {
                    name: m.name.clone(),
                    top_k_intersection: m.change.top_k_intersection.clone(),
                    rank_correlation: m.change.rank_correlation.clone(),
                    signed_rank_correlation: m.change.signed_rank_correlation.clone(),
                })
                .collect(),
            figures,
            pixels,
        })
    }
}

/// Features per row as the change counts them: pixels of image inputs with `pixels`, else
/// every scalar; all inputs together.
pub(super) fn features_per_row(tensors: &[Tensor], pixels: bool) -> usize {
    tensors
        .iter()
        .map(|t| {
            let s = t.size();
            let from = if pixels && s.len() >= 3 { 2 } else { 1 };
            s[from..].iter().product::<i64>().max(0) as usize
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T>(r: Result<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metric_flags() {
        assert!(metric_settings(&RobustArgs::default(), Some(4)).unwrap().is_none());
        let all = metric_settings(&RobustArgs { metrics: words(&["all"]), ..Default::default() }, Some(4)).unwrap().unwrap();
        assert!(all.infidelity && all.sensitivity);
        assert_eq!((all.samples, all.infidelity_stdev, all.sensitivity_radius, all.seed), (10, 0.1, 0.02, 4));
        let own = RobustArgs { metrics: words(&["infidelity"]), metrics_seed: Some(9), metrics_samples: Some(3), ..Default::default() };
        let own = metric_settings(&own, Some(4)).unwrap().unwrap();
        assert!(own.infidelity && !own.sensitivity);
        assert_eq!((own.samples, own.seed), (3, 9));
        let cases: [(RobustArgs, &str); 6] = [
            (RobustArgs { metrics: words(&["faithfulness"]), ..Default::default() }, "unknown --metrics entry `faithfulness`"),
            (RobustArgs { metrics_samples: Some(3), ..Default::default() }, "--metrics-samples applies with --metrics"),
            (RobustArgs { infidelity_stdev: Some(0.2), ..Default::default() }, "--infidelity-stdev applies with --metrics"),
            (RobustArgs { metrics: words(&["infidelity"]), metrics_samples: Some(0), ..Default::default() }, "at least 1"),
            (
                RobustArgs { metrics: words(&["infidelity"]), sensitivity_radius: Some(0.1), ..Default::default() },
                "--sensitivity-radius applies with --metrics sensitivity-max",
            ),
            (RobustArgs { metrics: words(&["infidelity"]), infidelity_stdev: Some(-1.0), ..Default::default() }, ">= 0"),
        ];
        for (args, needle) in cases {
            let e = err(metric_settings(&args, None));
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    fn attack(name: &str, epsilon: Option<f64>) -> RobustArgs {
        RobustArgs { attack: Some(name.into()), epsilon, ..Default::default() }
    }

    #[test]
    fn attack_flags() {
        let batch = BatchOptions::default();
        assert!(attack_plan(&RobustArgs::default(), batch).unwrap().is_none());
        let fgsm = attack_plan(&attack("fgsm", Some(0.1)), batch).unwrap().unwrap();
        assert_eq!((fgsm.attack.name(), fgsm.k, fgsm.figures), ("fgsm", TopK::Fraction(0.1), 4));
        let pgd = RobustArgs { steps: Some(7), norm: Some("l2".into()), intersection_k: Some("25".into()), attack_figures: Some(1), ..attack("pgd", Some(1.0)) };
        let pgd = attack_plan(&pgd, batch).unwrap().unwrap();
        assert_eq!((pgd.attack.describe()["step_num"].as_u64(), pgd.k, pgd.figures), (Some(7), TopK::Count(25), 1));
        let cases: [(RobustArgs, &str); 9] = [
            (RobustArgs { epsilon: Some(0.1), ..Default::default() }, "--epsilon applies with --attack"),
            (RobustArgs { steps: Some(3), ..Default::default() }, "--steps applies with --attack"),
            (RobustArgs { intersection_k: Some("3".into()), ..Default::default() }, "--intersection-k applies with --attack"),
            (attack("fgsm", None), "needs --epsilon"),
            (RobustArgs { steps: Some(5), ..attack("fgsm", Some(0.1)) }, "--steps applies to --attack pgd only"),
            (attack("bim", Some(0.1)), "unknown --attack `bim`"),
            (RobustArgs { norm: Some("l3".into()), ..attack("pgd", Some(0.1)) }, "unknown norm"),
            (attack("fgsm", Some(-1.0)), "epsilon"),
            (RobustArgs { intersection_k: Some("many".into()), ..attack("fgsm", Some(0.1)) }, "neither a number"),
        ];
        for (args, needle) in cases {
            let e = err(attack_plan(&args, batch));
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn what_an_attack_applies_to() {
        let batch = BatchOptions::default();
        let plan = |k: &str| {
            let args = RobustArgs { intersection_k: Some(k.into()), ..attack("fgsm", Some(0.1)) };
            attack_plan(&args, batch).unwrap().unwrap()
        };
        plan("0.1").check(false, true, true, 256).unwrap();
        plan("256").check(false, true, true, 256).unwrap();
        for (p, (token, diff, classes), needle) in [
            (plan("0.1"), (true, true, true), "token-id inputs"),
            (plan("0.1"), (false, false, true), "has none"),
            (plan("0.1"), (false, true, false), "needs a classifier"),
            (plan("0"), (false, true, true), "k >= 1"),
            (plan("300"), (false, true, true), "more than the 256 features"),
            (plan("1.5"), (false, true, true), "(0, 1]"),
        ] {
            let e = err(p.check(token, diff, classes, 256));
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let x = Tensor::zeros([2, 3, 4, 5], (tch::Kind::Float, tch::Device::Cpu));
        let t = Tensor::zeros([2, 7], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(features_per_row(&[x.shallow_clone()], true), 20);
        assert_eq!(features_per_row(&[x, t], false), 60 + 7);
    }
}
