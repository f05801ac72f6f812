//! Giving memory back after a batch.
//!
//! A batch of a large district allocates hundreds of megabytes (the tables, their indexes, the
//! modified files) and frees them all when it ends. glibc's allocator keeps freed memory in its
//! per-thread arenas for reuse, so without help the daemon's resident size stays at the largest
//! batch it ever ran. After each batch the daemon asks the allocator to return what is free.

/// Caps glibc's malloc arenas at two for the daemon's whole life. glibc gives each thread that
/// allocates under contention an arena of its own (up to 8 per core), and a batch's tables,
/// built on several threads, then leave freed memory in every one: fragmented, and beyond
/// what `malloc_trim` can give back. Two arenas keep the freed memory in few places. Call once
/// at start, before the runtime's threads exist. (`MALLOC_ARENA_MAX` in the environment, if
/// an admin set it, is left in force.)
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called before other threads
        // allocate.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        if ok != 1 {
            tracing::debug!("malloc arenas not limited");
        }
    }
}

/// How many times [`collect_store_garbage`] pins and flushes the epoch: each round may free 8
/// bags of 64 deferred objects, so this bounds a batch's garbage at about two million objects.
const EPOCH_ROUNDS: usize = 4096;

/// Frees what the store replaced during a batch. sled hands every page it replaces to
/// crossbeam-epoch's global collector, which frees deferred objects only as threads pin it,
/// a few bags per pin, so an idle daemon kept a whole batch's replaced pages resident until
/// the next batch (heaptrack: 158 MB of sled nodes still allocated after three batches of a
/// 200,000-student district, growing by each). Pinning and flushing here lets the epoch
/// advance and the garbage go; call it on the thread that committed (its own bag of deferred
/// objects is flushed too) and again after the batch. About a millisecond.
pub fn collect_store_garbage() {
    for _ in 0..EPOCH_ROUNDS {
        crossbeam_epoch::pin().flush();
    }
}

/// Returns the allocator's free memory to the operating system (glibc only; elsewhere nothing
/// to do), after freeing the store's garbage. Cheap next to a batch: it walks the arenas once.
pub fn release_free_memory() {
    collect_store_garbage();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases memory the allocator holds free; it takes no
        // pointers and is safe to call from any thread at any time.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released,
            rss_mb = resident_bytes().unwrap_or(0) >> 20,
            "free memory returned to the system"
        );
    }
}

/// This process's resident set size in bytes, from /proc (Linux), for logs and tests.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}
