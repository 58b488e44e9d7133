//! Where the items of a data set come from, and their order.
//!
//! A [`Source`] is a folder of images (walked recursively), a list file of image paths (one a
//! line), or one `.npy` array whose rows are the items (read through a memory map). Every item
//! has an *id*: its path relative to the data set's root with `/` separators (images), or its
//! zero-padded row number (`.npy`). Items are sorted by id, so the order — and with it the
//! blocks, shards and outputs — does not depend on the order in which the file system lists
//! them.

use attrib::images::is_image_path;
use attrib::{AttribError, Result};
use std::path::{Component, Path, PathBuf};

/// The kind of a data set's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A folder of PNG/JPEG images, walked recursively (hidden entries skipped).
    Folder,
    /// A text file of image paths, one a line (blank lines and `#` comments skipped); relative
    /// paths are relative to the list file's folder.
    List,
    /// A float `.npy` array `[N, ...]`: row `i` is item `i`.
    Npy,
}

/// One item of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemRef {
    /// An image file.
    Image(PathBuf),
    /// Row `i` of the source's `.npy` array.
    Row(usize),
}

/// A data set: its items, sorted by id.
#[derive(Debug, Clone)]
pub struct Source {
    /// What the source is.
    pub kind: SourceKind,
    /// The path given (folder, list file or `.npy`).
    pub path: PathBuf,
    /// Item ids, sorted (see the module docs), parallel to `items`.
    pub ids: Vec<String>,
    /// The items, in id order.
    pub items: Vec<ItemRef>,
}

fn io(action: &'static str, path: &Path, e: impl ToString) -> AttribError {
    AttribError::Io { action, path: path.to_path_buf(), reason: e.to_string() }
}

impl Source {
    /// Open a data set: a folder, a `.npy` file, a single image, or any other file read as a
    /// list of paths.
    pub fn open(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(|e| io("cannot open data set", path, attrib::fs::io_reason(&e)))?;
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if meta.is_dir() {
            Source::folder(path)
        } else if ext.as_deref() == Some("npy") {
            Source::npy(path)
        } else if is_image_path(path) {
            let id = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
            Ok(Source { kind: SourceKind::List, path: path.to_path_buf(), ids: vec![id], items: vec![ItemRef::Image(path.to_path_buf())] })
        } else {
            Source::list(path)
        }
    }

    /// The images under `dir`, recursively. Hidden files and folders (names starting with `.`)
    /// and symbolic links to folders are skipped.
    pub fn folder(dir: &Path) -> Result<Source> {
        let mut found = Vec::new();
        walk(dir, dir, &mut found)?;
        if found.is_empty() {
            return Err(io("no images in", dir, "the folder and its sub-folders hold no .png/.jpg/.jpeg files"));
        }
        Ok(Source::sorted(SourceKind::Folder, dir, found))
    }

    /// The images a list file names, one path a line.
    pub fn list(file: &Path) -> Result<Source> {
        let text = std::fs::read_to_string(file).map_err(|e| io("cannot read list file", file, attrib::fs::io_reason(&e)))?;
        let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut paths = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let p = normalize(&base.join(line));
            if !is_image_path(&p) {
                return Err(io(
                    "cannot read list file",
                    file,
                    format!("line {}: `{line}` is not a .png/.jpg/.jpeg path (a list file names one image a line)", n + 1),
                ));
            }
            paths.push(p);
        }
        if paths.is_empty() {
            return Err(io("cannot read list file", file, "it names no image (one path a line; `#` starts a comment)"));
        }
        let root = common_folder(&paths);
        let found = paths
            .into_iter()
            .map(|p| {
                let id = id_of(p.strip_prefix(&root).unwrap_or(&p));
                (id, p)
            })
            .collect();
        let mut src = Source::sorted(SourceKind::List, file, found);
        let before = src.ids.len();
        src.dedup();
        if src.ids.len() != before {
            return Err(io("cannot read list file", file, "it names the same image more than once"));
        }
        Ok(src)
    }

    /// The rows of a `.npy` array (only its header is read here).
    pub fn npy(file: &Path) -> Result<Source> {
        let header = attrib::convert::read_npy_header(file)?;
        let n = *header.shape.first().ok_or_else(|| io("cannot read .npy", file, "a 0-d array has no rows"))?;
        let width = (n.saturating_sub(1)).to_string().len().max(6);
        let ids = (0..n).map(|i| format!("{i:0width$}")).collect();
        Ok(Source { kind: SourceKind::Npy, path: file.to_path_buf(), ids, items: (0..n).map(ItemRef::Row).collect() })
    }

    fn sorted(kind: SourceKind, path: &Path, mut found: Vec<(String, PathBuf)>) -> Source {
        found.sort();
        let (ids, paths): (Vec<String>, Vec<PathBuf>) = found.into_iter().unzip();
        Source { kind, path: path.to_path_buf(), ids, items: paths.into_iter().map(ItemRef::Image).collect() }
    }

    fn dedup(&mut self) {
        let mut keep = Vec::new();
        let mut items = Vec::new();
        for (id, item) in self.ids.drain(..).zip(self.items.drain(..)) {
            if keep.last() != Some(&id) {
                keep.push(id);
                items.push(item);
            }
        }
        self.ids = keep;
        self.items = items;
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for a data set without items.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A digest of the sorted ids (FNV-1a, 64 bits, hex): a rerun into the same output folder
    /// checks that the data set is the same one.
    pub fn digest(&self) -> String {
        let mut h = Fnv::new();
        for id in &self.ids {
            h.update(id.as_bytes());
            h.update(&[0]);
        }
        h.hex()
    }
}

