//! [`Expanded`]: a method's fan-out as a logical batch of rows built chunk by chunk.

use super::{to_layout, Layout};
use crate::rows::ChunkRows;
use attrib_core::{Result, TorchResultExt};
use tch::{Device, Tensor};

type BuildFn<'a> = Box<dyn Fn(i64, i64, Layout) -> Result<Vec<Tensor>> + 'a>;

/// A logical batch of `total` rows over `n` original samples, built chunk by chunk.
///
/// Row `r` belongs to sample `r % n` (see [`crate::rows`]). `build(start, end)` returns the input tensors of rows
/// `start..end` (one tensor per model input, each with `end - start` rows).
pub struct Expanded<'a> {
    n: i64,
    total: i64,
    build: BuildFn<'a>,
    /// Shape (with one row) and dtype of each input of a row, when known without building one.
    pub(super) row: Option<Vec<(Vec<i64>, tch::Kind)>>,
}

impl<'a> Expanded<'a> {
    /// A batch of `total` rows (a multiple of `n` is usual but not required) built by `build`.
    pub fn new(n: i64, total: i64, build: impl Fn(i64, i64) -> Result<Vec<Tensor>> + 'a) -> Expanded<'a> {
        Expanded { n, total, build: Box::new(move |s, e, _| build(s, e)), row: None }
    }

    /// A batch whose builder writes rows directly in the layout the evaluator asks for
    /// (`build(start, end, layout)`), saving the copy that [`to_layout`] would make. Tensors
    /// returned in another layout are still converted.
    pub fn with_layout(n: i64, total: i64, build: impl Fn(i64, i64, Layout) -> Result<Vec<Tensor>> + 'a) -> Expanded<'a> {
        Expanded { n, total, build: Box::new(build), row: None }
    }

    /// Declare that every row has the shapes and dtypes of a row of `inputs`, so that the
    /// evaluator sizes chunks without building a row first (for builders with state, such as a
    /// reused buffer, building a stray one-row chunk also costs the next chunk its reuse).
    pub fn rows_like(mut self, inputs: &[Tensor]) -> Expanded<'a> {
        self.row = Some(
            inputs
                .iter()
                .map(|t| {
                    let mut size = t.size();
                    if let Some(first) = size.first_mut() {
                        *first = 1;
                    }
                    (size, t.kind())
                })
                .collect(),
        );
        self
    }

    /// The original inputs themselves (`total = n`).
    pub fn identity(inputs: &'a [Tensor]) -> Expanded<'a> {
        let n = batch_rows(inputs);
        Expanded::new(n, n, move |s, e| {
            inputs.iter().map(|x| x.f_narrow(0, s, e - s).ctx("slicing inputs")).collect()
        })
        .rows_like(inputs)
    }

    /// `blocks` copies of the inputs, one after another (row `b * n + i` is input row `i`).
    pub fn repeat(inputs: &'a [Tensor], blocks: i64) -> Expanded<'a> {
        let n = batch_rows(inputs);
        let device = inputs.first().map_or(Device::Cpu, Tensor::device);
        Expanded::new(n, n * blocks, move |s, e| {
            let idx = ChunkRows::new(s, e, n, device).samples()?;
            inputs.iter().map(|x| x.f_index_select(0, &idx).ctx("repeating inputs")).collect()
        })
        .rows_like(inputs)
    }

    /// Number of original samples.
    pub fn n(&self) -> i64 {
        self.n
    }

    /// Number of logical rows.
    pub fn total(&self) -> i64 {
        self.total
    }

    /// The input tensors of rows `start..end`.
    pub fn rows(&self, start: i64, end: i64) -> Result<Vec<Tensor>> {
        (self.build)(start, end, Layout::Contiguous)
    }

    /// The input tensors of rows `start..end` in `layout` (image-like inputs only).
    pub fn rows_in(&self, start: i64, end: i64, layout: Layout) -> Result<Vec<Tensor>> {
        to_layout((self.build)(start, end, layout)?, layout)
    }

    /// Rows `start..end` of this batch as a [`ChunkRows`] (sample and block of each row), index
    /// tensors on `device`.
    pub fn chunk(&self, start: i64, end: i64, device: Device) -> ChunkRows {
        ChunkRows::new(start, end, self.n, device)
    }
}

/// Rows of the first input (0 without inputs: an empty batch).
fn batch_rows(inputs: &[Tensor]) -> i64 {
    inputs.first().and_then(|t| t.size().first().copied()).unwrap_or(0)
}
