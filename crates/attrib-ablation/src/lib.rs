//! Perturbation attribution methods, built on the shared tensor layer.
//!
//! Each method perturbs the input (a feature group set to its baseline, a window occluded, a
//! group permuted across the batch), evaluates the model on every perturbed row, and attributes
//! the change of the target output `F_t(x) − F_t(x̃)` to the perturbed elements. All
//! perturbations of all rows form one expanded batch that [`attrib_tensor::Evaluator`] cuts into
//! chunks sized from the memory budget (or [`attrib_core::BatchOptions::max_batch`]); perturbed
//! rows are only materialised chunk by chunk.
//!
//! | method | perturbation | attribution of element `e` of row `i` |
//! |---|---|---|
//! | [`FeatureAblation`] | group `g` ← baseline | `F(x_i) − F(x_i with g(e) at baseline)` |
//! | [`Occlusion`] | window ← baseline | mean over the windows `w ∋ e` of `F(x_i) − F(x_i with w at baseline)` |
//! | [`FeaturePermutation`] | group `g` ← the values of row `π_g(i)` | `F(x_i) − F(x_i with g(e) taken from row π_g(i))` |
//!
//! Feature groups come from a [`FeatureMask`](attrib_core::FeatureMask): a label image
//! ([`segment::read_label_image`], `.npy` or `.png`), a regular grid
//! ([`FeatureMask::grid`](attrib_core::FeatureMask::grid)) or SLIC superpixels computed on the
//! input ([`segment::slic_mask`]).
#![warn(missing_docs)]

pub mod ablation;
mod coalition;
mod engine;
pub mod occlusion;
pub mod permutation;
pub mod segment;
pub mod shapley;

pub use ablation::{FeatureAblation, FeatureAblationParams};
pub use occlusion::{Occlusion, OcclusionParams};
pub use permutation::{FeaturePermutation, FeaturePermutationParams, Permutations};
pub use segment::{read_label_image, slic, slic_mask, SlicParams};
pub use shapley::{ExactShapley, ExactShapleyParams, Sampler, ShapleyValueSampling, ShapleyValueSamplingParams};
pub use shapley::{Distance, KernelShap, KernelShapParams, Lime, LimeParams, Surrogate};
pub use shapley::{Hierarchy, OwenMode, OwenValues, OwenValuesParams};
