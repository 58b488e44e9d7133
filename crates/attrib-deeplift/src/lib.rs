//! Attribution methods that change the backward pass of the model's non-linearities: DeepLIFT
//! (Shrikumar et al. 2017) and DeepLIFT-SHAP over a distribution of baselines, guided
//! backpropagation (Springenberg et al. 2015), deconvolution (Zeiler & Fergus 2014), and
//! layer-wise relevance propagation with the epsilon rule (Bach et al. 2015).
//!
//! The rules are applied by rewriting the model's TorchScript graph
//! ([`attrib_core::rules`]): every use of every covered non-linearity gets its rule, including
//! functional activations and one module called twice, which Captum's module hooks miss. The
//! rewritten model then runs through the shared tensor layer like any other (chunks sized from
//! the memory budget, devices, targets).
//!
//! | method | attribution of row `i` | delta |
//! |---|---|---|
//! | [`DeepLift`] | `(x_i − b_i) · m_i`, `m` the gradient of `F_t` under the rescale rules, computed on `cat([x, b])` | `Σ attr_i − (F_t(x_i) − F_t(b_i))` |
//! | [`DeepLiftShap`] | the mean over baseline samples `b_s` of DeepLIFT against `b_s` | one per (row, sample) |
//! | [`GuidedBackprop`] | the gradient with ReLUs passing only positive gradients | — |
//! | [`Deconvolution`] | the gradient with ReLUs passing the positive part of the incoming gradient | — |
//! | [`Lrp`] | `x_i · G_i`, `G` the gradient of `F_t` under the epsilon rule (relevance) | `Σ attr_i − F_t(x_i)` |
#![warn(missing_docs)]

pub mod deconvolution;
pub mod deeplift;
pub mod deeplift_shap;
pub mod guided_backprop;
pub mod lrp;
mod pairs;

pub use deconvolution::{Deconvolution, DeconvolutionParams};
pub use deeplift::{DeepLift, DeepLiftParams};
pub use deeplift_shap::{DeepLiftShap, DeepLiftShapParams};
pub use guided_backprop::{GuidedBackprop, GuidedBackpropParams};
pub use lrp::{Lrp, LrpParams};
pub use pairs::paired_difference;

/// Captum's default threshold on `|Δx|` below which a rule falls back to the ordinary gradient.
pub const DEFAULT_EPS: f64 = 1e-10;
