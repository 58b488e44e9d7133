//! What a method tells the registry about itself, and how it is built from a spec.
//!
//! A method enters attrib in one place: a [`MethodEntry`] with a [`MethodDoc`] (name,
//! description, [`Family`], [`MethodFlags`] and [`Param`]s with types, defaults and docs) and a
//! `build` function that turns checked [`Args`] into a `Box<dyn Attribution>`. The registry in
//! the `attrib` facade (`attrib::methods::Registry`) lists the entries; `attrib explain`,
//! `attrib compare`, `attrib methods` and the docs all read it, and a crate outside attrib can
//! add its own entry.
//!
//! A spec is a JSON (or TOML) object: the method's name and its parameters, e.g.
//! `{"method": "integrated-gradients", "n_steps": 64, "baselines": "zeros"}`. [`Args::check`]
//! rejects keys the method does not take and values of the wrong type before any work, and fills
//! in the defaults, so a parameter's default is written once, in its [`Param`].
//!
//! ```
//! use attrib_core::registry::{Args, Param, ParamType};
//! const PARAMS: &[Param] = &[Param::new("n_steps", ParamType::Int, Some("50"), "integration steps")];
//! let args = Args::check("my-method", PARAMS, &serde_json::json!({"n_steps": 8})).unwrap();
//! assert_eq!(args.usize("n_steps").unwrap(), 8);
//! let err = Args::check("my-method", PARAMS, &serde_json::json!({"steps": 8})).unwrap_err();
//! assert!(err.to_string().contains("n_steps"));
//! ```

use crate::attribution::{Attribution, BatchOptions, MemoryFormat};
use crate::error::{AttribError, Result};
use crate::spec::{BaselineSpec, MaskSpec, Sizes};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tch::Tensor;

/// The kind of method, for listings and for choosing defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Gradients of the output with respect to the inputs (saliency, IG...).
    Gradient,
    /// Forward passes on perturbed inputs (ablation, occlusion...).
    Perturbation,
    /// Sampling estimators of game-theoretic values (Shapley, KernelSHAP, LIME).
    Sampling,
    /// Attributions to a layer's activations or neurons.
    Layer,
    /// Adversarial attacks and robustness.
    Attack,
    /// Anything else.
    Other,
}

impl Family {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Gradient => "gradient",
            Family::Perturbation => "perturbation",
            Family::Sampling => "sampling",
            Family::Layer => "layer",
            Family::Attack => "attack",
            Family::Other => "other",
        }
    }
}

/// Static properties of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MethodFlags {
    /// The method differentiates the model (it needs a differentiable model).
    pub needs_gradients: bool,
    /// The method draws random numbers (it takes a `seed`).
    pub stochastic: bool,
    /// The attributions are multiplied by the inputs (or `input − baseline`).
    pub multiplies_by_inputs: bool,
    /// The method reports a convergence delta.
    pub has_convergence_delta: bool,
}

/// The type of a parameter, with the grammar of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `true` / `false`.
    Bool,
    /// A non-negative integer.
    Int,
    /// A finite number.
    Float,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// Free text.
    Text,
    /// One [`BaselineSpec`] for all inputs or a list with one per input.
    Baselines,
    /// One [`MaskSpec`] per input (a single value for one input).
    Masks,
    /// One [`Sizes`] per input (a single value for one input).
    SizesPerInput,
    /// A JSON object (nested settings, such as a noise tunnel).
    Object,
}

impl ParamType {
    /// How values are written, for listings.
    pub fn describe(self) -> String {
        match self {
            ParamType::Bool => "bool".into(),
            ParamType::Int => "integer".into(),
            ParamType::Float => "number".into(),
            ParamType::Choice(words) => words.join("|"),
            ParamType::Text => "text".into(),
            ParamType::Baselines => "baseline[s]: zeros|NUMBER|blur:SIGMA|uniform:LOW,HIGH|FILE.npy".into(),
            ParamType::Masks => "mask[s]: grid:HxW|slic:N|FILE.npy|LABELS.png".into(),
            ParamType::SizesPerInput => "sizes: C,H,W (one per input)".into(),
            ParamType::Object => "object".into(),
        }
    }

