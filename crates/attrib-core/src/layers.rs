//! Layer access on TorchScript models (`cpp/layers.cpp`): a submodule's output (or input) as an
//! extra result of a forward pass, or replaced by a tensor given to forward, so that layer
//! attribution methods can read a layer's activations, take gradients with respect to them, and
//! integrate or perturb over them instead of the model's inputs.
//!
//! A layer is named by its submodule path as PyTorch's `named_modules()` prints it: `layer4`,
//! `layer3.1.conv2`, `features.3`. The model's forward graph is copied; the calls of the modules
//! on the path to the layer are inlined (only those) until the layer's own `prim::CallMethod`
//! shows, and its result (or first argument) is made an output of the copy, or replaced by a new
//! last input. Traced and scripted modules both call submodules this way. The model's own
//! forward is unchanged.
//!
//! Errors: a name that is not a submodule lists the submodules that exist; a submodule that
//! forward calls more than once (a shared `ReLU` module) or never is an error too, as its output
//! would be ambiguous.

use crate::error::{AttribError, Result};
use crate::inputs::{format_shapes, ForwardArg};
use crate::model::{first_line, take_message};
use crate::model_file::ModelFile;
use std::os::raw::c_void;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// A layer of a model: its submodule path, and whether the attributed tensor is the layer's
/// input instead of its output (Captum's `attribute_to_layer_input`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layer {
    /// The submodule path, as `named_modules()` prints it (`layer3.1.conv2`).
    pub name: String,
    /// The layer's input (its first and only argument) instead of its output.
    pub input: bool,
}

