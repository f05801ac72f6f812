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

/// Returns the allocator's free memory to the operating system (glibc only; elsewhere nothing
/// to do). Cheap next to a batch: it walks the arenas once.
pub fn release_free_memory() {
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
