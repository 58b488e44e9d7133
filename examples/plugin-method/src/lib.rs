//! A method that lives outside attrib's crates: **channel-max saliency**, the map Simonyan et al.
//! (2013) draw for colour images — per pixel, the largest absolute gradient over the channels —
//! spread back over the channels so that the result is shaped like the input.
//!
//! It is built on attrib's public tensor layer (the evaluator chunks the gradient passes to the
//! memory budget) and registered with [`register`]; `src/main.rs` is the whole `attrib-plus`
//! binary: attrib's command line with this method added.
//!
//! ```
//! use attrib::methods::Registry;
//! let mut registry = Registry::builtin();
//! attrib_plugin_example::register(&mut registry)?;
//! assert!(registry.names().contains(&"channel-max-saliency"));
//! # Ok::<(), attrib::AttribError>(())
//! ```

use attrib::methods::{Args, BuildContext, Family, MethodDoc, MethodEntry, MethodFlags, Param, ParamType, Registry};
use attrib::{Attribution, Attributions, BatchOptions, Evaluator, Expanded, Inputs, Metadata, MethodInfo, Model, Result, Target, TorchResultExt};
use std::time::Instant;

/// Channel-max saliency: `max_c |∂F/∂x_c|` per pixel (dimension 1 is the channel), repeated over
/// the channels; with `abs = false`, the signed gradient of largest magnitude.
#[derive(Debug, Clone, Copy)]
pub struct ChannelMaxSaliency {
    /// Take absolute values (Simonyan et al.'s map).
    pub abs: bool,
    /// Chunking.
    pub batch: BatchOptions,
}

impl Attribution for ChannelMaxSaliency {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "channel-max-saliency", multiplies_by_inputs: false, has_convergence_delta: false }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "abs": self.abs })
    }

    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let eval = Evaluator::new(model, self.batch)?;
        let p = eval.prepare(inputs, target)?;
        let g = eval.gradients(&p, &Expanded::identity(&p.inputs))?;
        let values = g
            .grads
            .iter()
            .map(|grad| -> Result<tch::Tensor> {
                if grad.dim() < 3 {
                    // No channel dimension: the plain (absolute) gradient.
                    return if self.abs { grad.f_abs().ctx("absolute gradient") } else { Ok(grad.shallow_clone()) };
                }
                let mag = grad.f_abs().ctx("absolute gradient")?;
                let idx = mag.f_argmax(1, true).ctx("largest channel")?;
                let picked = if self.abs { mag } else { grad.shallow_clone() };
                picked
                    .f_gather(1, &idx, false)
                    .and_then(|m| m.f_expand(grad.size(), false))
                    .and_then(|m| m.f_contiguous())
                    .ctx("spreading over the channels")
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = Metadata::new(self.info(), self.params(), p.target.indices().map(<[i64]>::to_vec), start.elapsed());
        Ok(Attributions { values, convergence_delta: None, meta })
    }
}

/// The registry entry: name, description, family, flags and the one parameter.
pub struct ChannelMaxSaliencyEntry;

const DOC: MethodDoc = MethodDoc {
    name: "channel-max-saliency",
    description: "largest absolute gradient over the channels of each pixel (Simonyan et al. 2013), repeated over the channels",
    family: Family::Gradient,
    flags: MethodFlags { needs_gradients: true, stochastic: false, multiplies_by_inputs: false, has_convergence_delta: false },
    params: &[Param::new("abs", ParamType::Bool, Some("true"), "absolute values (false: the signed gradient of largest magnitude)")],
};

impl MethodEntry for ChannelMaxSaliencyEntry {
    fn doc(&self) -> &MethodDoc {
        &DOC
    }

    fn build(&self, args: &Args, ctx: &BuildContext<'_>) -> Result<Box<dyn Attribution>> {
        Ok(Box::new(ChannelMaxSaliency { abs: args.bool("abs")?, batch: ctx.batch }))
    }
}

/// Add the method to a registry.
pub fn register(registry: &mut Registry) -> Result<()> {
    registry.register(ChannelMaxSaliencyEntry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn linear_model_gives_the_largest_weight_magnitude_per_pixel() {
        // F(x) = Σ w·x, so ∂F/∂x = w for every row; the map is max_c |w[c, h, w]|.
        let w = Tensor::from_slice(&[1.0f64, -4.0, 2.0, 0.5, -3.0, 1.0, 0.0, -0.25, 2.5, 0.0, -1.0, 0.75]).reshape([3, 2, 2]);
        let wm = w.shallow_clone();
        let model = attrib::FnModel::new(move |x: &Tensor| (x * &wm).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double));
        let x = Tensor::randn([4, 3, 2, 2], (Kind::Double, Device::Cpu));
        let m = ChannelMaxSaliency { abs: true, batch: BatchOptions::with_max_batch(3) };
        let a = m.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::None).unwrap();
        let expected = [3.0f64, 4.0, 2.0, 0.75];
        let got = a.single().unwrap();
        for row in 0..4 {
            for c in 0..3 {
                let v: Vec<f64> = Vec::try_from(got.get(row).get(c).reshape([-1])).unwrap();
                assert_eq!(v, expected, "row {row} channel {c}");
            }
        }
        let signed = ChannelMaxSaliency { abs: false, ..m }.attribute(&model, &Inputs::new(x), &Target::None).unwrap();
        let v: Vec<f64> = Vec::try_from(signed.single().unwrap().get(0).get(0).reshape([-1])).unwrap();
        assert_eq!(v, [-3.0, -4.0, 2.0, 0.75]);
    }
}
