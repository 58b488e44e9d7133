//! Shapley values of feature groups (Shapley 1953) and their approximations.
//!
//! For a row `x`, a baseline `b` and feature groups `1..G`, the value of a coalition `S` of
//! groups is `v(S) = F_t(x with the groups outside S at the baseline)`, and the Shapley value of
//! group `g` is
//! `φ_g = Σ_{S ⊆ G∖{g}} |S|! (G − |S| − 1)! / G! · (v(S ∪ {g}) − v(S))`.
//! The values sum to `v(all) − v(∅) = F_t(x) − F_t(b)` (efficiency). Every method here evaluates
//! its coalitions of every row through the crate's coalition engine (`coalition_outputs`): all
//! coalitions of all rows are rows of one expanded batch, chunked by the shared evaluator.
//!
//! | method | coalitions per row | result |
//! |---|---|---|
//! | [`ExactShapley`] | all `2^G` | exact (G ≤ 20) |
//! | [`ShapleyValueSampling`] | `G + 1` per permutation (Castro et al. 2009), shared ones once | unbiased estimate, efficient exactly |
//! | [`KernelShap`] | `n_samples`: sizes stratified (whole sizes enumerated while the budget covers them, the rest drawn in complementary pairs), or drawn from the Shapley kernel; all when `n_samples ≥ 2^G` | constrained weighted least squares (Lundberg & Lee 2017), or (`regression = size-slopes`) the exact Shapley values of a fit whose slopes drift with the coalition size; efficient exactly, exact when all are enumerated |
//! | [`OwenValues`] | the coalitions of a hierarchy of groups: exact (`Σ_i Π_k 2^(m_k − 1)` differences), or `G + 1` per sampled consistent order | Owen values (Owen 1977); Shapley values for a flat hierarchy; efficient exactly |
//! | [`Lime`] | `n_samples` fair coin flips per group | coefficients of a weighted lasso/ridge/linear surrogate (Ribeiro et al. 2016), Captum's kernel |

pub mod exact;
mod kernel_design;
mod kernel_slopes;
pub mod kernel_shap;
pub mod lime;
mod hierarchy;
mod lasso;
pub mod owen;
pub mod sampling;
mod solve;

pub use exact::{ExactShapley, ExactShapleyParams, MAX_EXACT_GROUPS};
pub use kernel_design::{Allocation, StratumDraws};
pub use kernel_slopes::{KernelRegression, SLOPE_RIDGE};
pub use kernel_shap::{KernelShap, KernelShapParams, PAIRED_MIN_PER_GROUP};
pub use lime::{Distance, Lime, LimeParams};
pub use owen::{Hierarchy, OwenMode, OwenValues, OwenValuesParams};
pub use sampling::{draw_permutations, Sampler, ShapleyValueSampling, ShapleyValueSamplingParams};
pub use solve::Surrogate;
