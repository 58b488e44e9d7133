//! Baselines (reference inputs) for methods that compare an input with a reference:
//! Integrated Gradients, DeepLIFT, feature ablation, occlusion, GradientSHAP...

use crate::error::{AttribError, Result, TorchResultExt};
use crate::inputs::check_finite;
use crate::numeric::{check_fits, check_tensor_fits};
use tch::Tensor;

/// The reference value of one input tensor.
#[derive(Debug)]
pub enum Baseline {
    /// All zeros (Captum's default when `baselines=None`).
    Zeros,
    /// The same value everywhere.
    Scalar(f64),
    /// A tensor that broadcasts (NumPy rules, aligned on the right) to the input:
    /// the input's shape, `[1, ...]` for one reference shared by the batch, or a smaller shape.
    Tensor(Tensor),
    /// Baseline samples `[S, ...]` (each sample shaped like one input row), for methods that take
    /// an expectation over baselines (GradientSHAP, DeepLIFT-SHAP).
    Distribution(Tensor),
    /// The input blurred by a Gaussian of this standard deviation (pixels) over its last two
    /// dimensions, each row and channel on its own; edges are padded by replication.
    Blur(f64),
    /// Independent uniform noise in `[low, high)`, drawn from `seed` (the same seed gives the same
    /// baseline on every device).
    Uniform {
        /// Lower end.
        low: f64,
        /// Upper end.
        high: f64,
        /// Seed of the draw.
        seed: u64,
    },
}