/// FNV-1a, 64 bits: a cheap, stable fingerprint (not a cryptographic hash).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    /// A fresh hash.
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Hash more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }

    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv::new()
    }
}

/// The id of a relative path: its components joined by `/`.
fn id_of(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| io("cannot list folder", dir, attrib::fs::io_reason(&e)))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("cannot list folder", dir, attrib::fs::io_reason(&e)))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| io("cannot list folder", dir, attrib::fs::io_reason(&e)))?;
        if ty.is_dir() {
            walk(root, &path, found)?;
        } else if is_image_path(&path) && !(ty.is_symlink() && path.is_dir()) {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            found.push((id_of(rel), path));
        }
    }
    Ok(())
}

/// `p` without `.` components and with `..` applied lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The deepest folder that holds every path.
fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let mut common: Vec<Component> = paths[0].parent().map(|p| p.components().collect()).unwrap_or_default();
    for p in &paths[1..] {
        let parts: Vec<Component> = p.parent().map(|p| p.components().collect()).unwrap_or_default();
        let same = common.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        common.truncate(same);
    }
    common.iter().collect()
}

/// A deterministic slice of the data set's blocks: `K/N` (1-based `K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1-based.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole data set.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// The blocks `0..blocks` of this shard: contiguous, in order, the shards of a count
    /// covering every block once (sizes differ by at most one).
    pub fn blocks(&self, blocks: usize) -> std::ops::Range<usize> {
        let start = (self.index - 1) * blocks / self.count;
        let end = self.index * blocks / self.count;
        start..end
    }

    /// `K-of-N`, for file names.
    pub fn tag(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = AttribError;

    fn from_str(s: &str) -> Result<Shard> {
        let bad = || AttribError::param("shard", format!("`{s}`: write the shard as K/N with 1 <= K <= N, e.g. `--shard 2/8`"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_blocks_once_in_order() {
        for blocks in 0..40 {
            for count in 1..9 {
                let mut next = 0;
                for index in 1..=count {
                    let r = Shard { index, count }.blocks(blocks);
                    assert_eq!(r.start, next);
                    assert!(r.len() + 1 >= blocks / count && r.len() <= blocks.div_ceil(count));
                    next = r.end;
                }
                assert_eq!(next, blocks);
            }
        }
    }

    #[test]
    fn shard_parsing() {
        assert_eq!("2/8".parse::<Shard>().unwrap(), Shard { index: 2, count: 8 });
        for bad in ["0/2", "3/2", "2", "a/b", "1/0"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("K/N"), "{e}");
        }
    }

    #[test]
    fn paths_normalize_and_share_a_folder() {
        assert_eq!(normalize(Path::new("/a/./b/../c.png")), PathBuf::from("/a/c.png"));
        let c = common_folder(&[PathBuf::from("/d/x/a.png"), PathBuf::from("/d/y/b.png"), PathBuf::from("/d/x/z/c.png")]);
        assert_eq!(c, PathBuf::from("/d"));
        assert_eq!(id_of(Path::new("x/z/c.png")), "x/z/c.png");
    }
}
