//! The durable queue and its delivery loop.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::{valid_key, MailConfig, MailError, Notice, Security, TransportKind};
use crate::clock::now_ms;
use crate::daemon::state::lock;
use crate::fsutil::{self, write_atomic, write_atomic_with, WriteMode};
use crate::paths::StateDir;

/// How often the loop looks at the queue even when nobody wakes it (entries that another
/// process, such as an offline CLI command, put there).
const RESCAN: Duration = Duration::from_secs(60);
/// Errors kept per entry.
const MAX_ERRORS: usize = 20;
/// Temporary files older than this at start are leftovers of a crash.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// One queue entry's metadata (`<key>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    key: String,
    message_id: String,
    /// Envelope sender and recipients.
    from: String,
    to: Vec<String>,
    /// Milliseconds since the epoch.
    queued_at: u64,
    attempts: u32,
    next_attempt_at: u64,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    errors: Vec<AttemptError>,
    #[serde(default)]
    sent_at: Option<u64>,
    #[serde(default)]
    failed_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttemptError {
    at: u64,
    attempt: u32,
    error: String,
}

enum Transport {
    File(PathBuf),
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
}

/// Why a queue entry's metadata cannot be used.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error(transparent)]
    Io(io::Error),
    #[error(transparent)]
    Json(serde_json::Error),
}

/// What went wrong with one delivery attempt.
enum Failure {
    /// Try again later (network, 4xx, authentication, TLS, local I/O).
    Transient(String),
    /// The server refused the message for good (5xx): retrying will not help.
    Permanent(String),
}

/// The mail queue: [`Mailer::enqueue`] stores, [`Mailer::run`] delivers.
///
/// One process should run the delivery loop for a state directory (the daemon); others may
/// enqueue into the same directory, and the loop picks their entries up within a minute.
pub struct Mailer {
    cfg: MailConfig,
    queue: PathBuf,
    sent: PathBuf,
    failed: PathBuf,
    from: Mailbox,
    transport: Transport,
    wake: tokio::sync::Notify,
    enqueue_lock: Mutex<()>,
    /// In-memory backoff, in case the metadata could not be rewritten after a failure.
    not_before: Mutex<HashMap<String, u64>>,
}

fn create_dir(p: &Path) -> Result<(), MailError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o750);
    Ok(b.create(p).map_err(fsutil::at(p))?)
}

/// Replaces e-mail addresses in a server's reply by `<address>`, for logs.
fn redact(s: &str) -> String {
    s.split_inclusive(char::is_whitespace)
        .map(|w| {
            if w.contains('@') {
                let end = &w[w.trim_end().len()..];
                format!("<address>{end}")
            } else {
                w.to_string()
            }
        })
        .collect()
}

