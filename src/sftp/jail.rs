//! The file system one account sees: its drop folder as `/`, plus a read-only virtual
//! `/reports` that shows its source's batch reports. Paths are resolved lexically (`..` stops at
//! `/`), then every existing component is checked with `lstat`: symbolic links are invisible and
//! never followed, and files with more than one hard link are refused.

use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use russh_sftp::protocol::{FileAttributes, StatusCode};

/// Prefix of the hidden temporary name an upload is written under (same folder as the target,
/// so the final rename never crosses file systems). Such names are invisible to clients.
pub const TEMP_PREFIX: &str = ".rosterdrop-upload.";
/// Name of the virtual read-only reports folder in every account's root.
pub const REPORTS: &str = "reports";
/// Most components of any path a request names or creates under the root (a rename counts
/// the deepest descendant of what it moves).
pub const MAX_DEPTH: usize = 16;
const MAX_NAME: usize = 255;
const MAX_PATH: usize = 4096;

/// A refused or failed operation, answered to the client as a status.
#[derive(Debug, Clone, PartialEq)]
pub struct Fail(pub StatusCode, pub String);

impl Fail {
    pub fn new(code: StatusCode, msg: impl Into<String>) -> Fail {
        Fail(code, msg.into())
    }
    pub fn denied(msg: impl Into<String>) -> Fail {
        Fail(StatusCode::PermissionDenied, msg.into())
    }
    pub fn no_such() -> Fail {
        Fail(StatusCode::NoSuchFile, "no such file".into())
    }
    pub fn failure(msg: impl Into<String>) -> Fail {
        Fail(StatusCode::Failure, msg.into())
    }
    /// Maps an I/O error without leaking server paths into the message.
    pub fn io(e: &io::Error) -> Fail {
        match e.kind() {
            io::ErrorKind::NotFound => Fail::no_such(),
            io::ErrorKind::PermissionDenied => Fail::denied("permission denied"),
            io::ErrorKind::AlreadyExists => Fail::failure("file already exists"),
            io::ErrorKind::DirectoryNotEmpty => Fail::failure("directory not empty"),
            io::ErrorKind::IsADirectory => Fail::failure("is a directory"),
            io::ErrorKind::NotADirectory => Fail::no_such(),
            io::ErrorKind::StorageFull => Fail::failure("no space left on server"),
            _ => Fail::failure("operation failed on the server"),
        }
    }
}

/// Where a client path points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`, the account's drop folder.
    Root,
    /// `/reports` itself.
    ReportsRoot,
    /// Something under `/reports`: components below it.
    Report(Vec<String>),
    /// Something in the drop folder: components below `/`.
    Drop(Vec<String>),
}

/// Lexically normalises a client path (relative paths are relative to `/`).
pub fn normalize(path: &str) -> Result<Vec<String>, Fail> {
    if path.len() > MAX_PATH {
        return Err(Fail::failure("path too long"));
    }
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => {
                if name.len() > MAX_NAME {
                    return Err(Fail::failure("name too long"));
                }
                // Control characters, and the invisible ones that break or reorder a line
                // (U+2028, bidi overrides): a name is logged, mailed and shown, and such a
                // name forged log lines and reversed how it read (found by an outside probe).
                if !name.chars().all(crate::roster::text::is_plain) {
                    return Err(Fail::failure("invalid character in name"));
                }
                out.push(name.to_owned());
            }
        }
    }
    Ok(out)
}

/// The client-visible form of normalised components.
pub fn display(comps: &[String]) -> String {
    format!("/{}", comps.join("/"))
}

pub use crate::fsutil::is_partial_name;

pub struct Jail {
    pub root: PathBuf,
    pub reports: PathBuf,
}

