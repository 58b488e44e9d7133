//! What a run reads by name besides the model: the data set's contents and the files the method
//! spec names (a baseline `.npy` or image, a feature-mask file). Both are part of the run's
//! identity, so a later run into the same folder with other data or another baseline file under
//! the same name is another run, not a resumption that mixes two. The spec's files are also
//! checked again before every block: the method is built per block (per shape group), which
//! reads them again, so a file replaced while a run goes on is an error, never a run whose blocks
//! used two different baselines.

use crate::source::{ItemRef, Source, SourceKind};
use attrib::{AttribError, MethodSpec, Result};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x100_0000_01b3;
const PIECE: usize = 1 << 20;

fn io(action: &'static str, path: &Path, e: &std::io::Error) -> AttribError {
    AttribError::Io { action, path: path.to_path_buf(), reason: attrib::fs::io_reason(e) }
}

/// One 64-bit step: bijective in `word` (a single changed word always changes the digest) and
/// mixing high bits down, so that changes confined to high bits (sign flips) do not cancel.
fn step(h: u64, word: u64) -> u64 {
    let h = (h ^ word).wrapping_mul(PRIME);
    h ^ (h >> 29)
}

/// `bytes` folded into `h` 8 at a step, the last word zero-padded.
fn steps(mut h: u64, bytes: &[u8]) -> u64 {
    for word in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        h = step(h, u64::from_le_bytes(w));
    }
    h
}

/// A digest of a file's bytes (64 bits, hex; not cryptographic) and its size. Read in 1 MiB
/// pieces, 8 bytes a step; pieces are filled whole, so the digest does not depend on how the
/// reads return.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path).map_err(|e| io("cannot read", path, &e))?;
    let mut buf = vec![0u8; PIECE];
    let (mut h, mut total) = (SEED, 0u64);
    loop {
        let mut n = 0;
        while n < PIECE {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io("cannot read", path, &e)),
            }
        }
        h = steps(h, &buf[..n]);
        total += n as u64;
        if n < PIECE {
            break;
        }
    }
    Ok((total, format!("{:016x}", step(h, total))))
}

/// The data set's contents for the run's identity: a `.npy` source's bytes (header included:
/// dtype and row shape), or each image's id, size and modification time (digesting every
/// image's bytes would read the whole data set before a resumption can skip anything).
pub fn data_contents(source: &Source) -> Result<Value> {
    if source.kind == SourceKind::Npy {
        let (bytes, digest) = file_digest(&source.path)?;
        return Ok(json!({"bytes": bytes, "digest": digest}));
    }
    let mut h = SEED;
    for (id, item) in source.ids.iter().zip(&source.items) {
        let ItemRef::Image(path) = item else { continue };
        let meta = std::fs::metadata(path).map_err(|e| io("cannot read image", path, &e))?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64);
        h = step(step(step(steps(h, id.as_bytes()), id.len() as u64), meta.len()), modified);
    }
    Ok(json!({"sizes_and_times": format!("{h:016x}")}))
}

/// The files a method spec names: string values (or strings in a list) of its parameters that
/// name an existing file, with their size and digest when the run starts.
#[derive(Debug, Clone, Default)]
pub struct SpecFiles(Vec<(String, PathBuf, u64, String)>);

impl SpecFiles {
    /// Find and digest the files `spec` names.
    pub fn of(spec: &MethodSpec) -> Result<SpecFiles> {
        let mut files = Vec::new();
        for (param, value) in &spec.params {
            let names: Vec<&str> = match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for name in names {
                let path = PathBuf::from(name);
                if path.is_file() {
                    let (bytes, digest) = file_digest(&path)?;
                    files.push((param.clone(), path, bytes, digest));
                }
            }
        }
        Ok(SpecFiles(files))
    }

    /// True when the spec names no file.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The identity's part: parameter, file, size and digest of each file.
    pub fn identity(&self) -> Value {
        Value::Array(self.0.iter().map(|(param, path, bytes, digest)| json!({"param": param, "file": path, "bytes": bytes, "digest": digest})).collect())
    }

    /// Every file still has the bytes it had when the run started.
    pub fn check(&self) -> Result<()> {
        for (param, path, bytes, digest) in &self.0 {
            if file_digest(path)? != (*bytes, digest.clone()) {
                return Err(AttribError::Io {
                    action: "input file changed during the run:",
                    path: path.clone(),
                    reason: format!(
                        "`{param}` names it, and its bytes differ from those the run started with; the blocks written so far used the earlier file: restore it to resume, or start afresh in another --out-dir"
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_see_every_change_and_not_the_read_sizes() {
        let dir = attrib_scratch::scratch_dir().join("pinned");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.bin");
        // 2.5 MiB + 3 bytes: whole pieces, a short piece and a short last word.
        let base: Vec<u8> = (0..(5 * PIECE / 2 + 3)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &base).unwrap();
        let d0 = file_digest(&p).unwrap();
        assert_eq!(d0.0, base.len() as u64);
        assert_eq!(file_digest(&p).unwrap(), d0, "deterministic");
        // Sign flips of two float32 values (high bits only) must not cancel.
        let mut flipped = base.clone();
        flipped[3] ^= 0x80;
        flipped[PIECE + 11] ^= 0x80;
        // A trailing zero byte changes the size and so the digest.
        let mut longer = base.clone();
        longer.push(0);
        let mut last = base.clone();
        *last.last_mut().unwrap() ^= 1;
        for (what, bytes) in [("two sign flips", flipped), ("a trailing zero", longer), ("the last byte", last)] {
            std::fs::write(&p, &bytes).unwrap();
            assert_ne!(file_digest(&p).unwrap(), d0, "{what} went unseen");
        }
    }

    #[test]
    fn spec_files_are_found_in_strings_and_lists_and_checked_again() {
        let dir = attrib_scratch::scratch_dir().join("pinned-spec");
        std::fs::create_dir_all(&dir).unwrap();
        let (bg, mask) = (dir.join("bg.npy"), dir.join("mask.npy"));
        std::fs::write(&bg, b"zeros").unwrap();
        std::fs::write(&mask, b"groups").unwrap();
        let spec: MethodSpec = serde_json::from_value(json!({
            "method": "feature-ablation", "baselines": [bg.display().to_string(), "zeros"], "feature_mask": mask.display().to_string(), "n_steps": 8
        }))
        .unwrap();
        let files = SpecFiles::of(&spec).unwrap();
        let ids = files.identity();
        assert_eq!(ids.as_array().unwrap().len(), 2, "{ids}");
        files.check().unwrap();
        std::fs::write(&bg, b"ones!").unwrap();
        let err = files.check().unwrap_err().to_string();
        assert!(err.contains("changed during the run") && err.contains("baselines"), "{err}");
        assert_ne!(SpecFiles::of(&spec).unwrap().identity(), ids, "another baseline file is another identity");
    }
}
