//! The model abstraction: anything that maps input tensors to an output tensor.
//!
//! Three kinds of model are supported out of the box:
//! - a closure, [`FnModel`] (`Fn(&Tensor) -> Tensor`, or `Fn(&[Tensor]) -> Tensor` for several inputs);
//! - any `tch::nn::Module`, [`ModuleModel`];
//! - a TorchScript archive exported from PyTorch, [`TorchScriptModel`].
//!
//! Panics raised by libtorch inside closures and modules (tch's non-`f_` operations panic on
//! shape errors) are caught and returned as [`AttribError::ModelForward`], so they never reach
//! the user as a crash.

use crate::error::{AttribError, Result};
use crate::inputs::{format_shapes, ForwardArg};
use crate::model_file::ModelFile;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use tch::{CModule, Device, IValue, Tensor};

/// A differentiable function from input tensors (batch first) to an output tensor (batch first).
///
/// The output is usually `[N, classes]` (select a class with a [`crate::Target`]) or `[N]` /
/// `[N, 1]` for scalar-output models.
pub trait Model {
    /// Evaluate the model. `inputs` are the attributed tensors, `extra` the additional forward
    /// arguments, already expanded to the rows of `inputs`.
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor>;

    /// The device the model's parameters live on; inputs are moved there.
    fn device(&self) -> Device {
        Device::Cpu
    }

    /// A short description for reports.
    fn describe(&self) -> String {
        "model".to_string()
    }

    /// An inference-only equivalent of this model for forward passes without gradients, if it
    /// has one: the same function, possibly faster (for TorchScript, a frozen graph optimised
    /// for inference; see [`TorchScriptModel`]). The shared evaluator times it against the model
    /// itself and uses it only where it is faster. `None` by default.
    fn inference_model(&self) -> Option<&dyn Model> {
        None
    }

    /// Whether the inference-only copy already exists, so that using it costs nothing more
    /// than running it ([`Model::inference_model`] may make it on first request, which can take
    /// longer than a small job). `false` by default.
    fn inference_model_ready(&self) -> bool {
        false
    }

    /// A stable identity of the model across processes (same weights, same graph, same dtype),
    /// if it has one: the shared evaluator keys the chunk variants it chose by timing with it
    /// when the program keeps those decisions on disk (`attrib_tensor::decisions`), so that
    /// later processes run the same variant and give bit-identical results. `None` by default
    /// (the decision is then kept for this process only).
    fn fingerprint(&self) -> Option<String> {
        None
    }

    /// This model with its backward rules rewritten for DeepLIFT, guided backprop or
    /// deconvolution ([`crate::rules`]): the same forward function, the method's gradients.
    /// Only models with a graph can do it (TorchScript); the default is an error saying so.
    fn with_rules(&self, rules: crate::rules::BackwardRules) -> Result<std::sync::Arc<dyn Model + Send + Sync>> {
        Err(AttribError::NotApplicable(format!(
            "{} rewrites the graph of a TorchScript model; {} has none (export it with torch.jit.trace or torch.jit.script)",
            rules.name(),
            self.describe()
        )))
    }
    /// This model with one layer exposed ([`crate::layers`]): its forward also returns the
    /// layer's output (or input), or takes it as an extra argument. Only models with a graph can
    /// do it (TorchScript); the default is an error saying so.
    fn with_layer(&self, layer: &crate::layers::Layer, access: crate::layers::LayerAccess) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        let _ = access;
        Err(AttribError::NotApplicable(format!(
            "layer attribution ({}) finds the layer in the graph of a TorchScript model; {} has none (export it with torch.jit.trace or torch.jit.script)",
            layer.describe(),
            self.describe()
        )))
    }
    /// This model with one layer exposed ([`crate::layers`]) in a graph whose backward rules are
    /// rewritten ([`crate::rules`]): with [`crate::layers::LayerAccess::Substitute`], the
    /// gradient with respect to the layer's value is its multiplier under the rules (layer
    /// DeepLIFT). Only models with a graph can do it (TorchScript); the default is an error.
    fn with_layer_rules(
        &self,
        layer: &crate::layers::Layer,
        access: crate::layers::LayerAccess,
        rules: crate::rules::BackwardRules,
    ) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        let _ = access;
        Err(AttribError::NotApplicable(format!(
            "{} at a layer ({}) rewrites the graph of a TorchScript model; {} has none (export it with torch.jit.trace or torch.jit.script)",
            rules.name(),
            layer.describe(),
            self.describe()
        )))
    }
}

