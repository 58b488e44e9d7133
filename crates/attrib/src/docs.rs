//! The pages of the repository's `docs/` folder, as (hidden) documentation modules, so that
//! `cargo test --doc -p attrib` compiles their code blocks (and runs those not marked `no_run`):
//! the examples in the docs cannot drift from the API. Read the pages themselves in `docs/`.

#[doc = include_str!("../../../docs/choosing-a-method.md")]
pub mod choosing_a_method {}

#[doc = include_str!("../../../docs/core.md")]
pub mod core {}

#[doc = include_str!("../../../docs/gradient.md")]
pub mod gradient {}

#[doc = include_str!("../../../docs/perturbation.md")]
pub mod perturbation {}

#[doc = include_str!("../../../docs/deeplift.md")]
pub mod deeplift {}

#[doc = include_str!("../../../docs/layer.md")]
pub mod layer {}

#[doc = include_str!("../../../docs/text.md")]
pub mod text {}

#[doc = include_str!("../../../docs/cam.md")]
pub mod cam {}

#[doc = include_str!("../../../docs/shapley.md")]
pub mod shapley {}

#[doc = include_str!("../../../docs/visualization.md")]
pub mod visualization {}

#[doc = include_str!("../../../docs/compare.md")]
pub mod compare {}

#[doc = include_str!("../../../docs/performance.md")]
pub mod performance {}

#[doc = include_str!("../../../docs/robust.md")]
pub mod robust {}

#[doc = include_str!("../../../docs/registry.md")]
pub mod registry {}

/// (Its library example is compiled as a doctest of `attrib-dataset`, which sits above this crate.)
#[doc = include_str!("../../../docs/datasets.md")]
pub mod datasets {}

#[doc = include_str!("../../../README.md")]
pub mod readme {}
