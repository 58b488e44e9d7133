//! Parameters every layer method takes, and what the methods share: the builder setters of the
//! common parameters ([`layer_setters!`], a macro so that they stay inherent methods of each
//! parameter type and callers need no trait in scope), the checks of those parameters, and the
//! steps that open and close a run (baselines and differences, the result with its metadata).

use attrib_core::{AttribError, Attribution, Attributions, Baselines, BatchOptions, Inputs, Layer, Metadata, Result, TorchResultExt};
use attrib_gradient::Quadrature;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::Tensor;

/// The layer a method attributes to, and the chunking of the model calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerParams {
    /// The layer's submodule path, as `named_modules()` prints it (`layer4`, `layer3.1.conv2`,
    /// `features.3`). Required.
    pub layer: String,
    /// Attribute to the layer's input instead of its output (Captum's
    /// `attribute_to_layer_input`, default `false`).
    #[serde(default)]
    pub attribute_to_layer_input: bool,
    /// Chunking of the model calls.
    #[serde(default)]
    pub batch: BatchOptions,
}

impl LayerParams {
    /// Validate: a layer name is required.
    pub fn check(self) -> Result<LayerParams> {
        if self.layer.trim().is_empty() {
            return Err(AttribError::param("layer", "name the layer to attribute to, by its submodule path as named_modules() prints it (e.g. layer4, layer3.1.conv2, features.3)"));
        }
        Ok(LayerParams { layer: self.layer, attribute_to_layer_input: self.attribute_to_layer_input, batch: self.batch.check()? })
    }

    /// The layer as attrib-core names it.
    pub fn spec(&self) -> Layer {
        Layer { name: self.layer.clone(), input: self.attribute_to_layer_input }
    }

    /// A method's parameters as it reports them: `method` (a JSON object of its own
    /// parameters) with `layer`, `attribute_to_layer_input` and `batch` added.
    pub(crate) fn describe(&self, method: serde_json::Value) -> serde_json::Value {
        let mut all = method;
        if let Some(map) = all.as_object_mut() {
            map.insert("layer".into(), self.layer.clone().into());
            map.insert("attribute_to_layer_input".into(), self.attribute_to_layer_input.into());
            map.insert("batch".into(), serde_json::to_value(self.batch).unwrap_or_default());
        }
        all
    }
}

/// Builder setters of a parameter type with a `layer: LayerParams` field: `layer`,
/// `attribute_to_layer_input` and `batch`, then those of the groups named after the type, each
/// setting the field of its name: `baselines` (`Baselines`), `path` (`n_steps: usize`,
/// `quadrature: Quadrature`), `multiply_by_inputs` (`bool`), `neuron_selector` (`Vec<i64>`).
///
/// `layer_setters!(LayerConductanceParams, baselines, path);`
macro_rules! layer_setters {
    ($t:ty $(, $group:ident)* $(,)?) => {
        impl $t {
            $crate::common::layer_setters!(@layer);
            $($crate::common::layer_setters!(@$group);)*
        }
    };
    (@layer) => {
        /// The layer's submodule path, as `named_modules()` prints it (`layer4`,
        /// `layer3.1.conv2`, `embedding`).
        pub fn layer(mut self, name: impl Into<String>) -> Self {
            self.layer.layer = name.into();
            self
        }
        /// Use the layer's input instead of its output (for a neuron method: the neuron is an
        /// element of the layer's input).
        pub fn attribute_to_layer_input(mut self, yes: bool) -> Self {
            self.layer.attribute_to_layer_input = yes;
            self
        }
        /// Set the batching options.
        pub fn batch(mut self, batch: attrib_core::BatchOptions) -> Self {
            self.layer.batch = batch;
            self
        }
    };
    (@baselines) => {
        /// Set the baselines, in the model's input space.
        pub fn baselines(mut self, baselines: impl Into<attrib_core::Baselines>) -> Self {
            self.baselines = baselines.into();
            self
        }
    };
    (@path) => {
        /// Set the number of steps (Captum's `n_steps`).
        pub fn n_steps(mut self, n: usize) -> Self {
            self.n_steps = n;
            self
        }
        /// Set the quadrature rule (Captum's `method`).
        pub fn quadrature(mut self, q: attrib_gradient::Quadrature) -> Self {
            self.quadrature = q;
            self
        }
    };
    (@multiply_by_inputs) => {
        /// Multiply by the change from the baseline (Captum's `multiply_by_inputs`, default
        /// `true`).
        pub fn multiply_by_inputs(mut self, yes: bool) -> Self {
            self.multiply_by_inputs = yes;
            self
        }
    };
    (@neuron_selector) => {
        /// The neuron's indices after the batch dimension.
        pub fn neuron_selector(mut self, indices: Vec<i64>) -> Self {
            self.neuron_selector = indices;
            self
        }
    };
}
pub(crate) use layer_setters;

/// `n_steps` must suit the rule.
pub(crate) fn check_steps(q: Quadrature, n: usize) -> Result<()> {
    if n < q.min_steps() {
        return Err(AttribError::param("n_steps", format!("{} needs at least {} step(s), got {n}", q.name(), q.min_steps())));
    }
    Ok(())
}

/// `method` takes one baseline per row: no distribution of samples.
pub(crate) fn check_one_baseline(baselines: &Baselines, method: &str) -> Result<()> {
    if baselines.is_distribution() {
        return Err(AttribError::param("baselines", format!("{method} takes one baseline per row, not a distribution of samples")));
    }
    Ok(())
}

/// The checks of a method integrating along a path: the steps suit the rule, one baseline per
/// row.
pub(crate) fn check_path(q: Quadrature, n_steps: usize, baselines: &Baselines, method: &str) -> Result<()> {
    check_steps(q, n_steps)?;
    check_one_baseline(baselines, method)
}

/// The baselines `b` of the prepared inputs `x` (with the stacked copies of `inputs`) and the
/// differences `x − b`.
pub(crate) fn baselines_and_differences(baselines: &Baselines, x: &[Tensor], inputs: &Inputs) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let base = baselines.resolve_copies(x, inputs.copies())?;
    let diff = x.iter().zip(&base).map(|(x, b)| x.f_sub(b).ctx("x - baseline")).collect::<Result<_>>()?;
    Ok((base, diff))
}

/// The result of a run of `method` begun at `start`: the values, the convergence delta, and the
/// metadata (its info and parameters, the resolved targets, the time taken).
pub(crate) fn finish<M: Attribution + ?Sized>(
    method: &M,
    values: Vec<Tensor>,
    convergence_delta: Option<Tensor>,
    targets: Option<Vec<i64>>,
    start: Instant,
) -> Result<Attributions> {
    let meta = Metadata::new(method.info(), method.params(), targets, start.elapsed());
    Ok(Attributions { values, convergence_delta, meta })
}
