//! A real full disk: a 64 KiB tmpfs, where the machine lets the test mount one (as root on
//! Linux). Elsewhere the test says so and returns; the unit tests of the crate cover the same
//! path with a writer that fails part-way.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("attrib-fs-tmpfs-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Some(Tmpfs(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            eprintln!("note: cannot mount a tmpfs here (needs root on Linux); the unit tests cover a failing writer instead");
            None
        }
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_during_the_write_leaves_the_old_file_intact() {
    let Some(fs) = Tmpfs::mount("full", "64k") else { return };
    let target = fs.path().join("attributions.npy");
    std::fs::write(&target, vec![1u8; 16 << 10]).unwrap();
    let err = attrib_fs::write_atomic(&target, |w| w.write_all(&vec![2u8; 256 << 10])).unwrap_err();
    assert!(attrib_fs::io_reason(&err).contains("disk is full"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), vec![1u8; 16 << 10], "the old file is intact");
    let names: Vec<String> =
        std::fs::read_dir(fs.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["attributions.npy"], "no temporary file is left");
    // The space is back: a write that fits succeeds.
    attrib_fs::write_atomic(&target, |w| w.write_all(b"fits")).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"fits");
}
