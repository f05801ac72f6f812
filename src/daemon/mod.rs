//! `rosterdrop serve`: the SFTP drop-box, intake, pipeline workers, mail and the admin socket
//! in one tokio runtime.
//!
//! ```text
//! SFTP uploads ─┐                       per source, one at a time        after each batch
//! file events ──┴─> intake ─> spool/ ─> worker ─> pipeline (blocking) ─> mail queue, archive/
//!                   (claims)            (sources in parallel, bounded)
//! ```
//!
//! Everything a batch needs survives a crash: a claim is a folder in `spool/` with its
//! `batch.json`, the store records it as `received`, and on start every claim left in the spool
//! is resumed in batch order. A batch whose commit landed before the crash is not committed
//! again (its record is final); its mail and archiving are finished.

pub mod intake;
pub mod logging;
pub mod mail;
pub mod memory;
pub mod systemd;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::admin::{self, Reply, Request};
use crate::config::{Config, ConfigError, DEFAULT_RETENTION_DAYS};
use crate::daemon::mail::{MailError, Mailer};
use crate::fsutil::{at as io_err, move_path, write_atomic, IoError};
use crate::ingest;
use crate::sftp::accounts::AccountError as AccountsError;
use crate::sftp::accounts::{AccountError, Accounts};
use crate::sftp::{Server, SftpConfig, SftpError, UploadEvent};
use crate::store::{Batch, BatchState, Store, StoreError};
use intake::{Claim, IntakeError, Rules, Tracker};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sftp(#[from] SftpError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("watching {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// An SFTP account created on first start: (account, source, password).
pub type InitialAccount = (String, String, String);

/// Why a batch could not be taken through the pipeline; recorded as its `failed` reason.
#[derive(Debug, thiserror::Error)]
enum BatchFailure {
    #[error("source `{source_name}` is not in the configuration {}", config.display())]
    Unconfigured {
        source_name: String,
        config: PathBuf,
    },
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
    #[error("internal error while checking the bundle: {0}")]
    Panicked(String),
}

/// Why `reload` changed nothing.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("internal error: the reload stopped part way")]
    Stopped,
}

/// A claimed batch waiting for its source's worker.
#[derive(Debug)]
struct Job {
    dir: PathBuf,
    claim: Claim,
}

/// Runs of one batch the process may die in before the batch is failed instead of tried again.
const MAX_ATTEMPTS: u32 = 3;
/// Beside `batch.json` in a spool folder: how many times checking the batch was started.
const ATTEMPTS_FILE: &str = "attempts";

