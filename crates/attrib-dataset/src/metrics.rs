//! Per-item metrics of a data-set run (`--metrics`): which ones, with what settings, and the
//! robustness metrics of one item (infidelity, max-sensitivity, faithfulness correlation).
//!
//! Deletion/insertion curves are computed per shape group in `run.rs`, with the run's pinned
//! batch options. The robustness metrics draw noise from keyed streams whose key includes the
//! row's place in the batch, so each item is scored alone (a batch of one row) with a seed of
//! its own, [`item_seed`] of the run's metric seed and the item's position in the sorted data
//! set: an item's value does not depend on its block, shard or on resumption, and it equals
//! `attrib metrics --seed <item seed>` on that item alone (up to the float rounding of the
//! attribution, which the run computes in the item's block). The settings are those of
//! `attrib metrics`' defaults and are part of the run's identity (`plan.json`).

use attrib::methods::Registry;
use attrib::metrics::{faithfulness_correlation, infidelity, sensitivity_max, FaithfulnessParams, InfidelityParams, Noise, SensitivityParams};
use attrib::prelude::*;
use attrib::tensor::rng::Rng;
use attrib::{Result, TorchResultExt};
use serde_json::{json, Value};
use tch::Tensor;

/// Perturbations per item of infidelity and max-sensitivity (`attrib metrics --samples`' default).
pub const N_PERTURB_SAMPLES: usize = 10;
/// Standard deviation of infidelity's Gaussian noise (`attrib metrics`' default).
pub const INFIDELITY_STDEV: f64 = 0.1;
/// Radius of max-sensitivity's uniform L∞ noise (`attrib metrics`' and Captum's default).
pub const SENSITIVITY_RADIUS: f64 = 0.02;
/// Deletion/insertion steps when `deletion`/`insertion` is named without a number.
pub const DEFAULT_STEPS: usize = 20;

/// The metrics a run computes per item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSet {
    /// Deletion and insertion curves with this many steps (both curves come from one pass).
    pub deletion_insertion: Option<usize>,
    /// Infidelity (Gaussian noise, [`N_PERTURB_SAMPLES`], [`INFIDELITY_STDEV`]).
    pub infidelity: bool,
    /// Max-sensitivity (uniform noise, [`N_PERTURB_SAMPLES`], [`SENSITIVITY_RADIUS`]).
    pub sensitivity_max: bool,
    /// Faithfulness correlation (`FaithfulnessParams` defaults: 100 subsets of a tenth of the
    /// features, zero baseline).
    pub faithfulness: bool,
    /// The run's metric seed; item `p` uses [`item_seed`]`(seed, p)`.
    pub seed: u64,
}

impl MetricSet {
    /// Deletion/insertion only, with `steps` steps (the former `--metrics STEPS`).
    pub fn steps(steps: usize) -> MetricSet {
        MetricSet { deletion_insertion: Some(steps), ..Default::default() }
    }

    /// Whether no metric is asked for.
    pub fn is_empty(&self) -> bool {
        self.deletion_insertion.is_none() && !self.robust()
    }

    /// Whether a metric scored one item at a time (infidelity, max-sensitivity, faithfulness).
    pub fn robust(&self) -> bool {
        self.infidelity || self.sensitivity_max || self.faithfulness
    }