impl Layer {
    /// The output of the submodule at `name`.
    pub fn output(name: impl Into<String>) -> Layer {
        Layer { name: name.into(), input: false }
    }
    /// The input of the submodule at `name` (Captum's `attribute_to_layer_input=True`).
    pub fn input(name: impl Into<String>) -> Layer {
        Layer { name: name.into(), input: true }
    }
    /// A short description for messages: `layer3.1.conv2` or `input of layer3.1.conv2`.
    pub fn describe(&self) -> String {
        if self.input {
            format!("input of {}", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// How the layer is exposed by a [`LayerModule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerAccess {
    /// Forward returns the layer's value as it is computed.
    Read,
    /// Forward takes the layer's value as its last argument and uses it instead of the computed
    /// one (everything else, skip connections around the layer included, runs on the inputs).
    Substitute,
}

mod layer_ffi {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        pub fn attrib_layer_load(data: *const c_char, len: usize, device: c_int, layer: *const c_char, layer_input: c_int, substitute: c_int, dtype: c_int, err: *mut *mut c_char) -> *mut c_void;
        pub fn attrib_layer_forward(handle: *mut c_void, inputs: *const *mut c_void, n: c_int, model_out: *mut *mut c_void, layer_out: *mut *mut c_void, err: *mut *mut c_char) -> c_int;
        pub fn attrib_layer_free(handle: *mut c_void);
        pub fn attrib_layer_rules_load(
            data: *const c_char,
            len: usize,
            device: c_int,
            layer: *const c_char,
            layer_input: c_int,
            substitute: c_int,
            dtype: c_int,
            mode: c_int,
            eps: f64,
            err: *mut *mut c_char,
        ) -> *mut c_void;
    }
}

/// A TorchScript model whose forward also exposes one layer ([`LayerAccess`]).
pub struct LayerModule {
    ptr: *mut c_void,
    device: Device,
    path: PathBuf,
    layer: Layer,
    access: LayerAccess,
}

// SAFETY: as for FrozenModule, a torch::jit::Module and a graph function may be moved between
// threads and run from several at once.
unsafe impl Send for LayerModule {}
unsafe impl Sync for LayerModule {}

/// c10::ScalarType code of a floating-point kind, for the C++ side.
pub(crate) fn scalar_type_code(kind: Option<tch::Kind>) -> std::result::Result<i32, String> {
    match kind {
        None => Ok(-1),
        Some(tch::Kind::Half) => Ok(5),
        Some(tch::Kind::Float) => Ok(6),
        Some(tch::Kind::Double) => Ok(7),
        Some(tch::Kind::BFloat16) => Ok(15),
        Some(other) => Err(format!("a floating-point model is needed, not {other:?}")),
    }
}

impl LayerModule {
    /// Load the TorchScript file read into `file` on `device` with `layer` exposed as `access`
    /// says, its floating-point parameters converted to `kind` if given.
    pub fn load(file: &ModelFile, device: Device, layer: &Layer, access: LayerAccess, kind: Option<tch::Kind>) -> Result<LayerModule> {
        LayerModule::load_with_rules(file, device, layer, access, kind, None)
    }

    /// As [`LayerModule::load`], with the graph's backward rules also rewritten for `rules`
    /// ([`crate::rules`], `cpp/layer_rules.cpp`): with [`LayerAccess::Substitute`], the gradient
    /// with respect to the layer's value is its multiplier under the rules (LayerDeepLift). An
    /// operation the rules do not cover is an error naming it and where it is.
    pub fn load_with_rules(
        file: &ModelFile,
        device: Device,
        layer: &Layer,
        access: LayerAccess,
        kind: Option<tch::Kind>,
        rules: Option<crate::rules::BackwardRules>,
    ) -> Result<LayerModule> {
        let path = file.path();
        let c_layer = std::ffi::CString::new(layer.name.as_bytes()).map_err(|_| AttribError::param("layer", "a layer name cannot hold a NUL byte"))?;
        let dev = file.device_code(device, "layer access")?;
        let dtype = scalar_type_code(kind).map_err(|e| file.error(e))?;
        let (data, len) = (file.bytes().as_ptr().cast(), file.bytes().len());
        let mut err = std::ptr::null_mut();
        // SAFETY: the bytes are live for the call (the C++ side copies them), the C string and the
        // out-pointer are valid; the C++ side catches every exception.
        let substitute = (access == LayerAccess::Substitute) as i32;
        let ptr = unsafe {
            match rules {
                None => layer_ffi::attrib_layer_load(data, len, dev, c_layer.as_ptr(), layer.input as i32, substitute, dtype, &mut err),
                Some(r) => {
                    let (mode, eps) = r.code();
                    layer_ffi::attrib_layer_rules_load(data, len, dev, c_layer.as_ptr(), layer.input as i32, substitute, dtype, mode, eps, &mut err)
                }
            }
        };
        if ptr.is_null() {
            let msg = take_message(err);
            // Naming errors concern the parameter; anything else is a model that cannot be read.
            let line = first_line(&msg);
            return Err(if line.starts_with("no layer named") || line.starts_with("layer '") {
                AttribError::param("layer", line)
            } else if let Some(r) = rules {
                AttribError::NotApplicable(format!("{} at layer {} cannot rewrite {}: {line}", r.name(), layer.describe(), path.display()))
            } else {
                file.error(format!("cannot expose layer {}: {line}", layer.describe()))
            });
        }
        Ok(LayerModule { ptr, device, path: path.to_path_buf(), layer: layer.clone(), access })
    }

    /// The layer this module exposes.
    pub fn layer(&self) -> &Layer {
        &self.layer
    }

    /// How the layer is exposed.
    pub fn access(&self) -> LayerAccess {
        self.access
    }

    /// The device the model lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Run forward on `inputs` and the tensor forward arguments in `extra` (with
    /// [`LayerAccess::Substitute`], `value` is the layer's value, required). Returns the model's
    /// output (the first element of a tuple output) and the layer's value (for `Substitute`, the
    /// given tensor itself, so gradients reach it).
    pub fn forward_with_layer(&self, inputs: &[Tensor], extra: &[ForwardArg], value: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let mut tensors: Vec<&Tensor> = inputs.iter().collect();
        for a in extra {
            match a {
                ForwardArg::Tensor(t) => tensors.push(t),
                _ => return Err(AttribError::ModelForward { shapes: format_shapes(inputs), reason: "layer access takes tensor forward arguments only".into() }),
            }
        }
        match (self.access, value) {
            (LayerAccess::Substitute, Some(v)) => tensors.push(v),
            (LayerAccess::Substitute, None) => return Err(AttribError::NotApplicable(format!("layer {} is substituted: forward needs its value", self.layer.describe()))),
            (LayerAccess::Read, Some(_)) => return Err(AttribError::NotApplicable(format!("layer {} is read, not substituted", self.layer.describe()))),
            (LayerAccess::Read, None) => {}
        }
        let ptrs: Vec<*mut c_void> = tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        let (mut out, mut layer, mut err) = (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: `ptrs` are live at::Tensor pointers for the whole call; the C++ side copies them
        // into IValues, sets both outputs on success and catches every exception.
        let rc = unsafe { layer_ffi::attrib_layer_forward(self.ptr, ptrs.as_ptr(), ptrs.len() as i32, &mut out, &mut layer, &mut err) };
        if rc != 0 {
            return Err(AttribError::ModelForward { shapes: format_shapes(inputs), reason: crate::error::summarize_torch_message(&take_message(err)) });
        }
        // SAFETY: both are new at::Tensor objects allocated by the C++ side; tch takes ownership.
        Ok(unsafe { (Tensor::from_ptr(out as *mut torch_sys::C_tensor), Tensor::from_ptr(layer as *mut torch_sys::C_tensor)) })
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        format!("TorchScript {} (layer {})", self.path.display(), self.layer.describe())
    }
}

mod embeddings_ffi {
    use std::os::raw::{c_char, c_void};
    extern "C" {
        pub fn attrib_layer_embeddings(handle: *mut c_void, err: *mut *mut c_char) -> *mut c_char;
    }
}

impl LayerModule {
    /// The model's embedding submodules (`nn.Embedding`, `nn.EmbeddingBag`), in `named_modules()`
    /// order, for checking token-id inputs ([`crate::tokens`]).
    pub fn embeddings(&self) -> Result<Vec<crate::tokens::Embedding>> {
        let mut err = std::ptr::null_mut();
        // SAFETY: `ptr` is a live handle; the C++ side catches every exception and returns a
        // malloc'd string (or null with `err`), which take_message frees.
        let listing = unsafe { embeddings_ffi::attrib_layer_embeddings(self.ptr, &mut err) };
        if listing.is_null() {
            return Err(AttribError::NotApplicable(format!("cannot list the model's embeddings: {}", first_line(&take_message(err)))));
        }
        Ok(crate::tokens::parse_embeddings(&take_message(listing)))
    }

    /// Check `inputs` of a layer method at this module's layer: token ids against the model's
    /// embeddings, float values where the layer is an embedding ([`crate::tokens::check_token_inputs`]).
    pub fn check_token_inputs(&self, inputs: &crate::inputs::Inputs) -> Result<()> {
        crate::tokens::check_token_inputs(inputs, &self.layer, &self.embeddings()?)
    }
}

impl Drop for LayerModule {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from attrib_layer_load and is freed once.
        unsafe { layer_ffi::attrib_layer_free(self.ptr) }
    }
}
