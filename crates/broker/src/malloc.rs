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
//! [`keep_request_memory`] stops glibc from returning the top of its heap
//! to the kernel after every large request. A Produce request larger than
//! a connection's 8 KiB read buffer is read into an allocation of its own
//! (`transport::frame_io`), freed once the records are in the log; with
//! glibc's default, dynamic thresholds (trim above 128 KiB, raised as large
//! blocks come and go) that free shrank the heap and the next request
//! faulted the pages in again: 10,825 minor faults and 0.153-0.157 s of
//! broker CPU per million 100 B records produced, against 834-839 faults
//! and 0.133-0.143 s with the fixed 2 MiB thresholds set here (release
//! build, gregor-bench's librdkafka producer, 3 M records, one partition;
//! docs/PERFORMANCE.md). At most 2 MiB of free memory stays at the top of
//! each arena.
//!
//! Other allocators (musl's, jemalloc via `LD_PRELOAD`) ignore the calls.

/// The fixed `M_MMAP_THRESHOLD` and `M_TRIM_THRESHOLD`: above Kafka's
/// default `max.request.size` (1 MiB), so a default client's requests come
/// from the heap and are not given back between requests.
const REQUEST_MEMORY_THRESHOLD: i32 = 2 << 20;

/// Fixes glibc's mmap and trim thresholds at [`REQUEST_MEMORY_THRESHOLD`]
/// (see the module doc). Call before the runtime's threads start. An
/// operator's own settings win: nothing is changed when `GLIBC_TUNABLES`
/// mentions malloc or `MALLOC_TRIM_THRESHOLD_` / `MALLOC_MMAP_THRESHOLD_`
/// is set.
pub fn keep_request_memory() {
    let env_set = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc."))
        || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
        || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some();
    if env_set {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; it has no
    // memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, REQUEST_MEMORY_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, REQUEST_MEMORY_THRESHOLD);
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
