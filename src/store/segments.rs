//! Where records lie on disk, format 3: each table's logical pages (16-record pages keyed
//! `r\0<source>\0<table>\0<bucket>`, what the diff, the cascade, undo data and held batches
//! work on) are stored 256 to a **segment**: a **base** value holding the segment's pages
//! compressed together, and one **run** per batch that changed the segment since its base was
//! written, holding only the records that batch changed. A read overlays the runs on the base,
//! oldest first. A batch's writes are translated here: per segment it touches, either a run of
//! its changed records, or (compaction) a fresh base that folds in every run.
//!
//! Keys: `g\0<source>\0<table>\0<segment u32 BE>` for a base and
//! `d\0<source>\0<table>\0<segment u32 BE><batch u64 BE>` for a run, segment = bucket >> 8.
//!
//! Values, zstd level 1 (measured against deflate and LZ4 in `docs/ARCHITECTURE.md`):
//! - base: `(bucket, page length, raw format-2 page)*`, buckets ascending, no page empty;
//! - run: `(bucket, key length, key, tag, record)*`, sorted by bucket then key, tag 0 for a
//!   removed record (no bytes follow), else the record's length + 1 (pair encoding).
//!
//! All numbers are LEB128 varints.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::undo::{page_diff, record_changes, split_record_key};
use super::*;

/// A segment holds the logical pages of 2^SEGMENT_BITS consecutive buckets.
pub(super) const SEGMENT_BITS: u32 = 8;
/// A segment whose runs pass this share of its base (1/4) is compacted even past the
/// batch's budget, one per table and batch (so that a table of a few segments, whose
/// budget is smaller than one base, is compacted too).
const RUN_SHARE_DIVISOR: u64 = 4;
/// Bytes of bases a batch may rewrite to compact segments it touches, in percent of those
/// segments' bases, largest share of runs first: compaction goes on a little every night
/// instead of all segments at once on the night their runs pass a threshold, and keeps runs
/// (what every read overlays, and what sled keeps in its log) to some nights' worth. A 1%
/// batch writes some 1.5% in runs, so 7% keeps a night under 10% of the store.
const COMPACT_BUDGET_PERCENT: u64 = 7;
const ZSTD_LEVEL: i32 = 1;
/// A stored value never inflates past this (a segment of 256 pages of 16 records is some
/// hundreds of KiB).
const MAX_INFLATED: u64 = 1 << 30;
/// The largest size a value may declare to be inflated into a buffer reserved for it up
/// front ([`decompress`]).
const DECLARED_INFLATE: u64 = 16 << 20;
/// Decoded segments kept for point reads (the engine's `has_id`, the cascade) and between a
/// batch's diff and its write.
const CACHE_BYTES: usize = 128 << 20;

pub(super) fn segment_of(bucket: u32) -> u32 {
    bucket >> SEGMENT_BITS
}

fn k_bases(prefix: &[u8]) -> Vec<u8> {
    [b"g", &prefix[1..]].concat()
}
fn k_runs(prefix: &[u8]) -> Vec<u8> {
    [b"d", &prefix[1..]].concat()
}
pub(super) fn k_base(prefix: &[u8], seg: u32) -> Vec<u8> {
    [k_bases(prefix).as_slice(), &seg.to_be_bytes()].concat()
}
fn k_segment_runs(prefix: &[u8], seg: u32) -> Vec<u8> {
    [k_runs(prefix).as_slice(), &seg.to_be_bytes()].concat()
}
fn k_run(prefix: &[u8], seg: u32, batch: u64) -> Vec<u8> {
    [k_segment_runs(prefix, seg).as_slice(), &batch.to_be_bytes()].concat()
}

/// The segment number at `at` in a base or run key.
fn key_segment(k: &[u8], at: usize) -> Option<u32> {
    k.get(at..at + 4)
        .and_then(|x| x.try_into().ok())
        .map(u32::from_be_bytes)
}

/// A logical page key's table prefix (`r\0<source>\0<table>\0`) and bucket.
pub(super) fn split_page_key(k: &[u8]) -> Option<(&[u8], u32)> {
    let (prefix, _, rest) = split_record_key(k)?;
    Some((prefix, u32::from_be_bytes(rest.try_into().ok()?)))
}

fn compress(raw: &[u8]) -> Result<Vec<u8>> {
    Ok(zstd::bulk::compress(raw, ZSTD_LEVEL)?)
}