/// `lstat` that reports "not found" for anything we refuse to show.
fn lstat_visible(path: &Path) -> io::Result<Metadata> {
    let md = fs::symlink_metadata(path)?;
    if md.file_type().is_symlink() || !(md.is_file() || md.is_dir()) {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok(md)
}

impl Jail {
    pub fn classify(&self, path: &str) -> Result<Target, Fail> {
        let comps = normalize(path)?;
        if comps.is_empty() {
            return Ok(Target::Root);
        }
        if comps[0] == REPORTS {
            if comps.len() == 1 {
                return Ok(Target::ReportsRoot);
            }
            return Ok(Target::Report(comps[1..].to_vec()));
        }
        if comps.iter().any(|c| c.starts_with(TEMP_PREFIX)) {
            return Err(Fail::no_such());
        }
        if comps.len() > MAX_DEPTH {
            return Err(Fail::failure("folders nested too deep"));
        }
        Ok(Target::Drop(comps))
    }

    /// Real path of `comps` under `base`, after checking that every folder on the way is a real
    /// folder (no symbolic link). The last component is not checked.
    fn walk(base: &Path, comps: &[String]) -> Result<PathBuf, Fail> {
        let mut p = base.to_path_buf();
        let n = comps.len();
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            if i + 1 < n {
                let md = lstat_visible(&p).map_err(|e| Fail::io(&e))?;
                if !md.is_dir() {
                    return Err(Fail::no_such());
                }
            }
        }
        Ok(p)
    }

    /// Real path in the drop folder (parents checked).
    pub fn drop_path(&self, comps: &[String]) -> Result<PathBuf, Fail> {
        Self::walk(&self.root, comps)
    }

    /// Real path of a report file or folder (parents checked).
    pub fn report_path(&self, comps: &[String]) -> Result<PathBuf, Fail> {
        Self::walk(&self.reports, comps)
    }

    /// Metadata of a visible entry (no symbolic links, only files and folders).
    pub fn lstat(path: &Path) -> Result<Metadata, Fail> {
        lstat_visible(path).map_err(|e| Fail::io(&e))
    }

    /// Attributes of a target as the client sees them.
    pub fn stat(&self, target: &Target) -> Result<FileAttributes, Fail> {
        match target {
            Target::Root => Ok(dir_attrs(fs::metadata(&self.root).ok().as_ref(), 0o755)),
            Target::ReportsRoot => Ok(dir_attrs(fs::metadata(&self.reports).ok().as_ref(), 0o555)),
            Target::Report(c) => {
                let md = Self::lstat(&self.report_path(c)?)?;
                Ok(attrs(&md, true))
            }
            Target::Drop(c) => {
                let md = Self::lstat(&self.drop_path(c)?)?;
                Ok(attrs(&md, false))
            }
        }
    }
}

fn unix_time(t: io::Result<std::time::SystemTime>) -> Option<u32> {
    t.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs().min(u32::MAX as u64) as u32)
}

fn dir_attrs(md: Option<&Metadata>, perm: u32) -> FileAttributes {
    FileAttributes {
        size: Some(md.map_or(4096, |m| m.len())),
        uid: Some(0),
        gid: Some(0),
        user: None,
        group: None,
        permissions: Some(0o040000 | perm),
        atime: md.and_then(|m| unix_time(m.accessed())),
        mtime: md.and_then(|m| unix_time(m.modified())),
    }
}

/// Client-visible attributes: real size and times, fixed owner and modes (read-only under
/// `/reports`), so nothing about the server's users leaks.
pub fn attrs(md: &Metadata, read_only: bool) -> FileAttributes {
    if md.is_dir() {
        return dir_attrs(Some(md), if read_only { 0o555 } else { 0o755 });
    }
    FileAttributes {
        size: Some(md.len()),
        uid: Some(0),
        gid: Some(0),
        user: None,
        group: None,
        permissions: Some(0o100000 | if read_only { 0o444 } else { 0o644 }),
        atime: unix_time(md.accessed()),
        mtime: unix_time(md.modified()),
    }
}

/// Most entries one walk of a drop folder visits: twice the file quota plus 1000. An account
/// within its quota is always counted exactly; the walk of one that is far over it stops there
/// (and counts as over quota), so no request can make the server walk an unbounded tree.
pub fn walk_limit(cfg: &super::SftpConfig) -> u64 {
    cfg.quota_files.saturating_mul(2).saturating_add(1000)
}

