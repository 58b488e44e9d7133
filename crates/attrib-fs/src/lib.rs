//! Output files of attrib: nothing lost, nothing half-written.
//!
//! - [`write_atomic`] (and its two halves [`stage`] and [`Staged::commit`]) writes a file as a
//!   temporary file in the same folder, flushes and fsyncs it, then renames it over the target:
//!   readers see the old file or the new one, never a truncated one, and a failing write (a full
//!   disk, an error of the encoder, a killed process) leaves the old file as it was. Writers of
//!   several files stage them all, then commit them all ([`commit_all`]): a failure while staging
//!   replaces nothing.
//! - [`check_outputs`] checks output paths before any work: the folder exists (or can be
//!   created) and is writable, the file is not a folder or read-only, and no output is an input
//!   or another output (compared as canonical paths, and by device and inode on Unix).
//!
//! attrib-tensor's `.npy` writers, attrib-viz's PNG writer and the `attrib` command line all
//! write through this crate; it depends on the standard library only.
#![warn(missing_docs)]

mod atomic;
mod paths;

pub use atomic::{commit_all, resolve_target, stage, write_atomic, Staged, TEMP_SUFFIX};
pub use paths::{check_outputs, io_reason, same_file, OutputError, OutputOptions};
