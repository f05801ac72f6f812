//! Talking to systemd without libsystemd: the `sd_notify` protocol, the watchdog, and the
//! directories that the unit's `StateDirectory=` and `ConfigurationDirectory=` create.
//!
//! A notification is one datagram of `KEY=VALUE` lines sent to the unix socket named by
//! `$NOTIFY_SOCKET`: a path (`/run/systemd/notify`), or an abstract address written with a
//! leading `@`. systemd takes the sender's pid from the socket's credentials, so any thread of
//! the main process may notify under `NotifyAccess=main`. Outside systemd (no `$NOTIFY_SOCKET`)
//! every call is a no-op that returns `Ok(false)`.
//!
//! The daemon's sequence: [`ready`] once it listens, [`status`] whenever there is something
//! worth showing in `systemctl status`, [`reloading`] then [`ready`] around a SIGHUP reload,
//! [`stopping`] when SIGTERM arrives, and [`watchdog`] spawned on the runtime for the whole run.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to the service manager.
///
/// Returns `Ok(false)` when the process was not started by systemd with a notification socket
/// (`$NOTIFY_SOCKET` unset or empty), `Ok(true)` once the datagram is sent, and an error when the
/// socket named cannot be reached or its address is not a path or an `@` abstract name.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(addr) if !addr.is_empty() => {
            send_to(addr.as_bytes(), state)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// `READY=1`: start-up is finished (the SFTP listener is bound), or a reload is.
pub fn ready() -> io::Result<bool> {
    notify("READY=1")
}

/// `STATUS=...`: one line shown by `systemctl status`. Line breaks (and NULs) in `msg` become
/// spaces, so that the text cannot smuggle in another assignment.
pub fn status(msg: &str) -> io::Result<bool> {
    notify(&status_line(msg))
}

/// `RELOADING=1` with `MONOTONIC_USEC=` (the time of the reload request on `CLOCK_MONOTONIC`,
/// which newer systemd versions require to match the reload with its request). Send [`ready`]
/// when the reload is done, whether it succeeded or not.
pub fn reloading() -> io::Result<bool> {
    notify(&reloading_message(monotonic_usec()))
}

/// `STOPPING=1`: shutdown has begun (no new sessions; the running batch finishes).
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1")
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as systemd advises. `None` when the
/// unit sets no `WatchdogSec=`, or when `$WATCHDOG_PID` names another process (the variables were
/// meant for a parent and leaked into this one).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Keeps the service manager's watchdog fed: sends `WATCHDOG=1` every [`watchdog_interval`]
/// while `health()` returns true. A tick on which `health()` is false sends nothing, so a
/// daemon that stays unhealthy for `WatchdogSec=` is killed and restarted by systemd; one that
/// recovers before that resumes its pings. Because the pings come from a task on the daemon's
/// runtime, a runtime that stops scheduling tasks stops them too.
///
/// Returns at once when there is no watchdog (not under systemd, or no `WatchdogSec=`);
/// otherwise it runs until dropped. Meant to be spawned: `tokio::spawn(watchdog(|| ...))`.
pub async fn watchdog(health: impl Fn() -> bool) {
    let Some(every) = watchdog_interval() else {
        return;
    };
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET").filter(|a| !a.is_empty()) else {
        return;
    };
    tracing::debug!(
        interval_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    ping_loop(addr.as_bytes(), every, health).await;
}

/// `$STATE_DIRECTORY`: the first directory of the unit's `StateDirectory=`
/// (`/var/lib/rosterdrop`), or `None` when not run by systemd with that setting.
pub fn state_directory() -> Option<PathBuf> {
    first_path(std::env::var_os("STATE_DIRECTORY"))
}

/// `$CONFIGURATION_DIRECTORY`: the first directory of the unit's `ConfigurationDirectory=`
/// (`/etc/rosterdrop`), or `None`.
pub fn configuration_directory() -> Option<PathBuf> {
    first_path(std::env::var_os("CONFIGURATION_DIRECTORY"))
}

/// Sends one datagram to a `$NOTIFY_SOCKET` address (given explicitly, so that tests need not
/// touch the process-wide environment).
fn send_to(addr: &[u8], state: &str) -> io::Result<()> {
    let target = socket_addr(addr)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &target)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was sent in part",
        ));
    }
    Ok(())
}

/// A `$NOTIFY_SOCKET` value as a socket address: an absolute path, or `@name` for the abstract
/// namespace. systemd also hands out `vsock:` addresses to virtual machines; a daemon on a
/// district's server never sees one, so they are refused rather than half supported.
fn socket_addr(addr: &[u8]) -> io::Result<SocketAddr> {
    match addr.first() {
        Some(b'/') => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(addr)),
        Some(b'@') if addr.len() > 1 => SocketAddr::from_abstract_name(&addr[1..]),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET={} is neither an absolute path nor an @abstract name",
                String::from_utf8_lossy(addr)
            ),
        )),
    }
}

fn status_line(msg: &str) -> String {
    let one_line: String = msg
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect();
    format!("STATUS={one_line}")
}

