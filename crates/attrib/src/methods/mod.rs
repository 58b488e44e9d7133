//! The method registry: every method by name, with its description, family, flags and
//! parameters, built from a spec.
//!
//! `attrib explain`, `attrib compare`, `attrib methods` and the docs read this one list; a method
//! registered here appears in all of them. A crate outside attrib adds its own method by
//! implementing [`MethodEntry`] and registering it ([`Registry::register`]); the `attrib` binary's
//! entry point takes a registry (`attrib_cli::main_with`), so a binary of a few lines runs the
//! new method through `explain` and `compare` (see `examples/plugin-method`).
//!
//! ```
//! use attrib::methods::Registry;
//! use attrib::prelude::*;
//!
//! # fn main() -> attrib::Result<()> {
//! let registry = Registry::builtin();
//! assert!(registry.names().contains(&"integrated-gradients"));
//! let x = tch::Tensor::ones([2, 3], (tch::Kind::Float, tch::Device::Cpu));
//! let spec: MethodSpec = r#"{"method": "integrated-gradients", "n_steps": 64, "baselines": "zeros"}"#.parse()?;
//! let ig = registry.build(&spec, &[x.shallow_clone()])?;
//! let model = FnModel::new(|x: &tch::Tensor| x.sum_dim_intlist(1, false, tch::Kind::Float));
//! let attr = ig.attribute(&model, &Inputs::new(x), &Target::None)?;
//! assert_eq!(attr.single()?.size(), vec![2, 3]);
//! # Ok(()) }
//! ```

mod cam;
mod deeplift;
pub mod finite;
mod gradient;
mod layer;
mod perturbation;
mod regression;
mod shapley;

pub use attrib_core::registry::{
    Args, BuildContext, DefaultsContext, Family, InputKind, MethodDoc, MethodEntry, MethodFlags, MethodSpec, Param,
    ParamType, BATCH_PARAMS,
};
use attrib_core::{AttribError, Attribution, Result};
pub use finite::{FiniteChecked, ALLOW_NONFINITE_KEY};
use attrib_gradient::{NoiseTunnel, NoiseTunnelType};
use serde_json::{Map, Value};
use tch::Tensor;

/// The spec key that wraps any method in a noise tunnel: an object with [`NOISE_TUNNEL_PARAMS`].
pub const NOISE_TUNNEL_KEY: &str = "noise_tunnel";

/// Parameters of the noise tunnel that any spec may add under [`NOISE_TUNNEL_KEY`]
/// (Captum's `NoiseTunnel` defaults).
pub const NOISE_TUNNEL_PARAMS: &[Param] = &[
    Param::new("nt_type", ParamType::Choice(&["smoothgrad", "smoothgrad_sq", "vargrad"]), Some("smoothgrad"), "how the noisy copies' attributions combine"),
    Param::new("nt_samples", ParamType::Int, Some("5"), "noisy copies per row"),
    Param::new("stdevs", ParamType::Float, Some("1.0"), "standard deviation of the Gaussian noise (absolute)"),
    Param::new("seed", ParamType::Int, Some("0"), "seed of the noise"),
];

/// The spec key every method takes that returns NaN and inf attributions as they are instead
/// of failing ([`ALLOW_NONFINITE_KEY`], see [`finite`]).
pub const ALLOW_NONFINITE_PARAM: Param = Param::new(
    ALLOW_NONFINITE_KEY,
    ParamType::Bool,
    Some("false"),
    "return NaN/inf attributions and deltas as they are (by default they are an error naming the rows and the likely cause)",
);

/// The methods attrib knows, by name.
pub struct Registry {
    entries: Vec<Box<dyn MethodEntry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// A registry with no method.
    pub fn empty() -> Registry {
        Registry { entries: Vec::new() }
    }