    /// Check that `v` is a value of this type; the message says what is expected.
    fn check(self, v: &Value) -> std::result::Result<(), String> {
        let ok = match self {
            ParamType::Bool => as_bool(v).is_some(),
            ParamType::Int => as_u64(v).is_some(),
            ParamType::Float => as_f64(v).is_some_and(f64::is_finite),
            ParamType::Choice(words) => as_text(v).is_some_and(|s| words.contains(&s.as_str())),
            ParamType::Text => as_text(v).is_some(),
            ParamType::Baselines => return list_of::<BaselineSpec>(v).map(drop),
            ParamType::Masks => return list_of::<MaskSpec>(v).map(drop),
            ParamType::SizesPerInput => return sizes_list(v).map(drop),
            ParamType::Object => v.is_object(),
        };
        match (ok, self) {
            (true, _) => Ok(()),
            (false, ParamType::Choice(words)) => {
                let (last, rest) = words.split_last().unwrap_or((&"", &[]));
                let list = if rest.is_empty() { last.to_string() } else { format!("{} or {last}", rest.join(", ")) };
                Err(format!("expected one of {list}, got {v}"))
            }
            (false, ParamType::Float) => Err(format!("expected a finite number, got {v}")),
            (false, _) => Err(format!("expected {}, got {v}", self.describe())),
        }
    }
}

/// One parameter of a method: its name in specs (Captum's name where Captum has one), type,
/// default (`None`: optional, unset by default) and a one-line description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Name in specs.
    pub name: &'static str,
    /// Type and grammar.
    pub ty: ParamType,
    /// Default value, written as in a spec (`"50"`, `"gausslegendre"`, `"zeros"`); `None`: unset.
    pub default: Option<&'static str>,
    /// What it does.
    pub doc: &'static str,
    /// The method cannot run without it.
    pub required: bool,
}

impl Param {
    /// An optional parameter (with a default, or unset when `default` is `None`).
    pub const fn new(name: &'static str, ty: ParamType, default: Option<&'static str>, doc: &'static str) -> Param {
        Param { name, ty, default, doc, required: false }
    }

    /// A parameter the method cannot run without.
    pub const fn required(name: &'static str, ty: ParamType, doc: &'static str) -> Param {
        Param { name, ty, default: None, doc, required: true }
    }

    /// The default as a spec value (numbers and booleans typed), or `None`.
    pub fn default_value(&self) -> Option<Value> {
        let d = self.default?;
        Some(match self.ty {
            ParamType::Bool | ParamType::Int | ParamType::Float | ParamType::Object => {
                serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.into()))
            }
            _ => Value::String(d.into()),
        })
    }
}

/// Everything a listing or the docs say about a method.
#[derive(Debug, Clone, Copy)]
pub struct MethodDoc {
    /// Stable name, used by `--method`, in specs and reports (kebab case).
    pub name: &'static str,
    /// One line: what the method computes.
    pub description: &'static str,
    /// Its family.
    pub family: Family,
    /// Its properties.
    pub flags: MethodFlags,
    /// Its own parameters (the batching settings of [`BATCH_PARAMS`] apply to every method).
    pub params: &'static [Param],
}

/// Settings every method takes: how the shared tensor layer chunks the work.
pub const BATCH_PARAMS: &[Param] = &[
    Param::new("max_batch", ParamType::Int, None, "largest number of rows per model call (default: from the memory budget)"),
    Param::new("memory_budget_mb", ParamType::Int, None, "memory budget of the chunked work in MiB (default: half of the available memory)"),
    Param::new(
        "memory_format",
        ParamType::Choice(&["auto", "contiguous", "channels-last"]),
        Some("auto"),
        "layout of 4-D/5-D inputs: auto times both on the CPU and keeps the faster",
    ),
    Param::new("inference_copy", ParamType::Bool, Some("true"), "allow a frozen, inference-optimised copy of a TorchScript model for forward-only work"),
    Param::new(
        "precision",
        ParamType::Choice(&["fp32", "bf16", "fp16"]),
        Some("fp32"),
        "precision of the model's forward passes: bf16/fp16 run them under autocast, attributions stay float32",
    ),
];

/// What a method may look at while it is built: the inputs it will explain (masks such as SLIC
/// superpixels and blurred baselines are computed from them).
pub struct BuildContext<'a> {
    /// The input tensors.
    pub inputs: &'a [Tensor],
    /// The chunking settings of the spec ([`BATCH_PARAMS`]).
    pub batch: BatchOptions,
}

/// How an input tensor is treated by reports and default settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// `[N, C, H, W]`.
    Image,
    /// `[N, H, W]` (one channel, no channel dimension).
    GreyImage,
    /// `[N, F]`.
    Tabular,
    /// Anything else.
    Other,
}