/// A stored value inflated; `None` when it is not zstd or inflates past [`MAX_INFLATED`].
/// A value of one frame that declares a size of at most [`DECLARED_INFLATE`] (as every value
/// this store writes does) is inflated in one call into a buffer of that size; anything else
/// (a frame that inflates to another size, a larger or undeclared size, several frames)
/// through a reader whose output grows with what actually inflates, so a damaged value
/// cannot make it reserve more than that bound.
fn decompress(v: &[u8]) -> Option<Vec<u8>> {
    if v.is_empty() {
        return None;
    }
    if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(v) {
        if n > 0 && n <= DECLARED_INFLATE {
            let one = zstd::bulk::decompress(v, usize::try_from(n).ok()?).ok();
            if let Some(out) = one.filter(|out| out.len() as u64 == n) {
                return Some(out);
            }
        }
    }
    let mut out = Vec::new();
    let d = zstd::stream::read::Decoder::with_buffer(v).ok()?;
    d.take(MAX_INFLATED).read_to_end(&mut out).ok()?;
    ((out.len() as u64) < MAX_INFLATED).then_some(out)
}

/// A page key, the page's records before a batch and after it.
type PageChange = (Vec<u8>, Page, Page);
/// A segment's pages as format 2 stored them: bucket, LZ4 value.
type StoredPages = Vec<(u32, sled::IVec)>;

/// A segment's logical pages, each a raw format-2 page (never empty): one buffer that holds
/// them (a base as it inflated, then the pages a run rewrote), and where each bucket's page is
/// in it, in bucket order. A base of 256 pages is read without copying a page out of it.
#[derive(Default)]
pub(super) struct Pages {
    data: Vec<u8>,
    /// (bucket, start, end) of each page in `data`, in bucket order.
    at: Vec<(u32, usize, usize)>,
}

impl Pages {
    fn find(&self, bucket: u32) -> std::result::Result<usize, usize> {
        self.at.binary_search_by_key(&bucket, |p| p.0)
    }
    /// The page of `bucket`.
    pub(super) fn get(&self, bucket: u32) -> Option<&[u8]> {
        let i = self.find(bucket).ok()?;
        let (_, start, end) = self.at[i];
        self.data.get(start..end)
    }
    pub(super) fn contains(&self, bucket: u32) -> bool {
        self.find(bucket).is_ok()
    }
    /// The first bucket at or after `bucket` that has a page.
    fn first_from(&self, bucket: u32) -> Option<u32> {
        let i = self.at.partition_point(|p| p.0 < bucket);
        self.at.get(i).map(|p| p.0)
    }
    /// Sets the page of `bucket` (`page` not empty).
    fn insert(&mut self, bucket: u32, page: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(page);
        let entry = (bucket, start, self.data.len());
        match self.find(bucket) {
            Ok(i) => self.at[i] = entry,
            Err(i) => self.at.insert(i, entry),
        }
    }
    fn remove(&mut self, bucket: u32) {
        if let Ok(i) = self.find(bucket) {
            self.at.remove(i);
        }
    }
    pub(super) fn len(&self) -> usize {
        self.at.len()
    }
    /// (bucket, page) in bucket order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.at
            .iter()
            .map(|&(b, start, end)| (b, self.data.get(start..end).unwrap_or_default()))
    }
    /// Bytes held, for the segment cache's budget.
    fn bytes(&self) -> usize {
        self.data.capacity() + self.at.capacity() * std::mem::size_of::<(u32, usize, usize)>()
    }
}

/// A base of segment `seg` decoded (its pages left where they inflated); `None` when
/// damaged, or holding a bucket of another segment.
fn decode_base(raw: Vec<u8>, seg: u32) -> Option<Pages> {
    let mut at = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let bucket = u32::try_from(get_varint(&raw, &mut i)?).ok()?;
        let n = usize::try_from(get_varint(&raw, &mut i)?).ok()?;
        let end = i.checked_add(n).filter(|&e| e <= raw.len())?;
        if n == 0 || segment_of(bucket) != seg || at.last().is_some_and(|&(b, _, _)| b >= bucket) {
            return None;
        }
        at.push((bucket, i, end));
        i = end;
    }
    Some(Pages { data: raw, at })
}

/// One record a run changes: its bucket, key, and new record (`None`: removed).
type RunRecord = (u32, Vec<u8>, Option<Vec<u8>>);