/// How many times checking the batch in spool folder `dir` was started.
fn attempts(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join(ATTEMPTS_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Counts one more start, durably, before the pipeline runs: a process that dies in it leaves
/// the count behind for the next start to see.
fn count_attempt(dir: &Path) {
    let n = attempts(dir).saturating_add(1);
    let path = dir.join(ATTEMPTS_FILE);
    let written = write_atomic(&path, n.to_string().as_bytes());
    if let Err(e) = written {
        tracing::warn!(error = %e, "batch attempt not counted");
    }
}

#[derive(Debug, Default, Clone)]
struct SourceStatus {
    queued: usize,
    running: Option<u64>,
    last: Option<(u64, BatchState)>,
}

struct Shared {
    state_dir: PathBuf,
    config_path: PathBuf,
    cfg: RwLock<Arc<Config>>,
    store: Store,
    accounts: Arc<RwLock<Accounts>>,
    accounts_path: PathBuf,
    listen: std::net::SocketAddr,
    stopping: watch::Sender<bool>,
    status: Mutex<BTreeMap<String, SourceStatus>>,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    permits: Semaphore,
    started: Instant,
    processed: std::sync::atomic::AtomicU64,
    mailer: Arc<Mailer>,
    /// When the intake loop last went round (seconds since `started`): the watchdog's health.
    heartbeat: std::sync::atomic::AtomicU64,
    /// Sources already warned about being absent from the configuration.
    unconfigured: Mutex<HashSet<String>>,
    /// Wakes the intake loop for a full scan now (after a reload: uploads that waited for a
    /// source that is now configured are taken at once, not at the next periodic rescan).
    rescan_now: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn cfg(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn drop_dir(&self) -> PathBuf {
        self.state_dir.join("drop")
    }
    fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }
    fn archive_dir(&self) -> PathBuf {
        self.state_dir.join("archive")
    }
    fn reports_dir(&self) -> PathBuf {
        self.state_dir.join("reports")
    }
    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn status_of(&self, source: &str, f: impl FnOnce(&mut SourceStatus)) {
        f(lock(&self.status).entry(source.to_string()).or_default());
    }

    /// Hands a claimed batch to its source's worker, starting the worker if needed.
    fn submit(self: &Arc<Self>, job: Job) {
        let source = job.claim.arrival.source.clone();
        self.status_of(&source, |s| s.queued += 1);
        let mut queues = lock(&self.queues);
        if let Some(tx) = queues.get(&source) {
            match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(j)) => {
                    queues.remove(&source);
                    return self.start_worker(&mut queues, source, j);
                }
            }
        }
        self.start_worker(&mut queues, source, job);
    }

    fn start_worker(
        self: &Arc<Self>,
        queues: &mut HashMap<String, mpsc::UnboundedSender<Job>>,
        source: String,
        job: Job,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(job);
        queues.insert(source.clone(), tx);
        let h = tokio::spawn(worker(self.clone(), source, rx));
        lock(&self.workers).push(h);
    }

    /// Runs one batch to its end (blocking: the pipeline is CPU work). Never panics.
    fn process(&self, job: &Job) -> Option<Batch> {
        let c = &job.claim;
        let a = &c.arrival;
        let span = tracing::info_span!("batch", id = a.id, source = %a.source);
        let _g = span.enter();
        let existing = match self.store.find_batch(a.id) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "store unreadable; the batch stays in the spool");
                return None;
            }
        };
        let (batch, error, check) = match existing {
            Some(b) if b.state.is_final() => {
                tracing::info!(
                    state = b.state.label(),
                    "batch was finished before a restart"
                );
                (b, None, None)
            }
            _ if attempts(&job.dir) >= MAX_ATTEMPTS => {
                // The process died while checking this batch (killed for memory, say) every
                // time it tried: trying again would only take the daemon down at every start.
                let msg = format!(
                    "the daemon stopped while checking this batch {MAX_ATTEMPTS} times (out of \
                     memory, or killed); it was not tried again. The upload is kept in the \
                     archive."
                );
                tracing::error!(
                    attempts = MAX_ATTEMPTS,
                    "batch given up after repeated crashes"
                );
                match self.store.fail(a, msg.clone()) {
                    Ok(b) => (b, Some(msg), None),
                    Err(e) => {
                        tracing::error!(error = %e, "the failure could not be recorded; the batch stays in the spool");
                        return None;
                    }
                }
            }
            _ => match self.run_pipeline(job) {
                Ok(i) => {
                    let check = i
                        .outcome
                        .as_ref()
                        .map(crate::daemon::mail::CheckNotes::from_outcome);
                    (i.batch, None, check)
                }
                Err(failure) => {
                    let msg = failure.to_string();
                    match self.store.fail(a, msg.clone()) {
                        // The commit landed and a later step failed: the commit stands.
                        Ok(b) if b.state != BatchState::Failed => {
                            tracing::error!(error = %msg, state = b.state.label(), "batch committed, but a step after the commit failed");
                            (b, None, None)
                        }
                        Ok(b) => {
                            tracing::error!(error = %msg, "batch failed");
                            (b, Some(msg), None)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the failure could not be recorded; the batch stays in the spool");
                            return None;
                        }
                    }
                }
            },
        };
        let (a, u, d) = batch.totals();
        tracing::info!(
            state = batch.state.label(),
            format = %batch.format,
            adds = a,
            updates = u,
            deletes = d,
            patches = batch.patches.values().sum::<u64>(),
            ms = batch.duration_ms,
            "batch done"
        );
        let upload = upload_name(c);
        self.remember_upload(c.arrival.id, &upload);
        let server_paths = [
            c.bundle_path(&job.dir),
            job.dir.join("upload"),
            job.dir.clone(),
        ];
        let archive = self
            .archive_dir()
            .join(&c.arrival.source)
            .join(c.arrival.id.to_string());
        let mail = crate::daemon::mail::BatchMail {
            batch: &batch,
            event: match error.as_deref() {
                Some(e) => crate::daemon::mail::Event::Failed { error: e },
                None if batch.state == BatchState::Failed => crate::daemon::mail::Event::Failed {
                    error: batch.reason.as_deref().unwrap_or("unknown error"),
                },
                None => crate::daemon::mail::Event::Checked,
            },
            upload: Some(&upload),
            check: check.as_ref(),
            server_paths: &server_paths,
            archive: Some(&archive),
        };
        if !self.notify_admins(&mail) {
            // Left in the spool: the next start finds the batch final and queues its mail.
            tracing::error!("the batch's mail could not be queued; the batch stays in the spool until the next start");
            return Some(batch);
        }
        if let Err(e) = self.archive(job) {
            tracing::error!(error = %e, "original upload not archived; it stays in the spool");
        }
        Some(batch)
    }

    fn run_pipeline(&self, job: &Job) -> Result<ingest::Ingested, BatchFailure> {
        let c = &job.claim;
        let cfg = self.cfg();
        let Some(sc) = cfg.sources.get(&c.arrival.source).cloned() else {
            return Err(BatchFailure::Unconfigured {
                source_name: c.arrival.source.clone(),
                config: self.config_path.clone(),
            });
        };
        let path = c.bundle_path(&job.dir);
        let reports = self.reports_dir();
        let upload = upload_name(c);
        count_attempt(&job.dir);
        let store = &self.store;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ingest::ingest_arrival(store, &reports, &sc, &path, &c.arrival, Some(&upload))
        })) {
            Ok(r) => Ok(r?),
            Err(p) => Err(BatchFailure::Panicked(
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default(),
            )),
        }
    }

    /// Tells the source's admins what happened to a batch: one message per event, queued
    /// durably (the delivery loop sends it; an SMTP outage never holds up the batches).
    fn notify_admins(&self, mail: &crate::daemon::mail::BatchMail) -> bool {
        let batch = mail.batch;
        let cfg = self.cfg();
        let admins = cfg
            .sources
            .get(&batch.source)
            .map(|s| s.admins.clone())
            .unwrap_or_default();
        if admins.is_empty() {
            tracing::debug!(
                batch = batch.id,
                "no admins configured for the source: no mail"
            );
            return true;
        }
        let notice = match crate::daemon::mail::compose(mail, &admins, &cfg.mail) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(batch = batch.id, error = %e, "batch mail not composed");
                return false;
            }
        };
        match self.mailer.enqueue(notice) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(batch = batch.id, error = %e, "batch mail not queued");
                false
            }
        }
    }

    /// Where the name each batch's upload had is kept for the mails of later admin commands
    /// (approve, discard, rollback), once the claim is gone.
    fn uploads_dir(&self) -> PathBuf {
        self.state_dir.join("mail").join("uploads")
    }

    fn remember_upload(&self, id: u64, name: &str) {
        let dir = self.uploads_dir();
        let written = std::fs::create_dir_all(&dir)
            .map_err(io_err(&dir))
            .and_then(|()| write_atomic(&dir.join(id.to_string()), name.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(batch = id, error = %e, "upload name not kept for later mails");
        }
    }

    fn recall_upload(&self, id: u64) -> Option<String> {
        let p = self.uploads_dir().join(id.to_string());
        // Written by this process, but never read unbounded.
        if std::fs::metadata(&p).ok()?.len() > 4096 {
            return None;
        }
        std::fs::read_to_string(p).ok().filter(|s| !s.is_empty())
    }

    /// The mail for an admin command that changed batch `id` (`rollback`: `id` is the
    /// rollback's own record).
    fn notify_command(&self, req: &Request, b: &Batch) {
        use crate::daemon::mail::{BatchMail, Event};
        let undone = match (req, b.rollback_of) {
            (Request::Rollback { .. }, Some(u)) => match self.store.find_batch(u) {
                Ok(Some(u)) => Some(u),
                _ => {
                    tracing::error!(batch = b.id, "rolled-back batch not found: no mail");
                    return;
                }
            },
            _ => None,
        };
        let event = match (req, &undone) {
            (Request::Approve { .. }, _) => Event::Approved,
            (Request::Discard { .. }, _) => Event::Discarded,
            (Request::Rollback { .. }, Some(u)) => Event::RolledBack { undone: u },
            _ => return,
        };
        let upload = self.recall_upload(undone.as_ref().map_or(b.id, |u| u.id));
        let mail = BatchMail {
            upload: upload.as_deref(),
            ..BatchMail::new(b, event)
        };
        let _ = self.notify_admins(&mail);
    }

    /// Moves the original upload to `archive/<source>/<batch>/` and removes the claim.
    fn archive(&self, job: &Job) -> Result<(), DaemonError> {
        let c = &job.claim;
        let to = self
            .archive_dir()
            .join(&c.arrival.source)
            .join(c.arrival.id.to_string());
        let from = job.dir.join("upload");
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if from.exists() {
            if to.exists() {
                std::fs::remove_dir_all(&to).map_err(io_err(&to))?;
            }
            move_path(&from, &to)?;
        }
        std::fs::remove_dir_all(&job.dir).map_err(io_err(&job.dir))?;
        Ok(())
    }

    /// Finds what is ready in one drop folder and claims it.
    fn intake_account(self: &Arc<Self>, account: &str, tracker: &Mutex<Tracker>) -> bool {
        let source = match self
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
        {
            Some(a) => a.source.clone(),
            None => return false,
        };
        let cfg = self.cfg();
        if cfg.intake.paused {
            return false;
        }
        if !cfg.sources.contains_key(&source) {
            if lock(&self.unconfigured).insert(source.clone()) {
                tracing::warn!(account, source = %source, "uploads wait: the account's source is not in the configuration (add it, then reload)");
            }
            return false;
        }
        let rules = Rules {
            quiet: Duration::from_secs(cfg.intake.quiet_period_secs),
            incomplete_after: (cfg.intake.incomplete_after_secs > 0)
                .then(|| Duration::from_secs(cfg.intake.incomplete_after_secs)),
        };
        let root = self.drop_dir().join(account);
        let ready = {
            let t = lock(tracker);
            match intake::scan(&root, &t, rules) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(account, error = %e, "drop folder not scanned");
                    return false;
                }
            }
        };
        let pending = !ready.is_empty() || folder_has_files(&root);
        for r in ready {
            if self.stopping() {
                break;
            }
            let arrival = match self.store.arrival(&source, account) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "no batch id; upload left in the drop folder");
                    break;
                }
            };
            let id = arrival.id;
            let claim = match intake::claim(&self.spool_dir(), &r, &arrival) {
                Ok(c) => c,
                Err(e) => {
                    let undone = intake::unclaim(&self.spool_dir(), &r, &source, id);
                    tracing::error!(batch = id, error = %e, undone, "upload could not be claimed; it stays in the drop folder and is tried again");
                    // Nothing more from this account this round (the next tick tries again).
                    break;
                }
            };
            {
                let mut t = lock(tracker);
                match r.shape {
                    intake::Shape::Loose => {
                        for f in &r.files {
                            t.forget_under(&root.join(f));
                        }
                    }
                    _ => t.forget_under(&r.path),
                }
            }
            if let Err(e) = self.store.received(&arrival) {
                tracing::error!(batch = id, error = %e, "claim not recorded in the store");
            }
            tracing::info!(
                batch = id,
                source = %source,
                account,
                shape = ?claim.shape,
                why = %claim.why,
                files = claim.files.len(),
                "bundle received"
            );
            self.submit(Job {
                dir: Claim::dir(&self.spool_dir(), &source, id),
                claim,
            });
        }
        pending
    }

    fn status_text(&self) -> String {
        use std::fmt::Write as _;
        let up = self.started.elapsed().as_secs();
        let mut out = format!(
            "daemon: running (pid {}, up {}h{:02}m{:02}s), SFTP on {}\n",
            std::process::id(),
            up / 3600,
            up / 60 % 60,
            up % 60,
            self.listen
        );
        let _ = writeln!(
            out,
            "batches processed since start: {}",
            self.processed.load(std::sync::atomic::Ordering::Relaxed)
        );
        for (src, s) in lock(&self.status).iter() {
            let _ = writeln!(
                out,
                "source {:<16} queued {:<3} running {:<8} last {}",
                src,
                s.queued,
                s.running.map_or("-".to_string(), |i| i.to_string()),
                s.last
                    .map_or("-".to_string(), |(i, st)| format!("{i} {}", st.label()))
            );
        }
        let _ = writeln!(out, "mail waiting for delivery: {}", self.mailer.pending());
        match crate::store::views::last_batches_text(&self.store) {
            Ok(t) => out.push_str(&t),
            Err(e) => {
                let _ = writeln!(out, "history unreadable: {e}");
            }
        }
        out
    }

    /// Re-reads accounts (passwords, keys) and the configuration's source and intake settings.
    /// Sessions already open are kept. Returns what changed, or why nothing did.
    fn reload(&self) -> Result<String, ReloadError> {
        let accounts = Accounts::load(&self.accounts_path)?;
        let cfg = Config::load(&self.config_path)?;
        let n = accounts.accounts.len();
        let sources = cfg.sources.len();
        let listen = cfg.sftp.listen;
        *self.accounts.write().unwrap_or_else(|p| p.into_inner()) = accounts;
        *self.cfg.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
        lock(&self.unconfigured).clear();
        self.rescan_now.notify_one();
        let mut msg = format!("reloaded: {n} accounts, {sources} sources");
        if listen != self.listen {
            msg.push_str("; sftp.listen changed: restart the daemon to listen there");
        }
        tracing::info!(accounts = n, sources, "configuration reloaded");
        Ok(msg)
    }

    /// Removes archived uploads older than their source's `retention_days`.
    fn expire_archive(&self) {
        let cfg = self.cfg();
        let now = crate::clock::now_secs();
        let Ok(sources) = std::fs::read_dir(self.archive_dir()) else {
            return;
        };
        let mut removed = 0u64;
        for s in sources.flatten() {
            let src = s.file_name().to_string_lossy().into_owned();
            let days = cfg
                .sources
                .get(&src)
                .and_then(|c| c.retention_days)
                .unwrap_or(DEFAULT_RETENTION_DAYS);
            let Ok(batches) = std::fs::read_dir(s.path()) else {
                continue;
            };
            for b in batches.flatten() {
                let received = b
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u64>().ok())
                    .and_then(|id| self.store.find_batch(id).ok().flatten())
                    .map(|b| b.received_at)
                    .or_else(|| {
                        b.metadata()
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|d| d.as_secs())
                    });
                if received.is_some_and(|r| now.saturating_sub(r) > u64::from(days) * 86_400)
                    && std::fs::remove_dir_all(b.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!(batches = removed, "archived uploads past retention removed");
        }
    }
}

