//! Layer attribution on TorchScript models (Captum's `captum.attr.Layer*` methods): the
//! attributed tensor is a layer's output (or input), named by its submodule path as
//! `named_modules()` prints it (`layer4`, `layer3.1.conv2`), and the result is shaped like it.
//!
//! The layer is found in the model's TorchScript graph ([`attrib_core::layers`]); the methods
//! run the model as a function of the layer through the shared evaluator (chunks sized from the
//! memory budget, targets, gradients), so nothing here batches or selects targets itself.
//!
//! | method | attribution of row `i` (layer value `A`, target output `F_t`) |
//! |---|---|
//! | [`LayerActivation`] | `A_i` |
//! | [`LayerGradientXActivation`] | `∂F_t/∂A_i · A_i` (or the gradient alone) |
//! | [`LayerGradCam`] | `Σ_c mean_spatial(∂F_t/∂A_i[c]) · A_i[c]`, `[1, ...]` per row, optionally relu'd and upsampled |
//! | [`LayerIntegratedGradients`] | `(A_i − A'_i) · ∫₀¹ ∂F_t/∂A (A'_i + α (A_i − A'_i)) dα`, `A' = A(baseline input)`; token-id inputs at an embedding |
//! | [`LayerConductance`] | `Σ_k ∂F_t/∂A(x_k) · (A(x_{k+1}) − A(x_k))` along the input path `x_k` |
//! | [`NeuronGradient`] | `∂a/∂x_i`, `a = A_i[selector]` (input-shaped) |
//! | [`NeuronIntegratedGradients`] | IG of `a = A[selector]` with respect to the inputs (input-shaped) |
//! | [`GuidedGradCam`] | guided backprop `∂̃F_t/∂x_i` × Grad-CAM (relu'd) upsampled to the input (input-shaped) |
//! | [`ScoreCam`] | `relu(Σ_k w_k A_i[k])`, `w_k` the target's score of `x_i` masked by the normalised, upsampled map `A_i[k]` (forward only) |
//! | [`LayerDeepLift`] | `(A(x_i) − A(b_i)) · m_i`, `m` the gradient at the layer under DeepLIFT's rescale rules |
#![warn(missing_docs)]

mod access;
pub mod common;
pub mod guided_grad_cam;
pub mod layer_activation;
pub mod layer_deeplift;
pub mod layer_grad_cam;
pub mod layer_gradient_x_activation;
pub mod score_cam;
pub mod layer_integrated_gradients;
pub mod layer_conductance;
pub mod neuron_gradient;
pub mod neuron_integrated_gradients;

pub use common::LayerParams;
pub use guided_grad_cam::{GuidedGradCam, GuidedGradCamParams};
pub use layer_activation::{LayerActivation, LayerActivationParams};
pub use layer_deeplift::{LayerDeepLift, LayerDeepLiftParams};
pub use score_cam::{ScoreCam, ScoreCamParams, ScoreCamScore};
pub use layer_grad_cam::{Interpolate, LayerGradCam, LayerGradCamParams};
pub use layer_gradient_x_activation::{LayerGradientXActivation, LayerGradientXActivationParams};
pub use layer_integrated_gradients::{LayerIntegratedGradients, LayerIntegratedGradientsParams};
pub use layer_conductance::{LayerConductance, LayerConductanceParams};
pub use neuron_gradient::{parse_neuron_selector, NeuronGradient, NeuronGradientParams};
pub use neuron_integrated_gradients::{NeuronIntegratedGradients, NeuronIntegratedGradientsParams};
