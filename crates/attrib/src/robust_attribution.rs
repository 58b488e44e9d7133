//! Attribution robustness under attack: attack the inputs (FGSM or PGD, [`crate::robust`]),
//! explain the adversarial examples with each method, and measure how far each method's
//! attribution moved on the rows the attack succeeded on ([`crate::metrics::robustness`]:
//! top-k intersection and rank correlation, Ghorbani et al. 2019).
//!
//! This sits in the facade because it joins two families that do not depend on each other
//! (`attrib-robust` and `attrib-metrics`).
//!
//! Both attributions of a row explain the same class: `target` (by default the class explained
//! before the attack), or with [`AfterTarget::Prediction`] the adversarial prediction. Each
//! method runs on the whole adversarial batch (every row at its own position, so seeded methods
//! draw the same noise for a row before and after), and the change is read on the successful rows.

use crate::metrics::robustness::{attribution_change, AttributionChange, ChangeParams};
use crate::robust::{AttackOutcome, Fgsm, Pgd};
use attrib_core::{Attribution, Inputs, Model, Result, Target};
use tch::Tensor;

/// The attack of [`attribution_robustness`].
pub enum Attack {
    /// One FGSM step.
    Fgsm(Fgsm),
    /// PGD steps.
    Pgd(Pgd),
}

impl Attack {
    /// `"fgsm"` or `"pgd"`.
    pub fn name(&self) -> &'static str {
        match self {
            Attack::Fgsm(_) => "fgsm",
            Attack::Pgd(_) => "pgd",
        }
    }

    /// The attack's parameters, as its `describe`.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Attack::Fgsm(a) => a.describe(),
            Attack::Pgd(a) => a.describe(),
        }
    }

    /// Run the attack; `labels` are the true classes (untargeted) or the classes to reach.
    pub fn perturb(&self, model: &dyn Model, inputs: &Inputs, labels: &Target) -> Result<AttackOutcome> {
        match self {
            Attack::Fgsm(a) => a.perturb(model, inputs, labels),
            Attack::Pgd(a) => a.perturb(model, inputs, labels),
        }
    }
}

/// Which class the attribution of an adversarial example explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterTarget {
    /// The class explained before the attack (default): how the evidence for it moved.
    #[default]
    Same,
    /// The model's prediction on the adversarial example.
    Prediction,
}

/// Parameters of [`attribution_robustness`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RobustnessParams {
    /// Top-k and the feature definition of the change.
    pub change: ChangeParams,
    /// What the adversarial attributions explain.
    pub after_target: AfterTarget,
}

/// One method's attributions before and after the attack, and the change on the attacked rows.
pub struct MethodChange {
    /// The method's name as given.
    pub name: String,
    /// Its attribution of the clean inputs (every row).
    pub before: Vec<Tensor>,
    /// Its attribution of the adversarial inputs (every row; only the attacked rows count).
    pub after: Vec<Tensor>,
    /// Top-k intersection and rank correlations on [`AttackRobustness::attacked`], in that order.
    pub change: AttributionChange,
}

/// The result of [`attribution_robustness`].
pub struct AttackRobustness {
    /// The attack's outcome: adversarial inputs, predictions before and after, success per row.
    pub outcome: AttackOutcome,
    /// The rows the attack succeeded on, in order.
    pub attacked: Vec<usize>,
    /// Per method, in the order given.
    pub methods: Vec<MethodChange>,
}

/// A method to compare, with its attribution of the clean inputs when already computed.
pub struct MethodRun<'a> {
    /// Name for the result.
    pub name: String,
    /// The method.
    pub method: &'a dyn Attribution,
    /// Its attribution of the clean inputs for `target` (one tensor per input), if known.
    pub before: Option<Vec<Tensor>>,
}

/// Attack `inputs` of `model` (`labels`: the attack's labels, [`Target::Argmax`] for "away from
/// the prediction"), then for every method the attribution change between the clean and the
/// adversarial inputs on the rows where the attack succeeded. `target` is what the attributions
/// explain (a class, one per row, or argmax: the clean prediction).
pub fn attribution_robustness(
    model: &dyn Model,
    inputs: &Inputs,
    target: &Target,
    attack: &Attack,
    labels: &Target,
    methods: &[MethodRun<'_>],
    params: &RobustnessParams,
) -> Result<AttackRobustness> {
    let outcome = attack.perturb(model, inputs, labels)?;
    let n = outcome.success.len();
    // Resolve argmax once, to the clean prediction, so that both sides explain the same class.
    let before_target = match target {
        Target::Argmax => Target::PerSample(outcome.before.clone()),
        t => t.clone(),
    };
    let after_target = match params.after_target {
        AfterTarget::Same => before_target.clone(),
        AfterTarget::Prediction => Target::PerSample(outcome.after.clone()),
    };
    let attacked: Vec<usize> = (0..n).filter(|&i| outcome.success[i]).collect();
    let adversarial = Inputs::multi(outcome.adversarial.iter().map(Tensor::shallow_clone).collect())
        .with_extra(inputs.extra().iter().map(|a| a.shallow_clone()).collect());
    let mut out = Vec::with_capacity(methods.len());
    for m in methods {
        let before = match &m.before {
            Some(b) => b.iter().map(Tensor::shallow_clone).collect(),
            None => m.method.attribute(model, inputs, &before_target)?.values,
        };
        let after = m.method.attribute(model, &adversarial, &after_target)?.values;
        // Over every row (checks k and shapes even when no row was attacked), then kept for the
        // attacked rows.
        let all = attribution_change(&before, &after, &params.change)?;
        let keep = |v: &[Option<f64>]| attacked.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let change = AttributionChange {
            k: all.k,
            features: all.features,
            top_k_intersection: attacked.iter().map(|&i| all.top_k_intersection[i]).collect(),
            rank_correlation: keep(&all.rank_correlation),
            signed_rank_correlation: keep(&all.signed_rank_correlation),
        };
        out.push(MethodChange { name: m.name.clone(), before, after, change });
    }
    Ok(AttackRobustness { outcome, attacked, methods: out })
}