/// The name the vendor gave the upload: the zip's or the folder's, or the loose files'.
fn upload_name(c: &Claim) -> String {
    match c.shape {
        intake::Shape::Zip => c.files.first().cloned().unwrap_or_else(|| "a zip".into()),
        intake::Shape::Folder => c
            .from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "a folder".into()),
        intake::Shape::Loose => {
            let files: Vec<&str> = c
                .files
                .iter()
                .map(String::as_str)
                .filter(|f| !crate::daemon::mail::is_marker(f))
                .collect();
            match files.len() {
                0 => "loose files".into(),
                1..=3 => files.join(", "),
                n => format!("{n} files at the top of the upload folder"),
            }
        }
    }
}

fn folder_has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_some())
}

async fn worker(sh: Arc<Shared>, source: String, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut stop = sh.stopping.subscribe();
    loop {
        let job = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            j = rx.recv() => match j { Some(j) => j, None => break },
        };
        let permit = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            p = sh.permits.acquire() => p,
        };
        let id = job.claim.arrival.id;
        sh.status_of(&source, |s| {
            s.queued = s.queued.saturating_sub(1);
            s.running = Some(id);
        });
        // A batch that could not be finished (the store unreadable, say) is retried before the
        // source's next one: batches of a source never overtake each other.
        let job = Arc::new(job);
        let mut delay = Duration::from_secs(5);
        let last = loop {
            let (sh2, j) = (sh.clone(), job.clone());
            match tokio::task::spawn_blocking(move || sh2.process(&j)).await {
                Ok(Some(b)) => break Some((b.id, b.state)),
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        batch = id,
                        retry_secs = delay.as_secs(),
                        "batch not finished; retrying"
                    );
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => break None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(300));
                }
            }
        };
        drop(permit);
        crate::daemon::memory::release_free_memory();
        sh.processed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sh.status_of(&source, |s| {
            s.running = None;
            if last.is_some() {
                s.last = last;
            }
        });
        if let Some((id, state)) = last {
            let queued: usize = lock(&sh.status).values().map(|s| s.queued).sum();
            let _ = crate::daemon::systemd::status(&format!(
                "last batch {id} ({source}): {}; {queued} queued",
                state.label()
            ));
        }
    }
    // Whatever is still queued stays in the spool and resumes on the next start.
}

