//! How a model (or any metric of its output) holds up under named perturbations: Captum's
//! `AttackComparator`.
//!
//! Each perturbation — an attack ([`crate::Fgsm`], [`crate::Pgd`]) or a plain [`Transform`]
//! (Gaussian noise, blur, shift) — is drawn `num_attempts` times (seeded, independent draws);
//! the metric (default: accuracy, 1 where the argmax is the label) is computed on the model's
//! output for every draw, and summarised per perturbation by its mean, minimum and maximum
//! over the draws, element by element (Captum's `"mean"`, `"min"`, `"max"`; for accuracy the
//! minimum is the worst case). The metric on the clean inputs is reported as `Original`.
//! [`ComparatorResult::to_json`] has Captum's layout: `{"Original": m, NAME: {"mean": ...}}`,
//! with `"min"` and `"max"` only for perturbations drawn more than once.
//!
//! Every draw of every perturbation is evaluated in one chunked forward pass per perturbation
//! through the shared evaluator.

use crate::attack::{argmax_host, Perturbation};
use attrib_core::{AttribError, Baseline, BatchOptions, Inputs, Model, Result, Target, TorchResultExt};
use attrib_tensor::rng::{normal_rows, Rng};
use attrib_tensor::{Evaluator, Expanded};
use tch::{Kind, Tensor};

/// A metric of the model's output `[N, C]` given the rows' labels `[N]` (int64): any tensor,
/// usually one value per row.
pub type Metric<'a> = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + 'a>;

/// 1.0 where the output's argmax is the label, 0.0 elsewhere, per row (`[N]`, float32).
pub fn accuracy(outputs: &Tensor, labels: &Tensor) -> Result<Tensor> {
    outputs
        .f_argmax(1, false)
        .and_then(|p| p.f_eq_tensor(labels))
        .and_then(|t| t.f_to_kind(Kind::Float))
        .ctx("computing accuracy")
}

/// Input transforms that are not attacks. Each draw is seeded (`seed` combined with the draw
/// number); the parameter of [`Perturbation::perturb`] overrides the strength per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// `x + N(0, std²)` element-wise (parameter: `std`).
    GaussianNoise {
        /// Standard deviation.
        std: f64,
        /// Seed of the draws.
        seed: u64,
    },
    /// The input blurred by a Gaussian of `sigma` pixels over its last two dimensions, edges
    /// replicated (the `blur:SIGMA` baseline's blur; parameter: `sigma`, 0 leaves the row).
    Blur {
        /// Standard deviation in pixels.
        sigma: f64,
    },
    /// The image moved by a random whole number of pixels in `-max..=max` along each of its last
    /// two dimensions, edges replicated (parameter: `max`, rounded).
    Shift {
        /// Largest shift in pixels.
        max: i64,
        /// Seed of the draws.
        seed: u64,
    },
}

impl Transform {
    fn draw_seed(seed: u64, draw: u64) -> u64 {
        Rng::keyed(seed, &[draw]).next_u64()
    }
}

impl Perturbation for Transform {
    fn name(&self) -> String {
        match self {
            Transform::GaussianNoise { std, .. } => format!("Gaussian noise σ={std}"),
            Transform::Blur { sigma } => format!("blur σ={sigma}"),
            Transform::Shift { max, .. } => format!("shift ≤{max}px"),
        }
    }

    fn perturb(&self, _model: &dyn Model, inputs: &Inputs, _target: &Target, param: Option<&[f64]>, draw: u64) -> Result<Vec<Tensor>> {
        let n = inputs.validate()?;
        let own = match self {
            Transform::GaussianNoise { std, .. } => *std,
            Transform::Blur { sigma } => *sigma,
            Transform::Shift { max, .. } => *max as f64,
        };
        let values = crate::attack::param_values("param", param, own, n)?;
        inputs
            .tensors()
            .iter()
            .enumerate()
            .map(|(k, x)| match self {
                Transform::GaussianNoise { seed, .. } => {
                    let row: Vec<i64> = x.size()[1..].to_vec();
                    let z = normal_rows(Self::draw_seed(*seed, draw), k, 0..n, n, &row, 1.0, x.kind(), x.device())?;
                    let s = crate::attack::row_values(&values, x)?;
                    z.f_mul(&s).and_then(|z| z.f_add(x)).ctx("adding noise")
                }
                Transform::Blur { .. } => rows_each(x, &values, |row, sigma| {
                    if sigma == 0.0 {
                        Ok(row.shallow_clone())
                    } else {
                        Baseline::Blur(sigma).resolve(row, k)
                    }
                }),
                Transform::Shift { seed, .. } => {
                    let mut rng = Rng::keyed(Self::draw_seed(*seed, draw), &[k as u64]);
                    rows_each(x, &values, |row, max| {
                        let m = max.round() as i64;
                        let span = 2 * m as u64 + 1;
                        let dy = rng.below(span) as i64 - m;
                        let dx = rng.below(span) as i64 - m;
                        shift(row, dy, dx)
                    })
                }
            })
            .collect()
    }
}

