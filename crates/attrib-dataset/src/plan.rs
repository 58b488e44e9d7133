//! The run plan: what an item's bits depend on besides the item, decided once per output folder
//! and kept in `OUT/plan.json`, so that a resumed run, every shard and every Ray task compute
//! each item exactly as an uninterrupted single run does.
//!
//! An item's attribution is computed in a batch with the other items of its *block* (and of its
//! shape): the block's composition, the rows per model call and the way chunks run all change
//! float32 rounding (and seeded methods draw their noise per batch). So the plan pins
//! - `block_items`: items per block; blocks are fixed slices of the sorted data set (block `b`
//!   holds items `b·B .. (b+1)·B`), so shards, resumption and skipping never change a block;
//! - `max_batch`: rows per model call (sized once from the memory budget by the tensor layer's
//!   evaluator, then a hard cap: no later probe can change it);
//! - `memory_format` and no frozen copy: no layout trial whose outcome could differ by process;
//! - `threads`: libtorch's intra-op threads (reductions may split by thread count).

use crate::source::Fnv;
use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::tensor::memory::{default_budget, rows_for_budget};
use attrib::{Evaluator, Expanded, ModelFile, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The format tag of `plan.json`.
pub const PLAN_FORMAT: &str = "attrib-dataset-plan/1";

/// Spec keys the plan decides (they are not part of the run's identity).
pub const BATCH_KEYS: &[&str] = &["max_batch", "memory_budget_mb", "memory_format", "inference_copy"];

/// A block holds at most this share of the memory budget (inputs, attributions, the method's
/// accumulators and the block read ahead: [`BLOCK_BYTES_FACTOR`] times the items' bytes).
pub const BLOCK_BUDGET_SHARE: u64 = 4;

/// Bytes a block item holds while it is explained, as a multiple of its input's bytes.
pub const BLOCK_BYTES_FACTOR: u64 = 8;

/// The pinned plan of a run (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// What the run computes: the method spec (without [`BATCH_KEYS`]), the target, the
    /// preprocessing, the model and the data set. A rerun into the folder must match it.
    pub identity: Value,
    /// Items per block.
    pub block_items: usize,
    /// Rows per model call.
    pub max_batch: usize,
    /// `contiguous` or `channels-last`.
    pub memory_format: String,
    /// libtorch intra-op threads.
    pub threads: usize,
    /// Items in the data set, and blocks.
    pub items: usize,
    /// Number of blocks.
    pub blocks: usize,
}

impl Plan {
    /// The method spec the plan runs: the user's spec with the batch keys pinned.
    pub fn pinned_spec(&self, spec: &MethodSpec) -> MethodSpec {
        let mut s = spec.clone();
        s.params.insert("max_batch".into(), json!(self.max_batch));
        s.params.insert("memory_format".into(), json!(self.memory_format));
        s.params.insert("inference_copy".into(), json!(false));
        s
    }

    /// Items `b·B .. (b+1)·B` (clipped) of block `b`.
    pub fn block_range(&self, b: usize) -> std::ops::Range<usize> {
        let start = b * self.block_items;
        start..(start + self.block_items).min(self.items)
    }
}

/// The spec without the keys the plan decides.
pub fn identity_spec(spec: &MethodSpec) -> MethodSpec {
    let mut s = spec.clone();
    for k in BATCH_KEYS {
        s.params.remove(*k);
    }
    s.label = None;
    s
}

/// A fingerprint of the model file: its name, size and an FNV-1a digest of its bytes (the bytes
/// the run's model is then made from, so the two cannot differ).
pub fn model_identity(file: &ModelFile) -> Value {
    let mut h = Fnv::new();
    h.update(file.bytes());
    json!({
        "file": file.path().file_name().map(|n| n.to_string_lossy().into_owned()),
        "bytes": file.bytes().len(),
        "digest": h.hex(),
    })
}

