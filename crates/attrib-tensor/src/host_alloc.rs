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

/// Most heap [`reserve_heap`] touches, whatever it is asked for.
pub const RESERVE_CAP: u64 = 256 << 20;

/// Bytes the heap holds now (glibc's `mallinfo2().arena`: memory taken from the kernel for the
/// heaps, not counting blocks served by `mmap`); 0 where it cannot be read.
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

/// Leave up to `bytes` (at most [`RESERVE_CAP`]) of free heap at the top of the heap with its
/// pages already faulted in, for a program that is about to time calls after a warm-up.
///
/// Why: a call's large blocks (a chunk's activations and gradients) land wherever the heap has a
/// free block big enough; the small blocks a warm-up leaves allocated (caches, decisions) split
/// the heap's free space, so the first timed call still extends the heap and pays a page fault
/// for each new page. On the reference machine an Integrated Gradients call on a small CNN made
/// 1,100–6,800 page faults in its first call after the job rehearsal and about none later.
/// With the top of the heap reserved as large as the heap the warm-up needed, the first call
/// made 10–25.
///
/// How: blocks of 16 MiB (below [`MMAP_THRESHOLD`], so they come from the heap), one byte written
/// per page, then all freed; since [`tune`] keeps freed memory at the top of the heap up to
/// [`TRIM_THRESHOLD`], the pages stay with the process. Does nothing (returns 0) unless [`tune`]
/// is in effect: without it glibc would hand the memory straight back. Returns the bytes
/// touched. Like [`tune`], the binary's choice (the warm-up of benchmark mode calls it).
pub fn reserve_heap(bytes: u64) -> u64 {
    if !tuned() {
        return 0;
    }
    reserve_impl(bytes.min(RESERVE_CAP))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reserve_impl(bytes: u64) -> u64 {
    const BLOCK: usize = 16 << 20;
    const PAGE: usize = 4096;
    let mut blocks = Vec::new();
    let mut done = 0u64;
    while done < bytes {
        // SAFETY: malloc of a positive size; a null result ends the reservation.
        let p = unsafe { libc::malloc(BLOCK) }.cast::<u8>();
        if p.is_null() {
            break;
        }
        for off in (0..BLOCK).step_by(PAGE) {
            // SAFETY: `off < BLOCK`, inside the block just allocated; volatile so the write stays.
            unsafe { p.add(off).write_volatile(0) };
        }
        blocks.push(p);
        done += BLOCK as u64;
    }
    for p in blocks {
        // SAFETY: each pointer came from malloc above and is freed once.
        unsafe { libc::free(p.cast()) };
    }
    done
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reserve_impl(_bytes: u64) -> u64 {
    0
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Minor page faults of the calling thread so far.
    fn thread_faults() -> i64 {
        // SAFETY: getrusage writes into the zeroed struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
        u.ru_minflt
    }

    /// Allocate `blocks` blocks of 16 MiB, write a byte per page, free them; the page faults
    /// that took.
    fn touch_fresh(blocks: usize) -> i64 {
        let before = thread_faults();
        let v: Vec<Vec<u8>> = (0..blocks).map(|_| vec![1u8; 16 << 20]).collect();
        std::hint::black_box(&v);
        drop(v);
        thread_faults() - before
    }

    #[test]
    fn reserved_heap_is_reused_without_page_faults() {
        if !tuned() {
            assert_eq!(reserve_heap(1 << 20), 0, "nothing is reserved before tune()");
        }
        if left_alone() || !tune() {
            return; // the environment chose its own allocator settings
        }
        assert!(heap_bytes() > 0);
        let reserved = reserve_heap(48 << 20);
        assert!(reserved >= 48 << 20, "reserved {reserved} bytes");
        // Two blocks of 16 MiB are 8,192 pages; served from the reserve they fault (almost) none.
        let faults = touch_fresh(2);
        assert!(faults < 800, "{faults} page faults for 32 MiB after reserving 48 MiB");
        assert_eq!(reserve_heap(u64::MAX), RESERVE_CAP, "capped");
    }
}