/// Apply `f` to every row of `x` (`[1, ...]` each) with that row's parameter; concatenate.
fn rows_each(x: &Tensor, values: &[f64], mut f: impl FnMut(&Tensor, f64) -> Result<Tensor>) -> Result<Tensor> {
    let rows = values
        .iter()
        .enumerate()
        .map(|(i, &v)| f(&x.f_narrow(0, i as i64, 1).ctx("selecting a row")?, v))
        .collect::<Result<Vec<_>>>()?;
    Tensor::f_cat(&rows, 0).ctx("gathering rows")
}

/// `x` (`[..., H, W]`) moved by `dy` rows and `dx` columns, edges replicated.
fn shift(x: &Tensor, dy: i64, dx: i64) -> Result<Tensor> {
    let size = x.size();
    if size.len() < 3 {
        return Err(AttribError::InputShape(format!("a shift needs image inputs [N, (C,) H, W], got {size:?}")));
    }
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    let (dy, dx) = (dy.clamp(-(h - 1), h - 1), dx.clamp(-(w - 1), w - 1));
    let shift_dim = |t: Tensor, d: i64, by: i64, len: i64| -> std::result::Result<Tensor, tch::TchError> {
        if by == 0 {
            return Ok(t);
        }
        // Index of the source of every output position, clamped at the edges.
        let idx: Vec<i64> = (0..len).map(|i| (i - by).clamp(0, len - 1)).collect();
        t.f_index_select(d, &Tensor::f_from_slice(&idx)?.f_to_device(t.device())?)
    };
    let nd = size.len() as i64;
    shift_dim(x.shallow_clone(), nd - 2, dy, h).and_then(|t| shift_dim(t, nd - 1, dx, w)).ctx("shifting the image")
}

/// Mean, minimum and maximum of a metric over the draws of one perturbation, element-wise.
#[derive(Debug)]
pub struct Summary {
    /// The perturbation's name.
    pub name: String,
    /// Draws made.
    pub attempts: usize,
    /// Mean over the draws.
    pub mean: Tensor,
    /// Minimum over the draws (for accuracy: the worst case).
    pub min: Tensor,
    /// Maximum over the draws.
    pub max: Tensor,
}

/// The answer of [`AttackComparator::evaluate`].
#[derive(Debug)]
pub struct ComparatorResult {
    /// The metric on the clean inputs.
    pub original: Tensor,
    /// One summary per perturbation, in the order they were added.
    pub perturbations: Vec<Summary>,
}

fn tensor_json(t: &Tensor) -> serde_json::Value {
    let flat = t.f_to_kind(Kind::Double).and_then(|t| t.f_reshape([-1])).ok();
    let v: Vec<f64> = flat.and_then(|t| Vec::<f64>::try_from(&t).ok()).unwrap_or_default();
    if t.dim() == 0 {
        serde_json::json!(v.first().copied().unwrap_or(f64::NAN))
    } else {
        serde_json::json!(v)
    }
}

impl ComparatorResult {
    /// Captum's layout: `{"Original": m, NAME: {"mean": m}}`, with `"min"` and `"max"` for
    /// perturbations drawn more than once (tensors as flat lists).
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("Original".into(), tensor_json(&self.original));
        for s in &self.perturbations {
            let mut o = serde_json::Map::new();
            o.insert("mean".into(), tensor_json(&s.mean));
            if s.attempts > 1 {
                o.insert("min".into(), tensor_json(&s.min));
                o.insert("max".into(), tensor_json(&s.max));
            }
            map.insert(s.name.clone(), serde_json::Value::Object(o));
        }
        serde_json::Value::Object(map)
    }
}

/// Captum's `AttackComparator`; see the module docs.
pub struct AttackComparator<'a> {
    metric: Metric<'a>,
    perturbations: Vec<(String, &'a dyn Perturbation, usize)>,
    batch: BatchOptions,
}