impl<M: Model + ?Sized> Model for &M {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        (**self).forward(inputs, extra)
    }
    fn device(&self) -> Device {
        (**self).device()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn inference_model(&self) -> Option<&dyn Model> {
        (**self).inference_model()
    }
    fn inference_model_ready(&self) -> bool {
        (**self).inference_model_ready()
    }
    fn fingerprint(&self) -> Option<String> {
        (**self).fingerprint()
    }
    fn with_rules(&self, rules: crate::rules::BackwardRules) -> Result<std::sync::Arc<dyn Model + Send + Sync>> {
        (**self).with_rules(rules)
    }
    fn with_layer(&self, layer: &crate::layers::Layer, access: crate::layers::LayerAccess) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        (**self).with_layer(layer, access)
    }
    fn with_layer_rules(
        &self,
        layer: &crate::layers::Layer,
        access: crate::layers::LayerAccess,
        rules: crate::rules::BackwardRules,
    ) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        (**self).with_layer_rules(layer, access, rules)
    }
}

impl<M: Model + ?Sized> Model for Box<M> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        (**self).forward(inputs, extra)
    }
    fn device(&self) -> Device {
        (**self).device()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn inference_model(&self) -> Option<&dyn Model> {
        (**self).inference_model()
    }
    fn inference_model_ready(&self) -> bool {
        (**self).inference_model_ready()
    }
    fn fingerprint(&self) -> Option<String> {
        (**self).fingerprint()
    }
    fn with_rules(&self, rules: crate::rules::BackwardRules) -> Result<std::sync::Arc<dyn Model + Send + Sync>> {
        (**self).with_rules(rules)
    }
    fn with_layer(&self, layer: &crate::layers::Layer, access: crate::layers::LayerAccess) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        (**self).with_layer(layer, access)
    }
    fn with_layer_rules(
        &self,
        layer: &crate::layers::Layer,
        access: crate::layers::LayerAccess,
        rules: crate::rules::BackwardRules,
    ) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        (**self).with_layer_rules(layer, access, rules)
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "the model panicked".to_string()
    }
}

/// Run `f`, turning a panic into [`AttribError::ModelForward`].
fn guarded(inputs: &[Tensor], f: impl FnOnce() -> Tensor) -> Result<Tensor> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| AttribError::ModelForward {
        shapes: format_shapes(inputs),
        reason: panic_message(payload),
    })
}

fn reject_extra(extra: &[ForwardArg], kind: &str) -> Result<()> {
    if extra.is_empty() {
        Ok(())
    } else {
        Err(AttribError::ModelForward {
            shapes: String::new(),
            reason: format!(
                "{kind} takes no additional forward arguments, but {} were given; capture them in the closure or use a TorchScript model",
                extra.len()
            ),
        })
    }
}

type MultiFn<'a> = Box<dyn Fn(&[Tensor]) -> Tensor + 'a>;

/// A model defined by a closure.
pub struct FnModel<'a> {
    f: MultiFn<'a>,
    arity: Option<usize>,
    device: Device,
}

impl<'a> FnModel<'a> {
    /// A single-input model `x -> f(x)`.
    pub fn new(f: impl Fn(&Tensor) -> Tensor + 'a) -> FnModel<'a> {
        FnModel { f: Box::new(move |xs: &[Tensor]| f(&xs[0])), arity: Some(1), device: Device::Cpu }
    }

    /// A model over several inputs `(x1, x2, ...) -> f([x1, x2, ...])`.
    pub fn multi(f: impl Fn(&[Tensor]) -> Tensor + 'a) -> FnModel<'a> {
        FnModel { f: Box::new(f), arity: None, device: Device::Cpu }
    }

    /// Declare the device the closure's parameters live on.
    pub fn on_device(mut self, device: Device) -> FnModel<'a> {
        self.device = device;
        self
    }
}

impl Model for FnModel<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        reject_extra(extra, "a closure model")?;
        if let Some(n) = self.arity {
            if inputs.len() != n {
                return Err(AttribError::ModelForward {
                    shapes: format_shapes(inputs),
                    reason: format!("this model takes {n} input tensor(s), {} were given", inputs.len()),
                });
            }
        }
        guarded(inputs, || (self.f)(inputs))
    }
    fn device(&self) -> Device {
        self.device
    }
    fn describe(&self) -> String {
        "closure".into()
    }
}

