//! How tally's processes ask the C allocator to keep the memory they free.
//!
//! Why: glibc's `malloc` hands a block of 128 KiB or more (a threshold it
//! raises as such blocks are freed, up to 32 MiB) straight to `mmap`, and
//! gives freed memory at the top of its heap back to the system past
//! 128 KiB. A worker builds a partial of a few hundred KiB in every task,
//! and the coordinator reads one, so both kept getting fresh pages from the
//! kernel and faulting them in: Q2 (50M rows, 10,000 stations) on 2 workers
//! took 36,000 page faults and 0.2 s of system time, against 5,700 and
//! 0.11 s (and 12% less wall time) with the thresholds below, set through
//! `GLIBC_TUNABLES` for the experiment. The memory kept is what the
//! process needed at its peak, so peak memory does not change. No crate
//! sets `mallopt`; the `libc` crate gives the call.

/// Largest block served from the heap rather than its own mapping: the
/// most glibc allows on 64-bit systems.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Free memory at the top of the heap that glibc keeps before trimming.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Asks the allocator to serve blocks of up to 32 MiB from its heap and to
/// keep up to 64 MiB of freed memory: call once, early in `main`. Does
/// nothing where the C library is not glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; it is called before
    // any thread starts, as glibc's manual asks of tuning calls.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
