//! The shared batched tensor layer of attrib.
//!
//! Every attribution method goes through this crate to
//! - pick the device and move inputs onto it ([`DeviceSpec`]),
//! - evaluate a model on many inputs (integration steps, perturbations, noisy copies) in chunks
//!   sized from a memory budget, gathering the target outputs ([`Evaluator::forward_each`]),
//! - compute gradients of the target outputs with respect to the inputs, chunked the same way
//!   ([`Evaluator::gradients_each`]),
//! - convert tensors to and from `ndarray` and `.npy` files ([`convert`]),
//! - preprocess images as torchvision does ([`transform`]).
#![warn(missing_docs)]

pub mod clock;
pub mod convert;
pub mod decisions;
pub mod device;
pub mod eval;
pub mod host_alloc;
pub mod memory;
pub mod rng;
pub mod rows;
pub mod transform;
pub mod warm;

pub use device::{cuda_backend_state, device_name, load_cuda_backend, CudaBackend, DeviceChoice, DeviceSpec};
pub use eval::{
    channels_last_applies, channels_last_order, chunk_end, expand_extra, longest_chunk, to_layout, Evaluator, Expanded, Gradients, Layout,
    Prepared, Variant,
};
pub use rows::ChunkRows;
