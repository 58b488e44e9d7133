//! Grad-CAM (Selvaraju et al. 2017; Captum's `LayerGradCam`): the gradients of the target output
//! with respect to a layer's output, averaged over its spatial dimensions (every dimension after
//! the channels) into one weight per channel, times the layer's output, summed over the channels:
//! `cam[n, 0, ...] = Σ_c mean(∂F/∂A[n, c]) · A[n, c, ...]`, shaped `[N, 1, ...]`. A layer output
//! of two dimensions `[N, C]` keeps its gradients as weights (Captum's rule).
//!
//! Options as in Captum: `relu_attributions` (the positive part, as in the paper),
//! `attr_dim_summation = false` keeps the channels (`[N, C, ...]`). `interpolate` upsamples the
//! map to the spatial size of the (first) input, as Captum's `LayerAttribution.interpolate`
//! (`F.interpolate(attr, input_size, mode=...)`, `align_corners` left at PyTorch's default) —
//! an option, off by default, since Captum's `LayerGradCam` itself returns the layer-sized map.

use crate::access::layer_gradients;
use crate::common::{finish, layer_setters, LayerParams};
use attrib_core::{AttribError, Attribution, Attributions, Inputs, MethodInfo, Model, Result, Target, TorchResultExt};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::Tensor;

fn yes() -> bool {
    true
}

/// How [`LayerGradCam`] upsamples its map to the input's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolate {
    /// No upsampling: the map has the layer's size (Captum's `LayerGradCam`). The default.
    #[default]
    None,
    /// Nearest neighbour (Captum's `LayerAttribution.interpolate` default mode).
    Nearest,
    /// Bilinear (2-D maps), linear (1-D) or trilinear (3-D), `align_corners = false`.
    Bilinear,
}

/// Parameters of [`LayerGradCam`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerGradCamParams {
    /// The layer, and the chunking of the model calls.
    #[serde(flatten)]
    pub layer: LayerParams,
    /// Keep only the positive part of the map (default `false`, as Captum).
    #[serde(default)]
    pub relu_attributions: bool,
    /// Sum over the channels (default `true`, as Captum); `false` keeps them.
    #[serde(default = "yes")]
    pub attr_dim_summation: bool,
    /// Upsample the map to the input's spatial size (default: no).
    #[serde(default)]
    pub interpolate: Interpolate,
}

impl Default for LayerGradCamParams {
    fn default() -> Self {
        LayerGradCamParams { layer: LayerParams::default(), relu_attributions: false, attr_dim_summation: true, interpolate: Interpolate::None }
    }
}

layer_setters!(LayerGradCamParams);

impl LayerGradCamParams {
    /// Keep only the positive part of the map.
    pub fn relu_attributions(mut self, yes: bool) -> Self {
        self.relu_attributions = yes;
        self
    }
    /// Sum over the channels (default `true`).
    pub fn attr_dim_summation(mut self, yes: bool) -> Self {
        self.attr_dim_summation = yes;
        self
    }
    /// Upsample to the input's size.
    pub fn interpolate(mut self, mode: Interpolate) -> Self {
        self.interpolate = mode;
        self
    }
    /// Validate into a ready-to-use [`LayerGradCam`].
    pub fn check(self) -> Result<LayerGradCam> {
        Ok(LayerGradCam { params: LayerGradCamParams { layer: self.layer.check()?, ..self } })
    }
}

/// Grad-CAM (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct LayerGradCam {
    params: LayerGradCamParams,
}

impl LayerGradCam {
    /// Parameters with their defaults (the layer must be set).
    pub fn params() -> LayerGradCamParams {
        LayerGradCamParams::default()
    }
}

/// The Grad-CAM map of activations `a` and gradients `g` (both `[N, C, ...]`).
pub fn grad_cam(a: &Tensor, g: &Tensor, relu: bool, sum_channels: bool) -> Result<Tensor> {
    let weights = if g.dim() > 2 {
        let spatial: Vec<i64> = (2..g.dim() as i64).collect();
        g.f_mean_dim(spatial.as_slice(), true, None).ctx("channel weights")?
    } else {
        g.shallow_clone()
    };
    let scaled = weights.f_mul(a).ctx("weighting the channels")?;
    let cam = if sum_channels { scaled.f_sum_dim_intlist(1, true, None).ctx("summing the channels")? } else { scaled };
    if relu {
        cam.f_relu().ctx("relu of the map")
    } else {
        Ok(cam)
    }
}

/// Upsample `map` (`[N, C, ...]`) to `size` (its spatial dimensions) as `F.interpolate` does.
pub fn upsample(map: &Tensor, size: &[i64], mode: Interpolate) -> Result<Tensor> {
    let dims = map.dim().saturating_sub(2);
    if dims != size.len() || !(1..=3).contains(&dims) {
        return Err(AttribError::NotApplicable(format!(
            "upsampling a map of shape {:?} to the input's spatial size {size:?} needs 1 to 3 matching spatial dimensions",
            map.size()
        )));
    }
    let r = match (mode, dims) {
        (Interpolate::None, _) => Ok(map.shallow_clone()),
        (Interpolate::Nearest, 1) => map.f_upsample_nearest1d(size, None),
        (Interpolate::Nearest, 2) => map.f_upsample_nearest2d(size, None, None),
        (Interpolate::Nearest, _) => map.f_upsample_nearest3d(size, None, None, None),
        (Interpolate::Bilinear, 1) => map.f_upsample_linear1d(size, false, None),
        (Interpolate::Bilinear, 2) => map.f_upsample_bilinear2d(size, false, None, None),
        (Interpolate::Bilinear, _) => map.f_upsample_trilinear3d(size, false, None, None, None),
    };
    r.ctx("upsampling the map")
}

impl Attribution for LayerGradCam {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "layer-grad-cam", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let p = &self.params;
        let g = layer_gradients(model, &p.layer.spec(), p.layer.batch, inputs, target)?;
        let mut cam = grad_cam(&g.activations, &g.gradients, p.relu_attributions, p.attr_dim_summation)?;
        if p.interpolate != Interpolate::None {
            let x = inputs.tensors().first().ok_or_else(|| AttribError::NotApplicable("no input to upsample to".into()))?;
            cam = upsample(&cam, &x.size()[2.min(x.dim())..], p.interpolate)?;
        }
        finish(self, vec![cam], None, g.targets, start)
    }
}
