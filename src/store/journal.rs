//! The store's redo journal: a write to the store lands whole or not at all, whatever the disk
//! does while it lands.
//!
//! sled 0.34 applies a batch atomically in memory, but a write that meets a full disk can leave
//! part of it durable: the ops probe saw batches recorded as applied with half their records,
//! and records stored with no batch recorded. So every write of more than one key is first
//! made durable in a file of its own, `journal` beside sled's files, then applied and flushed,
//! and only then is the file removed. An open that finds the file applies it again. Its
//! writes are whole values under whole keys, so applying them twice leaves what applying them
//! once does: a torn write is completed, and a whole one is left as it is.
//!
//! The file: `MAGIC`, then per write a tag (`INSERT` or `REMOVE`), the key's length (u32
//! little-endian) and the key, and for an insert the value's length and the value; then `END`,
//! the number of writes (u64) and a CRC-32 of every byte before it. It is written under a
//! temporary name, fsynced, renamed, and its folder fsynced, so `journal` is always whole; the
//! checksum catches a medium that changed it since. Hand-written rather than a serde format:
//! 17 bytes of framing, read back with every length checked against the bytes that remain.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{corrupt, Result};

const MAGIC: &[u8; 8] = b"RDJRNL01";
const INSERT: u8 = 1;
const REMOVE: u8 = 0;
const END: u8 = 0xFF;
const FILE: &str = "journal";
const TEMPORARY: &str = "journal.tmp";

/// The writes of one atomic change to the store, in order: a key's last write wins.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Writes {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Writes {
    pub(super) fn insert(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.as_ref().to_vec(), Some(value.into())));
    }

    pub(super) fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }

    /// How many writes, for the log.
    pub(super) fn len_hint(&self) -> usize {
        self.ops.len()
    }

    /// The same writes as one sled batch.
    pub(super) fn to_sled(&self) -> sled::Batch {
        let mut b = sled::Batch::default();
        for (k, v) in &self.ops {
            match v {
                Some(v) => b.insert(k.as_slice(), v.as_slice()),
                None => b.remove(k.as_slice()),
            }
        }
        b
    }

    /// Only the first `n` writes: a torn write, for tests.
    #[cfg(test)]
    pub(super) fn first(&self, n: usize) -> Writes {
        Writes {
            ops: self.ops.iter().take(n).cloned().collect(),
        }
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Whether a journal waits in `dir` (a write this process or an earlier one did not finish).
pub(super) fn pending(dir: &Path) -> bool {
    path(dir).exists()
}

/// Makes `w` durable as `dir/journal`, replacing any journal there. On an error (a full disk)
/// nothing is left behind and the store has not been touched.
pub(super) fn write(dir: &Path, w: &Writes) -> Result<()> {
    let tmp = dir.join(TEMPORARY);
    let written = (|| -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        let mut out = Checked {
            inner: std::io::BufWriter::with_capacity(1 << 20, f),
            crc: crc32fast::Hasher::new(),
        };
        out.write_all(MAGIC)?;
        for (k, v) in &w.ops {
            out.write_all(&[if v.is_some() { INSERT } else { REMOVE }])?;
            write_bytes(&mut out, k)?;
            if let Some(v) = v {
                write_bytes(&mut out, v)?;
            }
        }
        out.write_all(&[END])?;
        out.write_all(&(w.ops.len() as u64).to_le_bytes())?;
        let crc = out.crc.clone().finalize();
        let mut f = out.inner.into_inner().map_err(|e| e.into_error())?;
        f.write_all(&crc.to_le_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path(dir))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// [`write`], then `w` given to sled and flushed, then [`clear`]: a write made whole or not at
/// all, for the format migrations, which run while the store is being opened.
pub(super) fn apply(dir: &Path, db: &sled::Db, tree: &sled::Tree, w: &Writes) -> Result<()> {
    write(dir, w)?;
    tree.apply_batch(w.to_sled())?;
    db.flush()?;
    clear(dir)
}

/// At open: the write a journal in `dir` holds (one an earlier process did not finish)
/// applied again and flushed, and the journal removed. Returns whether there was one.
pub(super) fn complete(dir: &Path, db: &sled::Db, tree: &sled::Tree) -> Result<bool> {
    let found = read(dir)?;
    if let Some(w) = &found {
        tracing::warn!(
            writes = w.len_hint(),
            "completing a store write an earlier process did not finish"
        );
        tree.apply_batch(w.to_sled())?;
        db.flush()?;
    }
    clear(dir)?;
    Ok(found.is_some())
}

/// A length-prefixed byte string. Keys and values are far below 4 GiB (the store refuses
/// larger ones before it writes: `Oversized`); a longer one is an error, not a wrapped length.
fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "value over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// A writer that keeps the CRC-32 of what passes through it.
struct Checked<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The journal in `dir`, if there is one. A journal that does not read back whole is an
/// error that names it: the write it held may be half applied, which only a person can judge.
pub(super) fn read(dir: &Path) -> Result<Option<Writes>> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    decode(&bytes).map(Some).ok_or_else(|| {
        corrupt(
            path(dir).to_string_lossy().as_bytes(),
            "the journal of a write cut short does not read back whole, so that write may be \
             half applied; move the file away to open the store as it is, then compare \
             `rosterdrop history` and `rosterdrop export` with the last batches' reports",
        )
    })
}

fn decode(bytes: &[u8]) -> Option<Writes> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut rest = body.strip_prefix(MAGIC.as_slice())?;
    let mut ops = Vec::new();
    loop {
        let (&tag, after) = rest.split_first()?;
        rest = after;
        match tag {
            INSERT | REMOVE => {
                let key = take_bytes(&mut rest)?;
                let value = if tag == INSERT {
                    Some(take_bytes(&mut rest)?.to_vec())
                } else {
                    None
                };
                ops.push((key.to_vec(), value));
            }
            END => {
                let count = u64::from_le_bytes(rest.try_into().ok()?);
                return (count == ops.len() as u64).then_some(Writes { ops });
            }
            _ => return None,
        }
    }
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, after) = rest.split_at_checked(4)?;
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let (bytes, after) = after.split_at_checked(len)?;
    *rest = after;
    Some(bytes)
}