fn reloading_message(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC=` with.
fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}

fn interval_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_micros(1)))
}

fn first_path(value: Option<OsString>) -> Option<PathBuf> {
    let value = value?;
    let first = value.as_bytes().split(|&b| b == b':').next()?;
    if first.is_empty() {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(first)))
}

async fn ping_loop(addr: &[u8], every: Duration, health: impl Fn() -> bool) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        ticks.tick().await;
        if health() {
            if !healthy {
                tracing::info!("healthy again: systemd watchdog pings resumed");
                healthy = true;
            }
            if let Err(e) = send_to(addr, "WATCHDOG=1") {
                tracing::warn!(error = %e, "systemd watchdog ping not sent");
            }
        } else if healthy {
            tracing::warn!("unhealthy: systemd watchdog pings suspended");
            healthy = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A notification socket like systemd's, bound in a fresh temporary directory.
    fn listener() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (dir, path, sock)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).expect("utf-8")
    }

    #[test]
    fn sends_to_a_path() {
        let (_dir, path, sock) = listener();
        send_to(path.as_os_str().as_bytes(), "READY=1").expect("sent");
        assert_eq!(recv(&sock), "READY=1");
        send_to(
            path.as_os_str().as_bytes(),
            &status_line("2 batches\nREADY=1\0"),
        )
        .expect("sent");
        assert_eq!(recv(&sock), "STATUS=2 batches READY=1 ");
    }

    #[test]
    fn sends_to_an_abstract_address() {
        let name = format!(
            "rosterdrop-test-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        send_to(format!("@{name}").as_bytes(), "STOPPING=1").expect("sent");
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn refuses_other_addresses_and_reports_a_missing_socket() {
        for bad in ["", "@", "relative/notify", "vsock:2:1234"] {
            let e = send_to(bad.as_bytes(), "READY=1").expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nobody-listens");
        assert!(send_to(missing.as_os_str().as_bytes(), "READY=1").is_err());
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        let before = monotonic_usec();
        let msg = reloading_message(monotonic_usec());
        let after = monotonic_usec();
        let (head, usec) = msg.split_once("\nMONOTONIC_USEC=").expect("two lines");
        assert_eq!(head, "RELOADING=1");
        let usec: u64 = usec.parse().expect("a number");
        assert!(before <= usec && usec <= after && before > 0);
    }

    #[test]
    fn watchdog_interval_is_half_and_honours_the_pid() {
        let half = Some(Duration::from_secs(30));
        assert_eq!(interval_from(Some("60000000"), None, 7), half);
        assert_eq!(interval_from(Some("60000000"), Some("7"), 7), half);
        assert_eq!(interval_from(Some("60000000"), Some("8"), 7), None);
        assert_eq!(interval_from(Some("60000000"), Some("x"), 7), None);
        assert_eq!(interval_from(None, Some("7"), 7), None);
        assert_eq!(interval_from(Some("0"), None, 7), None);
        assert_eq!(interval_from(Some("-5"), None, 7), None);
        assert_eq!(
            interval_from(Some("1"), None, 7),
            Some(Duration::from_micros(1))
        );
    }

    #[test]
    fn first_directory_of_a_list() {
        let p = |s: &str| first_path(Some(OsString::from(s)));
        assert_eq!(p("/var/lib/rosterdrop"), Some("/var/lib/rosterdrop".into()));
        assert_eq!(p("/var/lib/a:/var/lib/b"), Some("/var/lib/a".into()));
        assert_eq!(p(""), None);
        assert_eq!(first_path(None), None);
    }

    #[tokio::test]
    async fn watchdog_pings_only_while_healthy() {
        let (_dir, path, sock) = listener();
        let checks = AtomicUsize::new(0);
        // Healthy for the first three ticks, then not.
        let health = || checks.fetch_add(1, Ordering::SeqCst) < 3;
        let run = ping_loop(
            path.as_os_str().as_bytes(),
            Duration::from_millis(5),
            health,
        );
        // Until the loop has seen three unhealthy ticks after the healthy ones.
        let seen = async {
            while checks.load(Ordering::SeqCst) < 6 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let raced = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::select! {
                _ = run => {}
                _ = seen => {}
            }
        });
        assert!(raced.await.is_ok(), "the loop stopped checking");
        sock.set_nonblocking(true).expect("nonblocking");
        let mut pings = 0;
        let mut buf = [0u8; 64];
        while let Ok(n) = sock.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            pings += 1;
        }
        assert_eq!(pings, 3);
    }

    /// The only test that touches the environment (process-wide: no other test reads these
    /// variables).
    #[test]
    fn environment() {
        let (_dir, path, sock) = listener();
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!ready().expect("no-op"));
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "4000000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        std::env::set_var("STATE_DIRECTORY", "/var/lib/rosterdrop");
        let sent = ready();
        let reload = reloading();
        let interval = watchdog_interval();
        let state = state_directory();
        for v in [
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "STATE_DIRECTORY",
        ] {
            std::env::remove_var(v);
        }
        assert!(sent.expect("sent"));
        assert_eq!(recv(&sock), "READY=1");
        assert!(reload.expect("sent"));
        assert!(recv(&sock).starts_with("RELOADING=1\nMONOTONIC_USEC="));
        assert_eq!(interval, Some(Duration::from_secs(2)));
        assert_eq!(state, Some(PathBuf::from("/var/lib/rosterdrop")));
    }
}
