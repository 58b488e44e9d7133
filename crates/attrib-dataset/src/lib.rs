//! Data-set-scale attribution runs (`attrib explain-dataset`).
//!
//! A data set — a folder of images of any sizes, a list file of image paths, or one large
//! `.npy` array read through a memory map — streams through any registry method:
//! - items are read and preprocessed one file at a time on a reader thread, one block ahead of
//!   the block being explained ([`read`]);
//! - blocks are fixed slices of the sorted items whose size, with the rows per model call, the
//!   memory layout and the thread count, is decided once from the tensor layer's memory budget
//!   and kept in the output folder ([`plan`]), so that every item's bits are the same whether
//!   the run is whole, sharded (`--shard K/N`), resumed after a kill, or spread over Ray tasks;
//! - every item gets its own `.npy` attribution (or each block one `safetensors` file,
//!   [`tensors`]), every finished block a record of its items'
//!   targets, predictions and convergence deltas, and the run a summary JSON ([`layout`],
//!   [`summary`]), all written to temporary names and renamed;
//! - a rerun skips the blocks that are complete ([`run`]).
//!
//! Layering: this crate sits on the `attrib` facade (registry, images, tensor layer, atomic
//! files) and below the command line, which only maps flags onto a [`RunConfig`]. The output
//! layout and the guarantees are documented in `docs/datasets.md`.
//!
//! ```no_run
//! use attrib::methods::Registry;
//! use attrib_dataset::{run, Preprocess, RunConfig, Shard};
//!
//! fn main() -> attrib::Result<()> {
//!     let cfg = RunConfig {
//!         model: "examples/data/digits_cnn.pt".into(),
//!         device: tch::Device::Cpu,
//!         spec: r#"{"method": "integrated-gradients", "n_steps": 32}"#.parse()?,
//!         target: attrib::Target::Argmax,
//!         preprocess: Preprocess::default(),
//!         input: "digits.npy".into(),
//!         out_dir: "out/ig".into(),
//!         shard: Shard::ALL,
//!         block_items: None,
//!         threads: None,
//!         plan_only: false,
//!         warm_up: true,
//!         format: attrib_dataset::OutputFormat::Npy,
//!         metrics: attrib_dataset::MetricSet::default(),
//!     };
//!     let report = run(&Registry::builtin(), &cfg, &mut |p| eprintln!("{}/{}", p.done, p.total))?;
//!     println!("{} items, {:.1} items/s", report.computed, report.summary["items_per_s"]);
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]

pub mod compare;
pub mod layout;
pub mod metrics;
pub mod pinned;
pub mod plan;
pub mod read;
pub mod run;
pub mod source;
pub mod summary;
pub mod tensors;

pub use layout::OutLayout;
pub use metrics::MetricSet;
pub use plan::Plan;
pub use read::Preprocess;
pub use run::{run, Progress, RunConfig, RunReport};
pub use source::{Shard, Source, SourceKind};
pub use tensors::OutputFormat;
