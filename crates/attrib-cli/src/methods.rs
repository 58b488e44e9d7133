//! Command-line flags turned into method specs for the registry: the CLI only maps flags to
//! spec keys; the registry checks and builds.

use attrib::methods::{MethodEntry, Registry, ALLOW_NONFINITE_KEY, BATCH_PARAMS, NOISE_TUNNEL_KEY};
use attrib::{AttribError, MethodSpec, Result};
use serde_json::{json, Map, Value};

/// Method flags of `attrib explain` and the spec key each sets.
pub const FLAGS: &[(&str, &str)] = &[
    ("--abs", "abs"),
    ("--baseline", "baselines"),
    ("--seed", "seed"),
    ("--feature-mask", "feature_mask"),
    ("--window", "sliding_window_shapes"),
    ("--strides", "strides"),
    ("--steps", "n_steps"),
    ("--quadrature", "quadrature"),
    ("--tolerance", "tolerance"),
    ("--max-steps", "max_steps"),
    ("--samples", "n_samples"),
    ("--stdevs", "stdevs"),
    ("--noise-tunnel", "nt_type"),
    ("--nt-samples", "nt_samples"),
    ("--layer", "layer"),
    ("--attribute-to-layer-input", "attribute_to_layer_input"),
    ("--neuron", "neuron_selector"),
];

/// The flag that sets spec key `key`, if one does.
pub fn flag_of(key: &str) -> Option<&'static str> {
    FLAGS.iter().find(|(_, k)| *k == key).map(|(f, _)| *f)
}

/// The batching flags shared by `attrib explain` and `attrib compare`; they apply to every
/// method.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Largest number of rows per model call, a hard cap (default: chosen from the memory budget).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Memory budget of the chunked work, in MiB (default: half of the available memory).
    #[arg(long = "memory-budget-mb")]
    pub memory_budget_mb: Option<u64>,
    /// Memory layout of 4-D/5-D inputs for the model: auto (time both on the CPU, keep the
    /// faster), contiguous, or channels-last.
    #[arg(long = "memory-format")]
    pub memory_format: Option<String>,
    /// Never run forward passes through a frozen, inference-optimised copy of the TorchScript
    /// model (by default it is used where timing shows it faster).
    #[arg(long = "no-freeze")]
    pub no_freeze: bool,
    /// Precision of the model's forward passes: fp32 (default), or bf16/fp16 under autocast
    /// (faster on hardware with bfloat16/float16 units; attributions stay float32 and the
    /// convergence delta shows the cost in accuracy).
    #[arg(long)]
    pub precision: Option<String>,
    /// Write attributions even when they hold NaN or inf (by default that is an error naming
    /// the rows and the likely cause: a NaN model output, or a NaN gradient).
    #[arg(long = "allow-nonfinite")]
    pub allow_nonfinite: bool,
}

impl BatchArgs {
    /// The spec keys these flags set (only those given).
    pub fn spec_keys(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(v) = self.max_batch {
            m.insert("max_batch".into(), json!(v));
        }
        if let Some(v) = self.memory_budget_mb {
            m.insert("memory_budget_mb".into(), json!(v));
        }
        if let Some(v) = &self.memory_format {
            m.insert("memory_format".into(), json!(v));
        }
        if self.no_freeze {
            m.insert("inference_copy".into(), json!(false));
        }
        if let Some(v) = &self.precision {
            m.insert("precision".into(), json!(v));
        }
        if self.allow_nonfinite {
            m.insert(ALLOW_NONFINITE_KEY.into(), json!(true));
        }
        m
    }

    /// The [`attrib::BatchOptions`] these flags ask for.
    pub fn options(&self) -> Result<attrib::BatchOptions> {
        let mut keys = self.spec_keys();
        keys.remove(ALLOW_NONFINITE_KEY);
        attrib::Args::check("batch", &[], &Value::Object(keys))?.batch()
    }
}

/// A number flag as a spec value: NaN and infinity stay text (`"NaN"`, `"inf"`), so that the
/// registry rejects them by name (JSON has no NaN: `json!(f64::NAN)` would be `null`, which a
/// spec reads as "unset").
pub fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::String(v.to_string())
    }
}