impl InputKind {
    /// The kind of a tensor of this shape.
    pub fn of_shape(size: &[i64]) -> InputKind {
        match size.len() {
            4 => InputKind::Image,
            3 => InputKind::GreyImage,
            2 => InputKind::Tabular,
            _ => InputKind::Other,
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Image => "image",
            InputKind::GreyImage => "grey image",
            InputKind::Tabular => "tabular",
            InputKind::Other => "other",
        }
    }

    /// An image with or without a channel dimension.
    pub fn is_image(self) -> bool {
        matches!(self, InputKind::Image | InputKind::GreyImage)
    }
}

/// What a method's default settings for a comparison may depend on.
#[derive(Debug, Clone)]
pub struct DefaultsContext {
    /// Shape of each input.
    pub shapes: Vec<Vec<i64>>,
    /// Kind of each input.
    pub kinds: Vec<InputKind>,
    /// Whether the explained output has a gradient with respect to the inputs.
    pub differentiable: bool,
}

/// A method known to the registry.
pub trait MethodEntry: Send + Sync {
    /// Name, description, family, flags and parameters.
    fn doc(&self) -> &MethodDoc;

    /// Build the method from checked arguments (defaults filled in, types checked).
    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>>;

    /// Whether `attrib compare` runs this method when no method list is given. By default:
    /// every method, except that methods which need gradients need a differentiable model.
    fn in_default_comparison(&self, ctx: &DefaultsContext) -> bool {
        !self.doc().flags.needs_gradients || ctx.differentiable
    }

    /// The parameters `attrib compare` gives this method for these inputs, under any the user
    /// sets (for example occlusion's window sizes from the image size). By default none: the
    /// method's own defaults. An error when the method cannot run on such inputs by default.
    fn compare_settings(&self, ctx: &DefaultsContext) -> Result<Map<String, Value>> {
        let _ = ctx;
        Ok(Map::new())
    }
}

/// A method spec: the method's name, an optional label (the row name in reports) and its
/// parameters, as one flat JSON/TOML object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodSpec {
    /// The registered method's name.
    pub method: String,
    /// Name of this configuration in reports (default: the method's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The parameters.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

impl MethodSpec {
    /// A spec of `method` with its default parameters.
    pub fn new(method: impl Into<String>) -> MethodSpec {
        MethodSpec { method: method.into(), label: None, params: Map::new() }
    }

    /// Set a parameter.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> MethodSpec {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// Set the label.
    pub fn labelled(mut self, label: impl Into<String>) -> MethodSpec {
        self.label = Some(label.into());
        self
    }

    /// The label, or the method's name.
    pub fn display_name(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.method)
    }
}

impl std::str::FromStr for MethodSpec {
    type Err = AttribError;

    /// A JSON object, e.g. `{"method": "saliency", "abs": true}`.
    fn from_str(s: &str) -> Result<MethodSpec> {
        serde_json::from_str(s).map_err(|e| AttribError::param("spec", format!("not a method spec ({e}); write e.g. {{\"method\": \"saliency\"}}")))
    }
}

/// A method's parameters after [`Args::check`]: only known keys, each of the right type, the
/// defaults filled in.
#[derive(Debug, Clone)]
pub struct Args {
    method: String,
    values: BTreeMap<&'static str, Value>,
}

impl Args {
    /// Check `given` (a JSON object) against `params` (and [`BATCH_PARAMS`]) for `method`.
    pub fn check(method: &str, params: &[Param], given: &Value) -> Result<Args> {
        Args::check_with(method, params, given, true)
    }

    /// [`Args::check`] without requiring the required parameters: only the keys and values given
    /// are checked (for specs that are completed later, such as `compare`'s per-input settings).
    pub fn check_given(method: &str, params: &[Param], given: &Value) -> Result<Args> {
        Args::check_with(method, params, given, false)
    }

