//! The evaluator's chunk-variant decisions, remembered so that results are reproducible.
//!
//! On the CPU the evaluator may run a chunk in one of several [`Variant`]s (channels-last or
//! contiguous image inputs, the model or its frozen inference copy) and picks one by timing
//! ([`crate::eval`]'s trial). The variants compute the same function but round differently in
//! the last bits of float32, so a choice that changed from run to run (timing noise) would change
//! the results' last bits too. Two rules keep a seeded run bit-identical to the next:
//!
//! 1. **A call's results never depend on the trial.** Trial chunks are computed in each
//!    candidate and timed; once the winner is known, the trial chunks a loser computed are
//!    computed again in the winner before any result is handed on. Every row of the call is
//!    thus computed in the one variant chosen for the model, the work (gradients or forward) and
//!    the row shape. This costs (candidates − 1) / candidates of the trial rows, once.
//! 2. **A decision is made once.** It is kept for the rest of the process (keyed by the model,
//!    the work, the options and the row shapes and dtypes), and, when the program asks for it
//!    ([`keep_on_disk`]), in a small file that later processes read first: the same model file,
//!    input shape and thread count then run the same variant in every process. The `attrib`
//!    command line keeps decisions in `$ATTRIB_CACHE_DIR` (default `$XDG_CACHE_HOME/attrib` or
//!    `~/.cache/attrib`). The file is the program's choice, never the library's default: a
//!    library caller that does not opt in gets rule 2 within its process only.
//!
//! Without a kept decision two processes may still choose differently (and then differ in the
//! last bits); a fixed [`attrib_core::MemoryFormat`] (`contiguous` or `channels-last`) and no
//! inference copy ([`attrib_core::BatchOptions::inference_copy`] off) remove the choice
//! altogether. A stale decision (the machine got busier) can only cost speed, never change
//! results beyond that rounding; a variant that fails is dropped as in a trial.

use crate::eval::{Layout, Variant};
use attrib_core::{BatchOptions, MemoryFormat, Model, Precision};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// What a decision is remembered by: the model (its [`attrib_core::Model::fingerprint`], else
/// its address in this process), gradient or forward-only work, the options that limit the
/// candidates, the shape and dtype of one row of each input, and libtorch's thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantKey {
    pub(crate) model: usize,
    pub(crate) fingerprint: Option<String>,
    pub(crate) with_grad: bool,
    pub(crate) options: (MemoryFormat, bool, Precision),
    pub(crate) inputs: Vec<(Vec<i64>, tch::Kind)>,
    pub(crate) threads: i32,
}

impl VariantKey {
    /// The key of `model`'s chunks with or without gradients under `options`, for rows of the
    /// given shapes (`[1, ...]`) and dtypes. A model with a fingerprint is known by it (two
    /// loads of one file share decisions), else by its address.
    pub fn new(model: &dyn Model, with_grad: bool, options: &BatchOptions, inputs: Vec<(Vec<i64>, tch::Kind)>) -> VariantKey {
        let fingerprint = model.fingerprint();
        let address = if fingerprint.is_some() { 0 } else { model as *const dyn Model as *const () as usize };
        VariantKey {
            model: address,
            fingerprint,
            with_grad,
            options: (options.memory_format, options.inference_copy, options.precision),
            inputs,
            threads: tch::get_num_threads(),
        }
    }

    /// The key as one line of the decision file (`None`: the model has no fingerprint).
    fn line_key(&self) -> Option<String> {
        let fp = self.fingerprint.as_ref()?;
        let shapes: Vec<String> = self
            .inputs
            .iter()
            .map(|(s, k)| format!("{}:{k:?}", s.iter().map(i64::to_string).collect::<Vec<_>>().join("x")))
            .collect();
        let line = format!(
            "{FORMAT}|{fp}|{}|{:?}|copy={}|{}|{}|threads={}",
            if self.with_grad { "gradients" } else { "forward" },
            self.options.0,
            self.options.1,
            self.options.2.name(),
            shapes.join(","),
            self.threads
        );
        // A tab or newline in a path would break the line format: such models are not kept.
        (!line.contains(['\t', '\n', '\r'])).then_some(line)
    }
}

/// Version of the decision file's key format (older lines are ignored).
const FORMAT: &str = "v1";
/// Name of the decision file in the folder given to [`keep_on_disk`].
pub const FILE_NAME: &str = "chunk-variants.tsv";
/// Decisions kept in this process, most recent last.
const MEMO_LEN: usize = 64;
/// Lines kept in the decision file, most recent last.
const FILE_LEN: usize = 512;

/// Most chunk shapes remembered per key (the first ones seen).
const MAX_CHUNKS: usize = 4;

