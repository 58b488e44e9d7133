//! Checks of output paths, made before any work so that a bad path costs nothing.

use crate::atomic::{parent_dir, resolve_target, sweep_leftovers, temp_name};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The name the probe files of [`check_outputs`] stand in for: `.probe.PID-N.attrib-tmp`.
const PROBE_NAME: &str = "probe";

/// An output path that cannot be written, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputError {
    /// The output path as given.
    pub path: PathBuf,
    /// Why it cannot be written, and what to do.
    pub reason: String,
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {:?}: {}", self.path, self.reason)
    }
}

impl std::error::Error for OutputError {}

/// How [`check_outputs`] treats missing folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputOptions {
    /// A missing folder is fine when it can be created (its nearest existing ancestor is a
    /// writable folder): the writer creates it. Otherwise a missing folder is an error.
    pub create_folders: bool,
}

/// An I/O error as text, with a hint for the errors a person can act on: a loop of symbolic
/// links, a full disk, a read-only file system, a permission.
pub fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("too many levels of symbolic links") {
        format!("{text}: the path goes through a loop of symbolic links (links that point back to each other); fix or remove the link")
    } else if lower.contains("no space left") || lower.contains("disk quota") {
        format!("{text}: the disk is full; free some space or write somewhere else")
    } else if lower.contains("read-only file system") {
        format!("{text}: this file system cannot be written; write somewhere else")
    } else if lower.contains("not a directory") {
        format!("{text}: a part of the path is a file, not a folder")
    } else if lower.contains("permission denied") {
        format!("{text}: check the permissions, or use another path")
    } else {
        text
    }
}

/// A canonical identity of a path, existing or not: the canonical path of the file (links
/// followed), else that of its nearest existing folder joined with the rest.
fn identity(path: &Path) -> PathBuf {
    fn canonical_or_below(p: &Path, depth: usize) -> Option<PathBuf> {
        if let Ok(c) = fs::canonicalize(p) {
            return Some(c);
        }
        let name = p.file_name()?;
        if depth > 64 {
            return None;
        }
        canonical_or_below(&parent_dir(p), depth + 1).map(|d| d.join(name))
    }
    let target = resolve_target(path).unwrap_or_else(|_| path.to_path_buf());
    canonical_or_below(&target, 0).or_else(|| std::path::absolute(&target).ok()).unwrap_or(target)
}

