//! The real daemon (`rosterdrop serve`) with a temporary state directory and its own SFTP
//! port: accounts with keys, OpenSSH `sftp` runs, the CLI against it, and waits on its log and
//! its batch history. Killed when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::bundles::zip_dir;
use super::serve::Running;
use super::sftp::{keygen, seed_hostkeys, CLIENT_TIMEOUT_SECS};
use super::{bin, cli, free_port, rand_tag, run_with_stdin, sample, text};

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    /// The REST API's port.
    pub api_port: u16,
}

impl Daemon {
    /// `sources` is TOML with `[sources.*]` tables; intake waits `quiet` seconds.
    pub fn new(sources: &str, quiet: u64) -> Daemon {
        Daemon::with_intake(sources, quiet, "")
    }

    /// `intake` is more TOML for the `[intake]` table.
    pub fn with_intake(sources: &str, quiet: u64, intake: &str) -> Daemon {
        Daemon::with_tables(sources, quiet, intake, "")
    }

    /// `api` is more TOML for the `[api]` table (its `listen` is chosen here).
    pub fn with_api(sources: &str, api: &str) -> Daemon {
        Daemon::with_tables(sources, 1, "", api)
    }

    fn with_tables(sources: &str, quiet: u64, intake: &str, api: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        fs::create_dir_all(&state).expect("state");
        seed_hostkeys(&state);
        let port = free_port();
        let api_port = free_port();
        let config = dir.path().join("rosterdrop.toml");
        fs::write(
            &config,
            format!(
                "state_dir = {state:?}\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n{api}\n\
                 [sftp]\nlisten = \"127.0.0.1:{port}\"\n\
                 [intake]\nquiet_period_secs = {quiet}\n{intake}\n\n{sources}\n"
            ),
        )
        .expect("config");
        Daemon {
            dir,
            state,
            config,
            port,
            api_port,
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.config, args)
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "rosterdrop {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates an account with an ed25519 key; returns the private key's path.
    pub fn account(&self, name: &str, source: &str) -> PathBuf {
        self.cli_ok(&["account", "add", name, "--source", source]);
        let key = keygen(self.dir.path(), name);
        self.cli_ok(&[
            "account",
            "key",
            "add",
            name,
            &format!("{}.pub", key.display()),
        ]);
        key
    }

    pub fn start(&self) -> Running {
        self.start_with(&[])
    }

    pub fn start_with(&self, env: &[(&str, &Path)]) -> Running {
        let log = self.dir.path().join(format!("daemon-{}.log", rand_tag()));
        let mut c = bin();
        c.arg("--config")
            .arg(&self.config)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (*k, *v)));
        Running::spawn(c, log).ready(Some(self.port), "daemon ready")
    }

    /// Leaves batch 1 of `source` in the spool as a daemon that died while checking it
    /// `attempts` times would: a zip of `sample-csv/apple` uploaded by `account`, its claim
    /// (`batch.json`) and its count of attempts. Returns the batch's spool directory.
    pub fn spool_crashed_claim(&self, source: &str, account: &str, attempts: u32) -> PathBuf {
        let spool = self.state.join(format!("spool/{source}/1"));
        fs::create_dir_all(spool.join("upload")).unwrap();
        zip_dir(&sample("apple"), &spool.join("upload/nightly.zip"), None);
        let claim = format!(
            "{{\"id\":1,\"source\":{source:?},\"account\":{account:?},\"received_at\":{},\"shape\":\"zip\",\
             \"from\":{:?},\"files\":[\"nightly.zip\"],\"why\":\"zip\",\"markers\":[],\"complete\":true}}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            self.state.join(format!("drop/{account}/nightly.zip"))
        );
        fs::write(spool.join("batch.json"), claim).unwrap();
        fs::write(spool.join("attempts"), attempts.to_string()).unwrap();
        spool
    }

    /// A synthetic district, as a folder and zipped.
    pub fn synth_zip(&self, format: &str, students: u32) -> (PathBuf, PathBuf) {
        let dir = self.dir.path().join(format!("{format}-{students}"));
        let out = self.cli(&[
            "synth",
            "--format",
            format,
            "--students",
            &students.to_string(),
            dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let zip = dir.with_extension("zip");
        zip_dir(&dir, &zip, None);
        (dir, zip)
    }

    pub fn sftp(&self, user: &str, key: &Path, batch: &str, extra: &[&str]) -> Output {
        run_with_stdin(self.sftp_cmd(user, key, extra), batch)
    }

    /// Like [`Daemon::sftp`] without extra options; it must succeed.
    pub fn sftp_ok(&self, user: &str, key: &Path, batch: &str) -> Output {
        let out = self.sftp(user, key, batch, &[]);
        assert!(out.status.success(), "sftp: {}", text(&out));
        out
    }

    /// OpenSSH `sftp` in batch mode reading commands from stdin, under `timeout`.
    pub fn sftp_cmd(&self, user: &str, key: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg(CLIENT_TIMEOUT_SECS)
            .arg("sftp")
            .args(self.sftp_args(user, key, extra))
            .current_dir(self.dir.path());
        cmd
    }

    /// `sftp`'s arguments: key-only login to this daemon, batch commands from stdin.
    pub fn sftp_args(&self, user: &str, key: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = [
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PasswordAuthentication=no",
            "-P",
            &self.port.to_string(),
            "-i",
        ]
        .iter()
        .map(Into::into)
        .collect();
        args.push(key.into());
        args.extend(extra.iter().map(Into::into));
        args.extend(["-b".into(), "-".into(), format!("{user}@127.0.0.1").into()]);
        args
    }

    pub fn upload(&self, user: &str, key: &Path, local: &Path, remote: &str) {
        let out = self.sftp(
            user,
            key,
            &format!("put {} {remote}\n", local.display()),
            &[],
        );
        assert!(out.status.success(), "upload: {}", text(&out));
    }

    /// `history` through the CLI (and so through the daemon's socket when it runs).
    pub fn history(&self) -> Vec<(u64, String, String)> {
        self.cli_ok(&["history"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // id, date, time, source, account, format, state, ...
                Some((
                    f.first()?.parse().ok()?,
                    f.get(3)?.to_string(),
                    f.get(6)?.to_string(),
                ))
            })
            .collect()
    }

    /// Waits until `n` batches of `source` have a final state; returns them, oldest first.
    pub fn wait_batches(&self, source: &str, n: usize, secs: u64) -> Vec<(u64, String)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mut done: Vec<(u64, String)> = self
                .history()
                .into_iter()
                .filter(|(_, s, st)| s == source && st != "received" && st != "processing")
                .map(|(id, _, st)| (id, st))
                .collect();
            if done.len() >= n {
                done.sort();
                return done;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} batches of {source}: {:?}",
                self.history()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