/// Method flags as given on the command line (unset flags are absent, so that a method's own
/// defaults apply and a flag it does not take is an error).
#[derive(Debug, Clone, Default)]
pub struct MethodFlagValues {
    /// `(spec key, value)` in the order of [`FLAGS`].
    pub values: Vec<(&'static str, Value)>,
    /// `--noise-tunnel TYPE`.
    pub noise_tunnel: Option<String>,
    /// `--param KEY=VALUE` pairs.
    pub params: Vec<String>,
}

/// One `--param KEY=VALUE`: the value is read as JSON when it parses (numbers, booleans, arrays),
/// else as text.
pub(crate) fn parse_param(p: &str) -> Result<(String, Value)> {
    let (k, v) = p.split_once('=').ok_or_else(|| {
        AttribError::param("param", format!("`{p}`: write a parameter as KEY=VALUE, e.g. `--param n_steps=64`"))
    })?;
    let v = v.trim();
    let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.trim().to_string(), value))
}

/// The spec of `method` from the flags: each given flag sets its key; `--noise-tunnel` and
/// `--nt-samples` (and `--stdevs` with them) go to the method when it has those parameters
/// (smoothgrad), else into a noise tunnel around it.
pub fn spec_from_flags(registry: &Registry, method: &str, flags: &MethodFlagValues, batch: &BatchArgs) -> Result<MethodSpec> {
    let entry = registry.entry(method)?;
    let has = |key: &str| entry.doc().params.iter().any(|p| p.name == key);
    let wrap = flags.noise_tunnel.is_some() && !has("nt_type");
    let mut params = Map::new();
    let mut tunnel = Map::new();
    if let Some(t) = &flags.noise_tunnel {
        if wrap {
            tunnel.insert("nt_type".into(), json!(t));
        } else {
            params.insert("nt_type".into(), json!(t));
        }
    }
    for (key, value) in &flags.values {
        let to_tunnel = wrap && matches!(*key, "nt_samples" | "stdevs" | "seed") && !(*key == "seed" && has("seed"));
        if to_tunnel {
            tunnel.insert(key.to_string(), value.clone());
        } else {
            params.insert(key.to_string(), value.clone());
        }
    }
    for p in &flags.params {
        let (k, v) = parse_param(p)?;
        params.insert(k, v);
    }
    if !tunnel.is_empty() {
        params.insert(NOISE_TUNNEL_KEY.into(), Value::Object(tunnel));
    }
    params.extend(batch.spec_keys());
    let spec = MethodSpec { method: method.to_string(), label: None, params };
    registry.check(&spec).map_err(|e| flag_error(e, entry))?;
    Ok(spec)
}

/// A parameter the method does not take, said in flags: which flag does not apply, and which do.
pub fn flag_error(e: AttribError, entry: &dyn MethodEntry) -> AttribError {
    match e {
        AttribError::UnknownParameter { method, name, .. } => {
            let given = flag_of(&name).map(str::to_string).unwrap_or_else(|| format!("--param {name}=..."));
            AttribError::NotApplicable(format!("{given} does not apply to `{method}`; {}", applicable(entry)))
        }
        AttribError::InvalidParameter { name, reason } => match flag_of(name) {
            Some(flag) => AttribError::InvalidParameter { name, reason: format!("{reason} (flag {flag})") },
            None => AttribError::InvalidParameter { name, reason },
        },
        other => other,
    }
}

/// `its flags: --steps, --baseline, ...` for a method.
pub fn applicable(entry: &dyn MethodEntry) -> String {
    let doc = entry.doc();
    let flags: Vec<String> = doc
        .params
        .iter()
        .map(|p| match flag_of(p.name) {
            Some(f) => f.to_string(),
            None => format!("--param {}=...", p.name),
        })
        .collect();
    let own = if flags.is_empty() { "it takes no method flags".to_string() } else { format!("its flags: {}", flags.join(", ")) };
    format!(
        "{own} (every method also takes --noise-tunnel, --allow-nonfinite and the batching flags {}); see `attrib methods {}`",
        BATCH_PARAMS.iter().map(|p| format!("--{}", p.name.replace('_', "-"))).collect::<Vec<_>>().join(", ").replace("--inference-copy", "--no-freeze"),
        doc.name
    )
}