/// True when `a` and `b` name the same file: the same canonical path, or (on Unix, both
/// existing) the same device and inode, as hard links do.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if identity(a) == identity(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// Create and delete a probe file in `dir`: the folder is writable (permissions, a read-only
/// file system and a full inode table all show here). Probe files that a process killed between
/// the two steps left in `dir` are deleted first, as [`crate::atomic`] sweeps a target's stale
/// temporary files.
fn probe(dir: &Path) -> io::Result<()> {
    sweep_leftovers(dir, PROBE_NAME);
    let p = temp_name(dir, PROBE_NAME);
    OpenOptions::new().write(true).create_new(true).open(&p)?;
    match fs::remove_file(&p) {
        // Another process's sweep took it (it could not see this process: another PID
        // namespace or host sharing the folder); the folder was writable all the same.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Check one output path; see [`check_outputs`].
fn check_one(flag: &str, path: &Path, opts: OutputOptions) -> Result<(), OutputError> {
    let fail = |reason: String| OutputError { path: path.to_path_buf(), reason: format!("{flag}: {reason}") };
    let target = resolve_target(path).map_err(|e| fail(io_reason(&e)))?;
    if target.file_name().is_none() {
        return Err(fail("the path names no file; give a file name".into()));
    }
    match fs::metadata(&target) {
        Ok(m) if m.is_dir() => return Err(fail("this is a folder; name a file inside it".into())),
        Ok(m) if m.is_file() && m.permissions().readonly() => {
            return Err(fail("the file exists and is read-only; make it writable, or choose another path".into()))
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(io_reason(&e))),
    }
    let dir = parent_dir(&target);
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {
            probe(&dir).map_err(|e| fail(format!("its folder {dir:?} cannot be written: {}", io_reason(&e))))
        }
        Ok(_) => Err(fail(format!("{dir:?} is not a folder"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !opts.create_folders {
                return Err(fail(format!("the folder {dir:?} does not exist; create it first")));
            }
            // The nearest existing ancestor must be a folder we can create the rest in.
            let mut up = dir.clone();
            loop {
                up = match up.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                match fs::metadata(&up) {
                    Ok(m) if m.is_dir() => {
                        return probe(&up).map_err(|e| {
                            fail(format!("the folder {dir:?} does not exist and cannot be created in {up:?}: {}", io_reason(&e)))
                        })
                    }
                    Ok(_) => return Err(fail(format!("the folder {dir:?} cannot be created: {up:?} is a file"))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound && up != Path::new(".") && up.parent().is_some() => {}
                    Err(e) => return Err(fail(format!("the folder {dir:?} cannot be created: {}", io_reason(&e)))),
                }
            }
        }
        Err(e) => Err(fail(format!("its folder {dir:?}: {}", io_reason(&e)))),
    }
}

/// Check output paths before any work is done. `outputs` and `inputs` pair the flag (or other
/// name) that gave a path with the path, for the messages.
///
/// Each output must be writable: not a folder, not a read-only file, its folder existing (or,
/// with [`OutputOptions::create_folders`], creatable) and writable, which a probe file created
/// and deleted there shows. No output may be the same file as an input (an existing input
/// compared by canonical path and, on Unix, device and inode; missing inputs are skipped, the
/// reader reports them) or as another output.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)], opts: OutputOptions) -> Result<(), OutputError> {
    for (i, (flag, path)) in outputs.iter().enumerate() {
        check_one(flag, path, opts)?;
        for (in_flag, input) in inputs {
            if input.exists() && same_file(path, input) {
                return Err(OutputError {
                    path: path.to_path_buf(),
                    reason: format!(
                        "{flag} is the same file as {in_flag} {input:?}; writing it would destroy that input: choose another output path"
                    ),
                });
            }
        }
        for (other_flag, other) in &outputs[..i] {
            if same_file(path, other) {
                let which = if other_flag == flag { format!("two {flag} paths name") } else { format!("{other_flag} and {flag} name") };
                return Err(OutputError {
                    path: path.to_path_buf(),
                    reason: format!("{which} the same file; give each output its own path"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = attrib_scratch::scratch_dir().join("paths").join(name);
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn probe_files_of_killed_processes_are_swept_by_the_next_check() {
        let d = scratch("probe_sweep");
        // A process that has exited: its pid no longer runs (unless reused at once).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let suffix = crate::TEMP_SUFFIX;
        let dead_probe = d.join(format!(".{PROBE_NAME}.{dead}-0{suffix}"));
        // This process's, and another running process's (pid 1 runs while anything does).
        let own_probe = d.join(format!(".{PROBE_NAME}.{}-99{suffix}", std::process::id()));
        let other_live_probe = d.join(format!(".{PROBE_NAME}.1-0{suffix}"));
        for p in [&dead_probe, &own_probe, &other_live_probe] {
            fs::write(p, b"").unwrap();
        }
        check_outputs(&[("--out", &d.join("a.npy"))], &[], OutputOptions::default()).unwrap();
        if Path::new("/proc/self").exists() && !Path::new("/proc").join(dead.to_string()).exists() {
            assert!(!dead_probe.exists(), "a killed process's probe file is still there");
        }
        assert!(own_probe.exists(), "this process's probe file was deleted");
        if Path::new("/proc/1").exists() {
            assert!(other_live_probe.exists(), "a running process's probe file was deleted");
        }
        // The check leaves no file of its own (whether the others were deleted depends on /proc).
        let left: Vec<PathBuf> = fs::read_dir(&d).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.iter().all(|f| [&dead_probe, &own_probe, &other_live_probe].contains(&f)), "the check left files of its own: {left:?}");
    }

    #[test]
    fn outputs_that_are_inputs_or_each_other_are_refused() {
        let d = scratch("same");
        let input = d.join("x.npy");
        fs::write(&input, b"input").unwrap();
        let opts = OutputOptions::default();
        // The same file through another spelling.
        let other_spelling = d.join(".").join("x.npy");
        let err = check_outputs(&[("--out", &other_spelling)], &[("--input", &input)], opts).unwrap_err();
        assert!(err.to_string().contains("same file as --input"), "{err}");
        let (a, b) = (d.join("a.npy"), d.join("sub/../a.npy"));
        fs::create_dir_all(d.join("sub")).unwrap();
        let err = check_outputs(&[("--out", &a), ("--heatmap", &b)], &[], opts).unwrap_err();
        assert!(err.to_string().contains("--out and --heatmap name the same file"), "{err}");
        let err = check_outputs(&[("--out", &a), ("--out", &a)], &[], opts).unwrap_err();
        assert!(err.to_string().contains("two --out paths"), "{err}");
        check_outputs(&[("--out", &a), ("--heatmap", &d.join("a.png"))], &[("--input", &input)], opts).unwrap();
        #[cfg(unix)]
        {
            let link = d.join("link.npy");
            std::os::unix::fs::symlink(&input, &link).unwrap();
            assert!(check_outputs(&[("--out", &link)], &[("--input", &input)], opts).is_err(), "a link to the input");
            let hard = d.join("hard.npy");
            fs::hard_link(&input, &hard).unwrap();
            assert!(check_outputs(&[("--out", &hard)], &[("--input", &input)], opts).is_err(), "a hard link to the input");
        }
    }

    #[test]
    fn folders_must_exist_or_be_creatable_and_be_writable() {
        let d = scratch("folders");
        let opts = OutputOptions::default();
        let err = check_outputs(&[("--out", &d.join("missing/x.npy"))], &[], opts).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        check_outputs(&[("--out", &d.join("missing/deeper/x.npy"))], &[], OutputOptions { create_folders: true }).unwrap();
        assert!(!d.join("missing").exists(), "checking creates nothing");
        let err = check_outputs(&[("--out", &d)], &[], opts).unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
        let file = d.join("file");
        fs::write(&file, b"").unwrap();
        let err = check_outputs(&[("--out", &file.join("x.npy"))], &[], OutputOptions { create_folders: true }).unwrap_err();
        assert!(err.to_string().contains("is a file") || err.to_string().contains("not a folder"), "{err}");
        let ro = d.join("ro.npy");
        fs::write(&ro, b"keep").unwrap();
        let mut perm = fs::metadata(&ro).unwrap().permissions();
        perm.set_readonly(true);
        fs::set_permissions(&ro, perm).unwrap();
        let err = check_outputs(&[("--out", &ro)], &[], opts).unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        // No probe file is left behind.
        let left: Vec<_> = fs::read_dir(&d).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(crate::TEMP_SUFFIX)).collect();
        assert!(left.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_loop_says_what_it_is() {
        let d = scratch("loop");
        let (l1, l2) = (d.join("l1"), d.join("l2"));
        std::os::unix::fs::symlink("l2", &l1).unwrap();
        std::os::unix::fs::symlink("l1", &l2).unwrap();
        let err = check_outputs(&[("--out", &l1)], &[], OutputOptions::default()).unwrap_err();
        assert!(err.to_string().contains("too many levels of symbolic links"), "{err}");
        let e = fs::metadata(&l1).unwrap_err();
        assert!(io_reason(&e).contains("loop of symbolic links"), "{}", io_reason(&e));
    }
}