/// Any `tch::nn::Module` (single input).
pub struct ModuleModel<M> {
    module: M,
    device: Device,
}

impl<M: tch::nn::Module> ModuleModel<M> {
    /// Wrap a module whose parameters live on `device`.
    pub fn new(module: M, device: Device) -> ModuleModel<M> {
        ModuleModel { module, device }
    }

    /// The wrapped module.
    pub fn module(&self) -> &M {
        &self.module
    }
}

impl<M: tch::nn::Module> Model for ModuleModel<M> {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        reject_extra(extra, "a tch::nn::Module")?;
        if inputs.len() != 1 {
            return Err(AttribError::ModelForward {
                shapes: format_shapes(inputs),
                reason: format!("a tch::nn::Module takes one input tensor, {} were given", inputs.len()),
            });
        }
        guarded(inputs, || self.module.forward(&inputs[0]))
    }
    fn device(&self) -> Device {
        self.device
    }
    fn describe(&self) -> String {
        "tch::nn::Module".into()
    }
}

/// Switch libtorch's TorchScript executor out of profiling mode, for the whole process
/// (`torch._C._jit_set_profiling_mode(False)` in Python): TorchScript models then run on the
/// simple executor.
///
/// **The binary's choice**: the setting is process-wide (it affects every TorchScript module the
/// process runs, attrib's or not), so the library never changes it on its own; the `attrib`
/// command line, the benchmarks and the timing examples call this once at start-up.
///
/// Why a program that attributes would want it: attribution calls the model on chunks of
/// varying sizes (a probe chunk, trial chunks, a joined tail), and the profiling executor
/// profiles and re-optimises the graph during its first runs and again for new shapes. Measured
/// with `examples/first_call.rs` on the bundled digit CNN (`examples/data/digits_cnn.pt`, CPU,
/// 2 threads, a shared 2-core machine, two runs each): the first two forward passes of 10 rows
/// took 49–54 ms each with the profiling executor against 3–5 ms with the simple one, and the
/// first two forward + backward passes 128–163 ms against 1–17 ms; once warm, both run the same
/// kernels. Results are the same either way.
pub fn use_simple_executor() -> Result<()> {
    tch::jit::f_set_profiling_mode(false)
        .map_err(|source| AttribError::Torch { context: "switching off TorchScript's profiling executor".into(), source })
}

/// A TorchScript model exported from PyTorch with `torch.jit.trace` or `torch.jit.script`.
///
/// The module is put in evaluation mode on load (dropout off, batch norm uses running stats),
/// as an attribution must explain the deployed function.
pub struct TorchScriptModel {
    module: CModule,
    /// The file's bytes as loaded: every copy below is made from them.
    file: ModelFile,
    device: Device,
    /// The frozen, inference-optimised copy, made on first request (`None` inside: it could not
    /// be made, or the model was converted with [`TorchScriptModel::to_kind`]).
    frozen: std::sync::OnceLock<Option<FrozenModule>>,
    /// The dtype given to [`TorchScriptModel::to_kind`], if any (part of the fingerprint).
    converted: Option<tch::Kind>,
    /// Copies with rewritten backward rules, made on first request ([`Model::with_rules`]).
    rewritten: std::sync::Mutex<Vec<(crate::rules::BackwardRules, std::sync::Arc<crate::rules::RewrittenModule>)>>,
    /// Copies with a layer exposed, made on first request ([`Model::with_layer`]).
    layered: std::sync::Mutex<Vec<LayerCopy>>,
    /// Copies with a layer exposed and backward rules rewritten ([`Model::with_layer_rules`]).
    layered_rules: std::sync::Mutex<Vec<(crate::rules::BackwardRules, LayerCopy)>>,
}

