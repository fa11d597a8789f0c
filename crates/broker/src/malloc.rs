//! The process's C allocator (glibc malloc) and the memory an idle partition
//! costs (issue 13: ≤ 2 KiB RSS per idle partition).
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core), and memory freed in one arena serves only the threads on it. A
//! start-up spreads its work over several threads: the metadata image and
//! the list of logs to load are built on a blocking-pool thread, the logs on
//! the loader threads, the partitions on the reconciler thread. Each leaves
//! its arena with the space of its temporaries (the list of logs, paths,
//! checkpoint maps) free but resident: measured at 10,000 partitions after a
//! clean restart, 29 MB of arenas holding 19 MB of live heap (release
//! build, `malloc_stats`; docs/PERFORMANCE.md, "RSS per idle partition after
//! a restart").
//!
//! [`release_free_memory`] gives the free pages back once the logs are
//! loaded. One arena for every thread (`MALLOC_ARENA_MAX=1`) saves more
//! (≈ 0.3 KiB per partition after a restart) but slowed producing over
//! 10,000 partitions in the scale bench, so it is left to the operator: the
//! environment variable works as for any glibc program.
//!
//! Other allocators (musl's, jemalloc via `LD_PRELOAD`) ignore the call.

/// Returns the free pages of every arena to the kernel (`malloc_trim(0)`):
/// after the start-up's load, whose temporaries are freed by then. Takes
/// milliseconds; not for a request path.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free; it has no
    // memory-safety preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
