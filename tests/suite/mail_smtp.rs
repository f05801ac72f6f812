//! The mail queue against real parts: the file transport, and a real SMTP server on loopback
//! (`tests/smtp_sink.py`, aiosmtpd) in plain, STARTTLS + AUTH and implicit TLS modes, with
//! outages, refusals and restarts.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::free_port;
use crate::support::smtp::{Received, SinkOptions, SmtpSink, TestCerts};
use mail_parser::{MessageParser, MimeHeaders};
use rosterdrop::daemon::mail::{batch_notice, MailConfig, Mailer, Notice, Security, TransportKind};
use rosterdrop::store::{Batch, BatchState, TableCounts};

const ADMIN: &str = "it@maple.example";

fn batch(id: u64, state: BatchState) -> Batch {
    let mut tables = BTreeMap::new();
    tables.insert(
        "students".to_string(),
        TableCounts {
            adds: 1200,
            updates: 3,
            ..TableCounts::default()
        },
    );
    let mut patches = BTreeMap::new();
    patches.insert("unknown-class".to_string(), 14);
    Batch {
        id,
        source: "maple-valley".into(),
        account: "sis".into(),
        content_hash: "h".into(),
        settings_hash: String::new(),
        format: "apple".into(),
        mode: "bulk".into(),
        state,
        received_at: 0,
        duration_ms: 0,
        tables,
        patches,
        report_dir: None,
        reason: None,
        base: None,
        rollback_of: None,
        buckets_before: BTreeMap::new(),
        buckets_after: BTreeMap::new(),
        bytes_written: 0,
        bytes_stored: 0,
        decided: None,
        earlier: Vec::new(),
    }
}

/// A report directory with a summary and `rows` patch rows.
fn report(dir: &Path, rows: usize) -> PathBuf {
    let d = dir.join("reports/maple-valley/42");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("summary.txt"),
        "rosterdrop check: ACCEPTED WITH PATCHES\nBundle:  upload.zip\n",
    )
    .unwrap();
    let mut csv = String::from("file,line,id,rule,action,field,value,detail\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "rosters.csv,{},R{i},unknown-class,dropped-row,class_id,C{},class not in classes.csv\n",
            i + 2,
            i % 97
        ));
    }
    std::fs::write(d.join("patch-summary.csv"), csv).unwrap();
    d
}

fn notice(key: &str) -> Notice {
    Notice {
        key: key.to_string(),
        to: vec![ADMIN.to_string()],
        subject: format!("[rosterdrop] test {key}"),
        body: "Hello from the test.\n".to_string(),
        html: None,
        attachment: None,
    }
}

fn smtp(port: u16, security: Security) -> MailConfig {
    MailConfig {
        transport: TransportKind::Smtp,
        host: Some("127.0.0.1".into()),
        port: Some(port),
        security,
        timeout_secs: 10.0,
        retry_initial_secs: 0.2,
        retry_max_secs: 1.0,
        ..MailConfig::default()
    }
}

