//! Guided Grad-CAM (Selvaraju et al. 2017; Captum's `GuidedGradCam`): guided backpropagation
//! (the input gradient with every ReLU passing back only positive gradients) times the Grad-CAM
//! map of a layer, upsampled to the input's size:
//! `attr_i = guided_backprop_i · upsample(relu(Σ_c mean(∂F/∂A[c]) · A[c]))`.
//!
//! As in Captum: the Grad-CAM map is taken with `relu_attributions` and summed over the layer's
//! channels (`[N, 1, ...]`), then upsampled to the spatial size of each input (`interpolate_mode`
//! nearest by default, as Captum; bilinear as in the paper) and broadcast over the input's
//! channels. The Grad-CAM gradient is the model's ordinary one; the guided backprop gradient is
//! taken on the graph with its ReLU rules rewritten ([`attrib_core::rules`], so a ReLU module
//! called twice and functional ReLUs get the rule too). Where Captum returns an empty tensor
//! (with a warning) for an input whose spatial dimensions the map cannot be upsampled to, attrib
//! returns an error naming the input and the shapes.
//!
//! Guided Grad-CAM composes a layer method (attrib-layer) with a backward-rule method
//! (attrib-deeplift), so it lives in the layer crate, which depends on attrib-deeplift.

use crate::common::{finish, layer_setters, LayerParams};
use crate::layer_grad_cam::{upsample, Interpolate, LayerGradCam};
use attrib_core::{AttribError, Attribution, Attributions, BackwardRules, Inputs, MethodInfo, Model, Result, Target, TorchResultExt};
use attrib_deeplift::GuidedBackprop;
use serde::{Deserialize, Serialize};
use std::time::Instant;

fn nearest() -> Interpolate {
    Interpolate::Nearest
}

/// Parameters of [`GuidedGradCam`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuidedGradCamParams {
    /// The layer (usually the last convolutional one), and the chunking of the model calls.
    #[serde(flatten)]
    pub layer: LayerParams,
    /// How the Grad-CAM map is upsampled to the input's size (Captum's `interpolate_mode`,
    /// default nearest); [`Interpolate::None`] is not accepted.
    #[serde(default = "nearest")]
    pub interpolate_mode: Interpolate,
}

impl Default for GuidedGradCamParams {
    fn default() -> Self {
        GuidedGradCamParams { layer: LayerParams::default(), interpolate_mode: Interpolate::Nearest }
    }
}

layer_setters!(GuidedGradCamParams);

impl GuidedGradCamParams {
    /// How the map is upsampled to the input's size.
    pub fn interpolate_mode(mut self, mode: Interpolate) -> Self {
        self.interpolate_mode = mode;
        self
    }
    /// Validate into a ready-to-use [`GuidedGradCam`].
    pub fn check(self) -> Result<GuidedGradCam> {
        if self.interpolate_mode == Interpolate::None {
            return Err(AttribError::param("interpolate_mode", "Guided Grad-CAM multiplies the map with input-sized gradients, so it must be upsampled: choose nearest (Captum's default) or bilinear"));
        }
        Ok(GuidedGradCam { params: GuidedGradCamParams { layer: self.layer.check()?, ..self } })
    }
}

/// Guided Grad-CAM (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct GuidedGradCam {
    params: GuidedGradCamParams,
}

impl GuidedGradCam {
    /// Parameters with their defaults (the layer must be set), to adjust and
    /// [`GuidedGradCamParams::check`].
    pub fn params() -> GuidedGradCamParams {
        GuidedGradCamParams::default()
    }
}

impl Attribution for GuidedGradCam {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "guided-grad-cam", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }
    fn model_to_warm_up(&self, model: &dyn Model) -> Result<Option<std::sync::Arc<dyn Model + Send + Sync>>> {
        model.with_rules(BackwardRules::GuidedBackprop).map(Some)
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let p = &self.params;
        let cam = LayerGradCam::params()
            .layer(p.layer.layer.clone())
            .attribute_to_layer_input(p.layer.attribute_to_layer_input)
            .relu_attributions(true)
            .batch(p.layer.batch)
            .check()?
            .attribute(model, inputs, target)?;
        let targets = cam.meta.targets.clone();
        // The targets Grad-CAM resolved (argmax: one forward pass fewer) serve guided backprop.
        let gb_target = match (target, &targets) {
            (Target::Argmax, Some(t)) => Target::PerSample(t.clone()),
            _ => target.clone(),
        };
        let map = cam.single()?;
        let gb = GuidedBackprop::params().batch(p.layer.batch).check()?.attribute(model, inputs, &gb_target)?;
        let values = gb
            .values
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let size = &g.size()[2.min(g.dim())..];
                let up = upsample(map, size, p.interpolate_mode).map_err(|_| {
                    AttribError::NotApplicable(format!(
                        "Guided Grad-CAM cannot upsample the layer's map {:?} to input {i} of shape {:?}: the input needs the layer's number of spatial dimensions (Captum returns an empty tensor there)",
                        map.size(),
                        g.size()
                    ))
                })?;
                g.f_mul(&up.f_to_device(g.device()).ctx("moving the map")?).ctx("guided backprop × Grad-CAM")
            })
            .collect::<Result<Vec<_>>>()?;
        finish(self, values, None, targets, start)
    }
}
