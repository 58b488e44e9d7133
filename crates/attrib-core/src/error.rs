//! The one error type of attrib.
//!
//! Every variant says what was wrong *and* how to fix it, because the person reading it is
//! usually not the person who wrote the calling code.

use std::path::PathBuf;

/// Result alias used throughout attrib.
pub type Result<T, E = AttribError> = std::result::Result<T, E>;

/// Everything that can go wrong while explaining a prediction.
/// Field names say what they hold; the messages say how to fix the problem.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum AttribError {
    /// The batch holds no rows.
    #[error("empty batch: input {input} has {rows} rows; pass at least one example (dimension 0 is the batch)")]
    EmptyBatch { input: usize, rows: i64 },

    /// Input tensors disagree on the batch size, or have no batch dimension.
    #[error("input shapes do not fit: {0}")]
    InputShape(String),

    /// An input, baseline or noise tensor holds NaN or infinity.
    #[error("{what} contains {count} non-finite value(s) (NaN or inf); clean or impute them before attributing")]
    NonFinite { what: String, count: i64 },

    /// A method's attributions or convergence delta hold NaN or infinity (`rows` of `total`
    /// rows); `cause` names them and the likely reason. Methods built by the registry check
    /// this unless their spec sets `allow_nonfinite: true`.
    #[error("{method}: {cause}; to get the raw values anyway, set `allow_nonfinite: true` in the spec (command line: --allow-nonfinite)")]
    NonFiniteResult { method: String, rows: usize, total: i64, cause: String },

    /// The target does not fit the model's output.
    #[error("target out of range: {0}")]
    TargetOutOfRange(String),

    /// The target selection cannot be applied to this output shape.
    #[error("target does not fit the model output: {0}")]
    TargetShape(String),

    /// A baseline does not broadcast to the input it belongs to.
    #[error("baseline does not fit input {input}: {reason}")]
    BaselineShape { input: usize, reason: String },

    /// A feature mask does not broadcast to its input.
    #[error("feature mask does not fit input {input}: {reason}")]
    MaskShape { input: usize, reason: String },

    /// A method parameter is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },

    /// A spec names a parameter the method does not take.
    #[error("`{method}` takes no parameter `{name}`; its parameters: {}", if accepted.is_empty() { "none".to_string() } else { accepted.join(", ") })]
    UnknownParameter { method: String, name: String, accepted: Vec<String> },

    /// A setting (a command-line flag) that the chosen method does not take; the message says
    /// which do.
    #[error("{0}")]
    NotApplicable(String),

    /// The model file is missing.
    #[error("model file {path:?} does not exist; pass the path of a TorchScript file saved with `torch.jit.trace(model, example).save(path)` or `torch.jit.script(model).save(path)`")]
    ModelNotFound { path: PathBuf },

    /// The model file exists but cannot be loaded.
    #[error("cannot load model {path:?}: {reason}. attrib loads TorchScript archives: in Python, `torch.jit.trace(model.eval(), example).save(path)`; a state_dict saved with `torch.save` is not TorchScript")]
    ModelLoad { path: PathBuf, reason: String },

    /// The model rejected the inputs (wrong shape, dtype, number of inputs...). The reason is
    /// shown as [`summarize_torch_message`] trims it: no C++ stack frames.
    #[error("the model failed on inputs of shape {shapes}: {}", summarize_torch_message(reason))]
    ModelForward { shapes: String, reason: String },

    /// The model returned something attrib cannot attribute.
    #[error("unsupported model output: {0}")]
    ModelOutput(String),

    /// The requested device is not available on this machine.
    #[error("device `{requested}` is not available: {reason}")]
    DeviceUnavailable { requested: String, reason: String },

    /// A device string could not be parsed.
    #[error("unknown device `{0}`: use `auto`, `cpu`, `cuda` or `cuda:N`")]
    UnknownDevice(String),

    /// Reading or writing a file failed.
    #[error("{action} {path:?}: {reason}")]
    Io { action: &'static str, path: PathBuf, reason: String },

    /// A tensor could not be converted (dtype, layout, ...).
    #[error("tensor conversion failed: {0}")]
    Conversion(String),

    /// libtorch ran out of memory even at the smallest chunk size.
    #[error("out of memory on {device} even with chunks of {rows} row(s): {reason}; lower `memory_budget`, use a smaller model or input, or move to a device with more memory")]
    OutOfMemory { device: String, rows: usize, reason: String },

    /// A broken internal invariant, caught before it could do harm.
    #[error("internal error: {0}; this is a bug in attrib, please report it with the command that triggered it")]
    Internal(String),

    /// Any other libtorch error, with the context in which it happened (its message trimmed by
    /// [`summarize_torch_message`]).
    #[error("libtorch error while {context}: {}", summarize_torch_message(&source.to_string()))]
    Torch {
        context: String,
        #[source]
        source: tch::TchError,
    },
}