/// Removes the journal once its write is durable in sled, durably: a journal found later
/// would otherwise be applied over the writes that followed it. Also removes a temporary
/// that a process killed while writing one left.
pub(super) fn clear(dir: &Path) -> Result<()> {
    let mut removed = false;
    for name in [FILE, TEMPORARY] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    if removed {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Writes {
        let mut w = Writes::default();
        w.insert(b"g\0north\0students\0\0\0\0\x01", vec![7u8; 3000]);
        w.remove(b"u\0\0\0\0\0\0\0\0\x02");
        w.insert(b"b\0\0\0\0\0\0\0\0\x03", Vec::new());
        w
    }

    #[test]
    fn a_journal_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &sample()).unwrap();
        assert!(pending(dir.path()));
        assert_eq!(read(dir.path()).unwrap(), Some(sample()));
        clear(dir.path()).unwrap();
        assert!(!pending(dir.path()));
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_journal_changed_or_cut_short_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample()).unwrap();
        let whole = std::fs::read(path(dir.path())).unwrap();
        let mut flipped = whole.clone();
        flipped[20] ^= 1;
        for damaged in [
            &whole[..whole.len() - 1],
            &whole[..10],
            &flipped[..],
            &[][..],
        ] {
            std::fs::write(path(dir.path()), damaged).unwrap();
            let e = read(dir.path()).unwrap_err().to_string();
            assert!(e.contains("journal"), "{e}");
            assert!(e.contains("half applied"), "{e}");
        }
        // Every length is checked against what remains: a length pointing past the end, with
        // a checksum that matches, is refused too.
        let mut body = MAGIC.to_vec();
        body.push(INSERT);
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        body.push(END);
        body.extend_from_slice(&1u64.to_le_bytes());
        let crc = crc32fast::hash(&body).to_le_bytes();
        body.extend_from_slice(&crc);
        assert_eq!(decode(&body), None);
    }
}
