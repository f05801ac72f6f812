//! A real SMTP server on loopback for tests: `tests/suite/support/smtp_sink.py` (Python's aiosmtpd, which
//! `.ci/install-deps` installs), plus test certificates made at run time.
//!
//! ```ignore
//! use crate::support::smtp::{SinkOptions, SmtpSink, TestCerts};
//!
//! let certs = TestCerts::new();                      // CA + server cert for 127.0.0.1
//! let sink = SmtpSink::start(SinkOptions {
//!     starttls: Some(certs.server()),
//!     auth: Some(("user".into(), "secret".into())),
//!     ..SinkOptions::default()
//! });
//! // ... point the mailer at 127.0.0.1:sink.port with ca_file = certs.ca ...
//! let got = sink.wait_for(1, Duration::from_secs(20));
//! assert_eq!(got[0].rcpt_tos, ["it@district.example"]);
//! ```
//! The sink is killed when the `SmtpSink` is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the sink should do.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// 0: any free port (see [`SmtpSink::port`]).
    pub port: u16,
    /// Offer and require STARTTLS with this (certificate, key).
    pub starttls: Option<(PathBuf, PathBuf)>,
    /// TLS from the first byte with this (certificate, key).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Require AUTH with this user and password.
    pub auth: Option<(String, String)>,
    /// Refuse the first N messages with `fail_code` (451 when unset).
    pub fail_first: u32,
    pub fail_code: Option<u16>,
}

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// 1 for the first accepted message.
    pub n: u32,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The user that authenticated, if any.
    pub auth: Option<String>,
    /// The message as received (RFC 5322).
    pub data: Vec<u8>,
}

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    /// Where the messages are stored.
    pub dir: PathBuf,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Python with aiosmtpd, or a panic saying how to get it.
pub fn python() -> String {
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let ok = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the SMTP tests need Python's aiosmtpd: run .ci/install-deps or `{py} -m pip install aiosmtpd`"
    );
    py
}

impl SmtpSink {
    pub fn start(opts: SinkOptions) -> SmtpSink {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("received");
        let log = tmp.path().join("sink.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite/support/smtp_sink.py");
        let mut c = Command::new(python());
        c.arg(&script)
            .arg("--dir")
            .arg(&dir)
            .arg("--port")
            .arg(opts.port.to_string());
        if let Some((cert, key)) = &opts.starttls {
            c.arg("--starttls").arg(cert).arg(key);
        }
        if let Some((cert, key)) = &opts.tls {
            c.arg("--tls").arg(cert).arg(key);
        }
        if let Some((u, p)) = &opts.auth {
            c.arg("--auth").arg(format!("{u}:{p}"));
        }
        if opts.fail_first > 0 {
            c.arg("--fail-first").arg(opts.fail_first.to_string());
        }
        if let Some(code) = opts.fail_code {
            c.arg("--fail-code").arg(code.to_string());
        }
        let log_file = std::fs::File::create(&log).expect("sink log");
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = c.spawn().expect("start tests/suite/support/smtp_sink.py");
        let stdout = child.stdout.take().expect("sink stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the SMTP sink did not start (stdout {line:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        SmtpSink {
            child,
            port,
            dir,
            log,
            _tmp: tmp,
        }
    }

    /// What the sink wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).expect("read sink json"))
                    .expect("sink json");
            let data = std::fs::read(self.dir.join(format!("{n}.eml"))).expect("read sink eml");
            out.push(Received {
                n,
                mail_from: meta["mail_from"].as_str().unwrap_or_default().to_string(),
                rcpt_tos: meta["rcpt_tos"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                auth: meta["auth"].as_str().map(str::to_string),
                data,
            });
        }
        out.sort_by_key(|r| r.n);
        out
    }

    /// Waits until at least `n` messages arrived; panics with the sink's log after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} message(s) after {timeout:?}, wanted {n}; sink log:\n{}",
                    got.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate it signed, for `127.0.0.1` and `localhost`, as PEM
/// files in a temporary directory.
pub struct TestCerts {
    /// The CA certificate: what the client trusts (`ca_file`).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "rosterdrop test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "rosterdrop test SMTP server");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let out = TestCerts {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            _dir: dir,
        };
        std::fs::write(&out.ca, ca_cert.pem()).expect("write CA");
        std::fs::write(&out.cert, cert.pem()).expect("write cert");
        std::fs::write(&out.key, key.serialize_pem()).expect("write key");
        out
    }

    /// (certificate, key) for [`SinkOptions::starttls`] or [`SinkOptions::tls`].
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.cert.clone(), self.key.clone())
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        TestCerts::new()
    }
}
