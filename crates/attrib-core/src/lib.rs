//! Core types of attrib: the [`Attribution`] trait, [`Target`], [`Baseline`]s, [`FeatureMask`],
//! the [`Model`] abstraction, [`Inputs`] and the [`AttribError`] type.
//!
//! Method crates implement [`Attribution`]; the shared tensor layer (`attrib-tensor`) does the
//! batching and gradient plumbing they all need.
#![warn(missing_docs)]

pub mod attribution;
pub mod baseline;
pub mod error;
pub mod inputs;
pub mod layers;
pub mod mask;
pub mod model;
pub mod model_file;
pub mod numeric;
pub mod precision;
pub mod registry;
pub mod rules;
pub mod spec;
pub mod target;
pub mod tokens;

pub use attribution::{Attribution, Attributions, BatchOptions, MemoryFormat, MethodInfo, Metadata, PlannedRows};
pub use baseline::{Baseline, Baselines};
pub use error::{AttribError, Result, TorchResultExt};
pub use inputs::{ForwardArg, Inputs};
pub use layers::{Layer, LayerAccess, LayerModule};
pub use mask::FeatureMask;
pub use precision::{Autocast, Precision};
pub use model::{FnModel, FrozenModule, Model, ModuleModel, TorchScriptModel};
pub use model_file::ModelFile;
pub use rules::{BackwardRules, DeepLiftRules, RewrittenModule};
pub use registry::{Args, BuildContext, DefaultsContext, Family, InputKind, MethodDoc, MethodEntry, MethodFlags, MethodSpec, Param, ParamType};
pub use spec::{BaselineSpec, MaskSpec, Sizes, TargetSpec};
pub use target::{ResolvedTarget, Target};
