//! One SFTP account must never break the daemon or another vendor (issue 12, items 3, 5, 8 and
//! the SFTP parts of 11): descriptors, channels and handles are capped with clear statuses, the
//! quota counts every byte however deep, honest parallel sessions are told why they are refused
//! and never banned, every channel refusal is logged, and names that are not UTF-8 are refused.
//!
//! The Rust client (russh + russh-sftp) drives many channels and handles on one connection;
//! OpenSSH `sftp` shows what a vendor's job sees. All traffic stays on 127.0.0.1, every loop is
//! bounded in count and every wait in time.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rosterdrop::sftp::SftpConfig;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::support::serve::Running;
use crate::support::sftp::Env;
use crate::support::sftp_client::{code, sftp, ssh, wflags, Fixture};
use crate::support::{listing, text, BIN};

/// The in-process server with accounts `vendor` (district) and `other` (district-2).
async fn fixture(tune: impl FnOnce(&mut SftpConfig)) -> Fixture {
    let mut fx = Fixture::start(&[("vendor", "district"), ("other", "district-2")], tune).await;
    fx.drain_events();
    fx
}

fn none() -> FileAttributes {
    FileAttributes::default()
}

/// Opens `seed.csv` for reading until refused (at most `max` times); returns the handles and
/// the refusal.
async fn open_until_refused(s: &RawSftpSession, max: usize) -> (Vec<String>, (StatusCode, String)) {
    let mut handles = Vec::new();
    for _ in 0..max {
        match s.open("seed.csv", OpenFlags::READ, none()).await {
            Ok(h) => handles.push(h.handle),
            Err(e) => return (handles, code::<()>(Err(e))),
        }
    }
    panic!("{max} handles opened without a refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_channels_count_toward_the_channel_limit() {
    // The default: 4 session channels per connection.
    let fx = fixture(|_| {}).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let mut sessions = Vec::new();
    for i in 0..4 {
        let s = sftp(&h).await.unwrap_or_else(|| panic!("channel {i}"));
        sessions.push(s);
    }
    // Channels that run SFTP hold their slot: a fifth is refused (the old limit counted only
    // channels that had not started SFTP yet).
    assert!(
        timeout(Duration::from_secs(10), h.channel_open_session())
            .await
            .expect("answer")
            .is_err(),
        "fifth channel admitted"
    );
    // Closing one gives its slot back.
    let gone = sessions.pop().unwrap();
    let _ = gone.close_session();
    drop(gone);
    let mut again = None;
    for _ in 0..50 {
        if let Some(s) = sftp(&h).await {
            again = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = again.expect("slot given back after a channel closed");
    assert_eq!(again.realpath(".").await.unwrap().files[0].filename, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_handles_are_capped_per_session_account_and_server() {
    let fx = fixture(|c| {
        c.max_handles = 5;
        c.max_handles_per_account = 8;
        c.max_open_handles = 12;
    })
    .await;
    for a in ["vendor", "other"] {
        fs::create_dir_all(fx.drop_dir(a)).unwrap();
        fs::write(fx.drop_dir(a).join("seed.csv"), "id\n1\n").unwrap();
    }
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s1 = sftp(&h).await.unwrap();
    let (held1, (c, msg)) = open_until_refused(&s1, 20).await;
    assert_eq!(held1.len(), 5);
    assert_eq!(c, StatusCode::Failure);
    assert_eq!(msg, "too many open files in this session");
    // Uploads and folder handles count too.
    assert_eq!(
        code(s1.open("new.csv", wflags(), none()).await).1,
        "too many open files in this session"
    );
    assert_eq!(
        code(s1.opendir("/").await).1,
        "too many open files in this session"
    );

    // A second session of the same account: 3 more, then the account's cap.
    let s2 = sftp(&h).await.unwrap();
    let (held2, (c, msg)) = open_until_refused(&s2, 20).await;
    assert_eq!(held2.len(), 3);
    assert_eq!(c, StatusCode::Failure);
    assert_eq!(msg, "too many open files for this account");

    // Another vendor: 4 handles left on the server (12 - 8).
    let h2 = ssh(fx.addr, "other", &fx.passwords[1])
        .await
        .expect("the other vendor logs in");
    let o = sftp(&h2).await.unwrap();
    let (held3, (c, msg)) = open_until_refused(&o, 20).await;
    assert_eq!(held3.len(), 4);
    assert_eq!(c, StatusCode::Failure);
    assert_eq!(msg, "too many open files on the server");

    // Closing handles gives them back, at every level; the session is still usable.
    for hd in &held1[..2] {
        s1.close(hd.as_str()).await.unwrap();
    }
    let up = o.open("up.csv", wflags(), none()).await.unwrap().handle;
    o.write(up.as_str(), 0, b"id\n2\n".to_vec()).await.unwrap();
    o.close(up.as_str()).await.unwrap();
    assert_eq!(
        fs::read(fx.drop_dir("other").join("up.csv")).unwrap(),
        b"id\n2\n"
    );
    // Sessions that end give back all of their handles: with vendor's 6 still open, a second
    // session of `other` gets 2 (12 - 6 - 4); once vendor is gone, 4 (its account's 8 - 4).
    let o2 = sftp(&h2).await.unwrap();
    let (more, (_, msg)) = open_until_refused(&o2, 20).await;
    assert_eq!(more.len(), 2);
    assert_eq!(msg, "too many open files on the server");
    for hd in more {
        o2.close(hd.as_str()).await.unwrap();
    }
    drop(s2);
    drop(s1);
    drop(h);
    let mut got = (0, String::new());
    for _ in 0..50 {
        let (more, (_, msg)) = open_until_refused(&o2, 20).await;
        got = (more.len(), msg);
        for hd in more {
            o2.close(hd.as_str()).await.unwrap();
        }
        if got.0 == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got,
        (4, "too many open files for this account".to_string()),
        "handles of closed sessions not given back"
    );
}

// ---------------------------------------------------------------------------------------------
// Quota and depth.

/// Bytes of regular files under `dir`, however deep (test side, iterative).
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let md = e.path().symlink_metadata().unwrap();
            if md.is_dir() {
                todo.push(e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

fn chain(prefix: &str, n: usize) -> String {
    (1..=n)
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_cannot_hide_bytes_below_the_depth_limit() {
    const MIB: u64 = 1 << 20;
    let fx = fixture(|c| c.quota_bytes = 3 * MIB).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.unwrap();
    // A 15-deep chain to hang trees under.
    let deep = chain("a", 15);
    for i in 1..=15 {
        s.mkdir(chain("a", i), none()).await.unwrap();
    }
    // The recipe: fill a shallow tree, move it under the deep chain, repeat.
    let mut refused = None;
    for round in 0..8 {
        let top = format!("t{round}");
        let sub = format!("{top}/{}", chain("b", 3));
        s.mkdir(top.clone(), none()).await.unwrap();
        for i in 1..=3 {
            s.mkdir(format!("{top}/{}", chain("b", i)), none())
                .await
                .unwrap();
        }
        let file = format!("{sub}/blob.bin");
        match s.open(file.clone(), wflags(), none()).await {
            Ok(hd) => {
                let hd = hd.handle;
                let mut ok = true;
                for k in 0..8u64 {
                    if s.write(hd.as_str(), k * 131_072, vec![7u8; 131_072])
                        .await
                        .is_err()
                    {
                        ok = false;
                        break;
                    }
                }
                if !ok || s.close(hd.as_str()).await.is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
        match s.rename(top.clone(), format!("{deep}/{top}")).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some(code::<()>(Err(e)));
                break;
            }
        }
    }
    let stored = bytes_under(&fx.drop_dir("vendor"));
    assert!(
        stored <= 3 * MIB,
        "{stored} bytes stored under a 3 MiB quota"
    );
    let (c, msg) = refused.expect("a rename past the depth limit must be refused");
    assert_eq!(c, StatusCode::Failure);
    assert!(msg.contains("nested too deep"), "{msg}");
    // A rename whose deepest descendant stays within the limit is fine: t0 holds 4 levels
    // (b1/b2/b3/blob.bin), so under 11 folders its file is at level 16.
    let ok_target = format!("{}/t0", chain("a", 11));
    s.rename("t0", ok_target.clone()).await.unwrap();
    assert!(fx.drop_dir("vendor").join(&ok_target).is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_cannot_make_paths_too_long_to_count() {
    // Within 16 levels, but with 255-byte names: a file moved down there would have a real
    // path longer than the system can name, so no walk could see (or count) it.
    const MIB: u64 = 1 << 20;
    let fx = fixture(|c| c.quota_bytes = 3 * MIB).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.unwrap();
    let long = |c: char| c.to_string().repeat(255);
    let mut chain = String::new();
    for i in 0..14 {
        chain.push('/');
        chain.push_str(&long(char::from(b'a' + i)));
        s.mkdir(chain.clone(), none()).await.unwrap();
    }
    let top = format!("/{}", long('y'));
    s.mkdir(top.clone(), none()).await.unwrap();
    let file = format!("{top}/{}", long('z'));
    let hd = s.open(file, wflags(), none()).await.unwrap().handle;
    for k in 0..8u64 {
        s.write(hd.as_str(), k * 131_072, vec![3u8; 131_072])
            .await
            .unwrap();
    }
    s.close(hd.as_str()).await.unwrap();
    let target = format!("{chain}{top}");
    assert!(target.len() <= 4096 && target.matches('/').count() == 15);
    let (c, msg) = code(s.rename(top.clone(), target).await);
    assert_eq!(c, StatusCode::Failure);
    assert_eq!(msg, "path too long");
    // The megabyte is still where it counts: 2.5 MiB more do not fit in 3 MiB.
    let hd = s.open("more.bin", wflags(), none()).await.unwrap().handle;
    let mut refused = false;
    for k in 0..20u64 {
        if s.write(hd.as_str(), k * 131_072, vec![4u8; 131_072])
            .await
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "quota not enforced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_counts_every_byte_however_deep() {
    const MIB: usize = 1 << 20;
    let fx = fixture(|c| c.quota_bytes = 3 * MIB as u64).await;
    // 2 MiB stored 40 folders down (put there before the rename check existed, or by hand).
    let deep = fx.drop_dir("vendor").join(chain("d", 40));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("old.bin"), vec![1u8; 2 * MIB]).unwrap();
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.unwrap();
    let hd = s.open("new.bin", wflags(), none()).await.unwrap().handle;
    let mut refusal = None;
    for k in 0..16u64 {
        if let Err(e) = s.write(hd.as_str(), k * 131_072, vec![2u8; 131_072]).await {
            refusal = Some(code::<()>(Err(e)));
            break;
        }
    }
    let (c, msg) = refusal.expect("2 MiB more must not fit in a 3 MiB quota");
    assert_eq!(c, StatusCode::Failure);
    assert!(msg.contains("quota exceeded"), "{msg}");
    assert!(code(s.close(hd.as_str()).await).1.contains("quota"));
    assert!(!fx.drop_dir("vendor").join("new.bin").exists());
}

/// A symbolic link planted in a drop folder (by hand, or by another program on the host) that
/// points outside it: reading it through SFTP is refused, and writing to its name never reaches
/// the file it points to (the open path uses the platform's O_NOFOLLOW, issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_symlinks_are_not_followed_by_read_or_write() {
    let fx = fixture(|_| {}).await;
    let outside = fx.dir.path().join("outside.csv");
    fs::write(&outside, b"secret\n").unwrap();
    let drop = fx.drop_dir("vendor");
    fs::create_dir_all(&drop).unwrap();
    std::os::unix::fs::symlink(&outside, drop.join("link.csv")).unwrap();
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.unwrap();
    let (c, _) = code(s.open("link.csv", OpenFlags::READ, none()).await);
    assert_ne!(c, StatusCode::Ok);
    if let Ok(hd) = s.open("link.csv", wflags(), none()).await {
        let _ = s
            .write(hd.handle.as_str(), 0, b"overwritten".to_vec())
            .await;
        let _ = s.close(hd.handle.as_str()).await;
    }
    assert_eq!(fs::read(&outside).unwrap(), b"secret\n");
}

// ---------------------------------------------------------------------------------------------
// Names that are not UTF-8.

async fn raw_reply(st: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let len = timeout(Duration::from_secs(10), st.read_u32())
        .await
        .expect("reply in time")
        .expect("reply");
    assert!(len < 1 << 20);
    let mut b = vec![0; len as usize];
    timeout(Duration::from_secs(10), st.read_exact(&mut b))
        .await
        .expect("reply in time")
        .expect("reply");
    b
}

fn sftp_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(body: Vec<u8>) -> Vec<u8> {
    let mut p = (body.len() as u32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

/// `(type, id, status code, message)` of a STATUS reply.
fn parse_status(r: &[u8]) -> (u8, u32, u32, String) {
    let id = u32::from_be_bytes([r[1], r[2], r[3], r[4]]);
    if r[0] != 101 {
        return (r[0], id, u32::MAX, String::new());
    }
    let code = u32::from_be_bytes([r[5], r[6], r[7], r[8]]);
    let n = u32::from_be_bytes([r[9], r[10], r[11], r[12]]) as usize;
    (
        r[0],
        id,
        code,
        String::from_utf8_lossy(&r[13..13 + n]).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_utf8_are_refused_not_mangled() {
    let fx = fixture(|_| {}).await;
    fs::create_dir_all(fx.drop_dir("vendor")).unwrap();
    fs::write(fx.drop_dir("vendor").join("ok.csv"), "x\n").unwrap();
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let ch = h.channel_open_session().await.unwrap();
    ch.request_subsystem(true, "sftp").await.unwrap();
    let mut st = ch.into_stream();
    st.write_all(&[0, 0, 0, 5, 1, 0, 0, 0, 3]).await.unwrap();
    assert_eq!(raw_reply(&mut st).await[0], 2, "VERSION");
    let bad: &[u8] = b"caf\xe9.csv"; // Latin-1, as an old Windows job would send it

    // OPEN for writing (3), MKDIR (14), STAT (17), REMOVE (13), RENAME to (18) and from.
    let mut open = vec![3, 0, 0, 0, 11];
    sftp_string(&mut open, bad);
    open.extend_from_slice(&0x1au32.to_be_bytes()); // WRITE|CREAT|TRUNC
    open.extend_from_slice(&0u32.to_be_bytes()); // no attributes
    let mut mkdir = vec![14, 0, 0, 0, 12];
    sftp_string(&mut mkdir, bad);
    mkdir.extend_from_slice(&0u32.to_be_bytes());
    let mut stat = vec![17, 0, 0, 0, 13];
    sftp_string(&mut stat, bad);
    let mut remove = vec![13, 0, 0, 0, 14];
    sftp_string(&mut remove, bad);
    let mut rename_to = vec![18, 0, 0, 0, 15];
    sftp_string(&mut rename_to, b"ok.csv");
    sftp_string(&mut rename_to, bad);
    let mut rename_from = vec![18, 0, 0, 0, 16];
    sftp_string(&mut rename_from, bad);
    sftp_string(&mut rename_from, b"new.csv");
    let mut posix_rename = vec![200, 0, 0, 0, 17];
    sftp_string(&mut posix_rename, b"posix-rename@openssh.com");
    sftp_string(&mut posix_rename, b"ok.csv");
    sftp_string(&mut posix_rename, bad);
    for (id, body) in [
        (11, open),
        (12, mkdir),
        (13, stat),
        (14, remove),
        (15, rename_to),
        (16, rename_from),
        (17, posix_rename),
    ] {
        st.write_all(&packet(body)).await.unwrap();
        let (t, rid, c, msg) = parse_status(&raw_reply(&mut st).await);
        assert_eq!((t, rid), (101, id), "request {id} must get a STATUS");
        assert_eq!(c, StatusCode::Failure as u32, "request {id}: {msg}");
        assert_eq!(msg, "file name is not valid UTF-8", "request {id}");
    }
    // Nothing was created, renamed or mangled; the session still works.
    assert_eq!(listing(&fx.drop_dir("vendor")), vec!["ok.csv"]);
    let mut realpath = vec![16, 0, 0, 0, 20];
    sftp_string(&mut realpath, "café/./x".as_bytes());
    st.write_all(&packet(realpath)).await.unwrap();
    let r = raw_reply(&mut st).await;
    assert_eq!((r[0], r[4]), (104, 20), "NAME for a valid UTF-8 path");
}

// ---------------------------------------------------------------------------------------------
// The real binary.

/// Starts `rosterdrop serve` with at most `nofile` descriptors (soft and hard).
fn start_limited(env: &Env, nofile: u32) -> Running {
    let log = env.dir.path().join("server-limited.log");
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "ulimit -n {nofile} && exec \"$0\" --config \"$1\" serve"
        ))
        .arg(BIN)
        .arg(&env.config);
    Running::spawn(c, log).ready(None, "listening")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_cannot_take_every_descriptor() {
    // The daemon runs with 400 descriptors; one vendor opens channel after channel on one
    // connection, each with as many handles as it can get.
    let env = Env::new("max_connections = 20", "[sftp.defender]\nenabled = false\n");
    let pw = env.add_account("hog", "district");
    env.add_account("honest", "district-2");
    let key = env.add_key("honest");
    fs::create_dir_all(env.drop_dir("hog")).unwrap();
    fs::write(env.drop_dir("hog").join("seed.csv"), "id\n1\n").unwrap();
    let srv = start_limited(&env, 400);
    let addr: SocketAddr = format!("127.0.0.1:{}", env.port).parse().unwrap();
    let h = ssh(addr, "hog", &pw).await.expect("login");
    let mut sessions = Vec::new();
    let mut handles = 0;
    let mut refusals = Vec::new();
    for _ in 0..10 {
        let Some(s) = sftp(&h).await else {
            refusals.push("channel refused".to_string());
            break;
        };
        let (held, (_, msg)) = open_until_refused(&s, 100).await;
        handles += held.len();
        refusals.push(msg);
        sessions.push((s, held));
    }
    // With all of that held: another vendor logs in and uploads, the admin socket answers,
    // and nothing in the daemon ran out of descriptors.
    fs::write(env.dir.path().join("roster.csv"), "id\n1\n").unwrap();
    let out = env.sftp_key("honest", &key, "put roster.csv\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.drop_dir("honest").join("roster.csv").exists());
    let st = env.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("daemon: running"),
        "{}",
        text(&st)
    );
    let log = srv.log_text();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("SFTP open refused"), "{log}");
    assert!(
        sessions.len() <= 4,
        "{} channels on one connection",
        sessions.len()
    );
    // The server's handles (124 = 400 - 256 reserved - 20 connections) were lowered to fit,
    // and one account gets a quarter of them.
    assert!(
        refusals
            .iter()
            .any(|m| m == "too many open files for this account"),
        "{refusals:?}"
    );
    assert_eq!(handles, 31, "{refusals:?}");

    drop(sessions);
}

#[test]
fn a_session_limit_refusal_is_explained_and_never_bans() {
    let env = Env::new(
        "max_sessions_per_account = 1",
        "[sftp.defender]\nthreshold = 3\nscore_limit_exceeded = 3\nban_secs = 600\n",
    );
    let pw = env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    // The job's first session stays open (interactive sftp waiting on stdin) ...
    let mut first = env.open_session("vendor", &key);
    srv.wait_log(10, "SFTP login");
    // ... and its parallel ones, with the right key or password, are refused with the reason.
    for method in ["publickey", "password", "keyboard-interactive"] {
        let out = match method {
            "publickey" => env.sftp_key("vendor", &key, "pwd\n", &[]),
            m => env.sftp_password("vendor", &pw, m, "pwd\n"),
        };
        assert!(!out.status.success(), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("too many sessions for this account"),
            "{}",
            text(&out)
        );
    }
    drop(first.stdin.take());
    let _ = first.wait();
    srv.wait_log(10, "SFTP session closed");
    // No ban: the next session is admitted.
    let out = env.sftp_key("vendor", &key, "pwd\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let log = srv.log_text();
    assert!(!log.contains("address banned"), "{log}");
    assert_eq!(
        log.matches("too many sessions for this account").count(),
        3,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_refusal_is_logged() {
    let env = Env::new("", "");
    let pw = env.add_account("vendor", "district");
    let srv = env.start();
    let addr: SocketAddr = format!("127.0.0.1:{}", env.port).parse().unwrap();
    let h = ssh(addr, "vendor", &pw).await.expect("login");
    let ch = h.channel_open_session().await.unwrap();
    ch.set_env(true, "SECRET_NAME", "secret-value")
        .await
        .unwrap();
    ch.request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .unwrap();
    ch.request_x11(true, false, "MIT-MAGIC-COOKIE-1", "00", 0)
        .await
        .unwrap();
    assert!(h
        .channel_open_direct_tcpip("10.9.8.7", 5432, "127.0.0.1", 5000)
        .await
        .is_err());
    assert!(h.tcpip_forward("127.0.0.1", 0).await.is_err());
    for needle in [
        "SFTP refused: env request",
        "SFTP refused: pty request",
        "SFTP refused: x11 request",
        "SFTP refused: local port forwarding",
        "SFTP refused: remote port forwarding",
    ] {
        srv.wait_log(10, needle);
    }
    let log = srv.log_text();
    for line in log.lines().filter(|l| l.contains("SFTP refused")) {
        assert!(line.contains(" INFO ") || line.contains(" WARN "), "{line}");
        assert!(line.contains("account=vendor"), "{line}");
    }
    // What the client sent stays out of the log.
    for secret in [
        "SECRET_NAME",
        "secret-value",
        "10.9.8.7",
        "5432",
        "xterm",
        "MIT-MAGIC",
    ] {
        assert!(!log.contains(secret), "{secret} logged: {log}");
    }
}