fn smtp_transport(
    cfg: &MailConfig,
    password: Option<String>,
    ca: Option<Vec<u8>>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let host = cfg.host.as_deref().map(str::trim).unwrap_or_default();
    let tls = || -> Result<TlsParameters, MailError> {
        let mut b = TlsParameters::builder(host.to_string());
        if let Some(pem) = &ca {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| MailError::Config(format!("ca_file: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| MailError::Config(format!("TLS setup: {e}")))
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(cfg.port())
        .timeout(Some(Duration::from_secs_f64(cfg.timeout_secs)))
        .tls(match cfg.security {
            Security::Starttls => Tls::Required(tls()?),
            Security::Tls => Tls::Wrapper(tls()?),
            Security::None => Tls::None,
        });
    if let (Some(u), Some(p)) = (&cfg.username, password) {
        b = b.credentials(Credentials::new(u.clone(), p));
    }
    if let Some(h) = &cfg.helo_name {
        b = b.hello_name(ClientId::Domain(h.clone()));
    }
    Ok(b.build())
}

impl Mailer {
    /// Checks the configuration, reads `password_file` and `ca_file`, sets up the transport
    /// and creates `<state_dir>/mail/{queue,sent,failed}/` (and `outbox/` for the file
    /// transport). Touches no network.
    pub fn new(state_dir: &Path, cfg: MailConfig) -> Result<Mailer, MailError> {
        cfg.validate()?;
        let from: Mailbox = cfg.from.parse().map_err(|e| MailError::Address {
            address: cfg.from.clone(),
            message: format!("{e}"),
        })?;
        let mail = StateDir::at(state_dir).mail();
        let (queue, sent, failed) = (mail.join("queue"), mail.join("sent"), mail.join("failed"));
        for d in [&queue, &sent, &failed] {
            create_dir(d)?;
        }
        let transport = match cfg.transport {
            TransportKind::File => {
                let outbox = StateDir::at(state_dir).outbox();
                create_dir(&outbox)?;
                Transport::File(outbox)
            }
            TransportKind::Smtp => {
                let (password, ca) = cfg.load_secrets()?;
                Transport::Smtp(Box::new(smtp_transport(&cfg, password, ca)?))
            }
        };
        Ok(Mailer {
            cfg,
            queue,
            sent,
            failed,
            from,
            transport,
            wake: tokio::sync::Notify::new(),
            enqueue_lock: Mutex::new(()),
            not_before: Mutex::new(HashMap::new()),
        })
    }

    /// A number for a temporary file name, unique in this process.
    fn path(dir: &Path, key: &str, ext: &str) -> PathBuf {
        dir.join(format!("{key}.{ext}"))
    }

    /// Whether `key` is queued, sent or failed already.
    fn known(&self, key: &str) -> bool {
        [&self.queue, &self.sent, &self.failed]
            .iter()
            .any(|d| Self::path(d, key, "json").exists())
    }

    /// Builds the message and queues it durably, then wakes the delivery loop. A key that is
    /// queued, sent or failed already is ignored. File I/O only (a few fsyncs), no network.
    pub fn enqueue(&self, notice: Notice) -> Result<(), MailError> {
        if !valid_key(&notice.key) {
            return Err(MailError::InvalidKey(notice.key));
        }
        if notice.to.is_empty() {
            return Err(MailError::NoRecipients);
        }
        let _g = lock(&self.enqueue_lock);
        if self.known(&notice.key) {
            tracing::debug!(key = %notice.key, "mail already queued or sent; not queued again");
            return Ok(());
        }
        let (message, meta) = self.build(&notice)?;
        let eml = Self::path(&self.queue, &notice.key, "eml");
        write_atomic(&eml, &message)?;
        let json = Self::path(&self.queue, &notice.key, "json");
        let meta_bytes =
            serde_json::to_vec_pretty(&meta).map_err(|e| MailError::Message(e.to_string()))?;
        let new = WriteMode {
            exclusive: true,
            ..WriteMode::default()
        };
        match write_atomic_with(&json, &meta_bytes, new) {
            Ok(()) => {}
            // Another process queued the same key in the meantime.
            Err(e) if e.source.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            key = %notice.key,
            recipients = meta.to.len(),
            bytes = message.len(),
            "mail queued"
        );
        self.wake.notify_one();
        Ok(())
    }

    /// The RFC 5322 message (with Message-ID and Date) and its queue metadata.
    fn build(&self, n: &Notice) -> Result<(Vec<u8>, Meta), MailError> {
        let domain = self.from.email.domain().to_string();
        let message_id = format!(
            "<{}.{:x}.{:08x}@{}>",
            n.key,
            now_ms(),
            rand::random::<u32>(),
            domain
        );
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.subject.clone())
            .message_id(Some(message_id.clone()))
            .date_now()
            .user_agent(format!("rosterdrop {}", env!("CARGO_PKG_VERSION")))
            // RFC 3834: an automatic message; vacation responders stay quiet.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ));
        if let Some(r) = &self.cfg.reply_to {
            let r: Mailbox = r.parse().map_err(|e| MailError::Address {
                address: r.clone(),
                message: format!("{e}"),
            })?;
            b = b.reply_to(r);
        }
        for t in &n.to {
            let m: Mailbox = t.trim().parse().map_err(|e| MailError::Address {
                address: t.clone(),
                message: format!("{e}"),
            })?;
            b = b.to(m);
        }
        let text = SinglePart::plain(n.body.clone());
        let msg = match (&n.html, &n.attachment) {
            (None, None) => b.singlepart(text),
            (Some(h), None) => {
                b.multipart(MultiPart::alternative_plain_html(n.body.clone(), h.clone()))
            }
            (html, Some(a)) => {
                let ct = ContentType::parse(&a.content_type).map_err(|e| {
                    MailError::Message(format!("content type {:?}: {e}", a.content_type))
                })?;
                let file =
                    lettre::message::Attachment::new(a.filename.clone()).body(a.data.clone(), ct);
                let mixed = match html {
                    Some(h) => MultiPart::mixed()
                        .multipart(MultiPart::alternative_plain_html(n.body.clone(), h.clone())),
                    None => MultiPart::mixed().singlepart(text),
                };
                b.multipart(mixed.singlepart(file))
            }
        }
        .map_err(|e| MailError::Message(e.to_string()))?;
        let env = msg.envelope();
        let now = now_ms();
        let meta = Meta {
            key: n.key.clone(),
            message_id,
            from: env.from().map(|a| a.to_string()).unwrap_or_default(),
            to: env.to().iter().map(|a| a.to_string()).collect(),
            queued_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            errors: Vec::new(),
            sent_at: None,
            failed_at: None,
        };
        Ok((msg.formatted(), meta))
    }

    /// Messages waiting in the queue.
    pub fn pending(&self) -> usize {
        fs::read_dir(&self.queue).map_or(0, |rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    !n.starts_with('.') && n.ends_with(".json")
                })
                .count()
        })
    }

    /// Queue entries (key and metadata, or why the metadata is unreadable), oldest first.
    fn scan(&self) -> Vec<(String, Result<Meta, Unreadable>)> {
        let Ok(rd) = fs::read_dir(&self.queue) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Result<Meta, Unreadable>)> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let key = n.strip_suffix(".json")?.to_string();
                if n.starts_with('.') || !valid_key(&key) {
                    return None;
                }
                let meta = fs::read(e.path())
                    .map_err(Unreadable::Io)
                    .and_then(|b| serde_json::from_slice::<Meta>(&b).map_err(Unreadable::Json));
                Some((key, meta))
            })
            .collect();
        out.sort_by_key(|(k, m)| (m.as_ref().map_or(0, |m| m.queued_at), k.clone()));
        out
    }

    /// Removes temporaries of a crashed write (older than an hour) and message files whose
    /// metadata never got written.
    fn clean(&self) {
        let Ok(rd) = fs::read_dir(&self.queue) else {
            return;
        };
        for e in rd.filter_map(Result::ok) {
            let n = e.file_name().to_string_lossy().into_owned();
            let orphan = n.strip_suffix(".eml").is_some_and(|k| {
                !n.starts_with('.') && !Self::path(&self.queue, k, "json").exists()
            });
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if (n.starts_with('.') && n.contains(".tmp-") || orphan) && old {
                tracing::debug!(file = %n, "removing a leftover mail queue file");
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Delivers queued mail until `shutdown` completes: whatever is queued at start first,
    /// then each new entry as [`Mailer::enqueue`] wakes the loop. A transient failure is
    /// retried with exponential backoff (`retry_initial_secs` doubling up to
    /// `retry_max_secs`, with jitter); a permanent refusal, or a failure after
    /// `give_up_after_hours`, moves the entry to `mail/failed/`. An attempt in progress when
    /// `shutdown` completes is abandoned and made again at the next start.
    pub async fn run<F: Future>(self: Arc<Self>, shutdown: F) {
        let mut shutdown = std::pin::pin!(shutdown);
        {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.clean()).await;
        }
        let pending = self.pending();
        tracing::info!(
            pending,
            transport = match self.transport {
                Transport::File(_) => "file",
                Transport::Smtp(_) => "smtp",
            },
            "mail delivery started"
        );
        loop {
            let me = self.clone();
            let entries = tokio::task::spawn_blocking(move || me.scan())
                .await
                .unwrap_or_default();
            let now = now_ms();
            let mut next_due: Option<u64> = None;
            let mut worked = false;
            for (key, meta) in entries {
                let meta = match meta {
                    Ok(m) => m,
                    Err(e) => {
                        let me = self.clone();
                        let why = e.to_string();
                        let _ =
                            tokio::task::spawn_blocking(move || me.quarantine(&key, &why)).await;
                        continue;
                    }
                };
                let not_before = lock(&self.not_before).get(&key).copied().unwrap_or(0);
                let due = meta.next_attempt_at.max(not_before);
                if due > now {
                    next_due = Some(next_due.map_or(due, |d| d.min(due)));
                    continue;
                }
                worked = true;
                tokio::select! {
                    biased;
                    _ = &mut shutdown => {
                        tracing::info!(key = %key, "mail delivery stopped during an attempt");
                        return;
                    }
                    _ = self.attempt(meta) => {}
                }
            }
            if worked {
                // Look again at once: new entries may have arrived meanwhile.
                continue;
            }
            let wait = next_due.map_or(RESCAN, |d| {
                Duration::from_millis(d.saturating_sub(now_ms())).min(RESCAN)
            });
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    tracing::info!(pending = self.pending(), "mail delivery stopped");
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// An entry whose metadata cannot be read goes to `failed/` as it is.
    fn quarantine(&self, key: &str, err: &str) {
        tracing::error!(
            key,
            error = err,
            "unreadable mail queue entry moved to mail/failed/"
        );
        for ext in ["eml", "json"] {
            let _ = fs::rename(
                Self::path(&self.queue, key, ext),
                Self::path(&self.failed, key, ext),
            );
        }
        let _ = fsutil::sync_dir(&self.queue);
        let _ = fsutil::sync_dir(&self.failed);
    }

    async fn attempt(self: &Arc<Self>, mut meta: Meta) {
        let key = meta.key.clone();
        // A crash between recording the outcome and removing the entry: finish the job.
        if Self::path(&self.sent, &key, "json").exists() {
            self.remove_entry(&key);
            return;
        }
        if Self::path(&self.failed, &key, "json").exists() {
            self.finish_failed(&key);
            return;
        }
        let eml = Self::path(&self.queue, &key, "eml");
        let message = match tokio::fs::read(&eml).await {
            Ok(m) => m,
            Err(e) => {
                let e = format!("{}: {e}", eml.display());
                meta.attempts += 1;
                self.fail(meta, &e);
                return;
            }
        };
        meta.attempts += 1;
        let attempt = meta.attempts;
        tracing::debug!(key = %key, attempt, recipients = meta.to.len(), "delivering mail");
        let result = self.deliver(&key, &meta, message).await;
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || match result {
            Ok(()) => me.sent(meta),
            Err(Failure::Permanent(e)) => me.fail(meta, &e),
            Err(Failure::Transient(e)) => me.retry_later(meta, e),
        })
        .await;
    }

    async fn deliver(&self, key: &str, meta: &Meta, message: Vec<u8>) -> Result<(), Failure> {
        match &self.transport {
            Transport::File(outbox) => {
                let path = Self::path(outbox, key, "eml");
                tokio::task::spawn_blocking(move || write_atomic(&path, &message))
                    .await
                    .map_err(|e| Failure::Transient(e.to_string()))?
                    .map_err(|e| Failure::Transient(format!("outbox: {e}")))
            }
            Transport::Smtp(t) => {
                let parse = |a: &str| {
                    a.parse::<Address>().map_err(|e| {
                        Failure::Permanent(format!("invalid address in the queue entry: {e}"))
                    })
                };
                let from = Some(parse(&meta.from)?);
                let to = meta
                    .to
                    .iter()
                    .map(|a| parse(a))
                    .collect::<Result<Vec<_>, _>>()?;
                let envelope = Envelope::new(from, to)
                    .map_err(|e| Failure::Permanent(format!("envelope: {e}")))?;
                // lettre bounds only the connect with `timeout`: bound the whole exchange.
                let limit = self.delivery_limit(message.len());
                match tokio::time::timeout(limit, t.send_raw(&envelope, &message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(classify(&e)),
                    Err(_) => Err(Failure::Transient(format!(
                        "no answer: delivery took over {} seconds",
                        limit.as_secs()
                    ))),
                }
            }
        }
    }

    /// The most one SMTP delivery may take: four times `timeout_secs`, plus a second per
    /// 64 KiB of message.
    fn delivery_limit(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(self.cfg.timeout_secs * 4.0 + (bytes / 65536) as f64)
    }

    fn sent(&self, mut meta: Meta) {
        let key = meta.key.clone();
        meta.sent_at = Some(now_ms());
        meta.last_error = None;
        let marker = Self::path(&self.sent, &key, "json");
        if let Ok(b) = serde_json::to_vec_pretty(&meta) {
            if let Err(e) = write_atomic(&marker, &b) {
                // The message went out; without the marker a restart could send it again.
                tracing::error!(key = %key, error = %e, "cannot record a sent mail");
            }
        }
        self.remove_entry(&key);
        lock(&self.not_before).remove(&key);
        tracing::info!(key = %key, attempt = meta.attempts, "mail sent");
    }

    fn remove_entry(&self, key: &str) {
        let _ = fs::remove_file(Self::path(&self.queue, key, "json"));
        let _ = fs::remove_file(Self::path(&self.queue, key, "eml"));
        let _ = fsutil::sync_dir(&self.queue);
    }

    fn record_error(meta: &mut Meta, error: &str) {
        meta.last_error = Some(error.to_string());
        meta.errors.push(AttemptError {
            at: now_ms(),
            attempt: meta.attempts,
            error: error.to_string(),
        });
        if meta.errors.len() > MAX_ERRORS {
            let drop = meta.errors.len() - MAX_ERRORS;
            meta.errors.drain(..drop);
        }
    }

    /// Moves an entry to `failed/`: metadata with every error first, then the message.
    fn fail(&self, mut meta: Meta, error: &str) {
        let key = meta.key.clone();
        Self::record_error(&mut meta, error);
        meta.failed_at = Some(now_ms());
        let json = Self::path(&self.failed, &key, "json");
        let written = serde_json::to_vec_pretty(&meta)
            .map_err(io::Error::other)
            .and_then(|b| write_atomic(&json, &b).map_err(io::Error::other));
        if let Err(e) = written {
            tracing::error!(key = %key, error = %e, "cannot move an undeliverable mail to mail/failed/");
            lock(&self.not_before).insert(key, now_ms() + 60_000);
            return;
        }
        self.finish_failed(&key);
        lock(&self.not_before).remove(&key);
        tracing::error!(
            key = %key,
            attempt = meta.attempts,
            error = %redact(error),
            "mail undeliverable; moved to mail/failed/"
        );
    }

    fn finish_failed(&self, key: &str) {
        let _ = fs::rename(
            Self::path(&self.queue, key, "eml"),
            Self::path(&self.failed, key, "eml"),
        );
        let _ = fs::remove_file(Self::path(&self.queue, key, "json"));
        let _ = fsutil::sync_dir(&self.failed);
        let _ = fsutil::sync_dir(&self.queue);
    }

    /// The delay before attempt `attempts + 1`: `retry_initial_secs * 2^(attempts-1)`, at
    /// most `retry_max_secs`, times a random factor between 0.75 and 1.
    fn backoff(&self, attempts: u32) -> Duration {
        let exp = 2f64.powi(attempts.saturating_sub(1).min(60) as i32);
        let base = (self.cfg.retry_initial_secs * exp).min(self.cfg.retry_max_secs);
        Duration::from_secs_f64(base * rand::random_range(0.75..=1.0))
    }

    fn retry_later(&self, mut meta: Meta, error: String) {
        let key = meta.key.clone();
        let age_h = now_ms().saturating_sub(meta.queued_at) as f64 / 3_600_000.0;
        if age_h >= self.cfg.give_up_after_hours {
            let e = format!(
                "gave up after {} attempts in {age_h:.1} hours; last error: {error}",
                meta.attempts
            );
            self.fail(meta, &e);
            return;
        }
        let delay = self.backoff(meta.attempts);
        let next = now_ms() + delay.as_millis() as u64;
        Self::record_error(&mut meta, &error);
        meta.next_attempt_at = next;
        lock(&self.not_before).insert(key.clone(), next);
        let json = Self::path(&self.queue, &key, "json");
        let written = serde_json::to_vec_pretty(&meta)
            .map_err(io::Error::other)
            .and_then(|b| write_atomic(&json, &b).map_err(io::Error::other));
        if let Err(e) = written {
            tracing::error!(key = %key, error = %e, "cannot record a mail delivery attempt");
        }
        tracing::warn!(
            key = %key,
            attempt = meta.attempts,
            error = %redact(&error),
            retry_in_secs = delay.as_secs(),
            "mail delivery failed; will retry"
        );
    }
}

/// 5xx is permanent, except authentication refusals (530, 534, 535, 538): those are the
/// server's configuration or ours, not the message's, so they are retried like outages.
fn classify(e: &lettre::transport::smtp::Error) -> Failure {
    let text = e.to_string();
    if e.is_permanent() {
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        if matches!(code.as_str(), "530" | "534" | "535" | "538") {
            return Failure::Transient(text);
        }
        return Failure::Permanent(text);
    }
    Failure::Transient(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_addresses() {
        assert_eq!(
            redact("permanent error (550): 5.1.1 <bob@school.example>: unknown user"),
            "permanent error (550): 5.1.1 <address> unknown user"
        );
        assert_eq!(redact("connection refused"), "connection refused");
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mailer::new(
            dir.path(),
            MailConfig {
                retry_initial_secs: 10.0,
                retry_max_secs: 60.0,
                ..MailConfig::default()
            },
        )
        .unwrap();
        for (attempts, base) in [(1, 10.0), (2, 20.0), (3, 40.0), (4, 60.0), (40, 60.0)] {
            let d = m.backoff(attempts).as_secs_f64();
            assert!(d <= base && d >= base * 0.75, "{attempts}: {d}");
        }
    }
}
