//! Compaction: the database's keys copied into a fresh database that then takes its place.
//!
//! sled 0.34 writes a tree node over 128 KiB (a leaf holding a few segment bases) to a file
//! of its own under `db/blobs/`, and does not always remove that file when the node is
//! replaced: a store written by one `rosterdrop ingest` process a night kept every base its
//! compactions replaced (about 190 MiB after 30 nights of the 200,000-student district, for
//! 20 MiB of records). sled has no call that reclaims them, so a process that wrote to the
//! store copies the live keys into a new database when the directory has grown past two and
//! a half times what it holds ([`Store::close`]), and swaps the two directories in one `rename`.

use super::*;

/// Bytes a database may take beyond its threshold before it is compacted: small stores
/// are left alone.
const COMPACT_SLACK: u64 = 8 << 20;
/// Bytes of keys and values per atomic batch of the copy.
const COPY_BATCH_BYTES: usize = 8 << 20;
/// How long the copy waits for sled to let go of a database it has closed (its flusher
/// thread holds the files a moment after the last handle is dropped).
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Opens of the lock file (each finding the file moved since) before the store counts as in
/// use.
const LOCK_ATTEMPTS: usize = 3;
/// A file in the database's directory beside sled's: the directory's bytes right after its
/// last compaction, in decimal (what is not records, such as years of history, is then not
/// compacted again and again).
const COMPACTED_FILE: &str = "compacted-bytes";

/// What a compaction did: the database directory's bytes before and after, and whether the
/// copy took the old database's place (`false`: the copy was no smaller, and was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
    pub swapped: bool,
}

/// The directory a compaction builds the new database in, beside `dir`.
fn fresh_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".compacting");
    dir.with_file_name(name)
}

/// Takes the store's own lock in `dir`: one process at a time, taken before sled's, so that
/// "in use" is a typed answer (sled reports its own lock only as text).
///
/// A compaction swaps the directory, and the lock file in it, for a new one: a process that
/// opened the old file before the swap and locks it after would hold a lock nobody else
/// sees. So a lock counts only while the path still names the file locked; otherwise the
/// path is opened again.
pub(super) fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("rosterdrop.lock");
    for _ in 0..LOCK_ATTEMPTS {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        if names(&path, &lock)? {
            return Ok(lock);
        }
    }
    Err(StoreError::Locked {
        path: dir.to_path_buf(),
    })
}