type LayerCopy = ((crate::layers::Layer, crate::layers::LayerAccess), std::sync::Arc<crate::layers::LayerModule>);

impl TorchScriptModel {
    /// Load `path` onto `device`.
    ///
    /// The file is read once: the copies the methods make later (frozen, rewritten, layer) come
    /// from the same bytes, so replacing or deleting the file after this call changes nothing
    /// ([`ModelFile`]); they stay in memory as long as the model (the file's size).
    ///
    /// Loading changes no process-wide setting. Programs that call TorchScript models on chunks
    /// of varying sizes may want libtorch's simple executor: see [`use_simple_executor`].
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<TorchScriptModel> {
        TorchScriptModel::from_file(ModelFile::read(path)?, device)
    }

    /// The model in `file` (read already, e.g. to fingerprint its bytes first) onto `device`.
    pub fn from_file(file: ModelFile, device: Device) -> Result<TorchScriptModel> {
        let module = file.load_module(device)?;
        Ok(TorchScriptModel { module, file, device, frozen: std::sync::OnceLock::new(), converted: None, rewritten: Default::default(), layered: Default::default(), layered_rules: Default::default() })
    }

    /// The frozen, inference-optimised copy of the model ([`FrozenModule`]), made on the first
    /// call (from the bytes read by [`TorchScriptModel::load`]; typically tens to hundreds of
    /// milliseconds). `None` when libtorch cannot freeze this model, or after
    /// [`TorchScriptModel::to_kind`].
    pub fn frozen(&self) -> Option<&FrozenModule> {
        self.frozen.get_or_init(|| FrozenModule::load(&self.file, self.device).ok()).as_ref()
    }

    /// Where the model was loaded from.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The file's bytes as loaded, to make further copies of the model from
    /// ([`ModelFile::load_module`]).
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// Convert the model's floating-point parameters and buffers to `kind` (PyTorch's
    /// `model.to(dtype)`, e.g. `Kind::Double` for `model.double()`), on its current device.
    ///
    /// The inputs must then have the same dtype (`x.to_kind(kind)`); baselines and perturbed
    /// rows follow the inputs' dtype. Running in float64 removes the float32 rounding that
    /// differs between batch sizes, which matters for methods that subtract two close outputs
    /// (perturbation methods); it is how the Captum parity tests check results to 1e-5 whatever
    /// the chunking. Tensors created inside a traced graph with a fixed dtype keep it.
    pub fn to_kind(&mut self, kind: tch::Kind) -> Result<()> {
        // The frozen copy would keep the file's dtype: do without it.
        self.frozen = std::sync::OnceLock::from(None);
        self.converted = Some(kind);
        self.rewritten.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.layered.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.layered_rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let device = self.device;
        let module = &mut self.module;
        catch_unwind(AssertUnwindSafe(|| module.to(device, kind, false)))
            .map_err(|payload| self.file.error(format!("cannot convert the model to {kind:?}: {}", first_line(&panic_message(payload)))))
    }
}

pub(crate) fn first_line(s: &str) -> String {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_string()
}

fn to_ivalue(arg: &ForwardArg) -> IValue {
    match arg {
        ForwardArg::Tensor(t) => IValue::Tensor(t.shallow_clone()),
        ForwardArg::Int(v) => IValue::Int(*v),
        ForwardArg::Float(v) => IValue::Double(*v),
        ForwardArg::Bool(v) => IValue::Bool(*v),
    }
}

