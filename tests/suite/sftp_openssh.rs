//! The real server binary against the real OpenSSH `sftp`/`ssh` clients: logins (key,
//! password, keyboard-interactive), uploads, the jail, refused channel requests, host keys
//! and algorithms.

use std::fs;
use std::process::Command;

use crate::support::sftp::*;
use crate::support::*;

#[test]
fn key_login_upload_list_get_rename() {
    let env = Env::new("fsync_uploads = true", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    // An upload temporary left by a killed server is removed at start.
    let stale = env.drop_dir("vendor").join("old");
    fs::create_dir_all(&stale).unwrap();
    fs::write(
        stale.join(".rosterdrop-upload.0123456789abcdef.x.csv"),
        "half",
    )
    .unwrap();
    let srv = env.start();
    assert_eq!(listing(&stale), Vec::<String>::new());
    fs::remove_dir(&stale).unwrap();
    let data = write_file(&env.dir.path().join("students.csv"), 300_000);
    let out = env.sftp_key(
        "vendor",
        &key,
        "pwd\nput students.csv\nls -l\nmkdir batch1\nput students.csv batch1/students.csv\nrename students.csv classes.csv\nget classes.csv back.csv\nls -l batch1\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Remote working directory: /"), "{stdout}");
    assert!(stdout.contains("reports"), "root lists reports/: {stdout}");
    let drop = env.drop_dir("vendor");
    assert_eq!(listing(&drop), vec!["batch1", "classes.csv"]);
    assert_eq!(fs::read(drop.join("classes.csv")).unwrap(), data);
    assert_eq!(fs::read(drop.join("batch1/students.csv")).unwrap(), data);
    assert_eq!(fs::read(env.dir.path().join("back.csv")).unwrap(), data);
    srv.wait_log(10, "SFTP upload complete");
    let log = srv.log_text();
    assert!(
        log.contains("SFTP login")
            && log.contains("account=vendor")
            && log.contains("method=\"publickey\""),
        "{log}"
    );
}

#[test]
fn password_and_keyboard_interactive_logins() {
    let env = Env::new("", "");
    let pw = env.add_account("vendor", "district");
    let srv = env.start();
    write_file(&env.dir.path().join("a.csv"), 1000);
    for (method, name) in [("password", "p.csv"), ("keyboard-interactive", "k.csv")] {
        let out = env.sftp_password("vendor", &pw, method, &format!("put a.csv {name}\nbye\n"));
        assert!(out.status.success(), "{method}: {}", text(&out));
        assert!(env.drop_dir("vendor").join(name).exists(), "{method}");
    }
    // A wrong password is refused and uploads nothing.
    let out = env.sftp_password(
        "vendor",
        "not-the-password",
        "password",
        "put a.csv w.csv\nbye\n",
    );
    assert!(!out.status.success());
    assert!(!env.drop_dir("vendor").join("w.csv").exists());
    srv.wait_log(10, "wrong password");
    let log = srv.log_text();
    assert!(!log.contains(&pw), "password leaked into the log");
    assert!(
        !log.contains("not-the-password"),
        "password leaked into the log"
    );
}

