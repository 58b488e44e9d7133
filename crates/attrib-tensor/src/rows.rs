//! The row layout of an expanded batch, in one place.
//!
//! Methods fan their `n` original samples out into `total` logical rows laid out in blocks of
//! `n` (Captum's "repeat" layout, step-major): row `r` belongs to sample `r % n` and to block
//! (integration step, perturbation, noisy copy) `r / n`. Everything that maps rows to samples or
//! blocks — the evaluator expanding targets and forward arguments, the methods building a
//! chunk's rows and reducing its results — goes through [`ChunkRows`] (or [`sample_of`] /
//! [`block_of`] for a single row), so the rule is written once.

use attrib_core::{Result, TorchResultExt};
use std::ops::Range;
use tch::{Device, Kind, Tensor};

/// The original sample of logical row `r` of a batch over `n` samples: `r % n`.
#[inline]
pub fn sample_of(r: i64, n: i64) -> i64 {
    r % n
}

/// The block (step, perturbation, copy) of logical row `r` of a batch over `n` samples: `r / n`.
#[inline]
pub fn block_of(r: i64, n: i64) -> i64 {
    r / n
}

/// The logical rows `start..end` of one chunk of an expanded batch over `n` samples, and the
/// device its index tensors go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRows {
    /// First logical row of the chunk.
    pub start: i64,
    /// One past the last logical row.
    pub end: i64,
    /// Original samples per block.
    pub n: i64,
    /// Device of the index tensors ([`ChunkRows::samples`], [`ChunkRows::blocks`]).
    pub device: Device,
}

impl ChunkRows {
    /// Rows `start..end` of a batch over `n` samples, index tensors on `device`.
    pub fn new(start: i64, end: i64, n: i64, device: Device) -> ChunkRows {
        ChunkRows { start, end, n, device }
    }

    /// Rows `range` of a batch over `n` samples.
    pub fn of(range: Range<i64>, n: i64, device: Device) -> ChunkRows {
        ChunkRows::new(range.start, range.end, n, device)
    }

    /// Number of rows in the chunk.
    pub fn len(&self) -> i64 {
        (self.end - self.start).max(0)
    }

    /// True when the chunk holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunk's rows as a range.
    pub fn range(&self) -> Range<i64> {
        self.start..self.end
    }

    /// The original sample of logical row `r`.
    pub fn sample(&self, r: i64) -> i64 {
        sample_of(r, self.n)
    }

    /// The block of logical row `r`.
    pub fn block(&self, r: i64) -> i64 {
        block_of(r, self.n)
    }

    /// The original sample of each logical row `a..b` (any rows, not only the chunk's), `[b - a]`
    /// int64 on the device.
    pub fn samples_of(&self, a: i64, b: i64) -> Result<Tensor> {
        Tensor::f_arange_start(a, b, (Kind::Int64, self.device)).and_then(|r| r.f_remainder(self.n)).ctx("row indices")
    }

    /// The block of each logical row `a..b`, `[b - a]` int64 on the device.
    pub fn blocks_of(&self, a: i64, b: i64) -> Result<Tensor> {
        Tensor::f_arange_start(a, b, (Kind::Int64, self.device)).and_then(|r| r.f_floor_divide_scalar(self.n)).ctx("row indices")
    }

    /// The original sample of each row of the chunk, `[len]` int64 on the device.
    pub fn samples(&self) -> Result<Tensor> {
        self.samples_of(self.start, self.end)
    }

    /// The block of each row of the chunk, `[len]` int64 on the device.
    pub fn blocks(&self) -> Result<Tensor> {
        self.blocks_of(self.start, self.end)
    }

    /// The original sample of each row of the chunk, on the host.
    pub fn samples_host(&self) -> impl Iterator<Item = i64> + '_ {
        self.range().map(move |r| self.sample(r))
    }

    /// The block of each row of the chunk, on the host.
    pub fn blocks_host(&self) -> impl Iterator<Item = i64> + '_ {
        self.range().map(move |r| self.block(r))
    }

    /// Whether the chunk starting at `other_start` lists the samples in the same order as this
    /// one (starts that differ by a multiple of `n`).
    pub fn same_order_as(&self, other_start: i64) -> bool {
        (self.start - other_start).rem_euclid(self.n) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_map_to_samples_and_blocks() {
        let c = ChunkRows::new(5, 11, 3, Device::Cpu);
        assert_eq!(c.len(), 6);
        assert_eq!(c.samples_host().collect::<Vec<_>>(), vec![2, 0, 1, 2, 0, 1]);
        assert_eq!(c.blocks_host().collect::<Vec<_>>(), vec![1, 2, 2, 2, 3, 3]);
        assert_eq!(Vec::<i64>::try_from(&c.samples().unwrap()).unwrap(), vec![2, 0, 1, 2, 0, 1]);
        assert_eq!(Vec::<i64>::try_from(&c.blocks().unwrap()).unwrap(), vec![1, 2, 2, 2, 3, 3]);
        assert!(c.same_order_as(2) && c.same_order_as(8) && !c.same_order_as(6));
        assert!(ChunkRows::new(4, 4, 3, Device::Cpu).is_empty());
    }
}
