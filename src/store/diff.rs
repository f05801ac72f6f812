//! The diff of a checked bundle against the stored roster, and the cascade of deletions it
//! takes with it (a removed school takes its classes, a removed user its enrollments).

use super::roles::gives_roles;
use super::*;

impl Store {
    /// Adds the page writes one uploaded table makes to the stored roster, and returns its
    /// record counts and the table's bucket count after the batch.
    pub(super) fn diff_table(
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
        // (bucket, row, id): the id kept, so that the merge below does not read the row's text
        // again in page order (random over a large table).
        let keyed: Vec<(u32, u32, &[u8])> = {
            let ids: Vec<&[u8]> = rows.iter().map(|&r| id(r)).collect();
            let bucket: Vec<u32> = ids.iter().map(|k| bucket_of(k, b)).collect();
            let mut start = vec![0usize; b as usize + 1];
            for &k in &bucket {
                start[k as usize + 1] += 1;
            }
            for i in 1..start.len() {
                start[i] += start[i - 1];
            }
            // (sort word, index into `rows`) per bucket, then sorted by key within each
            // bucket. A table's ids share a prefix (`R000`), so each carries the eight bytes
            // after it as a word that orders as the ids do: the sort compares words, and the
            // ids' text (at random over the upload) only when the words tie.
            let shared = shared_prefix(ids.iter().copied());
            let mut out = vec![(0u64, 0u32); rows.len()];
            let mut next = start.clone();
            for (i, (&k, id)) in bucket.iter().zip(&ids).enumerate() {
                out[next[k as usize]] = (sort_word(id, shared), i as u32);
                next[k as usize] += 1;
            }
            let mut keyed = Vec::with_capacity(rows.len());
            for k in 0..b as usize {
                let group = &mut out[start[k]..start[k + 1]];
                group.sort_unstable_by(|x, y| {
                    x.0.cmp(&y.0)
                        .then_with(|| ids[x.1 as usize].cmp(ids[y.1 as usize]))
                });
                keyed.extend(
                    group
                        .iter()
                        .map(|&(_, i)| (k as u32, rows[i as usize], ids[i as usize])),
                );
            }
            keyed
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
            for k in self.page_keys(&k_records(source, w.def.name))? {
                writes.insert(k, None);
            }
            for group in keyed.chunk_by(|x, y| x.0 == y.0) {
                let recs: Vec<(&[u8], Vec<u8>)> = group
                    .iter()
                    .map(|&(_, r, k)| {
                        encode_row(w, r as usize, &mut buf)?;
                        Ok((k, buf.clone()))
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
        // A large table is merged in two halves of its buckets, split at a segment, on two
        // threads; the second half's writes and removals follow the first's, as one pass
        // would have made them.
        let split = (keyed.len() >= PARALLEL_MERGE_ROWS)
            .then(|| keyed[keyed.len() / 2].0 >> segments::SEGMENT_BITS << segments::SEGMENT_BITS)
            .filter(|&at| at > 0);
        match split {
            None => {
                let all = Half {
                    keyed: &keyed,
                    from: 0,
                    to: None,
                };
                self.merge_pages(source, w, &enc, all, &gone, &mut counts, changes, removed)?;
            }
            Some(at) => {
                let mid = keyed.partition_point(|x| x.0 < at);
                let (lo, hi) = keyed.split_at(mid);
                let (mut hi_counts, mut hi_changes, mut hi_removed) =
                    (TableCounts::default(), ChangeSet::new(), Removed::default());
                std::thread::scope(|s| -> Result<()> {
                    let span = tracing::Span::current();
                    let (enc, gone) = (&enc, &gone);
                    let (c, ch, r) = (&mut hi_counts, &mut hi_changes, &mut hi_removed);
                    let upper = s.spawn(move || {
                        let _g = span.enter();
                        let half = Half {
                            keyed: hi,
                            from: at,
                            to: None,
                        };
                        self.merge_pages(source, w, enc, half, gone, c, ch, r)
                    });
                    let half = Half {
                        keyed: lo,
                        from: 0,
                        to: Some(at),
                    };
                    let low =
                        self.merge_pages(source, w, enc, half, gone, &mut counts, changes, removed);
                    let high = upper
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p));
                    low.and(high)
                })?;
                counts.adds += hi_counts.adds;
                counts.updates += hi_counts.updates;
                counts.deletes += hi_counts.deletes;
                counts.pages_written += hi_counts.pages_written;
                counts.before += hi_counts.before;
                changes.append(&mut hi_changes);
                removed.ids.append(&mut hi_removed.ids);
            }
        }
        tracing::debug!(
            table = w.def.name,
            ms = t0.elapsed().as_millis() as u64,
            "diffed"
        );
        Ok((counts, b))
    }

    /// The same-bucket merge of [`Store::diff_table`] over one `half` of a table's buckets.
    #[allow(clippy::too_many_arguments)]
    fn merge_pages(
        &self,
        source: &str,
        w: &Work,
        enc: &RowEncoder,
        half: Half<'_>,
        gone: &Origin,
        counts: &mut TableCounts,
        changes: &mut ChangeSet,
        removed: &mut Removed,
    ) -> Result<()> {
        let mut scratch = PageScratch::default();
        let mut stored = self.table_pages_from(&k_records(source, w.def.name), half.from)?;
        let mut next_stored = || -> Result<Option<segments::PageRef>> {
            match stored.next().transpose()? {
                Some(p) if half.to.is_none_or(|to| p.bucket < to) => Ok(Some(p)),
                _ => Ok(None),
            }
        };
        let mut cur = next_stored()?;
        let mut groups = half.keyed.chunk_by(|x, y| x.0 == y.0).peekable();
        // Rows are read in page order, at random over the upload's text: the rows of the
        // next pages are asked of memory ahead of their encoding.
        let (mut taken, mut fetched) = (0usize, 0usize);
        let mut buf = Vec::new();
        loop {
            let sb = cur.as_ref().map(|p| p.bucket);
            let gb = groups.peek().map(|g| g[0].0);
            let bucket = match (sb, gb) {
                (None, None) => break,
                (Some(x), None) => x,
                (None, Some(y)) => y,
                (Some(x), Some(y)) => x.min(y),
            };
            let old_page = if sb == Some(bucket) {
                let p = cur.take();
                cur = next_stored()?;
                p
            } else {
                None
            };
            let group: &[(u32, u32, &[u8])] = if gb == Some(bucket) {
                let group = groups.next().unwrap_or(&[]);
                taken += group.len();
                let upto = (taken + PREFETCH_ROWS).min(half.keyed.len());
                for x in half.keyed.get(fetched.max(taken)..upto).unwrap_or_default() {
                    w.table.prefetch(x.1 as usize);
                }
                fetched = upto;
                group
            } else {
                &[]
            };
            let key = k_page(source, w.def.name, bucket);
            // A bulk file is the whole table: the page after the batch is exactly its
            // incoming records. Pages encode canonically, so a page whose encoding is the
            // stored one is unchanged, and only the others are decoded and merged.
            let old_raw = old_page.as_ref().map(|p| p.raw());
            if !group.is_empty() {
                let raw = enc.encode_page(w, group, &mut scratch);
                match old_raw {
                    Some(old) if raw == old => {
                        counts.before += group.len() as u64;
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        // A new page: all its records are adds.
                        counts.adds += group.len() as u64;
                        counts.pages_written += 1;
                        changes.push((key, Some(pack(&raw))));
                        continue;
                    }
                }
            }
            let page: Vec<(&[u8], Vec<u8>)> = group
                .iter()
                .map(|&(_, r, k)| {
                    enc.encode(w, r as usize, &mut buf)?;
                    Ok((k, buf.clone()))
                })
                .collect::<Result<_>>()?;
            let new_raw = if page.is_empty() {
                None
            } else {
                Some(encode_page_raw(&page)?)
            };
            if old_raw == new_raw.as_deref() {
                counts.before += page.len() as u64;
                continue;
            }
            let old: Page = match old_raw {
                Some(raw) => decode_page(raw).ok_or_else(|| corrupt(&key, "undecodable page"))?,
                None => Vec::new(),
            };
            counts.before += old.len() as u64;
            // Differing bytes with the same records would be a page another encoder wrote:
            // left as it is.
            let mut changed = false;
            let (mut i, mut j) = (0, 0);
            while i < old.len() || j < page.len() {
                let ord = match (old.get(i), page.get(j)) {
                    (Some(o), Some((k, _))) => o.0.as_slice().cmp(k),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    _ => std::cmp::Ordering::Greater,
                };
                match ord {
                    std::cmp::Ordering::Less => {
                        counts.deletes += 1;
                        removed.push(old[i].0.clone(), gone.clone(), true);
                        changed = true;
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        counts.adds += 1;
                        changed = true;
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        if old[i].1 != page[j].1 {
                            counts.updates += 1;
                            changed = true;
                        }
                        i += 1;
                        j += 1;
                    }
                }
            }
            if changed {
                counts.pages_written += 1;
                changes.push((key, new_raw.map(|raw| pack(&raw))));
            }
        }
        Ok(())
    }

    /// OneRoster delta: upsert `active` rows, delete `tobedeleted` ones, skip rows older than
    /// the stored record.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn diff_delta(
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
                let recs = self.load_page(&k_page(source, w.def.name, bucket))?;
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
                if is_older(incoming, &old_dlm) {
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
}

/// Whether a delta row's `dateLastModified` is older than the stored record's: compared as
/// points in time (`2026-09-01T10:00:00+02:00` is before `2026-09-01T08:30:00Z`), not as text.
/// A value that is empty or not a date-time never makes a row stale: it is applied.
pub(super) fn is_older(incoming: &str, stored: &str) -> bool {
    use crate::roster::values::instant_ms;
    match (instant_ms(incoming.trim()), instant_ms(stored.trim())) {
        (Some(new), Some(old)) => new < old,
        _ => false,
    }
}

/// Where a deletion comes from, for the cascade's report: `users.csv line 5`.
pub(super) type Origin = std::sync::Arc<str>;

/// A record this batch removes from a table.
pub(super) struct Gone {
    pub(super) id: Vec<u8>,
    pub(super) origin: Origin,
    /// Removed by the upload itself (a delta's `tobedeleted`, a bulk file without it): the
    /// engine already checked the bundle's own rows against it.
    pub(super) direct: bool,
    /// The record as the cascade found it when it dropped it, for a record that gives a user a
    /// role (`roles::gives_roles`; `None` otherwise, and for the upload's own removals, which
    /// were stored before the batch): one the batch added and the cascade then dropped has no
    /// stored value to read its user from.
    pub(super) record: Option<Vec<u8>>,
}

/// The records a batch removes from one table, in the order they were found.
#[derive(Default)]
pub(super) struct Removed {
    pub(super) ids: Vec<Gone>,
}

impl Removed {
    pub(super) fn push(&mut self, id: Vec<u8>, origin: Origin, direct: bool) {
        self.ids.push(Gone {
            id,
            origin,
            direct,
            record: None,
        });
    }
}

/// How a record's change counts: nothing, an add, an update or a delete.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    None,
    Add,
    Update,
    Delete,
}

pub(super) fn change(pre: Option<&[u8]>, post: Option<&[u8]>) -> Change {
    match (pre, post) {
        (None, None) => Change::None,
        (None, Some(_)) => Change::Add,
        (Some(_), None) => Change::Delete,
        (Some(a), Some(b)) if a == b => Change::None,
        _ => Change::Update,
    }
}

pub(super) fn slot(c: &mut TableCounts, k: Change) -> Option<&mut u64> {
    match k {
        Change::None => None,
        Change::Add => Some(&mut c.adds),
        Change::Update => Some(&mut c.updates),
        Change::Delete => Some(&mut c.deletes),
    }
}

/// Moves one record's count from what the batch did to it to what it does after the cascade.
pub(super) fn tally(c: &mut TableCounts, was: Change, now: Change) {
    if let Some(n) = slot(c, was) {
        *n = n.saturating_sub(1);
    }
    if let Some(n) = slot(c, now) {
        *n += 1;
    }
}

/// One pre-batch page: its records, sorted by key.
pub(super) type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// A batch's deletions carried through the stored roster along the schema's foreign keys, to
/// a fixpoint: a deleted school deletes its classes, which delete their enrollments; a
/// deleted user is removed from the agent lists that name it. Works on the roster as it will
/// be after the batch: stored pages overlaid with the batch's own writes.
pub(super) struct Cascade<'a> {
    pub(super) store: &'a Store,
    pub(super) source: &'a str,
    pub(super) schema: &'a Schema,
    pub(super) outcome: &'a Outcome,
    /// Bucket counts before and after the batch.
    pub(super) before: &'a SourceState,
    pub(super) after: &'a SourceState,
    pub(super) counts: &'a mut BTreeMap<String, TableCounts>,
    pub(super) changes: &'a mut ChangeSet,
    /// Page key -> its position in `changes`.
    pub(super) index: HashMap<Vec<u8>, usize>,
    /// Pre-batch pages read so far, by key.
    pub(super) stored: HashMap<Vec<u8>, Records>,
}

impl Cascade<'_> {
    pub(super) fn run(
        &mut self,
        removed: &mut BTreeMap<&'static str, Removed>,
    ) -> Result<Vec<Finding>> {
        let fks = self.schema.foreign_keys.clone();
        // Per foreign key: how many of its target's removals it has followed.
        let mut followed = vec![0usize; fks.len()];
        let mut findings = Vec::new();
        // OneRoster 1.2: users the batch leaves without a role go too (`roles.rs`). Who to
        // look at is taken from the batch's own writes before the cascade adds to them.
        let mut roles = match self.schema.format {
            Format::OneRoster12 => Some(self.role_watch()?),
            _ => None,
        };
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
            if progress {
                continue;
            }
            // A user that lost its last role drops what refers to it in the next round.
            let dropped = match roles.as_mut() {
                Some(w) => self.users_keep_a_role(w, removed, &mut findings)?,
                None => false,
            };
            if !dropped {
                break;
            }
        }
        Ok(findings)
    }

    /// The record `id` of `table` as stored before the batch.
    pub(super) fn pre(&mut self, table: &str, id: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(&b) = self.before.buckets.get(table) else {
            return Ok(None);
        };
        let key = k_page(self.source, table, bucket_of(id, b));
        if !self.stored.contains_key(&key) {
            let recs = self.store.load_page(&key)?;
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
    pub(super) fn follow(
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
            let Some((page, overlaid)) = self.page_after(&key)? else {
                continue;
            };
            if page.is_empty() {
                continue;
            }
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
                            id: rk.clone(),
                            origin,
                            direct: false,
                            record: gives_roles(self.schema.format, table).then(|| rv.clone()),
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
                tally(
                    self.counts_of(table)?,
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
                            recs.push((rk.as_slice(), v.as_slice()));
                        }
                        e.next();
                    }
                    _ => recs.push((rk.as_slice(), rv.as_slice())),
                }
            }
            self.put_page(table, key, &recs)?;
        }
        Ok(dropped)
    }

    /// The page `key` as it will be after the batch (the batch's write over the stored page),
    /// and whether the batch writes it; `None` when the batch removes it.
    pub(super) fn page_after(&self, key: &[u8]) -> Result<Option<(Page, bool)>> {
        match self.index.get(key) {
            Some(&i) => match &self.changes[i].1 {
                Some(v) => Ok(Some((
                    read_page(v).ok_or_else(|| corrupt(key, "undecodable page"))?,
                    true,
                ))),
                None => Ok(None),
            },
            None => Ok(Some((self.store.load_page(key)?, false))),
        }
    }

    /// Makes `recs` the page `key` of `table` after the batch (no records: the page goes).
    pub(super) fn put_page(
        &mut self,
        table: &str,
        key: Vec<u8>,
        recs: &[(&[u8], &[u8])],
    ) -> Result<()> {
        let value = if recs.is_empty() {
            None
        } else {
            Some(encode_page(recs)?)
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
        Ok(())
    }

    /// The batch's counts of `table`, begun (with the records stored before it) when the
    /// batch did not upload it.
    pub(super) fn counts_of(&mut self, table: &str) -> Result<&mut TableCounts> {
        let before = match self.counts.contains_key(table) {
            true => 0,
            false => self.store.count(self.source, table)?,
        };
        Ok(self.counts.entry(table.to_string()).or_insert(TableCounts {
            before,
            ..TableCounts::default()
        }))
    }
}

pub(super) fn mode_label(o: &Outcome) -> String {
    let bulk = o.tables.iter().any(|w| w.mode == Mode::Bulk);
    let delta = o.tables.iter().any(|w| w.mode == Mode::Delta);
    match (bulk, delta) {
        (true, true) => "mixed",
        (false, true) => "delta",
        _ => "bulk",
    }
    .to_string()
}

/// How many rows ahead of its encoding the merge asks for a row's text.
const PREFETCH_ROWS: usize = 64;

/// Incoming rows from which a table's merge runs on two threads.
const PARALLEL_MERGE_ROWS: usize = 100_000;

/// The part of a table's buckets one merge covers: `from..to` (`to` of `None`: the end), and
/// the incoming rows in it, grouped by bucket.
struct Half<'a> {
    keyed: &'a [(u32, u32, &'a [u8])],
    from: u32,
    to: Option<u32>,
}
