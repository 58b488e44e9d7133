//! One scratch folder per test process, for the files attrib's tests write (traced models,
//! `.npy` and PNG inputs, CLI outputs). Some are shared by several tests of the process (a
//! model traced once), so the folder lives as long as the process and is removed when the
//! process exits, whether its tests passed or failed. A process that is killed cannot remove
//! its own: the first [`scratch_dir`] call of a later test process removes the folders of
//! processes that no longer run.
//!
//! ```
//! let model = attrib_scratch::scratch_dir().join("model.pt");
//! assert!(model.parent().unwrap().is_dir());
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Name of the scratch folders in the system's temporary folder: this prefix and a process id.
pub const PREFIX: &str = "attrib-tests-";

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

/// The scratch folder of this test process (created on the first call).
pub fn scratch_dir() -> &'static Path {
    SCRATCH.get_or_init(|| {
        let root = std::env::temp_dir();
        remove_folders_of_dead_processes(&root);
        let dir = root.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create the scratch folder {dir:?}: {e}"));
        // SAFETY: registers a function without arguments that touches only a set `OnceLock`.
        // libtest leaves `main` through `exit` (status 0 or 101), which runs it once.
        assert_eq!(unsafe { libc::atexit(remove_own_folder) }, 0, "cannot register the scratch folder's removal");
        dir
    })
}

extern "C" fn remove_own_folder() {
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes the scratch folders in `root` whose process no longer runs. Only where `/proc` lists
/// the processes; elsewhere nothing is removed.
pub fn remove_folders_of_dead_processes(root: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new("/proc").join(pid.to_string()).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Set in the child process of [`the_folder_is_removed_when_the_process_exits`].
    const CHILD: &str = "ATTRIB_SCRATCH_CHILD";

    #[test]
    fn writes_a_file_and_prints_its_path() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let file = scratch_dir().join("left.txt");
        std::fs::write(&file, "x").unwrap();
        println!("scratch file: {}", file.display());
        if std::env::var(CHILD).unwrap() == "fail" {
            panic!("a failing test");
        }
    }

    /// Runs this test binary again, once passing and once failing: each time the file its test
    /// wrote is gone after the process ends.
    #[test]
    fn the_folder_is_removed_when_the_process_exits() {
        for outcome in ["pass", "fail"] {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "tests::writes_a_file_and_prints_its_path", "--nocapture", "--test-threads=1"])
                .env(CHILD, outcome)
                .output()
                .unwrap();
            assert_eq!(out.status.success(), outcome == "pass", "{out:?}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let file = stdout.lines().find_map(|l| l.split_once("scratch file: ").map(|(_, path)| path)).unwrap_or_else(|| panic!("no path printed: {stdout}"));
            let file = Path::new(file);
            assert!(file.starts_with(std::env::temp_dir()), "{file:?}");
            assert!(!file.exists() && !file.parent().unwrap().exists(), "{outcome}: {file:?} was left behind");
        }
    }

    #[test]
    fn folders_of_dead_processes_are_removed_and_others_kept() {
        let root = scratch_dir().join("root");
        // pid 1 always runs; 4194305 is above the kernel's largest pid; a name that is not ours stays.
        for name in [format!("{PREFIX}1"), format!("{PREFIX}4194305"), "other-4194305".into()] {
            std::fs::create_dir_all(root.join(name).join("inside")).unwrap();
        }
        remove_folders_of_dead_processes(&root);
        if Path::new("/proc/self").exists() {
            assert!(!root.join(format!("{PREFIX}4194305")).exists(), "the dead process's folder stays");
        }
        assert!(root.join(format!("{PREFIX}1")).is_dir() && root.join("other-4194305").is_dir());
    }
}
