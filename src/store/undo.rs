//! Undo data, format 2: the records a batch changed, with their values before it (not, as in
//! format 1, a copy of every page it rewrote), and their replay by rollback.

use super::*;

/// `r\0<source>\0<table>\0` of a page key or of a record key in undo data, and the rest (the
/// bucket of a page key, the id of a record key).
pub(super) fn split_record_key(k: &[u8]) -> Option<(&[u8], &str, &[u8])> {
    let rest = k.strip_prefix(b"r\0")?;
    let s = rest.iter().position(|&c| c == 0)?;
    let t = rest[s + 1..].iter().position(|&c| c == 0)? + s + 1;
    let table = std::str::from_utf8(&rest[s + 1..t]).ok()?;
    Some((&k[..t + 3], table, &rest[t + 1..]))
}

/// One record a change set alters: `r\0<source>\0<table>\0<id>`, its value before and after.
pub(super) type RecordChange = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// The records that differ between the pages before and after a change set, given as
/// (page key, page before, page after); sorted by record key. A record that only moves from
/// one page to another (a table re-bucketed) does not differ.
pub(super) fn record_changes(pages: Vec<(Vec<u8>, Page, Page)>) -> Result<Vec<RecordChange>> {
    use std::cmp::Ordering;
    let mut out: Vec<RecordChange> = Vec::new();
    // Each page merged with its old self (both are sorted by key): only what differs is kept.
    for (k, old, new) in pages {
        let (prefix, _, _) = split_record_key(&k).ok_or_else(|| corrupt(&k, "bad page key"))?;
        let key = |id: &[u8]| [prefix, id].concat();
        let (mut a, mut b) = (old.into_iter().peekable(), new.into_iter().peekable());
        loop {
            let ord = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => x.0.cmp(&y.0),
            };
            match ord {
                Ordering::Less => {
                    let Some((id, v)) = a.next() else { break };
                    out.push((key(&id), Some(v), None));
                }
                Ordering::Greater => {
                    let Some((id, v)) = b.next() else { break };
                    out.push((key(&id), None, Some(v)));
                }
                Ordering::Equal => {
                    let (Some((id, x)), Some((_, y))) = (a.next(), b.next()) else {
                        break;
                    };
                    if x != y {
                        out.push((key(&id), Some(x), Some(y)));
                    }
                }
            }
        }
    }
    // A record that left one page and entered another (re-bucketing) shows up twice: once as
    // gone, once as new. Joined, it differs only if its value did.
    out.sort_by(|x, y| x.0.cmp(&y.0));
    let mut joined: Vec<RecordChange> = Vec::with_capacity(out.len());
    for c in out {
        match joined.last_mut() {
            Some(last) if last.0 == c.0 => {
                if last.1.is_none() {
                    last.1 = c.1;
                }
                if last.2.is_none() {
                    last.2 = c.2;
                }
            }
            _ => joined.push(c),
        }
    }
    joined.retain(|c| c.1 != c.2);
    Ok(joined)
}

