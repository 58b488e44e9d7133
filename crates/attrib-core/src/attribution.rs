//! The `Attribution` trait that every method implements, and what it returns.

use crate::error::{AttribError, Result};
use crate::inputs::Inputs;
use crate::model::Model;
use crate::target::Target;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tch::Tensor;

/// Static facts about a method, as Captum documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MethodInfo {
    /// Stable machine name, as used on the command line (`saliency`, `integrated-gradients`...).
    pub name: &'static str,
    /// Whether the attribution is multiplied by the inputs (or by `input - baseline`),
    /// making it a *global* attribution in Captum's terms.
    pub multiplies_by_inputs: bool,
    /// Whether the method returns a convergence delta.
    pub has_convergence_delta: bool,
}

/// What an attribution call returns.
#[derive(Debug)]
pub struct Attributions {
    /// One tensor per input, each shaped like its input.
    pub values: Vec<Tensor>,
    /// Convergence delta, one value per row (`Σ attributions − (f(x) − f(baseline))` for
    /// path methods), when the method has one.
    pub convergence_delta: Option<Tensor>,
    /// Method name, parameters, targets and timing.
    pub meta: Metadata,
}

impl Attributions {
    /// The attribution of the only input; an error for multi-input results.
    pub fn single(&self) -> Result<&Tensor> {
        match self.values.as_slice() {
            [t] => Ok(t),
            v => Err(AttribError::InputShape(format!("the result has {} inputs; index `values` instead", v.len()))),
        }
    }
}

/// Metadata attached to every attribution.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    /// The method's machine name.
    pub method: String,
    /// The method's parameters after validation (JSON object).
    pub params: serde_json::Value,
    /// The class index explained for each row, or `None` for scalar-output models.
    pub targets: Option<Vec<i64>>,
    /// Wall time of the attribution itself (model loading excluded).
    #[serde(serialize_with = "ser_ms", rename = "elapsed_ms")]
    pub elapsed: Duration,
    /// Method-specific results (for example the steps used per row by adaptive IG).
    pub extra: serde_json::Value,
}

impl Metadata {
    /// Metadata for a finished attribution.
    pub fn new(info: MethodInfo, params: serde_json::Value, targets: Option<Vec<i64>>, elapsed: Duration) -> Metadata {
        Metadata { method: info.name.to_string(), params, targets, elapsed, extra: serde_json::Value::Null }
    }
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// An attribution method.
///
/// Implementations take a model, a batch of inputs and a target, and return attributions shaped
/// like the inputs. They must not re-implement batching, target selection or gradient plumbing:
/// the shared tensor layer (`attrib-tensor`) does that.
pub trait Attribution {
    /// Name and properties of the method.
    fn info(&self) -> MethodInfo;

    /// The method's validated parameters, as JSON (for reports and metadata).
    fn params(&self) -> serde_json::Value {
        serde_json::Value::Object(Default::default())
    }

    /// Attribute `target` of `model` at `inputs`.
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions>;

    /// The model this method will actually run, when it is not `model` itself (DeepLIFT and
    /// guided backprop run a copy with rewritten backward rules, made and cached on first
    /// request): a program that warms the model up before timing (`attrib_tensor::warm`) warms
    /// this one up too, so that making it is not part of the first call. `None` by default.
    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        let _ = model;
        Ok(None)
    }

    /// The model rows this method's main evaluation will ask of the model for `inputs` (all
    /// chunks together), and whether with gradients: a program that warms the model up before
    /// timing a call (`attrib_tensor::warm::rehearse_job`) can then run a job of that size
    /// first, so that the evaluator's one-time work for the job's chunk shapes (kernels made per
    /// shape, the timing of memory layouts) is not part of the first call. `None` (the default)
    /// where it is not known cheaply; the warm-up then rehearses what earlier calls noted.
    fn planned_rows(&self, inputs: &Inputs) -> Option<PlannedRows> {
        let _ = inputs;
        None
    }
}

/// The size of a method's main evaluation ([`Attribution::planned_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRows {
    /// Model rows over all chunks (e.g. `n_steps · N` for Integrated Gradients).
    pub rows: i64,
    /// Whether the rows are run with gradients (forward + backward) or forward only.
    pub gradients: bool,
    /// Rows of a smaller forward-only pass besides (0: none), e.g. Integrated Gradients'
    /// `F(x)` and `F(baseline)` for its convergence delta: `2N`.
    pub forward_rows: i64,
}

impl PlannedRows {
    /// `per_sample` model rows for each row of `inputs` (`None` for inputs without rows).
    pub fn per_sample(inputs: &Inputs, per_sample: i64, gradients: bool) -> Option<PlannedRows> {
        let n = inputs.tensors().first()?.size().first().copied()?;
        (n > 0 && per_sample > 0).then(|| PlannedRows { rows: n.saturating_mul(per_sample), gradients, forward_rows: 0 })
    }

