//! Backward rules by graph rewriting: the TorchScript graph of a model with its
//! non-linearities' gradients replaced by the rule of DeepLIFT, guided backprop or
//! deconvolution (`cpp/rules.cpp`).
//!
//! Captum implements these methods with hooks on `nn.Module` activations, which miss functional
//! activations (`F.relu`), fail on a module used twice (torchvision's `BasicBlock` calls one
//! `self.relu` twice) and need care with in-place ones. A TorchScript model gives the whole
//! graph instead: it is inlined (submodule calls become their operations), made functional
//! (in-place operations replaced where alias analysis allows), and every non-linearity node
//! `y = f(x)` is followed by a rule node that returns `y` unchanged and applies the method's rule
//! in the backward pass. Every use of an activation gets the rule, however the model calls it.
//!
//! | rules | non-linearities rewritten | backward |
//! |---|---|---|
//! | [`BackwardRules::DeepLift`] | relu, leaky_relu, elu, selu, celu, gelu, silu, sigmoid, tanh, softplus, hardtanh/relu6, hardsigmoid, hardswish, mish | rescale: `grad · Δy/Δx` where `|Δx| ≥ eps`, the ordinary gradient elsewhere |
//! | | softmax, log_softmax | rescale, minus its mean over the tensor (Captum's softmax rule) |
//! | | max_pool1d/2d/3d | Captum's max-pooling rule |
//! | [`BackwardRules::GuidedBackprop`] | relu | `relu(ordinary ReLU gradient)` |
//! | [`BackwardRules::Deconvolution`] | relu | `relu(incoming gradient)` |
//! | [`BackwardRules::Lrp`] | after linear, convolution, batch_norm, max/avg/adaptive-avg pooling, matrix products with a constant | `grad · z/(z + ε·sign(z))` at the layer's output `z` (LRP's epsilon rule, `cpp/lrp_rules.cpp`) |
//! | | relu, tanh | `grad · a/z` instead of `grad · φ'(z)` (relevance passes through unchanged) |
//!
//! DeepLIFT's rules compare the two halves of each batch: the rewritten model must be run on
//! inputs followed by their baselines (`cat([x, b])`, Captum's layout); the Δ of row `i` is row
//! `i` minus row `n + i`. For DeepLIFT, an operation that depends on the inputs and is neither a
//! covered non-linearity nor linear in them (convolutions, linear layers, batch norm in
//! evaluation, additions, average pooling, reshapes, products with a constant...) is an error
//! naming it and its place in the model (module scope, source line), never a silently wrong
//! attribution.

use crate::error::{AttribError, Result};
use crate::inputs::{format_shapes, ForwardArg};
use crate::model::{ffi, first_line, forward_module, take_message, Model};
use crate::model_file::ModelFile;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// Which backward rules a rewritten model applies (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BackwardRules {
    /// DeepLIFT (Shrikumar et al. 2017), rescale rule, with Captum's threshold `eps` on `|Δx|`
    /// below which the ordinary gradient is used (Captum's default: 1e-10).
    DeepLift {
        /// Threshold on `|Δx|`.
        eps: f64,
        /// As defined, or as Captum applies them.
        compat: DeepLiftRules,
    },
    /// Guided backpropagation (Springenberg et al. 2015): only positive gradients pass ReLUs.
    GuidedBackprop,
    /// Deconvolution (Zeiler & Fergus 2014): ReLUs pass the positive part of the incoming
    /// gradient, whatever their input.
    Deconvolution,
    /// Layer-wise relevance propagation with the epsilon rule (Bach et al. 2015; Captum's `LRP`
    /// with its default rules): the gradient with each covered layer's output `z` scaling it by
    /// `z/(z + epsilon·sign(z))` and relu/tanh passing `a/z` back instead of their derivative, so
    /// that `input · gradient` is the relevance. Any other non-linear operation on the inputs is
    /// an error naming it.
    Lrp {
        /// The epsilon rule's stabiliser (Captum's `EpsilonRule` default: 1e-9).
        epsilon: f64,
    },
}

/// Whether DeepLIFT's rules are applied as defined, or as Captum's hooks apply them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeepLiftRules {
    /// Every rule at every non-linearity; max-pooling adds the contributions of every window that
    /// picked an element, so the attributions sum to `F(x) − F(b)` with overlapping windows too
    /// (ResNet's 3×3/2 stem pool). The default.
    #[default]
    Exact,
    /// Captum's answer, for parity: Captum's hooks lose the rule of a non-linearity whose input is
    /// another hooked module's output (the earlier hook keeps the gradient from before the later
    /// rule), so a max-pool right after a ReLU back-propagates its ordinary gradient; and its
    /// `max_unpool` keeps only one of the contributions of overlapping windows. Summation-to-delta
    /// then fails in general.
    Captum,
}