/// A chunk shape a call ran: its variant, its rows, and the fastest milliseconds seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkSeen {
    /// The variant it ran in.
    pub variant: Variant,
    /// Its rows.
    pub rows: usize,
    /// The fastest time seen, in milliseconds.
    pub ms: f64,
}

/// What is remembered for a key: the variant decided by a trial (`None`: no batch of this
/// model, work and row shape was large enough for one yet), and the chunk shapes calls ran,
/// which a warm-up may rehearse ([`crate::warm`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// How chunks of this model, work and row shape run, once decided.
    pub variant: Option<Variant>,
    /// Chunk shapes run (in the decided variant, once there is one).
    pub chunks: Vec<ChunkSeen>,
}

static MEMO: Mutex<Vec<(VariantKey, Decision)>> = Mutex::new(Vec::new());
static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Keep the evaluator's decisions in `dir` (created when first written) so that later processes
/// make the same ones (see the [module docs](self)): a process-wide setting that a program opts
/// into, once, before its first attribution; later calls change nothing. Returns whether `dir`
/// is the folder in use.
pub fn keep_on_disk(dir: impl Into<PathBuf>) -> bool {
    let dir = dir.into();
    DIR.get_or_init(|| Some(dir.clone())).as_deref() == Some(dir.as_path())
}

/// The folder decisions are kept in, if the program chose one ([`keep_on_disk`]).
pub fn disk_folder() -> Option<PathBuf> {
    DIR.get().cloned().flatten()
}

fn variant_name(v: Variant) -> &'static str {
    match (v.layout, v.inference) {
        (Layout::Contiguous, false) => "contiguous",
        (Layout::ChannelsLast, false) => "channels-last",
        (Layout::Contiguous, true) => "inference-copy",
        (Layout::ChannelsLast, true) => "inference-copy-channels-last",
    }
}

fn variant_of(name: &str) -> Option<Variant> {
    let v = |layout, inference| Some(Variant { layout, inference });
    match name {
        "contiguous" => v(Layout::Contiguous, false),
        "channels-last" => v(Layout::ChannelsLast, false),
        "inference-copy" => v(Layout::Contiguous, true),
        "inference-copy-channels-last" => v(Layout::ChannelsLast, true),
        _ => None,
    }
}

/// The variant decided for `key` ([`decision`]).
pub(crate) fn get(key: &VariantKey) -> Option<Variant> {
    decision(key).and_then(|d| d.variant)
}

/// What is remembered for `key`: this process's record, else the decision file's (then also
/// kept in this process).
pub fn decision(key: &VariantKey) -> Option<Decision> {
    {
        let memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = memo.iter().rev().find(|(k, _)| k == key).map(|(_, d)| d.clone()) {
            return Some(d);
        }
    }
    let line = key.line_key()?;
    let d = read_file()?.into_iter().rev().find(|(k, _)| *k == line).map(|(_, d)| d)?;
    remember(key.clone(), d.clone());
    Some(d)
}

/// Record the variant decided for `key` in this process and, if kept on disk, in the decision
/// file. Chunk shapes noted in other variants are dropped (they will not run again).
///
/// Public for callers that time the variants themselves where the evaluator's trial does not
/// run: an attack's many gradient passes over one small batch (too few rows per call for a
/// trial) decide the layout once before its step loop, and every evaluator on the same key then
/// runs the decided variant.
pub fn put(key: VariantKey, v: Variant) {
    let mut d = decision(&key).unwrap_or_default();
    d.variant = Some(v);
    d.chunks.retain(|c| c.variant == v);
    persist(&key, &d);
    remember(key, d);
}

/// Note the chunks a call ran for `key` outside a trial: shapes not seen before are added (up
/// to [`MAX_CHUNKS`]), known ones keep their fastest time; the file is rewritten (if kept on
/// disk) when a shape is new or its time fell by half. Chunks in a variant other than the decided one are ignored.
pub(crate) fn note_chunks(key: &VariantKey, seen: &[ChunkSeen]) {
    let mut d = decision(key).unwrap_or_default();
    let mut changed = false;
    for c in seen.iter().filter(|c| d.variant.map_or(true, |v| v == c.variant)) {
        let full = d.chunks.len() >= MAX_CHUNKS;
        match d.chunks.iter_mut().find(|k| k.variant == c.variant && k.rows == c.rows) {
            Some(k) => {
                changed |= c.ms < k.ms / 2.0;
                k.ms = k.ms.min(c.ms);
            }
            // A full list keeps its shapes: a workload cycling through many chunk sizes would
            // otherwise rewrite (and fsync) the file on every call.
            None if full => {}
            None => {
                d.chunks.push(*c);
                changed = true;
            }
        }
    }
    if changed {
        persist(key, &d);
    }
    remember(key.clone(), d);
}