    /// Every method of attrib's crates.
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        for e in gradient::entries().into_iter().chain(perturbation::entries()).chain(shapley::entries()).chain(regression::entries()).chain(deeplift::entries()).chain(layer::entries()).chain(cam::entries()) {
            r.entries.push(e);
        }
        r
    }

    /// Add a method; an error if its name is taken or not kebab case.
    pub fn register(&mut self, entry: impl MethodEntry + 'static) -> Result<()> {
        let name = entry.doc().name;
        let kebab = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !kebab {
            return Err(AttribError::param("method", format!("method name `{name}` must be kebab case (a-z, 0-9, -)")));
        }
        if self.get(name).is_some() {
            return Err(AttribError::param("method", format!("a method named `{name}` is already registered")));
        }
        self.entries.push(Box::new(entry));
        Ok(())
    }

    /// [`Registry::register`], by value.
    pub fn with(mut self, entry: impl MethodEntry + 'static) -> Result<Registry> {
        self.register(entry)?;
        Ok(self)
    }

    /// The names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.doc().name).collect()
    }

    /// The entry of `name`.
    pub fn get(&self, name: &str) -> Option<&dyn MethodEntry> {
        self.entries.iter().find(|e| e.doc().name == name).map(|e| e.as_ref())
    }

    /// Every entry, in registration order.
    pub fn entries(&self) -> impl Iterator<Item = &dyn MethodEntry> {
        self.entries.iter().map(|e| e.as_ref())
    }

    /// The entry of `name`, or an error listing the names.
    pub fn entry(&self, name: &str) -> Result<&dyn MethodEntry> {
        self.get(name).ok_or_else(|| {
            AttribError::param("method", format!("unknown method `{name}`; available: {}", self.names().join(", ")))
        })
    }

    /// Check a spec without building it (no file is read): the method exists, every key is one
    /// of its parameters and every value has the right type.
    pub fn check(&self, spec: &MethodSpec) -> Result<Args> {
        self.check_spec(spec, Args::check)
    }

    /// [`Registry::check`] without requiring the required parameters: the method exists and the
    /// keys and values given are right.
    pub fn check_given(&self, spec: &MethodSpec) -> Result<()> {
        self.check_spec(spec, Args::check_given).map(drop)
    }

    /// The checks of [`Registry::check`], with `own` checking the method's own parameters.
    fn check_spec(&self, spec: &MethodSpec, own: fn(&str, &[Param], &Value) -> Result<Args>) -> Result<Args> {
        let entry = self.entry(&spec.method)?;
        let (params, tunnel) = split_tunnel(&spec.params);
        if let Some(t) = &tunnel {
            Args::check("noise_tunnel", NOISE_TUNNEL_PARAMS, t)?;
        }
        allow_nonfinite(&spec.params)?;
        own(entry.doc().name, entry.doc().params, &Value::Object(params))
    }

    /// Build the method a spec describes, for explaining `inputs` (some parameters, such as SLIC
    /// masks and blurred baselines, are computed from them). The method is wrapped in
    /// [`FiniteChecked`] (NaN or inf in its results is an error) unless the spec sets
    /// `allow_nonfinite: true`.
    pub fn build(&self, spec: &MethodSpec, inputs: &[Tensor]) -> Result<Box<dyn Attribution>> {
        let method = self.build_raw(spec, inputs)?;
        if allow_nonfinite(&spec.params)? {
            return Ok(method);
        }
        let args = self.check(spec)?;
        let gradients = self.entry(&spec.method)?.doc().flags.needs_gradients;
        Ok(Box::new(FiniteChecked::new(method, args.batch()?, gradients)))
    }

    /// [`Registry::build`] without the check for NaN and inf.
    fn build_raw(&self, spec: &MethodSpec, inputs: &[Tensor]) -> Result<Box<dyn Attribution>> {
        let entry = self.entry(&spec.method)?;
        let args = self.check(spec)?;
        let ctx = BuildContext { inputs, batch: args.batch()? };
        let method = entry.build(&args, &ctx)?;
        let ctx = &ctx;
        match split_tunnel(&spec.params).1 {
            None => Ok(method),
            Some(t) => {
                let t = Args::check("noise_tunnel", NOISE_TUNNEL_PARAMS, &t)?;
                Ok(Box::new(
                    NoiseTunnel::params()
                        .nt_type(t.text("nt_type")?.parse::<NoiseTunnelType>()?)
                        .nt_samples(t.usize("nt_samples")?)
                        .stdev(t.f64("stdevs")?)
                        .seed(t.u64("seed")?)
                        .memory_budget(ctx.batch.memory_budget)
                        .check(method)?,
                ))
            }
        }
    }

    /// The specs `attrib compare` runs when no method list is given: every method whose
    /// [`MethodEntry::in_default_comparison`] says yes, with its [`MethodEntry::compare_settings`].
    pub fn compare_defaults(&self, ctx: &DefaultsContext) -> Result<Vec<MethodSpec>> {
        let mut out = Vec::new();
        for e in self.entries() {
            if e.in_default_comparison(ctx) {
                let params = e.compare_settings(ctx)?;
                out.push(MethodSpec { method: e.doc().name.to_string(), label: None, params });
            }
        }
        Ok(out)
    }
}

/// The spec's own parameters (without the keys every method takes: [`NOISE_TUNNEL_KEY`] and
/// [`ALLOW_NONFINITE_KEY`]), and its noise-tunnel object if any.
fn split_tunnel(params: &Map<String, Value>) -> (Map<String, Value>, Option<Value>) {
    let mut own = params.clone();
    let tunnel = own.remove(NOISE_TUNNEL_KEY).filter(|v| !v.is_null());
    own.remove(ALLOW_NONFINITE_KEY);
    (own, tunnel)
}

/// The spec's [`ALLOW_NONFINITE_KEY`] (false when absent); an error when it is not a boolean.
fn allow_nonfinite(params: &Map<String, Value>) -> Result<bool> {
    match params.get(ALLOW_NONFINITE_KEY).filter(|v| !v.is_null()) {
        None => Ok(false),
        Some(v) => {
            let given = Value::Object(Map::from_iter([(ALLOW_NONFINITE_KEY.to_string(), v.clone())]));
            Args::check("spec", &[ALLOW_NONFINITE_PARAM], &given)?.bool(ALLOW_NONFINITE_KEY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_described() {
        let r = Registry::builtin();
        let names = r.names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} twice");
            let doc = r.get(n).unwrap().doc();
            assert!(!doc.description.is_empty());
            for p in doc.params {
                assert!(!p.doc.is_empty(), "{n}.{}", p.name);
            }
        }
        let mut r2 = Registry::builtin();
        assert!(r2.register(gradient::Saliency).is_err());
    }
}
