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

pub mod exact;
pub mod sampling;

pub use exact::{ExactShapley, ExactShapleyParams, MAX_EXACT_GROUPS};
pub use sampling::{draw_permutations, Sampler, ShapleyValueSampling, ShapleyValueSamplingParams};
