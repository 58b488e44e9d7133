//! A data-set run: plan, stream the shard's unfinished blocks, explain each block, write each
//! item's attribution and the block's record, then the shard's summary.

use crate::layout::OutLayout;
use crate::metrics::{self, MetricSet};
use crate::pinned::{self, SpecFiles};
use crate::plan::{self, Calibration, Plan};
use crate::read::{Preprocess, ReadBlock, Reader};
use crate::source::{Shard, Source};
use crate::summary::{self, ItemRecord};
use crate::tensors::{self, OutputFormat};
use attrib::convert::{stage_npy_tensor, tensor_to_vec_f64};
use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::{Evaluator, Expanded, ModelFile, Result, TorchResultExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Device, Tensor};

/// Environment variable of the kill test: after this many blocks the process exits at once with
/// status 137 (as after `kill -9`: no destructor, no further write) in the middle of writing
/// the next block, leaving part of that block written and no record for it.
pub const TEST_KILL_ENV: &str = "ATTRIB_DATASET_TEST_KILL_AFTER_BLOCKS";

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// TorchScript model file.
    pub model: PathBuf,
    /// Device to run on.
    pub device: Device,
    /// The method's spec (batch keys other than those the plan pins are honoured).
    pub spec: MethodSpec,
    /// The explained output: a class, the prediction, or a scalar-output model's output.
    pub target: Target,
    /// Image preprocessing.
    pub preprocess: Preprocess,
    /// The data set: a folder, a list file or a `.npy` array.
    pub input: PathBuf,
    /// Output folder.
    pub out_dir: PathBuf,
    /// The shard of the data set to run.
    pub shard: Shard,
    /// Items per block (`None`: the plan's, or from the budget for a new plan).
    pub block_items: Option<usize>,
    /// libtorch threads (`None`: the plan's, or the current setting for a new plan).
    pub threads: Option<usize>,
    /// Only make the plan (`OUT/plan.json`), explain nothing.
    pub plan_only: bool,
    /// Warm the model up on the first item before timing.
    pub warm_up: bool,
    /// One `.npy` per item, or one `safetensors` file per block.
    pub format: OutputFormat,
    /// Metrics per item ([`MetricSet`]; empty: none): deletion/insertion curves
    /// (`attrib::metrics::deletion_insertion`, scored on softmax probabilities, whole pixels for
    /// images) and the robustness metrics of [`crate::metrics`].
    pub metrics: MetricSet,
}

/// Where a run stands, for progress displays.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Items explained so far in this run.
    pub done: usize,
    /// Items this run has to explain (the shard's items less those already complete).
    pub total: usize,
    /// Items of the shard skipped as complete.
    pub skipped: usize,
    /// Time since the first block was started.
    pub elapsed: Duration,
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// The plan in force.
    pub plan: Plan,
    /// The summary written (empty for `plan_only`).
    pub summary: Value,
    /// Where it was written (`None` for `plan_only`).
    pub summary_path: Option<PathBuf>,
    /// Items explained by this run.
    pub computed: usize,
    /// Items of the shard skipped as complete.
    pub skipped: usize,
}

/// Everything a block needs, fixed for the run.
struct Job<'a> {
    registry: &'a Registry,
    spec: MethodSpec,
    model: &'a TorchScriptModel,
    target: &'a Target,
    options: BatchOptions,
    ids: &'a [String],
    layout: &'a OutLayout,
    kill_after: Option<usize>,
    format: OutputFormat,
    metrics: MetricSet,
    /// Checked again before every block: the method is built per block.
    spec_files: SpecFiles,
}

fn target_json(t: &Target) -> Result<Value> {
    match t {
        Target::Class(c) => Ok(json!(c)),
        Target::Argmax => Ok(json!("argmax")),
        Target::None => Ok(json!("none")),
        _ => Err(AttribError::param("target", "a data-set run takes a class index, `argmax` or `none` (one target file per row does not follow the items)")),
    }
}

fn preprocess_json(p: &Preprocess) -> Value {
    json!({
        "channels": p.geometry.channels,
        "resize": p.geometry.resize.map(|r| format!("{r:?}")),
        "center_crop": p.geometry.center_crop,
        "normalize": p.normalize.as_ref().map(|n| json!({"mean": n.mean, "std": n.std})),
    })
}

