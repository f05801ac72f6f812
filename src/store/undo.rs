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

/// A record that differs between two versions of a page: key, value before, value after.
pub(super) type RecordDiff<'a> = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);

/// The records that differ between two versions of one page (both sorted by key): key,
/// value before (`None`: added), value after (`None`: removed).
pub(super) fn page_diff<'a>(old: &'a Page, new: &'a Page) -> Vec<RecordDiff<'a>> {
    use std::cmp::Ordering;
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let ord = match (old.get(i), new.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => x.0.cmp(&y.0),
        };
        match ord {
            Ordering::Less => {
                out.push((&old[i].0[..], Some(&old[i].1[..]), None));
                i += 1;
            }
            Ordering::Greater => {
                out.push((&new[j].0[..], None, Some(&new[j].1[..])));
                j += 1;
            }
            Ordering::Equal => {
                if old[i].1 != new[j].1 {
                    out.push((&old[i].0[..], Some(&old[i].1[..]), Some(&new[j].1[..])));
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The records that differ between the pages before and after a change set, given as
/// (page key, page before, page after); sorted by record key. A record that only moves from
/// one page to another (a table re-bucketed) does not differ.
pub(super) fn record_changes(pages: Vec<(Vec<u8>, Page, Page)>) -> Result<Vec<RecordChange>> {
    let mut out: Vec<RecordChange> = Vec::new();
    for (k, old, new) in &pages {
        let (prefix, _, _) = split_record_key(k).ok_or_else(|| corrupt(k, "bad page key"))?;
        for (id, before, after) in page_diff(old, new) {
            out.push((
                [prefix, id].concat(),
                before.map(<[u8]>::to_vec),
                after.map(<[u8]>::to_vec),
            ));
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
        match self.page(k)? {
            Some(p) => decode_page(p.raw()).ok_or_else(|| corrupt(k, "undecodable page")),
            None => Ok(Vec::new()),
        }
    }
}
