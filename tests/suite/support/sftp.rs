//! The SFTP server under test: a temporary state dir and config, the real
//! `rosterdrop` binary as a server (killed on drop), and OpenSSH `sftp` runs with timeouts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use super::serve::Running;
use super::{bin, cli, free_port, rand_tag, run_with_stdin};

/// Every client process is run under `timeout` so no test can hang.
pub const CLIENT_TIMEOUT_SECS: &str = "60";

/// Host keys generated once per test binary and copied into each state dir (RSA 3072
/// generation is slow); the host key test uses a fresh state dir instead.
pub fn cached_hostkeys() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("rosterdrop-test-hostkeys-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        rosterdrop::sftp::hostkeys::load_or_generate(&dir).expect("host keys");
        dir
    })
}

/// Copies the cached host keys into `state/hostkeys`.
pub fn seed_hostkeys(state: &Path) {
    let src = cached_hostkeys().join("hostkeys");
    let dst = state.join("hostkeys");
    fs::create_dir_all(&dst).expect("hostkeys dir");
    for e in fs::read_dir(&src).expect("cached keys").flatten() {
        fs::copy(e.path(), dst.join(e.file_name())).expect("copy key");
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
    pub port: u16,
}

impl Env {
    /// `sftp_extra` is TOML inserted in the `[sftp]` table; `tail` is appended after it
    /// (for `[sftp.defender]`).
    pub fn new(sftp_extra: &str, tail: &str) -> Env {
        Self::with_keys(sftp_extra, tail, true)
    }

    pub fn with_keys(sftp_extra: &str, tail: &str, copy_keys: bool) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        fs::create_dir_all(&state).expect("state dir");
        if copy_keys {
            seed_hostkeys(&state);
        }
        let port = free_port();
        let config = dir.path().join("rosterdrop.toml");
        fs::write(
            &config,
            format!(
                "state_dir = {state:?}\n\n[intake]\npaused = true\n\n[api]\nenabled = false\n\n[sftp]\nlisten = \"127.0.0.1:{port}\"\nauth_failure_delay_ms = 100\n{sftp_extra}\n{tail}\n\n# The sources the tests' accounts belong to (intake is paused).\n[sources.district]\n[sources.district2]\n[sources.district-2]\n"
            ),
        )
        .expect("config");
        Env {
            dir,
            state,
            config,
            port,
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.config, args)
    }

    /// An interactive `sftp` session with a key, held open (waiting on its stdin) until the
    /// child is killed.
    pub fn open_session(&self, user: &str, key: &Path) -> Child {
        Command::new("timeout")
            .args([
                CLIENT_TIMEOUT_SECS,
                "sftp",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
            ])
            .arg(key)
            .args(["-P", &self.port.to_string(), &format!("{user}@127.0.0.1")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Creates an account and returns its password (parsed from the CLI's output).
    pub fn add_account(&self, name: &str, source: &str) -> String {
        let out = self.cli(&["account", "add", name, "--source", source]);
        assert!(
            out.status.success(),
            "account add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        password_from(&out)
    }

    /// Generates an ed25519 key pair, authorizes it for `name`, returns the private key path.
    pub fn add_key(&self, name: &str) -> PathBuf {
        let key = keygen(self.dir.path(), name);
        let out = self.cli(&[
            "account",
            "key",
            "add",
            name,
            &format!("{}.pub", key.display()),
        ]);
        assert!(
            out.status.success(),
            "key add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        key
    }

    pub fn drop_dir(&self, account: &str) -> PathBuf {
        self.state.join("drop").join(account)
    }

    /// Starts the server (`serve` with intake paused) and waits until it listens.
    pub fn start(&self) -> Running {
        let log = self.dir.path().join(format!("server-{}.log", rand_tag()));
        let mut c = bin();
        c.arg("--config").arg(&self.config).arg("serve");
        Running::spawn(c, log).ready(Some(self.port), "listening")
    }

    fn ssh_opts(&self) -> Vec<String> {
        [
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
            "-P",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.port.to_string()])
        .collect()
    }

    /// `sftp -b -` with a key, commands from `batch`. Extra ssh options before the host.
    pub fn sftp_key(&self, user: &str, key: &Path, batch: &str, extra: &[&str]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg(CLIENT_TIMEOUT_SECS)
            .arg("sftp")
            .args(self.ssh_opts())
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "KbdInteractiveAuthentication=no",
            ])
            .arg("-i")
            .arg(key)
            .args(extra)
            .args(["-b", "-"])
            .arg(format!("{user}@127.0.0.1"))
            .current_dir(self.dir.path());
        run_with_stdin(cmd, batch)
    }

    /// OpenSSH's `scp` (SFTP mode, the default since OpenSSH 9) of `local` to `remote` with a
    /// key.
    pub fn scp_key(&self, user: &str, key: &Path, local: &Path, remote: &str) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg(CLIENT_TIMEOUT_SECS)
            .arg("scp")
            .args(self.ssh_opts())
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .arg("-i")
            .arg(key)
            .arg(local)
            .arg(format!("{user}@127.0.0.1:{remote}"))
            .current_dir(self.dir.path());
        run_with_stdin(cmd, "")
    }

    /// `sftp` with a password given through SSH_ASKPASS; `method` is `password` or
    /// `keyboard-interactive`. Commands go on stdin (`-b` would imply BatchMode).
    pub fn sftp_password(
        &self,
        user: &str,
        password: &str,
        method: &str,
        commands: &str,
    ) -> Output {
        let askpass = self.dir.path().join(format!("askpass-{}", rand_tag()));
        let pwfile = self.dir.path().join(format!("pw-{}", rand_tag()));
        fs::write(&pwfile, password).expect("pw file");
        fs::write(&askpass, format!("#!/bin/sh\ncat '{}'\n", pwfile.display())).expect("askpass");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let mut cmd = Command::new("timeout");
        cmd.arg(CLIENT_TIMEOUT_SECS)
            .arg("sftp")
            .args(self.ssh_opts())
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                &format!("PreferredAuthentications={method}"),
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .arg(format!("{user}@127.0.0.1"))
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .current_dir(self.dir.path());
        run_with_stdin(cmd, commands)
    }
}

/// A new ed25519 key pair without passphrase in `dir`; returns the private key's path.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(format!("key-{name}-{}", rand_tag()));
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    key
}

pub fn password_from(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.split_once("password: ")
                .or_else(|| l.split_once("password for "))
                .map(|(_, p)| p)
        })
        .map(|p| p.rsplit(' ').next().unwrap_or(p).trim().to_owned())
        .unwrap_or_else(|| panic!("no password in output: {text}"))
}

pub fn write_file(path: &Path, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(path, &data).expect("write test file");
    data
}