/// Maps a path under `drop/` to its account.
fn account_of(drop_dir: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(drop_dir).ok()?;
    match rest.components().next()? {
        std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    }
}

async fn intake_loop(
    sh: Arc<Shared>,
    mut fs_rx: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    mut up_rx: mpsc::Receiver<UploadEvent>,
) {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let drop_dir = sh.drop_dir();
    let mut stop = sh.stopping.subscribe();
    let mut dirty: HashSet<String> = HashSet::new();
    let mut waiting: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let rescan = Duration::from_secs(sh.cfg().intake.rescan_secs.max(1));
    let mut full = tokio::time::interval(rescan);
    loop {
        sh.heartbeat.store(
            sh.started.elapsed().as_secs(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut now_scan: Vec<String> = Vec::new();
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            _ = sh.rescan_now.notified() => {
                full.reset_immediately();
                continue;
            }
            Some(up) = up_rx.recv() => {
                lock(&tracker).finished(&up.file, Instant::now());
                now_scan.push(up.account);
            }
            Some(ev) = fs_rx.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        // Lost events (queue overflow): look at everything again.
                        tracing::warn!(error = %e, "file system watch error; rescanning");
                        full.reset_immediately();
                        continue;
                    }
                };
                let now = Instant::now();
                let mut t = lock(&tracker);
                let finished = matches!(
                    ev.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Modify(ModifyKind::Name(RenameMode::To))
                        | EventKind::Modify(ModifyKind::Name(RenameMode::Both))
                );
                let target = match ev.kind {
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.last(),
                    _ => ev.paths.first(),
                };
                let Some(p) = target else { continue };
                match ev.kind {
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                        t.forget_under(p)
                    }
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) | EventKind::Modify(ModifyKind::Name(_)) if finished => {
                        if let EventKind::Modify(ModifyKind::Name(RenameMode::Both)) = ev.kind {
                            if let Some(old) = ev.paths.first() { t.forget_under(old); }
                        }
                        t.finished(p, now)
                    }
                    EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => continue,
                    _ => t.touched(p, now),
                }
                drop(t);
                if let Some(a) = account_of(&drop_dir, p) {
                    if finished { now_scan.push(a) } else { dirty.insert(a); }
                }
            }
            _ = tick.tick() => {
                now_scan.extend(dirty.drain());
                now_scan.extend(waiting.iter().cloned());
            }
            _ = full.tick() => {
                if let Ok(rd) = std::fs::read_dir(&drop_dir) {
                    now_scan.extend(rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
                }
                let sh2 = sh.clone();
                tokio::task::spawn_blocking(move || sh2.expire_archive());
            }
        }
        now_scan.sort();
        now_scan.dedup();
        if now_scan.is_empty() {
            continue;
        }
        let sh2 = sh.clone();
        let t2 = tracker.clone();
        let res = tokio::task::spawn_blocking(move || {
            now_scan
                .into_iter()
                .map(|a| {
                    let pending = sh2.intake_account(&a, &t2);
                    (a, pending)
                })
                .collect::<Vec<_>>()
        })
        .await;
        for (a, pending) in res.unwrap_or_default() {
            if pending {
                waiting.insert(a);
            } else {
                waiting.remove(&a);
            }
        }
    }
}

