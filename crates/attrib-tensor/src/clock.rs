//! Clocks for benchmarks and profiles (the examples that time attribution calls use these).
//!
//! On a busy machine wall time includes the time other processes hold the core; the CPU time of
//! the calling thread does not, and with `OMP_NUM_THREADS=1` every libtorch kernel runs on that
//! thread, so it is the steadier measure there. `CLOCK_MONOTONIC` is the clock of
//! `perf record -k monotonic`: timestamps printed from it can cut a profile at a call's start and
//! end (`perf report --time A,B`).
//!
//! ```
//! let (c, t) = (attrib_tensor::clock::thread_cpu_ns(), attrib_tensor::clock::monotonic_ns());
//! let v: Vec<f64> = (0..100_000).map(|i| (i as f64).sqrt()).collect();
//! assert!(v.len() == 100_000 && attrib_tensor::clock::monotonic_ns() >= t);
//! assert!(attrib_tensor::clock::thread_cpu_ns() >= c);
//! ```

/// CPU time of the calling thread so far, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`); 0 where
/// the clock cannot be read.
pub fn thread_cpu_ns() -> u64 {
    read(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// [`thread_cpu_ns`] in milliseconds.
pub fn thread_cpu_ms() -> f64 {
    thread_cpu_ns() as f64 / 1e6
}

/// `CLOCK_MONOTONIC` in nanoseconds; 0 where the clock cannot be read.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer for clock_gettime.
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The median time in milliseconds of `repeats` calls of `f` (at least one): this thread's CPU
/// time when `cpu`, else wall time. For the timing examples.
pub fn median_call_ms(repeats: usize, cpu: bool, f: &mut dyn FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let (t, c) = (std::time::Instant::now(), thread_cpu_ms());
            f();
            if cpu {
                thread_cpu_ms() - c
            } else {
                t.elapsed().as_secs_f64() * 1e3
            }
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