impl BackwardRules {
    pub(crate) fn code(self) -> (i32, f64) {
        match self {
            BackwardRules::DeepLift { eps, compat: DeepLiftRules::Exact } => (0, eps),
            BackwardRules::DeepLift { eps, compat: DeepLiftRules::Captum } => (3, eps),
            BackwardRules::GuidedBackprop => (1, 0.0),
            BackwardRules::Deconvolution => (2, 0.0),
            BackwardRules::Lrp { epsilon } => (4, epsilon),
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            BackwardRules::DeepLift { .. } => "DeepLIFT",
            BackwardRules::GuidedBackprop => "guided backprop",
            BackwardRules::Deconvolution => "deconvolution",
            BackwardRules::Lrp { .. } => "LRP",
        }
    }
}

mod rules_ffi {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        pub fn attrib_rules_load(data: *const c_char, len: usize, device: c_int, mode: c_int, eps: f64, dtype: c_int, err: *mut *mut c_char) -> *mut c_void;
    }
}

/// A TorchScript model with its backward rules rewritten ([`BackwardRules`]): the same forward
/// function, the method's gradients.
pub struct RewrittenModule {
    ptr: *mut std::os::raw::c_void,
    device: Device,
    path: PathBuf,
    rules: BackwardRules,
    fingerprint: Option<String>,
}

// SAFETY: as for FrozenModule, a torch::jit::Module may be moved between threads and run from
// several at once.
unsafe impl Send for RewrittenModule {}
unsafe impl Sync for RewrittenModule {}

impl RewrittenModule {
    /// Load the TorchScript file read into `file` on `device` with its graph rewritten for
    /// `rules`, its floating-point parameters converted to `kind` if given. Errors name an
    /// operation the rules do not cover, and where it is.
    pub fn load(file: &ModelFile, device: Device, rules: BackwardRules, kind: Option<tch::Kind>) -> Result<RewrittenModule> {
        let path = file.path();
        let dev = file.device_code(device, rules.name())?;
        let dtype = crate::layers::scalar_type_code(kind).map_err(|e| file.error(format!("{}: {e}", rules.name())))?;
        let (mode, eps) = rules.code();
        let mut err = std::ptr::null_mut();
        let bytes = file.bytes();
        // SAFETY: `bytes` is live for the call (the C++ side copies it) and the out-pointer is
        // valid; the C++ side catches every exception.
        let ptr = unsafe { rules_ffi::attrib_rules_load(bytes.as_ptr().cast(), bytes.len(), dev, mode, eps, dtype, &mut err) };
        if ptr.is_null() {
            return Err(AttribError::NotApplicable(format!("{} cannot rewrite {}: {}", rules.name(), path.display(), first_line(&take_message(err)))));
        }
        Ok(RewrittenModule { ptr, device, path: path.to_path_buf(), rules, fingerprint: None })
    }
}

impl RewrittenModule {
    /// Identify this copy across processes by the fingerprint of the model it was made from
    /// (with the rules appended), so that the evaluator's kept decisions apply to it.
    pub fn with_fingerprint(mut self, model_fingerprint: Option<String>) -> RewrittenModule {
        self.fingerprint = model_fingerprint.map(|f| format!("{f}|rules:{:?}", self.rules));
        self
    }
}

impl Drop for RewrittenModule {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from attrib_rules_load (a heap torch::jit::Module) and is freed once.
        unsafe { ffi::attrib_frozen_free(self.ptr) }
    }
}

impl Model for RewrittenModule {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let mut tensors: Vec<&Tensor> = inputs.iter().collect();
        for a in extra {
            match a {
                ForwardArg::Tensor(t) => tensors.push(t),
                _ => {
                    return Err(AttribError::ModelForward {
                        shapes: format_shapes(inputs),
                        reason: format!("{} takes tensor forward arguments only", self.rules.name()),
                    })
                }
            }
        }
        // SAFETY: `ptr` is a live module from attrib_rules_load.
        unsafe { forward_module(self.ptr, &tensors, inputs) }
    }
    fn device(&self) -> Device {
        self.device
    }
    fn describe(&self) -> String {
        format!("TorchScript {} (backward rules: {})", self.path.display(), self.rules.name())
    }
    fn fingerprint(&self) -> Option<String> {
        self.fingerprint.clone()
    }
}