async fn admin_loop(sh: Arc<Shared>, listener: tokio::net::UnixListener) {
    let mut stop = sh.stopping.subscribe();
    loop {
        let conn = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            c = listener.accept() => c,
        };
        let Ok((stream, _)) = conn else { continue };
        let sh = sh.clone();
        tokio::spawn(async move {
            if let Err(e) = admin_conn(sh, stream).await {
                tracing::warn!(error = %e, "admin connection failed");
            }
        });
    }
}

async fn reload_off_runtime(sh: &Arc<Shared>) -> Result<String, ReloadError> {
    let sh2 = sh.clone();
    tokio::task::spawn_blocking(move || sh2.reload())
        .await
        .unwrap_or(Err(ReloadError::Stopped))
}

async fn admin_conn(sh: Arc<Shared>, stream: tokio::net::UnixStream) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut r = tokio::io::BufReader::new(r.take(admin::MAX_REQUEST));
    tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let (reply, bodies) = match serde_json::from_str::<Request>(&line) {
        Err(e) => (Reply::error(2, format!("bad request: {e}")), vec![]),
        Ok(Request::Status) => {
            // Reads the history: file I/O, off the runtime.
            let sh2 = sh.clone();
            let text = tokio::task::spawn_blocking(move || sh2.status_text())
                .await
                .unwrap_or_else(|_| "status unavailable\n".into());
            (
                Reply {
                    stdout: text,
                    ..Reply::default()
                },
                vec![],
            )
        }
        Ok(Request::Reload) => match reload_off_runtime(&sh).await {
            Ok(m) => (
                Reply {
                    stdout: format!("{m}\n"),
                    ..Reply::default()
                },
                vec![],
            ),
            Err(e) => (Reply::error(1, format!("not reloaded: {e}")), vec![]),
        },
        Ok(req) => {
            let sh2 = sh.clone();
            let scratch = sh.state_dir.join("tmp");
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::create_dir_all(&scratch);
                let out = admin::execute(&sh2.store, &req, &scratch);
                if req.changes_roster() && out.0.exit == 0 {
                    if let Some(b) = out.0.batch.and_then(|id| sh2.store.find_batch(id).ok().flatten()) {
                        tracing::info!(batch = b.id, source = %b.source, state = b.state.label(), "admin command applied");
                        sh2.notify_command(&req, &b);
                    }
                }
                out
            })
            .await
            .unwrap_or_else(|_| (Reply::error(2, "internal error"), vec![]))
        }
    };
    let mut head = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{}".to_vec());
    head.push(b'\n');
    w.write_all(&head).await?;
    for b in bodies {
        w.write_all(&b).await?;
    }
    w.shutdown().await
}