    fn check_with(method: &str, params: &[Param], given: &Value, complete: bool) -> Result<Args> {
        let obj = match given {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            other => return Err(AttribError::param("spec", format!("parameters of `{method}` must be an object, got {other}"))),
        };
        let all: Vec<&Param> = params.iter().chain(BATCH_PARAMS).collect();
        let mut values = BTreeMap::new();
        for (key, v) in &obj {
            let Some(p) = all.iter().find(|p| p.name == key) else {
                return Err(AttribError::UnknownParameter {
                    method: method.to_string(),
                    name: key.clone(),
                    accepted: params.iter().map(|p| p.name.to_string()).collect(),
                });
            };
            if v.is_null() {
                continue;
            }
            p.ty.check(v).map_err(|why| AttribError::param(p.name, format!("{method}: {why}")))?;
            values.insert(p.name, v.clone());
        }
        for p in &all {
            if values.contains_key(p.name) {
                continue;
            }
            if p.required && complete {
                return Err(AttribError::param(p.name, format!("`{method}` needs `{}`: {}", p.name, p.doc)));
            }
            if let Some(d) = p.default_value() {
                values.insert(p.name, d);
            }
        }
        Ok(Args { method: method.to_string(), values })
    }

    /// The method's name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The value of `name` (`None`: unset and without default).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Every set value, as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn need(&self, name: &'static str) -> Result<&Value> {
        self.get(name).ok_or_else(|| AttribError::param(name, format!("`{}` has no value for `{name}`", self.method)))
    }

    /// A boolean parameter.
    pub fn bool(&self, name: &'static str) -> Result<bool> {
        as_bool(self.need(name)?).ok_or_else(|| AttribError::param(name, "expected true or false"))
    }

    /// An integer parameter.
    pub fn usize(&self, name: &'static str) -> Result<usize> {
        self.opt_usize(name)?.ok_or_else(|| AttribError::param(name, format!("`{}` has no value for `{name}`", self.method)))
    }

    /// An optional integer parameter.
    pub fn opt_usize(&self, name: &'static str) -> Result<Option<usize>> {
        self.get(name)
            .map(|v| as_u64(v).and_then(|u| usize::try_from(u).ok()).ok_or_else(|| AttribError::param(name, "expected a non-negative integer")))
            .transpose()
    }

    /// A 64-bit integer parameter (seeds).
    pub fn u64(&self, name: &'static str) -> Result<u64> {
        as_u64(self.need(name)?).ok_or_else(|| AttribError::param(name, "expected a non-negative integer"))
    }

    /// A number.
    pub fn f64(&self, name: &'static str) -> Result<f64> {
        self.opt_f64(name)?.ok_or_else(|| AttribError::param(name, format!("`{}` has no value for `{name}`", self.method)))
    }

    /// An optional number.
    pub fn opt_f64(&self, name: &'static str) -> Result<Option<f64>> {
        self.get(name).map(|v| as_f64(v).ok_or_else(|| AttribError::param(name, "expected a number"))).transpose()
    }

    /// A word or text.
    pub fn text(&self, name: &'static str) -> Result<String> {
        as_text(self.need(name)?).ok_or_else(|| AttribError::param(name, "expected text"))
    }

    /// Baseline specs (one for all inputs, or one per input).
    pub fn baselines(&self, name: &'static str) -> Result<Vec<BaselineSpec>> {
        match self.get(name) {
            None => Ok(vec![BaselineSpec::Zeros]),
            Some(v) => list_of(v).map_err(|why| AttribError::param(name, why)),
        }
    }

    /// Mask specs, one per input, or `None` when unset.
    pub fn masks(&self, name: &'static str) -> Result<Option<Vec<MaskSpec>>> {
        self.get(name).map(|v| list_of(v).map_err(|why| AttribError::param(name, why))).transpose()
    }

    /// Sizes, one per input, or `None` when unset.
    pub fn sizes(&self, name: &'static str) -> Result<Option<Vec<Sizes>>> {
        self.get(name).map(|v| sizes_list(v).map_err(|why| AttribError::param(name, why))).transpose()
    }

    /// The chunking settings ([`BATCH_PARAMS`]).
    pub fn batch(&self) -> Result<BatchOptions> {
        let budget = match self.opt_usize("memory_budget_mb")? {
            None => None,
            Some(mb) => Some((mb as u64).checked_mul(1 << 20).filter(|&b| b > 0).ok_or_else(|| {
                AttribError::param("memory_budget_mb", format!("{mb} MiB is not a usable budget; give a positive size below 16 EiB"))
            })?),
        };
        BatchOptions {
            max_batch: self.opt_usize("max_batch")?,
            memory_budget: budget,
            memory_format: self.text("memory_format")?.parse::<MemoryFormat>()?,
            inference_copy: self.bool("inference_copy")?,
            precision: self.text("precision")?.parse::<crate::Precision>()?,
        }
        .check()
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One value or an array of values of a text grammar.
fn list_of<T: std::str::FromStr<Err = AttribError>>(v: &Value) -> std::result::Result<Vec<T>, String> {
    let one = |x: &Value| -> std::result::Result<T, String> {
        let text = as_text(x).ok_or_else(|| format!("expected text, got {x}"))?;
        text.parse::<T>().map_err(|e| e.to_string())
    };
    match v {
        Value::Array(a) if a.is_empty() => Err("the list is empty".into()),
        Value::Array(a) => a.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// Sizes for every input: `"3,8,8"`, `[3, 8, 8]` (one input), or `["3,8,8", "4"]` / `[[3, 8, 8], [4]]`.
fn sizes_list(v: &Value) -> std::result::Result<Vec<Sizes>, String> {
    let one = |x: &Value| serde_json::from_value::<Sizes>(x.clone()).map_err(|e| e.to_string());
    match v {
        Value::Array(a) if a.is_empty() => Err("the list is empty".into()),
        Value::Array(a) if a.iter().all(Value::is_number) => Ok(vec![one(v)?]),
        Value::Array(a) => a.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &[Param] = &[
        Param::new("n_steps", ParamType::Int, Some("50"), "steps"),
        Param::new("abs", ParamType::Bool, Some("false"), "absolute"),
        Param::new("rule", ParamType::Choice(&["a", "b"]), Some("a"), "rule"),
        Param::new("tolerance", ParamType::Float, None, "tolerance"),
        Param::new("baselines", ParamType::Baselines, Some("zeros"), "baselines"),
        Param::new("windows", ParamType::SizesPerInput, None, "windows"),
    ];

    #[test]
    fn defaults_fill_in_and_types_are_checked() {
        let a = Args::check("m", P, &json!({})).unwrap();
        assert_eq!(a.usize("n_steps").unwrap(), 50);
        assert!(!a.bool("abs").unwrap());
        assert_eq!(a.text("rule").unwrap(), "a");
        assert_eq!(a.opt_f64("tolerance").unwrap(), None);
        assert_eq!(a.baselines("baselines").unwrap(), vec![BaselineSpec::Zeros]);
        assert_eq!(a.batch().unwrap(), BatchOptions::default());
        let a = Args::check("m", P, &json!({"n_steps": "7", "baselines": ["blur:2", 0.5], "windows": [3, 4], "max_batch": 16})).unwrap();
        assert_eq!(a.usize("n_steps").unwrap(), 7);
        assert_eq!(a.baselines("baselines").unwrap(), vec![BaselineSpec::Blur(2.0), BaselineSpec::Scalar(0.5)]);
        assert_eq!(a.sizes("windows").unwrap(), Some(vec![Sizes(vec![3, 4])]));
        assert_eq!(a.batch().unwrap().max_batch, Some(16));
        let a = Args::check("m", P, &json!({"windows": ["3,4", [2]]})).unwrap();
        assert_eq!(a.sizes("windows").unwrap(), Some(vec![Sizes(vec![3, 4]), Sizes(vec![2])]));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_the_fix() {
        let e = Args::check("m", P, &json!({"steps": 3})).unwrap_err().to_string();
        assert!(e.contains("`steps`") && e.contains("n_steps") && e.contains("`m`"), "{e}");
        let e = Args::check("m", P, &json!({"n_steps": -1})).unwrap_err().to_string();
        assert!(e.contains("n_steps") && e.contains("integer"), "{e}");
        let e = Args::check("m", P, &json!({"rule": "c"})).unwrap_err().to_string();
        assert!(e.contains("one of a or b"), "{e}");
        let e = Args::check("m", P, &json!({"baselines": "pink"})).unwrap_err().to_string();
        assert!(e.contains("blur:SIGMA"), "{e}");
        let e = Args::check("m", P, &json!({"memory_budget_mb": 1u64 << 50})).unwrap().batch().unwrap_err().to_string();
        assert!(e.contains("memory_budget_mb"), "{e}");
        const R: &[Param] = &[Param::required("windows", ParamType::SizesPerInput, "window sizes")];
        let e = Args::check("occ", R, &json!({})).unwrap_err().to_string();
        assert!(e.contains("needs `windows`"), "{e}");
    }

    #[test]
    fn documented_defaults_parse_as_their_type() {
        for p in P.iter().chain(BATCH_PARAMS) {
            if let Some(v) = p.default_value() {
                p.ty.check(&v).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            }
        }
    }
}