impl Baseline {
    /// A short JSON description for reports: `"zeros"`, the scalar, or the kind and shape of
    /// a tensor.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Baseline::Zeros => serde_json::json!("zeros"),
            Baseline::Scalar(v) => serde_json::json!(v),
            Baseline::Tensor(t) => serde_json::json!({ "tensor": t.size() }),
            Baseline::Distribution(t) => serde_json::json!({ "distribution": t.size() }),
            Baseline::Blur(sigma) => serde_json::json!(format!("blur:{sigma}")),
            Baseline::Uniform { low, high, .. } => serde_json::json!(format!("uniform:{low},{high}")),
        }
    }

    /// A copy sharing storage with `self`.
    pub fn shallow_clone(&self) -> Baseline {
        match self {
            Baseline::Zeros => Baseline::Zeros,
            Baseline::Scalar(v) => Baseline::Scalar(*v),
            Baseline::Tensor(t) => Baseline::Tensor(t.shallow_clone()),
            Baseline::Distribution(t) => Baseline::Distribution(t.shallow_clone()),
            Baseline::Blur(sigma) => Baseline::Blur(*sigma),
            Baseline::Uniform { low, high, seed } => Baseline::Uniform { low: *low, high: *high, seed: *seed },
        }
    }

    /// The baseline of `input` (input index `index`, for messages), broadcast to the input's
    /// shape, dtype and device. A [`Baseline::Distribution`] is rejected here: use
    /// [`Baseline::samples`].
    pub fn resolve(&self, input: &Tensor, index: usize) -> Result<Tensor> {
        let size = input.size();
        let out = match self {
            Baseline::Zeros => input.f_zeros_like().ctx("making a zero baseline")?,
            Baseline::Scalar(v) => {
                if !v.is_finite() {
                    return Err(AttribError::NonFinite { what: format!("baseline of input {index}"), count: 1 });
                }
                check_fits("baselines", &format!("the scalar baseline of input {index}"), *v, input.kind())?;
                input.f_full_like(*v).ctx("making a scalar baseline")?
            }
            Baseline::Tensor(t) => {
                check_finite(t, &format!("baseline of input {index}"))?;
                check_tensor_fits("baselines", &format!("the baseline of input {index}"), t, input.kind())?;
                let t = t.f_to_kind(input.kind()).and_then(|t| t.f_to_device(input.device())).ctx("moving the baseline")?;
                broadcast_rows(&t, &size).map_err(|reason| AttribError::BaselineShape { input: index, reason })?
            }
            Baseline::Distribution(_) => {
                return Err(AttribError::BaselineShape {
                    input: index,
                    reason: "this method takes one baseline per row, not a distribution of baseline samples".into(),
                })
            }
            Baseline::Blur(sigma) => gaussian_blur(input, *sigma).map_err(|reason| AttribError::BaselineShape { input: index, reason })?,
            Baseline::Uniform { low, high, seed } => uniform_like(input, *low, *high, *seed)?,
        };
        Ok(out)
    }

    /// [`Baseline::resolve`] for an input that stacks `copies` copies of a batch copy-major
    /// ([`crate::Inputs::stacked_copies`]): a per-row tensor baseline of the batch's rows is
    /// tiled over the copies ([`tile_copies`]) before it is broadcast.
    pub fn resolve_copies(&self, input: &Tensor, index: usize, copies: i64) -> Result<Tensor> {
        match self {
            Baseline::Tensor(t) if copies > 1 => {
                let tiled = tile_copies(t, &input.size(), copies).map_err(|reason| AttribError::BaselineShape { input: index, reason })?;
                Baseline::Tensor(tiled).resolve(input, index)
            }
            other => other.resolve(input, index),
        }
    }

    /// Baseline samples `[S, ...]` for `input` (`[N, ...]`): a distribution as given, or a single
    /// sample (`S = 1`) for the other variants.
    pub fn samples(&self, input: &Tensor, index: usize) -> Result<Tensor> {
        let size = input.size();
        match self {
            Baseline::Distribution(t) => {
                let bs = t.size();
                if bs.len() != size.len() || bs[1..] != size[1..] || bs[0] == 0 {
                    return Err(AttribError::BaselineShape {
                        input: index,
                        reason: format!(
                            "baseline samples have shape {bs:?}; expected [S, {}] with S >= 1 (each sample shaped like one input row)",
                            size[1..].iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                check_finite(t, &format!("baseline samples of input {index}"))?;
                check_tensor_fits("baselines", &format!("the baseline samples of input {index}"), t, input.kind())?;
                t.f_to_kind(input.kind()).and_then(|t| t.f_to_device(input.device())).ctx("moving baseline samples")
            }
            Baseline::Blur(_) | Baseline::Uniform { .. } => Err(AttribError::BaselineShape {
                input: index,
                reason: "blurred and uniform baselines are made per input row; this method takes a distribution of baseline samples (a .npy file `[S, ...]`), zeros or a number".into(),
            }),
            other => {
                let row = input.f_narrow(0, 0, 1).ctx("taking one input row")?;
                other.resolve(&row, index)?.f_contiguous().ctx("baseline sample")
            }
        }
    }
}

/// Baselines for all inputs of a model: one per input, or one shared by all (only for
/// [`Baseline::Zeros`] and [`Baseline::Scalar`], or a single-input model).
#[derive(Debug)]
pub struct Baselines(Vec<Baseline>);

impl Default for Baselines {
    fn default() -> Self {
        Baselines(vec![Baseline::Zeros])
    }
}

impl From<Baseline> for Baselines {
    fn from(b: Baseline) -> Self {
        Baselines(vec![b])
    }
}

impl From<Vec<Baseline>> for Baselines {
    fn from(v: Vec<Baseline>) -> Self {
        Baselines(v)
    }
}

impl Baselines {
    /// Whether any input's baseline is a [`Baseline::Distribution`] of samples.
    pub fn is_distribution(&self) -> bool {
        self.0.iter().any(|b| matches!(b, Baseline::Distribution(_)))
    }

    /// One baseline per input tensor, in order.
    pub fn per_input(v: Vec<Baseline>) -> Baselines {
        Baselines(v)
    }

    /// JSON description of every baseline (see [`Baseline::describe`]).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::Value::Array(self.0.iter().map(Baseline::describe).collect())
    }

    /// A copy sharing storage with `self`.
    pub fn shallow_clone(&self) -> Baselines {
        Baselines(self.0.iter().map(Baseline::shallow_clone).collect())
    }

    fn for_input(&self, index: usize, n_inputs: usize) -> Result<&Baseline> {
        match self.0.len() {
            1 => {
                let b = &self.0[0];
                if n_inputs > 1 && matches!(b, Baseline::Tensor(_) | Baseline::Distribution(_)) {
                    return Err(AttribError::BaselineShape {
                        input: index,
                        reason: format!("one tensor baseline was given for a model with {n_inputs} inputs; give one baseline per input"),
                    });
                }
                Ok(b)
            }
            k if k == n_inputs => Ok(&self.0[index]),
            k => Err(AttribError::BaselineShape {
                input: index,
                reason: format!("{k} baselines were given for {n_inputs} inputs; give one per input (or one zero/scalar baseline for all)"),
            }),
        }
    }

    /// The baseline of every input, broadcast to it.
    pub fn resolve(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        inputs.iter().enumerate().map(|(i, x)| self.for_input(i, inputs.len())?.resolve(x, i)).collect()
    }

    /// The baseline of every input for inputs that stack `copies` copies of a batch
    /// ([`Baseline::resolve_copies`]; `copies = 1` is [`Baselines::resolve`]).
    pub fn resolve_copies(&self, inputs: &[Tensor], copies: i64) -> Result<Vec<Tensor>> {
        inputs.iter().enumerate().map(|(i, x)| self.for_input(i, inputs.len())?.resolve_copies(x, i, copies)).collect()
    }

    /// Baseline samples of every input (`[S_k, ...]`); all inputs must have the same `S`.
    pub fn samples(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let out: Vec<Tensor> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| self.for_input(i, inputs.len())?.samples(x, i))
            .collect::<Result<_>>()?;
        if let Some(first) = out.first() {
            let s = first.size()[0];
            if let Some((i, t)) = out.iter().enumerate().find(|(_, t)| t.size()[0] != s) {
                return Err(AttribError::BaselineShape {
                    input: i,
                    reason: format!("{} baseline samples, but input 0 has {s}; every input needs the same number", t.size()[0]),
                });
            }
        }
        Ok(out)
    }
}

/// Gaussian blur of `input` (`[N, ..., H, W]`, at least one dimension besides the batch and the
/// two blurred ones is not required) over its last two dimensions: a separable kernel of radius
/// `ceil(3σ)`, normalised to sum 1, edges padded by replication.
fn gaussian_blur(input: &Tensor, sigma: f64) -> std::result::Result<Tensor, String> {
    let size = input.size();
    if size.len() < 3 {
        return Err(format!(
            "a blurred baseline needs image inputs [N, (C,) H, W]; input has shape {size:?} (use zeros, a number or a .npy file)"
        ));
    }
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(format!("the blur's standard deviation must be positive, got {sigma}"));
    }
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    // The kernel spans 3σ on each side and the input is padded by as much: past a few times the
    // image's size that padding is all there is (and a huge σ would ask for petabytes).
    let max_radius = 8 * h.max(w).max(1);
    if 3.0 * sigma > max_radius as f64 {
        return Err(format!(
            "a blur of σ = {} pixels is far wider than the {h}×{w} image (the kernel spans 3σ each side); give σ ≤ {} (8/3 of the image's larger side)",
            crate::numeric::format_number(sigma),
            max_radius / 3
        ));
    }
    let radius = ((3.0 * sigma).ceil() as i64).max(1);
    let taps: Vec<f64> = (-radius..=radius).map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()).collect();
    let total: f64 = taps.iter().sum();
    let taps: Vec<f64> = taps.iter().map(|t| t / total).collect();
    let k = 2 * radius + 1;
    let run = || -> std::result::Result<Tensor, tch::TchError> {
        let kind = input.kind();
        let kernel = Tensor::f_from_slice(&taps)?.f_to_kind(kind)?.f_to_device(input.device())?;
        let x = input.f_reshape([-1, 1, h, w])?;
        let x = x.f_pad([radius, radius, radius, radius], "replicate", None)?;
        let x = x.f_conv2d(&kernel.f_view([1, 1, 1, k])?, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?;
        let x = x.f_conv2d(&kernel.f_view([1, 1, k, 1])?, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?;
        x.f_reshape(size.as_slice())
    };
    run().map_err(|e| format!("blurring the input failed: {e}"))
}

/// Uniform noise in `[low, high)` shaped like `input`, from a seeded SplitMix64 stream on the host
/// (the same values on every device).
fn uniform_like(input: &Tensor, low: f64, high: f64, seed: u64) -> Result<Tensor> {
    if !(low.is_finite() && high.is_finite() && low < high) {
        return Err(AttribError::param("baselines", format!("uniform noise needs finite low < high, got {low}, {high}")));
    }
    check_fits("baselines", "the uniform baseline's lower end", low, input.kind())?;
    check_fits("baselines", "the uniform baseline's upper end", high, input.kind())?;
    let n = usize::try_from(input.numel()).map_err(|_| AttribError::Internal("input size".into()))?;
    let mut state = seed ^ 0x5851_F42D_4C95_7F2D;
    let values: Vec<f64> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            low + (high - low) * ((z >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect();
    Tensor::f_from_slice(&values)
        .and_then(|t| t.f_reshape(input.size()))
        .and_then(|t| t.f_to_kind(input.kind()))
        .and_then(|t| t.f_to_device(input.device()))
        .ctx("making a uniform baseline")
}

/// Broadcast `t` to `shape` by NumPy's rules (aligned on the right; dimensions of 1 stretch).
/// A per-row tensor of `N` rows fits inputs of `N` rows only; for a batch that stacks copies of
/// the rows on purpose, tile it first with [`tile_copies`].
pub fn broadcast_rows(t: &Tensor, shape: &[i64]) -> std::result::Result<Tensor, String> {
    check_broadcast(&t.size(), shape)?;
    t.f_expand(shape, false).map_err(|e| e.to_string())
}

/// For inputs that stack `copies` copies of a batch of `N` rows copy-major (row `s·N + i` is copy
/// `s` of sample `i`, as NoiseTunnel hands them to the method it wraps): a per-row tensor `t` of
/// `N > 1` rows with the inputs' rank is repeated block-wise (`[t; t; ...]`) to the `copies·N`
/// rows of `shape`, so that per-row baselines and masks follow their rows. Anything else is
/// returned as it is (and then broadcast by NumPy's rules, [`broadcast_rows`]). Only callers that
/// stack copies on purpose use this; see [`crate::Inputs::stacked_copies`].
pub fn tile_copies(t: &Tensor, shape: &[i64], copies: i64) -> std::result::Result<Tensor, String> {
    let size = t.size();
    match (size.first(), shape.first()) {
        (Some(&b), Some(&m)) if copies > 1 && size.len() == shape.len() && b > 1 && b.checked_mul(copies) == Some(m) => {
            let mut reps = vec![1i64; size.len()];
            reps[0] = copies;
            t.f_repeat(&reps).map_err(|e| e.to_string())
        }
        _ => Ok(t.shallow_clone()),
    }
}

/// Check that `from` broadcasts to `to` (NumPy rules, aligned on the right, no growth of `to`).
pub fn check_broadcast(from: &[i64], to: &[i64]) -> std::result::Result<(), String> {
    if from.len() > to.len() {
        return Err(format!("shape {from:?} has more dimensions than the input {to:?}"));
    }
    let offset = to.len() - from.len();
    for (k, &d) in from.iter().enumerate() {
        let t = to[offset + k];
        if d != t && d != 1 {
            return Err(format!(
                "shape {from:?} does not broadcast to the input shape {to:?}: dimension {} is {d}, expected {t} or 1",
                offset + k
            ));
        }
    }
    Ok(())
}