impl Model for TorchScriptModel {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        let args: Vec<IValue> = inputs
            .iter()
            .map(|t| IValue::Tensor(t.shallow_clone()))
            .chain(extra.iter().map(to_ivalue))
            .collect();
        let out = self.module.forward_is(&args).map_err(|e| AttribError::ModelForward {
            shapes: format_shapes(inputs),
            reason: crate::error::summarize_torch_message(&e.to_string()),
        })?;
        match out {
            IValue::Tensor(t) => Ok(t),
            IValue::Tuple(mut v) | IValue::GenericList(mut v) if !v.is_empty() => match v.swap_remove(0) {
                IValue::Tensor(t) => Ok(t),
                other => Err(AttribError::ModelOutput(format!(
                    "the model returned a tuple whose first element is {other:?}, not a tensor"
                ))),
            },
            other => Err(AttribError::ModelOutput(format!(
                "the model returned {}, attrib needs a tensor (or a tuple whose first element is the tensor to explain)",
                ivalue_kind(&other)
            ))),
        }
    }
    fn device(&self) -> Device {
        self.device
    }
    fn describe(&self) -> String {
        format!("TorchScript {}", self.file.path().display())
    }
    fn inference_model(&self) -> Option<&dyn Model> {
        self.frozen().map(|f| f as &dyn Model)
    }
    fn inference_model_ready(&self) -> bool {
        matches!(self.frozen.get(), Some(Some(_)))
    }
    fn with_rules(&self, rules: crate::rules::BackwardRules) -> Result<std::sync::Arc<dyn Model + Send + Sync>> {
        let mut cache = self.rewritten.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = cache.iter().find(|(r, _)| *r == rules) {
            return Ok(m.clone());
        }
        let m = std::sync::Arc::new(crate::rules::RewrittenModule::load(&self.file, self.device, rules, self.converted)?.with_fingerprint(self.fingerprint()));
        cache.push((rules, m.clone()));
        Ok(m)
    }
    fn with_layer(&self, layer: &crate::layers::Layer, access: crate::layers::LayerAccess) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        let mut cache = self.layered.lock().unwrap_or_else(|e| e.into_inner());
        let key = (layer.clone(), access);
        if let Some((_, m)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(m.clone());
        }
        let m = std::sync::Arc::new(crate::layers::LayerModule::load(&self.file, self.device, layer, access, self.converted)?);
        cache.push((key, m.clone()));
        Ok(m)
    }
    fn with_layer_rules(
        &self,
        layer: &crate::layers::Layer,
        access: crate::layers::LayerAccess,
        rules: crate::rules::BackwardRules,
    ) -> Result<std::sync::Arc<crate::layers::LayerModule>> {
        let mut cache = self.layered_rules.lock().unwrap_or_else(|e| e.into_inner());
        let key = (layer.clone(), access);
        if let Some((_, (_, m))) = cache.iter().find(|(r, (k, _))| *r == rules && *k == key) {
            return Ok(m.clone());
        }
        let m = std::sync::Arc::new(crate::layers::LayerModule::load_with_rules(&self.file, self.device, layer, access, self.converted, Some(rules))?);
        cache.push((rules, (key, m.clone())));
        Ok(m)
    }
    /// The file's canonical path, size and modification time when it was loaded
    /// ([`ModelFile::fingerprint`]), the device and the dtype given to
    /// [`TorchScriptModel::to_kind`]: a rewritten model file is a new model.
    fn fingerprint(&self) -> Option<String> {
        Some(format!("torchscript:{}:{:?}:{:?}", self.file.fingerprint()?, self.device, self.converted))
    }
}

pub(crate) mod ffi {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        pub fn attrib_frozen_load(data: *const c_char, len: usize, device: c_int, err: *mut *mut c_char) -> *mut c_void;
        pub fn attrib_frozen_forward(module: *mut c_void, inputs: *const *mut c_void, n: c_int, err: *mut *mut c_char) -> *mut c_void;
        pub fn attrib_frozen_free(module: *mut c_void);
        pub fn attrib_frozen_free_message(message: *mut c_char);
    }
}