/// Entries of one folder, at most `max`: `(path, metadata, name is an upload temporary)`. The
/// folder's descriptor is closed before this returns, so a walk holds one descriptor at a time
/// however deep it goes. Symbolic links are reported as such (`symlink_metadata`), never
/// followed.
fn entries(dir: &Path, max: u64) -> Vec<(PathBuf, Metadata, bool)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .take(usize::try_from(max).unwrap_or(usize::MAX))
        .filter_map(|e| {
            let temp = e
                .file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes());
            let p = e.path();
            p.symlink_metadata().ok().map(|md| (p, md, temp))
        })
        .collect()
}

/// Bytes and entries in the drop folder, however deep, not counting upload temporaries (they
/// are counted as uploads in flight). Iterative; after `walk_limit(cfg)` entries it stops and
/// answers `(u64::MAX, u64::MAX)`: over every quota.
pub fn usage(root: &Path, cfg: &super::SftpConfig) -> (u64, u64) {
    let limit = walk_limit(cfg);
    let (mut bytes, mut count, mut visited) = (0u64, 0u64, 0u64);
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for (p, md, temp) in entries(&dir, limit + 1 - visited) {
            visited += 1;
            if visited > limit {
                return (u64::MAX, u64::MAX);
            }
            if temp {
                continue;
            }
            if md.is_dir() {
                count += 1;
                todo.push(p);
            } else if md.is_file() {
                bytes = bytes.saturating_add(md.len());
                count += 1;
            }
        }
    }
    (bytes, count)
}

/// Longest real path the server creates, bytes (Linux's PATH_MAX counts the final NUL). A
/// longer one could not be opened or even `lstat`ed by path, so the quota walk would not see
/// it.
pub const MAX_REAL_PATH: usize = 4095;

/// Whether a folder fits where a rename would put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fits {
    Yes,
    /// Something below it would be more than the allowed levels down.
    TooDeep,
    /// Something below it would have a real path longer than [`MAX_REAL_PATH`].
    TooLong,
    /// More than the walk's limit of entries: not looked at further.
    TooBig,
}

/// Whether everything under `dir` stays within `levels` levels below it (a child is one
/// level down) and within `bytes` bytes of path below it (`/name` per level). Iterative,
/// visits at most `limit` entries.
pub fn subtree_fits(dir: &Path, levels: usize, bytes: usize, limit: u64) -> Fits {
    let mut visited = 0u64;
    let mut todo = vec![(dir.to_path_buf(), 0usize, 0usize)];
    while let Some((d, level, len)) = todo.pop() {
        for (p, md, _) in entries(&d, limit + 1 - visited) {
            visited += 1;
            if visited > limit {
                return Fits::TooBig;
            }
            if level + 1 > levels {
                return Fits::TooDeep;
            }
            let name_len = p.file_name().map_or(0, |n| n.len());
            let len = len.saturating_add(1 + name_len);
            if len > bytes {
                return Fits::TooLong;
            }
            if md.is_dir() {
                todo.push((p, level + 1, len));
            }
        }
    }
    Fits::Yes
}

/// Most entries the start-up sweep of upload temporaries visits (all drop folders together).
const SWEEP_LIMIT: u64 = 10_000_000;

