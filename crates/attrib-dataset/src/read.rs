//! Reading items: images decoded and preprocessed one file at a time (as `attrib explain` does),
//! `.npy` rows copied out of a memory map; and the reader thread that prepares the next block
//! while the current one is explained.

use crate::source::{ItemRef, Source};
use attrib::images::load_image;
use attrib::{AttribError, ImageTransform, Normalize, Result, TorchResultExt};
use std::path::Path;
use std::sync::mpsc;
use tch::{Kind, Tensor};

/// How image items are preprocessed: torchvision-exact geometry and channels, then
/// normalisation (the same two steps, in the same order, as `attrib explain`; `.npy` rows are
/// used as they are).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preprocess {
    /// Channels, resize and centre crop (its `normalize` is not used: see `normalize`).
    pub geometry: ImageTransform,
    /// Per-channel normalisation, applied to the item as a `[1, C, H, W]` batch.
    pub normalize: Option<Normalize>,
}

/// One item read: its position in the data set and its model input `[1, ...]` (float32, CPU).
#[derive(Debug)]
pub struct ReadItem {
    /// Index of the item in the sorted data set.
    pub pos: usize,
    /// The model input of the item, with a batch dimension of 1.
    pub input: Tensor,
}

/// A block of items read, in data-set order.
#[derive(Debug)]
pub struct ReadBlock {
    /// The block's index in the data set.
    pub index: usize,
    /// Its items.
    pub items: Vec<ReadItem>,
}

/// Reads items of one source.
pub struct Reader {
    source: Source,
    preprocess: Preprocess,
    map: Option<NpyMap>,
}

/// A `.npy` array mapped into memory.
struct NpyMap {
    map: memmap2::Mmap,
    offset: usize,
    row_shape: Vec<i64>,
    row_elems: usize,
    item_size: usize,
}

impl NpyMap {
    fn open(path: &Path) -> Result<NpyMap> {
        let h = attrib::convert::read_npy_header(path)?;
        let bad = |why: String| AttribError::Io { action: "cannot read .npy", path: path.to_path_buf(), reason: why };
        if h.fortran_order {
            return Err(bad("the array is in Fortran order; save it C-ordered (np.ascontiguousarray)".into()));
        }
        let code = h.descr.as_str();
        if !matches!(code, "<f4" | "<f8" | "=f4" | "=f8") {
            return Err(bad(format!("items must be float32 or float64 (little-endian), the array holds {}", h.dtype_name())));
        }
        let file = std::fs::File::open(path).map_err(|e| bad(attrib::fs::io_reason(&e)))?;
        // SAFETY: the map is read-only; a file truncated by another process while mapped would
        // fault, as reading any file another process truncates fails.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(attrib::fs::io_reason(&e)))?;
        let row_shape: Vec<i64> = h.shape[1..].iter().map(|&d| d as i64).collect();
        let row_elems = h.shape[1..].iter().product();
        Ok(NpyMap { map, offset: h.data_offset as usize, row_shape, row_elems, item_size: h.item_size })
    }

    /// Row `i` as a `[1, ...]` float32 tensor.
    fn row(&self, i: usize) -> Result<Tensor> {
        let bytes = self.row_elems * self.item_size;
        let start = self.offset + i * bytes;
        let raw = &self.map[start..start + bytes];
        let values: Vec<f32> = if self.item_size == 4 {
            raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        } else {
            raw.chunks_exact(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32).collect()
        };
        let mut shape = vec![1i64];
        shape.extend(&self.row_shape);
        Tensor::f_from_slice(&values).and_then(|t| t.f_reshape(&shape)).ctx("reading a .npy row")
    }
}

impl Reader {
    /// A reader of `source` (a `.npy` source is mapped into memory here).
    pub fn new(source: Source, preprocess: Preprocess) -> Result<Reader> {
        let map = match source.kind {
            crate::source::SourceKind::Npy => Some(NpyMap::open(&source.path)?),
            _ => None,
        };
        Ok(Reader { source, preprocess, map })
    }

    /// The data set read.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Item `pos` as a `[1, ...]` float32 CPU tensor.
    pub fn item(&self, pos: usize) -> Result<Tensor> {
        match &self.source.items[pos] {
            ItemRef::Row(i) => self.map.as_ref().ok_or_else(|| AttribError::Internal("npy source without a map".into()))?.row(*i),
            ItemRef::Image(path) => {
                let img = load_image(path, &self.preprocess.geometry)?;
                let shape: Vec<i64> = std::iter::once(1).chain(img.shape().iter().map(|&d| d as i64)).collect();
                let data: Vec<f32> = img.iter().copied().collect();
                let x = Tensor::f_from_slice(&data).and_then(|t| t.f_reshape(&shape)).ctx("image to tensor")?;
                match &self.preprocess.normalize {
                    Some(n) => n.apply_to_batch(&x).map_err(|e| match e {
                        AttribError::InvalidParameter { .. } => AttribError::InputShape(format!("{}: {e}", path.display())),
                        other => other,
                    }),
                    None => Ok(x),
                }
            }
        }
    }

    /// The items `positions` as one block.
    pub fn block(&self, index: usize, positions: std::ops::Range<usize>) -> Result<ReadBlock> {
        let items = positions.map(|pos| Ok(ReadItem { pos, input: self.item(pos)?.f_to_kind(Kind::Float).ctx("item dtype")? })).collect::<Result<_>>()?;
        Ok(ReadBlock { index, items })
    }

    /// Read `blocks` (block index, item positions) on a thread of its own, one block ahead of
    /// the consumer: the returned iterator yields them in order; at most two blocks wait in
    /// memory besides the one the consumer holds. A read error ends the stream with that error.
    pub fn stream(self, blocks: Vec<(usize, std::ops::Range<usize>)>) -> Result<BlockStream> {
        let (tx, rx) = mpsc::sync_channel::<Result<ReadBlock>>(1);
        let handle = std::thread::Builder::new()
            .name("attrib-dataset-reader".into())
            .spawn(move || {
                for (index, range) in blocks {
                    let block = self.block(index, range);
                    let failed = block.is_err();
                    if tx.send(block).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| AttribError::Internal(format!("cannot start the reader thread: {e}")))?;
        Ok(BlockStream { rx, handle: Some(handle) })
    }
}

/// Blocks read ahead by [`Reader::stream`].
pub struct BlockStream {
    rx: mpsc::Receiver<Result<ReadBlock>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Iterator for BlockStream {
    type Item = Result<ReadBlock>;

    fn next(&mut self) -> Option<Result<ReadBlock>> {
        match self.rx.recv() {
            Ok(b) => Some(b),
            Err(_) => {
                // The reader finished.
                match self.handle.take() {
                    Some(h) => {
                        if h.join().is_err() {
                            return Some(Err(AttribError::Internal("the reader thread failed".into())));
                        }
                        None
                    }
                    None => None,
                }
            }
        }
    }
}