/// Take an error message allocated by the C++ side.
pub(crate) fn take_message(err: *mut std::os::raw::c_char) -> String {
    if err.is_null() {
        return "unknown error".into();
    }
    // SAFETY: `err` is a NUL-terminated string malloc'ed by frozen.cpp, freed right after.
    let msg = unsafe { std::ffi::CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { ffi::attrib_frozen_free_message(err) };
    msg
}

/// A TorchScript model frozen and optimised for inference: libtorch's `torch::jit::freeze`
/// (parameters become constants, batch norm is folded into the preceding convolution) followed by
/// `torch::jit::optimize_for_inference` (oneDNN convolutions with prepacked weights and fused
/// activations on the CPU) — PyTorch's `torch.jit.optimize_for_inference(torch.jit.freeze(m))`.
/// The same function as the model up to float rounding; forward only (no gradients), tensor
/// inputs only.
pub struct FrozenModule {
    ptr: *mut std::os::raw::c_void,
    device: Device,
    path: PathBuf,
}

// SAFETY: a torch::jit::Module may be moved between threads and run from several threads at
// once (its methods do not mutate it), as tch assumes for CModule.
unsafe impl Send for FrozenModule {}
unsafe impl Sync for FrozenModule {}

impl FrozenModule {
    /// Load, freeze and optimise the TorchScript file read into `file` on `device`.
    pub fn load(file: &ModelFile, device: Device) -> Result<FrozenModule> {
        let dev = file.device_code(device, "freezing")?;
        let bytes = file.bytes();
        let mut err = std::ptr::null_mut();
        // SAFETY: `bytes` is live for the call (the C++ side copies it) and the out-pointer is
        // valid; the C++ side catches every exception.
        let ptr = unsafe { ffi::attrib_frozen_load(bytes.as_ptr().cast(), bytes.len(), dev, &mut err) };
        if ptr.is_null() {
            return Err(file.error(format!("cannot freeze the model: {}", first_line(&take_message(err)))));
        }
        Ok(FrozenModule { ptr, device, path: file.path().to_path_buf() })
    }
}

impl Drop for FrozenModule {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from attrib_frozen_load and is freed once.
        unsafe { ffi::attrib_frozen_free(self.ptr) }
    }
}

impl Model for FrozenModule {
    fn forward(&self, inputs: &[Tensor], extra: &[ForwardArg]) -> Result<Tensor> {
        if !extra.is_empty() {
            return Err(AttribError::ModelForward {
                shapes: format_shapes(inputs),
                reason: "the frozen copy of a TorchScript model takes tensor inputs only".into(),
            });
        }
        // SAFETY: `ptr` is a live module from attrib_frozen_load.
        unsafe { forward_module(self.ptr, &inputs.iter().collect::<Vec<_>>(), inputs) }
    }
    fn device(&self) -> Device {
        self.device
    }
    fn describe(&self) -> String {
        format!("TorchScript {} (frozen for inference)", self.path.display())
    }
}

/// Run `forward` of a heap `torch::jit::Module` made by the C++ side (a frozen or rewritten copy)
/// on `tensors`; `inputs` name the shapes in errors.
///
/// # Safety
/// `module` must be a live pointer returned by `attrib_frozen_load` or `attrib_rules_load`.
pub(crate) unsafe fn forward_module(module: *mut std::os::raw::c_void, tensors: &[&Tensor], inputs: &[Tensor]) -> Result<Tensor> {
    let ptrs: Vec<*mut std::os::raw::c_void> = tensors.iter().map(|t| t.as_ptr() as *mut std::os::raw::c_void).collect();
    let mut err = std::ptr::null_mut();
    // SAFETY: `ptrs` are live at::Tensor pointers owned by the caller for the whole call; the C++
    // side copies them into IValues (reference counted) and catches every exception.
    let out = unsafe { ffi::attrib_frozen_forward(module, ptrs.as_ptr(), ptrs.len() as i32, &mut err) };
    if out.is_null() {
        return Err(AttribError::ModelForward { shapes: format_shapes(inputs), reason: crate::error::summarize_torch_message(&take_message(err)) });
    }
    // SAFETY: `out` is a new at::Tensor allocated by the C++ side; tch takes ownership.
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

fn ivalue_kind(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tensor(_) => "a tensor",
        IValue::Double(_) | IValue::Int(_) | IValue::Bool(_) => "a scalar",
        IValue::Tuple(_) => "an empty tuple",
        IValue::GenericDict(_) => "a dict",
        IValue::String(_) | IValue::StringList(_) => "a string",
        _ => "a list or object",
    }
}

