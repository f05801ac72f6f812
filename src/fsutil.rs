//! Durable file work shared by every layer, each done one way: atomic writes (the file and its
//! folder fsynced), moves that work across file systems, the flag that opens without following
//! symbolic links, the names of uploads still being written, and an I/O error that names its path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An I/O error and the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// `map_err(at(path))`: an I/O error on `path`.
pub fn at(path: &Path) -> impl FnOnce(io::Error) -> IoError + '_ {
    move |source| IoError {
        path: path.to_path_buf(),
        source,
    }
}

/// How [`write_atomic_with`] treats the file it writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteMode {
    /// Mode 0600 from its creation (secrets: account hashes, host keys).
    pub private: bool,
    /// Refuse to replace an existing file: `AlreadyExists` (a hard link instead of a rename).
    pub exclusive: bool,
}

/// Writes `bytes` to `path` atomically and durably: a temporary file beside it, fsync,
/// rename, fsync of the folder. A reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_atomic_with(path, bytes, WriteMode::default())
}

/// [`write_atomic`] with a [`WriteMode`].
pub fn write_atomic_with(path: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), IoError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let written = (|| {
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        if mode.private {
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(at(&tmp))?;
        f.write_all(bytes).map_err(at(&tmp))?;
        f.sync_all().map_err(at(&tmp))?;
        drop(f);
        if mode.exclusive {
            fs::hard_link(&tmp, path).map_err(at(path))?;
            fs::remove_file(&tmp).map_err(at(&tmp))?;
        } else {
            fs::rename(&tmp, path).map_err(at(path))?;
        }
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Removes from `dir` (not below it) the temporaries of [`write_atomic`] calls that a killed
/// process left behind: files named `.<name>.tmp-<pid>-<n>` not modified for `older_than` (no
/// write takes that long, so none is under way). Returns how many it removed.
pub fn remove_stale_temporaries(dir: &Path, older_than: std::time::Duration) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.contains(".tmp-")) {
            continue;
        }
        let stale = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= older_than);
        if stale && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Fsyncs a folder, so that the names created, renamed or removed in it survive a power loss.
/// A file's text, or `None` when it does not exist (a credentials file not written yet).
pub fn read_if_exists(path: &Path) -> Result<Option<String>, IoError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(at(path)(source)),
    }
}

/// Writes a credentials file (SFTP accounts, API clients): `header` then `text`, mode 0600,
/// atomically, its folder made first.
pub fn write_private(path: &Path, header: &str, text: &str) -> Result<(), IoError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(at(dir))?;
    let bytes = [header.as_bytes(), text.as_bytes()].concat();
    let private = WriteMode {
        private: true,
        ..WriteMode::default()
    };
    write_atomic_with(path, &bytes, private)
}

pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// The folder a file is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Moves a file or folder. Across file systems it copies under a temporary name, fsyncs,
/// renames and removes the original, so a crash never leaves a partial copy under `to`.
pub fn move_path(from: &Path, to: &Path) -> Result<(), IoError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let name = to
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = to.with_file_name(format!(".{name}.partial~"));
            if fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_dir()) {
                fs::remove_dir_all(&tmp).map_err(at(&tmp))?;
            } else {
                let _ = fs::remove_file(&tmp);
            }
            copy_deep(from, &tmp)?;
            fs::rename(&tmp, to).map_err(at(to))?;
            if fs::symlink_metadata(from).map_err(at(from))?.is_dir() {
                fs::remove_dir_all(from).map_err(at(from))
            } else {
                fs::remove_file(from).map_err(at(from))
            }
        }
        Err(e) => Err(at(from)(e)),
    }
}

/// Copies regular files and folders (never what a symbolic link points at), fsyncing each file.
fn copy_deep(from: &Path, to: &Path) -> Result<(), IoError> {
    let md = fs::symlink_metadata(from).map_err(at(from))?;
    if md.is_dir() {
        fs::create_dir_all(to).map_err(at(to))?;
        for e in fs::read_dir(from).map_err(at(from))? {
            let e = e.map_err(at(from))?;
            copy_deep(&e.path(), &to.join(e.file_name()))?;
        }
    } else if md.is_file() {
        fs::copy(from, to).map_err(at(from))?;
        File::open(to).and_then(|f| f.sync_all()).map_err(at(to))?;
    }
    Ok(())
}

/// The `O_NOFOLLOW` bits for `OpenOptionsExt::custom_flags`: the open refuses a symbolic link
/// as the last part of the path. From rustix, so the value is right on every architecture (it
/// is not the same number on aarch64 as on x86-64, where 0o400000 would be `O_LARGEFILE`).
pub fn nofollow_flag() -> i32 {
    // The bits fit an `int` on every Linux; the test below pins them to the C library's.
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0)
}

/// Names a writer is still working on, never taken as an upload or as a bundle's file:
/// WinSCP's `.filepart`, `.part` (curl, Firefox), Chrome's `.crdownload`, `.tmp`, and dot
/// files (rsync's and the SFTP server's own temporaries, editors' swap files).
pub fn is_partial_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".filepart")
        || name.ends_with(".part")
        || name.ends_with(".crdownload")
        || name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only old temporaries of `write_atomic` go; fresh ones, other files and folders stay.
    #[test]
    fn stale_temporaries_are_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for n in [
            ".a.json.tmp-12-0",
            ".b.served.tmp-99-3",
            "a.json",
            ".hidden",
        ] {
            fs::write(p.join(n), "x").unwrap();
        }
        fs::create_dir(p.join(".dir.tmp-1-1")).unwrap();
        assert_eq!(
            remove_stale_temporaries(p, std::time::Duration::from_secs(3600)),
            0
        );
        assert_eq!(remove_stale_temporaries(p, std::time::Duration::ZERO), 2);
        let mut left: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".dir.tmp-1-1", ".hidden", "a.json"]);
    }

    #[test]
    fn nofollow_is_the_platform_flag() {
        assert_eq!(nofollow_flag(), libc::O_NOFOLLOW);
    }

    #[test]
    fn a_link_is_not_opened_through() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        let mut o = OpenOptions::new();
        o.read(true).custom_flags(nofollow_flag());
        assert!(o.open(d.path().join("link")).is_err());
        assert!(o.open(d.path().join("real")).is_ok());
    }

    #[test]
    fn atomic_writes_replace_or_refuse_and_leave_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let new = WriteMode {
            exclusive: true,
            ..WriteMode::default()
        };
        let e = write_atomic_with(&p, b"three", new).unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let secret = d.path().join("s");
        let private = WriteMode {
            private: true,
            ..WriteMode::default()
        };
        write_atomic_with(&secret, b"k", private).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn partial_names() {
        for n in [
            ".x",
            "a.zip.filepart",
            "a.part",
            "a.tmp",
            "a.zip.crdownload",
        ] {
            assert!(is_partial_name(n), "{n}");
        }
        for n in ["users.csv", "roster.zip", "READY"] {
            assert!(!is_partial_name(n), "{n}");
        }
    }
}
