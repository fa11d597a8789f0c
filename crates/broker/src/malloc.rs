//! How the process's C allocator (glibc malloc) is set up, for the memory an
//! idle partition costs (issue 13: ≤ 2 KiB RSS per idle partition).
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core), and memory freed in one arena serves only the threads on it. A
//! start-up spreads its work over several threads: the metadata image and
//! the list of logs to load are built on a blocking-pool thread, the logs on
//! the loader threads, the partitions on the reconciler thread. Each leaves
//! its arena with the space of its temporaries (the list of logs, paths,
//! checkpoint maps) free but resident, space the other threads' long-lived
//! allocations cannot use: measured at 10,000 partitions after a clean
//! restart, 29 MB of arenas holding 19 MB of live heap (release build,
//! `malloc_stats`; docs/PERFORMANCE.md, "RSS per idle partition after a
//! restart").
//!
//! So the broker runs on one arena ([`limit_arenas`]), where every thread
//! reuses what any other freed, and gives the free pages back once the logs
//! are loaded ([`release_free_memory`]). Small allocations on the request
//! path are served from glibc's per-thread caches without the arena lock;
//! the produce and consume CPU measured the same (same section).
//!
//! Other allocators (musl's, jemalloc via `LD_PRELOAD`) ignore both calls.

/// glibc's `M_ARENA_MAX` for the broker: one arena for every thread.
const ARENAS: i32 = 1;

/// Caps glibc malloc at [`ARENAS`] arenas, unless `MALLOC_ARENA_MAX` is set
/// (an operator's choice wins). Call before any thread is started: a thread
/// that already allocated keeps its arena.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; it has no
        // memory-safety preconditions.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

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
