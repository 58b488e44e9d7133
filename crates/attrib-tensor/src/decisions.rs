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
use attrib_core::MemoryFormat;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// What a decision is remembered by: the model (its [`attrib_core::Model::fingerprint`], else
/// its address in this process), gradient or forward-only work, the options that limit the
/// candidates, the shape and dtype of one row of each input, and libtorch's thread count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VariantKey {
    pub model: usize,
    pub fingerprint: Option<String>,
    pub with_grad: bool,
    pub options: (MemoryFormat, bool),
    pub inputs: Vec<(Vec<i64>, tch::Kind)>,
    pub threads: i32,
}

impl VariantKey {
    /// The key as one line of the decision file (`None`: the model has no fingerprint).
    fn line_key(&self) -> Option<String> {
        let fp = self.fingerprint.as_ref()?;
        let shapes: Vec<String> = self
            .inputs
            .iter()
            .map(|(s, k)| format!("{}:{k:?}", s.iter().map(i64::to_string).collect::<Vec<_>>().join("x")))
            .collect();
        let line = format!(
            "{FORMAT}|{fp}|{}|{:?}|copy={}|{}|threads={}",
            if self.with_grad { "gradients" } else { "forward" },
            self.options.0,
            self.options.1,
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

static MEMO: Mutex<Vec<(VariantKey, Variant)>> = Mutex::new(Vec::new());
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

/// The decision for `key`: this process's, else the decision file's (then also kept in this
/// process).
pub(crate) fn get(key: &VariantKey) -> Option<Variant> {
    {
        let memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = memo.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v) {
            return Some(v);
        }
    }
    let line = key.line_key()?;
    let v = read_file()?.into_iter().rev().find(|(k, _)| *k == line).and_then(|(_, v)| variant_of(&v))?;
    remember(key.clone(), v);
    Some(v)
}

/// Record the decision for `key` in this process and, if kept on disk, in the decision file.
pub(crate) fn put(key: VariantKey, v: Variant) {
    if let (Some(line), Some(dir)) = (key.line_key(), disk_folder()) {
        // Best effort: a folder that cannot be written only means later processes decide again.
        let _ = write_file(&dir, &line, v);
    }
    remember(key, v);
}

fn remember(key: VariantKey, v: Variant) {
    let mut memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|(k, _)| *k != key);
    if memo.len() >= MEMO_LEN {
        memo.remove(0);
    }
    memo.push((key, v));
}

fn read_file() -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(disk_folder()?.join(FILE_NAME)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(k, _)| k.starts_with(FORMAT) && k.as_bytes().get(FORMAT.len()) == Some(&b'|'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Add (or move to the end) the line of `key`, keeping the file to [`FILE_LEN`] lines; written
/// whole or not at all. Two processes deciding at once may lose one of the two lines: the next
/// process then decides that one again.
fn write_file(dir: &std::path::Path, key: &str, v: Variant) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut lines = read_file().unwrap_or_default();
    lines.retain(|(k, _)| k != key);
    lines.push((key.to_string(), variant_name(v).to_string()));
    let skip = lines.len().saturating_sub(FILE_LEN);
    attrib_fs::write_atomic(dir.join(FILE_NAME), |w: &mut dyn Write| {
        for (k, v) in &lines[skip..] {
            writeln!(w, "{k}\t{v}")?;
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
            options: (MemoryFormat::Auto, true),
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
