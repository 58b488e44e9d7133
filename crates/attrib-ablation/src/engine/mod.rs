//! Shared machinery of the perturbation methods: feature groups resolved against the inputs, the
//! perturbation fan-out through the evaluator, and the scatter of per-group output changes back
//! onto the input elements.
//!
//! ## Building a chunk of perturbed rows
//! Row `r` of the expanded batch is perturbation (block) `r / n` of sample `r % n`, the
//! evaluator's row layout ([`attrib_tensor::ChunkRows`], which every row-to-sample mapping here
//! goes through). A chunk is built in a buffer kept from chunk to chunk, in the memory layout the evaluator chose
//! ([`Positions::build`]):
//! 1. its unperturbed rows: when the chunk has the same sample order as the last one (starts
//!    that differ by a multiple of `n`) and the model did not write into the buffer (its version
//!    counter), only the elements the last chunk perturbed are written back; otherwise the rows
//!    are gathered from the inputs (row copies on the CPU, `index_select` elsewhere). The rows
//!    after the perturbed ones (every sample as it is, for `F(x)`) are such rows with nothing
//!    written;
//! 2. the perturbed elements of every row, listed per block in [`Positions`] (a feature group's
//!    elements, a window's box), are overwritten in place: on the CPU as host copies of runs of
//!    consecutive elements, elsewhere with one `put_` whose values come from one `take`
//!    (baseline values, or the values of another row for permutations).
//!
//! The work per chunk is proportional to its perturbed elements (plus the chunk's size when it
//! must be gathered), not to rows × elements × blocks, and no step waits on the device. When the
//! blocks are large (more than a quarter of a row on average) the methods use a dense boolean
//! selection and `where` instead, whose cost does not depend on the block size.
//!
//! ## Layout of this module
//! - `groups`: feature groups resolved against the inputs ([`Groups`]);
//! - `positions`: the elements each block changes, as host lists and device index tensors
//!   ([`Positions`], [`Source`]);
//! - `stores`: the inputs and values in storage order of a layout, and the host copy of listed
//!   elements;
//! - `build`: building a chunk of perturbed rows in the reused buffer ([`Positions::build`]);
//! - `pass`: the perturbation pass through the evaluator ([`output_changes`],
//!   [`group_attributions`]).

mod build;
mod groups;
mod pass;
mod positions;
mod stores;

pub(crate) use groups::Groups;
pub(crate) use pass::{group_attributions, output_changes, rows_of};
// Kept at its path `crate::engine::PerturbedChunk` for the unit tests, which name it from here.
#[cfg(test)]
pub(crate) use pass::PerturbedChunk;
pub(crate) use positions::{Positions, Source, DENSE_ABOVE, MAX_POSITIONS};

#[cfg(test)]
mod tests;
