//! The roster store: accepted rosters per source in sled, with a history of every batch,
//! undo data for rollback, held batches awaiting approval, and export.
//!
//! Everything lives in one sled tree under prefixed keys (layout in `docs/ARCHITECTURE.md`),
//! so that one batch (its record changes, its history entry, its undo data and the source's
//! state) is one write, journalled before sled sees it (`journal.rs`): after a crash, or a full
//! disk under sled, the store holds the roster either before or after the batch, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::roster::bundle::Mode;
use crate::roster::engine::{External, Outcome, Verdict, Work};
use crate::roster::findings::{Action, Finding};
use crate::roster::schema::{ForeignKey, Format, OnMissing, Schema};
use crate::roster::values::list_items;

mod batch;
mod codec;
mod compact;
pub use compact::{dir_bytes, Compacted};
mod diff;
mod export;
mod journal;
mod migrate;
mod roles;
mod segments;
mod undo;
pub mod views;

use batch::bare_batch;
pub use batch::{
    Arrival, Batch, BatchState, Decision, Guard, Incoming, TableCounts, Via, HELD_PREFIX,
};
use codec::*;
pub use codec::{decode_row, RowEncoder, FORMAT_VERSION, MAX_KEY_BYTES, MAX_NAME_BYTES};
use diff::{mode_label, Cascade, Removed};
pub use export::Exported;
use journal::Writes;
use undo::page_writes;
pub use views::StoreView;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// Another process holds the store's lock (a daemon, or an admin command that opened
    /// the store itself).
    #[error("store: {} is in use by another process", path.display())]
    Locked { path: PathBuf },
    /// A record could not be written as JSON (a defect, not a refusal).
    #[error("store: record not encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("store: damaged entry `{key}`: {message}")]
    Corrupt { key: String, message: String },
    #[error("store format {found} is newer than this rosterdrop understands ({FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("no batch {0}")]
    NoBatch(u64),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A key, column name or value longer than the store's encoding can hold: the batch is
    /// refused before anything is written.
    #[error("store: {0}")]
    Oversized(String),
    /// A write that failed after its journal was made: sled may hold part of it. The next
    /// open of the store (or this process's next write) completes it.
    #[error(
        "{0}; the write was cut short and waits in the store's journal: the next rosterdrop \
         command that opens the store completes it, once its disk has room"
    )]
    CutShort(#[source] Box<StoreError>),
    /// sled's flush did not return in time: it waits for good once sled has met a full disk.
    #[error(
        "store: sled's flush has not returned in {secs} s (after sled meets a full disk it \
         never does; the daemon restarts to reopen the store)"
    )]
    FlushHung { secs: f64 },
    /// A page this batch would write does not decode: refused before anything is written.
    #[error("store: batch would write an undecodable page `{0}`; nothing was applied")]
    Unverified(String),
}

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SourceState {
    last_applied: Option<u64>,
    last_hash: Option<String>,
    /// The settings fingerprint the last applied batch was checked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_settings: Option<String>,
    format: Option<String>,
    /// Number of record pages (a power of two) of each table.
    #[serde(default)]
    buckets: BTreeMap<String, u32>,
    /// Bytes the source's records take in the store (bases and runs, format 3).
    #[serde(default, skip_serializing_if = "batch::is_zero")]
    stored_bytes: u64,
}

impl SourceState {
    /// Whether the last applied batch had this upload's content and settings.
    fn holds(&self, inc: &Incoming) -> bool {
        self.last_hash.as_deref() == Some(inc.content_hash.as_str())
            && self.last_settings.as_deref() == Some(inc.settings_hash.as_str())
    }

    /// Records `inc` as the last applied upload.
    fn applied(&mut self, inc: &Incoming) {
        self.last_hash = Some(inc.content_hash.clone());
        self.last_settings = Some(inc.settings_hash.clone());
    }
}

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    /// Serialises the read-compute-write of commits, approvals, discards and rollbacks within
    /// this process (the daemon runs admin commands beside its workers); other processes are
    /// kept out by sled's lock on the directory.
    writer: std::sync::Mutex<()>,
    /// Decoded segments, for reads between writes (`segments.rs`).
    segments: std::sync::Mutex<segments::SegmentCache>,
    /// Held shared while a segment's base and runs are read, exclusively while a batch's
    /// write lands: a read never overlays one batch's runs on another batch's base (the
    /// daemon's REST API and console read while batches commit).
    consistent: std::sync::RwLock<()>,
    /// The database's directory.
    dir: PathBuf,
    /// Set once this process has written to the database: [`Store::close`] then sees whether
    /// it is worth compacting.
    wrote: std::sync::atomic::AtomicBool,
    /// Held from a write's journal to its removal, and while a journal left by a failed write
    /// is completed: apart from those, a journal file in `dir` is a failed write's.
    journal: std::sync::Mutex<()>,
    /// `FLUSH_HANG`, shorter in a test of it.
    flush_hang: std::time::Duration,
    /// Set by a test: the next flush takes longer than `flush_hang`.
    #[cfg(test)]
    hang_next_flush: std::sync::atomic::AtomicBool,
    /// Dropped after the handles above: how sled is let go (a write that failed midway is
    /// left unflushed).
    last_handles: LastHandles,
    /// Held for as long as the store is open, and let go last: other processes get
    /// [`StoreError::Locked`].
    _lock: std::fs::File,
}

/// The last handles of the database, and how they are let go. sled flushes when its last
/// handle is dropped, and once it has met a full disk that flush never returns: a `rosterdrop
/// ingest` that had reported the error hung there for good (an outside probe, 20 of 24 runs).
/// So the store keeps its own handles, and on drop:
/// - when a write failed midway (`failed`), leaks them: the database stays unflushed in this
///   process, which is about to exit (the daemon exits at the first such error,
///   `abandon_store`), and the next open completes the write from its journal;
/// - else flushes and drops them on a thread of their own, and waits for that at most
///   `CLOSE_WAIT`: every write of the store was flushed when it was made, so what a flush
///   that does not return leaves unwritten is what a crash would lose.
struct LastHandles {
    failed: std::sync::atomic::AtomicBool,
    handles: Option<(sled::Db, sled::Tree)>,
}

/// How long a flush of the store may take before it is taken for hung (`Store::flush_within`):
/// far more than a flush of the largest batch takes on a slow disk (a second or two).
const FLUSH_HANG: std::time::Duration = std::time::Duration::from_secs(30);

/// How long dropping a store waits for sled's last flush.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for LastHandles {
    fn drop(&mut self) {
        let Some(handles) = self.handles.take() else {
            return;
        };
        if self.failed.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "the store is left unflushed: a write failed midway; the next open completes \
                 it from the journal"
            );
            std::mem::forget(handles);
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let closing = std::thread::Builder::new()
            .name("store-close".into())
            .spawn(move || {
                let flushed = handles.0.flush();
                drop(handles);
                let _ = tx.send(flushed);
            });
        if closing.is_err() {
            // No thread: the handles went with the closure, flushed on this one.
            return;
        }
        match rx.recv_timeout(CLOSE_WAIT) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the store's last flush failed"),
            Err(_) => tracing::warn!(
                wait_secs = CLOSE_WAIT.as_secs(),
                "the store's last flush did not return (a full disk?); going on without it"
            ),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Set by a test: this thread's next write to a store applies only its first `n` writes
    /// and fails as a full disk does (`Store::apply_to_sled`).
    static TEAR_NEXT_WRITE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// A roster state named by the batch that made it, for messages.
fn roster_at(batch: Option<u64>) -> String {
    match batch {
        Some(b) => format!("the roster of batch {b}"),
        None => "the empty roster".to_string(),
    }
}

