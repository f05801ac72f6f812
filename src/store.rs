//! The roster store: accepted rosters per source in sled, with a history of every batch,
//! undo data for rollback, held batches awaiting approval, and export.
//!
//! Everything lives in one sled tree under prefixed keys (layout in `docs/ARCHITECTURE.md`),
//! so that one batch (its record changes, its history entry, its undo data and the source's
//! state) is one `apply_batch`, which sled applies atomically: after a crash the store holds the
//! roster either before or after the batch, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::{External, Mode, Outcome, Work};
use crate::schema::{Format, Schema};

/// Version of the key and value encodings below; a later release migrates older stores.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
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
}

type Result<T> = std::result::Result<T, StoreError>;

/// Batch states (**contract**, DESIGN.md "Batches").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchState {
    Received,
    Processing,
    Applied,
    /// Same content as the last applied batch, or no difference: nothing written.
    Unchanged,
    Held,
    Rejected,
    Failed,
    Discarded,
    RolledBack,
}

impl BatchState {
    pub fn label(self) -> &'static str {
        match self {
            BatchState::Received => "received",
            BatchState::Processing => "processing",
            BatchState::Applied => "applied",
            BatchState::Unchanged => "unchanged",
            BatchState::Held => "held",
            BatchState::Rejected => "rejected",
            BatchState::Failed => "failed",
            BatchState::Discarded => "discarded",
            BatchState::RolledBack => "rolled-back",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounts {
    pub read: u64,
    pub adds: u64,
    pub updates: u64,
    pub deletes: u64,
    /// Delta rows older than the stored record, skipped.
    pub stale: u64,
    /// Records stored before this batch.
    pub before: u64,
}

/// One batch's history entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub id: u64,
    pub source: String,
    pub account: String,
    pub content_hash: String,
    pub format: String,
    pub mode: String,
    pub state: BatchState,
    pub received_at: u64,
    pub duration_ms: u64,
    pub tables: BTreeMap<String, TableCounts>,
    pub patches: BTreeMap<String, u64>,
    pub report_dir: Option<String>,
    /// Why the batch was held, rejected or failed.
    pub reason: Option<String>,
    /// The source's last applied batch when this one was computed.
    pub base: Option<u64>,
    pub rollback_of: Option<u64>,
}

impl Batch {
    pub fn totals(&self) -> (u64, u64, u64) {
        self.tables.values().fold((0, 0, 0), |(a, u, d), t| {
            (a + t.adds, u + t.updates, d + t.deletes)
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SourceState {
    last_applied: Option<u64>,
    last_hash: Option<String>,
    format: Option<String>,
}

/// The mass-deletion guard of a source.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    pub max_delete_percent: f64,
    pub min_rows: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_delete_percent: 10.0,
            min_rows: 50,
        }
    }
}

/// Who sent a batch and what it was.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// From [`Store::reserve_id`].
    pub id: u64,
    pub source: String,
    pub account: String,
    pub content_hash: String,
    pub received_at: u64,
    pub report_dir: Option<String>,
}

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---- keys -------------------------------------------------------------------------------

fn k_state(source: &str) -> Vec<u8> {
    [b"s\0", source.as_bytes()].concat()
}
fn k_records(source: &str, table: &str) -> Vec<u8> {
    [b"r\0", source.as_bytes(), b"\0", table.as_bytes(), b"\0"].concat()
}
fn k_batch(id: u64) -> Vec<u8> {
    [&b"b\0"[..], &id.to_be_bytes()].concat()
}
fn k_undo(id: u64) -> Vec<u8> {
    [&b"u\0"[..], &id.to_be_bytes()].concat()
}
fn k_pending(id: u64) -> Vec<u8> {
    [&b"p\0"[..], &id.to_be_bytes()].concat()
}
const K_VERSION: &[u8] = b"m\0version";
const K_NEXT_ID: &[u8] = b"m\0next-batch";

// ---- values -----------------------------------------------------------------------------

/// Encodes a row as its non-empty (column, value) pairs sorted by column name, so that the
/// same data in another column order, separator or line ending encodes identically. OneRoster
/// `status` is an instruction, not data, and is left out.
pub fn encode_row(w: &Work, row: usize, buf: &mut Vec<u8>) {
    buf.clear();
    let mut pairs: Vec<(std::borrow::Cow<'_, str>, &str)> = (0..w.table.ncols())
        .map(|c| (w.column_name(c), w.value(row, c)))
        .filter(|(n, v)| !v.is_empty() && n != "status")
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    for (n, v) in pairs {
        buf.extend_from_slice(&(n.len() as u16).to_le_bytes());
        buf.extend_from_slice(n.as_bytes());
        buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        buf.extend_from_slice(v.as_bytes());
    }
}

pub fn decode_row(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let nl = u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as usize;
        i += 2;
        let name = std::str::from_utf8(bytes.get(i..i + nl)?).ok()?;
        i += nl;
        let vl = u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as usize;
        i += 4;
        let value = std::str::from_utf8(bytes.get(i..i + vl)?).ok()?;
        i += vl;
        out.push((name.to_string(), value.to_string()));
    }
    Some(out)
}

/// A list of (key, value or deletion), deflated: undo data and held change sets.
type ChangeSet = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn encode_changes(c: &ChangeSet) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&(c.len() as u64).to_le_bytes())?;
    for (k, v) in c {
        e.write_all(&(k.len() as u32).to_le_bytes())?;
        e.write_all(k)?;
        match v {
            Some(v) => {
                e.write_all(&[1])?;
                e.write_all(&(v.len() as u32).to_le_bytes())?;
                e.write_all(v)?;
            }
            None => e.write_all(&[0])?,
        }
    }
    e.finish()
}