fn encode_run(recs: &[RunRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for (bucket, k, v) in recs {
        put_varint(&mut out, u64::from(*bucket));
        put_varint(&mut out, k.len() as u64);
        out.extend_from_slice(k);
        match v {
            None => put_varint(&mut out, 0),
            Some(v) => {
                put_varint(&mut out, v.len() as u64 + 1);
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// A run of segment `seg` decoded; `None` when damaged, or naming a bucket of another segment.
fn decode_run(raw: &[u8], seg: u32) -> Option<Vec<RunRecord>> {
    let mut out = Vec::new();
    let mut i = 0;
    let take = |i: &mut usize| -> Option<Vec<u8>> {
        let n = usize::try_from(get_varint(raw, i)?).ok()?;
        let s = raw.get(*i..i.checked_add(n)?)?;
        *i += n;
        Some(s.to_vec())
    };
    while i < raw.len() {
        let bucket = u32::try_from(get_varint(raw, &mut i)?).ok()?;
        if segment_of(bucket) != seg {
            return None;
        }
        let k = take(&mut i)?;
        let v = match usize::try_from(get_varint(raw, &mut i)?).ok()? {
            0 => None,
            n => {
                let s = raw.get(i..i.checked_add(n - 1)?)?;
                i += n - 1;
                row_fields(s)?;
                Some(s.to_vec())
            }
        };
        out.push((bucket, k, v));
    }
    Some(out)
}

/// Overlays a run on a segment's pages.
fn apply_run(pages: &mut Pages, run: Vec<RunRecord>) -> Option<()> {
    let mut run = run.into_iter().peekable();
    while let Some(&(bucket, _, _)) = run.peek() {
        let mut recs = match pages.get(bucket) {
            Some(raw) => decode_page(raw)?,
            None => Vec::new(),
        };
        while let Some((_, k, v)) = run.next_if(|r| r.0 == bucket) {
            match (recs.binary_search_by(|(x, _)| x.as_slice().cmp(&k)), v) {
                (Ok(i), Some(v)) => recs[i].1 = v,
                (Ok(i), None) => {
                    recs.remove(i);
                }
                (Err(i), Some(v)) => recs.insert(i, (k, v)),
                (Err(_), None) => {}
            }
        }
        if recs.is_empty() {
            pages.remove(bucket);
        } else {
            pages.insert(bucket, &encode_page_raw(&recs).ok()?);
        }
    }
    Some(())
}

/// A segment as stored: its pages (base and runs overlaid), and what it takes on disk.
pub(super) struct Segment {
    pub(super) pages: Pages,
    /// Stored bytes of the base (0: none).
    base_bytes: u64,
    /// Each run's key and stored bytes, oldest first.
    runs: Vec<(Vec<u8>, u64)>,
    /// Bytes the decoded pages take, for the cache's budget.
    size: usize,
}

impl Segment {
    fn build(
        seg: u32,
        base: Option<(&[u8], &[u8])>,
        runs: &[(sled::IVec, sled::IVec)],
    ) -> Result<Segment> {
        let mut pages = match base {
            Some((k, v)) => decompress(v)
                .and_then(|raw| decode_base(raw, seg))
                .ok_or_else(|| corrupt(k, "undecodable segment"))?,
            None => Pages::default(),
        };
        // All runs overlaid in one pass, each page decoded and encoded once: the records
        // sorted by bucket, stably, so that within a page they keep the runs' order (a later
        // run's value of a record wins).
        let mut all: Vec<RunRecord> = Vec::new();
        for (k, v) in runs {
            let run = decompress(v)
                .and_then(|raw| decode_run(&raw, seg))
                .ok_or_else(|| corrupt(k, "undecodable run"))?;
            all.extend(run);
        }
        all.sort_by_key(|r| r.0);
        if !all.is_empty() {
            let k = runs.first().map_or(&[][..], |r| &r.0[..]);
            apply_run(&mut pages, all).ok_or_else(|| corrupt(k, "run does not apply"))?;
        }
        let size = pages.bytes();
        Ok(Segment {
            pages,
            base_bytes: base.map_or(0, |(_, v)| v.len() as u64),
            runs: runs
                .iter()
                .map(|(k, v)| (k.to_vec(), v.len() as u64))
                .collect(),
            size,
        })
    }

    fn runs_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.1).sum()
    }
}

/// Decoded segments by base key, valid for one generation of the tree's records.
#[derive(Default)]
pub(super) struct SegmentCache {
    generation: u64,
    bytes: usize,
    map: HashMap<Vec<u8>, Arc<Segment>>,
}

/// A logical page read from its segment.
pub(super) struct PageRef {
    seg: Arc<Segment>,
    pub(super) bucket: u32,
}

impl PageRef {
    pub(super) fn raw(&self) -> &[u8] {
        self.seg.pages.get(self.bucket).unwrap_or_default()
    }
}

/// A table's logical pages in bucket order, read one segment at a time.
pub(super) struct TablePages<'a> {
    store: &'a Store,
    prefix: Vec<u8>,
    /// The next segment to look for.
    from: Option<u32>,
    cur: Option<Arc<Segment>>,
    /// The next bucket to yield in `cur`.
    at: u32,
    failed: bool,
    /// Whether the segments read are kept in the cache (where it has room).
    remember: bool,
}

impl TablePages<'_> {
    fn next_segment(&mut self) -> Result<Option<Arc<Segment>>> {
        let Some(from) = self.from else {
            return Ok(None);
        };
        let found = self
            .store
            .read_segment_from(&self.prefix, from, self.remember)?;
        if let Some((seg, _)) = &found {
            self.from = seg.checked_add(1);
        } else {
            self.from = None;
        }
        Ok(found.map(|(_, s)| s))
    }
}

impl Iterator for TablePages<'_> {
    type Item = Result<PageRef>;

    fn next(&mut self) -> Option<Result<PageRef>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(seg) = &self.cur {
                if let Some(bucket) = seg.pages.first_from(self.at) {
                    self.at = bucket.saturating_add(1);
                    if bucket == u32::MAX {
                        // Nothing can follow the last bucket.
                        let seg = self.cur.take()?;
                        return Some(Ok(PageRef { seg, bucket }));
                    }
                    return Some(Ok(PageRef {
                        seg: seg.clone(),
                        bucket,
                    }));
                }
            }
            match self.next_segment() {
                Ok(Some(s)) => {
                    self.at = 0;
                    self.cur = Some(s);
                }
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// A base to write: its key and its pages in bucket order.
struct BaseJob<'a> {
    key: Vec<u8>,
    pages: Vec<(u32, Part<'a>)>,
}

/// A page of a base to write: raw already, or as a change set holds it (LZ4).
enum Part<'a> {
    Raw(&'a [u8]),
    Packed(&'a [u8]),
}

impl BaseJob<'_> {
    fn encode(&self) -> Result<Vec<u8>> {
        let mut raw = Vec::new();
        for (bucket, part) in &self.pages {
            let inflated;
            let page = match part {
                Part::Raw(p) => *p,
                Part::Packed(v) => {
                    inflated = unpack(v).ok_or_else(|| {
                        StoreError::Unverified(format!(
                            "{}/{bucket}",
                            String::from_utf8_lossy(&self.key[1..]).replace('\0', "/")
                        ))
                    })?;
                    &inflated[..]
                }
            };
            put_varint(&mut raw, u64::from(*bucket));
            put_varint(&mut raw, page.len() as u64);
            raw.extend_from_slice(page);
        }
        compress(&raw)
    }
}

/// Encodes and compresses bases on every core (a first batch writes the whole roster).
fn encode_bases(jobs: &[BaseJob<'_>]) -> Result<Vec<Vec<u8>>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { break };
            done.push((i, job.encode()));
        }
        done
    };
    let mut all: Vec<(usize, Result<Vec<u8>>)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            match h.join() {
                Ok(d) => all.extend(d),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        all
    });
    all.sort_by_key(|x| x.0);
    all.into_iter().map(|(_, r)| r).collect()
}