    /// Parse `--metrics`: a comma-separated list of `N` (deletion/insertion with N steps, as
    /// before), `deletion`, `insertion` or `deletion-insertion` (both, [`DEFAULT_STEPS`] unless a
    /// number is also given), `infidelity`, `sensitivity-max`, `faithfulness`, `all`; `seed` is
    /// the run's metric seed.
    pub fn parse(text: &str, seed: u64) -> Result<MetricSet> {
        let mut m = MetricSet { seed, ..Default::default() };
        let mut steps = None;
        let mut curves = false;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "deletion" | "insertion" | "deletion-insertion" => curves = true,
                "infidelity" => m.infidelity = true,
                "sensitivity-max" | "sensitivity_max" => m.sensitivity_max = true,
                "faithfulness" | "faithfulness-correlation" => m.faithfulness = true,
                "all" => {
                    curves = true;
                    m.infidelity = true;
                    m.sensitivity_max = true;
                    m.faithfulness = true;
                }
                w => match w.parse::<usize>() {
                    Ok(0) => return Err(AttribError::param("metrics", "deletion/insertion needs at least 1 step")),
                    Ok(n) => steps = Some(n),
                    Err(_) => {
                        return Err(AttribError::param(
                            "metrics",
                            format!("unknown metric `{w}`; use a comma-separated list of STEPS, deletion, insertion, infidelity, sensitivity-max, faithfulness or all"),
                        ))
                    }
                },
            }
        }
        if curves || steps.is_some() {
            m.deletion_insertion = Some(steps.unwrap_or(DEFAULT_STEPS));
        }
        if m.is_empty() {
            return Err(AttribError::param("metrics", "no metric named"));
        }
        Ok(m)
    }

    /// The metrics' part of the run's identity: `{"deletion_insertion_steps": N}` alone for
    /// deletion/insertion (as before), with the robustness metrics' settings and seed when asked.
    pub fn identity(&self) -> Value {
        if self.is_empty() {
            return Value::Null;
        }
        let mut v = json!({"deletion_insertion_steps": self.deletion_insertion});
        if self.robust() {
            v["seed"] = json!(self.seed);
            if self.infidelity {
                v["infidelity"] = json!({"n_perturb_samples": N_PERTURB_SAMPLES, "noise": {"gaussian": {"stdev": INFIDELITY_STDEV}}});
            }
            if self.sensitivity_max {
                v["sensitivity_max"] = json!({"n_perturb_samples": N_PERTURB_SAMPLES, "noise": {"uniform": {"radius": SENSITIVITY_RADIUS}}});
            }
            if self.faithfulness {
                let d = FaithfulnessParams::default();
                v["faithfulness"] = json!({"n_subsets": d.n_subsets, "subset_size": "a tenth of the features", "baseline": "zeros"});
            }
        }
        v
    }
}

/// The seed of the item at position `pos` of the sorted data set, under the run's metric seed:
/// 53 random bits, so that the recorded seed survives JSON readers that hold numbers as doubles.
pub fn item_seed(seed: u64, pos: usize) -> u64 {
    Rng::keyed(seed, &[pos as u64]).next_u64() >> 11
}

/// The robustness metrics of one item (`None`: not asked; faithfulness `Some(None)`: undefined
/// because one side of the correlation is constant).
#[derive(Debug, Default, Clone, Copy)]
pub struct ItemScores {
    /// The item's seed.
    pub seed: Option<u64>,
    /// Infidelity.
    pub infidelity: Option<f64>,
    /// Max-sensitivity.
    pub sensitivity_max: Option<f64>,
    /// Faithfulness correlation.
    pub faithfulness: Option<Option<f64>>,
}

/// What one item is scored with.
pub struct Item<'a> {
    /// The registry that builds the run's method.
    pub registry: &'a Registry,
    /// The run's pinned spec.
    pub spec: &'a MethodSpec,
    /// The model.
    pub model: &'a dyn Model,
    /// The run's pinned batch options.
    pub options: BatchOptions,
    /// The item, `[1, ...]`, on the model's device.
    pub x: Tensor,
    /// Its attribution, `[1, ...]`, on the model's device.
    pub attribution: Tensor,
    /// Its target (the explained class, resolved, or the run's target).
    pub target: Target,
    /// Position of the item in the sorted data set.
    pub pos: usize,
}