fn decode_changes(bytes: &[u8]) -> Option<ChangeSet> {
    let mut raw = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_end(&mut raw)
        .ok()?;
    let mut i = 0;
    let take = |i: &mut usize, n: usize| -> Option<&[u8]> {
        let s = raw.get(*i..*i + n)?;
        *i += n;
        Some(s)
    };
    let n = u64::from_le_bytes(take(&mut i, 8)?.try_into().ok()?);
    let mut out = Vec::with_capacity(n.min(1 << 24) as usize);
    for _ in 0..n {
        let kl = u32::from_le_bytes(take(&mut i, 4)?.try_into().ok()?) as usize;
        let k = take(&mut i, kl)?.to_vec();
        let v = match take(&mut i, 1)?[0] {
            1 => {
                let vl = u32::from_le_bytes(take(&mut i, 4)?.try_into().ok()?) as usize;
                Some(take(&mut i, vl)?.to_vec())
            }
            _ => None,
        };
        out.push((k, v));
    }
    Some(out)
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
        let db = sled::Config::new().path(dir).open()?;
        let tree = db.open_tree("roster")?;
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
            }
        }
        Ok(Store { db, tree })
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
        Ok(self.tree.scan_prefix(k_records(source, table)).count() as u64)
    }

    /// A new batch id (unique, increasing, kept across restarts).
    pub fn reserve_id(&self) -> Result<u64> {
        self.new_id()
    }

    fn new_id(&self) -> Result<u64> {
        let next = self.tree.update_and_fetch(K_NEXT_ID, |old| {
            let n = old
                .and_then(|o| o.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        self.db.flush()?;
        next.as_deref()
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt(K_NEXT_ID, "not a counter"))
    }

    /// What the engine may ask the store while checking a batch of `source`.
    pub fn view<'a>(&'a self, source: &'a str) -> Result<StoreView<'a>> {
        let mut persons = HashMap::new();
        let format = match self.state(source)?.format.as_deref() {
            Some("apple") => Some(Format::Apple),
            Some("oneroster-1.1") => Some(Format::OneRoster11),
            Some("oneroster-1.2") => Some(Format::OneRoster12),
            _ => None,
        };
        let schema = format.map(Schema::for_format);
        let tables = schema.as_ref().map_or(&[][..], |s| &s.tables[..]);
        for t in tables.iter().filter(|t| t.person.is_some()) {
            let Some(p) = t.person else { continue };
            for kv in self.tree.scan_prefix(k_records(source, t.name)) {
                let (k, v) = kv?;
                let Some(pairs) = decode_row(&v) else {
                    return Err(corrupt(&k, "undecodable record"));
                };
                let get = |n: &str| {
                    pairs
                        .iter()
                        .find(|(c, _)| c == n)
                        .map_or("", |(_, v)| v.as_str())
                };
                let prefix_len = k_records(source, t.name).len();
                let id = String::from_utf8_lossy(&k[prefix_len..]).into_owned();
                if let Some(key) =
                    crate::engine::person_key(get(p.first), get(p.last), get(p.email))
                {
                    persons.entry(key).or_insert(id);
                }
            }
        }
        Ok(StoreView {
            store: self,
            source,
            persons,
        })
    }

    /// Records a batch that changes nothing in the roster (rejected, failed, ...).
    pub fn record(&self, b: &Batch) -> Result<()> {
        let v = serde_json::to_vec(b).map_err(|e| StoreError::Refused(e.to_string()))?;
        self.tree.insert(k_batch(b.id), v)?;
        self.db.flush()?;
        Ok(())
    }

    /// Commits a checked bundle: diff (bulk) or apply (delta), guard, one atomic write.
    pub fn commit(&self, outcome: &Outcome, inc: &Incoming, guard: Guard) -> Result<Batch> {
        let started = std::time::Instant::now();
        let state = self.state(&inc.source)?;
        let mut batch = Batch {
            id: inc.id,
            source: inc.source.clone(),
            account: inc.account.clone(),
            content_hash: inc.content_hash.clone(),
            format: outcome.format.map_or("unknown", |f| f.label()).to_string(),
            mode: mode_label(outcome),
            state: BatchState::Processing,
            received_at: inc.received_at,
            duration_ms: 0,
            tables: BTreeMap::new(),
            patches: BTreeMap::new(),
            report_dir: inc.report_dir.clone(),
            reason: None,
            base: state.last_applied,
            rollback_of: None,
        };
        for f in &outcome.findings {
            *batch.patches.entry(f.rule.code().to_string()).or_default() += 1;
        }
        let span = tracing::info_span!("batch", id = batch.id, source = %inc.source);
        let _g = span.enter();
        if !outcome.accepted() {
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
            self.finish(&mut batch, started)?;
            return Ok(batch);
        }
        if let (Some(prev), Some(fmt)) = (&state.format, outcome.format) {
            if prev != fmt.label() && !(prev.starts_with("oneroster") && fmt.is_oneroster()) {
                batch.state = BatchState::Rejected;
                batch.reason = Some(format!(
                    "source holds a {prev} roster; this bundle is {}",
                    fmt.label()
                ));
                self.finish(&mut batch, started)?;
                return Ok(batch);
            }
        }
        if state.last_hash.as_deref() == Some(inc.content_hash.as_str()) {
            batch.state = BatchState::Unchanged;
            batch.reason = Some("same content as the last applied batch".into());
            self.finish(&mut batch, started)?;
            return Ok(batch);
        }
        let mut changes: ChangeSet = Vec::new();
        for w in &outcome.tables {
            let counts = self.diff_table(&inc.source, w, &mut changes)?;
            batch.tables.insert(w.def.name.to_string(), counts);
        }
        if changes.is_empty() {
            batch.state = BatchState::Unchanged;
            batch.reason = Some("no record differs from the stored roster".into());
            let mut st = state;
            st.last_hash = Some(inc.content_hash.clone());
            self.write(&batch, &[], None, Some(&st), started)?;
            return Ok(batch);
        }
        // The mass-deletion guard.
        let mut over = Vec::new();
        for (t, c) in &batch.tables {
            if c.before >= guard.min_rows
                && (c.deletes as f64) * 100.0 > guard.max_delete_percent * c.before as f64
            {
                over.push(format!(
                    "{t}: {} of {} records would be deleted ({:.1}% > {}%)",
                    c.deletes,
                    c.before,
                    c.deletes as f64 * 100.0 / c.before as f64,
                    guard.max_delete_percent
                ));
            }
        }
        if !over.is_empty() {
            batch.state = BatchState::Held;
            batch.reason = Some(format!(
                "held for approval: {} (rosterdrop approve {} / discard {})",
                over.join("; "),
                batch.id,
                batch.id
            ));
            let pending = encode_changes(&changes)?;
            batch.duration_ms = started.elapsed().as_millis() as u64;
            let mut b = sled::Batch::default();
            b.insert(k_pending(batch.id), pending);
            b.insert(k_batch(batch.id), json(&batch)?);
            self.tree.apply_batch(b)?;
            self.db.flush()?;
            tracing::warn!(batch = batch.id, "batch held by the mass-deletion guard");
            return Ok(batch);
        }
        let mut st = state;
        st.last_hash = Some(inc.content_hash.clone());
        st.format = outcome.format.map(|f| f.label().to_string());
        batch.state = BatchState::Applied;
        self.write(&batch, &changes, None, Some(&st), started)?;
        Ok(batch)
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
        let mut b = sled::Batch::default();
        if !changes.is_empty() {
            let mut undo: ChangeSet = Vec::with_capacity(changes.len());
            for (k, v) in changes {
                undo.push((k.clone(), self.tree.get(k)?.map(|x| x.to_vec())));
                match v {
                    Some(v) => b.insert(k.as_slice(), v.as_slice()),
                    None => b.remove(k.as_slice()),
                }
            }
            b.insert(k_undo(batch.id), encode_changes(&undo)?);
        }
        if let Some((k, v)) = extra {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        let mut batch = batch.clone();
        batch.duration_ms = started.elapsed().as_millis() as u64;
        b.insert(k_batch(batch.id), json(&batch)?);
        if let Some(st) = state {
            let mut st = st.clone();
            if batch.state == BatchState::Applied {
                st.last_applied = Some(batch.id);
            }
            b.insert(k_state(&batch.source), json(&st)?);
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
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

    /// Adds the changes one uploaded table makes to the stored roster.
    fn diff_table(&self, source: &str, w: &Work, changes: &mut ChangeSet) -> Result<TableCounts> {
        let prefix = k_records(source, w.def.name);
        let mut counts = TableCounts {
            read: w.table.len() as u64,
            ..TableCounts::default()
        };
        let key = |id: &str| [prefix.as_slice(), id.as_bytes()].concat();
        let mut buf = Vec::new();
        if w.mode == Mode::Delta {
            counts.before = self.tree.scan_prefix(&prefix).count() as u64;
            let dlm = w.col("dateLastModified");
            for row in (0..w.table.len()).filter(|&r| w.is_kept(r)) {
                let k = key(w.id(row));
                let stored = self.tree.get(&k)?;
                if let (Some(old), Some(c)) = (&stored, dlm) {
                    let incoming = w.value(row, c);
                    let old_dlm = decode_row(old)
                        .and_then(|p| p.into_iter().find(|(n, _)| n == "dateLastModified"))
                        .map(|(_, v)| v)
                        .unwrap_or_default();
                    if !incoming.is_empty() && !old_dlm.is_empty() && incoming < old_dlm.as_str() {
                        counts.stale += 1;
                        continue;
                    }
                }
                if w.is_deletion(row) {
                    if stored.is_some() {
                        counts.deletes += 1;
                        changes.push((k, None));
                    }
                    continue;
                }
                encode_row(w, row, &mut buf);
                match stored {
                    Some(old) if old.as_ref() == buf.as_slice() => {}
                    Some(_) => {
                        counts.updates += 1;
                        changes.push((k, Some(buf.clone())));
                    }
                    None => {
                        counts.adds += 1;
                        changes.push((k, Some(buf.clone())));
                    }
                }
            }
            return Ok(counts);
        }
        // Bulk: merge-join the kept rows, sorted by id, with the stored records (sled keeps
        // keys sorted, and the id is the key's suffix).
        let mut rows: Vec<u32> = (0..w.table.len())
            .filter(|&r| w.is_kept(r) && !w.is_deletion(r))
            .map(|r| r as u32)
            .collect();
        rows.sort_unstable_by(|&a, &b| {
            w.id(a as usize).as_bytes().cmp(w.id(b as usize).as_bytes())
        });
        let mut stored = self.tree.scan_prefix(&prefix);
        let mut cur = stored.next().transpose()?;
        let mut i = 0;
        loop {
            let incoming = rows
                .get(i)
                .map(|&r| (r as usize, w.id(r as usize).as_bytes()));
            match (&cur, incoming) {
                (None, None) => break,
                (Some((k, _)), None) => {
                    counts.before += 1;
                    counts.deletes += 1;
                    changes.push((k.to_vec(), None));
                    cur = stored.next().transpose()?;
                }
                (Some((k, v)), Some((row, id))) => {
                    let sid = &k[prefix.len()..];
                    match sid.cmp(id) {
                        std::cmp::Ordering::Less => {
                            counts.before += 1;
                            counts.deletes += 1;
                            changes.push((k.to_vec(), None));
                            cur = stored.next().transpose()?;
                        }
                        std::cmp::Ordering::Equal => {
                            counts.before += 1;
                            encode_row(w, row, &mut buf);
                            if v.as_ref() != buf.as_slice() {
                                counts.updates += 1;
                                changes.push((k.to_vec(), Some(buf.clone())));
                            }
                            cur = stored.next().transpose()?;
                            i += 1;
                        }
                        std::cmp::Ordering::Greater => {
                            encode_row(w, row, &mut buf);
                            counts.adds += 1;
                            changes.push((key(w.id(row)), Some(buf.clone())));
                            i += 1;
                        }
                    }
                }
                (None, Some((row, _))) => {
                    encode_row(w, row, &mut buf);
                    counts.adds += 1;
                    changes.push((key(w.id(row)), Some(buf.clone())));
                    i += 1;
                }
            }
        }
        Ok(counts)
    }

    /// Applies a held batch, if nothing was applied to its source since it was computed.
    pub fn approve(&self, id: u64) -> Result<Batch> {
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
                "batch {id} was computed against batch {:?} but {:?} has been applied since; \
                 discard it and let the vendor upload again",
                batch.base, st.last_applied
            )));
        }
        let pk = k_pending(id);
        let blob = self.tree.get(&pk)?.ok_or_else(|| corrupt(&pk, "missing"))?;
        let changes = decode_changes(&blob).ok_or_else(|| corrupt(&pk, "undecodable"))?;
        batch.state = BatchState::Applied;
        batch.reason = Some(format!(
            "approved; {}",
            batch.reason.clone().unwrap_or_default()
        ));
        st.last_hash = Some(batch.content_hash.clone());
        st.format = Some(batch.format.clone());
        self.write(&batch, &changes, Some((&pk, None)), Some(&st), started)
    }

    /// Drops a held batch.
    pub fn discard(&self, id: u64) -> Result<Batch> {
        let mut batch = self.batch(id)?;
        if batch.state != BatchState::Held {
            return Err(StoreError::Refused(format!(
                "batch {id} is {}, not held",
                batch.state.label()
            )));
        }
        batch.state = BatchState::Discarded;
        let mut b = sled::Batch::default();
        b.remove(k_pending(id));
        b.insert(k_batch(id), json(&batch)?);
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        Ok(batch)
    }

    /// Restores the roster as it was before batch `id`, which must be its source's last
    /// applied batch; the rollback is recorded as a batch of its own.
    pub fn rollback(&self, id: u64) -> Result<Batch> {
        let started = std::time::Instant::now();
        let mut orig = self.batch(id)?;
        let st = self.state(&orig.source)?;
        if orig.state != BatchState::Applied || st.last_applied != Some(id) {
            return Err(StoreError::Refused(format!(
                "batch {id} is not the last applied batch of source `{}` (that is {:?})",
                orig.source, st.last_applied
            )));
        }
        let uk = k_undo(id);
        let undo = match self.tree.get(&uk)? {
            Some(blob) => decode_changes(&blob).ok_or_else(|| corrupt(&uk, "undecodable"))?,
            None => Vec::new(),
        };
        orig.state = BatchState::RolledBack;
        let mut rb = orig.clone();
        rb.id = self.new_id()?;
        rb.state = BatchState::Applied;
        rb.rollback_of = Some(id);
        rb.received_at = now();
        rb.reason = Some(format!("rollback of batch {id}"));
        rb.base = st.last_applied;
        rb.content_hash.clear();
        rb.patches.clear();
        for t in rb.tables.values_mut() {
            t.before = t.before + t.adds - t.deletes.min(t.before + t.adds);
            (t.adds, t.deletes) = (t.deletes, t.adds);
            t.read = 0;
            t.stale = 0;
        }
        let mut st = st;
        // The next upload is applied even if it equals the rolled-back content.
        st.last_hash = None;
        let orig_json = json(&orig)?;
        self.write(
            &rb,
            &undo,
            Some((&k_batch(id), Some(orig_json))),
            Some(&st),
            started,
        )
    }

    /// Writes the source's current roster as a bundle in its own format.
    pub fn export(&self, source: &str, dir: &Path) -> Result<Format> {
        let st = self.state(source)?;
        let format = match st.format.as_deref() {
            Some("apple") => Format::Apple,
            Some("oneroster-1.1") => Format::OneRoster11,
            Some("oneroster-1.2") => Format::OneRoster12,
            _ => {
                return Err(StoreError::Refused(format!(
                    "source `{source}` has no roster yet"
                )))
            }
        };
        std::fs::create_dir_all(dir)?;
        let schema = Schema::for_format(format);
        let mut manifest = String::from("propertyName,value\nmanifest.version,1.0\n");
        if format.is_oneroster() {
            manifest.push_str(&format!(
                "oneroster.version,{}\n",
                if format == Format::OneRoster11 {
                    "1.1"
                } else {
                    "1.2"
                }
            ));
        }
        let dialect = crate::csvio::Dialect {
            backslash_escapes: format == Format::Apple,
            ..Default::default()
        };
        for t in &schema.tables {
            let prefix = k_records(source, t.name);
            let mut rows: Vec<Vec<(String, String)>> = Vec::new();
            for kv in self.tree.scan_prefix(&prefix) {
                let (k, v) = kv?;
                rows.push(decode_row(&v).ok_or_else(|| corrupt(&k, "undecodable record"))?);
            }
            if format.is_oneroster() {
                let mode = if rows.is_empty() { "absent" } else { "bulk" };
                manifest.push_str(&format!("file.{},{mode}\n", t.name));
                if rows.is_empty() {
                    continue;
                }
            }
            // Header: the schema's columns, then numbered and extra columns seen in the data.
            let mut header: Vec<String> = t.columns.iter().map(|c| c.name.to_string()).collect();
            let mut extra: Vec<String> = rows
                .iter()
                .flat_map(|r| r.iter().map(|(n, _)| n.clone()))
                .filter(|n| !header.contains(n))
                .collect();
            extra.sort();
            extra.dedup();
            header.extend(extra);
            let f = std::fs::File::create(dir.join(format!("{}.csv", t.name)))?;
            let mut w = crate::csvio::CsvWriter::new(std::io::BufWriter::new(f), dialect)?;
            w.write_row(header.iter().map(String::as_str))?;
            for r in &rows {
                w.write_row(header.iter().map(|h| {
                    r.iter()
                        .find(|(n, _)| n == h)
                        .map_or("", |(_, v)| v.as_str())
                }))?;
            }
            w.into_inner().flush()?;
        }
        if format.is_oneroster() {
            std::fs::write(dir.join("manifest.csv"), manifest)?;
        }
        Ok(format)
    }
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Refused(e.to_string()))
}

