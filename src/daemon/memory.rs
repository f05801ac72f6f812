//! Giving memory back after a batch.
//!
//! A batch of a large district allocates hundreds of megabytes (the tables, their indexes, the
//! modified files) and frees them all when it ends. glibc's allocator keeps freed memory in its
//! per-thread arenas for reuse, so without help the daemon's resident size stays at the largest
//! batch it ever ran. After each batch the daemon asks the allocator to return what is free.

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