/// What a batch's record writes did on disk.
pub(super) struct Written {
    /// The records it changed, with their values before it (see [`Store::write`]).
    pub(super) undo: ChangeSet,
    /// Bytes of the base and run values it wrote.
    pub(super) bytes: u64,
    /// Change in the bytes the source's records take (values written less values replaced or
    /// removed).
    pub(super) delta: i64,
}

impl Store {
    fn cached_segment(&self, key: &[u8]) -> (Option<Arc<Segment>>, u64) {
        let c = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        (c.map.get(key).cloned(), c.generation)
    }

    /// Keeps a decoded segment read at `generation`, unless a write came since. A point read
    /// makes room by forgetting everything (reads cluster by table); a scan only fills what
    /// is free, so that one big table does not push out what the next point reads need.
    fn remember_segment(&self, key: Vec<u8>, s: Arc<Segment>, generation: u64, evict: bool) {
        let mut c = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        if c.generation != generation || s.size > CACHE_BYTES {
            return;
        }
        if c.bytes + s.size > CACHE_BYTES {
            if !evict {
                return;
            }
            c.map.clear();
            c.bytes = 0;
        }
        c.bytes += s.size;
        if let Some(old) = c.map.insert(key, s) {
            c.bytes -= old.size;
        }
    }

    /// Bytes of decoded segments the cache holds.
    #[cfg(test)]
    pub(super) fn cached_bytes(&self) -> usize {
        self.segments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bytes
    }

    /// Drops every decoded segment: the records on disk changed.
    pub(super) fn forget_segments(&self) {
        let mut c = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        c.generation += 1;
        c.map.clear();
        c.bytes = 0;
    }

    /// Segment `seg` of the table with record prefix `prefix`, as stored.
    fn segment(&self, prefix: &[u8], seg: u32) -> Result<Arc<Segment>> {
        let key = k_base(prefix, seg);
        // Under the read lock: no write lands between the cache, the base and the runs.
        let _r = self.consistent.read().unwrap_or_else(|p| p.into_inner());
        let (cached, generation) = self.cached_segment(&key);
        if let Some(s) = cached {
            return Ok(s);
        }
        let base = self.tree.get(&key)?;
        let runs: Vec<(sled::IVec, sled::IVec)> = self
            .tree
            .scan_prefix(k_segment_runs(prefix, seg))
            .collect::<std::result::Result<_, _>>()?;
        let s = Arc::new(Segment::build(
            seg,
            base.as_ref().map(|v| (&key[..], &v[..])),
            &runs,
        )?);
        self.remember_segment(key, s.clone(), generation, true);
        Ok(s)
    }

