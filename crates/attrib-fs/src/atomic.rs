//! Atomic replacement of a file: temporary file in the same folder, flush, fsync, rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Ending of the temporary files ([`stage`]) and probe files ([`crate::check_outputs`]):
/// `.NAME.PID-N.attrib-tmp` next to the target. Only a process killed while writing (or while
/// probing) leaves one behind (the target is intact); the next write of the same target deletes
/// a temporary file, the next output check in the same folder a probe file.
pub const TEMP_SUFFIX: &str = ".attrib-tmp";

/// Most symbolic links followed from one path before giving up (as the kernel's `ELOOP`).
const MAX_LINKS: usize = 40;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The folder of `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh name in `dir` for a temporary file that will replace `name`.
pub(crate) fn temp_name(dir: &Path, name: &str) -> PathBuf {
    // Keep the name within the usual 255-byte limit of a file name.
    let short = short_name(name);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{short}.{}-{n}{TEMP_SUFFIX}", std::process::id()))
}

/// Delete the temporary files that earlier writes of `name` in `dir` left behind when their
/// process was killed mid-write (SIGKILL, or an uncaught SIGINT): `.NAME.PID-N.attrib-tmp` whose
/// process `PID` no longer runs. Files of running processes (this one included) are left alone,
/// and where it cannot be told whether a process runs (no `/proc`), nothing is deleted.
pub(crate) fn sweep_leftovers(dir: &Path, name: &str) {
    let prefix = format!(".{}.", short_name(name));
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(TEMP_SUFFIX)) else { continue };
        let Some(pid) = rest.split_once('-').and_then(|(pid, _)| pid.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && process_gone(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` is known not to run (only where `/proc` tells).
fn process_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new("/proc").join(pid.to_string()).exists()
}

/// `name` cut to 180 bytes (at a character boundary), as it appears in temporary names.
fn short_name(name: &str) -> &str {
    let mut cut = name.len().min(180);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    &name[..cut]
}

/// The file that a write to `path` lands in: symbolic links are followed, as `File::create`
/// follows them (the link stays, its target is replaced). A path that is not a link is returned
/// as is. Errors on a loop of links.
pub fn resolve_target(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p)?;
                // An absolute link replaces the path; a relative one is relative to its folder.
                p = parent_dir(&p).join(link);
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!("too many levels of symbolic links from {path:?} (the links form a loop)")))
}

/// True for an existing file that is not a regular file (a device such as `/dev/null`, a FIFO):
/// such a target is written in place, as renaming over it would replace the device.
fn is_special(path: &Path) -> bool {
    fs::metadata(path).map(|m| !m.is_file() && !m.is_dir()).unwrap_or(false)
}

/// A file written and synced under a temporary name next to its target, not yet visible there.
///
/// [`Staged::commit`] renames it over the target; dropping it uncommitted deletes the temporary
/// file and leaves the target as it was.
#[derive(Debug)]
pub struct Staged {
    /// The temporary file; `None` once committed, or for a special target written in place.
    tmp: Option<PathBuf>,
    target: PathBuf,
}

