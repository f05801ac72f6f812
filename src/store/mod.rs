//! The roster store: accepted rosters per source in sled, with a history of every batch,
//! undo data for rollback, held batches awaiting approval, and export.
//!
//! Everything lives in one sled tree under prefixed keys (layout in `docs/ARCHITECTURE.md`),
//! so that one batch (its record changes, its history entry, its undo data and the source's
//! state) is one `apply_batch`, which sled applies atomically: after a crash the store holds the
//! roster either before or after the batch, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::roster::bundle::Mode;
use crate::roster::engine::{External, Outcome, Verdict, Work};
use crate::roster::findings::{Action, Finding};
use crate::roster::schema::{ForeignKey, Format, OnMissing, Schema};
use crate::roster::values::list_items;

/// Version of the key and value encodings below; a later release migrates older stores.
pub const FORMAT_VERSION: u32 = 1;

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
    /// A page this batch would write does not decode: refused before anything is written.
    #[error("store: batch would write an undecodable page `{0}`; nothing was applied")]
    Unverified(String),
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
    /// Record pages this batch wrote or removed (the store's unit of writing).
    #[serde(default)]
    pub pages_written: u64,
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
    /// Page counts per table before and after the batch (store layout).
    #[serde(default)]
    pub buckets_before: BTreeMap<String, u32>,
    #[serde(default)]
    pub buckets_after: BTreeMap<String, u32>,
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
    /// Number of record pages (a power of two) of each table.
    #[serde(default)]
    buckets: BTreeMap<String, u32>,
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
    /// Serialises the read-compute-write of commits, approvals, discards and rollbacks within
    /// this process (the daemon runs admin commands beside its workers); other processes are
    /// kept out by sled's lock on the directory.
    writer: std::sync::Mutex<()>,
    /// Held for as long as the store is open: other processes get [`StoreError::Locked`].
    _lock: std::fs::File,
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
fn k_page(source: &str, table: &str, bucket: u32) -> Vec<u8> {
    [k_records(source, table).as_slice(), &bucket.to_be_bytes()].concat()
}

/// Records per page that a table's bucket count aims at.
const PAGE_TARGET: usize = 256;

/// FNV-1a: a fixed hash, so that a record's page never depends on the process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn bucket_of(pk: &[u8], buckets: u32) -> u32 {
    (fnv1a(pk) & u64::from(buckets.max(1) - 1)) as u32
}

/// The bucket count for a table of `rows` records.
fn buckets_for(rows: usize) -> u32 {
    (rows.div_ceil(PAGE_TARGET).max(1).next_power_of_two()).min(1 << 24) as u32
}

/// A page: records sorted by primary key, as (key, encoded row).
type Page<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A stored page value: the encoded page, compressed.
fn encode_page<K: AsRef<[u8]>, V: AsRef<[u8]>>(recs: &[(K, V)]) -> Result<Vec<u8>> {
    Ok(deflate(&encode_page_raw(recs)?))
}

/// Longest record key (primary key) a page can hold: its length is written in two bytes.
pub const MAX_KEY_BYTES: usize = u16::MAX as usize;
/// Longest column name a record can hold: its length is written in two bytes.
pub const MAX_NAME_BYTES: usize = u16::MAX as usize;

