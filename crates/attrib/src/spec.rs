//! Specs ([`attrib_core::spec`]: the text grammars of targets, baselines and masks) turned into
//! the values methods take, reading the files they name.
//!
//! ```
//! use attrib::spec::{load_baselines, load_target};
//! use attrib::{BaselineSpec, Target};
//! let target = load_target(&"3".parse()?)?;
//! assert_eq!(target, Target::Class(3));
//! let b = load_baselines(&["blur:2".parse::<BaselineSpec>()?], 1, false, 0)?;
//! # Ok::<(), attrib::AttribError>(())
//! ```

use attrib_ablation::{read_label_image, slic_mask, SlicParams};
use attrib_core::spec::{BaselineSpec, MaskSpec, TargetSpec};
use attrib_core::{AttribError, Baseline, Baselines, FeatureMask, Result, Target};
use attrib_tensor::convert::{array_to_tensor_i64, read_npy_i64, read_npy_tensor};
use tch::{Device, Tensor};

/// The [`Target`] a spec names; a `.npy` file must hold one class index per row (1-D).
pub fn load_target(spec: &TargetSpec) -> Result<Target> {
    match spec {
        TargetSpec::Target(t) => Ok(t.clone()),
        TargetSpec::File(path) => {
            let a = read_npy_i64(path)?;
            if a.ndim() != 1 {
                return Err(AttribError::TargetShape(format!(
                    "target file {} has shape {:?}; it must hold one class index per row (1-D)",
                    path.display(),
                    a.shape()
                )));
            }
            Ok(Target::PerSample(a.iter().copied().collect()))
        }
    }
}

/// Baselines for a model with `n_inputs` inputs from one spec (for all inputs) or one per input.
/// With `distribution`, a `.npy` file holds baseline samples `[S, ...]` (GradientSHAP);
/// otherwise a tensor that broadcasts to the input. `seed` draws `uniform:` baselines.
pub fn load_baselines(specs: &[BaselineSpec], n_inputs: usize, distribution: bool, seed: u64) -> Result<Baselines> {
    if specs.is_empty() {
        return Ok(Baselines::default());
    }
    if specs.len() != 1 && specs.len() != n_inputs {
        return Err(AttribError::param(
            "baselines",
            format!("{} baselines for {n_inputs} inputs; give one per input, or one for all", specs.len()),
        ));
    }
    let one = |s: &BaselineSpec| -> Result<Baseline> {
        Ok(match s {
            BaselineSpec::Zeros => Baseline::Zeros,
            BaselineSpec::Scalar(v) => Baseline::Scalar(*v),
            BaselineSpec::Blur(sigma) => Baseline::Blur(*sigma),
            BaselineSpec::Uniform { low, high } => Baseline::Uniform { low: *low, high: *high, seed },
            BaselineSpec::File(path) => {
                let t = read_npy_tensor(path, Device::Cpu)?;
                if distribution {
                    Baseline::Distribution(t)
                } else {
                    Baseline::Tensor(t)
                }
            }
        })
    };
    Ok(Baselines::per_input(specs.iter().map(one).collect::<Result<Vec<_>>>()?))
}

/// Feature masks, one per input, computed from `inputs` where the spec says so (SLIC) and read
/// from files otherwise. Group ids of `.npy` masks stay as given, so ids shared between inputs
/// stay shared.
pub fn load_masks(specs: &[MaskSpec], inputs: &[Tensor]) -> Result<Vec<FeatureMask>> {
    if specs.len() != inputs.len() {
        return Err(AttribError::param(
            "feature_mask",
            format!("{} feature masks for {} inputs; give one per input", specs.len(), inputs.len()),
        ));
    }
    specs.iter().zip(inputs).map(|(s, x)| load_mask(s, x)).collect()
}

/// The feature mask of one input.
pub fn load_mask(spec: &MaskSpec, input: &Tensor) -> Result<FeatureMask> {
    match spec {
        MaskSpec::Grid { height, width } => {
            let size = input.size();
            if size.len() < 3 {
                return Err(AttribError::param(
                    "feature_mask",
                    format!("`{spec}` needs an image input [N, (C,) H, W]; input has shape {size:?}"),
                ));
            }
            FeatureMask::grid(size[size.len() - 2], size[size.len() - 1], *height, *width)
        }
        MaskSpec::Slic(n) => slic_mask(input, &SlicParams::new(*n)),
        MaskSpec::LabelImage(path) => read_label_image(path),
        MaskSpec::File(path) => match read_npy_i64(path) {
            Ok(a) => FeatureMask::new(array_to_tensor_i64(&a, Device::Cpu)?),
            // Float masks are accepted when every value is a whole number.
            Err(_) => FeatureMask::new(read_npy_tensor(path, Device::Cpu)?),
        },
    }
}
