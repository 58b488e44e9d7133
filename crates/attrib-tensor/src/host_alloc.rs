//! Host allocator settings for chunked CPU work.
//!
//! Chunked evaluation allocates and frees the same few large blocks (a chunk's inputs, the
//! model's activations) over and over. glibc's defaults serve blocks above 128 KiB–32 MiB with
//! fresh `mmap`s and give freed memory at the top of the heap back to the kernel, so every chunk
//! pays page faults to touch memory it had a moment ago: on the 2-core reference machine a
//! feature ablation of a small CNN spent about 40 % of its time in the kernel's page-fault
//! handler. [`tune`] raises glibc's `M_MMAP_THRESHOLD` to 32 MiB (its maximum) and
//! `M_TRIM_THRESHOLD` to 512 MiB, so those blocks are recycled inside the process instead.
//! Memory freed by a call stays reserved by the process (up to the trim threshold) for the next
//! chunk or call; it is not leaked.
//!
//! These settings are process-wide, so they are **the binary's choice**: the library never applies
//! them on its own. A program that runs chunked CPU attribution (the `attrib` command line, the
//! benchmarks) opts in by calling [`tune`] once at start-up, before the first attribution:
//!
//! ```no_run
//! attrib_tensor::host_alloc::tune();
//! ```
//!
//! [`tune`] does nothing when the user already chose glibc settings (`MALLOC_TRIM_THRESHOLD_`,
//! `MALLOC_MMAP_THRESHOLD_`, or `GLIBC_TUNABLES` in the environment) or sets
//! `ATTRIB_MALLOC_TUNING=0`, and on systems other than Linux with glibc.

use std::sync::OnceLock;

/// `M_MMAP_THRESHOLD`: blocks up to this size come from the heap (glibc's largest allowed value
/// on 64-bit systems).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// `M_TRIM_THRESHOLD`: free memory at the top of the heap beyond this is returned to the kernel.
pub const TRIM_THRESHOLD: usize = 512 << 20;

static APPLIED: OnceLock<bool> = OnceLock::new();

/// Whether the environment asks to leave the allocator alone.
fn left_alone() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some();
    set("MALLOC_TRIM_THRESHOLD_")
        || set("MALLOC_MMAP_THRESHOLD_")
        || set("GLIBC_TUNABLES")
        || std::env::var("ATTRIB_MALLOC_TUNING").is_ok_and(|v| matches!(v.as_str(), "0" | "off" | "false"))
}

/// Apply the settings once per process (see the module documentation): a process-wide change
/// that a binary opts into; the library itself never calls it. Returns whether they are in
/// effect. Later calls return the first call's answer.
pub fn tune() -> bool {
    *APPLIED.get_or_init(|| !left_alone() && apply())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: plain FFI calls with valid parameter codes; mallopt returns 1 on success.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

/// Whether [`tune`] has applied the settings in this process (false before any call to it).
pub fn tuned() -> bool {
    APPLIED.get().copied().unwrap_or(false)
}

/// Bytes the heap holds now (glibc's `mallinfo2().arena`: memory taken from the kernel for the
/// heaps, not counting blocks served by `mmap`); 0 where it cannot be read. For profiles: a call
/// that extends the heap pays a page fault for each new page (`examples/first_call.rs` prints it
/// around the first and the warm calls).
pub fn heap_bytes() -> u64 {
    heap_bytes_impl()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_bytes_impl() -> u64 {
    // SAFETY: plain FFI call without arguments; glibc ≥ 2.33 provides mallinfo2.
    unsafe { libc::mallinfo2() }.arena as u64
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_bytes_impl() -> u64 {
    0
}
