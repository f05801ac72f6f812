//! Limits and defence, against the real binary and OpenSSH clients: file size, quotas,
//! sessions per account, the defender's bans, authentication attempts, login and idle timeouts.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::sftp::*;
use crate::support::*;

#[test]
fn max_file_size_refuses_and_removes_partial() {
    let env = Env::new("max_file_size = 100000", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    write_file(&env.dir.path().join("small.csv"), 50_000);
    write_file(&env.dir.path().join("big.csv"), 300_000);
    let out = env.sftp_key("vendor", &key, "put small.csv\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.sftp_key("vendor", &key, "put big.csv\n", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Failure"),
        "{}",
        text(&out)
    );
    // Only the allowed file, and no temporary left behind.
    assert_eq!(listing(&env.drop_dir("vendor")), vec!["small.csv"]);
    srv.wait_log(10, "file too large");
}

/// A client that goes on putting files over its quota is refused each time and logged once
/// per session: a thousand files over the quota wrote a thousand warnings (an outside probe).
#[test]
fn quota_refusals_are_logged_once_per_session() {
    let env = Env::new("quota_files = 2", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    for n in ["a", "b", "c", "d", "e"] {
        write_file(&env.dir.path().join(format!("{n}.csv")), 100);
    }
    // `-` before a command: the batch goes on after it fails.
    let out = env.sftp_key(
        "vendor",
        &key,
        "put a.csv\nput b.csv\n-put c.csv\n-put d.csv\n-put e.csv\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("Failure")
            .count(),
        3,
        "{}",
        text(&out)
    );
    assert_eq!(listing(&env.drop_dir("vendor")), vec!["a.csv", "b.csv"]);
    srv.wait_log(10, "SFTP session closed");
    assert_eq!(srv.log_text().matches("file quota exceeded").count(), 1);
}

#[test]
fn byte_quota_counts_replacements_once() {
    let env = Env::new("quota_bytes = 150000", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    write_file(&env.dir.path().join("a.csv"), 100_000);
    write_file(&env.dir.path().join("a2.csv"), 120_000);
    let out = env.sftp_key("vendor", &key, "put a.csv\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.sftp_key("vendor", &key, "put a.csv b.csv\n", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(listing(&env.drop_dir("vendor")), vec!["a.csv"]);
    srv.wait_log(10, "quota exceeded");
    // Replacing a.csv with a bigger file fits: the old copy does not count twice.
    let out = env.sftp_key("vendor", &key, "put a2.csv a.csv\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::metadata(env.drop_dir("vendor").join("a.csv"))
            .unwrap()
            .len(),
        120_000
    );
}

#[test]
fn file_quota() {
    let env = Env::new("quota_files = 2", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let _srv = env.start();
    write_file(&env.dir.path().join("a.csv"), 10);
    let out = env.sftp_key(
        "vendor",
        &key,
        "put a.csv one.csv\nput a.csv two.csv\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    for cmd in ["put a.csv three.csv", "mkdir d"] {
        let out = env.sftp_key("vendor", &key, &format!("{cmd}\n"), &[]);
        assert!(!out.status.success(), "{cmd}: {}", text(&out));
    }
    // Replacing an existing name is still allowed.
    let out = env.sftp_key("vendor", &key, "put a.csv two.csv\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(listing(&env.drop_dir("vendor")), vec!["one.csv", "two.csv"]);
}

#[test]
fn sessions_per_account() {
    let env = Env::new("max_sessions_per_account = 1", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    // First session stays open (interactive sftp waiting on stdin).
    let mut first = env.open_session("vendor", &key);
    srv.wait_log(10, "SFTP login");
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(
        !out.status.success(),
        "second session admitted: {}",
        text(&out)
    );
    srv.wait_log(10, "too many sessions");
    drop(first.stdin.take());
    let _ = first.wait();
    // Once the first is gone, a new one is admitted.
    srv.wait_log(10, "SFTP session closed");
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn defender_bans_address_after_failures() {
    let env = Env::new(
        "",
        "[sftp.defender]\nthreshold = 4\nscore_unknown_user = 2\nscore_wrong_credentials = 1\nban_secs = 120\n",
    );
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    // Unknown users weigh 2: two tries ban the address.
    for _ in 0..2 {
        let out = env.sftp_password("nobody", "guess", "password", "pwd\n");
        assert!(!out.status.success());
    }
    srv.wait_log(10, "address banned");
    // Even the right key is refused now, before any SSH handshake.
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    srv.wait_log(10, "connection refused: address banned");
    let log = srv.log_text();
    assert!(log.contains("unknown user"), "{log}");
}

#[test]
fn wrong_passwords_weigh_less_than_unknown_users() {
    let env = Env::new("", "[sftp.defender]\nthreshold = 3\nban_secs = 120\n");
    let _pw = env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    // Two wrong passwords (score 1 each) do not ban ...
    for _ in 0..2 {
        let out = env.sftp_password("vendor", "wrong", "password", "pwd\n");
        assert!(!out.status.success());
    }
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(out.status.success(), "banned too early: {}", text(&out));
    // ... a third does.
    let out = env.sftp_password("vendor", "wrong", "password", "pwd\n");
    assert!(!out.status.success());
    srv.wait_log(10, "address banned");
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(!out.status.success());
}

#[test]
fn max_auth_attempts_per_connection() {
    let env = Env::new(
        "max_auth_attempts = 2",
        "[sftp.defender]\nenabled = false\n",
    );
    env.add_account("vendor", "district");
    let srv = env.start();
    let askpass = env.dir.path().join("askpass");
    fs::write(&askpass, "#!/bin/sh\necho wrong\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new("timeout")
        .args([
            CLIENT_TIMEOUT_SECS,
            "ssh",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=5",
            "-p",
        ])
        .arg(env.port.to_string())
        .args(["-s", "vendor@127.0.0.1", "sftp"])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::thread::sleep(Duration::from_millis(300));
    let tries = srv.log_text().matches("wrong password").count();
    assert_eq!(
        tries,
        2,
        "server must stop after 2 attempts: {}",
        srv.log_text()
    );
}

#[test]
fn login_timeout_closes_silent_connections() {
    let env = Env::new(
        "login_timeout_secs = 2",
        "[sftp.defender]\nenabled = false\n",
    );
    let srv = env.start();
    let mut s = TcpStream::connect(("127.0.0.1", env.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let mut banner = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => banner.extend_from_slice(&buf[..n]),
            Err(e) => panic!("connection not closed by the server: {e}"),
        }
    }
    let took = start.elapsed();
    assert!(String::from_utf8_lossy(&banner).starts_with("SSH-2.0-rosterdrop"));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    srv.wait_log(10, "login timeout");
}

#[test]
fn idle_timeout_closes_idle_sessions() {
    let env = Env::new("idle_timeout_secs = 2\nkeepalive_secs = 0", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    let start = Instant::now();
    let mut child = Command::new("timeout")
        .args([
            "30",
            "sftp",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
        ])
        .arg(&key)
        .args(["-P", &env.port.to_string(), "vendor@127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "idle session not closed: {took:?} {status:?}"
    );
    srv.wait_log(10, "SFTP session closed");
    drop(child.stdin.take());
}

#[test]
fn connections_per_host() {
    let env = Env::new(
        "max_connections_per_host = 2",
        "[sftp.defender]\nenabled = false\n",
    );
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    // Two silent connections take this address's slots (each confirmed by the server's banner;
    // the readiness probe of `start` may hold a slot for a moment) ...
    let held = || {
        for _ in 0..50 {
            let mut s = TcpStream::connect(("127.0.0.1", env.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            if matches!(s.read(&mut buf), Ok(n) if n > 4 && buf.starts_with(b"SSH-")) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not hold a connection");
    };
    let a = held();
    let b = held();
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(
        !out.status.success(),
        "third connection admitted: {}",
        text(&out)
    );
    srv.wait_log(10, "too many connections from this address");
    // ... and give them back when they close.
    drop(a);
    drop(b);
    std::thread::sleep(Duration::from_millis(300));
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
}