/// Creates the accounts named by sources' `initial_account` when no accounts file exists yet.
fn bootstrap_accounts(cfg: &Config, path: &Path) -> Result<Vec<InitialAccount>, DaemonError> {
    if path.exists() {
        return Ok(vec![]);
    }
    let mut accounts = Accounts::default();
    let mut made = Vec::new();
    for (src, sc) in &cfg.sources {
        if let Some(name) = &sc.initial_account {
            let pw = accounts.add(name, src)?;
            made.push((name.clone(), src.clone(), pw));
        }
    }
    if !made.is_empty() {
        accounts.save(path)?;
    }
    Ok(made)
}

fn open_store_patiently(dir: &Path) -> Result<Store, StoreError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Store::open(dir) {
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                // An admin command that opened the store directly: it will be quick.
                std::thread::sleep(Duration::from_millis(200));
            }
            r => return r,
        }
    }
}

/// A daemon already serving this state directory answers on its admin socket: say so at once,
/// with its pid, rather than waiting for the store's lock.
fn refuse_second_daemon(state_dir: &Path) -> Result<(), DaemonError> {
    let sock = admin::socket_path(state_dir);
    let Ok(stream) = std::os::unix::net::UnixStream::connect(&sock) else {
        return Ok(());
    };
    let pid = rustix::net::sockopt::socket_peercred(&stream)
        .map(|c| format!(" (pid {})", c.pid.as_raw_nonzero()))
        .unwrap_or_default();
    Err(DaemonError::Other(format!(
        "a rosterdrop daemon is already running on {}{pid}: it answers on {}; stop it first \
         (systemctl stop rosterdrop, or kill that pid)",
        state_dir.display(),
        sock.display()
    )))
}

