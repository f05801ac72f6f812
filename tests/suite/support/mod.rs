//! What the integration tests share, one implementation each, by job:
//!
//! - here: the binary, the repository and its samples, temporary files, ports, process output;
//! - [`check`]: running `rosterdrop check` and reading what it wrote (`Run`, the patch summary);
//! - [`bundles`]: bundles built in a test (Apple, OneRoster), zips written and read;
//! - [`store`]: a state directory and config driving the store through the CLI (`Env`);
//! - [`serve`]: a running `rosterdrop serve` and its log (`Running`), for `daemon` and `sftp`;
//! - [`daemon`]: the real daemon (`rosterdrop serve`) with a state directory (`Daemon`);
//! - [`sftp`]: the SFTP server with cached host keys and OpenSSH client runs (`Env`);
//! - [`sftp_client`]: the SFTP server in-process and a Rust client (`Fixture`, `ssh`, `sftp`);
//! - [`smtp`]: a real SMTP server (`smtp_sink.py`, aiosmtpd) and test certificates.

pub mod api;
pub mod api_schema;
pub mod bundles;
pub mod check;
pub mod console;
pub mod daemon;
pub mod serve;
pub mod sftp;
pub mod sftp_client;
pub mod smtp;
pub mod store;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rosterdrop");

pub fn bin() -> Command {
    Command::new(BIN)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `sample-csv/<name>` of the repository.
pub fn sample(name: &str) -> PathBuf {
    repo().join("sample-csv").join(name)
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A port nobody listens on right now (bound, then released).
///
/// Never the same port twice in this test process: a daemon stopped and started again on its
/// ports must not find one of them handed to another test in between (the kernel can give a
/// port just freed to the next `bind(0)`).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A tag unique in this test process, for file names.
pub fn rand_tag() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `rosterdrop --config CONFIG ARGS`.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run rosterdrop")
}

/// A process's exit status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` with `input` on its stdin and collects its output.
pub fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("client output")
}

/// Writes `bytes` to `dir/name`, creating `dir`.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

/// Writes files (name, content) into `dir`, creating it; returns `dir`.
pub fn write_files<N: AsRef<str>, C: AsRef<[u8]>>(dir: &Path, files: &[(N, C)]) -> PathBuf {
    for (name, content) in files {
        write(dir, name.as_ref(), content);
    }
    fs::create_dir_all(dir).unwrap();
    dir.to_path_buf()
}

/// Writes a settings file holding `text` into `dir` and returns its path.
pub fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("rosterdrop.toml");
    fs::write(&p, text).unwrap();
    p
}

/// Copies the files of `src` (not recursive) into a new directory `dst`.
pub fn copy_dir(src: &Path, dst: &Path) -> PathBuf {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
    dst.to_path_buf()
}

/// Every regular file of `dir`, by name.
pub fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            );
        }
    }
    m
}

/// Names in a folder, sorted (hidden temporaries included: tests check there are none).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