/// What decides the plan's numbers when nothing is pinned yet.
pub struct Calibration<'a> {
    /// The method registry.
    pub registry: &'a Registry,
    /// The method spec as given (its batch keys, if any, are honoured).
    pub spec: &'a MethodSpec,
    /// The model.
    pub model: &'a dyn Model,
    /// The target.
    pub target: &'a Target,
    /// The first item, `[1, ...]`.
    pub first: &'a Tensor,
    /// Items per block asked for (`None`: from the budget).
    pub block_items: Option<usize>,
    /// Threads asked for (`None`: libtorch's current setting).
    pub threads: Option<usize>,
}

/// Make a plan: rows per model call from the spec's `max_batch`, else sized by the tensor
/// layer's evaluator from the memory budget on copies of the first item (a probe of two rows,
/// or none for small rows, as every attribution call does); items per block from the request,
/// else as many as one model call has rows, within [`BLOCK_BUDGET_SHARE`] of the budget.
pub fn calibrate(c: &Calibration, identity: Value, items: usize) -> Result<Plan> {
    let args = c.registry.check(c.spec)?;
    let mut options = args.batch()?;
    let memory_format = match options.memory_format {
        MemoryFormat::ChannelsLast => "channels-last",
        _ => "contiguous",
    };
    options.memory_format = if memory_format == "channels-last" { MemoryFormat::ChannelsLast } else { MemoryFormat::Contiguous };
    options.inference_copy = false;
    let gradients = c.registry.entry(&c.spec.method)?.doc().flags.needs_gradients;
    let max_batch = match options.max_batch {
        Some(r) => r,
        None => {
            let eval = Evaluator::new(c.model, options)?;
            let inputs = Inputs::new(c.first.shallow_clone());
            let p = eval.prepare(&inputs, c.target)?;
            let batch = Expanded::repeat(&p.inputs, 3);
            if gradients {
                eval.gradients_each(&p, &batch, |_, _, _| Ok(()))?;
                eval.chunk_rows()
            } else {
                eval.forward_each(&p, &batch, |_, _| Ok(()))?;
                eval.forward_chunk_rows()
            }
            .ok_or_else(|| AttribError::Internal("the evaluator sized no chunk".into()))?
        }
    };
    let block_items = match c.block_items {
        Some(0) => return Err(AttribError::param("batch-items", "must be at least 1")),
        Some(b) => b,
        None => {
            let budget = options.memory_budget.unwrap_or_else(|| default_budget(c.model.device()));
            let item_bytes = (c.first.numel() as u64).saturating_mul(4).max(1);
            let cap = rows_for_budget(budget / BLOCK_BUDGET_SHARE, item_bytes.saturating_mul(BLOCK_BYTES_FACTOR));
            max_batch.min(cap).max(1)
        }
    };
    let threads = match c.threads {
        Some(0) => return Err(AttribError::param("threads", "must be at least 1")),
        Some(t) => t,
        None => usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1),
    };
    Ok(Plan {
        format: PLAN_FORMAT.into(),
        identity,
        block_items,
        max_batch,
        memory_format: memory_format.into(),
        threads,
        items,
        blocks: items.div_ceil(block_items),
    })
}

