//! Output files of the command line: checked before any work, written after all of it.
//!
//! Every output path is checked before an input is read or the model is loaded ([`check`]): its
//! folder exists or can be created and is writable (a probe file is created and deleted there),
//! it is not a folder or a read-only file, and it is neither a file the command reads (an input,
//! the model, a baseline, mask, target, config or label file) nor another output. The outputs are
//! written last, once everything else has succeeded: each is staged (written and synced under a
//! temporary name next to it), and only when all are staged are they renamed into place
//! ([`commit`]). A run that fails, at any point, leaves every existing file as it was.

use attrib::fs::{check_outputs, commit_all, io_reason, OutputOptions, Staged};
use attrib::{AttribError, Result};
use std::path::{Path, PathBuf};

/// Files a command reads, each with the flag that named it: no output may be one of them.
#[derive(Debug, Default)]
pub struct Reads(Vec<(String, PathBuf)>);

impl Reads {
    /// A file the command reads.
    pub fn add(&mut self, flag: &str, path: &Path) {
        self.0.push((flag.to_string(), path.to_path_buf()));
    }

    /// A flag value that may name a file (a baseline, a mask, a target, a `--param` value):
    /// added when it names an existing file.
    pub fn maybe(&mut self, flag: &str, value: &str) {
        let p = Path::new(value);
        if p.is_file() {
            self.add(flag, p);
        }
    }

    /// A spec value that may name files (a baseline, a mask): a string, or a list of strings
    /// (one per input); each string that names an existing file is added.
    pub fn maybe_json(&mut self, flag: &str, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => self.maybe(flag, s),
            Value::Array(items) => items.iter().filter_map(Value::as_str).for_each(|s| self.maybe(flag, s)),
            _ => {}
        }
    }

    /// The `--input` paths; for a folder, the image files in it.
    pub fn inputs(&mut self, inputs: &[PathBuf]) {
        for p in inputs {
            if p.is_dir() {
                for f in attrib::images::list_images(p).unwrap_or_default() {
                    self.add("--input", &f);
                }
            } else {
                self.add("--input", p);
            }
        }
    }

    /// What every model-running command reads: the `--input` paths (and `--vocab`), `--model`,
    /// and `--target` when it names a file.
    pub fn model_run(inputs: &crate::input::InputArgs, model: &Path, target: &str) -> Reads {
        let mut r = Reads::default();
        r.inputs(&inputs.input);
        if let Some(v) = &inputs.vocab {
            r.add("--vocab", v);
        }
        r.add("--model", model);
        r.maybe("--target", target);
        r
    }

    /// The files, with their flags.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.0.iter().map(|(f, p)| (f.as_str(), p.as_path()))
    }
}

/// Check every output path before any work; see the module docs.
pub fn check(outputs: &[(&str, &Path)], reads: &Reads) -> Result<()> {
    let inputs: Vec<(&str, &Path)> = reads.files().collect();
    check_outputs(outputs, &inputs, OutputOptions { create_folders: true })
        .map_err(|e| AttribError::Io { action: "cannot write", path: e.path, reason: e.reason })
}

/// Create the folder of an output, if missing (checked creatable before the work).
pub fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| AttribError::Io { action: "cannot create folder for", path: path.to_path_buf(), reason: io_reason(&e) }),
        _ => Ok(()),
    }
}

/// Stage a text output (an HTML page) at `path`, its folder created first; put in place by
/// [`commit`] with the others.
pub fn stage_text(path: &Path, text: &str) -> Result<Staged> {
    create_parent(path)?;
    attrib::fs::stage(path, |w| std::io::Write::write_all(w, text.as_bytes()))
        .map_err(|e| AttribError::Io { action: "cannot write", path: path.to_path_buf(), reason: io_reason(&e) })
}

/// Put staged outputs in place, in order; on failure the rest are discarded.
pub fn commit(staged: Vec<Staged>) -> Result<()> {
    commit_all(staged).map_err(|(path, e)| AttribError::Io { action: "cannot write", path, reason: io_reason(&e) })
}

/// The model file, checked before loading: a loop of symbolic links or a permission problem is
/// said as such (a missing file is the loader's error, which says how to make one).
pub fn check_model(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(AttribError::Io { action: "cannot open model", path: path.to_path_buf(), reason: io_reason(&e) })
        }
        _ => Ok(()),
    }
}
