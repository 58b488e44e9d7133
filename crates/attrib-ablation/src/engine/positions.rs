//! The perturbation layout: the elements each block changes, listed per (mask row, block) on
//! the host, and the same lists as index tensors on the device.

use super::build::Buffer;
use super::stores::Stores;
use attrib_core::{AttribError, Result, TorchResultExt};
use std::cell::RefCell;
use tch::{Device, Tensor};

/// The elements each perturbation block changes in one input, as flat positions within a row
/// (`0..M`), listed per (mask row, block): a feature group's elements, an occlusion window's box.
/// With one mask row the lists are shared by every sample; with `N` mask rows sample `i` uses
/// row `i`. The lists are made on the host; the index tensors of the device path
/// ([`IndexTensors`]) only when a chunk needs them.
pub(crate) struct Positions {
    /// Elements of one row of the input.
    pub(super) row: i64,
    /// Blocks per mask row.
    pub(super) blocks: i64,
    /// Mask rows: 1 or `N`.
    pub(super) mask_rows: i64,
    /// Every list, concatenated (positions within a row).
    pub(super) pos: Vec<i64>,
    /// Where the list of (mask row `s`, block `b`) starts in `pos` (index `s * blocks + b`).
    pub(super) start: Vec<i64>,
    /// Its length.
    pub(super) count: Vec<i64>,
    /// The device the chunks are built on.
    pub(super) device: Device,
    /// The lists as tensors on the device, made on first use by the index-tensor path.
    pub(super) index: RefCell<Option<IndexTensors>>,
    /// The rows of the last chunk, reused as the next chunk's buffer.
    pub(super) buffer: RefCell<Option<Buffer>>,
    /// The inputs and replacement values in storage order, per layout (see [`Stores`]).
    pub(super) stores: RefCell<Vec<Stores>>,
    /// Write perturbed elements with host copies (CPU tensors) rather than index tensors. Set
    /// from the device; the unit tests clear it to exercise the tensor path on the CPU.
    pub(super) host_path: bool,
    /// Let the index-tensor path pad the lists ([`IndexTensors::padded`]); the unit tests clear
    /// it to exercise the ragged lists.
    pub(super) allow_padding: bool,
}

/// [`Positions`]'s lists on the device, for the index-tensor path (devices other than the CPU).
pub(super) struct IndexTensors {
    pub(super) pos: Tensor,
    pub(super) start: Tensor,
    pub(super) count: Tensor,
    /// `[mask_rows * blocks, P]`: every list padded to the longest, `P`, by repeating its last
    /// position (writing an element twice with the same value changes nothing). Present when no
    /// list is empty and padding at most doubles the positions; then a chunk needs 4 operations
    /// over `rows × P` indices instead of about 14 over the exact pairs.
    pub(super) padded: Option<Tensor>,
}

/// Where the replacement values of a perturbed row come from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The row's own sample: `values` are baselines (ablation, occlusion).
    Own,
    /// Perturbed row `r` reads row `host[r]` of `values` (permutation: `values` are the inputs);
    /// `tensor` holds the same indices on the device.
    Rows { host: &'a [i64], tensor: &'a Tensor },
}

/// Largest number of listed positions of all blocks together (int64, 32 MiB). Beyond it (dense
/// occlusion windows with small strides on large inputs) the methods build dense masks per chunk.
pub(crate) const MAX_POSITIONS: i64 = 1 << 22;

/// Mean fraction of a row per block above which a dense selection is used instead of
/// [`Positions`].
pub(crate) const DENSE_ABOVE: f64 = 0.25;