#[test]
fn passwd_regenerates_and_old_password_stops_working() {
    let env = Env::new("", "");
    let old = env.add_account("vendor", "district");
    let out = env.cli(&["account", "passwd", "vendor"]);
    assert!(out.status.success(), "{}", text(&out));
    let new = password_from(&out);
    assert_ne!(old, new);
    let stored = fs::read_to_string(env.state.join("accounts.toml")).unwrap();
    assert!(
        !stored.contains(&new) && !stored.contains(&old),
        "plain password stored"
    );
    let _srv = env.start();
    write_file(&env.dir.path().join("a.csv"), 10);
    let bad = env.sftp_password("vendor", &old, "password", "put a.csv old.csv\nbye\n");
    assert!(!bad.status.success());
    let good = env.sftp_password("vendor", &new, "password", "put a.csv new.csv\nbye\n");
    assert!(good.status.success(), "{}", text(&good));
    assert_eq!(listing(&env.drop_dir("vendor")), vec!["new.csv"]);
    // list / remove
    let list = env.cli(&["account", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("vendor"));
    assert!(env.cli(&["account", "remove", "vendor"]).status.success());
    assert!(!String::from_utf8_lossy(&env.cli(&["account", "list"]).stdout).contains("vendor"));
    assert!(!env.cli(&["account", "remove", "vendor"]).status.success());
}

#[test]
fn jail_refusals_change_nothing() {
    let env = Env::new("", "");
    env.add_account("vendor", "district");
    env.add_account("other", "district2");
    let key = env.add_key("vendor");
    let srv = env.start();
    // Things outside the jail that a client must never reach.
    let secret = env.dir.path().join("secret.txt");
    fs::write(&secret, "top secret").unwrap();
    let other = env.drop_dir("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("theirs.csv"), "theirs").unwrap();
    let root = env.drop_dir("vendor");
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&secret, root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(env.dir.path(), root.join("linkdir")).unwrap();
    fs::hard_link(&secret, root.join("hard.txt")).unwrap();
    write_file(&env.dir.path().join("up.csv"), 100);

    let attempts: &[(&str, &str)] = &[
        ("get ../../secret.txt got1", "not found"),
        ("get /../../../secret.txt got2", "not found"),
        ("get ../other/theirs.csv got3", "not found"),
        ("get link.txt got4", "not found"),
        ("get linkdir/secret.txt got5", "not found"),
        ("get hard.txt got6", "Permission denied"),
        ("put up.csv linkdir/x.csv", "No such file"),
        ("ln -s up.csv l2", "Permission denied"),
        ("symlink /etc/passwd l3", "Permission denied"),
        ("put up.csv reports/x.csv", "Permission denied"),
        ("mkdir reports", "Permission denied"),
        ("rmdir /", "Permission denied"),
        ("rm link.txt", "No such file"),
    ];
    for (cmd, expect) in attempts {
        let out = env.sftp_key("vendor", &key, &format!("{cmd}\n"), &[]);
        assert!(!out.status.success(), "{cmd} should fail: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            err.contains(&expect.to_lowercase()),
            "{cmd}: expected {expect:?}: {}",
            text(&out)
        );
    }
    // Listing the root shows neither the links nor anything outside.
    let out = env.sftp_key("vendor", &key, "ls -1a\ncd ..\npwd\nls -1\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("link.txt") && !stdout.contains("linkdir") && !stdout.contains("secret"),
        "{stdout}"
    );
    assert!(stdout.contains("Remote working directory: /\n"), "{stdout}");
    // Nothing changed on disk, nothing was fetched.
    assert_eq!(fs::read_to_string(&secret).unwrap(), "top secret");
    assert_eq!(listing(&root), vec!["hard.txt", "link.txt", "linkdir"]);
    assert_eq!(listing(&other), vec!["theirs.csv"]);
    for n in 1..=6 {
        assert!(!env.dir.path().join(format!("got{n}")).exists());
    }
    assert!(!env.dir.path().join("x.csv").exists() && !env.dir.path().join("l2").exists());
    drop(srv);
}

#[test]
fn reports_are_readable_and_read_only() {
    let env = Env::new("", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let batch = env.state.join("reports/district/b0001");
    fs::create_dir_all(&batch).unwrap();
    fs::write(batch.join("summary.txt"), "3 students added\n").unwrap();
    fs::write(
        batch.join("patch-summary.csv"),
        "file,line,id,rule,action,field,value,detail\n",
    )
    .unwrap();
    // Another source's reports are not visible.
    fs::create_dir_all(env.state.join("reports/other/b9")).unwrap();
    let _srv = env.start();
    let out = env.sftp_key(
        "vendor",
        &key,
        "ls -1 reports\nls -1 reports/b0001\nget reports/b0001/summary.txt s.txt\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("b0001") && stdout.contains("patch-summary.csv") && !stdout.contains("b9"),
        "{stdout}"
    );
    assert_eq!(
        fs::read_to_string(env.dir.path().join("s.txt")).unwrap(),
        "3 students added\n"
    );
    for cmd in [
        "rm reports/b0001/summary.txt",
        "rename reports/b0001/summary.txt reports/b0001/x.txt",
        "put s.txt reports/b0001/summary.txt",
        "rmdir reports/b0001",
        "mkdir reports/new",
        "chmod 777 reports/b0001/summary.txt",
        "get reports/../../reports/other/b9 x",
    ] {
        let out = env.sftp_key("vendor", &key, &format!("{cmd}\n"), &[]);
        assert!(!out.status.success(), "{cmd}: {}", text(&out));
    }
    assert_eq!(
        fs::read_to_string(batch.join("summary.txt")).unwrap(),
        "3 students added\n"
    );
    assert_eq!(listing(&batch), vec!["patch-summary.csv", "summary.txt"]);
}

#[test]
fn only_the_sftp_subsystem() {
    let env = Env::new("", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let srv = env.start();
    let port = env.port.to_string();
    let base = |extra: &[&str]| {
        let mut c = Command::new("timeout");
        c.args([
            CLIENT_TIMEOUT_SECS,
            "ssh",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
        ])
        .arg(&key)
        .args(["-p", &port])
        .args(extra);
        c
    };
    // exec
    let mut c = base(&[]);
    c.args(["vendor@127.0.0.1", "touch /tmp/pwned-rosterdrop; echo hi"]);
    let out = c.output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hi"));
    // shell with a pty
    let mut c = base(&["-tt"]);
    c.arg("vendor@127.0.0.1");
    let out = run_with_stdin(c, "echo hi\nexit\n");
    assert!(!out.status.success(), "{}", text(&out));
    // another subsystem
    let mut c = base(&["-s"]);
    c.args(["vendor@127.0.0.1", "netconf"]);
    let out = c.output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    // port forwarding: local (-L via -W) and remote (-R with ExitOnForwardFailure)
    let mut c = base(&["-W", "127.0.0.1:22"]);
    c.arg("vendor@127.0.0.1");
    let out = run_with_stdin(c, "");
    assert!(!out.status.success(), "{}", text(&out));
    let mut c = base(&[
        "-o",
        "ExitOnForwardFailure=yes",
        "-N",
        "-R",
        "0:127.0.0.1:22",
    ]);
    c.arg("vendor@127.0.0.1");
    let out = c.output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    srv.wait_log(10, "exec request");
    assert!(srv.log_text().contains("port forwarding"));
    assert!(srv.log_text().contains("subsystem other than sftp"));
}

#[test]
fn host_keys_generated_once_and_fingerprints_printed() {
    let env = Env::with_keys("", "", false);
    // Only the daemon makes host keys: before its first start, `hostkey` says so and makes
    // none (keys made by the CLI could differ from the running daemon's).
    let out = env.cli(&["hostkey"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the daemon has not started"),
        "{}",
        text(&out)
    );
    assert!(!env.state.join("hostkeys").exists());
    // `start` returns once the server accepts connections: its keys exist by then.
    let srv = env.start();
    let out = env.cli(&["hostkey"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 3, "{first}");
    assert!(lines[0].starts_with("ssh-ed25519 SHA256:"));
    assert!(lines[1].starts_with("ecdsa-sha2-nistp256 SHA256:"));
    assert!(lines[2].starts_with("ssh-rsa SHA256:"));
    let dir = env.state.join("hostkeys");
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "ssh_host_ed25519_key",
        "ssh_host_ecdsa_key",
        "ssh_host_rsa_key",
    ] {
        let mode = fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // RSA 3072
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(dir.join("ssh_host_rsa_key.pub"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("3072 "),
        "{}",
        text(&out)
    );
    // Reused: same fingerprints after a restart, and the server presents them.
    drop(srv);
    let srv = env.start();
    let again = env.cli(&["hostkey"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), first);
    let scan = Command::new("timeout")
        .args([
            "30",
            "ssh-keyscan",
            "-p",
            &env.port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let scanned = String::from_utf8_lossy(&scan.stdout);
    for alg in ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"] {
        assert!(
            scanned.contains(alg),
            "{alg} not presented: {}",
            text(&scan)
        );
    }
    let known = env.dir.path().join("known");
    fs::write(&known, scanned.as_bytes()).unwrap();
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&known)
        .output()
        .unwrap();
    let fps = String::from_utf8_lossy(&fp.stdout);
    for line in first.lines() {
        let f = line.split(' ').nth(1).unwrap();
        assert!(fps.contains(f), "{f} not served: {fps}");
    }
    drop(srv);
}

#[test]
fn algorithms_default_set_and_no_sha1() {
    let env = Env::new("", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let _srv = env.start();
    let ok = |opts: &[&str]| {
        let out = env.sftp_key("vendor", &key, "pwd\n", opts);
        out.status.success()
    };
    for c in [
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
    ] {
        assert!(ok(&["-o", &format!("Ciphers={c}")]), "cipher {c}");
    }
    for m in [
        "hmac-sha2-256",
        "hmac-sha2-512",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
    ] {
        assert!(
            ok(&["-o", "Ciphers=aes128-ctr", "-o", &format!("MACs={m}")]),
            "mac {m}"
        );
    }
    for k in [
        "curve25519-sha256",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "diffie-hellman-group-exchange-sha256",
        "diffie-hellman-group14-sha256",
        "diffie-hellman-group16-sha512",
    ] {
        assert!(ok(&["-o", &format!("KexAlgorithms={k}")]), "kex {k}");
    }
    for h in [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "rsa-sha2-256",
        "rsa-sha2-512",
    ] {
        assert!(
            ok(&["-o", &format!("HostKeyAlgorithms={h}")]),
            "host key {h}"
        );
    }
    // SHA-1 is off by default.
    assert!(!ok(&["-o", "KexAlgorithms=diffie-hellman-group14-sha1"]));
    assert!(!ok(&["-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1"]));
    assert!(!ok(&["-o", "HostKeyAlgorithms=ssh-rsa"]));
    assert!(!ok(&["-o", "Ciphers=aes128-cbc"]));
}

#[test]
fn legacy_setting_turns_sha1_on() {
    let env = Env::new("legacy = true", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let _srv = env.start();
    for opts in [
        vec!["-o", "KexAlgorithms=diffie-hellman-group14-sha1"],
        vec!["-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1"],
        vec!["-o", "HostKeyAlgorithms=ssh-rsa"],
    ] {
        let out = env.sftp_key("vendor", &key, "pwd\n", &opts);
        assert!(out.status.success(), "{opts:?}: {}", text(&out));
    }
}

/// OpenSSH 9's `scp` speaks SFTP and takes ssh's exit status as its own: the server sends the
/// subsystem's exit status (0) before closing the channel, as sshd does, or every successful
/// upload was reported as failed (exit 1; found by an outside probe).
#[test]
fn scp_uploads_and_exits_zero() {
    let env = Env::new("", "");
    env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let _srv = env.start();
    let data = write_file(&env.dir.path().join("students.csv"), 50_000);
    let out = env.scp_key(
        "vendor",
        &key,
        &env.dir.path().join("students.csv"),
        "students.csv",
    );
    assert!(
        out.status.success(),
        "scp exit {:?}: {}",
        out.status,
        text(&out)
    );
    assert_eq!(
        fs::read(env.drop_dir("vendor").join("students.csv")).unwrap(),
        data
    );
    // sftp itself sees the status too (it ignored its absence, but ssh reported -1).
    let out = env.sftp_key("vendor", &key, "ls\n", &["-v"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Exit status 0"),
        "no exit status: {}",
        text(&out)
    );
}
