//! A running `rosterdrop serve` (the whole daemon, or the SFTP server with intake paused), its
//! log in a file, killed when dropped.

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rosterdrop serve`, killed when dropped.
pub struct Running {
    pub child: Child,
    pub log: PathBuf,
}

impl Running {
    /// Spawns `cmd` (a `serve`, possibly wrapped) logging at `info` into `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Running {
        let logf = fs::File::create(&log).expect("log file");
        let child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn rosterdrop serve");
        Running { child, log }
    }

    /// Waits (60 s at most) until the log shows `needle` and, when given, `port` on 127.0.0.1
    /// takes connections; fails with the log if the process exits first.
    pub fn ready(mut self, port: Option<u16>, needle: &str) -> Running {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.log_text().contains(needle)
                && port.is_none_or(|p| TcpStream::connect(("127.0.0.1", p)).is_ok())
            {
                return self;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("serve exited early ({st}): {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("serve did not start: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Waits until `cond` holds, polling every `poll_ms`; fails with the daemon's log.
    pub fn wait_until(&self, secs: u64, poll_ms: u64, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(poll_ms));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, secs: u64, needle: &str) {
        self.wait_until(secs, 5, needle, || self.log_text().contains(needle));
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .expect("kill");
        assert!(st.success());
    }
    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon did not stop on SIGTERM: {}", self.log_text());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