/// Score one item with the robustness metrics of `set` (see the module docs).
pub fn score(set: &MetricSet, it: &Item) -> Result<ItemScores> {
    if !set.robust() {
        return Ok(ItemScores::default());
    }
    let seed = item_seed(set.seed, it.pos);
    let inputs = Inputs::new(it.x.shallow_clone());
    let method = it.registry.build(it.spec, &[it.x.shallow_clone()])?;
    let mut s = ItemScores { seed: Some(seed), ..Default::default() };
    let attribution = [it.attribution.shallow_clone()];
    if set.infidelity {
        let params = InfidelityParams {
            n_perturb_samples: N_PERTURB_SAMPLES,
            noise: Noise::Gaussian { stdev: INFIDELITY_STDEV },
            multiply_by_inputs: method.info().multiplies_by_inputs,
            seed,
            batch: it.options,
            ..Default::default()
        };
        s.infidelity = Some(one(infidelity(it.model, &inputs, &it.target, &attribution, &params)?)?);
    }
    if set.sensitivity_max {
        let params = SensitivityParams {
            n_perturb_samples: N_PERTURB_SAMPLES,
            noise: Noise::Uniform { radius: SENSITIVITY_RADIUS },
            // All copies in one call of the method: no budget probe that could differ by machine.
            max_copies_per_call: Some(N_PERTURB_SAMPLES),
            memory_budget: Some(u64::MAX),
            seed,
        };
        s.sensitivity_max = Some(one(sensitivity_max(method.as_ref(), it.model, &inputs, &it.target, &params)?.values)?);
    }
    if set.faithfulness {
        let params = FaithfulnessParams { seed, batch: it.options, ..Default::default() };
        s.faithfulness = Some(one(faithfulness_correlation(it.model, &inputs, &it.target, &attribution, &params)?)?);
    }
    Ok(s)
}

fn one<T: Copy>(v: Vec<T>) -> Result<T> {
    match v.as_slice() {
        [x] => Ok(*x),
        _ => Err(AttribError::Internal(format!("a metric of one item gave {} values", v.len()))),
    }
}

/// Item `j` of a group's batch `t` (`[N, ...]`), on `device`.
pub fn row(t: &Tensor, j: usize, device: tch::Device) -> Result<Tensor> {
    t.f_narrow(0, j as i64, 1).and_then(|r| r.f_to_device(device)).ctx("one item of a block")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_steps_and_names_metrics() {
        assert_eq!(MetricSet::parse("8", 0).unwrap(), MetricSet::steps(8));
        assert_eq!(MetricSet::parse("8", 0).unwrap().identity(), json!({"deletion_insertion_steps": 8}));
        let m = MetricSet::parse("deletion, insertion,infidelity", 3).unwrap();
        assert_eq!((m.deletion_insertion, m.infidelity, m.sensitivity_max, m.faithfulness, m.seed), (Some(DEFAULT_STEPS), true, false, false, 3));
        let m = MetricSet::parse("sensitivity-max", 0).unwrap();
        assert_eq!((m.deletion_insertion, m.sensitivity_max), (None, true));
        assert_eq!(m.identity()["sensitivity_max"]["noise"]["uniform"]["radius"], SENSITIVITY_RADIUS);
        let all = MetricSet::parse("all,5", 0).unwrap();
        assert_eq!((all.deletion_insertion, all.infidelity, all.sensitivity_max, all.faithfulness), (Some(5), true, true, true));
        assert_ne!(MetricSet::parse("infidelity", 1).unwrap().identity(), MetricSet::parse("infidelity", 2).unwrap().identity());
        assert!(MetricSet::parse("infidelty", 0).is_err());
        assert!(MetricSet::parse("0", 0).is_err());
        assert!(MetricSet::parse("", 0).is_err());
        assert_eq!(MetricSet::default().identity(), Value::Null);
    }

    #[test]
    fn item_seeds_differ_by_position_and_fit_a_double() {
        let s: Vec<u64> = (0..100).map(|p| item_seed(0, p)).collect();
        assert!(s.iter().all(|&v| v < 1 << 53));
        assert_eq!(s.iter().collect::<std::collections::BTreeSet<_>>().len(), 100);
        assert_ne!(item_seed(0, 3), item_seed(1, 3));
    }
}