    /// The logical page `key` (`r\0<source>\0<table>\0<bucket>`) as stored: raw format-2
    /// page bytes, `None` when it holds no record.
    pub(super) fn page(&self, key: &[u8]) -> Result<Option<PageRef>> {
        let (prefix, bucket) = split_page_key(key).ok_or_else(|| corrupt(key, "bad page key"))?;
        let seg = self.segment(prefix, segment_of(bucket))?;
        Ok(seg
            .pages
            .contains(bucket)
            .then_some(PageRef { seg, bucket }))
    }

    /// The logical pages of the table with record prefix `prefix` (`r\0<source>\0<table>\0`),
    /// in bucket order.
    pub(super) fn table_pages(&self, prefix: &[u8]) -> Result<TablePages<'_>> {
        self.table_pages_from(prefix, 0)
    }

    /// [`Store::table_pages`] from the segment that holds `bucket` on.
    pub(super) fn table_pages_from(&self, prefix: &[u8], bucket: u32) -> Result<TablePages<'_>> {
        Ok(TablePages {
            store: self,
            prefix: prefix.to_vec(),
            from: Some(segment_of(bucket)),
            cur: None,
            at: 0,
            failed: false,
            remember: true,
        })
    }

    /// [`Store::table_pages`] for a reader that reads the whole roster once (an export, the
    /// REST provider's rebuild): the segments it reads are not kept in the cache, where
    /// nothing would ask for them again (in the daemon, they would stay there at rest).
    pub(super) fn table_pages_once(&self, prefix: &[u8]) -> Result<TablePages<'_>> {
        Ok(TablePages {
            remember: false,
            ..self.table_pages(prefix)?
        })
    }

    /// The first segment numbered `from` or more that has a base or runs, read whole: its
    /// base and runs under one read lock, so that no batch's write lands between them.
    fn read_segment_from(
        &self,
        prefix: &[u8],
        from: u32,
        remember: bool,
    ) -> Result<Option<(u32, Arc<Segment>)>> {
        let _r = self.consistent.read().unwrap_or_else(|p| p.into_inner());
        let (bp, rp) = (k_bases(prefix), k_runs(prefix));
        let first = |p: &[u8]| -> Result<Option<(u32, sled::IVec, sled::IVec)>> {
            let start = [p, &from.to_be_bytes()].concat();
            match self.tree.range(start..).next().transpose()? {
                Some((k, v)) if k.starts_with(p) => {
                    let seg = key_segment(&k, p.len()).ok_or_else(|| corrupt(&k, "bad key"))?;
                    Ok(Some((seg, k, v)))
                }
                _ => Ok(None),
            }
        };
        let base = first(&bp)?;
        let run = first(&rp)?;
        let seg = match (&base, &run) {
            (None, None) => return Ok(None),
            (Some(b), None) => b.0,
            (None, Some(r)) => r.0,
            (Some(b), Some(r)) => b.0.min(r.0),
        };
        let key = k_base(prefix, seg);
        let (cached, generation) = self.cached_segment(&key);
        if let Some(s) = cached {
            return Ok(Some((seg, s)));
        }
        let base = base.filter(|b| b.0 == seg).map(|(_, _, v)| v);
        let runs: Vec<(sled::IVec, sled::IVec)> = if run.as_ref().is_some_and(|r| r.0 == seg) {
            self.tree
                .scan_prefix(k_segment_runs(prefix, seg))
                .collect::<std::result::Result<_, _>>()?
        } else {
            Vec::new()
        };
        let s = Arc::new(Segment::build(
            seg,
            base.as_ref().map(|v| (&key[..], &v[..])),
            &runs,
        )?);
        if remember {
            self.remember_segment(key, s.clone(), generation, false);
        }
        Ok(Some((seg, s)))
    }

    /// The keys of a table's logical pages.
    pub(super) fn page_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.table_pages(prefix)?
            .map(|p| Ok([prefix, &p?.bucket.to_be_bytes()].concat()))
            .collect()
    }

    /// Whether a table has anything on disk.
    fn table_stored(&self, prefix: &[u8]) -> Result<bool> {
        Ok(self.tree.scan_prefix(k_bases(prefix)).next().is_some()
            || self.tree.scan_prefix(k_runs(prefix)).next().is_some())
    }

    /// Translates a batch's logical page writes into base and run writes in `b`, and works
    /// out their undo data: every record they change, with its value now; a table that had no
    /// records before them is one entry, its `r\0<source>\0<table>\0` with no id and no value
    /// (every record goes: a first batch's undo names no record).
    pub(super) fn write_pages(
        &self,
        batch: u64,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        b: &mut Writes,
    ) -> Result<Written> {
        // Per table, per segment: the pages written, in bucket order.
        type Touched<'a> = BTreeMap<u32, BTreeMap<u32, Option<&'a Vec<u8>>>>;
        let mut tables: BTreeMap<&[u8], Touched> = BTreeMap::new();
        for (k, v) in changes {
            let (prefix, bucket) = split_page_key(k).ok_or_else(|| corrupt(k, "bad page key"))?;
            tables
                .entry(prefix)
                .or_default()
                .entry(segment_of(bucket))
                .or_default()
                .insert(bucket, v.as_ref());
        }
        let mut out = Written {
            undo: Vec::new(),
            bytes: 0,
            delta: 0,
        };
        let unverified =
            |k: &[u8]| StoreError::Unverified(String::from_utf8_lossy(k).replace('\0', "/"));
        // Segments read (their pages are borrowed by `jobs`).
        let mut read: Vec<(&[u8], u32, Arc<Segment>)> = Vec::new();
        let mut jobs: Vec<BaseJob> = Vec::new();
        for (prefix, segs) in &tables {
            if !self.table_stored(prefix)? {
                // The table had no records: its pages are written as bases, and undoing the
                // batch empties it.
                out.undo.push((prefix.to_vec(), None));
                for (&seg, pages) in segs {
                    let pages: Vec<(u32, Part)> = pages
                        .iter()
                        .filter_map(|(&bucket, v)| v.map(|v| (bucket, Part::Packed(v))))
                        .collect();
                    if !pages.is_empty() {
                        jobs.push(BaseJob {
                            key: k_base(prefix, seg),
                            pages,
                        });
                    }
                }
                continue;
            }
            for &seg in segs.keys() {
                read.push((prefix, seg, self.segment(prefix, seg)?));
            }
        }
        // Per table: (page key, records before, records after) of every page written.
        let mut diffs: BTreeMap<&[u8], Vec<PageChange>> = BTreeMap::new();
        // Per segment read: its run, and whether it must, or may, be compacted.
        struct Plan {
            run: Vec<u8>,
            /// Runs (the new one included) over base: the largest are compacted first.
            share: f64,
            forced: bool,
            empty: bool,
        }
        // Each segment's run and changed pages, worked out on the machine's cores (results in
        // the segments' order).
        struct Worked {
            run: Vec<u8>,
            pages_after: usize,
            changed: Vec<(Vec<u8>, Page, Page)>,
        }
        let work = |(prefix, seg_no, seg): &(&[u8], u32, Arc<Segment>)| -> Result<Worked> {
            let mut run: Vec<RunRecord> = Vec::new();
            let mut pages_after = seg.pages.len();
            let mut changed = Vec::new();
            for (&bucket, new) in &tables[prefix][seg_no] {
                let key = [*prefix, &bucket.to_be_bytes()].concat();
                let old_raw = seg.pages.get(bucket);
                let new_raw = match new {
                    Some(v) => Some(unpack(v).ok_or_else(|| unverified(&key))?),
                    None => None,
                };
                if old_raw == new_raw.as_deref() {
                    continue;
                }
                match (old_raw.is_some(), new_raw.is_some()) {
                    (true, false) => pages_after -= 1,
                    (false, true) => pages_after += 1,
                    _ => {}
                }
                let old = match old_raw {
                    Some(raw) => {
                        decode_page(raw).ok_or_else(|| corrupt(&key, "undecodable page"))?
                    }
                    None => Vec::new(),
                };
                let new = match &new_raw {
                    Some(raw) => decode_page(raw).ok_or_else(|| unverified(&key))?,
                    None => Vec::new(),
                };
                for (k, _, after) in page_diff(&old, &new) {
                    run.push((bucket, k.to_vec(), after.map(|v| v.to_vec())));
                }
                changed.push((key, old, new));
            }
            let run = if run.is_empty() {
                Vec::new()
            } else {
                compress(&encode_run(&run))?
            };
            Ok(Worked {
                run,
                pages_after,
                changed,
            })
        };
        let schedule: Vec<usize> = (0..read.len()).collect();
        let worked = crate::roster::par::parallel_map(&read, &schedule, work);
        let mut plans: Vec<Plan> = Vec::with_capacity(read.len());
        for ((prefix, _, seg), worked) in read.iter().zip(worked) {
            let Worked {
                run,
                pages_after,
                changed,
            } = worked?;
            diffs.entry(prefix).or_default().extend(changed);
            let runs = seg.runs_bytes() + run.len() as u64;
            // Runs are overlaid in batch-id order: a run that would not be the newest (a
            // batch id below one already written) is folded into a base instead.
            let out_of_order = seg.runs.last().is_some_and(|(k, _)| {
                k.len() >= 8
                    && k[k.len() - 8..]
                        .try_into()
                        .map(u64::from_be_bytes)
                        .is_ok_and(|last| last >= batch)
            });
            plans.push(Plan {
                share: runs as f64 / seg.base_bytes.max(1) as f64,
                forced: seg.base_bytes == 0 || runs > seg.base_bytes || out_of_order,
                empty: pages_after == 0,
                run,
            });
        }
        for pages in diffs.into_values() {
            out.undo.extend(
                record_changes(pages)?
                    .into_iter()
                    .map(|(k, old, _)| (k, old)),
            );
        }
        // Compaction, per table: forced ones, then the largest shares of runs first, within a
        // budget of the touched bases' bytes, and one past the budget whose runs pass a
        // quarter of its base.
        let mut compact = vec![false; read.len()];
        let mut order: Vec<usize> = (0..read.len()).collect();
        order.sort_by(|&x, &y| {
            read[x]
                .0
                .cmp(read[y].0)
                .then(plans[y].share.total_cmp(&plans[x].share))
        });
        for table in order.chunk_by(|&x, &y| read[x].0 == read[y].0) {
            let touched: u64 = table.iter().map(|&i| read[i].2.base_bytes).sum();
            let mut budget = touched * COMPACT_BUDGET_PERCENT / 100;
            let mut first = true;
            for &i in table {
                let p = &plans[i];
                if p.run.is_empty() && !p.empty {
                    continue;
                }
                let bytes = read[i].2.base_bytes;
                if p.forced || p.empty {
                    compact[i] = true;
                } else if bytes <= budget || (first && p.share * RUN_SHARE_DIVISOR as f64 > 1.0) {
                    budget = budget.saturating_sub(bytes);
                    first = false;
                    compact[i] = true;
                }
            }
        }
        for (i, (prefix, seg_no, seg)) in read.iter().enumerate() {
            let plan = &plans[i];
            if !compact[i] {
                if !plan.run.is_empty() {
                    out.bytes += plan.run.len() as u64;
                    out.delta += plan.run.len() as i64;
                    b.insert(k_run(prefix, *seg_no, batch), plan.run.clone());
                }
                continue;
            }
            // The segment's runs and old base go; its pages as they are after the batch
            // become its base.
            for (k, n) in &seg.runs {
                b.remove(k.as_slice());
                out.delta -= *n as i64;
            }
            let key = k_base(prefix, *seg_no);
            out.delta -= seg.base_bytes as i64;
            if plan.empty {
                b.remove(key);
                continue;
            }
            let written = &tables[prefix][seg_no];
            let mut pages: Vec<(u32, Part)> = Vec::with_capacity(seg.pages.len() + 1);
            let mut w = written.iter().peekable();
            let mut old = seg.pages.iter().peekable();
            loop {
                let next_old = old.peek().map(|&(b, _)| b);
                let next_new = w.peek().map(|(&b, _)| b);
                match (next_old, next_new) {
                    (None, None) => break,
                    (Some(o), n) if n.is_none_or(|n| o < n) => {
                        if let Some((bucket, p)) = old.next() {
                            pages.push((bucket, Part::Raw(p)));
                        }
                    }
                    (o, Some(n)) => {
                        if o == Some(n) {
                            old.next();
                        }
                        if let Some((&bucket, Some(v))) = w.next() {
                            pages.push((bucket, Part::Packed(v)));
                        }
                    }
                    _ => break,
                }
            }
            jobs.push(BaseJob { key, pages });
        }
        for (job, v) in jobs.iter().zip(encode_bases(&jobs)?) {
            out.bytes += v.len() as u64;
            out.delta += v.len() as i64;
            b.insert(job.key.as_slice(), v);
        }
        Ok(out)
    }
}