/// Runs the daemon until SIGTERM or SIGINT. `on_start` is called once everything listens, with
/// the accounts created on this first start (to print their passwords).
pub fn serve(
    config_path: &Path,
    on_start: impl FnOnce(&[InitialAccount]),
) -> Result<(), DaemonError> {
    let cfg = Config::load(config_path)?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    let state_dir = std::fs::canonicalize(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    for d in ["drop", "spool", "archive", "reports", "tmp"] {
        let p = state_dir.join(d);
        std::fs::create_dir_all(&p).map_err(io_err(&p))?;
    }
    refuse_second_daemon(&state_dir)?;
    let store = match open_store_patiently(&state_dir.join("db")) {
        Err(StoreError::Locked { .. }) => {
            return Err(DaemonError::Other(format!(
                "the store in {} stayed locked by another process for 30 s (a daemon starting \
                 or stopping, or a long `rosterdrop ingest`); stop it first",
                state_dir.join("db").display()
            )))
        }
        r => r?,
    };
    let accounts_path = cfg.sftp.accounts_path(&state_dir);
    let initial = bootstrap_accounts(&cfg, &accounts_path)?;
    let accounts = Arc::new(RwLock::new(Accounts::load(&accounts_path)?));
    let parallel = cfg.daemon.max_parallel_batches.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let mailer = Arc::new(Mailer::new(&state_dir, cfg.mail.clone())?);
    let (stop_tx, _) = watch::channel(false);
    let sftp = cfg.sftp.clone();
    let shared = Arc::new(Shared {
        state_dir: state_dir.clone(),
        config_path: config_path.to_path_buf(),
        cfg: RwLock::new(Arc::new(cfg)),
        store,
        accounts: accounts.clone(),
        accounts_path,
        listen: sftp.listen,
        stopping: stop_tx,
        status: Mutex::new(BTreeMap::new()),
        queues: Mutex::new(HashMap::new()),
        workers: Mutex::new(Vec::new()),
        permits: Semaphore::new(parallel.max(1)),
        started: Instant::now(),
        processed: 0.into(),
        heartbeat: 0.into(),
        mailer,
        unconfigured: Mutex::new(HashSet::new()),
        rescan_now: tokio::sync::Notify::new(),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rosterdrop")
        .build()
        .map_err(io_err(Path::new("tokio runtime")))?;
    rt.block_on(run(shared, sftp, initial, on_start))
}

async fn run(
    sh: Arc<Shared>,
    sftp: SftpConfig,
    initial: Vec<InitialAccount>,
    on_start: impl FnOnce(&[InitialAccount]),
) -> Result<(), DaemonError> {
    // Batches cut short by the last stop, oldest first.
    let resumed = intake::resume_claims(&sh.spool_dir())?;
    let mut claimed = HashSet::new();
    for (dir, claim) in resumed {
        let a = &claim.arrival;
        claimed.insert(a.id);
        if sh.store.find_batch(a.id)?.is_none() {
            sh.store.received(a)?;
        }
        tracing::info!(batch = a.id, source = %a.source, "resuming a batch left in the spool");
        sh.submit(Job { dir, claim });
    }
    // A batch recorded as received whose claim never reached the spool: its files are still in
    // the drop folder and will be taken again as a new batch.
    for b in sh.store.history(None)? {
        if !b.state.is_final() && !claimed.contains(&b.id) {
            sh.store.fail(
                &b.arrival(),
                "interrupted before its upload was claimed; taken again as a later batch".into(),
            )?;
        }
    }

    // Admin socket: refuse to start beside another daemon on the same state directory.
    let sock = admin::socket_path(&sh.state_dir);
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        return Err(DaemonError::Other(format!(
            "another rosterdrop daemon answers on {}",
            sock.display()
        )));
    }
    let _ = std::fs::remove_file(&sock);
    let admin_listener = tokio::net::UnixListener::bind(&sock).map_err(io_err(&sock))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&sock))?;
    }

    // File system events from the drop folders.
    let (fs_tx, fs_rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev| {
        let _ = fs_tx.send(ev);
    })
    .map_err(|source| DaemonError::Watch {
        path: sh.drop_dir(),
        source,
    })?;
    {
        use notify::Watcher as _;
        watcher
            .watch(&sh.drop_dir(), notify::RecursiveMode::Recursive)
            .map_err(|source| DaemonError::Watch {
                path: sh.drop_dir(),
                source,
            })?;
    }

    let (up_tx, up_rx) = mpsc::channel(1024);
    let server = Server::new(&sh.state_dir, sftp.clone(), sh.accounts.clone(), up_tx)?;
    for (alg, fp) in server.host_key_fingerprints() {
        tracing::info!(algorithm = %alg, fingerprint = %fp, "SFTP host key");
    }
    let listener = tokio::net::TcpListener::bind(sftp.listen)
        .await
        .map_err(|source| SftpError::Bind {
            addr: sftp.listen,
            source,
        })?;
    let mut stop = sh.stopping.subscribe();
    let sftp_task = tokio::spawn(server.run_on(listener, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    let intake = tokio::spawn(intake_loop(sh.clone(), fs_rx, up_rx));
    // Mail stops last, after the running batches have queued theirs.
    let (mail_stop, mut mail_stop_rx) = watch::channel(false);
    let mail = tokio::spawn(sh.mailer.clone().run(async move {
        let _ = mail_stop_rx.wait_for(|s| *s).await;
    }));
    let admin = tokio::spawn(admin_loop(sh.clone(), admin_listener));
    on_start(&initial);
    tracing::info!(state_dir = %sh.state_dir.display(), "rosterdrop daemon ready");
    let _ = crate::daemon::systemd::ready();
    let _ = crate::daemon::systemd::status(&format!("listening on {}", sftp.listen));
    // The watchdog is fed while the intake loop goes round (it ticks every second).
    let wd = sh.clone();
    let watchdog = tokio::spawn(async move {
        crate::daemon::systemd::watchdog(move || {
            let beat = wd.heartbeat.load(std::sync::atomic::Ordering::Relaxed);
            wd.started.elapsed().as_secs().saturating_sub(beat) < 30
        })
        .await
    });

    // Signals: SIGHUP reloads, SIGTERM and SIGINT stop.
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(io_err(Path::new("SIGHUP")))?;
    let mut term = signal(SignalKind::terminate()).map_err(io_err(Path::new("SIGTERM")))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err(Path::new("SIGINT")))?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = crate::daemon::systemd::reloading();
                if let Err(e) = sh.reload() {
                    tracing::error!(error = %e, "configuration not reloaded; the previous one stays in force");
                }
                let _ = crate::daemon::systemd::ready();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping: no new sessions or batches; the running batches finish");
    let _ = crate::daemon::systemd::stopping();
    let _ = sh.stopping.send(true);
    watchdog.abort();
    drop(watcher);
    let _ = sftp_task.await;
    let _ = intake.await;
    let _ = admin.await;
    let workers: Vec<_> = std::mem::take(&mut *lock(&sh.workers));
    for w in workers {
        let _ = w.await;
    }
    // A few seconds for the last batches' mail; whatever is still queued (an SMTP outage) is
    // delivered after the next start.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sh.mailer.pending() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = mail_stop.send(true);
    let _ = mail.await;
    let _ = std::fs::remove_file(&sock);
    tracing::info!("rosterdrop daemon stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(shape: intake::Shape, from: &str, files: &[&str]) -> Claim {
        Claim {
            arrival: crate::store::Arrival {
                id: 9,
                source: "demo".into(),
                account: "demo".into(),
                received_at: 0,
            },
            shape,
            from: PathBuf::from(from),
            files: files.iter().map(|f| f.to_string()).collect(),
            why: String::new(),
            markers: vec![],
            complete: true,
        }
    }

    /// The mails call a bundle what the vendor uploaded, never the spool's `upload`.
    #[test]
    fn the_upload_is_named_as_the_vendor_named_it() {
        use intake::Shape;
        let z = claim(Shape::Zip, "/s/drop/demo/nightly.zip", &["nightly.zip"]);
        assert_eq!(upload_name(&z), "nightly.zip");
        let f = claim(Shape::Folder, "/s/drop/demo/nightly", &[]);
        assert_eq!(upload_name(&f), "nightly");
        let l = claim(Shape::Loose, "/s/drop/demo", &["students.csv", "READY"]);
        assert_eq!(upload_name(&l), "students.csv");
        let six = [
            "locations.csv",
            "students.csv",
            "staff.csv",
            "courses.csv",
            "classes.csv",
            "rosters.csv",
        ];
        let l = claim(Shape::Loose, "/s/drop/demo", &six);
        assert_eq!(upload_name(&l), "6 files at the top of the upload folder");
    }
}
