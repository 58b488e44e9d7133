//! Chunked evaluation of a model on an expanded batch, and chunked gradients of the target
//! outputs with respect to the inputs.
//!
//! Methods describe their fan-out as an [`Expanded`] batch: `total` logical rows built on demand,
//! laid out in blocks of the `n` original rows, so that logical row `r` belongs to original
//! sample `r % n` (Captum's "repeat" layout). Targets and tensor forward arguments follow the
//! rows they belong to. The [`Evaluator`] cuts the rows into chunks sized from the memory budget
//! (see [`crate::memory`]), halves a chunk that runs out of memory, and hands each chunk's result
//! to the caller, so methods can reduce as they go or collect everything.
//!
//! Inside the loop nothing waits on the device: no `.item()`, no host copies; range checks
//! happen on the host against output shapes.
//!
//! The module is split by responsibility: [`Expanded`] batches (`expanded`), the prepared call
//! (`prepared`), the evaluations methods ask for and the checks of a model call's output
//! (`calls`), the chunk loop (`chunk_loop`), chunk sizing and the tail rule (`sizing`), how a
//! chunk runs and the trial that chooses it (`variant`), and channels-last layouts (`layout`).

mod calls;
mod chunk_loop;
mod expanded;
mod layout;
mod prepared;
mod sizing;
mod variant;

pub use calls::Gradients;
pub use expanded::Expanded;
pub use layout::{channels_last_applies, channels_last_order, to_layout, Layout};
pub use prepared::{expand_extra, inputs_on_device, Prepared};
pub use sizing::{chunk_end, longest_chunk, TAIL_SHARE};
pub use variant::{Variant, INFERENCE_ROWS_DIVISOR};

use attrib_core::{BatchOptions, Model, Result};
use std::cell::Cell;
use tch::Device;

/// The shared batched evaluator. Create one per attribution call.
pub struct Evaluator<'m> {
    model: &'m dyn Model,
    options: BatchOptions,
    device: Device,
    /// Rows per chunk learned so far for forward-only work (from the probe, then from
    /// out-of-memory back-off); gradients cost more per row and are sized separately.
    learned_forward: Cell<Option<usize>>,
    learned_gradient: Cell<Option<usize>>,
    /// How forward-only and gradient chunks run once decided (`None`: not yet).
    variant_forward: Cell<Option<Variant>>,
    variant_gradient: Cell<Option<Variant>>,
}

impl<'m> Evaluator<'m> {
    /// An evaluator for `model` with the given batching options.
    pub fn new(model: &'m dyn Model, options: BatchOptions) -> Result<Evaluator<'m>> {
        let options = options.check()?;
        Ok(Evaluator {
            model,
            options,
            device: model.device(),
            learned_forward: Cell::new(options.max_batch),
            learned_gradient: Cell::new(options.max_batch),
            variant_forward: Cell::new(None),
            variant_gradient: Cell::new(None),
        })
    }

    /// The model's device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The model.
    pub fn model(&self) -> &'m dyn Model {
        self.model
    }

    /// The longest chunk this evaluator hands a builder whose chunks are `rows` long (a short
    /// tail may join the last chunk; never beyond `max_batch`). See [`longest_chunk`].
    pub fn longest_chunk(&self, rows: usize) -> usize {
        longest_chunk(rows, self.options.max_batch)
    }

    /// Rows per gradient chunk in use after the probe (for metadata and tests).
    pub fn chunk_rows(&self) -> Option<usize> {
        self.learned_gradient.get()
    }

    /// Rows per forward-only chunk in use after the probe (for metadata and tests).
    pub fn forward_chunk_rows(&self) -> Option<usize> {
        self.learned_forward.get()
    }

    /// Layout of image-like inputs in use for forward-only work (`None` while undecided), for
    /// metadata and tests.
    pub fn forward_layout(&self) -> Option<Layout> {
        self.variant_forward.get().map(|v| v.layout)
    }

    /// How forward-only chunks run (`None` while undecided), for metadata and tests.
    pub fn forward_variant(&self) -> Option<Variant> {
        self.variant_forward.get()
    }

    /// Layout of image-like inputs in use for gradient work (`None` while undecided).
    pub fn gradient_layout(&self) -> Option<Layout> {
        self.variant_gradient.get().map(|v| v.layout)
    }
}
