//! Gradient attribution methods, built on the shared tensor layer.
//!
//! | method | formula | multiplies by inputs | delta |
//! |---|---|---|---|
//! | [`Saliency`] | `∂F/∂x` (or its absolute value) | no | no |
#![warn(missing_docs)]

pub mod saliency;

pub use saliency::{Saliency, SaliencyParams};
