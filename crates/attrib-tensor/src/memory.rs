//! Memory budget and chunk sizing.
//!
//! On the CPU the cost of one row is *measured*: the process's peak resident set is reset
//! (`/proc/self/clear_refs`) before a small probe chunk and read back after it (`VmHWM`), so the
//! activations and gradients that libtorch allocated are counted. The chunk size is then
//! `budget / bytes_per_row`. The default budget is half of the memory the kernel reports as
//! available. Where the measurement is not possible (non-Linux, CUDA: tch exposes no
//! caching-allocator statistics), a floor estimate from tensor sizes is used, and allocation
//! failures halve the chunk and retry.

use std::fs;

/// Rows in the probe chunk that measures the cost of one row.
pub const PROBE_ROWS: usize = 2;

/// Largest default budget, so that a machine with a lot of free memory is not flooded with
/// giant chunks that bring no speed.
pub const MAX_DEFAULT_BUDGET: u64 = 8 << 30;

/// Budget used when nothing can be read from the system.
pub const FALLBACK_BUDGET: u64 = 1 << 30;

/// Multiplier from the bytes of a row's inputs and outputs to a floor on its working memory
/// (inputs, their gradients, outputs, and a share of intermediate activations).
pub const FLOOR_FACTOR: u64 = 4;

fn read_kib(path: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .and_then(|kib| kib.checked_mul(1024))
}

/// Memory the kernel reports as available to new allocations (`MemAvailable`).
pub fn available_host_memory() -> Option<u64> {
    read_kib("/proc/meminfo", "MemAvailable:")
}

/// Default budget for chunked work on the host, shared with the other attrib processes on the
/// machine: half of what remains of `MemAvailable` once the budgets other live attrib processes
/// claimed are set aside, between [`MIN_SHARED_BUDGET`] and [`MAX_DEFAULT_BUDGET`].
///
/// Each process claims its budget in a small file of the temp folder (`attrib-budgets/PID`, see
/// [`peers`]), written when it first sizes chunks and rewritten when its budget changes by more
/// than an eighth ([`peers::claim`]); claims of processes that no longer run are removed. A
/// claim counts even when its owner has already used part of it (which `MemAvailable` then
/// shows too), so several processes err on the safe side: four concurrent runs each size
/// their chunks against what the others left rather than all against the same half of the
/// machine. `ATTRIB_SHARED_BUDGET=0` turns the claims off (each process then takes half of
/// `MemAvailable`); an explicit `memory_budget` is never shared or claimed.
pub fn default_host_budget() -> u64 {
    let Some(available) = available_host_memory() else { return FALLBACK_BUDGET };
    if !peers::enabled() {
        return (available / 2).min(MAX_DEFAULT_BUDGET);
    }
    let budget = shared_budget(available, peers::claims_of_others());
    peers::claim(budget);
    budget
}

/// The smallest default budget when other processes claimed most of the memory.
pub const MIN_SHARED_BUDGET: u64 = 256 << 20;

/// Half of the memory left once `others` bytes are set aside, within the default bounds.
pub fn shared_budget(available: u64, others: u64) -> u64 {
    (available.saturating_sub(others) / 2).clamp(MIN_SHARED_BUDGET, MAX_DEFAULT_BUDGET)
}

/// Budgets claimed by the attrib processes of this machine (see [`default_host_budget`]).
pub mod peers {
    use std::io::Write as _;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Claims are on unless `ATTRIB_SHARED_BUDGET=0` (or `off`, `false`).
    pub fn enabled() -> bool {
        !std::env::var("ATTRIB_SHARED_BUDGET").is_ok_and(|v| matches!(v.as_str(), "0" | "off" | "false"))
    }

