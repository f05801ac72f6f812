//! The per-source worker: one batch at a time per source, each taken from the spool through
//! the pipeline to its mail and the archive. A batch the process keeps dying in is failed.

use super::*;

/// A claimed batch waiting for its source's worker.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) dir: PathBuf,
    pub(super) claim: Claim,
}

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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a batch's mail was queued ([`Shared::notify_admins`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MailQueued {
    Yes,
    /// The disk (or quota) is full: worth trying again when there is room.
    NotForRoom,
    No,
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

/// Whether a failure is the disk (or the quota) running full: then the batch is not failed
/// but waits, as for [`Shared::has_room`]. A store flush that hangs counts as one: sled's
/// flushes hang for good once it has met a full disk (`StoreError::FlushHung`).
pub(super) fn out_of_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if store_error_in(err).is_some_and(hung) {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                return true;
            }
        }
        cur = err.source();
    }
    // Some layers (sled) keep the I/O error only in their text, in its Display or Debug form.
    let text = e.to_string();
    [libc::ENOSPC, libc::EDQUOT].iter().any(|code| {
        text.contains(&format!("(os error {code})")) || text.contains(&format!("code: {code},"))
    }) || text.contains("StorageFull")
        || text.contains("QuotaExceeded")
}

/// Whether a store error is a flush that hung, or a write cut short by one.
fn hung(e: &StoreError) -> bool {
    match e {
        StoreError::FlushHung { .. } => true,
        StoreError::CutShort(inner) => hung(inner),
        _ => false,
    }
}

/// The store's error that `e` is, or wraps transparently (whose `source` skips it).
fn store_error_in<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e StoreError> {
    let ingest = |i: &'e ingest::IngestError| match i {
        ingest::IngestError::Store(s) => Some(s),
        _ => None,
    };
    if let Some(s) = e.downcast_ref::<StoreError>() {
        return Some(s);
    }
    if let Some(i) = e.downcast_ref::<ingest::IngestError>() {
        return ingest(i);
    }
    match e.downcast_ref::<BatchFailure>()? {
        BatchFailure::Store(s) => Some(s),
        BatchFailure::Ingest(i) => ingest(i),
        _ => None,
    }
}

/// Takes back the start [`count_attempt`] counted, for a run that ended without crashing.
fn uncount_attempt(dir: &Path) {
    let n = attempts(dir).saturating_sub(1);
    if let Err(e) = write_atomic(&dir.join(ATTEMPTS_FILE), n.to_string().as_bytes()) {
        tracing::warn!(error = %e, "batch attempt not taken back");
    }
}

/// How many bytes the files of an upload hold once inflated, as far as can be told cheaply: a
/// zip's declared sizes (from its central directory), other files' own sizes; at most `cap`
/// (a zip may declare anything: it is refused later if it lies past the limits).
fn upload_bytes(path: &Path, cap: u64) -> u64 {
    let mut total = 0u64;
    let mut add = |p: &Path, len: u64| {
        let is_zip = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
        let declared = is_zip
            .then(|| {
                let f = std::fs::File::open(p).ok()?;
                let mut z = zip::ZipArchive::new(std::io::BufReader::new(f)).ok()?;
                let mut sum = 0u64;
                for i in 0..z.len() {
                    sum = sum.saturating_add(z.by_index_raw(i).ok()?.size());
                }
                Some(sum)
            })
            .flatten();
        total = total.saturating_add(declared.unwrap_or(len));
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => add(path, m.len()),
        Ok(_) => {
            for e in walkdir_files(path) {
                if let Ok(m) = std::fs::metadata(&e) {
                    add(&e, m.len());
                }
            }
        }
        Err(_) => {}
    }
    total.min(cap)
}

/// The files under `dir`, at any depth (an upload folder is a few files).
fn walkdir_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

/// What a batch may write on the state directory's disk, for each byte of its inflated upload:
/// the modified CSVs and their zip beside the patch summary, and the store's own log and values.
const WRITES_PER_UPLOAD_BYTE: u64 = 4;

/// Free bytes for an unprivileged writer on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

