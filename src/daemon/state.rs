//! The daemon's shared state: configuration, store, accounts, per-source status, and what
//! `status`, `reload` and archive retention do with it.

use super::*;

#[derive(Debug, Default, Clone)]
pub(super) struct SourceStatus {
    pub(super) queued: usize,
    pub(super) running: Option<u64>,
    pub(super) last: Option<(u64, BatchState)>,
}

pub(super) struct Shared {
    pub(super) state_dir: PathBuf,
    pub(super) config_path: PathBuf,
    pub(super) cfg: RwLock<Arc<Config>>,
    /// The store; `None` only between closing and reopening it, or after a failed reopen.
    pub(super) store: RwLock<Option<Arc<Store>>>,
    pub(super) accounts: Arc<RwLock<Accounts>>,
    pub(super) accounts_path: PathBuf,
    pub(super) listen: std::net::SocketAddr,
    pub(super) stopping: watch::Sender<bool>,
    pub(super) status: Mutex<BTreeMap<String, SourceStatus>>,
    pub(super) queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    pub(super) workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub(super) permits: Semaphore,
    /// How many batches run at once: the number of `permits`.
    pub(super) parallel: usize,
    pub(super) started: Instant,
    pub(super) processed: std::sync::atomic::AtomicU64,
    pub(super) mailer: Arc<Mailer>,
    /// When the intake loop last went round (seconds since `started`): the watchdog's health.
    pub(super) heartbeat: std::sync::atomic::AtomicU64,
    /// Sources already warned about being absent from the configuration.
    pub(super) unconfigured: Mutex<HashSet<String>>,
    /// Wakes the intake loop for a full scan now (after a reload: uploads that waited for a
    /// source that is now configured are taken at once, not at the next periodic rescan).
    pub(super) rescan_now: tokio::sync::Notify,
    /// Wakes the workers whose batch waits (for its source to be configured again, for room
    /// on the disk) to try it now: after a reload.
    pub(super) retry_now: tokio::sync::Notify,
    /// The state directory's disk had less than `intake.min_free_mib` free when last looked at.
    pub(super) disk_full: std::sync::atomic::AtomicBool,
    /// Wakes the REST API's keeper: a source's roster may have moved.
    pub(super) api_changed: tokio::sync::Notify,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why `reload` changed nothing.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("internal error: the reload stopped part way")]
    Stopped,
}

impl Shared {
    pub(super) fn cfg(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The store, opened again if a reopen failed before.
    pub(super) fn store(&self) -> Result<Arc<Store>, StoreError> {
        if let Some(s) = self
            .store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(s.clone());
        }
        let mut slot = self.store.write().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(s) => Ok(s.clone()),
            None => self.open_into(&mut slot),
        }
    }

    /// Opens the store into an empty slot.
    fn open_into(&self, slot: &mut Option<Arc<Store>>) -> Result<Arc<Store>, StoreError> {
        let s = Arc::new(open_store_patiently(&self.dirs().db())?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Closes and reopens the store when no batch runs or waits and nothing else holds it.
    /// sled keeps the pages, page table and buffers a batch touched for as long as the
    /// database is open (about 190 MiB after a 200,000-student batch, whatever the cache
    /// setting); a fresh open holds a few MiB and takes a few tens of milliseconds.
    pub(super) fn reopen_store_if_idle(&self) {
        let busy = lock(&self.status)
            .values()
            .any(|s| s.queued > 0 || s.running.is_some());
        if busy {
            return;
        }
        let mut slot = self.store.write().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(s) if s.has_failed_write() => {
                // Closed, it could not be opened again in this process (its sled handles stay
                // unflushed, and locked): a restart completes the write from its journal.
                super::abandon_store(&"a store write failed midway and was not completed");
            }
            Some(s) if Arc::strong_count(s) == 1 => {}
            _ => return,
        }
        // Dropping the last handle closes sled (flushed) and releases the store's lock.
        *slot = None;
        if let Err(e) = self.open_into(&mut slot) {
            tracing::error!(error = %e, "store not reopened; it is opened again when next used");
        }
    }

    /// The paths of the state directory.
    pub(super) fn dirs(&self) -> StateDir<'_> {
        StateDir::at(&self.state_dir)
    }

    pub(super) fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    pub(super) fn status_of(&self, source: &str, f: impl FnOnce(&mut SourceStatus)) {
        f(lock(&self.status).entry(source.to_string()).or_default());
    }

    pub(super) fn status_text(&self) -> String {
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
        match self
            .store()
            .and_then(|s| crate::store::views::last_batches_text(&s))
        {
            Ok(t) => out.push_str(&t),
            Err(e) => {
                let _ = writeln!(out, "history unreadable: {e}");
            }
        }
        out
    }

    /// Re-reads accounts (passwords, keys) and the configuration's source and intake settings.
    /// Sessions already open are kept. Returns what changed, or why nothing did.
    pub(super) fn reload(&self) -> Result<String, ReloadError> {
        let accounts = Accounts::load(&self.accounts_path)?;
        let cfg = Config::load(&self.config_path)?;
        let n = accounts.accounts.len();
        let sources = cfg.sources.len();
        let listen = cfg.sftp.listen;
        *self.accounts.write().unwrap_or_else(|p| p.into_inner()) = accounts;
        *self.cfg.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
        lock(&self.unconfigured).clear();
        self.rescan_now.notify_one();
        self.retry_now.notify_waiters();
        let mut msg = format!("reloaded: {n} accounts, {sources} sources");
        if listen != self.listen {
            msg.push_str("; sftp.listen changed: restart the daemon to listen there");
        }
        tracing::info!(accounts = n, sources, "configuration reloaded");
        Ok(msg)
    }

    /// Removes archived uploads older than their source's `retention_days`.
    pub(super) fn expire_archive(&self) {
        let cfg = self.cfg();
        let now = crate::clock::now_secs();
        let Ok(sources) = std::fs::read_dir(self.dirs().archive()) else {
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
                    .and_then(|id| self.store().ok()?.find_batch(id).ok().flatten())
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
