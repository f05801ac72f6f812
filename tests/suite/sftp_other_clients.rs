//! Clients that are not OpenSSH: curl (libssh2) and paramiko. Installed by `.ci/install-deps`;
//! a test skips with a printed reason only when its client is truly unavailable.

use std::fs;
use std::process::Command;

use crate::support::sftp::*;
use crate::support::*;

fn curl_has_sftp() -> bool {
    Command::new("curl")
        .arg("-V")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|w| w == "sftp")
        })
        .unwrap_or(false)
}

/// Writes `script` (a paramiko client) to `dir` and runs it with `args`; asserts it finished and
/// printed `PARAMIKO-OK`.
pub(crate) fn run_paramiko(dir: &std::path::Path, script: &str, args: &[&std::ffi::OsStr]) {
    let file = dir.join(format!("client-{}.py", rand_tag()));
    fs::write(&file, script).unwrap();
    let out = Command::new("timeout")
        .arg(CLIENT_TIMEOUT_SECS)
        .arg("python3")
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PARAMIKO-OK"),
        "{}",
        text(&out)
    );
}

pub(crate) fn have_paramiko() -> bool {
    Command::new("python3")
        .args(["-c", "import paramiko"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg(CLIENT_TIMEOUT_SECS)
        .arg("curl")
        .args(["-sS", "--insecure", "--connect-timeout", "20"])
        .args(args)
        .output()
        .expect("curl")
}

#[test]
fn curl_libssh2_password_and_key() {
    if !curl_has_sftp() {
        println!("SKIP curl_libssh2_password_and_key: this curl has no sftp support (see .ci/install-deps)");
        return;
    }
    let env = Env::new("", "");
    let pw = env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let batch = env.state.join("reports/district/b7");
    fs::create_dir_all(&batch).unwrap();
    fs::write(batch.join("summary.txt"), "summary for b7\n").unwrap();
    let srv = env.start();
    let base = format!("sftp://127.0.0.1:{}", env.port);
    let data = write_file(&env.dir.path().join("up.csv"), 200_000);
    let user = format!("vendor:{pw}");
    let up = env.dir.path().join("up.csv");
    let up = up.to_str().unwrap();

    let out = curl(&["-u", &user, "-T", up, &format!("{base}/roster.csv")]);
    assert!(out.status.success(), "curl password upload: {}", text(&out));
    assert_eq!(
        fs::read(env.drop_dir("vendor").join("roster.csv")).unwrap(),
        data
    );

    let got = env.dir.path().join("got.txt");
    let out = curl(&[
        "-u",
        &user,
        "-o",
        got.to_str().unwrap(),
        &format!("{base}/reports/b7/summary.txt"),
    ]);
    assert!(out.status.success(), "curl report download: {}", text(&out));
    assert_eq!(fs::read_to_string(&got).unwrap(), "summary for b7\n");

    // Key login (libssh2 reads the OpenSSH ed25519 key).
    let pubkey = format!("{}.pub", key.display());
    let out = curl(&[
        "-u",
        "vendor:",
        "--key",
        key.to_str().unwrap(),
        "--pubkey",
        &pubkey,
        "-T",
        up,
        &format!("{base}/bykey.csv"),
    ]);
    assert!(out.status.success(), "curl key upload: {}", text(&out));
    assert!(env.drop_dir("vendor").join("bykey.csv").exists());

    // Refusals: writing into reports/, escaping the root.
    let out = curl(&[
        "-u",
        &user,
        "-T",
        up,
        &format!("{base}/reports/b7/summary.txt"),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(batch.join("summary.txt")).unwrap(),
        "summary for b7\n"
    );
    let out = curl(&["-u", &user, "-T", up, &format!("{base}/../../escape.csv")]);
    // The path is clamped to the root: it lands inside the jail, never outside.
    assert!(
        !env.dir.path().join("escape.csv").exists() && !env.state.join("escape.csv").exists(),
        "{}",
        text(&out)
    );
    srv.wait_log(10, "method=\"publickey\"");
}

const PARAMIKO_SCRIPT: &str = r#"
import sys, os, stat, paramiko
host, port, user, pw, keyfile, local = sys.argv[1:7]
port = int(port)

def session(t):
    return paramiko.SFTPClient.from_transport(t)

# 1. password
t = paramiko.Transport((host, port)); t.connect(); t.auth_password(user, pw)
s = session(t)
assert s.normalize('.') == '/', s.normalize('.')
assert 'reports' in s.listdir('/'), s.listdir('/')
# WinSCP-style: upload under .filepart, set times, then rename to the real name.
s.put(local, 'bundle.zip.filepart')
s.utime('bundle.zip.filepart', (1600000000, 1600000000))
s.chmod('bundle.zip.filepart', 0o600)      # accepted, ignored
s.posix_rename('bundle.zip.filepart', 'bundle.zip')
st = s.stat('bundle.zip')
assert st.st_size == os.path.getsize(local), st
assert int(st.st_mtime) == 1600000000, st.st_mtime
s.mkdir('sub'); s.put(local, 'sub/x.csv'); s.remove('sub/x.csv'); s.rmdir('sub')
for bad in [lambda: s.put(local, 'reports/x.csv'), lambda: s.symlink('bundle.zip', 'l'), lambda: s.remove('reports')]:
    try:
        bad(); print('refusal not raised'); sys.exit(1)
    except (IOError, OSError) as e:
        pass
try:
    s.open('missing.csv', 'r'); sys.exit(1)
except FileNotFoundError:
    pass
t.close()

# 2. keyboard-interactive
t = paramiko.Transport((host, port)); t.connect()
t.auth_interactive(user, lambda title, instr, prompts: [pw for _ in prompts])
s = session(t); s.put(local, 'kbd.csv'); t.close()

# 3. ed25519 key
t = paramiko.Transport((host, port)); t.connect()
t.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(keyfile))
s = session(t); s.put(local, 'key.csv'); t.close()
print('PARAMIKO-OK')
"#;

#[test]
fn paramiko_password_kbdint_key_and_filepart_rename() {
    if !have_paramiko() {
        println!("SKIP paramiko_password_kbdint_key_and_filepart_rename: python3 paramiko not installed (run .ci/install-deps)");
        return;
    }
    let env = Env::new("", "");
    let pw = env.add_account("vendor", "district");
    let key = env.add_key("vendor");
    let _srv = env.start();
    let data = write_file(&env.dir.path().join("bundle.zip"), 150_000);
    let port = env.port.to_string();
    let local = env.dir.path().join("bundle.zip");
    run_paramiko(
        env.dir.path(),
        PARAMIKO_SCRIPT,
        &[
            "127.0.0.1".as_ref(),
            port.as_ref(),
            "vendor".as_ref(),
            pw.as_ref(),
            key.as_os_str(),
            local.as_os_str(),
        ],
    );
    let drop = env.drop_dir("vendor");
    assert_eq!(listing(&drop), vec!["bundle.zip", "kbd.csv", "key.csv"]);
    assert_eq!(fs::read(drop.join("bundle.zip")).unwrap(), data);
}