/// The identity of a run (see [`Plan::identity`]).
fn identity(cfg: &RunConfig, source: &Source, model: &ModelFile, spec_files: &SpecFiles) -> Result<Value> {
    let mut identity = json!({
        "method": plan::identity_spec(&cfg.spec),
        "target": target_json(&cfg.target)?,
        "preprocess": preprocess_json(&cfg.preprocess),
        "model": plan::model_identity(model),
        "data": {
            "kind": format!("{:?}", source.kind).to_lowercase(),
            "items": source.len(),
            "digest": source.digest(),
            "contents": pinned::data_contents(source)?,
        },
        "output_format": cfg.format.name(),
        "metrics": cfg.metrics.identity(),
        // CPU and CUDA kernels round differently: a run is not resumed or sharded across them.
        "device": if cfg.device.is_cuda() { "cuda" } else { "cpu" },
    });
    // Only when the spec names files, so that other runs' identities keep their keys.
    if !spec_files.is_empty() {
        identity["spec_files"] = spec_files.identity();
    }
    Ok(identity)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| AttribError::Io { action: "cannot create folder", path: dir.to_path_buf(), reason: attrib::fs::io_reason(&e) })
}

/// Run `cfg` with the methods of `registry`; `progress` hears after every block.
pub fn run(registry: &Registry, cfg: &RunConfig, progress: &mut dyn FnMut(&Progress)) -> Result<RunReport> {
    let wall = Instant::now();
    // Everything that needs no model first: a wrong flag fails before any loading.
    registry.check(&cfg.spec)?;
    target_json(&cfg.target)?;
    let source = Source::open(&cfg.input)?;
    let layout = OutLayout::new(&cfg.out_dir);
    if cfg.out_dir.is_file() {
        return Err(AttribError::Io { action: "cannot write", path: cfg.out_dir.clone(), reason: "--out-dir is a file; give a folder".into() });
    }
    create_dir(&cfg.out_dir)?;
    let read_clock = Instant::now();
    // Read once: the run's identity digests the same bytes the model is made from.
    let model_file = ModelFile::read(&cfg.model)?;
    let read_s = read_clock.elapsed().as_secs_f64();
    let spec_files = SpecFiles::of(&cfg.spec)?;
    let identity = identity(cfg, &source, &model_file, &spec_files)?;
    // A folder that holds another run fails here, before the model is loaded.
    let asked_rows = registry.check(&cfg.spec)?.batch()?.max_batch;
    let kept = plan::load(&layout.plan(), &identity, cfg.block_items, asked_rows, cfg.threads)?;
    let reader = Reader::new(source.clone(), cfg.preprocess.clone())?;
    let clock = Instant::now();
    let model = TorchScriptModel::from_file(model_file, cfg.device)?;
    let load_s = read_s + clock.elapsed().as_secs_f64();
    let plan = match kept {
        Some(p) => p,
        None => new_plan(registry, cfg, &layout, &model, &reader, identity)?,
    };
    if usize::try_from(tch::get_num_threads()).ok() != Some(plan.threads) {
        tch::set_num_threads(plan.threads as i32);
    }
    if cfg.plan_only {
        return Ok(RunReport { plan, summary: Value::Null, summary_path: None, computed: 0, skipped: 0 });
    }
    let spec = plan.pinned_spec(&cfg.spec);
    let options = registry.check(&spec)?.batch()?;
    let shard_blocks = cfg.shard.blocks(plan.blocks);
    let todo: Vec<(usize, std::ops::Range<usize>)> =
        shard_blocks.clone().filter(|&b| !block_complete(&layout, &plan, &source.ids, b, cfg.format)).map(|b| (b, plan.block_range(b))).collect();
    let shard_items: usize = shard_blocks.clone().map(|b| plan.block_range(b).len()).sum();
    let total: usize = todo.iter().map(|(_, r)| r.len()).sum();
    let skipped = shard_items - total;
    let warm_up_s = match (cfg.warm_up, todo.first()) {
        (true, Some((_, r))) => warm_up(registry, &spec, &model, &options, &reader.item(r.start)?)?,
        _ => 0.0,
    };
    let kill_after = std::env::var(TEST_KILL_ENV).ok().and_then(|v| v.parse().ok());
    let job = Job { registry, spec: spec.clone(), model: &model, target: &cfg.target, options, ids: &source.ids, layout: &layout, kill_after, format: cfg.format, metrics: cfg.metrics.clone(), spec_files };
    let started = Instant::now();
    let mut done = 0usize;
    let mut method_info: Option<(String, Value)> = None;
    for (n, block) in reader.stream(todo)?.enumerate() {
        let block = block?;
        job.spec_files.check()?;
        let count = block.items.len();
        let info = explain_block(&job, block, n)?;
        method_info.get_or_insert(info);
        done += count;
        progress(&Progress { done, total, skipped, elapsed: started.elapsed() });
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let records = summary::read_records(&layout, shard_blocks.clone())?;
    let info = match method_info {
        Some(i) => i,
        // Nothing left to explain: the method as built for the shard's first item.
        None => match shard_blocks.clone().next() {
            Some(b) => {
                let m = registry.build(&spec, &[reader_item(cfg, &source, plan.block_range(b).start)?])?;
                (m.info().name.to_string(), m.params())
            }
            None => (spec.method.clone(), Value::Null),
        },
    };
    let counts = Counts { items: shard_items, computed: done, skipped, load_s, warm_up_s, elapsed_s, wall_s: wall.elapsed().as_secs_f64() };
    let summary = summary_json(cfg, &spec, &plan, info, shard_blocks, counts, records);
    let path = layout.summary(cfg.shard);
    summary::write_json(&path, &summary)?;
    Ok(RunReport { plan, summary, summary_path: Some(path), computed: done, skipped })
}

/// Item `pos` of `source` (outside the stream, which owns the run's reader).
fn reader_item(cfg: &RunConfig, source: &Source, pos: usize) -> Result<Tensor> {
    Reader::new(source.clone(), cfg.preprocess.clone())?.item(pos)
}

/// Counts and timings of a run, for its summary.
struct Counts {
    items: usize,
    computed: usize,
    skipped: usize,
    load_s: f64,
    warm_up_s: f64,
    elapsed_s: f64,
    wall_s: f64,
}

/// The summary of a shard (see `docs/datasets.md`).
fn summary_json(cfg: &RunConfig, spec: &MethodSpec, plan: &Plan, info: (String, Value), blocks: std::ops::Range<usize>, c: Counts, records: Vec<ItemRecord>) -> Value {
    json!({
        "format": summary::SUMMARY_FORMAT,
        "method": info.0,
        "params": info.1,
        "spec": spec,
        "model": cfg.model,
        "input": cfg.input,
        "device": attrib::tensor::device_name(cfg.device),
        "plan": plan,
        "shard": format!("{}/{}", cfg.shard.index, cfg.shard.count),
        "blocks": [blocks.start, blocks.end],
        "items": c.items,
        "computed": c.computed,
        "skipped": c.skipped,
        "load_s": c.load_s,
        "warm_up_s": c.warm_up_s,
        "elapsed_s": c.elapsed_s,
        "wall_s": c.wall_s,
        "items_per_s": if c.elapsed_s > 0.0 { c.computed as f64 / c.elapsed_s } else { 0.0 },
        "metrics": summary::aggregate_metrics(&records),
        "per_item": records,
    })
}

/// A new plan, made from the first item and kept in the folder (or the plan another process
/// kept there first).
fn new_plan(registry: &Registry, cfg: &RunConfig, layout: &OutLayout, model: &TorchScriptModel, reader: &Reader, identity: Value) -> Result<Plan> {
    let first = reader.item(0)?.f_to_device(cfg.device).ctx("first item to the device")?;
    let c = Calibration { registry, spec: &cfg.spec, model, target: &cfg.target, first: &first, block_items: cfg.block_items, threads: cfg.threads };
    let fresh = plan::calibrate(&c, identity.clone(), reader.source().len())?;
    plan::keep(&layout.plan(), fresh, &identity)
}

/// Whether block `b` is complete: its record and every item's attribution (or the block's
/// safetensors file) exist.
fn block_complete(layout: &OutLayout, plan: &Plan, ids: &[String], b: usize, format: OutputFormat) -> bool {
    layout.record(b).is_file()
        && match format {
            OutputFormat::Npy => plan.block_range(b).all(|i| layout.output(&ids[i]).map(|p| p.is_file()).unwrap_or(false)),
            OutputFormat::Safetensors => layout.root().join(OutLayout::block_tensors_rel(b)).is_file(),
        }
}

/// Warm the model up on two copies of `first` (see `attrib::tensor::warm`); seconds taken.
fn warm_up(registry: &Registry, spec: &MethodSpec, model: &TorchScriptModel, options: &BatchOptions, first: &Tensor) -> Result<f64> {
    use attrib::tensor::warm::{warm_up, Work};
    let clock = Instant::now();
    let x = Tensor::f_cat(&[first, first], 0).and_then(|t| t.f_to_device(model.device())).ctx("warm-up rows")?;
    let work = if registry.entry(&spec.method)?.doc().flags.needs_gradients { Work::Gradients } else { Work::Forward };
    warm_up(model, &Inputs::new(x), options, work);
    Ok(clock.elapsed().as_secs_f64())
}

/// The items of a block grouped by shape, in order of first appearance (positions in the block).
fn shape_groups(block: &ReadBlock) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Vec<i64>, Vec<usize>)> = Vec::new();
    for (k, item) in block.items.iter().enumerate() {
        let shape = item.input.size();
        match groups.iter_mut().find(|(s, _)| *s == shape) {
            Some((_, g)) => g.push(k),
            None => groups.push((shape, vec![k])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Explain one block: each shape group as one batch; write the attributions the folder lacks,
/// then the block's record. Returns the method's name and parameters.
fn explain_block(job: &Job, block: ReadBlock, nth: usize) -> Result<(String, Value)> {
    let mut records: Vec<Option<ItemRecord>> = (0..block.items.len()).map(|_| None).collect();
    let mut outputs: Vec<Option<Tensor>> = (0..block.items.len()).map(|_| None).collect();
    let mut info = (job.spec.method.clone(), Value::Null);
    for group in shape_groups(&block) {
        let parts: Vec<&Tensor> = group.iter().map(|&k| &block.items[k].input).collect();
        let x = Tensor::f_cat(&parts, 0).and_then(|t| t.f_to_device(job.model.device())).ctx("stacking a block")?;
        let method = job.registry.build(&job.spec, &[x.shallow_clone()])?;
        let attr = method.attribute(job.model, &Inputs::new(x.shallow_clone()), job.target)?;
        info = (attr.meta.method.clone(), attr.meta.params.clone());
        let values = attr.single()?.f_to_device(Device::Cpu).ctx("attributions to the host")?;
        let deltas = match &attr.convergence_delta {
            Some(d) if d.numel() == group.len() => Some(tensor_to_vec_f64(d)?),
            _ => None,
        };
        let targets = attr.meta.targets.clone();
        let predictions = predictions(job, &x, targets.as_deref())?;
        let curves = curves(job, &x, &values)?;
        for (j, &k) in group.iter().enumerate() {
            let pos = block.items[k].pos;
            let scores = item_scores(job, &x, &values, j, pos, targets.as_deref())?;
            let id = &job.ids[pos];
            outputs[k] = Some(values.f_narrow(0, j as i64, 1).ctx("one item's attribution")?);
            let (output, tensor) = match job.format {
                OutputFormat::Npy => (OutLayout::output_rel(id)?, None),
                OutputFormat::Safetensors => (OutLayout::block_tensors_rel(block.index), Some(id.clone())),
            };
            records[k] = Some(ItemRecord {
                item: id.clone(),
                output,
                tensor,
                shape: block.items[k].input.size(),
                target: targets.as_ref().map(|t| t[j]),
                prediction: predictions.as_ref().map(|p| p[j]),
                convergence_delta: deltas.as_ref().map(|d| d[j]),
                deletion_auc: curves.as_ref().map(|c| c.deletion_auc[j]),
                insertion_auc: curves.as_ref().map(|c| c.insertion_auc[j]),
                metric_seed: scores.seed,
                infidelity: scores.infidelity,
                sensitivity_max: scores.sensitivity_max,
                faithfulness_correlation: scores.faithfulness,
            });
        }
    }
    let outputs: Vec<Tensor> = outputs.into_iter().map(|o| o.ok_or_else(|| AttribError::Internal("an item was not explained".into()))).collect::<Result<_>>()?;
    write_outputs(job, &block, &outputs, nth)?;
    let records: Vec<ItemRecord> = records.into_iter().map(|r| r.ok_or_else(|| AttribError::Internal("an item has no record".into()))).collect::<Result<_>>()?;
    summary::write_record(&job.layout.record(block.index), block.index, &records)?;
    Ok(info)
}

/// Write a block's attributions: the `.npy` files the folder lacks, or the block's safetensors
/// file. The kill test stops here, with part of the block written and no record.
fn write_outputs(job: &Job, block: &ReadBlock, outputs: &[Tensor], nth: usize) -> Result<()> {
    let kill = || {
        if job.kill_after == Some(nth) {
            // Stop as `kill -9` would: no record for this block.
            std::process::exit(137);
        }
    };
    match job.format {
        OutputFormat::Npy => {
            for (item, t) in block.items.iter().zip(outputs) {
                let path = job.layout.output(&job.ids[item.pos])?;
                if !path.is_file() {
                    stage_npy_tensor(&path, t)?.commit().map_err(|e| AttribError::Io { action: "cannot write", path: path.clone(), reason: attrib::fs::io_reason(&e) })?;
                }
                kill();
            }
        }
        OutputFormat::Safetensors => {
            let named: Vec<(&str, &Tensor)> = block.items.iter().zip(outputs).map(|(item, t)| (job.ids[item.pos].as_str(), t)).collect();
            tensors::write(&job.layout.root().join(OutLayout::block_tensors_rel(block.index)), &named)?;
            kill();
        }
    }
    Ok(())
}

/// Deletion and insertion curves of a group's attributions (`--metrics`), with the run's pinned
/// batch options: deterministic like the attributions.
fn curves(job: &Job, x: &Tensor, values: &Tensor) -> Result<Option<attrib::metrics::Curves>> {
    let Some(steps) = job.metrics.deletion_insertion else { return Ok(None) };
    let params = attrib::metrics::DeletionInsertionParams {
        steps,
        pixels: x.dim() >= 4,
        probabilities: true,
        batch: job.options,
        ..Default::default()
    };
    let attr = values.f_to_device(x.device()).ctx("attributions to the model's device")?;
    attrib::metrics::deletion_insertion(job.model, &Inputs::new(x.shallow_clone()), job.target, &[attr], &params).map(Some)
}

/// The robustness metrics of item `j` of a group (`x`, its attributions `values` on the host),
/// scored alone with its own seed (see [`crate::metrics`]); the explained class as resolved by
/// the method.
fn item_scores(job: &Job, x: &Tensor, values: &Tensor, j: usize, pos: usize, targets: Option<&[i64]>) -> Result<metrics::ItemScores> {
    if !job.metrics.robust() {
        return Ok(metrics::ItemScores::default());
    }
    let device = job.model.device();
    let target = match targets {
        Some(t) => Target::Class(t[j]),
        None => job.target.clone(),
    };
    let item = metrics::Item {
        registry: job.registry,
        spec: &job.spec,
        model: job.model,
        options: job.options,
        x: metrics::row(x, j, device)?,
        attribution: metrics::row(values, j, device)?,
        target,
        pos,
    };
    metrics::score(&job.metrics, &item)
}

/// The model's predicted class per row (`None` unless its output is `[N, classes]`): the
/// targets themselves when the target is the prediction, else one forward pass through the
/// tensor layer with the run's pinned options.
fn predictions(job: &Job, x: &Tensor, targets: Option<&[i64]>) -> Result<Option<Vec<i64>>> {
    if matches!(job.target, Target::Argmax) {
        return Ok(targets.map(<[i64]>::to_vec));
    }
    let eval = Evaluator::new(job.model, job.options)?;
    let inputs = [x.shallow_clone()];
    let out = eval.raw_outputs(&[], &Expanded::identity(&inputs))?;
    if out.dim() != 2 {
        return Ok(None);
    }
    let arg = out.f_argmax(1, false).and_then(|t| t.f_to_device(Device::Cpu)).ctx("predicted classes")?;
    Ok(Some(Vec::<i64>::try_from(&arg).map_err(|e| AttribError::Conversion(e.to_string()))?))
}