/// Appends a two-byte length, refusing one that does not fit.
fn put_u16(out: &mut Vec<u8>, n: usize, what: impl FnOnce() -> String) -> Result<()> {
    let n = u16::try_from(n).map_err(|_| StoreError::Oversized(what()))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Appends a four-byte length, refusing one that does not fit.
fn put_u32(out: &mut Vec<u8>, n: usize, what: impl FnOnce() -> String) -> Result<()> {
    let n = u32::try_from(n).map_err(|_| StoreError::Oversized(what()))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Appends one page entry: a key and its encoded record.
fn put_entry(out: &mut Vec<u8>, k: &[u8], v: &[u8]) -> Result<()> {
    put_u16(out, k.len(), || {
        format!(
            "a record id of {} bytes is longer than the {MAX_KEY_BYTES} bytes the store can keep",
            k.len()
        )
    })?;
    out.extend_from_slice(k);
    put_u32(out, v.len(), || {
        format!("a record of {} bytes is too large to store", v.len())
    })?;
    out.extend_from_slice(v);
    Ok(())
}

/// Compresses a page with LZ4: pages are small and read on every diff, so speed wins.
fn deflate(raw: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(raw)
}

/// Decompresses a stored page value, refusing sizes beyond any real page.
fn inflate(v: &[u8]) -> Option<Vec<u8>> {
    let n = u32::from_le_bytes(v.get(0..4)?.try_into().ok()?) as usize;
    if n > 256 << 20 {
        return None;
    }
    lz4_flex::decompress_size_prepended(v).ok()
}

fn encode_page_raw<K: AsRef<[u8]>, V: AsRef<[u8]>>(recs: &[(K, V)]) -> Result<Vec<u8>> {
    let size: usize = recs
        .iter()
        .map(|(k, v)| 6 + k.as_ref().len() + v.as_ref().len())
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    put_u32(&mut out, recs.len(), || {
        "too many records in one page".into()
    })?;
    for (k, v) in recs {
        put_entry(&mut out, k.as_ref(), v.as_ref())?;
    }
    Ok(out)
}

fn decode_page(bytes: &[u8]) -> Option<Page<'_>> {
    let n = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    let mut i = 4;
    for _ in 0..n {
        let kl = u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as usize;
        let k = bytes.get(i + 2..i + 2 + kl)?;
        i += 2 + kl;
        let vl = u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as usize;
        let v = bytes.get(i + 4..i + 4 + vl)?;
        i += 4 + vl;
        out.push((k, v));
    }
    Some(out)
}

fn page_len(raw: &[u8]) -> u64 {
    raw.get(0..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
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

/// Encodes rows of one table as their non-empty (column, value) pairs sorted by column name,
/// so that the same data in another column order, separator or line ending encodes
/// identically. OneRoster `status` is an instruction, not data, and is left out. The column
/// order is worked out once per table.
pub struct RowEncoder {
    order: Vec<(usize, String)>,
}

impl RowEncoder {
    /// Refuses a table with a column name or a record id longer than the store can keep,
    /// naming the file and line.
    pub fn new(w: &Work) -> Result<RowEncoder> {
        let mut order: Vec<(usize, String)> = (0..w.table.ncols())
            .map(|c| (c, w.column_name(c).into_owned()))
            .filter(|(_, n)| n != "status")
            .collect();
        if let Some((c, n)) = order.iter().find(|(_, n)| n.len() > MAX_NAME_BYTES) {
            return Err(StoreError::Oversized(format!(
                "{}: the name of column {} is {} bytes, longer than the {MAX_NAME_BYTES} \
                 bytes the store can keep; nothing was applied",
                w.def.file_name(),
                c + 1,
                n.len()
            )));
        }
        if let Some(row) =
            (0..w.table.len()).find(|&r| w.is_kept(r) && w.id(r).len() > MAX_KEY_BYTES)
        {
            return Err(StoreError::Oversized(format!(
                "{} line {}: the record id is {} bytes, longer than the {MAX_KEY_BYTES} bytes \
                 the store can keep; nothing was applied",
                w.def.file_name(),
                w.table.line(row),
                w.id(row).len()
            )));
        }
        order.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(RowEncoder { order })
    }

    pub fn encode(&self, w: &Work, row: usize, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let mut small = [""; 32];
        let mut big = Vec::new();
        let vals: &mut [&str] = if w.table.ncols() <= small.len() {
            &mut small[..]
        } else {
            big.resize(w.table.ncols(), "");
            &mut big[..]
        };
        w.row_values(row, vals);
        for (c, n) in &self.order {
            let v = vals[*c];
            if v.is_empty() {
                continue;
            }
            put_field(buf, n, v)?;
        }
        Ok(())
    }
}

/// Appends one (column, value) pair of an encoded record.
fn put_field(buf: &mut Vec<u8>, name: &str, value: &str) -> Result<()> {
    put_u16(buf, name.len(), || {
        format!(
            "a column name of {} bytes is longer than the {MAX_NAME_BYTES} bytes the store can keep",
            name.len()
        )
    })?;
    buf.extend_from_slice(name.as_bytes());
    put_u32(buf, value.len(), || {
        format!("a value of {} bytes is too large to store", value.len())
    })?;
    buf.extend_from_slice(value.as_bytes());
    Ok(())
}

/// The (column, value) pairs of an encoded record, without copying; `None` when it does not
/// decode.
fn row_fields(bytes: &[u8]) -> Option<Vec<(&str, &str)>> {
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
        out.push((name, value));
    }
    Some(out)
}

pub fn decode_row(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    Some(
        row_fields(bytes)?
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

/// Checks that every record page a change set writes decodes, down to each record's
/// fields, so that no batch can leave a source unreadable.
fn verify_pages(changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
    for (k, v) in changes {
        let Some(v) = v else { continue };
        if !k.starts_with(b"r\0") {
            continue;
        }
        let bad = || StoreError::Unverified(String::from_utf8_lossy(k).replace('\0', "/"));
        let raw = inflate(v).ok_or_else(bad)?;
        let page = decode_page(&raw).ok_or_else(bad)?;
        let mut consumed = 4;
        for (key, rec) in &page {
            row_fields(rec).ok_or_else(bad)?;
            consumed += 6 + key.len() + rec.len();
        }
        if consumed != raw.len() || !page.windows(2).all(|p| p[0].0 < p[1].0) {
            return Err(bad());
        }
    }
    Ok(())
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

/// A batch record with nothing counted yet.
fn bare_batch(inc: &Incoming, st: &SourceState, state: BatchState) -> Batch {
    Batch {
        id: inc.id,
        source: inc.source.clone(),
        account: inc.account.clone(),
        content_hash: inc.content_hash.clone(),
        format: String::new(),
        mode: String::new(),
        state,
        received_at: inc.received_at,
        duration_ms: 0,
        tables: BTreeMap::new(),
        patches: BTreeMap::new(),
        report_dir: inc.report_dir.clone(),
        reason: None,
        base: st.last_applied,
        rollback_of: None,
        buckets_before: BTreeMap::new(),
        buckets_after: BTreeMap::new(),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        // sled caches up to 1 GiB by default; a roster store needs far less resident.
        // One process at a time: a lock of our own, taken before sled's, so that "in use" is
        // a typed answer (sled reports its own lock only as text).
        std::fs::create_dir_all(dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("rosterdrop.lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 << 20)
            .open()?;
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
        Ok(Store {
            db,
            tree,
            writer: std::sync::Mutex::new(()),
            _lock: lock,
        })
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
        for kv in self.tree.scan_prefix(k_records(source, table)) {
            let (k, v) = kv?;
            n += page_len(&inflate(&v).ok_or_else(|| corrupt(&k, "undecodable page"))?);
        }
        Ok(n)
    }

    /// Every record of a table, sorted by primary key.
    fn records(&self, source: &str, table: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = Vec::new();
        for kv in self.tree.scan_prefix(k_records(source, table)) {
            let (k, v) = kv?;
            let raw = inflate(&v).ok_or_else(|| corrupt(&k, "undecodable page"))?;
            let page = decode_page(&raw).ok_or_else(|| corrupt(&k, "undecodable page"))?;
            all.extend(page.into_iter().map(|(a, b)| (a.to_vec(), b.to_vec())));
        }
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
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
        let format = self
            .state(source)?
            .format
            .as_deref()
            .and_then(Format::from_label);
        let schema = format.map(Schema::for_format);
        let tables = schema.as_ref().map_or(&[][..], |s| &s.tables[..]);
        for t in tables.iter().filter(|t| t.person.is_some()) {
            let Some(p) = t.person else { continue };
            for (k, v) in self.records(source, t.name)? {
                let Some(pairs) = decode_row(&v) else {
                    return Err(corrupt(&k, "undecodable record"));
                };
                let get = |n: &str| {
                    pairs
                        .iter()
                        .find(|(c, _)| c == n)
                        .map_or("", |(_, v)| v.as_str())
                };
                let id = String::from_utf8_lossy(&k).into_owned();
                if let Some(key) =
                    crate::roster::engine::person_key(get(p.first), get(p.last), get(p.email))
                {
                    persons.entry(key).or_insert(id);
                }
            }
        }
        let buckets = self.state(source)?.buckets;
        Ok(StoreView {
            store: self,
            source,
            persons,
            buckets,
        })
    }

    /// The content hash of the source's last applied batch.
    pub fn last_hash(&self, source: &str) -> Result<Option<String>> {
        Ok(self.state(source)?.last_hash)
    }

    /// Records an upload identical to the last applied one, without checking it again.
    pub fn record_unchanged(&self, inc: &Incoming) -> Result<Batch> {
        let st = self.state(&inc.source)?;
        let mut b = bare_batch(inc, &st, BatchState::Unchanged);
        b.format = st.format.clone().unwrap_or_default();
        b.mode = "bulk".into();
        b.reason = Some(format!(
            "same content as the last applied batch {}",
            st.last_applied.map_or("-".into(), |b| b.to_string())
        ));
        b.buckets_after = st.buckets.clone();
        b.buckets_before = st.buckets;
        self.record(&b)?;
        Ok(b)
    }

    /// A batch that has not been checked (yet): `received`, `processing` or `failed`.
    pub fn record_bare(
        &self,
        inc: &Incoming,
        state: BatchState,
        reason: Option<String>,
    ) -> Result<Batch> {
        let st = self.state(&inc.source)?;
        let mut b = bare_batch(inc, &st, state);
        b.reason = reason;
        self.record(&b)?;
        Ok(b)
    }

    /// Sets a batch's `duration_ms` (the whole pipeline's time, known after the commit) without
    /// racing an approval of the same batch.
    pub fn set_duration(&self, id: u64, ms: u64) -> Result<Batch> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = self.batch(id)?;
        b.duration_ms = ms;
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

    /// Records a batch that changes nothing in the roster (rejected, failed, ...).
    pub fn record(&self, b: &Batch) -> Result<()> {
        let v = serde_json::to_vec(b)?;
        self.tree.insert(k_batch(b.id), v)?;
        self.db.flush()?;
        Ok(())
    }

    /// Commits a checked bundle: diff (bulk) or apply (delta), cascade its deletions to the
    /// stored records that depend on them, guard, one atomic write. An outcome the engine
    /// held is diffed and held like a batch the deletion guard holds.
    pub fn commit(&self, outcome: &Outcome, inc: &Incoming, guard: Guard) -> Result<Committed> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let state = self.state(&inc.source)?;
        let mut batch = bare_batch(inc, &state, BatchState::Processing);
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
                self.finish(&mut batch, started)?;
                return Ok(done(batch));
            }
        }
        if state.last_hash.as_deref() == Some(inc.content_hash.as_str()) {
            batch.state = BatchState::Unchanged;
            batch.reason = Some("same content as the last applied batch".into());
            self.finish(&mut batch, started)?;
            return Ok(done(batch));
        }
        let mut changes: ChangeSet = Vec::new();
        let mut after = state.clone();
        let planned = self.plan(outcome, inc, &state, &mut after, &mut batch, &mut changes);
        let cascaded = match planned {
            Ok(c) => c,
            Err(e @ (StoreError::Oversized(_) | StoreError::Unverified(_))) => {
                // What this batch would write cannot be stored faithfully: refuse it whole.
                tracing::warn!(batch = batch.id, error = %e, "batch refused by the store");
                batch.tables.clear();
                batch.state = BatchState::Rejected;
                batch.reason = Some(e.to_string());
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
            after.last_hash = Some(inc.content_hash.clone());
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
            let mut b = sled::Batch::default();
            b.insert(k_pending(batch.id), pending);
            b.insert(k_batch(batch.id), json(&batch)?);
            self.tree.apply_batch(b)?;
            self.db.flush()?;
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
        after.last_hash = Some(inc.content_hash.clone());
        after.format = outcome.format.map(|f| f.label().to_string());
        batch.state = BatchState::Applied;
        let batch = self.write(&batch, &changes, None, Some(&after), started)?;
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
            let (counts, b) = self.diff_table(&inc.source, w, old, changes, r)?;
            after.buckets.insert(w.def.name.to_string(), b);
            batch.tables.insert(w.def.name.to_string(), counts);
        }
        let cascaded = match outcome.format {
            Some(f) => {
                let schema = Schema::for_format(f);
                let mut c = Cascade {
                    store: self,
                    source: &inc.source,
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

    /// Adds the page writes one uploaded table makes to the stored roster, and returns its
    /// record counts and the table's bucket count after the batch.
    fn diff_table(
        &self,
        source: &str,
        w: &Work,
        old_buckets: Option<u32>,
        changes: &mut ChangeSet,
        removed: &mut Removed,
    ) -> Result<(TableCounts, u32)> {
        let mut counts = TableCounts {
            read: w.table.len() as u64,
            ..TableCounts::default()
        };
        let mut buf = Vec::new();
        let enc = RowEncoder::new(w)?;
        let encode_row = |w: &Work, row: usize, buf: &mut Vec<u8>| enc.encode(w, row, buf);
        let kept: Vec<u32> = (0..w.table.len())
            .filter(|&r| w.is_kept(r))
            .map(|r| r as u32)
            .collect();
        if w.mode == Mode::Delta {
            return self.diff_delta(source, w, old_buckets, &kept, changes, counts, removed);
        }
        let gone: Origin = std::sync::Arc::from(format!(
            "not in the accepted rows of the bulk {}",
            w.def.file_name()
        ));
        let rows: Vec<u32> = kept
            .into_iter()
            .filter(|&r| !w.is_deletion(r as usize))
            .collect();
        let t0 = std::time::Instant::now();
        // Keep the bucket count while pages stay between a quarter and four times the target
        // (sized by the incoming rows: a bulk file is the whole table).
        let want = buckets_for(rows.len());
        let b = match old_buckets {
            Some(b) if b >= want / 4 && b <= want.saturating_mul(4) => b,
            _ => want,
        };
        let id = |r: u32| w.id(r as usize).as_bytes();
        // Incoming rows grouped by page (a counting sort on the bucket), then sorted by key
        // within each small group.
        let keyed: Vec<(u32, u32)> = {
            let ids: Vec<&[u8]> = rows.iter().map(|&r| id(r)).collect();
            let bucket: Vec<u32> = ids.iter().map(|k| bucket_of(k, b)).collect();
            let mut start = vec![0usize; b as usize + 1];
            for &k in &bucket {
                start[k as usize + 1] += 1;
            }
            for i in 1..start.len() {
                start[i] += start[i - 1];
            }
            // (bucket, index into `rows`), then sorted by key within each bucket.
            let mut out = vec![(0u32, 0u32); rows.len()];
            let mut next = start.clone();
            for (i, &k) in bucket.iter().enumerate() {
                out[next[k as usize]] = (k, i as u32);
                next[k as usize] += 1;
            }
            for k in 0..b as usize {
                out[start[k]..start[k + 1]]
                    .sort_unstable_by(|x, y| ids[x.1 as usize].cmp(ids[y.1 as usize]));
            }
            for e in out.iter_mut() {
                e.1 = rows[e.1 as usize];
            }
            out
        };
        if old_buckets.is_some_and(|ob| ob != b) {
            // Re-bucketing: diff logically against every stored record, rewrite every page.
            let old = self.records(source, w.def.name)?;
            counts.before = old.len() as u64;
            let mut sorted: Vec<u32> = rows.clone();
            sorted.sort_unstable_by(|&x, &y| id(x).cmp(id(y)));
            let (mut i, mut j) = (0, 0);
            while i < old.len() || j < sorted.len() {
                let ord = match (old.get(i), sorted.get(j)) {
                    (Some(o), Some(&r)) => o.0.as_slice().cmp(id(r)),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    _ => std::cmp::Ordering::Greater,
                };
                match ord {
                    std::cmp::Ordering::Less => {
                        counts.deletes += 1;
                        removed.push(old[i].0.clone(), gone.clone(), true);
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        counts.adds += 1;
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        encode_row(w, sorted[j] as usize, &mut buf)?;
                        if old[i].1 != buf {
                            counts.updates += 1;
                        }
                        i += 1;
                        j += 1;
                    }
                }
            }
            let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
            for kv in self.tree.scan_prefix(k_records(source, w.def.name)) {
                writes.insert(kv?.0.to_vec(), None);
            }
            for group in keyed.chunk_by(|x, y| x.0 == y.0) {
                let recs: Vec<(&[u8], Vec<u8>)> = group
                    .iter()
                    .map(|&(_, r)| {
                        encode_row(w, r as usize, &mut buf)?;
                        Ok((id(r), buf.clone()))
                    })
                    .collect::<Result<_>>()?;
                writes.insert(
                    k_page(source, w.def.name, group[0].0),
                    Some(encode_page(&recs)?),
                );
            }
            counts.pages_written = writes.len() as u64;
            changes.extend(writes);
            return Ok((counts, b));
        }
        // Same buckets: merge each stored page with its incoming group; write changed pages.
        let prefix_len = k_records(source, w.def.name).len();
        let mut stored = self.tree.scan_prefix(k_records(source, w.def.name));
        let mut cur = stored.next().transpose()?;
        let mut groups = keyed.chunk_by(|x, y| x.0 == y.0).peekable();
        loop {
            let sb = match &cur {
                Some((k, _)) => Some(
                    k.get(prefix_len..prefix_len + 4)
                        .and_then(|x| x.try_into().ok())
                        .map(u32::from_be_bytes)
                        .ok_or_else(|| corrupt(k, "bad page key"))?,
                ),
                None => None,
            };
            let gb = groups.peek().map(|g| g[0].0);
            let bucket = match (sb, gb) {
                (None, None) => break,
                (Some(x), None) => x,
                (None, Some(y)) => y,
                (Some(x), Some(y)) => x.min(y),
            };
            let old_bytes = if sb == Some(bucket) {
                let v = cur.take().map(|(_, v)| v);
                cur = stored.next().transpose()?;
                v
            } else {
                None
            };
            let group: &[(u32, u32)] = if gb == Some(bucket) {
                groups.next().unwrap_or(&[])
            } else {
                &[]
            };
            let key = k_page(source, w.def.name, bucket);
            let old_raw = match &old_bytes {
                Some(v) => inflate(v).ok_or_else(|| corrupt(&key, "undecodable page"))?,
                None => Vec::new(),
            };
            let old: Page = if old_bytes.is_some() {
                decode_page(&old_raw).ok_or_else(|| corrupt(&key, "undecodable page"))?
            } else {
                Vec::new()
            };
            counts.before += old.len() as u64;
            // The new page, encoded as it is built: a count, then (key, record) entries.
            let mut page: Vec<u8> = Vec::with_capacity(old_raw.len().max(group.len() * 48));
            page.extend_from_slice(&[0; 4]);
            let mut entries: u32 = 0;
            let mut push = |page: &mut Vec<u8>, k: &[u8], v: &[u8]| {
                entries += 1;
                put_entry(page, k, v)
            };
            let mut changed = false;
            let (mut i, mut j) = (0, 0);
            while i < old.len() || j < group.len() {
                let ord = match (old.get(i), group.get(j)) {
                    (Some(o), Some(&(_, r))) => o.0.cmp(id(r)),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    _ => std::cmp::Ordering::Greater,
                };
                match ord {
                    std::cmp::Ordering::Less => {
                        counts.deletes += 1;
                        removed.push(old[i].0.to_vec(), gone.clone(), true);
                        changed = true;
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        let r = group[j].1;
                        encode_row(w, r as usize, &mut buf)?;
                        counts.adds += 1;
                        changed = true;
                        push(&mut page, id(r), &buf)?;
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        let r = group[j].1;
                        encode_row(w, r as usize, &mut buf)?;
                        if old[i].1 != buf.as_slice() {
                            counts.updates += 1;
                            changed = true;
                        }
                        push(&mut page, id(r), &buf)?;
                        i += 1;
                        j += 1;
                    }
                }
            }
            if changed {
                let v = if entries == 0 {
                    None
                } else {
                    page[0..4].copy_from_slice(&entries.to_le_bytes());
                    Some(deflate(&page))
                };
                counts.pages_written += 1;
                changes.push((key, v));
            }
        }
        tracing::debug!(
            table = w.def.name,
            ms = t0.elapsed().as_millis() as u64,
            "diffed"
        );
        Ok((counts, b))
    }

    /// OneRoster delta: upsert `active` rows, delete `tobedeleted` ones, skip rows older than
    /// the stored record.
    #[allow(clippy::too_many_arguments)]
    fn diff_delta(
        &self,
        source: &str,
        w: &Work,
        old_buckets: Option<u32>,
        kept: &[u32],
        changes: &mut ChangeSet,
        mut counts: TableCounts,
        removed: &mut Removed,
    ) -> Result<(TableCounts, u32)> {
        counts.before = self.count(source, w.def.name)?;
        let b = old_buckets.unwrap_or_else(|| buckets_for(kept.len()));
        let dlm = w.col("dateLastModified");
        // Pages touched by this delta: their records and whether they changed.
        type Loaded = (Vec<(Vec<u8>, Vec<u8>)>, bool);
        let mut pages: BTreeMap<u32, Loaded> = BTreeMap::new();
        let mut buf = Vec::new();
        let enc = RowEncoder::new(w)?;
        let encode_row = |w: &Work, row: usize, buf: &mut Vec<u8>| enc.encode(w, row, buf);
        for &r in kept {
            let row = r as usize;
            let id = w.id(row).as_bytes();
            let bucket = bucket_of(id, b);
            if let std::collections::btree_map::Entry::Vacant(e) = pages.entry(bucket) {
                let key = k_page(source, w.def.name, bucket);
                let recs = match self.tree.get(&key)?.and_then(|v| inflate(&v)) {
                    Some(v) => decode_page(&v)
                        .ok_or_else(|| corrupt(&key, "undecodable page"))?
                        .into_iter()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect(),
                    None => Vec::new(),
                };
                e.insert((recs, false));
            }
            let Some((recs, dirty)) = pages.get_mut(&bucket) else {
                continue;
            };
            let at = recs.binary_search_by(|(k, _)| k.as_slice().cmp(id));
            if let (Ok(i), Some(c)) = (at, dlm) {
                let incoming = w.value(row, c);
                let old_dlm = decode_row(&recs[i].1)
                    .and_then(|p| p.into_iter().find(|(n, _)| n == "dateLastModified"))
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                if !incoming.is_empty() && !old_dlm.is_empty() && incoming < old_dlm.as_str() {
                    counts.stale += 1;
                    continue;
                }
            }
            if w.is_deletion(row) {
                if let Ok(i) = at {
                    recs.remove(i);
                    counts.deletes += 1;
                    *dirty = true;
                    let origin = format!("{} line {}", w.def.file_name(), w.table.line(row));
                    removed.push(id.to_vec(), std::sync::Arc::from(origin), true);
                }
                continue;
            }
            encode_row(w, row, &mut buf)?;
            match at {
                Ok(i) if recs[i].1 == buf => {}
                Ok(i) => {
                    recs[i].1 = buf.clone();
                    counts.updates += 1;
                    *dirty = true;
                }
                Err(i) => {
                    recs.insert(i, (id.to_vec(), buf.clone()));
                    counts.adds += 1;
                    *dirty = true;
                }
            }
        }
        for (bucket, (recs, dirty)) in pages {
            if dirty {
                let v = if recs.is_empty() {
                    None
                } else {
                    Some(encode_page(&recs)?)
                };
                counts.pages_written += 1;
                changes.push((k_page(source, w.def.name, bucket), v));
            }
        }
        Ok((counts, b))
    }

    /// Applies a held batch, if nothing was applied to its source since it was computed.
    pub fn approve(&self, id: u64) -> Result<Batch> {
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
        batch.reason = Some(format!(
            "approved; {}",
            batch.reason.clone().unwrap_or_default()
        ));
        st.last_hash = Some(batch.content_hash.clone());
        st.format = Some(batch.format.clone());
        st.buckets = batch.buckets_after.clone();
        self.write(&batch, &changes, Some((&pk, None)), Some(&st), started)
    }

    /// Drops a held batch.
    pub fn discard(&self, id: u64) -> Result<Batch> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
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
        orig.state = BatchState::RolledBack;
        let mut rb = orig.clone();
        rb.id = self.new_id()?;
        rb.state = BatchState::Applied;
        rb.rollback_of = Some(id);
        rb.received_at = now();
        rb.reason = Some(format!("rollback of batch {id}"));
        rb.base = st.last_applied;
        // The roster is again what the batch before it left: so is the content it came from.
        rb.content_hash = match orig.base {
            Some(b) => self.batch(b).map(|b| b.content_hash).unwrap_or_default(),
            None => String::new(),
        };
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
        st.buckets = orig.buckets_before.clone();
        (rb.buckets_before, rb.buckets_after) =
            (orig.buckets_after.clone(), orig.buckets_before.clone());
        let orig_json = json(&orig)?;
        self.write(
            &rb,
            &undo,
            Some((&k_batch(id), Some(orig_json))),
            Some(&st),
            started,
        )
    }

    /// The format a source's roster is kept in, if it has one.
    pub fn format_of(&self, source: &str) -> Result<Option<Format>> {
        Ok(self
            .state(source)?
            .format
            .as_deref()
            .and_then(Format::from_label))
    }

    /// Writes the source's current roster as a bundle in its own format.
    pub fn export(&self, source: &str, dir: &Path) -> Result<Format> {
        let Some(format) = self.format_of(source)? else {
            return Err(StoreError::Refused(format!(
                "source `{source}` has no roster yet"
            )));
        };
        std::fs::create_dir_all(dir)?;
        let schema = Schema::for_format(format);
        let mut manifest = String::from("propertyName,value\nmanifest.version,1.0\n");
        // OneRoster 1.0 has no manifest.csv by design: its files are the bundle.
        let with_manifest = format.is_oneroster() && format != Format::OneRoster10;
        if with_manifest {
            manifest.push_str(&format!(
                "oneroster.version,{}\n",
                if format == Format::OneRoster11 {
                    "1.1"
                } else {
                    "1.2"
                }
            ));
        }
        let dialect = crate::roster::csvio::Dialect {
            backslash_escapes: format == Format::Apple,
            ..Default::default()
        };
        for t in &schema.tables {
            let mut rows: Vec<Vec<(String, String)>> = Vec::new();
            for (k, v) in self.records(source, t.name)? {
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
            let mut w = crate::roster::csvio::CsvWriter::new(std::io::BufWriter::new(f), dialect)?;
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
        if with_manifest {
            std::fs::write(dir.join("manifest.csv"), manifest)?;
        }
        Ok(format)
    }
}

/// The prefix of a held batch's reason.
pub const HELD_PREFIX: &str = "held for approval: ";

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

/// Where a deletion comes from, for the cascade's report: `users.csv line 5`.
type Origin = std::sync::Arc<str>;

/// A record this batch removes from a table.
struct Gone {
    id: Vec<u8>,
    origin: Origin,
    /// Removed by the upload itself (a delta's `tobedeleted`, a bulk file without it): the
    /// engine already checked the bundle's own rows against it.
    direct: bool,
}

/// The records a batch removes from one table, in the order they were found.
#[derive(Default)]
struct Removed {
    ids: Vec<Gone>,
}

impl Removed {
    fn push(&mut self, id: Vec<u8>, origin: Origin, direct: bool) {
        self.ids.push(Gone { id, origin, direct });
    }
}

/// How a record's change counts: nothing, an add, an update or a delete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    None,
    Add,
    Update,
    Delete,
}

fn change(pre: Option<&[u8]>, post: Option<&[u8]>) -> Change {
    match (pre, post) {
        (None, None) => Change::None,
        (None, Some(_)) => Change::Add,
        (Some(_), None) => Change::Delete,
        (Some(a), Some(b)) if a == b => Change::None,
        _ => Change::Update,
    }
}

fn slot(c: &mut TableCounts, k: Change) -> Option<&mut u64> {
    match k {
        Change::None => None,
        Change::Add => Some(&mut c.adds),
        Change::Update => Some(&mut c.updates),
        Change::Delete => Some(&mut c.deletes),
    }
}

/// Moves one record's count from what the batch did to it to what it does after the cascade.
fn tally(c: &mut TableCounts, was: Change, now: Change) {
    if let Some(n) = slot(c, was) {
        *n = n.saturating_sub(1);
    }
    if let Some(n) = slot(c, now) {
        *n += 1;
    }
}

/// One pre-batch page: its records, sorted by key.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// A batch's deletions carried through the stored roster along the schema's foreign keys, to
/// a fixpoint: a deleted school deletes its classes, which delete their enrollments; a
/// deleted user is removed from the agent lists that name it. Works on the roster as it will
/// be after the batch: stored pages overlaid with the batch's own writes.
struct Cascade<'a> {
    store: &'a Store,
    source: &'a str,
    schema: &'a Schema,
    outcome: &'a Outcome,
    /// Bucket counts before and after the batch.
    before: &'a SourceState,
    after: &'a SourceState,
    counts: &'a mut BTreeMap<String, TableCounts>,
    changes: &'a mut ChangeSet,
    /// Page key -> its position in `changes`.
    index: HashMap<Vec<u8>, usize>,
    /// Pre-batch pages read so far, by key.
    stored: HashMap<Vec<u8>, Records>,
}

impl Cascade<'_> {
    fn run(&mut self, removed: &mut BTreeMap<&'static str, Removed>) -> Result<Vec<Finding>> {
        let fks = self.schema.foreign_keys.clone();
        // Per foreign key: how many of its target's removals it has followed.
        let mut followed = vec![0usize; fks.len()];
        let mut findings = Vec::new();
        loop {
            let mut progress = false;
            for (k, fk) in fks.iter().enumerate() {
                let Some(rem) = removed.get(fk.target) else {
                    continue;
                };
                let fresh = &rem.ids[followed[k]..];
                if fresh.is_empty() {
                    continue;
                }
                followed[k] = rem.ids.len();
                progress = true;
                // A bulk file of this batch was checked by the engine against every removal
                // the upload itself makes; only removals of the cascade are new to it.
                let bulk = self
                    .outcome
                    .table(fk.table)
                    .is_some_and(|w| w.mode == Mode::Bulk);
                if bulk && fresh.iter().all(|g| g.direct) {
                    continue;
                }
                let gone: HashMap<&[u8], &Gone> =
                    fresh.iter().map(|g| (g.id.as_slice(), g)).collect();
                let dropped = self.follow(fk, &gone, &mut findings)?;
                removed.entry(fk.table).or_default().ids.extend(dropped);
            }
            if !progress {
                break;
            }
        }
        Ok(findings)
    }

    /// The record `id` of `table` as stored before the batch.
    fn pre(&mut self, table: &str, id: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(&b) = self.before.buckets.get(table) else {
            return Ok(None);
        };
        let key = k_page(self.source, table, bucket_of(id, b));
        if !self.stored.contains_key(&key) {
            let recs = match self.store.tree.get(&key)? {
                Some(v) => {
                    let raw = inflate(&v).ok_or_else(|| corrupt(&key, "undecodable page"))?;
                    decode_page(&raw)
                        .ok_or_else(|| corrupt(&key, "undecodable page"))?
                        .into_iter()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect()
                }
                None => Vec::new(),
            };
            self.stored.insert(key.clone(), recs);
        }
        let recs = &self.stored[&key];
        Ok(recs
            .binary_search_by(|(k, _)| k.as_slice().cmp(id))
            .ok()
            .map(|i| recs[i].1.clone()))
    }

    /// Drops or patches the records of `fk.table` that reference a record in `gone`; returns
    /// the dropped ones.
    fn follow(
        &mut self,
        fk: &ForeignKey,
        gone: &HashMap<&[u8], &Gone>,
        findings: &mut Vec<Finding>,
    ) -> Result<Vec<Gone>> {
        let table = fk.table;
        let (Some(def), Some(&buckets)) = (self.schema.table(table), self.after.buckets.get(table))
        else {
            return Ok(Vec::new());
        };
        // Whether a stored column is one of this key's, and if so whether it is required
        // (numbered columns such as location_id_2 never are).
        let column = |name: &str| -> Option<bool> {
            if name == fk.column {
                return Some(def.column(name).is_some_and(|c| c.required));
            }
            def.numbered
                .iter()
                .any(|nb| {
                    nb.base == fk.column
                        && name
                            .strip_prefix(nb.prefix)
                            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .then_some(false)
        };
        let file = def.file_name();
        let detail = |g: &Gone| {
            format!(
                "`{}` was deleted by this batch ({})",
                String::from_utf8_lossy(&g.id),
                g.origin
            )
        };
        let mut dropped = Vec::new();
        for bucket in 0..buckets {
            let key = k_page(self.source, table, bucket);
            let (bytes, overlaid) = match self.index.get(&key) {
                Some(&i) => (self.changes[i].1.clone(), true),
                None => (self.store.tree.get(&key)?.map(|v| v.to_vec()), false),
            };
            let Some(bytes) = bytes else { continue };
            let raw = inflate(&bytes).ok_or_else(|| corrupt(&key, "undecodable page"))?;
            let page = decode_page(&raw).ok_or_else(|| corrupt(&key, "undecodable page"))?;
            // (position in the page, the record after the cascade: None when dropped)
            let mut edits: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
            for (pos, (rk, rv)) in page.iter().enumerate() {
                let fields = row_fields(rv).ok_or_else(|| corrupt(&key, "undecodable record"))?;
                let mut new: Vec<Option<String>> = Vec::new();
                let mut dropping: Option<Finding> = None;
                let mut cause: Option<&Gone> = None;
                let found = |action, field: &str, value: String, g: &Gone| Finding {
                    file: file.clone(),
                    line: 0,
                    id: String::from_utf8_lossy(rk).into_owned(),
                    rule: fk.rule,
                    action,
                    field: field.to_string(),
                    value,
                    detail: detail(g),
                };
                let mut cleared = Vec::new();
                for (fi, (name, value)) in fields.iter().enumerate() {
                    let Some(required) = column(name) else {
                        continue;
                    };
                    let on_missing = if required {
                        fk.on_missing
                    } else {
                        OnMissing::ClearField
                    };
                    let (kept, lost): (Vec<&str>, Vec<&str>) = if fk.list {
                        list_items(value).partition(|x| !gone.contains_key(x.as_bytes()))
                    } else if gone.contains_key(value.trim().as_bytes()) {
                        (vec![], vec![value.trim()])
                    } else {
                        continue;
                    };
                    let Some(g) = lost.first().and_then(|x| gone.get(x.as_bytes())) else {
                        continue;
                    };
                    if kept.is_empty() && on_missing == OnMissing::DropRow {
                        dropping = Some(found(Action::DroppedRow, name, value.to_string(), g));
                        cause = Some(g);
                        break;
                    }
                    if new.is_empty() {
                        new = vec![None; fields.len()];
                    }
                    new[fi] = Some(kept.join(","));
                    cleared.push(found(Action::ClearedField, name, lost.join(","), g));
                }
                let after = if let Some(f) = dropping {
                    findings.push(f);
                    if let Some(g) = cause {
                        let origin: Origin = if g.direct {
                            std::sync::Arc::from(format!(
                                "with `{}`, {}",
                                String::from_utf8_lossy(&g.id),
                                g.origin
                            ))
                        } else {
                            g.origin.clone()
                        };
                        dropped.push(Gone {
                            id: rk.to_vec(),
                            origin,
                            direct: false,
                        });
                    }
                    None
                } else if !cleared.is_empty() {
                    findings.append(&mut cleared);
                    let mut buf = Vec::with_capacity(rv.len());
                    for (fi, (name, value)) in fields.iter().enumerate() {
                        let v = new[fi].as_deref().unwrap_or(value);
                        if !v.is_empty() {
                            put_field(&mut buf, name, v)?;
                        }
                    }
                    Some(buf)
                } else {
                    continue;
                };
                let pre = if overlaid {
                    self.pre(table, rk)?
                } else {
                    Some(rv.to_vec())
                };
                let c = match self.counts.get_mut(table) {
                    Some(c) => c,
                    None => {
                        let before = self.store.count(self.source, table)?;
                        self.counts.entry(table.to_string()).or_insert(TableCounts {
                            before,
                            ..TableCounts::default()
                        })
                    }
                };
                tally(
                    c,
                    change(pre.as_deref(), Some(rv)),
                    change(pre.as_deref(), after.as_deref()),
                );
                edits.push((pos, after));
            }
            if edits.is_empty() {
                continue;
            }
            let mut recs: Vec<(&[u8], &[u8])> = Vec::with_capacity(page.len());
            let mut e = edits.iter().peekable();
            for (pos, (rk, rv)) in page.iter().enumerate() {
                match e.peek() {
                    Some((p, new)) if *p == pos => {
                        if let Some(v) = new {
                            recs.push((rk, v));
                        }
                        e.next();
                    }
                    _ => recs.push((rk, rv)),
                }
            }
            let value = if recs.is_empty() {
                None
            } else {
                Some(encode_page(&recs)?)
            };
            match self.index.get(&key) {
                Some(&i) => self.changes[i].1 = value,
                None => {
                    self.index.insert(key.clone(), self.changes.len());
                    self.changes.push((key, value));
                    if let Some(c) = self.counts.get_mut(table) {
                        c.pages_written += 1;
                    }
                }
            }
        }
        Ok(dropped)
    }
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
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
    buckets: BTreeMap<String, u32>,
}

impl External for StoreView<'_> {
    fn has_id(&self, table: &str, id: &str) -> Option<bool> {
        let Some(&b) = self.buckets.get(table) else {
            return Some(false);
        };
        let k = k_page(self.source, table, bucket_of(id.as_bytes(), b));
        let page = self.store.tree.get(k).ok()?;
        Some(page.and_then(|p| inflate(&p)).is_some_and(|p| {
            decode_page(&p).is_some_and(|pg| {
                pg.binary_search_by(|(k, _)| (*k).cmp(id.as_bytes()))
                    .is_ok()
            })
        }))
    }
    fn person_with_key(&self, key: &str) -> Option<String> {
        self.persons.get(key).cloned()
    }
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
            id: s.reserve_id().unwrap(),
            source: "north".into(),
            account: "sis".into(),
            content_hash: hash.into(),
            received_at: 0,
            report_dir: None,
        }
    }

    fn exported(s: &Store, dir: &Path) -> String {
        s.export("north", dir).unwrap();
        std::fs::read_to_string(dir.join("locations.csv")).unwrap()
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
    fn no_length_is_truncated_when_encoding() {
        let mut buf = Vec::new();
        let k = vec![b'k'; MAX_KEY_BYTES + 1];
        assert!(matches!(
            put_entry(&mut buf, &k, b""),
            Err(StoreError::Oversized(_))
        ));
        assert!(matches!(
            put_field(&mut buf, &"n".repeat(MAX_NAME_BYTES + 1), "v"),
            Err(StoreError::Oversized(_))
        ));
        // The longest that fits round-trips.
        let k = vec![b'k'; MAX_KEY_BYTES];
        let mut rec = Vec::new();
        put_field(&mut rec, &"n".repeat(MAX_NAME_BYTES), "v").unwrap();
        let page = encode_page(&[(k.clone(), rec.clone())]).unwrap();
        let raw = inflate(&page).unwrap();
        assert_eq!(
            decode_page(&raw).unwrap(),
            vec![(k.as_slice(), rec.as_slice())]
        );
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
        // bytes after the last record; keys out of order.
        let mut bad_rec = Vec::new();
        bad_rec.extend_from_slice(&5u16.to_le_bytes());
        bad_rec.extend_from_slice(b"ab");
        let mut trailing = encode_page_raw(&[(b"L1".to_vec(), Vec::new())]).unwrap();
        trailing.push(0);
        let unsorted = encode_page(&[(b"L2".to_vec(), vec![]), (b"L1".to_vec(), vec![])]).unwrap();
        for v in [
            b"garbage".to_vec(),
            encode_page(&[(b"L1".to_vec(), bad_rec)]).unwrap(),
            deflate(&trailing),
            unsorted,
        ] {
            assert!(matches!(
                verify_pages(&[(key.clone(), Some(v))]),
                Err(StoreError::Unverified(_))
            ));
        }
        // Removals and non-record keys are not pages.
        assert!(verify_pages(&[(key, None), (k_batch(1), Some(b"{}".to_vec()))]).is_ok());
    }
}

/// The on-disk format, version 1, byte for byte: keys, record values, pages, change sets
/// (undo data and held batches) and the JSON of batch and source records. A test here that
/// fails means stores written by an earlier build would be misread: change the format only
/// with a new `FORMAT_VERSION` and a migration, and then update these bytes.
#[cfg(test)]
mod format_v1 {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(FORMAT_VERSION, 1);
        assert_eq!(K_VERSION, b"m\0version");
        assert_eq!(K_NEXT_ID, b"m\0next-batch");
        assert_eq!(k_state("north"), b"s\0north");
        assert_eq!(k_records("north", "students"), b"r\0north\0students\0");
        assert_eq!(
            k_page("north", "students", 0x0102_0304),
            b"r\0north\0students\0\x01\x02\x03\x04"
        );
        assert_eq!(k_batch(0x0102), b"b\0\0\0\0\0\0\0\x01\x02");
        assert_eq!(k_undo(7), b"u\0\0\0\0\0\0\0\0\x07");
        assert_eq!(k_pending(7), b"p\0\0\0\0\0\0\0\0\x07");
    }

    #[test]
    fn pages_are_chosen_by_fnv1a_of_the_id() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(bucket_of(b"a", 1), 0);
        assert_eq!(bucket_of(b"a", 16), 0xc);
        assert_eq!(
            [0, 1, 256, 257, 1000, 1 << 40].map(buckets_for),
            [1, 1, 1, 2, 4, 1 << 24]
        );
    }

    #[test]
    fn a_record_is_name_and_value_pairs() {
        let mut rec = Vec::new();
        put_field(&mut rec, "id", "S1").unwrap();
        put_field(&mut rec, "grade", "").unwrap();
        assert_eq!(rec, b"\x02\0id\x02\0\0\0S1\x05\0grade\0\0\0\0");
        assert_eq!(
            decode_row(&rec).unwrap(),
            [("id".into(), "S1".into()), ("grade".into(), String::new())]
        );
    }

    #[test]
    fn a_page_is_counted_entries_compressed_with_lz4() {
        let raw = encode_page_raw(&[(&b"S1"[..], &b"xy"[..]), (b"S2", b"")]).unwrap();
        assert_eq!(raw, b"\x02\0\0\0\x02\0S1\x02\0\0\0xy\x02\0S2\0\0\0\0");
        let stored = encode_page(&[(&b"S1"[..], &b"xy"[..]), (b"S2", b"")]).unwrap();
        // An LZ4 block with the raw length prepended (little-endian u32), as this build
        // writes it; and the same page as one run of literals, as another LZ4 encoder may
        // write it, reads alike.
        let written = [
            22, 0, 0, 0, 128, 2, 0, 0, 0, 2, 0, 83, 49, 8, 0, 160, 120, 121, 2, 0, 83, 50, 0, 0, 0,
            0,
        ];
        assert_eq!(stored, written);
        let mut literal = vec![22, 0, 0, 0, 0xf0, 22 - 15];
        literal.extend_from_slice(&raw);
        assert_eq!(inflate(&written).unwrap(), raw);
        assert_eq!(inflate(&literal).unwrap(), raw);
        assert_eq!(page_len(&raw), 2);
    }

    #[test]
    fn a_change_set_is_counted_keys_and_values_deflated() {
        let c: ChangeSet = vec![
            (b"k1".to_vec(), Some(b"v".to_vec())),
            (b"k2".to_vec(), None),
        ];
        let raw = b"\x02\0\0\0\0\0\0\0\x02\0\0\0k1\x01\x01\0\0\0v\x02\0\0\0k2\0";
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&encode_changes(&c).unwrap()[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, raw);
        // Any deflate stream of those bytes reads back (the compression level is free).
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::none());
        e.write_all(raw).unwrap();
        assert_eq!(decode_changes(&e.finish().unwrap()).unwrap(), c);
    }

    #[test]
    fn batch_and_source_records_are_json() {
        let v1 = r#"{"id":3,"source":"north","account":"sis","content_hash":"ab","format":"apple","mode":"bulk","state":"rolled-back","received_at":1700000000,"duration_ms":12,"tables":{"students":{"read":2,"adds":1,"updates":1,"deletes":0,"stale":0,"pages_written":1,"before":1}},"patches":{"invalid-value":1},"report_dir":null,"reason":"held for approval: x","base":2,"rollback_of":null,"buckets_before":{"students":1},"buckets_after":{"students":1}}"#;
        let b: Batch = serde_json::from_slice(v1.as_bytes()).unwrap();
        assert_eq!(
            (b.id, b.state, b.base),
            (3, BatchState::RolledBack, Some(2))
        );
        assert_eq!(b.tables["students"].adds, 1);
        assert_eq!(String::from_utf8(json(&b).unwrap()).unwrap(), v1);
        // Written before page counts were recorded: still read.
        let older = r#"{"id":1,"source":"n","account":"a","content_hash":"","format":"apple","mode":"bulk","state":"applied","received_at":0,"duration_ms":0,"tables":{},"patches":{},"report_dir":null,"reason":null,"base":null,"rollback_of":null}"#;
        assert!(serde_json::from_str::<Batch>(older)
            .unwrap()
            .buckets_after
            .is_empty());
        let st = r#"{"last_applied":3,"last_hash":"ab","format":"apple","buckets":{"students":2}}"#;
        let s: SourceState = serde_json::from_str(st).unwrap();
        assert_eq!(String::from_utf8(json(&s).unwrap()).unwrap(), st);
    }
}