impl<'a> AttackComparator<'a> {
    /// A comparator of `metric` (see [`accuracy`]).
    pub fn new(metric: Metric<'a>) -> AttackComparator<'a> {
        AttackComparator { metric, perturbations: Vec::new(), batch: BatchOptions::default() }
    }

    /// A comparator of [`accuracy`].
    pub fn accuracy() -> AttackComparator<'a> {
        AttackComparator::new(Box::new(accuracy))
    }

    /// Set the batching options of the forward passes.
    pub fn batch(mut self, batch: BatchOptions) -> Result<Self> {
        self.batch = batch.check()?;
        Ok(self)
    }

    /// Add a perturbation under `name` (unique; not `Original`), drawn `num_attempts` times.
    pub fn add(&mut self, name: impl Into<String>, perturbation: &'a dyn Perturbation, num_attempts: usize) -> Result<&mut Self> {
        let name = name.into();
        if num_attempts == 0 {
            return Err(AttribError::param("num_attempts", "must be at least 1"));
        }
        if name == "Original" || self.perturbations.iter().any(|(n, _, _)| *n == name) {
            return Err(AttribError::param("name", format!("the name `{name}` is taken; give each perturbation its own")));
        }
        self.perturbations.push((name, perturbation, num_attempts));
        Ok(self)
    }

    /// Evaluate the metric on the clean inputs and under every perturbation. `target`: the
    /// rows' labels (a class, one per row, or `Argmax`: the clean prediction).
    pub fn evaluate(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<ComparatorResult> {
        let eval = Evaluator::new(model, self.batch)?;
        let p = eval.prepare(inputs, &Target::None)?;
        let clean_out = eval.raw_outputs(&p.extra, &Expanded::identity(&p.inputs))?;
        crate::loss::check_class_output(&clean_out)?;
        let labels_host = match target {
            Target::Argmax => argmax_host(&clean_out)?,
            Target::Class(c) => vec![*c; p.n as usize],
            Target::PerSample(v) if v.len() as i64 == p.n => v.clone(),
            Target::PerSample(v) => return Err(AttribError::TargetOutOfRange(format!("{} targets for {} rows", v.len(), p.n))),
            Target::None => return Err(AttribError::param("target", "the comparator needs class labels: an index, one per row, or argmax")),
        };
        let labels = Tensor::f_from_slice(&labels_host).and_then(|t| t.f_to_device(p.device)).ctx("moving labels")?;
        let original = (self.metric)(&clean_out, &labels)?;
        let per_target = Target::PerSample(labels_host.clone());
        let sub = Inputs::multi(p.inputs.iter().map(Tensor::shallow_clone).collect())
            .with_extra(p.extra.iter().map(attrib_core::ForwardArg::shallow_clone).collect());
        let mut perturbations = Vec::with_capacity(self.perturbations.len());
        for (name, pert, attempts) in &self.perturbations {
            let draws = (0..*attempts as u64).map(|d| pert.perturb(model, &sub, &per_target, None, d)).collect::<Result<Vec<_>>>()?;
            let stacked: Vec<Tensor> = (0..p.inputs.len())
                .map(|i| Tensor::f_cat(&draws.iter().map(|d| d[i].shallow_clone()).collect::<Vec<_>>(), 0).ctx("stacking draws"))
                .collect::<Result<_>>()?;
            let batch = Expanded::new(p.n, p.n * *attempts as i64, |s, e| {
                stacked.iter().map(|x| x.f_narrow(0, s, e - s).ctx("slicing draws")).collect()
            })
            .rows_like(&p.inputs);
            let rows = Tensor::f_arange(p.n * *attempts as i64, (Kind::Int64, p.device))
                .and_then(|t| t.f_remainder(p.n))
                .ctx("row indices")?;
            let out = eval.raw_outputs(&attrib_tensor::expand_extra(&p.extra, &rows)?, &batch)?;
            let metrics = (0..*attempts as i64)
                .map(|a| {
                    let o = out.f_narrow(0, a * p.n, p.n).ctx("splitting draws")?;
                    (self.metric)(&o, &labels)?.f_to_kind(Kind::Double).ctx("metric values")
                })
                .collect::<Result<Vec<_>>>()?;
            let all = Tensor::f_stack(&metrics, 0).ctx("stacking metrics")?;
            perturbations.push(Summary {
                name: name.clone(),
                attempts: *attempts,
                mean: all.f_mean_dim([0i64].as_slice(), false, Kind::Double).ctx("mean over draws")?,
                min: all.f_amin([0i64].as_slice(), false).ctx("min over draws")?,
                max: all.f_amax([0i64].as_slice(), false).ctx("max over draws")?,
            });
        }
        Ok(ComparatorResult { original, perturbations })
    }
}