/// Whether `path` still names the open `file` (not a file put in its place since).
fn names(path: &Path, file: &std::fs::File) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) => Ok((now.dev(), now.ino()) == (held.dev(), held.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Opens the sled database in `dir`.
pub(super) fn open_db(dir: &Path) -> Result<sled::Db> {
    // sled lets go of its own lock from its flusher thread a moment after the last handle of
    // an earlier open is dropped. The caller holds the store's own lock, so a holder is an
    // earlier handle of this process going away: it is waited for (a store closed and opened
    // again at once, on a loaded machine, found it held), and only then is a snapshot cut
    // short removed.
    if dir.join("db").exists() {
        wait_released(dir)?;
        remove_unfinished_snapshots(dir)?;
    }
    // sled caches up to 1 GiB by default; a roster store needs far less resident.
    match sled::Config::new()
        .path(dir)
        .cache_capacity(64 << 20)
        .open()
    {
        Ok(db) => Ok(db),
        Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
            Err(StoreError::Locked {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes the snapshot a process stopped while writing (called once no sled instance holds
/// `dir`). sled 0.34 writes a snapshot as `snap.<lsn>.generating`, syncs it and renames it to
/// `snap.<lsn>`; but when it opens a database it reads the newest `snap.*` file, `.generating`
/// ones included, and refuses to open at all when that one is cut short ("corrupt snapshot
/// file found", spacejam/sled#1527). Such a file is never the snapshot of record (the one it
/// was to replace is still there, and the log is whole), so it goes. A `kill -9` of
/// `rosterdrop compact` left one, and the store could not be opened.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path())?;
            tracing::warn!(
                file = %name,
                "removed an unfinished sled snapshot (a process was stopped while writing it)"
            );
        }
    }
    Ok(())
}

/// Removes what a compaction that was cut short left beside `dir` (called with the store's
/// lock held): before the swap it is an unfinished copy, after it the old database.
pub(super) fn remove_leftover(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(fresh_dir(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Bytes the files under `p` take (their lengths; 0 for what cannot be read).
pub fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Waits until no sled instance holds the database in `dir` (sled's lock on its `db` file):
/// only then may the directory be moved, as a closing instance still writes by path.
fn wait_released(dir: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("db"))?;
    let t0 = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if t0.elapsed() < RELEASE_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// Whether `dir` can be swapped for a copy beside it: a directory of its own (not a symbolic
/// link, whose target would be left behind) on its parent's filesystem (not a mount point,
/// which a rename cannot move).
fn swappable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)?;
    let parent = dir
        .parent()
        .map(std::fs::metadata)
        .transpose()?
        .map(|m| m.dev());
    if meta.is_dir() && parent == Some(meta.dev()) {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "{} is a symbolic link or a mount point: it cannot be swapped for a compacted copy",
        dir.display()
    ))
    .into())
}

/// Swaps the copy in `fresh` for the database in `dir` if it is smaller (`Ok(false)`: it is
/// not, and `fresh` keeps it). The copy is made durable first, file by file: sled does not
/// sync its blob files, and the old database is removed right after the swap.
fn swap_in(dir: &Path, fresh: &Path, before: u64) -> Result<bool> {
    if dir_bytes(fresh) >= before {
        return Ok(false);
    }
    sync_tree(fresh)?;
    #[cfg(test)]
    if tests::SWAP_REFUSED.with(std::cell::Cell::get) {
        // What a filesystem without `RENAME_EXCHANGE` answers.
        return Err(std::io::Error::from(rustix::io::Errno::INVAL).into());
    }
    // One atomic step: `dir` is the old database before it and the new one after it; a kill
    // at any moment leaves a whole database there, and the other is removed by the next open.
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        fresh,
        rustix::fs::CWD,
        dir,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(std::io::Error::from)?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(true)
}

/// fsync of every file and directory under `p`, and of `p`.
fn sync_tree(p: &Path) -> Result<()> {
    for e in std::fs::read_dir(p)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            sync_tree(&e.path())?;
        } else {
            std::fs::File::open(e.path())?.sync_all()?;
        }
    }
    std::fs::File::open(p)?.sync_all()?;
    Ok(())
}

impl Store {
    /// Closes the store. A store this process wrote to is first compacted when its database
    /// directory takes more than two and a half times the bytes of its records (or a quarter more than its
    /// size after its last compaction, whichever is more) plus 8 MiB: see the module's
    /// notes. A compaction that fails leaves the database as it was.
    pub fn close(self) -> Result<Option<Compacted>> {
        // A write that failed midway is completed by the next open, in this database: a
        // copy now would leave its journal behind with the old one.
        if !self.wrote.load(std::sync::atomic::Ordering::Relaxed)
            || super::journal::pending(&self.dir)
            || !self.has_grown()?
        {
            return Ok(None);
        }
        self.compact_now().map(Some)
    }

    /// Whether the database has grown past the threshold of [`Store::close`].
    pub fn has_grown(&self) -> Result<bool> {
        Ok(swappable(&self.dir).is_ok() && dir_bytes(&self.dir) > self.compaction_threshold()?)
    }

    /// Copies every key of every tree into a fresh database and swaps it in, now.
    pub fn compact_now(self) -> Result<Compacted> {
        let before = dir_bytes(&self.dir);
        self.compact(before)
    }

    fn compaction_threshold(&self) -> Result<u64> {
        let mut records = 0u64;
        for kv in self.tree.scan_prefix(b"s\0") {
            let (k, v) = kv?;
            let st: SourceState =
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?;
            records = records.saturating_add(st.stored_bytes);
        }
        let last: u64 = std::fs::read_to_string(self.dir.join(COMPACTED_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let by_records = records.saturating_mul(5) / 2;
        let by_last = last.saturating_add(last / 4);
        Ok(by_records.max(by_last).saturating_add(COMPACT_SLACK))
    }

    fn compact(self, before: u64) -> Result<Compacted> {
        let _span = tracing::info_span!("compaction").entered();
        if super::journal::pending(&self.dir) {
            return Err(StoreError::Refused(
                "a store write that failed midway waits to be completed; open the store again \
                 (any command does it) before compacting"
                    .into(),
            ));
        }
        swappable(&self.dir)?;
        let fresh = fresh_dir(&self.dir);
        remove_leftover(&self.dir)?;
        std::fs::create_dir_all(&fresh)?;
        let new_lock = lock_dir(&fresh)?;
        if let Err(e) = self.copy_into(&fresh) {
            // Disk full, say: the database is as it was, and the copy goes.
            drop(new_lock);
            let _ = remove_leftover(&self.dir);
            return Err(e);
        }
        let Store {
            db,
            tree,
            dir,
            _lock: old_lock,
            last_handles,
            ..
        } = self;
        drop(last_handles);
        drop(tree);
        drop(db);
        let swapped = wait_released(&dir)
            .and_then(|()| wait_released(&fresh))
            .and_then(|()| swap_in(&dir, &fresh, before));
        // Whatever happened, the other directory goes, under both locks; and a swap that
        // failed or was not worth it is not tried again until the store has grown by another
        // quarter.
        let removed = remove_leftover(&dir);
        let after = dir_bytes(&dir);
        let noted = std::fs::write(dir.join(COMPACTED_FILE), format!("{after}\n"));
        drop((old_lock, new_lock));
        let swapped = swapped?;
        removed?;
        noted?;
        tracing::info!(before, after, swapped, "store compaction");
        Ok(Compacted {
            before,
            after,
            swapped,
        })
    }

    /// Copies every key of every tree into a new database in `fresh`, durably.
    fn copy_into(&self, fresh: &Path) -> Result<()> {
        let new = open_db(fresh)?;
        for name in self.db.tree_names() {
            let (from, to) = (self.db.open_tree(&name)?, new.open_tree(&name)?);
            let (mut batch, mut bytes) = (sled::Batch::default(), 0usize);
            for kv in from.iter() {
                let (k, v) = kv?;
                bytes += k.len() + v.len();
                batch.insert(k, v);
                if bytes >= COPY_BATCH_BYTES {
                    to.apply_batch(std::mem::take(&mut batch))?;
                    bytes = 0;
                }
            }
            to.apply_batch(batch)?;
        }
        new.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Makes this thread's swaps fail as on a filesystem without `RENAME_EXCHANGE`.
        pub(super) static SWAP_REFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A filesystem without `RENAME_EXCHANGE` (some FUSE and network filesystems): the swap
    /// fails, the store is as it was, the copy is gone, and the compaction is not tried again
    /// until the store grows by another quarter.
    #[test]
    fn a_swap_the_filesystem_refuses_leaves_the_store_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        let s = Store::open(&dir).unwrap();
        grow(&s, 6);
        s.tree.insert(K_NEXT_ID, &7u64.to_be_bytes()).unwrap();
        s.flush().unwrap();
        let before = contents(&s);
        SWAP_REFUSED.with(|r| r.set(true));
        let failed = s.compact_now();
        SWAP_REFUSED.with(|r| r.set(false));
        let e = failed.expect_err("the swap was refused");
        assert!(e.to_string().contains("Invalid argument"), "{e}");
        assert!(!fresh_dir(&dir).exists(), "the copy was left behind");
        let s = Store::open(&dir).unwrap();
        assert_eq!(contents(&s), before);
        // Its size is noted: it has not grown since, so closing it tries nothing.
        let noted: u64 = std::fs::read_to_string(dir.join(COMPACTED_FILE))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(noted > 0);
        assert!(!s.has_grown().unwrap());
        // Once it has grown by another quarter, the next close compacts it.
        grow(&s, 4);
        assert!(s.has_grown().unwrap());
    }

    /// Every key and value of every tree, in order.
    fn contents(s: &Store) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for name in s.db.tree_names() {
            for kv in s.db.open_tree(&name).unwrap().iter() {
                let (k, v) = kv.unwrap();
                out.push((name.to_vec(), k.to_vec(), v.to_vec()));
            }
        }
        out
    }

    /// Values over sled's blob threshold, each written several times over: the files of the
    /// replaced ones stay behind.
    fn grow(s: &Store, rounds: u8) {
        for round in 0..rounds {
            for n in 0u32..24 {
                let mut v = vec![round; 200 << 10];
                v[..4].copy_from_slice(&n.to_be_bytes());
                s.tree.insert(format!("g\0north\0big\0{n}"), v).unwrap();
            }
            s.flush().unwrap();
        }
    }

    #[test]
    fn a_compaction_keeps_every_key_and_gives_back_the_space() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        let s = Store::open(&dir).unwrap();
        grow(&s, 6);
        s.tree.insert(K_NEXT_ID, &7u64.to_be_bytes()).unwrap();
        s.db.insert(b"other tree's key", b"kept").unwrap();
        s.flush().unwrap();
        let before = contents(&s);
        let c = s.compact_now().unwrap();
        assert!(c.after < c.before, "{c:?}");
        assert!(!fresh_dir(&dir).exists());
        let s = Store::open(&dir).unwrap();
        assert_eq!(contents(&s), before);
        // And it is a store like any other: written to, closed, opened again.
        s.tree.insert(b"m\0after", b"1").unwrap();
        s.flush().unwrap();
        drop(s);
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.tree.get(b"m\0after").unwrap().as_deref(), Some(&b"1"[..]));
    }

    /// Seen once as a CI failure of `kill_9_during_compact_leaves_the_store_whole`: a process
    /// killed while sled wrote a snapshot left `snap.<lsn>.generating` cut short, and sled
    /// would not open the store ("corrupt snapshot file found").
    #[test]
    fn a_snapshot_cut_short_does_not_stop_the_store_from_opening() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        let s = Store::open(&dir).unwrap();
        s.tree.insert(b"m\0kept", b"1").unwrap();
        s.flush().unwrap();
        drop(s);
        let snaps: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snap."))
            .collect();
        // The newest name of all, as a snapshot of a later point of the log would be, with
        // bytes that end before its length and checksum were written.
        let cut = dir.join("snap.FFFFFFFFFFFFFFF0.generating");
        std::fs::write(&cut, vec![7u8; 4096]).unwrap();
        let s = Store::open(&dir).unwrap_or_else(|e| panic!("{e} (snapshots {snaps:?})"));
        assert_eq!(s.tree.get(b"m\0kept").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(!cut.exists());
    }

    #[test]
    fn close_compacts_only_a_store_this_process_grew_past_its_threshold() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        let s = Store::open(&dir).unwrap();
        s.tree.insert(b"m\0small", b"1").unwrap();
        s.flush().unwrap();
        // Small: under 8 MiB, left alone.
        assert_eq!(s.close().unwrap(), None);
        // Grown, but this process only read it.
        let s = Store::open(&dir).unwrap();
        grow(&s, 8);
        drop(s);
        let s = Store::open(&dir).unwrap();
        assert!(s.tree.get(K_VERSION).unwrap().is_some());
        assert_eq!(s.close().unwrap(), None);
        // Grown by this process: compacted, and the size after is remembered.
        let s = Store::open(&dir).unwrap();
        grow(&s, 2);
        let c = s.close().unwrap().expect("compacted");
        assert!(c.after < c.before, "{c:?}");
        let remembered = std::fs::read_to_string(dir.join(COMPACTED_FILE)).unwrap();
        assert_eq!(remembered.trim(), c.after.to_string());
        // A store whose compacted size is what it holds is not compacted again and again:
        // the threshold is then a quarter above that size.
        let s = Store::open(&dir).unwrap();
        std::fs::write(dir.join(COMPACTED_FILE), format!("{}\n", 1u64 << 40)).unwrap();
        grow(&s, 1);
        assert_eq!(s.close().unwrap(), None);
    }

    #[test]
    fn a_lock_counts_only_on_the_file_its_path_still_names() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        std::fs::create_dir_all(&dir).unwrap();
        let held = lock_dir(&dir).unwrap();
        assert!(matches!(lock_dir(&dir), Err(StoreError::Locked { .. })));
        let path = dir.join("rosterdrop.lock");
        assert!(names(&path, &held).unwrap());
        // What a process that opened the file before a compaction's swap holds after it.
        std::fs::rename(&path, dir.join("moved")).unwrap();
        assert!(!names(&path, &held).unwrap());
        std::fs::write(&path, b"").unwrap();
        assert!(!names(&path, &held).unwrap());
        // The file now at the path is free, and is the one locked.
        let again = lock_dir(&dir).unwrap();
        assert!(names(&path, &again).unwrap());
    }

    #[test]
    fn a_symlinked_database_is_not_swapped_for_a_copy() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("elsewhere").join("db");
        std::fs::create_dir_all(&real).unwrap();
        let dir = d.path().join("db");
        std::os::unix::fs::symlink(&real, &dir).unwrap();
        let s = Store::open(&dir).unwrap();
        grow(&s, 8);
        assert!(!s.has_grown().unwrap());
        let before = contents(&s);
        let e = s.compact_now().unwrap_err();
        assert!(
            e.to_string().contains("symbolic link or a mount point"),
            "{e}"
        );
        assert!(std::fs::symlink_metadata(&dir).unwrap().is_symlink());
        assert!(!fresh_dir(&dir).exists());
        assert_eq!(contents(&Store::open(&dir).unwrap()), before);
    }

    #[test]
    fn a_copy_no_smaller_than_the_database_is_not_swapped_in() {
        let d = tempfile::tempdir().unwrap();
        let (dir, fresh) = (d.path().join("db"), d.path().join("db.compacting"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(fresh.join("blobs")).unwrap();
        std::fs::write(dir.join("db"), vec![1u8; 1000]).unwrap();
        std::fs::write(fresh.join("db"), vec![2u8; 600]).unwrap();
        std::fs::write(fresh.join("blobs").join("7"), vec![2u8; 400]).unwrap();
        assert!(!swap_in(&dir, &fresh, dir_bytes(&dir)).unwrap());
        assert_eq!(std::fs::read(dir.join("db")).unwrap(), vec![1u8; 1000]);
        // Smaller: swapped, the old one left where the copy was.
        std::fs::remove_file(fresh.join("blobs").join("7")).unwrap();
        assert!(swap_in(&dir, &fresh, dir_bytes(&dir)).unwrap());
        assert_eq!(std::fs::read(dir.join("db")).unwrap(), vec![2u8; 600]);
        assert_eq!(std::fs::read(fresh.join("db")).unwrap(), vec![1u8; 1000]);
    }

    #[test]
    fn open_removes_what_a_compaction_cut_short_left_and_keeps_the_database() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        let s = Store::open(&dir).unwrap();
        s.tree.insert(b"m\0kept", b"yes").unwrap();
        s.flush().unwrap();
        drop(s);
        // A copy killed half way (or the old database, after the swap).
        let fresh = fresh_dir(&dir);
        std::fs::create_dir_all(fresh.join("blobs")).unwrap();
        std::fs::write(fresh.join("db"), b"half a database").unwrap();
        std::fs::write(fresh.join("blobs").join("123"), vec![0u8; 4096]).unwrap();
        let s = Store::open(&dir).unwrap();
        assert!(!fresh.exists());
        assert_eq!(
            s.tree.get(b"m\0kept").unwrap().as_deref(),
            Some(&b"yes"[..])
        );
    }
}