impl Staged {
    /// The file this will replace (symbolic links followed).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Rename the temporary file over the target (atomic on POSIX file systems), then fsync the
    /// folder so that the rename survives a crash.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(tmp) = self.tmp.take() {
            if let Err(e) = fs::rename(&tmp, &self.target) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            sync_dir(&parent_dir(&self.target));
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) {
    // Best effort: some file systems refuse to fsync a folder.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}

/// Write a file for `path` under a temporary name in the same folder: `write` fills it (through a
/// buffer), then it is flushed and fsynced. Nothing is visible at `path` until
/// [`Staged::commit`]. On any error, from `write` or from the disk (full, read-only...), the
/// temporary file is deleted and `path` is untouched.
///
/// The folder must exist. An existing target keeps its permissions; a special file (a device such
/// as `/dev/null`, a FIFO) is written in place, as renaming over it would replace it.
pub fn stage(path: impl AsRef<Path>, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<Staged> {
    let target = resolve_target(path.as_ref())?;
    let name = match target.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{target:?} names no file"))),
    };
    if target.is_dir() {
        return Err(io::Error::other(format!("{target:?} is a folder; name a file inside it")));
    }
    if is_special(&target) {
        let mut w = BufWriter::new(OpenOptions::new().write(true).open(&target)?);
        write(&mut w)?;
        w.flush()?;
        return Ok(Staged { tmp: None, target });
    }
    let dir = parent_dir(&target);
    sweep_leftovers(&dir, &name);
    let (file, tmp) = {
        let mut tries = 0;
        loop {
            let tmp = temp_name(&dir, &name);
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => break (f, tmp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    };
    // From here on, dropping `staged` (an early return on error) deletes the temporary file.
    let staged = Staged { tmp: Some(tmp), target };
    if let Ok(meta) = fs::metadata(&staged.target) {
        // As File::create on an existing file: the file keeps its mode.
        let _ = file.set_permissions(meta.permissions());
    }
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    Ok(staged)
}

/// Replace `path` atomically with what `write` writes: [`stage`] then [`Staged::commit`]. Readers
/// of `path` see the old file or the new one, never a part; on error the old file is intact and
/// no temporary file is left.
pub fn write_atomic(path: impl AsRef<Path>, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    stage(path, write)?.commit()
}

/// Commit staged files in order. On the first failure the files not yet committed are discarded
/// (their targets untouched) and the error names the file that failed.
pub fn commit_all(staged: Vec<Staged>) -> Result<(), (PathBuf, io::Error)> {
    let mut rest = staged.into_iter();
    for s in rest.by_ref() {
        let target = s.target.clone();
        if let Err(e) = s.commit() {
            // `rest` is dropped: the remaining temporary files are deleted.
            return Err((target, e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = attrib_scratch::scratch_dir().join("atomic").join(name);
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .collect()
    }

    /// A writer that accepts `room` bytes, then fails as a full disk does.
    struct FullDisk<'a> {
        inner: &'a mut dyn Write,
        room: usize,
    }

    impl Write for FullDisk<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("No space left on device (os error 28)"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.inner.write(&buf[..n])
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let d = scratch("replace");
        let p = d.join("out.bin");
        fs::write(&p, b"old").unwrap();
        write_atomic(&p, |w| w.write_all(b"new contents")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents");
        write_atomic(d.join("fresh.bin"), |w| w.write_all(b"x")).unwrap();
        assert_eq!(fs::read(d.join("fresh.bin")).unwrap(), b"x");
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    }

    #[test]
    fn a_write_that_fails_part_way_leaves_the_old_file() {
        let d = scratch("full");
        let p = d.join("out.npy");
        fs::write(&p, b"the previous good result").unwrap();
        let big = vec![7u8; 3 << 20];
        let err = write_atomic(&p, |w| {
            let mut full = FullDisk { inner: w, room: 1 << 20 };
            full.write_all(&big)
        })
        .unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"the previous good result");
        assert!(leftovers(&d).is_empty(), "temporary file left: {:?}", leftovers(&d));
        // Nothing at all where there was nothing.
        let q = d.join("never.npy");
        assert!(write_atomic(&q, |_| Err(io::Error::other("encoder failed"))).is_err());
        assert!(!q.exists());
        assert!(leftovers(&d).is_empty());
    }

    #[test]
    fn staged_files_replace_nothing_until_committed() {
        let d = scratch("staged");
        let (a, b) = (d.join("a.txt"), d.join("b.txt"));
        fs::write(&a, b"old a").unwrap();
        fs::write(&b, b"old b").unwrap();
        let sa = stage(&a, |w| w.write_all(b"new a")).unwrap();
        // The second output fails: the first, staged, must not land either.
        let sb = stage(&b, |_| Err(io::Error::other("boom")));
        assert!(sb.is_err());
        drop(sa);
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert_eq!(fs::read(&b).unwrap(), b"old b");
        assert!(leftovers(&d).is_empty());
        let staged = vec![stage(&a, |w| w.write_all(b"new a")).unwrap(), stage(&b, |w| w.write_all(b"new b")).unwrap()];
        assert_eq!(fs::read(&a).unwrap(), b"old a", "staging alone changes nothing");
        commit_all(staged).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        assert!(leftovers(&d).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_modes_kept() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("links");
        let real = d.join("real.txt");
        fs::write(&real, b"old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = d.join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        write_atomic(&link, |w| w.write_all(b"new")).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
        // A loop is an error that says so.
        let (l1, l2) = (d.join("l1"), d.join("l2"));
        std::os::unix::fs::symlink("l2", &l1).unwrap();
        std::os::unix::fs::symlink("l1", &l2).unwrap();
        let err = write_atomic(&l1, |w| w.write_all(b"x")).unwrap_err();
        assert!(err.to_string().contains("too many levels of symbolic links"), "{err}");
        // A folder is refused.
        assert!(write_atomic(&d, |w| w.write_all(b"x")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_written_in_place() {
        if Path::new("/dev/null").exists() {
            use std::os::unix::fs::FileTypeExt;
            write_atomic("/dev/null", |w| w.write_all(b"discarded")).unwrap();
            assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null is still a device");
        }
    }

    #[test]
    fn leftovers_of_killed_writers_are_swept_by_the_next_write() {
        let d = scratch("sweep");
        let target = d.join("attr.npy");
        fs::write(&target, b"old").unwrap();
        // A process that has exited: its pid no longer runs (unless reused at once).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_tmp = d.join(format!(".attr.npy.{dead}-0{TEMP_SUFFIX}"));
        let live_tmp = d.join(format!(".attr.npy.{}-99{TEMP_SUFFIX}", std::process::id()));
        let other_tmp = d.join(format!(".other.npy.{dead}-0{TEMP_SUFFIX}"));
        for t in [&dead_tmp, &live_tmp, &other_tmp] {
            fs::write(t, b"partial").unwrap();
        }
        write_atomic(&target, |w| w.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        if Path::new("/proc/self").exists() && !Path::new("/proc").join(dead.to_string()).exists() {
            assert!(!dead_tmp.exists(), "the dead writer's temporary file is still there");
        }
        assert!(live_tmp.exists(), "a running process's temporary file was deleted");
        assert!(other_tmp.exists(), "another target's temporary file was deleted");
    }
}
