//! The one wall clock of the daemon and the store: time since the Unix epoch, 0 for a clock
//! set before 1970.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Calls `attempt` until it succeeds, fails with an error that `again` does not accept, or
/// `patience` has passed since the first call (then the last error is returned). Waits 50 ms
/// after the first failure, doubling up to 1 s: for a lock another process holds briefly.
pub fn retry<T, E>(
    patience: std::time::Duration,
    again: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = std::time::Instant::now() + patience;
    let mut wait = std::time::Duration::from_millis(50);
    loop {
        match attempt() {
            Err(e) if again(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(
                    wait.min(deadline.saturating_duration_since(std::time::Instant::now())),
                );
                wait = (wait * 2).min(std::time::Duration::from_secs(1));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retry_stops_at_success_at_a_final_error_or_when_patience_runs_out() {
        let mut n = 0;
        let r: Result<u32, &str> = retry(
            Duration::from_secs(5),
            |_| true,
            || {
                n += 1;
                if n < 3 {
                    Err("busy")
                } else {
                    Ok(n)
                }
            },
        );
        assert_eq!(r, Ok(3));
        let mut n = 0;
        let r: Result<(), &str> = retry(
            Duration::from_secs(5),
            |e| *e == "busy",
            || {
                n += 1;
                Err("broken")
            },
        );
        assert_eq!((r, n), (Err("broken"), 1));
        let started = std::time::Instant::now();
        let r: Result<(), &str> = retry(Duration::from_millis(200), |_| true, || Err("busy"));
        assert_eq!(r, Err("busy"));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
}