impl AttribError {
    /// Wrap a libtorch error with the operation that raised it.
    pub fn torch(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> AttribError {
        let context = context.into();
        move |source| AttribError::Torch { context, source }
    }

    /// Shorthand for [`AttribError::InvalidParameter`].
    pub fn param(name: &'static str, reason: impl Into<String>) -> AttribError {
        AttribError::InvalidParameter { name, reason: reason.into() }
    }

    /// True when the error is an allocation failure that a smaller chunk may avoid.
    pub fn is_out_of_memory(&self) -> bool {
        let text = match self {
            AttribError::Torch { source, .. } => source.to_string(),
            AttribError::ModelForward { reason, .. } => reason.clone(),
            AttribError::OutOfMemory { .. } => return true,
            _ => return false,
        };
        is_oom_message(&text)
    }
}

/// libtorch's error text cut to what a person can act on: the C++ part (`Exception raised
/// from ...` and the `frame #N: ...` stack) and tch's `Internal torch error:` prefix dropped; of
/// a TorchScript interpreter traceback, the exception line (`RuntimeError: ...`). One line, at
/// most 600 characters. When nothing but stack frames is left, a hint at the usual causes.
pub fn summarize_torch_message(msg: &str) -> String {
    let msg = msg.split("Exception raised from").next().unwrap_or(msg);
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .map(|l| l.trim_start_matches("Internal torch error:").trim())
        .filter(|l| !l.is_empty() && !l.starts_with("frame #"))
        .collect();
    // `RuntimeError: ...`, `torch.jit.Error: ...`: the exception of a TorchScript traceback.
    let is_exception = |l: &&str| {
        l.split_once(':').is_some_and(|(head, _)| !head.contains(' ') && (head.ends_with("Error") || head.ends_with("Exception")))
    };
    let key = if lines.iter().any(|l| l.starts_with("Traceback of TorchScript")) {
        lines.iter().rev().find(|l| is_exception(l)).or(lines.last())
    } else {
        lines.first()
    };
    match key {
        Some(k) => k.chars().take(600).collect(),
        None => "libtorch reported an error without a message (only its C++ stack); check that the model gets one input per argument of its forward, with the shapes and dtypes it expects".into(),
    }
}

/// Recognise libtorch's allocation-failure messages (CUDA and CPU allocators).
pub fn is_oom_message(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("out of memory") || t.contains("can't allocate memory") || t.contains("cannot allocate memory")
}

/// Extension for turning `tch` results into attrib results with context.
pub trait TorchResultExt<T> {
    /// Attach what attrib was doing when libtorch failed.
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> TorchResultExt<T> for std::result::Result<T, tch::TchError> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|source| AttribError::Torch { context: context.to_string(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::summarize_torch_message;

    #[test]
    fn libtorch_messages_lose_their_cpp_stack() {
        let raw = "Internal torch error: forward() is missing value for argument 'b'. Declaration: forward(__torch__.TwoInput self, Tensor a, Tensor b) -> Tensor\n\
Exception raised from checkAndNormalizeInputs at /pytorch/aten/src/ATen/core/function_schema_inl.h:61 (most recent call first):\n\
frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x9d (0x7f in libc10.so)\n\
frame #1: c10::detail::torchCheckFail(char const*) + 0xc3 (0x7f in libc10.so)\n";
        assert_eq!(
            summarize_torch_message(raw),
            "forward() is missing value for argument 'b'. Declaration: forward(__torch__.TwoInput self, Tensor a, Tensor b) -> Tensor"
        );
        let script = "The following operation failed in the TorchScript interpreter.\n\
Traceback of TorchScript, serialized code (most recent call last):\n  File \"code/__torch__.py\", line 9, in forward\n    x = torch.linear(x, w)\n\
RuntimeError: mat1 and mat2 shapes cannot be multiplied (8x10 and 6x3)\n";
        assert_eq!(summarize_torch_message(script), "RuntimeError: mat1 and mat2 shapes cannot be multiplied (8x10 and 6x3)");
        let lone = "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x9d (0x7f in libc10.so)";
        assert!(summarize_torch_message(lone).contains("one input per argument"));
        assert_eq!(summarize_torch_message("shape mismatch"), "shape mismatch");
        let e = super::AttribError::ModelForward { shapes: "[5, 6]".into(), reason: raw.into() };
        assert!(!e.to_string().contains("frame #") && !e.to_string().contains('\n'), "{e}");
    }
}