    /// The same, with a forward-only pass of `per_sample` rows for each row of `inputs` besides.
    pub fn with_forward(self, inputs: &Inputs, per_sample: i64) -> PlannedRows {
        let n = inputs.tensors().first().and_then(|t| t.size().first().copied()).unwrap_or(0);
        PlannedRows { forward_rows: n.saturating_mul(per_sample).max(0), ..self }
    }
}

/// How the shared tensor layer splits work into chunks.
///
/// By default the chunk size is chosen from a memory budget after probing one forward (and
/// backward) pass; `max_batch` fixes it instead. Out-of-memory errors from libtorch halve the
/// chunk and retry, so fan-out never surfaces as an allocation failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOptions {
    /// Largest number of rows per model call (Captum's `internal_batch_size` /
    /// `perturbations_per_eval`, counted in rows). `None`: chosen from the memory budget.
    pub max_batch: Option<usize>,
    /// Bytes the chunked work may use on top of what is already in use. `None`: a share of the
    /// memory available on the device.
    pub memory_budget: Option<u64>,
    /// Memory layout of image-like (4-D and 5-D) inputs handed to the model.
    #[serde(default)]
    pub memory_format: MemoryFormat,
    /// Allow the model's inference-only copy ([`crate::Model::inference_model`]: for
    /// TorchScript, the graph frozen and optimised for inference) in forward-only work, where
    /// timing shows it faster. Default: true.
    #[serde(default = "yes")]
    pub inference_copy: bool,
    /// Precision of the model's forward passes ([`crate::Precision`]): float32 by default;
    /// bfloat16 or float16 autocast on request, attributions still accumulated in float32.
    #[serde(default)]
    pub precision: crate::Precision,
}

fn yes() -> bool {
    true
}

impl Default for BatchOptions {
    fn default() -> BatchOptions {
        BatchOptions { max_batch: None, memory_budget: None, memory_format: MemoryFormat::Auto, inference_copy: true, precision: crate::Precision::Fp32 }
    }
}

/// Memory layout in which the shared tensor layer hands 4-D (`[N, C, H, W]`) and 5-D
/// (`[N, C, D, H, W]`) floating-point inputs to the model.
///
/// The layout changes how elements sit in memory, never their values or shape: a model sees the
/// same tensor either way. Convolution kernels on the CPU (oneDNN) are often several times faster
/// on channels-last data than on the default contiguous layout; other models are slower with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// On the CPU, time chunks in each layout (timed chunks are part of the work; a loser's are
    /// computed again in the winner) and keep the faster one for the rest of the call; keep the contiguous layout
    /// when channels-last is not clearly faster (by 15 %), when the model rejects it, when the
    /// inputs have a single channel, and on CUDA. The two layouts can differ in the last bits of
    /// float32 results (different summation order): no result depends on the timed chunks (they
    /// are computed again in the winner), and the decision is kept per model and shape, across
    /// processes when the program asks for it (`attrib_tensor::decisions`); choose a fixed
    /// layout for bit-identical results without that.
    #[default]
    Auto,
    /// Row-major contiguous, as the inputs are given (PyTorch's default).
    Contiguous,
    /// Channels last (`torch.channels_last` / `channels_last_3d`) for every 4-D or 5-D input.
    ChannelsLast,
}

impl std::str::FromStr for MemoryFormat {
    type Err = AttribError;

    /// `auto`, `contiguous` or `channels-last`.
    fn from_str(s: &str) -> Result<MemoryFormat> {
        match s {
            "auto" => Ok(MemoryFormat::Auto),
            "contiguous" => Ok(MemoryFormat::Contiguous),
            "channels-last" | "channels_last" => Ok(MemoryFormat::ChannelsLast),
            other => Err(AttribError::param(
                "memory_format",
                format!("unknown memory format `{other}`; use auto, contiguous or channels-last"),
            )),
        }
    }
}

impl BatchOptions {
    /// Options with a fixed chunk size.
    pub fn with_max_batch(max_batch: usize) -> BatchOptions {
        BatchOptions { max_batch: Some(max_batch), ..BatchOptions::default() }
    }

    /// Validate: sizes must be positive.
    pub fn check(self) -> Result<BatchOptions> {
        if self.max_batch == Some(0) {
            return Err(AttribError::param("max_batch", "must be at least 1 (or unset to size chunks automatically)"));
        }
        if self.memory_budget == Some(0) {
            return Err(AttribError::param("memory_budget", "must be positive (or unset for the default)"));
        }
        Ok(self)
    }
}
