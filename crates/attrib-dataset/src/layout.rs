//! The output folder of a data-set run (documented in `docs/datasets.md`):
//!
//! ```text
//! OUT/plan.json                      the pinned run plan (method, preprocessing, block size, rows per call...)
//! OUT/attributions/<item id>.npy     one attribution per item, [1, ...] like the item's model input
//! OUT/blocks/<block>.json            per-item records of a finished block (written after its .npy files)
//! OUT/blocks/<block>.safetensors     --format safetensors: the block's attributions, a tensor per item
//! OUT/summary.json                   summary of an unsharded run (or the merged summary of all shards)
//! OUT/shards/summary-K-of-N.json     summary of shard K of N
//! ```
//!
//! A block is complete when its record exists and so do all its items' `.npy` files; every file
//! is written to a temporary name and renamed (`attrib::fs`), so a killed run leaves complete
//! files or none.

use crate::source::Shard;
use attrib::{AttribError, Result};
use std::path::{Component, Path, PathBuf};

/// Paths inside a run's output folder.
#[derive(Debug, Clone)]
pub struct OutLayout {
    root: PathBuf,
}

impl OutLayout {
    /// The layout of `root`.
    pub fn new(root: impl Into<PathBuf>) -> OutLayout {
        OutLayout { root: root.into() }
    }

    /// The output folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `OUT/plan.json`.
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan.json")
    }

    /// The attribution of item `id`, relative to the output folder: `attributions/<id>.npy`.
    pub fn output_rel(id: &str) -> Result<String> {
        let p = Path::new(id);
        if p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(AttribError::Internal(format!("item id `{id}` is not a plain relative path")));
        }
        Ok(format!("attributions/{id}.npy"))
    }

    /// The attribution file of item `id`.
    pub fn output(&self, id: &str) -> Result<PathBuf> {
        Ok(self.root.join(OutLayout::output_rel(id)?))
    }

    /// The record of block `index`: `blocks/NNNNNN.json`.
    pub fn record(&self, index: usize) -> PathBuf {
        self.root.join("blocks").join(format!("{index:06}.json"))
    }

    /// The attributions of block `index` in `--format safetensors`, relative to the output
    /// folder: `blocks/NNNNNN.safetensors`.
    pub fn block_tensors_rel(index: usize) -> String {
        format!("blocks/{index:06}.safetensors")
    }

    /// The summary of `shard`: `summary.json` for the whole data set, else
    /// `shards/summary-K-of-N.json`.
    pub fn summary(&self, shard: Shard) -> PathBuf {
        if shard == Shard::ALL {
            self.root.join("summary.json")
        } else {
            self.root.join("shards").join(format!("summary-{}.json", shard.tag()))
        }
    }
}