fn mode_label(o: &Outcome) -> String {
    let bulk = o.tables.iter().any(|w| w.mode == Mode::Bulk);
    let delta = o.tables.iter().any(|w| w.mode == Mode::Delta);
    match (bulk, delta) {
        (true, true) => "mixed",
        (false, true) => "delta",
        _ => "bulk",
    }
    .to_string()
}

/// The store as the engine sees it while checking one source's batch.
pub struct StoreView<'a> {
    store: &'a Store,
    source: &'a str,
    persons: HashMap<String, String>,
}

impl External for StoreView<'_> {
    fn has_id(&self, table: &str, id: &str) -> Option<bool> {
        let k = [k_records(self.source, table).as_slice(), id.as_bytes()].concat();
        self.store.tree.contains_key(k).ok()
    }
    fn person_with_key(&self, key: &str) -> Option<String> {
        self.persons.get(key).cloned()
    }
}

/// The content hash of a bundle: SHA-256 over its files' names and bytes, in name order.
pub fn content_hash(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            h.update(
                f.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            h.update([0]);
            let mut r = std::io::BufReader::new(std::fs::File::open(&f)?);
            std::io::copy(&mut r, &mut h)?;
        }
    } else {
        let mut r = std::io::BufReader::new(std::fs::File::open(path)?);
        std::io::copy(&mut r, &mut h)?;
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