    /// The folder of the claims: `attrib-budgets` in the temp folder (`ATTRIB_BUDGET_DIR` to
    /// move it).
    pub fn dir() -> PathBuf {
        std::env::var_os("ATTRIB_BUDGET_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("attrib-budgets"))
    }

    fn alive(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    /// The sum of the claims of other live processes; claims of processes that are gone are
    /// removed on the way.
    pub fn claims_of_others() -> u64 {
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir(dir()) else { return 0 };
        let mut sum = 0u64;
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            if !alive(pid) {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            let bytes = std::fs::read_to_string(e.path()).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
            sum = sum.saturating_add(bytes);
        }
        sum
    }

    /// The claim this process wrote last (0: none yet).
    static CLAIMED: AtomicU64 = AtomicU64::new(0);

    /// Record this process's budget (best effort: a folder that cannot be written only loses
    /// the sharing).
    ///
    /// Written only when it changes by more than an eighth of the last claim: every attribution
    /// call sizes its chunks, and rewriting the file each time (create, write, fsync, rename)
    /// cost about 1 ms per call, more than half of a small saliency call (1.6 ms on the 2-core
    /// reference machine). The file is written with a rename but without fsync: a claim only
    /// matters while its process runs, and one that a crash leaves behind is removed like any
    /// dead process's claim.
    pub fn claim(bytes: u64) {
        let last = CLAIMED.load(Ordering::Relaxed);
        if last != 0 && bytes.abs_diff(last) <= last / 8 {
            return;
        }
        let d = dir();
        if std::fs::create_dir_all(&d).is_err() {
            return;
        }
        let pid = std::process::id();
        // A name that is not a pid, so that readers skip it until it is renamed.
        let tmp = d.join(format!(".{pid}.tmp"));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes.to_string().as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, d.join(pid.to_string())));
        match written {
            Ok(()) => CLAIMED.store(bytes, Ordering::Relaxed),
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

/// Budget assumed on devices whose free memory cannot be read (not CUDA, or `cudaMemGetInfo`
/// not found): a conservative share, with the out-of-memory back-off doing the rest.
pub const DEVICE_BUDGET: u64 = 4 << 30;

/// Share of a CUDA device's free memory the chunked work may use by default (the rest is left
/// for the CUDA context, cuDNN/cuBLAS workspaces and allocator fragmentation).
pub const CUDA_FREE_SHARE: f64 = 0.8;

/// The default budget for chunked work on `device`: [`default_host_budget`] on the CPU;
/// [`CUDA_FREE_SHARE`] of the free memory the CUDA driver reports on a CUDA device (memory the
/// caching allocator holds counts as used, so a later call in the same process may get a smaller
/// budget; the out-of-memory back-off covers that); [`DEVICE_BUDGET`] elsewhere.
pub fn default_budget(device: tch::Device) -> u64 {
    match device {
        tch::Device::Cpu => default_host_budget(),
        d => match crate::device::cuda_memory(d) {
            Some((free, _)) => ((free as f64 * CUDA_FREE_SHARE) as u64).max(1 << 20),
            None => DEVICE_BUDGET,
        },
    }
}

/// A measurement of the peak resident memory of this process around a piece of work.
#[derive(Debug)]
pub struct PeakProbe {
    baseline: u64,
    /// `None`: the host's resident memory; `Some(device)`: a CUDA device's free memory.
    device: Option<tch::Device>,
}

impl PeakProbe {
    /// A probe of the memory the work takes on `device`: the host's peak resident size on the
    /// CPU ([`PeakProbe::start`]); on a CUDA device, the drop in the free memory the driver
    /// reports (what the caching allocator had to reserve for the work: blocks it already held
    /// are reused without showing, so again a lower bound). `None` where neither can be read.
    pub fn start_on(device: tch::Device) -> Option<PeakProbe> {
        match device {
            tch::Device::Cpu => PeakProbe::start(),
            d => crate::device::cuda_memory(d).map(|(free, _)| PeakProbe { baseline: free, device: Some(d) }),
        }
    }

    /// Reset the peak counter and remember the current resident size. `None` where the kernel
    /// does not allow it.
    ///
    /// Pages the allocator already holds are reused without raising the peak, so the measure is
    /// a lower bound on the work's memory; the floor estimate and the out-of-memory back-off
    /// cover the rest. (Returning freed memory to the kernel first, with `malloc_trim`, made the
    /// measure exact but cost more time in page faults than the chunking saved.)
    pub fn start() -> Option<PeakProbe> {
        fs::write("/proc/self/clear_refs", "5").ok()?;
        let baseline = read_kib("/proc/self/status", "VmRSS:")?;
        Some(PeakProbe { baseline, device: None })
    }

    /// Bytes by which the peak exceeded the resident size at `start`.
    pub fn finish(self) -> Option<u64> {
        if let Some(d) = self.device {
            let (free, _) = crate::device::cuda_memory(d)?;
            return Some(self.baseline.saturating_sub(free));
        }
        let peak = read_kib("/proc/self/status", "VmHWM:")?;
        Some(peak.saturating_sub(self.baseline))
    }
}

/// Most rows per automatically sized CPU chunk. Beyond a few hundred rows a CPU gains no
/// parallelism and loses cache locality: on the 2-core reference machine, feature ablation on
/// two small CNNs (3×32×32 inputs, 1024 perturbed rows) ran fastest with chunks of 256 rows
/// (7.1 ms and 52 ms) and 1.6–1.8× slower with chunks of 512 or more; Captum was fastest at
/// 128 rows per call on the same models.
pub const CPU_MAX_ROWS: usize = 256;

/// Working memory of a row assumed, as a multiple of the bytes of its inputs, when deciding
/// that a CPU job is small enough to size its chunks without a probe (inference activations of
/// the CNNs measured here are 5–50× the input; 512 leaves a wide margin).
pub const NO_PROBE_FACTOR: u64 = 512;

/// Rows per chunk for a budget, given the measured (or estimated) bytes per row.
pub fn rows_for_budget(budget: u64, bytes_per_row: u64) -> usize {
    ((budget / bytes_per_row.max(1)) as usize).max(1)
}

/// Rows per chunk: what the memory budget allows and, on the CPU, at most [`CPU_MAX_ROWS`].
pub fn chunk_rows_for(budget: u64, bytes_per_row: u64, cpu: bool) -> usize {
    let by_budget = rows_for_budget(budget, bytes_per_row);
    if cpu {
        by_budget.min(CPU_MAX_ROWS)
    } else {
        by_budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_rows_follow_budget_and_cache() {
        assert_eq!(rows_for_budget(1000, 100), 10);
        assert_eq!(rows_for_budget(10, 100), 1);
        assert_eq!(rows_for_budget(10, 0), 10);
        // GPU: the budget alone.
        assert_eq!(chunk_rows_for(1 << 30, 1 << 20, false), 1024);
        // CPU: at most CPU_MAX_ROWS, and the budget always wins.
        assert_eq!(chunk_rows_for(1 << 30, 1 << 10, true), CPU_MAX_ROWS);
        assert_eq!(chunk_rows_for(128 << 20, 64 << 20, true), 2);
    }

    #[test]
    fn host_memory_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_host_memory().unwrap() > 0);
            let probe = PeakProbe::start().expect("clear_refs should be writable for our own process");
            let v = vec![1u8; 64 << 20];
            std::hint::black_box(&v);
            let grown = probe.finish().unwrap();
            assert!(grown >= 32 << 20, "peak grew by {grown} bytes after touching 64 MiB");
        }
    }
}
