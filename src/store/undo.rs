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
    type Side = BTreeMap<Vec<u8>, Vec<u8>>;
    let mut tables: BTreeMap<Vec<u8>, (Side, Side)> = BTreeMap::new();
    for (k, old, new) in pages {
        let (prefix, _, _) = split_record_key(&k).ok_or_else(|| corrupt(&k, "bad page key"))?;
        let e = tables.entry(prefix.to_vec()).or_default();
        e.0.extend(old);
        e.1.extend(new);
    }
    let mut out = Vec::new();
    for (prefix, (mut old, mut new)) in tables {
        let ids: std::collections::BTreeSet<Vec<u8>> =
            old.keys().chain(new.keys()).cloned().collect();
        for id in ids {
            let (a, b) = (old.remove(&id), new.remove(&id));
            if a != b {
                out.push(([prefix.as_slice(), &id].concat(), a, b));
            }
        }
    }
    Ok(out)
}

/// Page writes that give records the values in `changes` (`r\0<source>\0<table>\0<id>` ->
/// value, `None` to delete), each record in its page under `buckets` (a table without a
/// count gets one for the records named here). `load` reads a page as it is now.
pub(super) fn page_writes(
    changes: &ChangeSet,
    buckets: &mut BTreeMap<String, u32>,
    mut load: impl FnMut(&[u8]) -> Result<Page>,
) -> Result<ChangeSet> {
    let mut per_table: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, _) in changes {
        let (_, t, _) = split_record_key(k).ok_or_else(|| corrupt(k, "bad record key"))?;
        *per_table.entry(t).or_default() += 1;
    }
    for (t, n) in per_table {
        buckets
            .entry(t.to_string())
            .or_insert_with(|| buckets_for(n));
    }
    let mut pages: BTreeMap<Vec<u8>, Vec<(&[u8], Option<&Vec<u8>>)>> = BTreeMap::new();
    for (k, v) in changes {
        let (prefix, t, id) = split_record_key(k).ok_or_else(|| corrupt(k, "bad record key"))?;
        let b = buckets.get(t).copied().unwrap_or(1);
        let pk = [prefix, &bucket_of(id, b).to_be_bytes()].concat();
        pages.entry(pk).or_default().push((id, v.as_ref()));
    }
    let mut out = Vec::with_capacity(pages.len());
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

    /// The undo data of page writes: every record they change, with its value now.
    pub(super) fn undo_of(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<ChangeSet> {
        let mut pages = Vec::new();
        for (k, v) in changes {
            if !k.starts_with(b"r\0") {
                continue;
            }
            let new = match v {
                Some(v) => read_page(v).ok_or_else(|| {
                    StoreError::Unverified(String::from_utf8_lossy(k).replace('\0', "/"))
                })?,
                None => Vec::new(),
            };
            pages.push((k.clone(), self.load_page(k)?, new));
        }
        Ok(record_changes(pages)?
            .into_iter()
            .map(|(k, old, _)| (k, old))
            .collect())
    }
}
