//! Opening an older store. Format 1 to 2: one atomic batch re-encodes every source's records in format-2
//! pages (re-bucketed for format 2's smaller pages), turns the undo data of each source's
//! last applied batch into format 2's record undo, re-expresses the writes of held batches
//! that can still be approved in the new pages, and drops what no command can reach any more
//! (the undo data of older batches; the writes of held batches checked against a roster that
//! is no longer the source's). History entries and source states are kept as they are, but
//! for the page counts.

use super::undo::{page_writes, record_changes, split_record_key};
use super::*;

/// Migrates the store in `tree` from format `found` to [`FORMAT_VERSION`]; nothing is
/// changed unless all of it is (one journalled write).
pub(super) fn to_v2(dir: &Path, db: &sled::Db, tree: &sled::Tree, found: u32) -> Result<()> {
    if found != 1 {
        return Err(corrupt(
            K_VERSION,
            format!("no migration from format {found}"),
        ));
    }
    let mut b = Writes::default();
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
            let writes = page_writes(
                &records,
                &mut buckets,
                |k| Ok(new_pages.get(k).cloned().unwrap_or_default()),
                |prefix| {
                    Ok(new_pages
                        .keys()
                        .filter(|k| k.starts_with(prefix))
                        .cloned()
                        .collect())
                },
            )?;
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
    b.insert(K_VERSION, b"2");
    journal::apply(dir, db, tree, &b)?;
    tracing::info!(from = found, to = 2, "store format migrated");
    Ok(())
}

/// Migrates a format-2 store to format 3: every source's logical pages go into segment bases
/// (`segments.rs`), a step of whole segments per atomic batch; then the source states, in one
/// more. The version is today's and `m\0migrating` is set before the first step (a format-2 release
/// then refuses the store instead of reading it with some pages moved); a kill before the
/// last batch leaves the marker, and the next open moves the rest. Undo data and held batches' writes are logical
/// pages and records in both formats, and stay as they are.
pub(super) fn to_v3(dir: &Path, db: &sled::Db, tree: &sled::Tree) -> Result<()> {
    // The version is today's from the first step on, so that a format-2 release refuses the store
    // instead of reading it with some pages moved; the marker says the move is not finished.
    let mut b = Writes::default();
    b.insert(K_VERSION, FORMAT_VERSION.to_string().as_bytes());
    b.insert(K_MIGRATING, b"3");
    journal::apply(dir, db, tree, &b)?;
    super::segments::v2_pages_to_bases(dir, db, tree)?;
    let mut b = Writes::default();
    let bytes = super::segments::stored_bytes(tree)?;
    for kv in tree.scan_prefix(b"s\0") {
        let (k, v) = kv?;
        let name = String::from_utf8_lossy(&k[2..]).into_owned();
        let mut st: SourceState =
            serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?;
        st.stored_bytes = bytes.get(&name).copied().unwrap_or(0);
        b.insert(&*k, json(&st)?);
    }
    b.remove(K_MIGRATING);
    journal::apply(dir, db, tree, &b)?;
    tracing::info!(from = 2, to = FORMAT_VERSION, "store format migrated");
    Ok(())
}