impl Positions {
    /// Lists from the block of every element (`[S, M]`, [`Groups::block_of_elements`](super::Groups::block_of_elements)); every
    /// element belongs to one block. One host copy of `block_of`; a counting sort on the host
    /// (a dozen small tensor operations cost more than the whole sort for image-sized rows).
    pub fn from_blocks(block_of: &Tensor, blocks: i64) -> Result<Positions> {
        let size = block_of.size();
        let (s, m) = (size[0], size[1]);
        let ctx = "listing the elements of each group";
        let ids = Vec::<i64>::try_from(&block_of.f_to_device(Device::Cpu).and_then(|b| b.f_reshape([-1])).ctx(ctx)?).ctx(ctx)?;
        let (mu, bu) = (m.max(1) as usize, blocks as usize);
        let mut count = vec![0i64; s as usize * bu];
        for (i, &b) in ids.iter().enumerate() {
            if b < 0 || b >= blocks {
                return Err(AttribError::Internal(format!("element {i} is in block {b} of {blocks}")));
            }
            count[(i / mu) * bu + b as usize] += 1;
        }
        // Lists in order (mask row, block); each mask row's lists cover its M elements, so the
        // lists of row `s` start at `s * M`.
        let start = list_starts(&count);
        let mut next = start.clone();
        let mut pos = vec![0i64; ids.len()];
        for (i, &b) in ids.iter().enumerate() {
            let l = (i / mu) * bu + b as usize;
            pos[next[l] as usize] = (i % mu) as i64;
            next[l] += 1;
        }
        Ok(Positions::from_host(m, blocks, s, pos, start, count, block_of.device()))
    }

    /// Lists given on the host, one per block, shared by every sample.
    pub fn from_lists(lists: &[Vec<i64>], row: i64, device: Device) -> Result<Positions> {
        let count: Vec<i64> = lists.iter().map(|l| l.len() as i64).collect();
        let start = list_starts(&count);
        if let Some(bad) = lists.iter().flatten().find(|&&p| p < 0 || p >= row) {
            return Err(AttribError::Internal(format!("listed position {bad} outside a row of {row} elements")));
        }
        let pos: Vec<i64> = lists.iter().flatten().copied().collect();
        Ok(Positions::from_host(row, lists.len() as i64, 1, pos, start, count, device))
    }

    fn from_host(row: i64, blocks: i64, mask_rows: i64, pos: Vec<i64>, start: Vec<i64>, count: Vec<i64>, device: Device) -> Positions {
        Positions {
            row,
            blocks,
            mask_rows,
            pos,
            start,
            count,
            device,
            index: RefCell::new(None),
            buffer: RefCell::new(None),
            stores: RefCell::new(Vec::new()),
            host_path: device == Device::Cpu,
            allow_padding: true,
        }
    }

    /// Mean fraction of a row that one block changes.
    pub fn density(&self) -> f64 {
        let total: i64 = self.count.iter().sum();
        total as f64 / (self.count.len().max(1) as f64 * self.row.max(1) as f64)
    }

    /// The lists as index tensors on the device (made once).
    pub(super) fn index(&self) -> Result<std::cell::Ref<'_, IndexTensors>> {
        if self.index.borrow().is_none() {
            let ctx = "listing the perturbed elements";
            let to_dev = |v: &[i64]| Tensor::f_from_slice(v).and_then(|t| t.f_to_device(self.device)).ctx(ctx);
            let longest = self.count.iter().copied().max().unwrap_or(0);
            let total: i64 = self.count.iter().sum();
            let lists = self.count.len() as i64;
            let padded = if !self.allow_padding || longest == 0 || self.count.contains(&0) || lists * longest > 2 * total {
                None
            } else {
                let mut v = Vec::with_capacity((lists * longest) as usize);
                for (&a, &c) in self.start.iter().zip(&self.count) {
                    v.extend((0..longest).map(|j| self.pos[(a + j.min(c - 1)) as usize]));
                }
                Some(to_dev(&v)?.f_reshape([lists, longest]).ctx(ctx)?)
            };
            *self.index.borrow_mut() =
                Some(IndexTensors { pos: to_dev(&self.pos)?, start: to_dev(&self.start)?, count: to_dev(&self.count)?, padded });
        }
        std::cell::Ref::filter_map(self.index.borrow(), |i| i.as_ref())
            .map_err(|_| AttribError::Internal("element index tensors were not made".into()))
    }
}

/// Where each of a run of lists with lengths `count`, stored one after another, starts.
fn list_starts(count: &[i64]) -> Vec<i64> {
    count
        .iter()
        .scan(0i64, |acc, &c| {
            let at = *acc;
            *acc += c;
            Some(at)
        })
        .collect()
}