/// Segments a migration step moves at once: each step is an atomic batch of whole segments,
/// so memory stays bounded by the step, not the store, and a kill between steps leaves every
/// segment either in format 2's pages or in its base (the next open moves the rest).
const MIGRATION_STEP_SEGMENTS: usize = 64;

/// Format 2's pages rewritten as format 3's bases (the migration), in steps of whole
/// segments, each its own atomic batch: a step's bases inserted and its page keys removed.
pub(super) fn v2_pages_to_bases(dir: &Path, db: &sled::Db, tree: &sled::Tree) -> Result<()> {
    while v2_step(dir, db, tree, MIGRATION_STEP_SEGMENTS)? {}
    Ok(())
}

/// One step of [`v2_pages_to_bases`]: up to `max` segments moved; false when none was left.
pub(super) fn v2_step(dir: &Path, db: &sled::Db, tree: &sled::Tree, max: usize) -> Result<bool> {
    {
        // The next step's segments, (table prefix, segment) -> their pages (LZ4 values).
        let mut segs: BTreeMap<(Vec<u8>, u32), StoredPages> = BTreeMap::new();
        let mut keys: Vec<sled::IVec> = Vec::new();
        for kv in tree.scan_prefix(b"r\0") {
            let (k, v) = kv?;
            let (prefix, bucket) = split_page_key(&k).ok_or_else(|| corrupt(&k, "bad page key"))?;
            let id = (prefix.to_vec(), segment_of(bucket));
            if !segs.contains_key(&id) && segs.len() == max {
                break;
            }
            segs.entry(id).or_default().push((bucket, v));
            keys.push(k);
        }
        if segs.is_empty() {
            return Ok(false);
        }
        let jobs: Vec<BaseJob> = segs
            .iter()
            .map(|((prefix, seg), pages)| BaseJob {
                key: k_base(prefix, *seg),
                pages: pages.iter().map(|(b, v)| (*b, Part::Packed(v))).collect(),
            })
            .collect();
        let mut b = Writes::default();
        for k in &keys {
            b.remove(k);
        }
        for (job, v) in jobs.iter().zip(encode_bases(&jobs)?) {
            b.insert(job.key.as_slice(), v);
        }
        super::journal::apply(dir, db, tree, &b)?;
        Ok(true)
    }
}