impl Shared {
    /// Whether the state directory's disk has `intake.min_free_mib` free. Says so in the log
    /// when it stops having it, and again when it has it back. While it has not, uploads stay
    /// in the drop folders and claimed batches in the spool.
    pub(super) fn has_room(&self) -> bool {
        let need = self.cfg().intake.min_free_mib.saturating_mul(1 << 20);
        let free = free_bytes(&self.state_dir);
        let room = free.is_none_or(|f| f >= need);
        let was_full = self
            .disk_full
            .swap(!room, std::sync::atomic::Ordering::Relaxed);
        match (was_full, room) {
            (false, false) => tracing::error!(
                free_mib = free.unwrap_or(0) >> 20,
                need_mib = need >> 20,
                "the state directory's disk is nearly full: uploads and batches wait until there is room (intake.min_free_mib)"
            ),
            (true, true) => {
                tracing::info!("room on the state directory's disk again: uploads and batches go on");
                self.retry_now.notify_waiters();
                self.rescan_now.notify_one();
            }
            _ => {}
        }
        room
    }

    /// Hands a claimed batch to its source's worker, starting the worker if needed.
    pub(super) fn submit(self: &Arc<Self>, job: Job) {
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

    pub(super) fn start_worker(
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

    /// Runs one batch to its end (blocking: the pipeline is CPU work). Never panics. `None`:
    /// not now (the store unreadable, the disk full, the source not configured); the worker
    /// tries again later. `waiting` says whether that was already logged for this batch.
    pub(super) fn process(&self, job: &Job, waiting: &mut bool) -> Option<Batch> {
        let c = &job.claim;
        let a = &c.arrival;
        let span = tracing::info_span!("batch", id = a.id, source = %a.source);
        let _g = span.enter();
        if !self.cfg().sources.contains_key(&a.source) {
            // Removed from the configuration after the upload was taken: it waits for the
            // source to come back, as an upload still in the drop folder does.
            if !*waiting {
                tracing::warn!(
                    "the batch waits: its source is not in the configuration (add it, then reload)"
                );
                *waiting = true;
            }
            return None;
        }
        // Room for the reserve and for what this batch may write: sled does not come back
        // whole from a write that finds the disk full (see `abandon_store`).
        if !self.has_room() {
            return None;
        }
        let cfg = self.cfg();
        let batch = upload_bytes(&c.bundle_path(&job.dir), cfg.limits.max_bundle_bytes)
            .saturating_mul(WRITES_PER_UPLOAD_BYTE);
        let need = cfg
            .intake
            .min_free_mib
            .saturating_mul(1 << 20)
            .saturating_add(batch);
        if let Some(free) = free_bytes(&self.state_dir).filter(|&f| f < need) {
            if !*waiting {
                tracing::error!(
                    free_mib = free >> 20,
                    need_mib = need >> 20,
                    "the batch waits for room on the state directory's disk: intake.min_free_mib, and four times its inflated upload"
                );
                *waiting = true;
            }
            return None;
        }
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "store unreadable; the batch stays in the spool");
                return None;
            }
        };
        let existing = match store.find_batch(a.id) {
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
                match store.fail(a, msg.clone()) {
                    Ok(b) => {
                        if let (Some(dir), BatchState::Failed) = (&b.report_dir, b.state) {
                            ingest::mark_reports_failed(Path::new(dir), &b);
                        }
                        (b, Some(msg), None)
                    }
                    Err(e) => {
                        if out_of_space(&e) {
                            super::abandon_store(&e);
                        }
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
                Err(failure) if out_of_space(&failure) => {
                    // Not a crash: the attempt does not count towards giving the batch up.
                    uncount_attempt(&job.dir);
                    if matches!(
                        failure,
                        BatchFailure::Store(_)
                            | BatchFailure::Ingest(ingest::IngestError::Store(_))
                    ) {
                        // sled met the full disk: its state in memory is no longer the disk's.
                        super::abandon_store(&failure);
                    }
                    // The reports met it: nothing was committed (the commit waits for them)
                    // and the upload is in the spool. The batch waits for room rather than
                    // failing for good.
                    tracing::error!(error = %failure, "the disk filled up during the batch; it is tried again when there is room");
                    return None;
                }
                Err(failure) => {
                    let msg = failure.to_string();
                    match store.fail(a, msg.clone()) {
                        // The commit landed and a later step failed: the commit stands.
                        Ok(b) if b.state != BatchState::Failed => {
                            tracing::error!(error = %msg, state = b.state.label(), "batch committed, but a step after the commit failed");
                            (b, None, None)
                        }
                        Ok(b) => {
                            tracing::error!(error = %msg, "batch failed");
                            if let Some(dir) = &b.report_dir {
                                ingest::mark_reports_failed(Path::new(dir), &b);
                            }
                            (b, Some(msg), None)
                        }
                        Err(e) => {
                            // The process did not die in it: not counted as a crash.
                            uncount_attempt(&job.dir);
                            if out_of_space(&e) {
                                super::abandon_store(&e);
                            }
                            tracing::error!(error = %e, "the failure could not be recorded; the batch stays in the spool");
                            return None;
                        }
                    }
                }
            },
        };
        // On the thread that committed: its own deferred pages go with the rest.
        crate::daemon::memory::collect_store_garbage();
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
            .dirs()
            .archive()
            .join(&c.arrival.source)
            .join(c.arrival.id.to_string());
        let link = self.batch_link(batch.id);
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
            link: link.as_deref(),
        };
        match self.notify_admins(&mail) {
            MailQueued::Yes => {}
            MailQueued::NotForRoom => {
                // Tried again when room comes back (or on the retry timer): the batch is then
                // found final and its mail queued. Meanwhile the roster it committed is served,
                // and the source's next batches wait behind it, as they would for room.
                tracing::error!("the batch's mail could not be queued for lack of room; the batch stays in the spool and its mail is tried again when there is room");
                self.api_changed.notify_one();
                return None;
            }
            MailQueued::No => {
                // Left in the spool: the next start finds the batch final and queues its mail.
                tracing::error!("the batch's mail could not be queued; the batch stays in the spool until the next start");
                return Some(batch);
            }
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
        let reports = self.dirs().reports();
        let upload = upload_name(c);
        count_attempt(&job.dir);
        let store = self.store()?;
        let store = &*store;
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
    pub(super) fn notify_admins(&self, mail: &crate::daemon::mail::BatchMail) -> MailQueued {
        let batch = mail.batch;
        let cfg = self.cfg();
        let Some(source) = cfg.sources.get(&batch.source) else {
            // Removed from the configuration while the batch ran (a reload): nobody to tell,
            // but the log says so rather than nothing.
            tracing::warn!(
                batch = batch.id,
                "no mail: the batch's source is no longer in the configuration"
            );
            return MailQueued::Yes;
        };
        let admins = source.admins.clone();
        if admins.is_empty() {
            tracing::debug!(
                batch = batch.id,
                "no admins configured for the source: no mail"
            );
            return MailQueued::Yes;
        }
        let notice = match crate::daemon::mail::compose(mail, &admins, &cfg.mail) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(batch = batch.id, error = %e, "batch mail not composed");
                return MailQueued::No;
            }
        };
        match self.mailer.enqueue(notice) {
            Ok(()) => MailQueued::Yes,
            Err(e) => {
                tracing::error!(batch = batch.id, error = %e, "batch mail not queued");
                if out_of_space(&e) {
                    MailQueued::NotForRoom
                } else {
                    MailQueued::No
                }
            }
        }
    }

    pub(super) fn remember_upload(&self, id: u64, name: &str) {
        let dir = self.dirs().upload_names();
        let written = std::fs::create_dir_all(&dir)
            .map_err(io_err(&dir))
            .and_then(|()| write_atomic(&dir.join(id.to_string()), name.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(batch = id, error = %e, "upload name not kept for later mails");
        }
    }

    pub(super) fn recall_upload(&self, id: u64) -> Option<String> {
        let p = self.dirs().upload_names().join(id.to_string());
        // Written by this process, but never read unbounded.
        if std::fs::metadata(&p).ok()?.len() > 4096 {
            return None;
        }
        std::fs::read_to_string(p).ok().filter(|s| !s.is_empty())
    }

    /// Moves the original upload to `archive/<source>/<batch>/` and removes the claim.
    pub(super) fn archive(&self, job: &Job) -> Result<(), DaemonError> {
        let c = &job.claim;
        let to = self
            .dirs()
            .archive()
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

pub(super) async fn worker(sh: Arc<Shared>, source: String, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut stop = sh.stopping.subscribe();
    loop {
        let job = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            j = rx.recv() => match j { Some(j) => j, None => break },
        };
        let id = job.claim.arrival.id;
        sh.status_of(&source, |s| {
            s.queued = s.queued.saturating_sub(1);
            s.running = Some(id);
        });
        // A batch that could not be finished (the store unreadable, the disk full, its source
        // not configured) is retried before the source's next one: batches of a source never
        // overtake each other. It holds a slot of `daemon.max_parallel` only while it runs, so
        // a source whose batch waits holds up no other.
        let job = Arc::new(job);
        let mut delay = Duration::from_secs(5);
        let waiting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let last = loop {
            // A batch the process already died in runs alone: when one vendor's batch takes
            // the daemon down (out of memory), the batches that ran beside it had their
            // attempts counted too, and three such crashes failed them for good. Alone, an
            // innocent batch finishes, and only the culprit's count grows.
            let slots = if attempts(&job.dir) > 0 {
                u32::try_from(sh.parallel).unwrap_or(u32::MAX)
            } else {
                1
            };
            let permit = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break None,
                p = sh.permits.acquire_many(slots) => p,
            };
            let (sh2, j, w) = (sh.clone(), job.clone(), waiting.clone());
            let done = tokio::task::spawn_blocking(move || {
                let mut said = w.load(std::sync::atomic::Ordering::Relaxed);
                let r = sh2.process(&j, &mut said);
                w.store(said, std::sync::atomic::Ordering::Relaxed);
                r
            })
            .await;
            drop(permit);
            match done {
                Ok(Some(b)) => {
                    sh.api_changed.notify_one();
                    break Some((b.id, b.state));
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        batch = id,
                        retry_secs = delay.as_secs(),
                        "batch not finished; retrying"
                    );
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => break None,
                        _ = sh.retry_now.notified() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(300));
                }
            }
        };
        sh.processed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sh.status_of(&source, |s| {
            s.running = None;
            if last.is_some() {
                s.last = last;
            }
        });
        sh.reopen_store_if_idle();
        crate::daemon::memory::release_free_memory();
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

    /// A batch's room is reckoned from its upload inflated: a zip's declared sizes, a
    /// folder's files, never more than the bundle limit.
    #[test]
    fn an_upload_is_measured_inflated_and_capped() {
        use std::io::Write as _;
        let d = tempfile::tempdir().unwrap();
        let zip_path = d.path().join("Nightly.ZIP");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("students.csv", opts).unwrap();
        w.write_all(&vec![b'a'; 300_000]).unwrap();
        w.start_file("staff.csv", opts).unwrap();
        w.write_all(&vec![b'b'; 100_000]).unwrap();
        w.finish().unwrap();
        assert!(std::fs::metadata(&zip_path).unwrap().len() < 10_000);
        assert_eq!(upload_bytes(&zip_path, u64::MAX), 400_000);
        assert_eq!(upload_bytes(&zip_path, 1_000), 1_000);
        let folder = d.path().join("folder");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("a.csv"), vec![b'x'; 500]).unwrap();
        std::fs::write(folder.join("sub/b.csv"), vec![b'y'; 700]).unwrap();
        assert_eq!(upload_bytes(&folder, u64::MAX), 1_200);
        assert_eq!(upload_bytes(&d.path().join("missing"), u64::MAX), 0);
    }

    /// A full disk or quota, however deep in the error or only in its text (sled's), is told
    /// from the other failures: the batch then waits instead of failing.
    #[test]
    fn a_full_disk_is_told_from_other_failures() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = BatchFailure::Ingest(ingest::IngestError::Io(crate::fsutil::at(Path::new(
            "/s/reports/1",
        ))(full)));
        assert!(out_of_space(&e));
        let quota = std::io::Error::from_raw_os_error(libc::EDQUOT);
        assert!(out_of_space(&quota));
        let sled_text =
            BatchFailure::Panicked("IO error: No space left on device (os error 28)".into());
        assert!(out_of_space(&sled_text));
        let sled_debug = BatchFailure::Panicked(
            "store: IO error: Os { code: 28, kind: StorageFull, message: \"No space left on device\" }"
                .into(),
        );
        assert!(out_of_space(&sled_debug));
        let hung = BatchFailure::Ingest(ingest::IngestError::Store(
            crate::store::StoreError::FlushHung { secs: 30.0 },
        ));
        assert!(out_of_space(&hung));
        let cut_short =
            BatchFailure::Store(StoreError::CutShort(Box::new(StoreError::FlushHung {
                secs: 30.0,
            })));
        assert!(out_of_space(&cut_short));
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(!out_of_space(&denied));
        assert!(!out_of_space(&BatchFailure::Panicked(
            "index out of bounds".into()
        )));
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
