//! Gradient attribution methods, built on the shared tensor layer.
//!
//! | method | formula | multiplies by inputs | delta |
//! |---|---|---|---|
//! | [`Saliency`] | `∂F/∂x` (or its absolute value) | no | no |
//! | [`InputXGradient`] | `x · ∂F/∂x` | yes | no |
//! | [`IntegratedGradients`] | `(x − x') · ∫₀¹ ∇F(x' + α(x − x')) dα` (fixed or adaptive steps) | yes | yes |
//! | [`NoiseTunnel`] | mean / mean of squares / variance of any method over noisy copies | as wrapped | smoothgrad |
//! | [`GradientShap`] | `E[(x̃ − b) · ∇F(b + α(x̃ − b))]`, `b` from a distribution, `α ~ U(0,1)` | yes | yes (mean) |
//!
//! Sampling methods draw from attrib's own seeded generator ([`rng`]); they are deterministic
//! for a given seed (default 0).
#![warn(missing_docs)]

pub mod gradient_shap;
pub mod input_x_gradient;
pub mod integrated_gradients;
mod noise;
pub mod noise_tunnel;
pub mod path;
pub mod quadrature;
/// The seeded random stream, shared through the tensor layer (`attrib_tensor::rng`).
pub use attrib_tensor::rng;
pub mod saliency;

pub use gradient_shap::{GradientShap, GradientShapParams, ShapDraws};
pub use input_x_gradient::{InputXGradient, InputXGradientParams};
pub use integrated_gradients::{IntegratedGradients, IntegratedGradientsParams};
pub use noise_tunnel::{NoiseTunnel, NoiseTunnelParams, NoiseTunnelType};
pub use quadrature::Quadrature;
pub use saliency::{Saliency, SaliencyParams};
