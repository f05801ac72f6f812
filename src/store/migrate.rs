//! Opening a format-1 store: one atomic batch re-encodes every source's records in format-2
//! pages (re-bucketed for format 2's smaller pages), turns the undo data of each source's
//! last applied batch into format 2's record undo, re-expresses the writes of held batches
//! that can still be approved in the new pages, and drops what no command can reach any more
//! (the undo data of older batches; the writes of held batches checked against a roster that
//! is no longer the source's). History entries and source states are kept as they are, but
//! for the page counts.

use super::undo::{page_writes, record_changes, split_record_key};
use super::*;

/// Migrates the store in `tree` from format `found` to [`FORMAT_VERSION`]; nothing is
/// changed unless all of it is (one `apply_batch`).
pub(super) fn to_v2(db: &sled::Db, tree: &sled::Tree, found: u32) -> Result<()> {
    if found != 1 {
        return Err(corrupt(
            K_VERSION,
            format!("no migration from format {found}"),
        ));
    }
    let mut b = sled::Batch::default();
    let mut batches: Vec<Batch> = Vec::new();
    for kv in tree.scan_prefix(b"b\0") {
        let (k, v) = kv?;
        batches.push(serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?);
    }
    let mut sources: BTreeMap<String, SourceState> = BTreeMap::new();
    for kv in tree.scan_prefix(b"s\0") {
        let (k, v) = kv?;
        let name = String::from_utf8_lossy(&k[2..]).into_owned();
        let st: SourceState = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?;
        sources.insert(name, st);
    }
    // A source whose only batches are held has no state yet.
    for h in batches.iter().filter(|b| b.state == BatchState::Held) {
        sources.entry(h.source.clone()).or_default();
    }
    let mut keep_undo = std::collections::HashSet::new();
    for (source, st) in &mut sources {
        // The format-1 pages, by key, and every record per table.
        let mut old_pages: BTreeMap<Vec<u8>, Page> = BTreeMap::new();
        let mut tables: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = st
            .buckets
            .keys()
            .map(|t| (t.clone(), BTreeMap::new()))
            .collect();
        for kv in tree.scan_prefix([b"r\0", source.as_bytes(), b"\0"].concat()) {
            let (k, v) = kv?;
            let page = v1::read_page(&v).ok_or_else(|| corrupt(&k, "undecodable page"))?;
            let (_, table, _) = split_record_key(&k).ok_or_else(|| corrupt(&k, "bad page key"))?;
            tables
                .entry(table.to_string())
                .or_default()
                .extend(page.iter().cloned());
            b.remove(&*k);
            old_pages.insert(k.to_vec(), page);
        }
        // Format-2 pages.
        let mut new_pages: BTreeMap<Vec<u8>, Page> = BTreeMap::new();
        st.buckets.clear();
        for (table, recs) in tables {
            let n = buckets_for(recs.len());
            st.buckets.insert(table.clone(), n);
            for (id, rec) in recs {
                new_pages
                    .entry(k_page(source, &table, bucket_of(&id, n)))
                    .or_default()
                    .push((id, rec));
            }
        }
        for (k, recs) in &new_pages {
            b.insert(k.as_slice(), encode_page(recs)?);
        }
        // Undo data of the last applied batch: what its pages held before it, against what
        // they hold now, record by record.
        if let Some(last) = st.last_applied {
            let uk = k_undo(last);
            if let Some(blob) = tree.get(&uk)? {
                let pages = decode_changes(&blob).ok_or_else(|| corrupt(&uk, "undecodable"))?;
                let mut diff = Vec::new();
                for (k, v) in pages.into_iter().filter(|(k, _)| k.starts_with(b"r\0")) {
                    let before = match v {
                        Some(v) => v1::read_page(&v).ok_or_else(|| corrupt(&uk, "undecodable"))?,
                        None => Vec::new(),
                    };
                    let now = old_pages.get(&k).cloned().unwrap_or_default();
                    diff.push((k, before, now));
                }
                let undo: ChangeSet = record_changes(diff)?
                    .into_iter()
                    .map(|(k, before, _)| (k, before))
                    .collect();
                b.insert(uk.as_slice(), encode_changes(&undo)?);
                keep_undo.insert(last);
            }
        }
        // Held batches that can still be approved: their writes as records, then as writes of
        // format-2 pages.
        for h in batches.iter_mut() {
            if h.source != *source || h.state != BatchState::Held {
                continue;
            }
            let pk = k_pending(h.id);
            let Some(blob) = tree.get(&pk)? else { continue };
            if h.base != st.last_applied {
                // approve refuses it whatever it holds; discard needs nothing of it.
                b.remove(pk.as_slice());
                continue;
            }
            let pages = decode_changes(&blob).ok_or_else(|| corrupt(&pk, "undecodable"))?;
            let mut diff = Vec::new();
            for (k, v) in pages.into_iter().filter(|(k, _)| k.starts_with(b"r\0")) {
                let after = match v {
                    Some(v) => v1::read_page(&v).ok_or_else(|| corrupt(&pk, "undecodable"))?,
                    None => Vec::new(),
                };
                let now = old_pages.get(&k).cloned().unwrap_or_default();
                diff.push((k, now, after));
            }
            let records: ChangeSet = record_changes(diff)?
                .into_iter()
                .map(|(k, _, after)| (k, after))
                .collect();
            let mut buckets = st.buckets.clone();
            let writes = page_writes(&records, &mut buckets, |k| {
                Ok(new_pages.get(k).cloned().unwrap_or_default())
            })?;
            b.insert(pk.as_slice(), encode_changes(&writes)?);
            h.buckets_before = st.buckets.clone();
            h.buckets_after = buckets;
            b.insert(k_batch(h.id), json(h)?);
        }
        b.insert(k_state(source), json(st)?);
    }
    for kv in tree.scan_prefix(b"u\0") {
        let (k, _) = kv?;
        let id = k
            .get(2..10)
            .and_then(|x| x.try_into().ok())
            .map(u64::from_be_bytes);
        if !id.is_some_and(|id| keep_undo.contains(&id)) {
            b.remove(&*k);
        }
    }
    b.insert(K_VERSION, FORMAT_VERSION.to_string().as_bytes());
    tree.apply_batch(b)?;
    db.flush()?;
    tracing::info!(from = found, to = FORMAT_VERSION, "store format migrated");
    Ok(())
}
