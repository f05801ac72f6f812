//! Talking to systemd: `sd_notify` through the `sd-notify` crate, the watchdog with our
//! health gate, and the directories that the unit's `StateDirectory=` and
//! `ConfigurationDirectory=` create.
//!
//! A notification is one datagram of `KEY=VALUE` lines sent to the unix socket named by
//! `$NOTIFY_SOCKET`. systemd takes the sender's pid from the socket's credentials, so any thread
//! of the main process may notify under `NotifyAccess=main`. Outside systemd (no
//! `$NOTIFY_SOCKET`) every call is a no-op that returns `Ok(false)`. The crate connects to a
//! path (`/run/systemd/notify`, what system services get); an abstract address (`@name`, which
//! some container managers hand out) it does not know, so that one case is sent here with the
//! crate's own message text.
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

use sd_notify::NotifyState;

/// Sends `states` to the service manager.
///
/// Returns `Ok(false)` when the process was not started by systemd with a notification socket
/// (`$NOTIFY_SOCKET` unset or empty), `Ok(true)` once the datagram is sent, and an error when the
/// socket named cannot be reached.
pub fn notify(states: &[NotifyState]) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(addr) if !addr.is_empty() => {
            match addr.as_bytes().strip_prefix(b"@") {
                Some(name) => send_abstract(name, states)?,
                None => sd_notify::notify(states)?,
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// `READY=1`: start-up is finished (the SFTP listener is bound), or a reload is.
pub fn ready() -> io::Result<bool> {
    notify(&[NotifyState::Ready])
}

/// `STATUS=...`: one line shown by `systemctl status`. Line breaks (and NULs) in `msg` become
/// spaces, so that the text cannot smuggle in another assignment.
pub fn status(msg: &str) -> io::Result<bool> {
    notify(&[NotifyState::Status(&one_line(msg))])
}

/// `RELOADING=1` with `MONOTONIC_USEC=` (the time of the reload request on `CLOCK_MONOTONIC`,
/// which newer systemd versions require to match the reload with its request). Send [`ready`]
/// when the reload is done, whether it succeeded or not.
pub fn reloading() -> io::Result<bool> {
    notify(&[NotifyState::Reloading, NotifyState::monotonic_usec_now()?])
}

/// `STOPPING=1`: shutdown has begun (no new sessions; the running batch finishes).
pub fn stopping() -> io::Result<bool> {
    notify(&[NotifyState::Stopping])
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as systemd advises. `None` when the
/// unit sets no `WatchdogSec=`, or when `$WATCHDOG_PID` names another process (the variables were
/// meant for a parent and leaked into this one).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| (d / 2).max(Duration::from_micros(1)))
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
    if std::env::var_os("NOTIFY_SOCKET").is_none_or(|a| a.is_empty()) {
        return;
    }
    tracing::debug!(
        interval_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    ping_loop(every, health, || {
        notify(&[NotifyState::Watchdog]).map(|_| ())
    })
    .await;
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

/// The datagram the crate would send: one `KEY=VALUE` line per state.
fn message(states: &[NotifyState]) -> String {
    states.iter().map(|s| format!("{s}\n")).collect()
}

/// Sends `states` to an abstract-namespace notification socket (`$NOTIFY_SOCKET=@name`).
fn send_abstract(name: &[u8], states: &[NotifyState]) -> io::Result<()> {
    let addr = SocketAddr::from_abstract_name(name)?;
    let msg = message(states);
    let sent = UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &addr)?;
    if sent != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was sent in part",
        ));
    }
    Ok(())
}

fn one_line(msg: &str) -> String {
    msg.chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn first_path(value: Option<OsString>) -> Option<PathBuf> {
    let value = value?;
    let first = value.as_bytes().split(|&b| b == b':').next()?;
    if first.is_empty() {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(first)))
}

/// Every `every`, `ping()` when `health()` says so; logs when health is lost and regained.
async fn ping_loop(every: Duration, health: impl Fn() -> bool, ping: impl Fn() -> io::Result<()>) {
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
            if let Err(e) = ping() {
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
    fn a_status_is_one_line() {
        assert_eq!(one_line("2 batches\nREADY=1\0\r"), "2 batches READY=1  ");
        assert_eq!(
            message(&[NotifyState::Status(&one_line("a\nb"))]),
            "STATUS=a b\n"
        );
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
        send_abstract(name.as_bytes(), &[NotifyState::Stopping]).expect("sent");
        assert_eq!(recv(&sock), "STOPPING=1\n");
        let nobody = format!("{name}-nobody");
        assert!(send_abstract(nobody.as_bytes(), &[NotifyState::Ready]).is_err());
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
        let ping = || {
            UnixDatagram::unbound()?
                .send_to(message(&[NotifyState::Watchdog]).as_bytes(), &path)
                .map(|_| ())
        };
        let run = ping_loop(Duration::from_millis(5), health, ping);
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
            assert_eq!(&buf[..n], b"WATCHDOG=1\n");
            pings += 1;
        }
        assert_eq!(pings, 3);
    }

    /// The only test that touches the environment (process-wide: no other test reads these
    /// variables). Everything that reads `$NOTIFY_SOCKET` and `$WATCHDOG_*` is checked here,
    /// against a socket bound by the test.
    #[test]
    fn environment() {
        let (_dir, path, sock) = listener();
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!ready().expect("no-op"));
        std::env::set_var("NOTIFY_SOCKET", "");
        assert!(!ready().expect("no-op"));
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "4000000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        std::env::set_var("STATE_DIRECTORY", "/var/lib/rosterdrop");
        let sent = ready();
        let st = status("2 batches\nREADY=1");
        let reload = reloading();
        let interval = watchdog_interval();
        std::env::set_var("WATCHDOG_PID", "1");
        let other_pid = watchdog_interval();
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        std::env::set_var("WATCHDOG_USEC", "0");
        let zero = watchdog_interval();
        let state = state_directory();
        let dir = tempfile::tempdir().expect("temp dir");
        std::env::set_var("NOTIFY_SOCKET", dir.path().join("nobody-listens"));
        let unreachable = stopping();
        for v in [
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "STATE_DIRECTORY",
        ] {
            std::env::remove_var(v);
        }
        assert!(sent.expect("sent"));
        assert_eq!(recv(&sock), "READY=1\n");
        assert!(st.expect("sent"));
        assert_eq!(recv(&sock), "STATUS=2 batches READY=1\n");
        assert!(reload.expect("sent"));
        let r = recv(&sock);
        let usec = r
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|u| u.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("{r:?}"));
        assert!(usec.parse::<u64>().expect("a number") > 0);
        assert_eq!(interval, Some(Duration::from_secs(2)));
        assert_eq!(other_pid, None);
        assert_eq!(zero, None);
        assert_eq!(state, Some(PathBuf::from("/var/lib/rosterdrop")));
        assert!(unreachable.is_err());
    }
}