/// The plan kept in `path`, if any, checked against this run's `identity` and requests.
pub fn load(path: &Path, identity: &Value, block_items: Option<usize>, max_batch: Option<usize>, threads: Option<usize>) -> Result<Option<Plan>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AttribError::Io { action: "cannot read", path: path.to_path_buf(), reason: attrib::fs::io_reason(&e) }),
    };
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| AttribError::Io { action: "cannot read run plan", path: path.to_path_buf(), reason: format!("{e}; delete it to start the run afresh") })?;
    if plan.format != PLAN_FORMAT {
        return Err(AttribError::Io { action: "cannot read run plan", path: path.to_path_buf(), reason: format!("format `{}`, expected `{PLAN_FORMAT}`", plan.format) });
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    if &plan.identity != identity {
        let differs: Vec<String> = match (&plan.identity, identity) {
            (Value::Object(a), Value::Object(b)) => a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect(),
            _ => vec!["everything".into()],
        };
        return Err(AttribError::Io {
            action: "output folder holds another run:",
            path: folder.to_path_buf(),
            reason: format!("its plan.json differs in {}; use another --out-dir (or delete that folder to start afresh)", differs.join(", ")),
        });
    }
    for (name, asked, kept) in [("--batch-items", block_items, plan.block_items), ("--max-batch", max_batch, plan.max_batch), ("--threads", threads, plan.threads)] {
        if let Some(a) = asked {
            if a != kept {
                return Err(AttribError::Io {
                    action: "output folder holds another run:",
                    path: folder.to_path_buf(),
                    reason: format!("its plan pins {name} {kept}, this run asks for {a}: outputs would not match bit for bit; drop the flag or use another --out-dir"),
                });
            }
        }
    }
    Ok(Some(plan))
}

/// Keep `plan` in `path` unless another process kept one first (written to a temporary file,
/// synced, then linked into place, which fails when the file exists): returns the plan in force.
pub fn keep(path: &Path, plan: Plan, identity: &Value) -> Result<Plan> {
    let io = |e: std::io::Error| AttribError::Io { action: "cannot write", path: path.to_path_buf(), reason: attrib::fs::io_reason(&e) };
    let folder = path.parent().unwrap_or(Path::new("."));
    let text = serde_json::to_string_pretty(&plan).map_err(|e| AttribError::Internal(e.to_string()))?;
    // A temporary file no other process writes: created new (a process with the same id on
    // another host sharing the folder gets another name), so the file linked into place is
    // this plan, whole.
    let mut ours: Option<PathBuf> = None;
    let written = (|| {
        for n in 0..1000 {
            let tmp = folder.join(format!(".plan.json.{}-{n}{}", std::process::id(), attrib::fs::TEMP_SUFFIX));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(mut f) => {
                    ours = Some(tmp);
                    f.write_all(text.as_bytes())?;
                    f.write_all(b"\n")?;
                    return f.sync_all();
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "1000 temporary plan names are in use"))
    })();
    let tmp = match (written, ours) {
        (Ok(()), Some(tmp)) => tmp,
        (result, ours) => {
            if let Some(tmp) = ours {
                let _ = std::fs::remove_file(&tmp);
            }
            return Err(io(result.err().unwrap_or_else(|| std::io::Error::other("no temporary plan file"))));
        }
    };
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(plan),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load(path, identity, None, None, None)?.ok_or_else(|| AttribError::Internal("plan.json vanished".into()))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(block_items: usize) -> Plan {
        let identity = json!({"method": "saliency"});
        Plan { format: PLAN_FORMAT.into(), identity, block_items, max_batch: 8, memory_format: "contiguous".into(), threads: 1, items: 4, blocks: 1 }
    }

    /// A temporary plan file by the same name (another host's process with the same id, sharing
    /// the folder) is neither written to nor removed; the plan linked into place is this one.
    #[test]
    fn keep_writes_its_own_temporary_file() {
        let dir = attrib_scratch::scratch_dir().join("plan-keep");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let others = dir.join(format!(".plan.json.{}-0{}", std::process::id(), attrib::fs::TEMP_SUFFIX));
        std::fs::write(&others, b"half a plan").unwrap();
        let path = dir.join("plan.json");
        let kept = keep(&path, plan(2), &json!({"method": "saliency"})).unwrap();
        assert_eq!(kept.block_items, 2);
        assert_eq!(std::fs::read(&others).unwrap(), b"half a plan", "the other writer's file is untouched");
        let on_disk: Plan = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.block_items, 2);
        // A second keeper loses to the plan in place and gets it back.
        let second = keep(&path, plan(3), &json!({"method": "saliency"})).unwrap();
        assert_eq!(second.block_items, 2);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "plan.json and the other writer's file only: {left:?}");
    }
}