/// Page writes that give records the values in `changes` (`r\0<source>\0<table>\0<id>` ->
/// value, `None` to delete; no id and no value: delete every record of the table), each
/// record in its page under `buckets` (a table without a count gets one for the records
/// named here). `load` reads a page as it is now; `pages_of` lists a table's pages.
pub(super) fn page_writes(
    changes: &ChangeSet,
    buckets: &mut BTreeMap<String, u32>,
    mut load: impl FnMut(&[u8]) -> Result<Page>,
    mut pages_of: impl FnMut(&[u8]) -> Result<Vec<Vec<u8>>>,
) -> Result<ChangeSet> {
    let (emptied, changes): (Vec<_>, Vec<_>) = changes.iter().partition(|(k, v)| {
        v.is_none() && split_record_key(k).is_some_and(|(_, _, id)| id.is_empty())
    });
    let mut out = Vec::new();
    for (prefix, _) in emptied {
        out.extend(pages_of(prefix)?.into_iter().map(|k| (k, None)));
    }
    let mut per_table: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, _) in &changes {
        let (_, t, _) = split_record_key(k).ok_or_else(|| corrupt(k, "bad record key"))?;
        *per_table.entry(t).or_default() += 1;
    }
    for (t, n) in per_table {
        buckets
            .entry(t.to_string())
            .or_insert_with(|| buckets_for(n));
    }
    type Edits<'a> = Vec<(&'a [u8], Option<&'a Vec<u8>>)>;
    let mut pages: BTreeMap<Vec<u8>, Edits> = BTreeMap::new();
    for (k, v) in changes {
        let (prefix, t, id) = split_record_key(k).ok_or_else(|| corrupt(k, "bad record key"))?;
        let b = buckets.get(t).copied().unwrap_or(1);
        let pk = [prefix, &bucket_of(id, b).to_be_bytes()].concat();
        pages.entry(pk).or_default().push((id, v.as_ref()));
    }
    for (pk, edits) in pages {
        let mut recs = load(&pk)?;
        for (id, v) in edits {
            match (recs.binary_search_by(|(k, _)| k.as_slice().cmp(id)), v) {
                (Ok(i), Some(v)) => recs[i].1.clone_from(v),
                (Ok(i), None) => {
                    recs.remove(i);
                }
                (Err(i), Some(v)) => recs.insert(i, (id.to_vec(), v.clone())),
                (Err(_), None) => {}
            }
        }
        let v = if recs.is_empty() {
            None
        } else {
            Some(encode_page(&recs)?)
        };
        out.push((pk, v));
    }
    verify_pages(&out)?;
    Ok(out)
}

impl Store {
    /// A page as stored now (empty when absent).
    pub(super) fn load_page(&self, k: &[u8]) -> Result<Page> {
        match self.tree.get(k)? {
            Some(v) => read_page(&v).ok_or_else(|| corrupt(k, "undecodable page")),
            None => Ok(Vec::new()),
        }
    }

    /// The undo data of page writes: every record they change, with its value now; a table
    /// that had no records before them is one entry, its `r\0<source>\0<table>\0` with no id
    /// and no value (every record goes: a first batch's undo names no record).
    pub(super) fn undo_of(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<ChangeSet> {
        // Per table: its pages as (key, stored value, new value).
        type Pages<'a> = Vec<(&'a [u8], Option<sled::IVec>, Option<&'a Vec<u8>>)>;
        let mut tables: BTreeMap<&[u8], Pages> = BTreeMap::new();
        for (k, v) in changes {
            let Some((prefix, _, _)) = split_record_key(k) else {
                continue;
            };
            let old = self.tree.get(k)?;
            tables.entry(prefix).or_default().push((k, old, v.as_ref()));
        }
        let mut undo = Vec::new();
        for (prefix, pages) in tables {
            let existed = pages.iter().any(|p| p.1.is_some());
            if !existed && self.tree.scan_prefix(prefix).next().transpose()?.is_none() {
                // Its pages are not even decoded: the table was empty.
                undo.push((prefix.to_vec(), None));
                continue;
            }
            let mut decoded = Vec::with_capacity(pages.len());
            for (k, old, new) in pages {
                let new = match new {
                    Some(v) => read_page(v).ok_or_else(|| {
                        StoreError::Unverified(String::from_utf8_lossy(k).replace('\0', "/"))
                    })?,
                    None => Vec::new(),
                };
                let old = match old {
                    Some(v) => read_page(&v).ok_or_else(|| corrupt(k, "undecodable page"))?,
                    None => Vec::new(),
                };
                decoded.push((k.to_vec(), old, new));
            }
            undo.extend(
                record_changes(decoded)?
                    .into_iter()
                    .map(|(k, old, _)| (k, old)),
            );
        }
        Ok(undo)
    }
}