/// Removes upload temporaries under `drop_dir` (left if the process was killed mid-upload),
/// however deep. Returns how many were removed. Symbolic links are not followed.
pub fn remove_stale_temporaries(drop_dir: &Path) -> usize {
    let mut n = 0;
    let mut visited = 0u64;
    let mut todo = vec![drop_dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for (p, md, temp) in entries(&dir, SWEEP_LIMIT + 1 - visited) {
            visited += 1;
            if visited > SWEEP_LIMIT {
                return n;
            }
            if md.is_dir() {
                todo.push(p);
            } else if md.is_file() && temp && fs::remove_file(&p).is_ok() {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_clamps_at_root() {
        assert_eq!(
            normalize("/../../etc/passwd").unwrap(),
            vec!["etc", "passwd"]
        );
        assert_eq!(normalize("a/./b/../c").unwrap(), vec!["a", "c"]);
        assert_eq!(normalize("").unwrap(), Vec::<String>::new());
        assert_eq!(normalize("//..//").unwrap(), Vec::<String>::new());
        assert!(normalize("a\0b").is_err());
        assert!(normalize("a\nb").is_err());
        assert!(normalize(&"x".repeat(300)).is_err());
        // A line separator forged a log line; a bidi override reversed a name as shown.
        for name in [
            "a\u{2028}INFO login",
            "invoice\u{202e}fdp.csv",
            "a\u{2066}b",
            "\u{feff}x",
            // Found later by an outside probe: the Arabic letter mark (a bidi control), and
            // the invisible word joiner, soft hyphen, annotation marks and tag characters.
            "alm\u{61c}x.csv",
            "wj\u{2060}x",
            "shy\u{ad}x",
            "hidden\u{fff9}a\u{fffa}b\u{fffb}",
            "tag\u{e0041}\u{e007f}",
        ] {
            assert!(normalize(name).is_err(), "{name:?}");
        }
        // Other scripts are names like any.
        assert_eq!(
            normalize("élèves/שלום.csv").unwrap(),
            vec!["élèves", "שלום.csv"]
        );
    }

    #[test]
    fn classify() {
        let j = Jail {
            root: "/r".into(),
            reports: "/rep".into(),
        };
        assert_eq!(j.classify("/").unwrap(), Target::Root);
        assert_eq!(j.classify("..").unwrap(), Target::Root);
        assert_eq!(j.classify("/reports/").unwrap(), Target::ReportsRoot);
        assert_eq!(
            j.classify("x/../reports/b1").unwrap(),
            Target::Report(vec!["b1".into()])
        );
        assert_eq!(
            j.classify("a.csv").unwrap(),
            Target::Drop(vec!["a.csv".into()])
        );
        assert_eq!(
            j.classify(&format!("{TEMP_PREFIX}x.a")).unwrap_err().0,
            StatusCode::NoSuchFile
        );
        assert!(j.classify(&"a/".repeat(MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn usage_counts_every_level_and_stops_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut deep = dir.path().to_path_buf();
        for i in 0..60 {
            deep.push(format!("d{i}"));
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("f"), [0u8; 1000]).unwrap();
        fs::write(deep.join(format!("{TEMP_PREFIX}x.f")), [0u8; 50]).unwrap();
        let cfg = crate::sftp::SftpConfig::default();
        assert_eq!(usage(dir.path(), &cfg), (1000, 61));
        let small = crate::sftp::SftpConfig {
            quota_files: 0,
            ..Default::default()
        };
        assert_eq!(walk_limit(&small), 1000);
        for i in 0..1001 {
            fs::write(dir.path().join(format!("n{i}")), b"").unwrap();
        }
        assert_eq!(usage(dir.path(), &small), (u64::MAX, u64::MAX));
        // Depth below a folder: d0 holds 59 more folders and two files at level 60; the
        // longest path below d0 is "/d1/.../d9" (9 x 3 bytes), "/d10/.../d59" (50 x 4) and
        // the temporary's "/.rosterdrop-upload.x.f".
        let d0 = dir.path().join("d0");
        let below = 9 * 3 + 50 * 4 + 1 + TEMP_PREFIX.len() + 3;
        assert_eq!(subtree_fits(&d0, 60, below, 10_000), Fits::Yes);
        assert_eq!(subtree_fits(&d0, 59, below, 10_000), Fits::TooDeep);
        assert_eq!(subtree_fits(&d0, 60, below - 1, 10_000), Fits::TooLong);
        assert_eq!(subtree_fits(&d0, 60, below, 10), Fits::TooBig);
        assert_eq!(remove_stale_temporaries(dir.path()), 1);
    }

    #[test]
    fn partial_names() {
        for n in [".x", "a.zip.filepart", "a.part", "a.tmp"] {
            assert!(is_partial_name(n));
        }
        assert!(!is_partial_name("students.csv"));
    }
}