fn corrupt(key: &[u8], message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        message: message.into(),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        let lock = compact::lock_dir(dir)?;
        // What a compaction cut short left beside the database (the database is whole).
        compact::remove_leftover(dir)?;
        let db = compact::open_db(dir)?;
        let tree = db.open_tree("roster")?;
        // A write an earlier process did not finish (killed, or the disk filled under sled):
        // applied again, so the store holds it whole (`journal.rs`).
        let completed = journal::complete(dir, &db, &tree)?;
        let mut migrated = false;
        match tree.get(K_VERSION)? {
            None => {
                tree.insert(K_VERSION, FORMAT_VERSION.to_string().as_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let found: u32 = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt(K_VERSION, "not a number"))?;
                if found > FORMAT_VERSION {
                    return Err(StoreError::Version { found });
                }
                if found < 2 {
                    migrate::to_v2(dir, &db, &tree, found)?;
                }
                if found < 3 || tree.get(K_MIGRATING)?.is_some() {
                    migrate::to_v3(dir, &db, &tree)?;
                    migrated = true;
                } else if found == 3 {
                    migrate::to_v4(dir, &db, &tree)?;
                    migrated = true;
                }
            }
        }
        let last_handles = LastHandles {
            failed: std::sync::atomic::AtomicBool::new(false),
            handles: Some((db.clone(), tree.clone())),
        };
        Ok(Store {
            db,
            tree,
            writer: std::sync::Mutex::new(()),
            segments: Default::default(),
            consistent: std::sync::RwLock::new(()),
            dir: dir.to_path_buf(),
            wrote: std::sync::atomic::AtomicBool::new(migrated || completed),
            journal: std::sync::Mutex::new(()),
            flush_hang: FLUSH_HANG,
            #[cfg(test)]
            hang_next_flush: Default::default(),
            last_handles,
            _lock: lock,
        })
    }

    /// Waits until sled has written out what it holds, writing nothing of its own: the
    /// daemon's health probe. A database that met a full disk hangs here, and the probe
    /// answers [`StoreError::FlushHung`] after `FLUSH_HANG`.
    pub fn ping(&self) -> Result<()> {
        self.flush_within()
    }

    /// sled's flush, waited for at most `FLUSH_HANG`. Once sled's log has met a full disk
    /// (even in its background flusher, between our writes) every later flush waits for good,
    /// room or not: an outside probe saw the daemon's worker, its health probe and its
    /// shutdown hang behind one, until the watchdog killed it minutes later. The flush runs on a
    /// thread of its own; one that does not return in time is left there, and the caller gets
    /// an error (the daemon then exits 75 for a restart, as for a full disk).
    fn flush_within(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let db = self.db.clone();
        #[cfg(test)]
        let hang = self
            .hang_next_flush
            .swap(false, std::sync::atomic::Ordering::Relaxed)
            .then_some(self.flush_hang * 3);
        let spawned = std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || {
                #[cfg(test)]
                if let Some(hang) = hang {
                    std::thread::sleep(hang);
                }
                let _ = tx.send(db.flush());
            });
        if spawned.is_err() {
            // No thread to be had (the process is at its limit): flushed here, unbounded, as
            // before there was a bound, rather than a write failed for it.
            self.db.flush()?;
            return Ok(());
        }
        match rx.recv_timeout(self.flush_hang) {
            Ok(flushed) => {
                flushed?;
                Ok(())
            }
            Err(_) => Err(StoreError::FlushHung {
                secs: self.flush_hang.as_secs_f64(),
            }),
        }
    }

    /// Whether a write failed midway and has not been completed since (by a later write of
    /// this process): its journal waits, and dropping this store leaves sled unflushed.
    pub fn has_failed_write(&self) -> bool {
        self.last_handles
            .failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies `w` whole and durably: written to the journal first, then to sled, flushed, and
    /// the journal removed (`journal.rs`). A write that fails after its journal is made (the
    /// disk filled under sled) leaves the journal, and the store refuses further writes until
    /// it has been applied again: by the next write of this process, or by the next open.
    fn apply(&self, w: Writes) -> Result<()> {
        let _j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        self.settle_locked()?;
        journal::write(&self.dir, &w)?;
        self.apply_journaled(&w)
            .map_err(|e| StoreError::CutShort(Box::new(e)))
    }

    /// The half of [`Store::apply`] after the journal: sled's batch, the flush, the journal's
    /// removal. A failure leaves the journal and marks the store (`has_failed_write`).
    fn apply_journaled(&self, w: &Writes) -> Result<()> {
        let applied = self.apply_to_sled(w);
        self.last_handles
            .failed
            .store(applied.is_err(), std::sync::atomic::Ordering::Relaxed);
        applied
    }

    /// sled's part of [`Store::apply_journaled`].
    fn apply_to_sled(&self, w: &Writes) -> Result<()> {
        #[cfg(test)]
        if let Some(n) = TEAR_NEXT_WRITE.take() {
            // What the disk filling under sled left: part of the batch durable, an error.
            self.tree.apply_batch(w.first(n).to_sled())?;
            self.db.flush()?;
            self.forget_segments();
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC).into());
        }
        let batch = w.to_sled();
        {
            let _w = self.consistent.write().unwrap_or_else(|p| p.into_inner());
            let applied = self.tree.apply_batch(batch);
            // Whatever happened, no decoded segment is trusted past a write.
            self.forget_segments();
            applied?;
        }
        self.flush()?;
        journal::clear(&self.dir)
    }

    /// Completes the write an earlier one of this process left in the journal (its sled write
    /// or flush failed), if there is one: before a batch's record is written, or read to be
    /// marked failed (the commit it failed in then stands). Waits for a write under way on
    /// another thread (the daemon records arrivals beside a commit).
    fn settle(&self) -> Result<()> {
        let _j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        self.settle_locked()
    }

    /// [`Store::settle`], the journal's lock held: a journal found then is one whose write
    /// failed, not one under way.
    fn settle_locked(&self) -> Result<()> {
        if let Some(w) = journal::read(&self.dir)? {
            tracing::warn!(
                writes = w.len_hint(),
                "completing a store write that failed midway"
            );
            self.apply_journaled(&w)?;
        }
        Ok(())
    }

    /// Makes this process's writes durable, and notes that the store was written to.
    fn flush(&self) -> Result<()> {
        self.flush_within()?;
        self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn state(&self, source: &str) -> Result<SourceState> {
        let k = k_state(source);
        match self.tree.get(&k)? {
            None => Ok(SourceState::default()),
            Some(v) => serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string())),
        }
    }

    pub fn batch(&self, id: u64) -> Result<Batch> {
        let k = k_batch(id);
        let v = self.tree.get(&k)?.ok_or(StoreError::NoBatch(id))?;
        serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))
    }

    /// Batches, newest first, optionally of one source.
    pub fn history(&self, source: Option<&str>) -> Result<Vec<Batch>> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"b\0").rev() {
            let (k, v) = kv?;
            let b: Batch = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?;
            if source.is_none_or(|s| s == b.source) {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Number of stored records of a table.
    pub fn count(&self, source: &str, table: &str) -> Result<u64> {
        let mut n = 0;
        for p in self.table_pages(&k_records(source, table))? {
            n += page_len(p?.raw());
        }
        Ok(n)
    }

    /// Every record of a table, sorted by primary key.
    fn records(&self, source: &str, table: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = Vec::new();
        let prefix = k_records(source, table);
        for p in self.table_pages(&prefix)? {
            let p = p?;
            all.extend(decode_page(p.raw()).ok_or_else(|| {
                corrupt(
                    &[&prefix[..], &p.bucket.to_be_bytes()].concat(),
                    "undecodable page",
                )
            })?);
        }
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// A new batch's identity: a fresh id, and now as its arrival time. Nothing is recorded
    /// until [`Store::received`] or [`Store::processing`].
    pub fn arrival(&self, source: &str, account: &str) -> Result<Arrival> {
        Ok(Arrival {
            id: self.new_id()?,
            source: source.to_string(),
            account: account.to_string(),
            received_at: crate::clock::now_secs(),
        })
    }

    fn new_id(&self) -> Result<u64> {
        let next = self.tree.update_and_fetch(K_NEXT_ID, |old| {
            let n = old
                .and_then(|o| o.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        self.flush()?;
        next.as_deref()
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt(K_NEXT_ID, "not a counter"))
    }

    /// Whether `inc` is the source's last applied upload again, to be checked with the same
    /// settings: then there is nothing to check or write.
    pub fn is_last_applied(&self, inc: &Incoming) -> Result<bool> {
        Ok(self.state(&inc.arrival.source)?.holds(inc))
    }

    /// Records a claimed upload as `received`: it waits in the spool for its source's worker.
    pub fn received(&self, a: &Arrival) -> Result<Batch> {
        let b = bare_batch(a, &self.state(&a.source)?, BatchState::Received);
        self.record(&b)?;
        Ok(b)
    }

    /// Records a batch as `processing`: its upload has been read and is being checked.
    pub fn processing(&self, inc: &Incoming) -> Result<Batch> {
        let mut b = bare_batch(
            &inc.arrival,
            &self.state(&inc.arrival.source)?,
            BatchState::Processing,
        );
        b.content_hash.clone_from(&inc.content_hash);
        b.settings_hash.clone_from(&inc.settings_hash);
        b.report_dir.clone_from(&inc.report_dir);
        self.record(&b)?;
        Ok(b)
    }

    /// Records an upload identical to the last applied one, without checking it again.
    pub fn unchanged(&self, inc: &Incoming) -> Result<Batch> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let st = self.state(&inc.arrival.source)?;
        let mut b = bare_batch(&inc.arrival, &st, BatchState::Unchanged);
        b.content_hash.clone_from(&inc.content_hash);
        b.settings_hash.clone_from(&inc.settings_hash);
        b.report_dir.clone_from(&inc.report_dir);
        b.format = st.format.clone().unwrap_or_default();
        b.mode = "bulk".into();
        b.reason = Some(format!(
            "same content as the last applied batch {}",
            st.last_applied.map_or("-".into(), |b| b.to_string())
        ));
        b.buckets_after = st.buckets.clone();
        b.buckets_before = st.buckets;
        self.finish(&mut b, inc.started)?;
        Ok(b)
    }

    /// Records a batch as `failed` with the reason, keeping what its record already says (its
    /// hash and reports). A batch that is already final is returned as it is: a commit that
    /// landed stands, whatever failed after it.
    pub fn fail(&self, a: &Arrival, reason: String) -> Result<Batch> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.settle()?;
        let mut b = match self.find_batch(a.id)? {
            Some(b) if b.state.is_final() => return Ok(b),
            Some(b) => b,
            None => bare_batch(a, &self.state(&a.source)?, BatchState::Failed),
        };
        b.state = BatchState::Failed;
        b.reason = Some(reason);
        self.record(&b)?;
        Ok(b)
    }

    /// The batch, or `None` when no batch has that id.
    pub fn find_batch(&self, id: u64) -> Result<Option<Batch>> {
        match self.batch(id) {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NoBatch(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a batch's record (one write, flushed).
    fn record(&self, b: &Batch) -> Result<()> {
        self.settle()?;
        let v = serde_json::to_vec(b)?;
        self.tree.insert(k_batch(b.id), v)?;
        self.flush()?;
        Ok(())
    }

    /// Commits a checked bundle: diff (bulk) or apply (delta), cascade its deletions to the
    /// stored records that depend on them, guard, one atomic write. An outcome the engine
    /// held is diffed and held like a batch the deletion guard holds.
    pub fn commit(&self, outcome: &Outcome, inc: &Incoming, guard: Guard) -> Result<Committed> {
        self.commit_when(outcome, inc, guard, &mut || Ok(()))
    }

    /// [`Store::commit`], working out the batch's writes while something it must wait for
    /// runs on another thread (`ingest` writes the batch's reports meanwhile): `ready` is
    /// called before anything is written, and when it fails nothing is.
    pub fn commit_when(
        &self,
        outcome: &Outcome,
        inc: &Incoming,
        guard: Guard,
        ready: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Committed> {
        let mut waited = false;
        let mut wait = || -> Result<()> {
            if !waited {
                waited = true;
                ready()?;
            }
            Ok(())
        };
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let started = inc.started;
        let state = self.state(&inc.arrival.source)?;
        let mut batch = bare_batch(&inc.arrival, &state, BatchState::Processing);
        batch.content_hash.clone_from(&inc.content_hash);
        batch.settings_hash.clone_from(&inc.settings_hash);
        batch.report_dir.clone_from(&inc.report_dir);
        batch.format = outcome.format.map_or("unknown", |f| f.label()).to_string();
        batch.mode = mode_label(outcome);
        batch.buckets_before = state.buckets.clone();
        batch.buckets_after = state.buckets.clone();
        for f in &outcome.findings {
            *batch.patches.entry(f.rule.code().to_string()).or_default() += 1;
        }
        let done = |batch: Batch| Committed {
            batch,
            cascaded: Vec::new(),
            held: Vec::new(),
        };
        if outcome.verdict == Verdict::Rejected {
            batch.state = BatchState::Rejected;
            batch.reason = Some(if outcome.errors.is_empty() {
                outcome.reasons.join("; ")
            } else {
                format!(
                    "{} structural error(s); first: {}",
                    outcome.errors.len(),
                    outcome.errors[0]
                )
            });
            wait()?;
            self.finish(&mut batch, started)?;
            return Ok(done(batch));
        }
        // With `format = "auto"` the first applied batch fixes the source's format; a setting
        // of `apple` or `oneroster` is enforced on the bundle itself (Bundle::expect), and a
        // change of that setting is the admin's decision, not second-guessed here.
        if let (Some(prev), Some(fmt), crate::roster::bundle::Expect::Auto) =
            (&state.format, outcome.format, outcome.settings.expect)
        {
            if prev != fmt.label() && !(prev.starts_with("oneroster") && fmt.is_oneroster()) {
                let (kind, setting) = if fmt.is_oneroster() {
                    ("OneRoster", "oneroster")
                } else {
                    ("Apple School Manager", "apple")
                };
                batch.state = BatchState::Rejected;
                batch.reason = Some(format!(
                    "source holds a {prev} roster; this bundle is {}. A source with format = \
                     \"auto\" keeps the format of its first batch: to take {kind} bundles, add \
                     a source for them (a new [sources.NAME] with format = \"{setting}\" and an \
                     account for it)",
                    fmt.label()
                ));
                wait()?;
                self.finish(&mut batch, started)?;
                return Ok(done(batch));
            }
        }
        // An upload older than the roster: a batch the daemon resumes after a restart, when
        // an offline `ingest` applied a later one meanwhile. Applied, it would undo that batch.
        if let Some(newer) = self
            .roster_upload(state.last_applied)?
            .filter(|&l| l > batch.id)
        {
            batch.state = BatchState::Rejected;
            batch.reason = Some(format!(
                "not applied: batch {newer} of this source arrived after this one and was \
                 applied first; this older upload would have undone it. Upload the bundle \
                 again if it should be the roster"
            ));
            wait()?;
            self.finish(&mut batch, started)?;
            return Ok(done(batch));
        }
        if state.holds(inc) {
            batch.state = BatchState::Unchanged;
            batch.reason = Some("same content as the last applied batch".into());
            wait()?;
            self.finish(&mut batch, started)?;
            return Ok(done(batch));
        }
        let mut changes: ChangeSet = Vec::new();
        let mut after = state.clone();
        let t = std::time::Instant::now();
        let planned = self.plan(outcome, inc, &state, &mut after, &mut batch, &mut changes);
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "planned");
        let cascaded = match planned {
            Ok(c) => c,
            Err(e @ (StoreError::Oversized(_) | StoreError::Unverified(_))) => {
                // What this batch would write cannot be stored faithfully: refuse it whole.
                tracing::warn!(batch = batch.id, error = %e, "batch refused by the store");
                batch.tables.clear();
                batch.state = BatchState::Rejected;
                batch.reason = Some(e.to_string());
                wait()?;
                self.finish(&mut batch, started)?;
                return Ok(done(batch));
            }
            Err(e) => return Err(e),
        };
        for f in &cascaded {
            *batch.patches.entry(f.rule.code().to_string()).or_default() += 1;
        }
        batch.buckets_after = after.buckets.clone();
        if changes.is_empty() {
            batch.state = BatchState::Unchanged;
            batch.reason = Some("no record differs from the stored roster".into());
            after.applied(inc);
            wait()?;
            self.write(&batch, &[], None, Some(&after), started)?;
            return Ok(Committed {
                batch,
                cascaded,
                held: Vec::new(),
            });
        }
        // The mass-deletion guard: too large a share of a table, or every record of a table
        // that has records (whatever min_rows says).
        let mut over = Vec::new();
        for (t, c) in &batch.tables {
            let share = c.deletes as f64 * 100.0 / c.before.max(1) as f64;
            let emptied = c.before > 0 && c.before + c.adds <= c.deletes;
            if emptied
                || (c.before >= guard.min_rows
                    && (c.deletes as f64) * 100.0 > guard.max_delete_percent * c.before as f64)
            {
                over.push(format!(
                    "{t}: {} of {} records would be deleted ({share:.1}%{})",
                    c.deletes,
                    c.before,
                    if emptied {
                        ", the whole table".to_string()
                    } else {
                        format!(" > {}%", guard.max_delete_percent)
                    }
                ));
            }
        }
        let engine_held = outcome.verdict == Verdict::Held;
        if engine_held || !over.is_empty() {
            let mut why: Vec<String> = if engine_held {
                outcome.reasons.clone()
            } else {
                Vec::new()
            };
            why.extend(over.iter().cloned());
            batch.state = BatchState::Held;
            // The reason says why; what to do about it depends on when it is read (the CLI and
            // the mail give the commands while the batch is still held).
            batch.reason = Some(format!("{HELD_PREFIX}{}", why.join("; ")));
            let pending = encode_changes(&changes)?;
            batch.duration_ms = started.elapsed().as_millis() as u64;
            let mut b = Writes::default();
            b.insert(k_pending(batch.id), pending);
            b.insert(k_batch(batch.id), json(&batch)?);
            wait()?;
            self.apply(b)?;
            tracing::warn!(
                batch = batch.id,
                by_patches = engine_held,
                by_deletions = !over.is_empty(),
                "batch held for approval"
            );
            return Ok(Committed {
                batch,
                cascaded,
                held: over,
            });
        }
        after.applied(inc);
        after.format = outcome.format.map(|f| f.label().to_string());
        batch.state = BatchState::Applied;
        wait()?;
        let batch = self.write(&batch, &changes, None, Some(&after), started)?;
        // A first batch's change set is a few hundred thousand small allocations (two per
        // page): freed on a thread of its own, so that the caller (a CLI about to exit, the
        // daemon about to mail) does not wait for it. When no thread can be started, it is
        // freed here (the refused closure is dropped with it).
        let _ = std::thread::Builder::new()
            .name("free-changes".into())
            .spawn(move || drop(changes));
        Ok(Committed {
            batch,
            cascaded,
            held: Vec::new(),
        })
    }

    /// Works out a batch's writes: each uploaded table diffed against the stored roster, then
    /// the cascade of its deletions; counts go into `batch`, bucket counts into `after`.
    /// Every page is checked to decode before it is returned.
    fn plan(
        &self,
        outcome: &Outcome,
        inc: &Incoming,
        before: &SourceState,
        after: &mut SourceState,
        batch: &mut Batch,
        changes: &mut ChangeSet,
    ) -> Result<Vec<Finding>> {
        let mut removed: BTreeMap<&'static str, Removed> = BTreeMap::new();
        for w in &outcome.tables {
            let old = before.buckets.get(w.def.name).copied();
            let r = removed.entry(w.def.name).or_default();
            let (counts, b) = self.diff_table(&inc.arrival.source, w, old, changes, r)?;
            after.buckets.insert(w.def.name.to_string(), b);
            batch.tables.insert(w.def.name.to_string(), counts);
        }
        let cascaded = match outcome.format {
            Some(f) => {
                let schema = Schema::for_format(f);
                let mut c = Cascade {
                    store: self,
                    source: &inc.arrival.source,
                    schema: &schema,
                    outcome,
                    before,
                    after,
                    counts: &mut batch.tables,
                    index: changes
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                    changes,
                    stored: HashMap::new(),
                };
                c.run(&mut removed)?
            }
            None => Vec::new(),
        };
        verify_pages(changes)?;
        Ok(cascaded)
    }

    /// The batch whose upload the source's roster holds, from its last applied batch: that
    /// batch, or for a rollback the batch it went back to (a rollback of a rollback is
    /// followed too). `None` when the roster is empty.
    fn roster_upload(&self, last_applied: Option<u64>) -> Result<Option<u64>> {
        let mut at = last_applied;
        // Bounded: each step goes to an older batch.
        for _ in 0..64 {
            let Some(id) = at else { return Ok(None) };
            let b = self.batch(id)?;
            match b.rollback_of {
                None => return Ok(Some(id)),
                Some(of) => at = self.batch(of)?.base,
            }
        }
        Ok(at)
    }

    fn finish(&self, b: &mut Batch, started: std::time::Instant) -> Result<()> {
        b.duration_ms = started.elapsed().as_millis() as u64;
        self.record(b)
    }

    /// One atomic write: record changes, their undo data, the batch entry and source state.
    fn write(
        &self,
        batch: &Batch,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        extra: Option<(&[u8], Option<Vec<u8>>)>,
        state: Option<&SourceState>,
        started: std::time::Instant,
    ) -> Result<Batch> {
        let mut b = Writes::default();
        let mut batch = batch.clone();
        let mut state = state.cloned();
        if !changes.is_empty() {
            let t = std::time::Instant::now();
            let w = self.write_pages(batch.id, changes, &mut b)?;
            tracing::debug!(
                ms = t.elapsed().as_millis() as u64,
                bytes = w.bytes,
                "segments written"
            );
            b.insert(k_undo(batch.id), encode_changes(&w.undo)?);
            batch.bytes_written = w.bytes;
            if let Some(st) = state.as_mut() {
                st.stored_bytes = st.stored_bytes.saturating_add_signed(w.delta);
                batch.bytes_stored = st.stored_bytes;
            }
        }
        if let Some((k, v)) = extra {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        batch.duration_ms = started.elapsed().as_millis() as u64;
        b.insert(k_batch(batch.id), json(&batch)?);
        if let Some(mut st) = state {
            if batch.state == BatchState::Applied {
                // Only the last applied batch can be rolled back: the undo data of the one
                // before it is never read again.
                if let Some(prev) = st.last_applied.filter(|&p| p != batch.id) {
                    b.remove(k_undo(prev));
                }
                st.last_applied = Some(batch.id);
            }
            b.insert(k_state(&batch.source), json(&st)?);
        }
        self.apply(b)?;
        let (a, u, d) = batch.totals();
        tracing::info!(
            batch = batch.id,
            adds = a,
            updates = u,
            deletes = d,
            state = batch.state.label(),
            "batch committed"
        );
        Ok(batch)
    }

    /// Applies a held batch, if nothing was applied to its source since it was computed.
    pub fn approve(&self, id: u64) -> Result<Batch> {
        self.approve_as(id, None)
    }

    /// [`Store::approve`], recording who decided it.
    pub fn approve_as(&self, id: u64, decided: Option<Decision>) -> Result<Batch> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let mut batch = self.batch(id)?;
        if batch.state != BatchState::Held {
            return Err(StoreError::Refused(format!(
                "batch {id} is {}, not held",
                batch.state.label()
            )));
        }
        let mut st = self.state(&batch.source)?;
        if st.last_applied != batch.base {
            return Err(StoreError::Refused(format!(
                "batch {id} was checked against {} but {} has been applied since; discard it \
                 and let the vendor upload again",
                roster_at(batch.base),
                roster_at(st.last_applied)
            )));
        }
        let pk = k_pending(id);
        let blob = self.tree.get(&pk)?.ok_or_else(|| corrupt(&pk, "missing"))?;
        let changes = decode_changes(&blob).ok_or_else(|| corrupt(&pk, "undecodable"))?;
        verify_pages(&changes)?;
        batch.state = BatchState::Applied;
        batch.decide("approved", decided);
        batch.reason = Some(format!(
            "approved; {}",
            batch.reason.clone().unwrap_or_default()
        ));
        st.last_hash = Some(batch.content_hash.clone());
        st.last_settings = Some(batch.settings_hash.clone()).filter(|h| !h.is_empty());
        st.format = Some(batch.format.clone());
        st.buckets = batch.buckets_after.clone();
        self.write(&batch, &changes, Some((&pk, None)), Some(&st), started)
    }

    /// Drops a held batch.
    pub fn discard(&self, id: u64) -> Result<Batch> {
        self.discard_as(id, None)
    }

    /// [`Store::discard`], recording who decided it.
    pub fn discard_as(&self, id: u64, decided: Option<Decision>) -> Result<Batch> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = self.batch(id)?;
        if batch.state != BatchState::Held {
            return Err(StoreError::Refused(format!(
                "batch {id} is {}, not held",
                batch.state.label()
            )));
        }
        batch.state = BatchState::Discarded;
        batch.decide("discarded", decided);
        let mut b = Writes::default();
        b.remove(k_pending(id));
        b.insert(k_batch(id), json(&batch)?);
        self.apply(b)?;
        Ok(batch)
    }

    /// Restores the roster as it was before batch `id`, which must be its source's last
    /// applied batch; the rollback is recorded as a batch of its own.
    pub fn rollback(&self, id: u64) -> Result<Batch> {
        self.rollback_as(id, None)
    }

    /// [`Store::rollback`], recording who decided it (on both records).
    pub fn rollback_as(&self, id: u64, decided: Option<Decision>) -> Result<Batch> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let mut orig = self.batch(id)?;
        let st = self.state(&orig.source)?;
        if orig.state != BatchState::Applied || st.last_applied != Some(id) {
            return Err(StoreError::Refused(format!(
                "batch {id} is not the last applied batch of source `{}` ({}); only the last \
                 one can be rolled back",
                orig.source,
                match st.last_applied {
                    Some(l) => format!("that is batch {l}"),
                    None => "it has none".to_string(),
                }
            )));
        }
        let uk = k_undo(id);
        let undo = match self.tree.get(&uk)? {
            Some(blob) => decode_changes(&blob).ok_or_else(|| corrupt(&uk, "undecodable"))?,
            None => Vec::new(),
        };
        // The records the batch changed get their values from before it, in today's pages.
        let mut st = st;
        let changes = page_writes(
            &undo,
            &mut st.buckets,
            |k| self.load_page(k),
            |prefix| self.page_keys(prefix),
        )?;
        orig.state = BatchState::RolledBack;
        orig.decide("rolled back", decided);
        let mut rb = orig.clone();
        // The rollback's own record names who made it, not who approved what it undoes.
        rb.earlier.clear();
        rb.id = self.new_id()?;
        rb.state = BatchState::Applied;
        rb.rollback_of = Some(id);
        rb.received_at = crate::clock::now_secs();
        rb.reason = Some(format!("rollback of batch {id}"));
        rb.base = st.last_applied;
        // The roster is again what the batch before it left: so is the content it came from.
        rb.content_hash = match orig.base {
            Some(b) => self.batch(b).map(|b| b.content_hash).unwrap_or_default(),
            None => String::new(),
        };
        rb.patches.clear();
        for (name, t) in rb.tables.iter_mut() {
            t.before = t.before + t.adds - t.deletes.min(t.before + t.adds);
            (t.adds, t.deletes) = (t.deletes, t.adds);
            t.read = 0;
            t.stale = 0;
            let prefix = k_records(&rb.source, name);
            t.pages_written = changes
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .count() as u64;
        }
        // The next upload is applied even if it equals the rolled-back content.
        st.last_hash = None;
        st.last_settings = None;
        // The records go back into today's pages: the page counts stay.
        rb.buckets_before = st.buckets.clone();
        rb.buckets_after = st.buckets.clone();
        let orig_json = json(&orig)?;
        self.write(
            &rb,
            &changes,
            Some((&k_batch(id), Some(orig_json))),
            Some(&st),
            started,
        )
    }
}

/// What [`Store::commit`] did.
#[derive(Debug)]
pub struct Committed {
    pub batch: Batch,
    /// Stored records this batch deleted or changed because a record they reference was
    /// deleted (rows for patch-summary.csv, at line 0: they are not in the upload).
    pub cascaded: Vec<Finding>,
    /// Why the deletion guard held the batch (the engine's own reasons are in the outcome).
    pub held: Vec<String>,
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_open_elsewhere_is_locked_not_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        match Store::open(dir.path()) {
            Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
            Err(other) => panic!("expected Locked, got {other:?}"),
            Ok(_) => panic!("a second open of a locked store succeeded"),
        }
    }
    use crate::roster::csvio::Table;
    use crate::roster::engine::Settings;

    /// An accepted Apple outcome holding one locations file.
    fn locations(rows: &[(&str, &str)]) -> Outcome {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(a, b)| vec![a.to_string(), b.to_string()])
            .collect();
        let schema = Schema::for_format(Format::Apple);
        let def = schema.table("locations").unwrap();
        let t = Table::from_rows("locations.csv", &["location_id", "location_name"], &rows);
        let w = crate::roster::engine::bind(def, t, Mode::Bulk).unwrap();
        Outcome {
            bundle_name: "b".into(),
            format: Some(Format::Apple),
            settings: Settings::default(),
            tables: vec![w],
            findings: vec![],
            errors: vec![],
            reasons: vec![],
            notes: vec![],
            ignored: vec![],
            passthrough: vec![],
            verdict: Verdict::Accepted,
        }
    }

    fn incoming(s: &Store, hash: &str) -> Incoming {
        Incoming {
            arrival: s.arrival("north", "sis").unwrap(),
            content_hash: hash.into(),
            settings_hash: "settings".into(),
            report_dir: None,
            started: std::time::Instant::now(),
        }
    }

    fn exported(s: &Store, dir: &Path) -> String {
        s.export("north", dir).unwrap();
        std::fs::read_to_string(dir.join("locations.csv")).unwrap()
    }

    #[test]
    fn export_sorts_every_page_by_key_and_keeps_extra_columns_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        // 500 locations: about 32 pages, so key order is not page order; extra columns on
        // some records only, and in an upload order that is not their name order.
        let header = ["location_id", "zz_extra", "location_name", "aa_extra"];
        let rows: Vec<Vec<String>> = (0..500)
            .map(|i| {
                vec![
                    format!("L{i}"),
                    if i % 7 == 0 {
                        format!("z{i}")
                    } else {
                        String::new()
                    },
                    format!("School, \"{i}\""),
                    if i % 11 == 0 {
                        format!("a{i}")
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        let mut o = locations(&[]);
        let def = Schema::for_format(Format::Apple);
        let t = Table::from_rows("locations.csv", &header, &rows);
        o.tables =
            vec![
                crate::roster::engine::bind(def.table("locations").unwrap(), t, Mode::Bulk)
                    .unwrap(),
            ];
        let c = s.commit(&o, &incoming(&s, "h1"), Guard::default()).unwrap();
        assert_eq!(c.batch.state, BatchState::Applied);
        assert!(s.state("north").unwrap().buckets["locations"] > 16);

        let mut sorted = rows.clone();
        sorted.sort_by(|a, b| a[0].cmp(&b[0]));
        let mut expect = String::from("location_id,location_name,aa_extra,zz_extra\n");
        for r in &sorted {
            // Apple's dialect: a quote inside a quoted field is escaped with a backslash.
            let name = format!("\"{}\"", r[2].replace('"', "\\\""));
            expect.push_str(&format!("{},{name},{},{}\n", r[0], r[3], r[1]));
        }
        assert_eq!(exported(&s, &d.path().join("e")), expect);
    }

    /// Two batches of locations: 300, then a third of them renamed, 20 removed, 40 added.
    fn two_batches() -> [Vec<(String, String)>; 2] {
        let first: Vec<(String, String)> = (0..300)
            .map(|i| (format!("L{i:03}"), format!("School {i}")))
            .collect();
        let second = (20..340)
            .map(|i| {
                let name = if i % 3 == 0 { "Renamed" } else { "School" };
                (format!("L{i:03}"), format!("{name} {i}"))
            })
            .collect();
        [first, second]
    }

    fn commit_rows(s: &Store, rows: &[(String, String)], hash: &str) -> Result<Committed> {
        commit_arrived(s, rows, &incoming(s, hash))
    }

    /// `rows` committed as the batch that arrived as `inc`.
    fn commit_arrived(s: &Store, rows: &[(String, String)], inc: &Incoming) -> Result<Committed> {
        let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.commit(&locations(&rows), inc, Guard::default())
    }

    /// What a reader sees: the export, and each batch's id and state.
    fn seen(s: &Store, out: &Path) -> (String, Vec<(u64, String)>) {
        let history = s.history(None).unwrap();
        let states = history.iter().map(|b| (b.id, b.state.label().to_string()));
        (exported(s, out), states.collect())
    }

    /// What the next process finds of the database in `db`, which this one keeps open
    /// after a failed write: a copy of its files.
    fn restarted(db: &Path) -> PathBuf {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    copy(&e.path(), &to.join(e.file_name()));
                } else {
                    std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
                }
            }
        }
        let next = db.with_extension("restarted");
        copy(db, &next);
        next
    }

    #[test]
    fn a_write_torn_by_a_full_disk_is_completed_by_the_next_open() {
        let d = tempfile::tempdir().unwrap();
        let [first, second] = two_batches();
        let expected = {
            let s = Store::open(&d.path().join("reference")).unwrap();
            commit_rows(&s, &first, "h1").unwrap();
            commit_rows(&s, &second, "h2").unwrap();
            seen(&s, &d.path().join("e0"))
        };
        assert_eq!(expected.1.len(), 2);
        let db = d.path().join("db");
        let s = Store::open(&db).unwrap();
        commit_rows(&s, &first, "h1").unwrap();
        // The batch's first write is its records' segment; its history entry comes later.
        TEAR_NEXT_WRITE.set(Some(1));
        let e = commit_rows(&s, &second, "h2").unwrap_err().to_string();
        assert!(e.contains("No space left"), "{e}");
        assert!(e.contains("waits in the store's journal"), "{e}");
        // The tear is real: sled holds the new records, and no batch that made them.
        let torn = seen(&s, &d.path().join("e1"));
        assert_eq!(torn.0, expected.0);
        assert_eq!(torn.1, [(1, "applied".to_string())]);
        // The process ends (its sled handles are left unflushed: a flush on a full disk
        // never returns); the next one opens what is on disk.
        drop(s);
        let db = restarted(&db);
        let s = Store::open(&db).unwrap();
        assert_eq!(seen(&s, &d.path().join("e2")), expected);
        assert!(!journal::pending(&db));
        // And nothing is applied twice by a later open.
        drop(s);
        let s = Store::open(&db).unwrap();
        assert_eq!(seen(&s, &d.path().join("e3")), expected);
    }

    /// A store in `d/db` holding the first of [`two_batches`], whose commit of the second
    /// applied only its first `tear` writes and failed.
    fn torn_store(d: &Path, tear: usize) -> (Store, PathBuf) {
        let [first, second] = two_batches();
        let db = d.join("db");
        let s = Store::open(&db).unwrap();
        commit_rows(&s, &first, "h1").unwrap();
        TEAR_NEXT_WRITE.set(Some(tear));
        commit_rows(&s, &second, "h2").unwrap_err();
        assert!(journal::pending(&db));
        assert!(s.has_failed_write());
        (s, db)
    }

    #[test]
    fn a_write_torn_in_a_running_process_is_completed_before_its_next_write() {
        let d = tempfile::tempdir().unwrap();
        let [first, second] = two_batches();
        let (s, db) = torn_store(d.path(), 1);
        // The next write (the daemon's next batch: here the same upload again) first
        // completes the torn one, then finds nothing left to change.
        let again = commit_rows(&s, &second, "h2").unwrap();
        assert_eq!(again.batch.state, BatchState::Unchanged);
        let history = s.history(None).unwrap();
        let states: Vec<&str> = history.iter().map(|b| b.state.label()).collect();
        assert_eq!(states, ["unchanged", "applied", "applied"]);
        let reference = Store::open(&d.path().join("reference")).unwrap();
        commit_rows(&reference, &first, "h1").unwrap();
        commit_rows(&reference, &second, "h2").unwrap();
        assert_eq!(
            exported(&s, &d.path().join("e1")),
            exported(&reference, &d.path().join("e2"))
        );
        assert!(!journal::pending(&db));
    }

    /// A batch that arrived before the source's last applied batch is never applied over it:
    /// a daemon killed while checking batch 2, an offline `ingest` applying batch 3, then the
    /// daemon's restart resumed batch 2 and put the older upload over batch 3's roster, with
    /// nothing said but a log line (an outside probe).
    #[test]
    fn an_older_upload_is_never_applied_over_a_newer_one() {
        let d = tempfile::tempdir().unwrap();
        let [first, second] = two_batches();
        let s = Store::open(&d.path().join("db")).unwrap();
        commit_rows(&s, &first, "h1").unwrap();
        // Batch 2 arrives (the daemon claims it, then dies); batch 3 is applied meanwhile.
        let older = incoming(&s, "h-older");
        s.received(&older.arrival).unwrap();
        commit_rows(&s, &second, "h3").unwrap();
        let out = d.path().join("before");
        let before = exported(&s, &out);
        // Batch 2 resumed: its bundle is the first one, which would undo batch 3.
        let c = commit_arrived(&s, &first, &older).unwrap();
        assert_eq!(c.batch.state, BatchState::Rejected);
        let reason = c.batch.reason.unwrap_or_default();
        assert!(reason.contains("batch 3"), "{reason}");
        assert_eq!(exported(&s, &d.path().join("after")), before);
        assert_eq!(s.state("north").unwrap().last_applied, Some(3));
        // Once batch 3 is rolled back, the roster is batch 1's again, and an upload that
        // arrived after batch 1 is applied as any would be.
        let again = incoming(&s, "h-again");
        s.received(&again.arrival).unwrap();
        s.rollback(3).unwrap();
        let c = commit_arrived(&s, &second, &again).unwrap();
        assert_eq!(c.batch.state, BatchState::Applied, "{:?}", c.batch.reason);
        assert_eq!(exported(&s, &d.path().join("again")), before);
    }

    #[test]
    fn a_batch_whose_commit_failed_midway_is_not_recorded_failed_over_it() {
        let d = tempfile::tempdir().unwrap();
        let [first, second] = two_batches();
        let s = Store::open(&d.path().join("db")).unwrap();
        commit_rows(&s, &first, "h1").unwrap();
        let inc = incoming(&s, "h2");
        TEAR_NEXT_WRITE.set(Some(1));
        commit_arrived(&s, &second, &inc).unwrap_err();
        // The daemon records the batch as failed: the journalled commit is completed first,
        // and stands, so the record (and the admins' mail) says what the store holds.
        let b = s.fail(&inc.arrival, "the commit failed".into()).unwrap();
        assert_eq!(b.state, BatchState::Applied);
        assert_eq!(
            s.find_batch(inc.arrival.id).unwrap().unwrap().state,
            BatchState::Applied
        );
        assert!(!s.has_failed_write());
    }

    #[test]
    fn arrivals_recorded_beside_commits_never_touch_a_journal_under_way() {
        // The daemon records arrivals (no writer lock) while a worker commits: the record
        // waits for the commit's journal, and never applies it a second time.
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("db");
        let s = Store::open(&db).unwrap();
        let [first, _] = two_batches();
        let renamed: Vec<(String, String)> = first
            .iter()
            .map(|(id, name)| (id.clone(), format!("{name} (renamed)")))
            .collect();
        std::thread::scope(|t| {
            t.spawn(|| {
                for i in 0..40 {
                    let a = s.arrival("north", "sis").unwrap();
                    s.received(&a).unwrap();
                    assert!(!s.has_failed_write(), "round {i}");
                }
            });
            for i in 0..10 {
                let rows = if i % 2 == 0 { &first } else { &renamed };
                let c = commit_rows(&s, rows, &format!("h{i}")).unwrap();
                assert_eq!(c.batch.state, BatchState::Applied);
            }
        });
        assert!(!journal::pending(&db));
        let applied = s
            .history(None)
            .unwrap()
            .iter()
            .filter(|b| b.state == BatchState::Applied)
            .count();
        assert_eq!(applied, 10);
        assert_eq!(
            exported(&s, &d.path().join("e")).lines().count(),
            first.len() + 1
        );
    }

    #[test]
    fn a_flush_that_hangs_is_an_error_in_bounded_time_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(&d.path().join("db")).unwrap();
        s.flush_hang = std::time::Duration::from_millis(500);
        apply_two_locations(&s);
        s.hang_next_flush
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::Instant::now();
        let e = s.ping().unwrap_err();
        assert!(matches!(e, StoreError::FlushHung { .. }), "{e}");
        assert!(t.elapsed() < s.flush_hang * 2, "{:?}", t.elapsed());
        assert!(e.to_string().contains("has not returned"), "{e}");
        // A batch record waits no longer: the daemon's worker gets the error too.
        let a = s.arrival("north", "sis").unwrap();
        s.hang_next_flush
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            s.received(&a).unwrap_err(),
            StoreError::FlushHung { .. }
        ));
        // The next flush that returns is an answer again.
        s.ping().unwrap();
    }

    #[test]
    fn a_store_with_a_write_waiting_is_not_compacted() {
        let d = tempfile::tempdir().unwrap();
        let (s, db) = torn_store(d.path(), 2);
        // A compaction would leave the journal behind with the old database: refused.
        let e = s.compact_now().unwrap_err().to_string();
        assert!(e.contains("failed midway"), "{e}");
        // The refusal left the store and its journal: the next open completes the write.
        let s = Store::open(&restarted(&db)).unwrap();
        let states: Vec<String> = s
            .history(None)
            .unwrap()
            .iter()
            .map(|b| b.state.label().to_string())
            .collect();
        assert_eq!(states, ["applied", "applied"]);
    }

    /// Applies a first batch of two locations to `north`.
    fn apply_two_locations(s: &Store) {
        let c = s
            .commit(
                &locations(&[("L1", "North"), ("L2", "South")]),
                &incoming(s, "h1"),
                Guard::default(),
            )
            .unwrap();
        assert_eq!(c.batch.state, BatchState::Applied);
    }

    #[test]
    fn whole_roster_reads_leave_the_segment_cache_as_they_found_it() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        apply_two_locations(&s);
        s.forget_segments();
        let cached = |s: &Store| s.cached_bytes();
        s.export("north", &d.path().join("e")).unwrap();
        s.roster("north", &Default::default()).unwrap();
        assert_eq!(cached(&s), 0, "an export or a roster read keeps nothing");
        // A point read does keep what it read, and a scan of the kind the diff makes too.
        s.page(&k_page("north", "locations", 0)).unwrap();
        assert!(cached(&s) > 0);
        s.forget_segments();
        s.table_pages(&k_records("north", "locations"))
            .unwrap()
            .for_each(drop);
        assert!(cached(&s) > 0);
    }

    #[test]
    fn a_damaged_page_stops_an_export_with_the_page_named_and_no_panic() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("db");
        apply_two_locations(&Store::open(&db).unwrap());
        let prefix = k_records("north", "locations");
        // A base whose one page says it holds three records and holds one; then one whose
        // value is not UTF-8; then one whose record names a column the page does not have.
        let one = |value: &[u8], name_index: u8, count: u8| {
            let mut page = vec![1, 11];
            page.extend_from_slice(b"location_id");
            page.extend_from_slice(&[count, 2, b'L', b'1', 1, name_index]);
            page.push(value.len() as u8 + 1);
            page.extend_from_slice(value);
            let mut base = vec![0, page.len() as u8];
            base.extend_from_slice(&page);
            zstd::bulk::compress(&base, 1).unwrap()
        };
        for (i, base) in [one(b"L1", 0, 3), one(b"\xff\xfe", 0, 1), one(b"L1", 4, 1)]
            .into_iter()
            .enumerate()
        {
            let s = Store::open(&db).unwrap();
            s.tree.insert(segments::k_base(&prefix, 0), base).unwrap();
            drop(s);
            let s = Store::open(&db).unwrap();
            match s.export("north", &d.path().join(format!("e{i}"))) {
                Err(StoreError::Corrupt { key, message }) => {
                    assert!(key.starts_with("r/north/locations/"), "{key}");
                    assert_eq!(message, "undecodable page");
                }
                other => panic!("case {i}: {other:?}"),
            }
            assert!(
                matches!(
                    s.roster("north", &Default::default()),
                    Err(StoreError::Corrupt { .. })
                ),
                "case {i}"
            );
        }
    }

    #[test]
    fn an_id_or_column_name_too_long_to_store_is_refused_and_the_source_still_exports() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let ok = s
            .commit(
                &locations(&[("L1", "North")]),
                &incoming(&s, "h1"),
                Guard::default(),
            )
            .unwrap();
        assert_eq!(ok.batch.state, BatchState::Applied);

        // A 100 KB id: its length does not fit the page's two-byte key length.
        let long = "x".repeat(100_000);
        let o = locations(&[("L1", "North"), (&long, "Far")]);
        let c = s.commit(&o, &incoming(&s, "h2"), Guard::default()).unwrap();
        assert_eq!(c.batch.state, BatchState::Rejected);
        let why = c.batch.reason.clone().unwrap();
        assert!(
            why.contains("locations.csv line 3: the record id is 100000 bytes")
                && why.contains("65535"),
            "{why}"
        );
        assert!(!why.contains("xxxx"), "the id itself stays out: {why}");
        assert_eq!(
            exported(&s, &d.path().join("e1")),
            "location_id,location_name\nL1,North\n"
        );

        // A 70,000-byte column name (an extra column the record keeps).
        let mut o = locations(&[("L1", "North"), ("L2", "South")]);
        o.tables[0].table.header[1] = "n".repeat(70_000);
        let c = s.commit(&o, &incoming(&s, "h3"), Guard::default()).unwrap();
        assert_eq!(c.batch.state, BatchState::Rejected);
        let why = c.batch.reason.unwrap();
        assert!(why.contains("the name of column 2 is 70000 bytes"), "{why}");
        assert_eq!(
            exported(&s, &d.path().join("e2")),
            "location_id,location_name\nL1,North\n"
        );
        assert_eq!(
            s.history(Some("north")).unwrap()[0].state,
            BatchState::Rejected
        );

        // The source takes the next batch as ever.
        let o = locations(&[("L1", "North"), ("L2", "South")]);
        let c = s.commit(&o, &incoming(&s, "h4"), Guard::default()).unwrap();
        assert_eq!(c.batch.state, BatchState::Applied);
        assert_eq!(
            exported(&s, &d.path().join("e3")),
            "location_id,location_name\nL1,North\nL2,South\n"
        );
    }

    #[test]
    fn rollback_of_a_first_batch_empties_its_tables_and_of_a_later_one_restores_records() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let rows: Vec<(String, String)> = (0..100)
            .map(|i| (format!("L{i:03}"), format!("School {i}")))
            .collect();
        let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let first = s
            .commit(&locations(&rows), &incoming(&s, "h1"), Guard::default())
            .unwrap()
            .batch;
        // A first batch's undo data is one entry per table: every record goes.
        let undo = decode_changes(&s.tree.get(k_undo(first.id)).unwrap().unwrap()).unwrap();
        assert_eq!(undo, vec![(b"r\0north\0locations\0".to_vec(), None)]);
        let rb = s.rollback(first.id).unwrap();
        assert_eq!(rb.totals(), (0, 0, 100));
        assert_eq!(s.count("north", "locations").unwrap(), 0);
        for prefix in [&b"r\0"[..], b"g\0", b"d\0"] {
            assert_eq!(s.tree.scan_prefix(prefix).count(), 0);
        }
        // Applied again; then a batch changing one record and adding one, rolled back.
        s.commit(&locations(&rows), &incoming(&s, "h1"), Guard::default())
            .unwrap();
        let mut more = rows.clone();
        more[7].1 = "Renamed";
        more.push(("L999", "New"));
        let second = s
            .commit(&locations(&more), &incoming(&s, "h2"), Guard::default())
            .unwrap()
            .batch;
        assert_eq!(second.totals(), (1, 1, 0));
        // Its undo data names the two records; the undo data of the batch before is gone.
        let undo = decode_changes(&s.tree.get(k_undo(second.id)).unwrap().unwrap()).unwrap();
        assert_eq!(undo.len(), 2);
        assert_eq!(s.tree.scan_prefix(b"u\0").count(), 1);
        let before = exported(&s, &d.path().join("before"));
        s.rollback(second.id).unwrap();
        let after = exported(&s, &d.path().join("after"));
        assert!(
            !after.contains("Renamed") && !after.contains("L999"),
            "{after}"
        );
        assert!(before.contains("Renamed"));
        assert_eq!(after.lines().count(), 101);
    }

    /// The bytes of a source's bases and runs on disk.
    fn stored_bytes(s: &Store, source: &str) -> u64 {
        [b"g\0", b"d\0"]
            .iter()
            .flat_map(|p| {
                s.tree
                    .scan_prefix([&p[..], source.as_bytes(), b"\0"].concat())
            })
            .map(|kv| kv.unwrap().1.len() as u64)
            .sum()
    }

    #[test]
    fn nightly_changes_are_written_as_runs_compacted_in_time_and_read_back_exactly() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        // 5,000 records: 512 logical pages, two segments.
        let mut rows: Vec<(String, String)> = (0..5000)
            .map(|i| {
                (
                    format!("L{i:05}"),
                    format!("School number {i} of the district"),
                )
            })
            .collect();
        let csv = |rows: &[(String, String)]| {
            let mut sorted = rows.to_vec();
            sorted.sort();
            let mut out = "location_id,location_name\n".to_string();
            for (a, b) in sorted {
                out.push_str(&format!("{a},{b}\n"));
            }
            out
        };
        let commit = |rows: &[(String, String)], night: usize| {
            let r: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let c = s
                .commit(
                    &locations(&r),
                    &incoming(&s, &format!("h{night}")),
                    Guard::default(),
                )
                .unwrap();
            assert_eq!(c.batch.state, BatchState::Applied, "{:?}", c.batch.reason);
            c.batch
        };
        let first = commit(&rows, 0);
        assert_eq!(s.tree.scan_prefix(b"g\0north\0locations\0").count(), 2);
        assert_eq!(s.tree.scan_prefix(b"d\0").count(), 0);
        assert_eq!(first.bytes_written, stored_bytes(&s, "north"));
        let mut max_runs = 0;
        let mut written = 0.0;
        let mut compacted = false;
        let mut previous = String::new();
        let mut last = first;
        for night in 1..=40usize {
            let before = csv(&rows);
            // 1% of the records change, one is removed and one added.
            for i in 0..50 {
                let at = (night * 97 + i * 101) % rows.len();
                rows[at].1 = format!("Renamed {night}-{i}");
            }
            rows.remove((night * 13) % rows.len());
            rows.push((format!("N{night:03}"), format!("New school {night}")));
            let b = commit(&rows, night);
            let (adds, updates, deletes) = b.totals();
            assert!(
                adds == 1 && deletes == 1 && (45..=50).contains(&updates),
                "night {night}: {:?}",
                b.totals()
            );
            // Every batch writes a fraction of what is stored, and the state's count of the
            // bytes stored is what is on disk.
            assert!(b.bytes_written < b.bytes_stored, "night {night}: {b:?}");
            written += b.bytes_written as f64 / b.bytes_stored as f64;
            assert_eq!(b.bytes_stored, stored_bytes(&s, "north"), "night {night}");
            let runs = s.tree.scan_prefix(b"d\0").count();
            compacted |= runs < max_runs;
            max_runs = max_runs.max(runs);
            assert_eq!(
                exported(&s, &d.path().join(format!("e{night}"))),
                csv(&rows)
            );
            previous = before;
            last = b;
        }
        // A table of two segments: each night's run is some 10% of a segment, compacted
        // when its runs pass a quarter.
        assert!(
            written / 40.0 < 0.5,
            "written / stored per night: {}",
            written / 40.0
        );
        assert!(
            max_runs > 2,
            "nightly batches were written as runs ({max_runs})"
        );
        assert!(compacted, "runs were compacted into their bases");
        // Runs never outgrow their base.
        for seg in 0..2u32 {
            let base = s
                .tree
                .get([&b"g\0north\0locations\0"[..], &seg.to_be_bytes()].concat())
                .unwrap()
                .map_or(0, |v| v.len());
            let runs: usize = s
                .tree
                .scan_prefix([&b"d\0north\0locations\0"[..], &seg.to_be_bytes()].concat())
                .map(|kv| kv.unwrap().1.len())
                .sum();
            assert!(runs <= base, "segment {seg}: runs {runs} > base {base}");
        }
        // Rolled back: the roster of the night before, from bases and runs alike.
        s.rollback(last.id).unwrap();
        assert_eq!(exported(&s, &d.path().join("rb")), previous);
        assert_eq!(
            s.state("north").unwrap().stored_bytes,
            stored_bytes(&s, "north")
        );
        // Opened again, the same.
        drop(s);
        let s = Store::open(&d.path().join("db")).unwrap();
        assert_eq!(exported(&s, &d.path().join("reopened")), previous);
        assert_eq!(s.count("north", "locations").unwrap(), 5000);
    }

    #[test]
    fn a_large_table_merged_on_two_threads_counts_and_stores_what_one_pass_would() {
        // Past PARALLEL_MERGE_ROWS: the merge runs in two halves of the buckets.
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let n = 120_000;
        let mut rows: Vec<(String, String)> = (0..n)
            .map(|i| (format!("L{i:06}"), format!("School {i}")))
            .collect();
        let commit = |rows: &[(String, String)], night: &str| {
            let r: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let c = s
                .commit(
                    &locations(&r),
                    &incoming(&s, night),
                    Guard {
                        max_delete_percent: 100.0,
                        min_rows: 0,
                    },
                )
                .unwrap();
            assert_eq!(c.batch.state, BatchState::Applied, "{:?}", c.batch.reason);
            c.batch
        };
        assert_eq!(commit(&rows, "h0").totals(), (n as u64, 0, 0));
        // Changes all over the key space, so in both halves: every 89th renamed, every 97th
        // gone, 1,000 new.
        for (i, r) in rows.iter_mut().enumerate() {
            if i % 89 == 0 {
                r.1 = format!("Renamed {i}");
            }
        }
        let renamed = (0..n).filter(|i| i % 89 == 0 && i % 97 != 0).count() as u64;
        let gone = (0..n).filter(|i| i % 97 == 0).count() as u64;
        let mut i = 0;
        rows.retain(|_| {
            i += 1;
            (i - 1) % 97 != 0
        });
        rows.extend((0..1000).map(|i| (format!("N{i:04}"), format!("New {i}"))));
        let b = commit(&rows, "h1");
        assert_eq!(b.totals(), (1000, renamed, gone));
        let mut want: Vec<String> = rows.iter().map(|(a, b)| format!("{a},{b}")).collect();
        want.sort();
        let got = exported(&s, d.path());
        let got: Vec<&str> = got.lines().skip(1).collect();
        assert_eq!(got, want);
        // The undo data restores the first batch exactly.
        s.rollback(b.id).unwrap();
        let got = exported(&s, d.path());
        assert_eq!(got.lines().count(), n + 1);
        assert!(got.contains("L000089,School 89\n") && got.contains("L000097,School 97\n"));
        assert!(!got.contains("N0000"));
    }

    #[test]
    fn a_page_encoded_from_rows_is_the_page_of_their_encoded_records() {
        let schema = Schema::for_format(Format::Apple);
        let def = schema.table("locations").unwrap();
        let rows: Vec<Vec<String>> = [
            ["L1", "North", "x", "", "b"],
            ["L2", "", "y", "a", "b"],
            ["L3", "L3", "", "a", ""],
            ["L4", "South", "z", "", ""],
        ]
        .iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect();
        let t = Table::from_rows(
            "locations.csv",
            // Two blank header cells: two columns of one name.
            &["location_id", "location_name", "extra", "", ""],
            &rows,
        );
        let w = crate::roster::engine::bind(def, t, Mode::Bulk).unwrap();
        let enc = RowEncoder::new(&w).unwrap();
        let mut scratch = PageScratch::default();
        for pick in [&[1usize, 2][..], &[0, 1, 2, 3], &[2], &[3, 0]] {
            let group: Vec<(u32, u32, &[u8])> = pick
                .iter()
                .map(|&r| (0, r as u32, w.id(r).as_bytes()))
                .collect();
            let recs: Vec<(&[u8], Vec<u8>)> = group
                .iter()
                .map(|&(_, r, k)| {
                    let mut buf = Vec::new();
                    enc.encode(&w, r as usize, &mut buf).unwrap();
                    (k, buf)
                })
                .collect();
            assert_eq!(
                enc.encode_page(&w, &group, &mut scratch),
                encode_page_raw(&recs).unwrap(),
                "{pick:?}"
            );
        }
    }

    #[test]
    fn a_read_beside_commits_sees_each_segment_as_one_batch_left_it() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        // 20,000 records in eight segments; batch k (from 1) renames every tenth record, those
        // with i % 10 == k % 10, to `v{k}`: runs build up and are compacted as batches go.
        let n = 20_000usize;
        let state = |k: usize| -> Vec<(String, String)> {
            (0..n)
                .map(|i| {
                    let last = (1..=k).rev().find(|j| j % 10 == i % 10).unwrap_or(0);
                    (format!("L{i:05}"), format!("v{last}"))
                })
                .collect()
        };
        let commit = |k: usize| {
            let rows = state(k);
            let r: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let c = s
                .commit(
                    &locations(&r),
                    &incoming(&s, &format!("h{k}")),
                    Guard::default(),
                )
                .unwrap();
            assert_eq!(c.batch.state, BatchState::Applied);
        };
        commit(0);
        let buckets = s.state("north").unwrap().buckets["locations"];
        let batches = 30;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for k in 1..=batches {
                    commit(k);
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                reads += 1;
                // Per segment: the batches whose roster it could be, narrowed by each record.
                let mut possible: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
                let recs = s.records("north", "locations").unwrap();
                assert_eq!(recs.len(), n);
                for (k, v) in recs {
                    let seg = bucket_of(&k, buckets) >> 8;
                    let name = decode_row(&v).unwrap()[1].1.clone();
                    let j: usize = name[1..].parse().unwrap();
                    // Record i reads v{j} in the rosters of batches j..j+10 (j = 0: 0..10).
                    let (lo, hi) = possible.entry(seg).or_insert((0, usize::MAX));
                    *lo = (*lo).max(j);
                    *hi = (*hi).min(j + 10);
                    assert!(lo < hi, "segment {seg} mixes batches (read {reads})");
                }
            }
        });
    }

    #[test]
    fn a_stored_person_is_named_by_its_key_not_by_its_untrimmed_id_field() {
        // With normalisation off an id keeps its spaces in its field; the record's key is the
        // trimmed id, and that is what the engine compares an uploaded row's id with.
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let schema = Schema::for_format(Format::Apple);
        let def = schema.table("students").unwrap();
        let header = [
            "person_id",
            "first_name",
            "last_name",
            "email_address",
            "location_id",
        ];
        let rows = vec![[" S1 ", "Ana", "Abbott", "ana@example.org", "L1"]
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()];
        let t = Table::from_rows("students.csv", &header, &rows);
        let mut o = locations(&[("L1", "North")]);
        o.tables
            .push(crate::roster::engine::bind(def, t, Mode::Bulk).unwrap());
        let c = s.commit(&o, &incoming(&s, "h1"), Guard::default()).unwrap();
        assert_eq!(c.batch.state, BatchState::Applied, "{:?}", c.batch.reason);
        let key = crate::roster::engine::person_key("Ana", "Abbott", "ana@example.org").unwrap();
        let view = s.view("north").unwrap();
        assert_eq!(view.person_key_of("students", "S1"), Some(key.clone()));
        assert_eq!(view.person_key_of("students", "S2"), None);
        let found = view.person_with_key(&key).unwrap();
        assert_eq!((found.table, found.id), ("students", "S1"));
        // Asked about no table (every person file uploaded whole), it reads none.
        let view = s.view("north").unwrap();
        view.persons_asked(&[]);
        view.load_persons();
        assert_eq!(view.person_with_key(&key), None);
        // A check that ends without saying leaves no loader waiting.
        let view = s.view("north").unwrap();
        std::thread::scope(|sc| {
            let loader = sc.spawn(|| view.load_persons());
            drop(view.checking());
            loader.join().unwrap();
        });
    }

    #[test]
    fn no_length_is_truncated_when_encoding() {
        let k = vec![b'k'; MAX_KEY_BYTES + 1];
        assert!(matches!(
            encode_page(&[(&k[..], &b""[..])]),
            Err(StoreError::Oversized(_))
        ));
        assert!(matches!(
            put_field(&mut Vec::new(), &"n".repeat(MAX_NAME_BYTES + 1), "v"),
            Err(StoreError::Oversized(_))
        ));
        // The longest that fits round-trips.
        let k = vec![b'k'; MAX_KEY_BYTES];
        let mut rec = Vec::new();
        put_field(&mut rec, &"n".repeat(MAX_NAME_BYTES), "v").unwrap();
        let page = encode_page(&[(k.clone(), rec.clone())]).unwrap();
        let raw = unpack(&page).unwrap();
        assert_eq!(decode_page(&raw).unwrap(), vec![(k.clone(), rec.clone())]);
        assert_eq!(row_fields(&rec).unwrap()[0].0.len(), MAX_NAME_BYTES);
    }

    #[test]
    fn pages_that_do_not_decode_are_never_committed() {
        let key = k_page("north", "locations", 0);
        let good = encode_page(&[(b"L1".to_vec(), {
            let mut r = Vec::new();
            put_field(&mut r, "location_name", "North").unwrap();
            r
        })])
        .unwrap();
        assert!(verify_pages(&[(key.clone(), Some(good))]).is_ok());
        // Not compressed at all; a record whose field length runs past its end; trailing
        // bytes after the last record; keys out of order; a name index past the names.
        let mut bad_rec = Vec::new();
        bad_rec.extend_from_slice(&5u16.to_le_bytes());
        bad_rec.extend_from_slice(b"ab");
        assert!(matches!(
            encode_page(&[(b"L1".to_vec(), bad_rec)]),
            Err(StoreError::Unverified(_))
        ));
        let mut trailing = encode_page_raw(&[(b"L1".to_vec(), Vec::new())]).unwrap();
        trailing.push(0);
        let unsorted = encode_page(&[(b"L2".to_vec(), vec![]), (b"L1".to_vec(), vec![])]).unwrap();
        // names 0, records 1, key "L1", 1 field: name 0 (there is none), value "x"
        let no_name = pack(b"\x00\x01\x02L1\x01\x00\x01x");
        for v in [b"garbage".to_vec(), pack(&trailing), unsorted, no_name] {
            assert!(matches!(
                verify_pages(&[(key.clone(), Some(v))]),
                Err(StoreError::Unverified(_))
            ));
        }
        // Removals and non-record keys are not pages.
        assert!(verify_pages(&[(key, None), (k_batch(1), Some(b"{}".to_vec()))]).is_ok());
    }
}