/// The bytes each source's records take (bases and runs), read from the store.
pub(super) fn stored_bytes(tree: &sled::Tree) -> Result<BTreeMap<String, u64>> {
    let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
    for p in [&b"g\0"[..], b"d\0"] {
        for kv in tree.scan_prefix(p) {
            let (k, v) = kv?;
            *bytes.entry(source_of(&k)).or_default() += v.len() as u64;
        }
    }
    Ok(bytes)
}

/// The source named in a key `<letter>\0<source>\0...` (a record prefix, a base, a run).
fn source_of(prefix: &[u8]) -> String {
    let rest = prefix.get(2..).unwrap_or_default();
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str) -> Vec<u8> {
        let mut r = Vec::new();
        put_field(&mut r, "name", v).unwrap();
        r
    }

    #[test]
    fn a_run_overlays_its_records_on_the_pages_it_names() {
        let mut pages = Pages::default();
        pages.insert(
            3,
            &encode_page_raw(&[(b"a".to_vec(), rec("A")), (b"b".to_vec(), rec("B"))]).unwrap(),
        );
        pages.insert(7, &encode_page_raw(&[(b"z".to_vec(), rec("Z"))]).unwrap());
        let run = vec![
            (3, b"a".to_vec(), None),
            (3, b"c".to_vec(), Some(rec("C"))),
            (7, b"z".to_vec(), None),
            (9, b"q".to_vec(), Some(rec("Q"))),
        ];
        let raw = encode_run(&run);
        assert_eq!(decode_run(&raw, 0).unwrap(), run);
        apply_run(&mut pages, run).unwrap();
        let keys: Vec<(u32, Vec<Vec<u8>>)> = pages
            .iter()
            .map(|(b, p)| {
                (
                    b,
                    decode_page(p).unwrap().into_iter().map(|r| r.0).collect(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (3, vec![b"b".to_vec(), b"c".to_vec()]),
                (9, vec![b"q".to_vec()])
            ]
        );
    }

    #[test]
    fn damaged_bases_and_runs_do_not_decode() {
        let mut raw = Vec::new();
        put_varint(&mut raw, 5);
        put_varint(&mut raw, 2);
        raw.extend_from_slice(b"xy");
        let base = decode_base(raw.clone(), 0).unwrap();
        assert_eq!(base.len(), 1);
        assert_eq!(base.get(5), Some(&b"xy"[..]));
        assert_eq!(base.get(4), None);
        // A bucket of another segment.
        assert!(decode_base(raw.clone(), 1).is_none());
        // A length past the end; buckets out of order; an empty page.
        assert!(decode_base(raw[..raw.len() - 1].to_vec(), 0).is_none());
        let twice = [raw.clone(), raw.clone()].concat();
        assert!(decode_base(twice, 0).is_none());
        assert!(decode_base(vec![1, 0], 0).is_none());
        // A record that is not in the pair encoding.
        assert!(decode_run(&[0, 1, b'k', 3, 9, 9], 0).is_none());
        assert!(decode_run(&[0x80, 0x02, 1, b'k', 0], 0).is_none());
        assert!(decompress(b"not zstd").is_none());
        assert!(decompress(b"").is_none());
        let packed = compress(&raw).unwrap();
        assert_eq!(decompress(&packed).unwrap(), raw);
        // Cut short: refused. Two frames (more than the first declares): read through the
        // stream reader, as before sizes were trusted.
        assert!(decompress(&packed[..packed.len() - 1]).is_none());
        let twice = decompress(&[packed.clone(), packed.clone()].concat()).unwrap();
        assert_eq!(twice, [raw.clone(), raw.clone()].concat());
        // A value declaring more than is reserved up front inflates through the reader.
        let big = vec![7u8; (DECLARED_INFLATE + 1) as usize];
        assert_eq!(decompress(&compress(&big).unwrap()).unwrap(), big);
    }
}