fn persist(key: &VariantKey, d: &Decision) {
    if let (Some(line), Some(dir)) = (key.line_key(), disk_folder()) {
        // Best effort: a folder that cannot be written only means later processes decide again.
        let _ = write_file(&dir, &line, d);
    }
}

fn remember(key: VariantKey, d: Decision) {
    let mut memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|(k, _)| *k != key);
    if memo.len() >= MEMO_LEN {
        memo.remove(0);
    }
    memo.push((key, d));
}

/// `VARIANT|undecided<TAB>ROWS@VARIANT:MS,...`.
fn format_decision(d: &Decision) -> String {
    let chunks: Vec<String> = d.chunks.iter().map(|c| format!("{}@{}:{:.3}", c.rows, variant_name(c.variant), c.ms)).collect();
    format!("{}\t{}", d.variant.map_or("undecided", variant_name), chunks.join(","))
}

fn parse_decision(text: &str) -> Option<Decision> {
    let (name, chunks) = text.split_once('\t').unwrap_or((text, ""));
    let variant = if name == "undecided" { None } else { Some(variant_of(name)?) };
    let chunks = chunks
        .split(',')
        .filter_map(|c| {
            let (rows, rest) = c.split_once('@')?;
            let (v, ms) = rest.split_once(':')?;
            Some(ChunkSeen { variant: variant_of(v)?, rows: rows.parse().ok()?, ms: ms.parse().ok()? })
        })
        .collect();
    Some(Decision { variant, chunks })
}

fn read_file() -> Option<Vec<(String, Decision)>> {
    let text = std::fs::read_to_string(disk_folder()?.join(FILE_NAME)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(k, _)| k.starts_with(FORMAT) && k.as_bytes().get(FORMAT.len()) == Some(&b'|'))
            .filter_map(|(k, v)| Some((k.to_string(), parse_decision(v)?)))
            .collect(),
    )
}

/// Add (or move to the end) the line of `key`, keeping the file to [`FILE_LEN`] lines; written
/// whole or not at all. Two processes deciding at once may lose one of the two lines: the next
/// process then decides that one again.
fn write_file(dir: &std::path::Path, key: &str, d: &Decision) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut lines = read_file().unwrap_or_default();
    lines.retain(|(k, _)| k != key);
    lines.push((key.to_string(), d.clone()));
    let skip = lines.len().saturating_sub(FILE_LEN);
    attrib_fs::write_atomic(dir.join(FILE_NAME), |w: &mut dyn Write| {
        for (k, d) in &lines[skip..] {
            writeln!(w, "{k}\t{}", format_decision(d))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fp: Option<&str>) -> VariantKey {
        VariantKey {
            model: 1,
            fingerprint: fp.map(str::to_string),
            with_grad: true,
            options: (MemoryFormat::Auto, true, Precision::Fp32),
            inputs: vec![(vec![3, 16, 16], tch::Kind::Float)],
            threads: 2,
        }
    }

    #[test]
    fn variant_names_round_trip() {
        for layout in [Layout::Contiguous, Layout::ChannelsLast] {
            for inference in [false, true] {
                let v = Variant { layout, inference };
                assert_eq!(variant_of(variant_name(v)), Some(v));
            }
        }
        assert_eq!(variant_of("fastest"), None);
        let cl = Variant { layout: Layout::ChannelsLast, inference: false };
        let d = Decision {
            variant: Some(cl),
            chunks: vec![ChunkSeen { variant: cl, rows: 256, ms: 9.5 }, ChunkSeen { variant: cl, rows: 288, ms: 10.25 }],
        };
        assert_eq!(parse_decision(&format_decision(&d)), Some(d));
        let undecided = Decision { variant: None, chunks: vec![ChunkSeen { variant: Variant::PLAIN, rows: 32, ms: 1.0 }] };
        assert_eq!(parse_decision(&format_decision(&undecided)), Some(undecided));
        assert_eq!(parse_decision("contiguous"), Some(Decision { variant: Some(Variant::PLAIN), chunks: vec![] }));
    }

    #[test]
    fn keys_name_everything_that_changes_the_choice() {
        let a = key(Some("torchscript:/m.pt:10:5.000000000:Cpu:None")).line_key().unwrap();
        assert!(a.contains("gradients") && a.contains("3x16x16:Float") && a.contains("threads=2") && a.contains("Auto"));
        let mut other = key(Some("torchscript:/m.pt:10:5.000000000:Cpu:None"));
        other.with_grad = false;
        assert_ne!(other.line_key().unwrap(), a);
        assert_eq!(key(None).line_key(), None);
        assert_eq!(key(Some("a\tb")).line_key(), None);
    }
}