/// A mailer with its delivery loop running.
struct Running {
    mailer: Arc<Mailer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(state: &Path, cfg: MailConfig) -> Running {
        let mailer = Arc::new(Mailer::new(state, cfg).unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(mailer.clone().run(async {
            let _ = rx.await;
        }));
        Running {
            mailer,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the delivery loop stops on shutdown")
            .unwrap();
    }
}

async fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn received(sink: &SmtpSink, n: usize) -> Vec<Received> {
    let start = Instant::now();
    loop {
        let got = sink.messages();
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} message(s), wanted {n}; sink log:\n{}",
            got.len(),
            sink.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn meta(state: &Path, dir: &str, key: &str) -> Option<serde_json::Value> {
    let p = state.join("mail").join(dir).join(format!("{key}.json"));
    std::fs::read(p)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

fn attempts(state: &Path, dir: &str, key: &str) -> u64 {
    meta(state, dir, key).map_or(0, |m| m["attempts"].as_u64().unwrap_or(0))
}

fn subject(data: &[u8]) -> String {
    MessageParser::default()
        .parse(data)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_transport_writes_a_parseable_eml() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let dir = report(state, 3);
    let cfg = MailConfig {
        reply_to: Some("Roster help <roster-help@maple.example>".into()),
        ..MailConfig::default()
    };
    let n = batch_notice(
        &batch(42, BatchState::Applied),
        Some(&dir),
        None,
        &[ADMIN.to_string()],
        &cfg,
    )
    .unwrap();
    let r = Running::start(state, cfg);
    r.mailer.enqueue(n).unwrap();
    let eml = state.join("outbox/batch-42.eml");
    until("the outbox file", Duration::from_secs(20), || eml.exists()).await;
    until("an empty queue", Duration::from_secs(5), || {
        r.mailer.pending() == 0
    })
    .await;
    r.stop().await;

    let data = std::fs::read(&eml).unwrap();
    let m = MessageParser::default().parse(&data).unwrap();
    assert_eq!(
        m.subject(),
        Some("[rosterdrop] maple-valley batch 42: APPLIED, 1200 added, 3 changed, 0 removed, 3 problems patched")
    );
    assert!(m.message_id().is_some_and(|id| id.starts_with("batch-42.")));
    assert!(m.date().is_some());
    let from = m.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.address(), Some("rosterdrop@localhost"));
    let to = m.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some(ADMIN));
    let reply = m.reply_to().and_then(|a| a.first()).unwrap();
    assert_eq!(reply.address(), Some("roster-help@maple.example"));
    let body = m.body_text(0).unwrap().replace("\r\n", "\n");
    // Built from the batch record and patch-summary.csv, not from summary.txt.
    assert!(
        body.starts_with("Batch 42 from maple-valley was applied to the roster.\n"),
        "{body}"
    );
    assert!(!body.contains("rosterdrop check:"), "{body}");
    assert!(body.contains("reports/42/ in the upload account"), "{body}");
    // The HTML alternative is a part of its own beside the text.
    assert_eq!(m.text_body.len(), 1);
    assert_eq!(m.html_body.len(), 1);
    assert_ne!(m.text_body[0], m.html_body[0]);
    let html = m.body_html(0).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("Batch 42 from maple-valley was applied to the roster."));
    let a = m.attachment(0).unwrap();
    assert_eq!(a.attachment_name(), Some("patch-summary.csv"));
    assert_eq!(
        a.contents(),
        std::fs::read(dir.join("patch-summary.csv")).unwrap()
    );
    // Sent markers keep the key.
    assert!(meta(state, "sent", "batch-42").is_some());
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(state.join("outbox"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_plain_delivers() {
    let sink = SmtpSink::start(SinkOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(
        tmp.path(),
        MailConfig {
            from: "Rosterdrop <noreply@rosterdrop.example>".into(),
            helo_name: Some("rosterdrop.test".into()),
            ..smtp(sink.port, Security::None)
        },
    );
    let mut n = notice("plain-1");
    n.to.push("second@maple.example".into());
    r.mailer.enqueue(n).unwrap();
    let got = received(&sink, 1).await;
    assert_eq!(got[0].mail_from, "noreply@rosterdrop.example");
    assert_eq!(got[0].rcpt_tos, [ADMIN, "second@maple.example"]);
    assert_eq!(subject(&got[0].data), "[rosterdrop] test plain-1");
    until("an empty queue", Duration::from_secs(5), || {
        r.mailer.pending() == 0
    })
    .await;
    r.stop().await;
    assert_eq!(attempts(tmp.path(), "sent", "plain-1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_with_auth_delivers() {
    let certs = TestCerts::new();
    let sink = SmtpSink::start(SinkOptions {
        starttls: Some(certs.server()),
        auth: Some(("rosterdrop".into(), "s3cret pass".into())),
        ..SinkOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("smtp-password");
    std::fs::write(&pw, "s3cret pass\n").unwrap();
    let r = Running::start(
        &tmp.path().join("state"),
        MailConfig {
            username: Some("rosterdrop".into()),
            password_file: Some(pw),
            ca_file: Some(certs.ca.clone()),
            ..smtp(sink.port, Security::Starttls)
        },
    );
    r.mailer.enqueue(notice("starttls-1")).unwrap();
    let got = received(&sink, 1).await;
    assert_eq!(got[0].auth.as_deref(), Some("rosterdrop"));
    assert_eq!(subject(&got[0].data), "[rosterdrop] test starttls-1");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_implicit_tls_delivers() {
    let certs = TestCerts::new();
    let sink = SmtpSink::start(SinkOptions {
        tls: Some(certs.server()),
        auth: Some(("u".into(), "p".into())),
        ..SinkOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(
        tmp.path(),
        MailConfig {
            username: Some("u".into()),
            password: Some("p".into()),
            ca_file: Some(certs.ca.clone()),
            ..smtp(sink.port, Security::Tls)
        },
    );
    r.mailer.enqueue(notice("tls-1")).unwrap();
    let got = received(&sink, 1).await;
    assert_eq!(got[0].auth.as_deref(), Some("u"));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_the_ca_is_refused_and_retried() {
    let certs = TestCerts::new();
    let sink = SmtpSink::start(SinkOptions {
        tls: Some(certs.server()),
        ..SinkOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(tmp.path(), smtp(sink.port, Security::Tls));
    r.mailer.enqueue(notice("untrusted")).unwrap();
    until("two attempts", Duration::from_secs(20), || {
        attempts(tmp.path(), "queue", "untrusted") >= 2
    })
    .await;
    r.stop().await;
    assert!(sink.messages().is_empty());
    let m = meta(tmp.path(), "queue", "untrusted").unwrap();
    assert!(m["last_error"].as_str().is_some_and(|e| !e.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_patch_summary_is_zipped() {
    let sink = SmtpSink::start(SinkOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let dir = report(tmp.path(), 5000);
    let csv = std::fs::read(dir.join("patch-summary.csv")).unwrap();
    let cfg = MailConfig {
        attach_zip_over_bytes: 64 * 1024,
        ..smtp(sink.port, Security::None)
    };
    assert!(csv.len() > 64 * 1024);
    let n = batch_notice(
        &batch(42, BatchState::Applied),
        Some(&dir),
        None,
        &[ADMIN.to_string()],
        &cfg,
    )
    .unwrap();
    let r = Running::start(tmp.path(), cfg);
    r.mailer.enqueue(n).unwrap();
    let got = received(&sink, 1).await;
    r.stop().await;
    let m = MessageParser::default().parse(&got[0].data).unwrap();
    let a = m.attachment(0).unwrap();
    assert_eq!(a.attachment_name(), Some("patch-summary.zip"));
    assert!(a
        .content_type()
        .is_some_and(|ct| ct.ctype() == "application" && ct.subtype() == Some("zip")));
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(a.contents().to_vec())).unwrap();
    let mut back = Vec::new();
    z.by_name("patch-summary.csv")
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, csv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_retried_until_delivered() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(tmp.path(), smtp(port, Security::None));
    let t = Instant::now();
    r.mailer.enqueue(notice("outage")).unwrap();
    // Enqueueing does not wait for the network.
    assert!(t.elapsed() < Duration::from_secs(2));
    until("two failed attempts", Duration::from_secs(20), || {
        attempts(tmp.path(), "queue", "outage") >= 2
    })
    .await;
    assert_eq!(r.mailer.pending(), 1);
    let m = meta(tmp.path(), "queue", "outage").unwrap();
    assert!(m["last_error"].as_str().is_some());
    let sink = SmtpSink::start(SinkOptions {
        port,
        ..SinkOptions::default()
    });
    let got = received(&sink, 1).await;
    assert_eq!(subject(&got[0].data), "[rosterdrop] test outage");
    until("an empty queue", Duration::from_secs(5), || {
        r.mailer.pending() == 0
    })
    .await;
    r.stop().await;
    assert!(attempts(tmp.path(), "sent", "outage") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_left_by_a_stopped_mailer_is_delivered_by_a_new_one() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = smtp(port, Security::None);
    let first = Running::start(tmp.path(), cfg.clone());
    first.mailer.enqueue(notice("restart-1")).unwrap();
    first.mailer.enqueue(notice("restart-2")).unwrap();
    until("an attempt at both", Duration::from_secs(20), || {
        attempts(tmp.path(), "queue", "restart-1") >= 1
            && attempts(tmp.path(), "queue", "restart-2") >= 1
    })
    .await;
    first.stop().await;
    let sink = SmtpSink::start(SinkOptions {
        port,
        ..SinkOptions::default()
    });
    let second = Running::start(tmp.path(), cfg);
    assert_eq!(second.mailer.pending(), 2);
    let got = received(&sink, 2).await;
    let mut subjects: Vec<String> = got.iter().map(|m| subject(&m.data)).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["[rosterdrop] test restart-1", "[rosterdrop] test restart-2"]
    );
    until("an empty queue", Duration::from_secs(5), || {
        second.mailer.pending() == 0
    })
    .await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_is_sent_once() {
    let sink = SmtpSink::start(SinkOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let cfg = smtp(sink.port, Security::None);
    // Queued twice before the loop runs, once more after delivery, and again by a new
    // mailer (a restarted daemon).
    let m = Mailer::new(tmp.path(), cfg.clone()).unwrap();
    m.enqueue(notice("batch-7")).unwrap();
    m.enqueue(notice("batch-7")).unwrap();
    assert_eq!(m.pending(), 1);
    drop(m);
    let r = Running::start(tmp.path(), cfg.clone());
    received(&sink, 1).await;
    until("an empty queue", Duration::from_secs(5), || {
        r.mailer.pending() == 0
    })
    .await;
    r.mailer.enqueue(notice("batch-7")).unwrap();
    assert_eq!(r.mailer.pending(), 0);
    r.stop().await;
    let again = Running::start(tmp.path(), cfg);
    again.mailer.enqueue(notice("batch-7")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    again.stop().await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_refusal_then_success() {
    let sink = SmtpSink::start(SinkOptions {
        fail_first: 1,
        ..SinkOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(tmp.path(), smtp(sink.port, Security::None));
    r.mailer.enqueue(notice("451")).unwrap();
    received(&sink, 1).await;
    until("an empty queue", Duration::from_secs(5), || {
        r.mailer.pending() == 0
    })
    .await;
    r.stop().await;
    let sent = meta(tmp.path(), "sent", "451").unwrap();
    assert_eq!(sent["attempts"], 2);
    assert!(sent["errors"][0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("451")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusal_goes_to_failed() {
    let sink = SmtpSink::start(SinkOptions {
        fail_first: 100,
        fail_code: Some(550),
        ..SinkOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(tmp.path(), smtp(sink.port, Security::None));
    r.mailer.enqueue(notice("refused")).unwrap();
    let failed = tmp.path().join("mail/failed");
    until("the failed entry", Duration::from_secs(20), || {
        failed.join("refused.json").exists()
    })
    .await;
    until("an empty queue", Duration::from_secs(5), || {
        r.mailer.pending() == 0
    })
    .await;
    r.stop().await;
    assert!(failed.join("refused.eml").exists());
    let m = meta(tmp.path(), "failed", "refused").unwrap();
    assert_eq!(m["attempts"], 1);
    assert!(m["last_error"].as_str().is_some_and(|e| e.contains("550")));
    assert!(sink.messages().is_empty());
    // A failed key is not queued again.
    let m = Mailer::new(tmp.path(), smtp(sink.port, Security::None)).unwrap();
    m.enqueue(notice("refused")).unwrap();
    assert_eq!(m.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_retried_not_failed() {
    let certs = TestCerts::new();
    let sink = SmtpSink::start(SinkOptions {
        starttls: Some(certs.server()),
        auth: Some(("u".into(), "right".into())),
        ..SinkOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(
        tmp.path(),
        MailConfig {
            username: Some("u".into()),
            password: Some("wrong".into()),
            ca_file: Some(certs.ca.clone()),
            ..smtp(sink.port, Security::Starttls)
        },
    );
    r.mailer.enqueue(notice("auth")).unwrap();
    until("two attempts", Duration::from_secs(20), || {
        attempts(tmp.path(), "queue", "auth") >= 2
    })
    .await;
    r.stop().await;
    assert!(!tmp.path().join("mail/failed/auth.json").exists());
    assert!(meta(tmp.path(), "queue", "auth").unwrap()["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("535")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_the_configured_age() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(
        tmp.path(),
        MailConfig {
            // About a second.
            give_up_after_hours: 0.0003,
            ..smtp(free_port(), Security::None)
        },
    );
    r.mailer.enqueue(notice("old")).unwrap();
    until("the failed entry", Duration::from_secs(20), || {
        tmp.path().join("mail/failed/old.json").exists()
    })
    .await;
    r.stop().await;
    let m = meta(tmp.path(), "failed", "old").unwrap();
    assert!(m["last_error"]
        .as_str()
        .is_some_and(|e| e.starts_with("gave up after")));
    assert!(m["attempts"].as_u64().unwrap() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_and_is_retried() {
    // Accepts connections (the kernel completes them) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let r = Running::start(
        tmp.path(),
        MailConfig {
            timeout_secs: 0.25,
            ..smtp(port, Security::None)
        },
    );
    r.mailer.enqueue(notice("silent")).unwrap();
    until("two attempts", Duration::from_secs(20), || {
        attempts(tmp.path(), "queue", "silent") >= 2
    })
    .await;
    r.stop().await;
    assert!(meta(tmp.path(), "queue", "silent").unwrap()["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("no answer")));
    drop(silent);
}