/// Format 4 is format 3 with the journal (`journal.rs`): a store may hold a write that must
/// be completed before it is read. Nothing moves; the version is what keeps a release that
/// does not know the journal from reading such a store, or writing over one whose journal a
/// later open would then apply over its writes. (A format-2 store goes straight to 4: its
/// migration writes [`FORMAT_VERSION`].)
pub(super) fn to_v4(dir: &Path, db: &sled::Db, tree: &sled::Tree) -> Result<()> {
    let mut b = Writes::default();
    b.insert(K_VERSION, FORMAT_VERSION.to_string().as_bytes());
    journal::apply(dir, db, tree, &b)?;
    tracing::info!(from = 3, to = FORMAT_VERSION, "store format migrated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/testdata");

    /// A fixture store: `v1` (format 1) to `v4` (format 4), each written by
    /// the release of its format (README there) with that release's exports beside it.
    fn fixture(version: &str) -> PathBuf {
        Path::new(FIXTURES).join(version)
    }

    /// A copy of a fixture's store.
    fn fixture_store(version: &str, dir: &Path) -> PathBuf {
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        for e in std::fs::read_dir(fixture(version).join("db")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), db.join(e.file_name())).unwrap();
        }
        db
    }

    /// Every file of a bundle directory, by name.
    fn files(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect()
    }

    fn expected(version: &str, name: &str) -> BTreeMap<String, String> {
        files(&fixture(version).join("export").join(name))
    }

    fn exported(s: &Store, source: &str, dir: &Path) -> BTreeMap<String, String> {
        let out = dir.join(format!("out-{source}-{}", s.history(None).unwrap().len()));
        s.export(source, &out).unwrap();
        files(&out)
    }

    /// `show` without its report line (the fixture's reports are not kept).
    fn show(text: &str) -> String {
        text.lines()
            .filter(|l| !l.starts_with("reports:"))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn a_format_1_store_opens_migrated_and_keeps_its_roster_history_undo_and_held_batches() {
        opens_migrated_and_does_what_its_release_did("v1", b"1");
    }

    #[test]
    fn a_format_2_store_opens_migrated_and_keeps_its_roster_history_undo_and_held_batches() {
        opens_migrated_and_does_what_its_release_did("v2", b"2");
    }

    #[test]
    fn a_format_3_store_opens_migrated_and_keeps_its_roster_history_undo_and_held_batches() {
        opens_migrated_and_does_what_its_release_did("v3", b"3");
    }

    #[test]
    fn a_format_4_store_written_by_its_release_opens_and_keeps_its_roster_history_undo_and_held_batches(
    ) {
        opens_migrated_and_does_what_its_release_did("v4", b"4");
    }

    /// Opens a copy of fixture `version` (written in format `found`): it is migrated to
    /// today's format, and its history, `show`, exports, a rollback and an approval are what
    /// the release that wrote it printed.
    fn opens_migrated_and_does_what_its_release_did(version: &str, found: &[u8]) {
        let d = tempfile::tempdir().unwrap();
        let db = fixture_store(version, d.path());
        {
            let raw = sled::open(&db).unwrap();
            let t = raw.open_tree("roster").unwrap();
            assert_eq!(&*t.get(K_VERSION).unwrap().unwrap(), found);
        }
        let s = Store::open(&db).unwrap();
        assert_eq!(
            &*s.tree.get(K_VERSION).unwrap().unwrap(),
            FORMAT_VERSION.to_string().as_bytes()
        );
        let expected = |name: &str| expected(version, name);
        let fixture = fixture(version);

        // The same history, line for line, as the release that wrote it printed.
        let history = std::fs::read_to_string(fixture.join("export/history.txt"));
        assert_eq!(
            views::history_text(&s.history(None).unwrap()),
            history.unwrap()
        );
        for id in [2, 5] {
            let want =
                std::fs::read_to_string(fixture.join(format!("export/show-{id}.txt"))).unwrap();
            assert_eq!(show(&views::show_text(&s.batch(id).unwrap())), show(&want));
        }

        // The same roster, byte for byte, as that release exported.
        for source in ["north", "south", "held"] {
            assert_eq!(exported(&s, source, d.path()), expected(source), "{source}");
        }

        // No format-2 page is left; every page decodes from its segment, in today's page
        // counts.
        assert_eq!(s.tree.scan_prefix(b"r\0").count(), 0);
        let mut pages = Vec::new();
        for table in ["students", "rosters", "classes", "locations"] {
            let prefix = k_records("north", table);
            for p in s.table_pages(&prefix).unwrap() {
                let p = p.unwrap();
                let k = [&prefix[..], &p.bucket.to_be_bytes()].concat();
                pages.push((k, Some(pack(p.raw()))));
            }
        }
        assert!(pages.len() >= 4);
        verify_pages(&pages).unwrap();
        let st = s.state("north").unwrap();
        assert_eq!(st.buckets["rosters"], buckets_for(9));
        assert_eq!(
            s.count("north", "students").unwrap(),
            s.records("north", "students").unwrap().len() as u64
        );

        // Undo data: the last applied batch's of each source is kept (north 2, south 3,
        // held 4); batch 1's can never be used again and is gone.
        let undo: Vec<u64> = s
            .tree
            .scan_prefix(b"u\0")
            .map(|kv| u64::from_be_bytes(kv.unwrap().0[2..10].try_into().unwrap()))
            .collect();
        assert_eq!(undo, [2, 3, 4]);

        // Rollback of north's last batch and approval of held's held batch give what the
        // release that wrote the store gave.
        let rb = s.rollback(2).unwrap();
        assert_eq!(rb.state, BatchState::Applied);
        assert_eq!(rb.totals(), (0, 0, 9));
        assert_eq!(
            exported(&s, "north", d.path()),
            expected("north-rolled-back")
        );
        let ap = s.approve(5).unwrap();
        assert_eq!(ap.state, BatchState::Applied);
        assert_eq!(ap.totals(), (0, 1, 10));
        assert_eq!(exported(&s, "held", d.path()), expected("held-approved"));
        assert_eq!(exported(&s, "south", d.path()), expected("south"));

        // Opened again: nothing more to migrate, the same roster.
        drop(s);
        let s = Store::open(&db).unwrap();
        assert_eq!(
            exported(&s, "north", d.path()),
            expected("north-rolled-back")
        );
        assert_eq!(exported(&s, "held", d.path()), expected("held-approved"));
        // And the rollback can itself be rolled back, to the roster before it.
        s.rollback(rb.id).unwrap();
        assert_eq!(exported(&s, "north", d.path()), expected("north"));
    }

    #[test]
    fn a_migration_to_format_3_cut_short_is_finished_by_the_next_open() {
        let d = tempfile::tempdir().unwrap();
        let db = fixture_store("v2", d.path());
        {
            // What a kill after the first step leaves: version 3, the marker, one segment
            // moved and the other pages still in format 2.
            let raw = sled::open(&db).unwrap();
            let t = raw.open_tree("roster").unwrap();
            t.insert(K_VERSION, b"3").unwrap();
            t.insert(K_MIGRATING, b"3").unwrap();
            assert!(crate::store::segments::v2_step(&db, &raw, &t, 1).unwrap());
            assert!(t.scan_prefix(b"r\0").next().is_some());
            assert!(t.scan_prefix(b"g\0").next().is_some());
            raw.flush().unwrap();
        }
        let s = Store::open(&db).unwrap();
        assert_eq!(s.tree.scan_prefix(b"r\0").count(), 0);
        assert!(s.tree.get(K_MIGRATING).unwrap().is_none());
        for source in ["north", "south", "held"] {
            assert_eq!(
                exported(&s, source, d.path()),
                expected("v2", source),
                "{source}"
            );
            let st = s.state(source).unwrap();
            let on_disk: u64 = [&b"g\0"[..], b"d\0"]
                .iter()
                .flat_map(|p| {
                    s.tree
                        .scan_prefix([&p[..], source.as_bytes(), b"\0"].concat())
                })
                .map(|kv| kv.unwrap().1.len() as u64)
                .sum();
            assert_eq!(st.stored_bytes, on_disk, "{source}");
        }
    }

    #[test]
    fn a_store_from_a_newer_format_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let db = fixture_store("v1", d.path());
        let newer = (FORMAT_VERSION + 1).to_string();
        {
            let raw = sled::open(&db).unwrap();
            let t = raw.open_tree("roster").unwrap();
            t.insert(K_VERSION, newer.as_bytes()).unwrap();
            raw.flush().unwrap();
        }
        assert!(matches!(
            Store::open(&db),
            Err(StoreError::Version { found }) if found == FORMAT_VERSION + 1
        ));
    }
}
