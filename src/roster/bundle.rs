//! A bundle: a directory or a zip of CSV files. Finds the files (at the root or in one top
//! folder), detects the format from the OneRoster manifest or, without one, from the file names
//! and headers, and opens each file for streaming parse. Nothing is extracted to disk; zip
//! entries are read with a size cap enforced on what actually inflates.
//!
//! Names are resolved through hash maps keyed by the lower-cased name, so a bundle or manifest
//! of any size resolves in linear time, and two files whose names differ only by case (or a zip
//! holding one name twice) are refused rather than one of them picked silently.

use std::collections::hash_map::{self, HashMap};
use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::fsutil::{at as io, IoError};
use crate::roster::csvio::{self, CsvError, Table};
use crate::roster::schema::{Format, Schema, TableDef};
use crate::roster::text::norm_header;

/// Default of `[limits] max_file_bytes`: the largest file read (a zip entry inflated, or a
/// loose file). A million-student district's largest file (OneRoster enrollments, some
/// 8 million rows) is about 1.2 GB.
pub const MAX_FILE_BYTES: u64 = 4 << 30;
/// Default of `[limits] max_bundle_bytes`: the most all the files of one bundle may hold
/// together once inflated (a million-student district's bundle is some 2 GB).
pub const MAX_BUNDLE_BYTES: u64 = 8 << 30;
/// Default of `[limits] max_zip_ratio`: a zip entry that inflates more than this many times
/// its compressed size (CSV compresses 5 to 15 times) and past 64 MiB is treated as a zip bomb.
pub const MAX_ZIP_RATIO: u64 = 200;
/// Any entry may inflate this far whatever its ratio (small files compress unevenly).
const RATIO_FREE_BYTES: u64 = 64 << 20;
/// Largest manifest.csv read: a manifest holds one short row per file, so 16 MiB is some
/// 800,000 rows. A larger one is refused by its size, not cut and misread.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// How much of a file is read to find its header line (format detection).
const HEADER_PEEK: u64 = 64 * 1024;
/// Names listed in one message before "and N more".
const LISTED: usize = 20;

/// Processing mode of one file (OneRoster manifest `file.*`; Apple files are always bulk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Delta,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Bulk => "bulk",
            Mode::Delta => "delta",
        }
    }
}

/// The bundle format a source accepts (`format = "auto" | "apple" | "oneroster"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    #[default]
    Auto,
    Apple,
    OneRoster,
}

impl Expect {
    pub fn parse(s: &str) -> Option<Expect> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(Expect::Auto),
            "apple" => Some(Expect::Apple),
            "oneroster" => Some(Expect::OneRoster),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Expect::Auto => "auto",
            Expect::Apple => "apple",
            Expect::OneRoster => "oneroster",
        }
    }
}

/// How much a bundle may make the process read into memory (`[limits]`). The sizes a zip
/// declares are the sender's word and count for nothing: these bound the bytes actually read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The most one file may hold (inflated).
    pub max_file_bytes: u64,
    /// The most all the files of one bundle may hold together (inflated).
    pub max_bundle_bytes: u64,
    /// The most a zip entry may inflate relative to its compressed size, past 64 MiB.
    pub max_zip_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: MAX_FILE_BYTES,
            max_bundle_bytes: MAX_BUNDLE_BYTES,
            max_zip_ratio: MAX_ZIP_RATIO,
        }
    }
}

impl Limits {
    /// Refuses a limit of 0, which would refuse every bundle.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("max_file_bytes", self.max_file_bytes),
            ("max_bundle_bytes", self.max_bundle_bytes),
            ("max_zip_ratio", self.max_zip_ratio),
        ] {
            if v == 0 {
                return Err(format!("[limits] {key} must be above 0"));
            }
        }
        Ok(())
    }

    /// The most a zip entry may inflate to. The declared compressed size is the sender's
    /// word, so it is capped by the archive's real length: a lie cannot raise the limit.
    fn inflate(&self, compressed: u64, archive_len: u64) -> u64 {
        self.max_file_bytes.min(
            compressed
                .min(archive_len)
                .max(1)
                .saturating_mul(self.max_zip_ratio)
                .max(RATIO_FREE_BYTES),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{path}: not a readable zip archive: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    /// An entry of a readable zip that fails part way (a bad CRC, a truncated stream).
    #[error("{path}: not a readable zip archive: {entry}: {source}")]
    ZipEntry {
        path: PathBuf,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    /// The bundle is readable but is not a roster bundle, or misses files.
    #[error("{0}")]
    Invalid(String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Csv(Vec<CsvError>),
}

#[derive(Debug, Clone)]
enum Location {
    Dir(PathBuf),
    Zip(usize),
}

/// A CSV file of the bundle that the schema uses.
#[derive(Debug, Clone)]
pub struct Entry {
    /// File name as uploaded (base name).
    pub name: String,
    /// Schema table name.
    pub table: &'static str,
    pub mode: Mode,
    /// Size in bytes (uncompressed; for a zip the size it declares), to schedule the biggest
    /// files first. Never used to size an allocation.
    pub size: u64,
    loc: Location,
    /// Header cells read under the schema's name: (uploaded name, schema column). Set for a
    /// column that OneRoster 1.0 names differently from the bundle's version.
    renames: Vec<(&'static str, &'static str)>,
}

#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    pub format: Format,
    pub entries: Vec<Entry>,
    /// Files present but not used, with the reason (names with control characters escaped).
    pub ignored: Vec<(String, String)>,
    /// Remarks about the manifest (missing rows, unusual versions) and format detection.
    pub notes: Vec<String>,
    /// OneRoster `source.systemName`, when given.
    pub system_name: Option<String>,
    /// Files copied unchanged into the modified bundle (OneRoster's manifest.csv).
    pub passthrough: Vec<(String, Vec<u8>)>,
    /// The zip's central directory, parsed once; each read works on a cheap clone.
    zip: Option<zip::ZipArchive<SharedFile>>,
    /// The zip archive's real length: caps what its entries may claim.
    zip_len: u64,
    /// What the bundle may read (`[limits]`).
    limits: Limits,
    /// What its files have read into memory so far.
    budget: Budget,
}

/// A file read at its own position through a shared handle (`pread`), so a parsed
/// [`zip::ZipArchive`] clones cheaply and threads read entries in parallel.
#[derive(Debug, Clone)]
struct SharedFile {
    file: std::sync::Arc<fs::File>,
    pos: u64,
    len: u64,
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range");
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => self.len.checked_add_signed(d).ok_or_else(bad)?,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(bad)?,
        };
        Ok(self.pos)
    }
}

/// The six files of an Apple School Manager bundle (without `.csv`).
pub const APPLE_FILES: [&str; 6] = [
    "locations",
    "students",
    "staff",
    "courses",
    "classes",
    "rosters",
];

/// Files (lower-cased stems) only an Apple School Manager bundle has. `courses` and `classes`
/// are in both formats and decide nothing.
const APPLE_ONLY: [&str; 4] = ["locations", "students", "staff", "rosters"];
/// Files (lower-cased stems) only a OneRoster bundle has.
const ONEROSTER_ONLY: [&str; 7] = [
    "orgs",
    "users",
    "enrollments",
    "academicsessions",
    "demographics",
    "roles",
    "userprofiles",
];
/// Columns that OneRoster 1.0 names differently from 1.1 and 1.2: (table, 1.0 name, later
/// name).
const RENAMED_SINCE_10: [(&str, &str, &str); 6] = [
    ("demographics", "userSourcedId", "sourcedId"),
    ("classes", "termSourcedId", "termSourcedIds"),
    ("classes", "grade", "grades"),
    ("courses", "schoolYearId", "schoolYearSourcedId"),
    ("courses", "grade", "grades"),
    ("users", "agents", "agentSourcedIds"),
];
/// Columns that 1.1 requires and OneRoster 1.0 did not have: (table, column).
const ADDED_SINCE_10: [(&str, &str); 2] =
    [("academicSessions", "schoolYear"), ("users", "enabledUser")];

fn zip_err(path: &Path) -> impl FnOnce(zip::result::ZipError) -> BundleError + '_ {
    move |source| BundleError::Zip {
        path: path.to_path_buf(),
        source,
    }
}

/// An uploaded name as it may appear in a message: control characters escaped.
fn shown(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// Up to [`LISTED`] names, then how many more.
fn listed<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let n = names.len();
    let mut s: Vec<String> = names.take(LISTED).map(shown).collect();
    if n > LISTED {
        s.push(format!("and {} more", n - LISTED));
    }
    if s.is_empty() {
        "no files".into()
    } else {
        s.join(", ")
    }
}

/// Names we never treat as data: hidden files, OS metadata, in-progress uploads, and the
/// marker files a sender leaves to say an upload is complete.
fn skipped(name: &str) -> bool {
    crate::fsutil::is_partial_name(name)
        || name.starts_with("__MACOSX")
        || name.eq_ignore_ascii_case("thumbs.db")
        || is_marker(name)
}

/// `READY` or `READY.txt`: a sender's word that the files beside it are complete.
pub fn is_ready_marker(name: &str) -> bool {
    name.eq_ignore_ascii_case("READY") || name.eq_ignore_ascii_case("READY.txt")
}

/// A marker file (`READY`, `READY.txt`, `<name>.done`), by base name: the one definition that
/// intake (readiness), the bundle (never data) and the mail (never an "unused file") share.
pub fn is_marker(name: &str) -> bool {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let b = base.as_bytes();
    is_ready_marker(base) || (b.len() > 5 && b[b.len() - 5..].eq_ignore_ascii_case(b".done"))
}

/// Raised by [`Capped`] when a stream goes on past its limit.
#[derive(Debug)]
enum TooBig {
    /// Past the file's own limit.
    File(u64),
    /// Past what the whole bundle may hold.
    Bundle(u64),
}

impl std::fmt::Display for TooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TooBig::File(n) => write!(f, "more than {n} bytes"),
            TooBig::Bundle(n) => write!(f, "more than {n} bytes in the whole bundle"),
        }
    }
}

impl std::error::Error for TooBig {}

/// What the files of one bundle have read so far, against `[limits] max_bundle_bytes`
/// (shared by the threads that read files in parallel).
#[derive(Debug, Default)]
struct Budget {
    used: AtomicU64,
}

impl Budget {
    /// Counts `n` more bytes; fails once the total passes `max`.
    fn take(&self, n: u64, max: u64) -> std::io::Result<()> {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > max {
            return Err(std::io::Error::other(TooBig::Bundle(max)));
        }
        Ok(())
    }
}

/// A reader that fails, rather than ends, when its inner reader yields more than `limit`
/// bytes, or when the bytes it yields take the bundle past its total.
struct Capped<'a, R> {
    inner: R,
    left: u64,
    limit: u64,
    /// The bundle's total, for reads that stay in memory (not the header peeks or hashing).
    budget: Option<(&'a Budget, u64)>,
}

impl<'a, R: Read> Capped<'a, R> {
    fn new(inner: R, limit: u64, budget: Option<(&'a Budget, u64)>) -> Self {
        Capped {
            inner,
            left: limit,
            limit,
            budget,
        }
    }
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(TooBig::File(self.limit))),
            };
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..n])?;
        self.left -= got as u64;
        if let Some((budget, max)) = self.budget {
            budget.take(got as u64, max)?;
        }
        Ok(got)
    }
}

/// Which limit a read error reports passing, if any.
fn too_big(e: &std::io::Error) -> Option<&TooBig> {
    e.get_ref().and_then(|i| i.downcast_ref::<TooBig>())
}

/// A file found in the bundle, before format detection.
struct Found {
    name: String,
    size: u64,
    loc: Location,
}

/// The found files by lower-cased name.
type ByName = HashMap<String, usize>;

impl Bundle {
    /// Opens a directory or a zip and detects the format, under the default [`Limits`].
    pub fn open(path: &Path) -> Result<Bundle, BundleError> {
        Bundle::open_limited(path, Limits::default())
    }

    /// Opens a directory or a zip and detects the format; reading its files is bounded by
    /// `limits`.
    pub fn open_limited(path: &Path, limits: Limits) -> Result<Bundle, BundleError> {
        let meta = fs::metadata(path).map_err(io(path))?;
        let (found, zip, zip_len) = if meta.is_dir() {
            (list_dir(path)?, None, 0)
        } else {
            let f = fs::File::open(path).map_err(io(path))?;
            let len = f.metadata().map_err(io(path))?.len();
            let shared = SharedFile {
                file: std::sync::Arc::new(f),
                pos: 0,
                len,
            };
            let z = zip::ZipArchive::new(shared).map_err(zip_err(path))?;
            (list_zip(path, &z)?, Some(z), len)
        };
        let mut b = Bundle {
            path: path.to_path_buf(),
            format: Format::Apple,
            entries: vec![],
            ignored: vec![],
            notes: vec![],
            system_name: None,
            passthrough: vec![],
            zip,
            zip_len,
            limits,
            budget: Budget::default(),
        };
        b.detect(found)?;
        Ok(b)
    }

    /// Refuses a bundle that is not of the format the source's `format` setting names.
    pub fn expect(&self, want: Expect) -> Result<(), BundleError> {
        let ok = match want {
            Expect::Auto => true,
            Expect::Apple => self.format == Format::Apple,
            Expect::OneRoster => self.format.is_oneroster(),
        };
        if ok {
            return Ok(());
        }
        let (kind, setting) = if self.format.is_oneroster() {
            ("OneRoster", "oneroster")
        } else {
            ("Apple School Manager", "apple")
        };
        Err(BundleError::Invalid(format!(
            "this source's setting is format = \"{}\", but this bundle is {}; it was not read. \
             To take {kind} bundles too, add a source for them: a new [sources.NAME] with \
             format = \"{setting}\" and an account for it",
            want.label(),
            self.format.display_name(),
        )))
    }

    fn zip_path(&self) -> &Path {
        &self.path
    }

    fn open_zip(&self) -> Result<zip::ZipArchive<SharedFile>, BundleError> {
        self.zip.clone().ok_or_else(|| BundleError::Zip {
            path: self.path.clone(),
            source: zip::result::ZipError::InvalidArchive("not a zip archive".into()),
        })
    }

    /// Streams zip entry `i` into `f`, failing once it inflates past its limit (or, when
    /// `counted`, once the bundle's files pass their total).
    fn with_zip_entry<T>(
        &self,
        z: &mut zip::ZipArchive<SharedFile>,
        i: usize,
        counted: bool,
        f: impl FnOnce(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<T, BundleError> {
        let zp = self.zip_path();
        let entry = z.by_index(i).map_err(zip_err(zp))?;
        let name = shown(entry.name());
        let limit = self.limits.inflate(entry.compressed_size(), self.zip_len);
        let budget = counted.then_some((&self.budget, self.limits.max_bundle_bytes));
        let mut capped = Capped::new(entry, limit, budget);
        f(&mut capped).map_err(|e| match too_big(&e) {
            Some(TooBig::File(_)) => BundleError::Invalid(format!(
                "{}: {name} inflates past {limit} bytes (more than {} times its compressed \
                 size, or over [limits] max_file_bytes = {}): refused as a zip bomb",
                zp.display(),
                self.limits.max_zip_ratio,
                self.limits.max_file_bytes,
            )),
            Some(TooBig::Bundle(max)) => self.bundle_too_big(&name, *max),
            None => BundleError::ZipEntry {
                path: zp.to_path_buf(),
                entry: name.clone(),
                source: e,
            },
        })
    }

    /// The bundle's files hold more than `[limits] max_bundle_bytes` together.
    fn bundle_too_big(&self, name: &str, max: u64) -> BundleError {
        BundleError::Invalid(format!(
            "{}: the bundle's files hold more than [limits] max_bundle_bytes = {max} bytes \
             together (passed while reading {name}); it was refused. If this district's \
             roster really is that large, raise the limit",
            self.path.display()
        ))
    }

    /// A reader over a file's bytes, and their real length.
    fn reader(&self, loc: &Location) -> Result<(Box<dyn Read + '_>, u64), BundleError> {
        match loc {
            Location::Dir(p) => {
                let f = fs::File::open(p).map_err(io(p))?;
                let len = f.metadata().map_err(io(p))?.len();
                let name = shown(&p.file_name().unwrap_or_default().to_string_lossy());
                if len > self.limits.max_file_bytes {
                    return Err(BundleError::Invalid(format!(
                        "{}: {name} is {len} bytes, over [limits] max_file_bytes = {}; it was \
                         not read",
                        self.path.display(),
                        self.limits.max_file_bytes
                    )));
                }
                let max = self.limits.max_bundle_bytes;
                if self.budget.take(len, max).is_err() {
                    return Err(self.bundle_too_big(&name, max));
                }
                Ok((Box::new(BufReader::with_capacity(256 * 1024, f)), len))
            }
            Location::Zip(i) => {
                let mut z = self.open_zip()?;
                // The buffer grows with what inflates; the sizes the zip declares size nothing.
                let buf = self.with_zip_entry(&mut z, *i, true, |r| {
                    let mut buf = Vec::new();
                    r.read_to_end(&mut buf)?;
                    Ok(buf)
                })?;
                let len = buf.len() as u64;
                Ok((Box::new(std::io::Cursor::new(buf)), len))
            }
        }
    }

    /// At most `max` bytes from the start of a file.
    fn head(&self, loc: &Location, max: u64) -> Result<Vec<u8>, BundleError> {
        let mut out = Vec::new();
        match loc {
            Location::Dir(p) => {
                let f = fs::File::open(p).map_err(io(p))?;
                f.take(max).read_to_end(&mut out).map_err(io(p))?;
            }
            Location::Zip(i) => {
                let mut z = self.open_zip()?;
                self.with_zip_entry(&mut z, *i, false, |r| r.take(max).read_to_end(&mut out))?;
            }
        }
        Ok(out)
    }

    /// The header row of a file, read from its first line only (`None` when unreadable).
    fn header_of(&self, name: &str, loc: &Location) -> Option<Vec<String>> {
        let head = self.head(loc, HEADER_PEEK).ok()?;
        let line = head.split(|&b| b == b'\n').next().unwrap_or(&head);
        let t = csvio::parse(name, line, false).ok()?;
        Some(t.header.iter().map(|h| norm_header(h)).collect())
    }

    /// Parses one entry.
    pub fn read(&self, e: &Entry, encoding: csvio::Encoding) -> Result<Table, BundleError> {
        let (r, len) = self.reader(&e.loc)?;
        let mut t = csvio::parse_sized(&e.name, r, self.format == Format::Apple, len, encoding)
            .map_err(BundleError::Csv)?;
        for (from, to) in &e.renames {
            let from = norm_header(from);
            if let Some(h) = t.header.iter_mut().find(|h| norm_header(h) == from) {
                *h = (*to).to_string();
            }
        }
        Ok(t)
    }

    /// SHA-256 over the files the engine reads (the manifest and every entry), whatever folder
    /// they sit in: per file, its lower-cased base name and the SHA-256 of its bytes, in name
    /// order. A zip entry is hashed by its inflated bytes, so the same files loose, zipped or
    /// zipped again with other settings hash alike. Files the engine ignores do not count.
    pub fn content_hash(&self) -> Result<String, BundleError> {
        enum Src<'a> {
            Bytes(&'a [u8]),
            At(&'a Location),
        }
        // (lower-cased name, where the bytes are, size for the schedule)
        let mut items: Vec<(String, Src, u64)> = self
            .passthrough
            .iter()
            .map(|(n, b)| (n.to_lowercase(), Src::Bytes(b), b.len() as u64))
            .chain(
                self.entries
                    .iter()
                    .map(|e| (e.name.to_lowercase(), Src::At(&e.loc), e.size)),
            )
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        // Each file's SHA-256 on the machine's cores, biggest first (a zip's entries each
        // through a clone of the archive); the bundle's hash over them in name order.
        let mut schedule: Vec<usize> = (0..items.len()).collect();
        schedule.sort_by_key(|&i| std::cmp::Reverse(items[i].2));
        let digests = crate::roster::par::parallel_map(&items, &schedule, |(_, src, _)| {
            let mut h = Sha256::new();
            match src {
                Src::Bytes(b) => h.update(b),
                Src::At(Location::Dir(p)) => {
                    let mut f = fs::File::open(p).map_err(io(p))?;
                    std::io::copy(&mut f, &mut h).map_err(io(p))?;
                }
                Src::At(Location::Zip(i)) => {
                    let mut zip = self.open_zip()?;
                    self.with_zip_entry(&mut zip, *i, false, |r| std::io::copy(r, &mut h))?;
                }
            }
            Ok::<_, BundleError>(h.finalize())
        });
        let mut outer = Sha256::new();
        outer.update(b"rosterdrop bundle v1\0");
        for ((name, _, _), digest) in items.iter().zip(digests) {
            outer.update((name.len() as u64).to_le_bytes());
            outer.update(name.as_bytes());
            outer.update(digest?);
        }
        Ok(hex(&outer.finalize()))
    }

    fn detect(&mut self, found: Vec<Found>) -> Result<(), BundleError> {
        let mut by_name: ByName = HashMap::with_capacity(found.len());
        let mut dups: Vec<(usize, usize)> = vec![];
        for (i, f) in found.iter().enumerate() {
            match by_name.entry(f.name.to_lowercase()) {
                hash_map::Entry::Occupied(o) => dups.push((*o.get(), i)),
                hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        if !dups.is_empty() {
            let pairs: Vec<String> = dups
                .iter()
                .map(|&(a, b)| format!("{} and {}", shown(&found[a].name), shown(&found[b].name)))
                .collect();
            return Err(BundleError::Invalid(format!(
                "{}: the same file name appears twice ({}); names are compared ignoring case, \
                 and which of the two to read would be a guess, so the bundle was not read",
                self.path.display(),
                listed(pairs.iter().map(String::as_str))
            )));
        }
        if let Some(&m) = by_name.get("manifest.csv") {
            return self.detect_oneroster(&found, &by_name, m);
        }
        let stem_present = |s: &str| by_name.contains_key(&format!("{s}.csv"));
        let apple: Vec<&str> = APPLE_ONLY
            .iter()
            .copied()
            .filter(|s| stem_present(s))
            .collect();
        let oneroster: Vec<&str> = ONEROSTER_ONLY
            .iter()
            .copied()
            .filter(|s| stem_present(s))
            .collect();
        let csv = |stems: &[&str]| {
            stems
                .iter()
                .map(|s| {
                    by_name
                        .get(&format!("{s}.csv"))
                        .map_or(format!("{s}.csv"), |&i| shown(&found[i].name))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        // All six Apple files make an Apple bundle whatever else is beside them (those files
        // are listed as ignored, with a note); otherwise files of both formats are ambiguous.
        let apple_whole = APPLE_FILES.iter().all(|a| stem_present(a));
        match (apple.is_empty(), oneroster.is_empty()) {
            (false, true) => self.detect_apple(&found, &by_name),
            (false, false) if apple_whole => {
                self.notes.push(format!(
                    "read as an Apple School Manager bundle (all six files are present); the \
                     OneRoster file(s) beside them were not read: {}",
                    csv(&oneroster)
                ));
                self.detect_apple(&found, &by_name)
            }
            (true, false) => self.detect_oneroster_by_names(&found, &by_name),
            (false, false) => Err(BundleError::Invalid(format!(
                "{}: the bundle mixes the two formats: it has Apple School Manager's {} and \
                 OneRoster's {} (and neither a manifest.csv nor all six Apple files); a bundle \
                 is one or the other, so it was not read",
                self.path.display(),
                csv(&apple),
                csv(&oneroster)
            ))),
            (true, true) => Err(BundleError::Invalid(format!(
                "{}: not a roster bundle; found: {}. An Apple School Manager bundle is the six \
                 files {}. A OneRoster bundle is a manifest.csv with the files it lists \
                 (OneRoster 1.1 and 1.2) or, without a manifest (OneRoster 1.0, some 1.1 \
                 exporters), its files by their names: orgs.csv, users.csv, \
                 academicSessions.csv, courses.csv, classes.csv, enrollments.csv, \
                 demographics.csv (roles.csv in 1.2)",
                self.path.display(),
                listed(found.iter().map(|f| f.name.as_str())),
                APPLE_FILES.map(|a| format!("{a}.csv")).join(", "),
            ))),
        }
    }

    fn detect_apple(&mut self, found: &[Found], by_name: &ByName) -> Result<(), BundleError> {
        self.format = Format::Apple;
        let mut used = vec![false; found.len()];
        let mut missing = vec![];
        for a in APPLE_FILES {
            match by_name.get(&format!("{a}.csv")) {
                Some(&i) => {
                    used[i] = true;
                    let f = &found[i];
                    self.entries.push(Entry {
                        name: f.name.clone(),
                        table: a,
                        mode: Mode::Bulk,
                        size: f.size,
                        loc: f.loc.clone(),
                        renames: vec![],
                    });
                }
                None => missing.push(format!("{a}.csv")),
            }
        }
        if !missing.is_empty() {
            return Err(BundleError::Invalid(format!(
                "{}: Apple School Manager bundle is missing {} (all six files are required)",
                self.path.display(),
                missing.join(", ")
            )));
        }
        for (f, _) in found.iter().zip(&used).filter(|(_, u)| !**u) {
            self.ignored
                .push((shown(&f.name), "not an Apple School Manager file".into()));
        }
        Ok(())
    }

    /// A OneRoster bundle without manifest.csv. Every OneRoster rostering file present is read
    /// as bulk, and the version is read from the headers (a guess, noted in `notes`):
    /// - 1.2 when roles.csv or userProfiles.csv is present, or users.csv has no `role` column
    ///   (1.2 moved roles into roles.csv);
    /// - else 1.0 when some file shows a OneRoster 1.0 trait: demographics.csv keyed by
    ///   `userSourcedId` without a `sourcedId`, academicSessions.csv without `schoolYear`,
    ///   users.csv without `enabledUser`, or a column under its 1.0 name (`termSourcedId`,
    ///   `schoolYearId`, `agents`, `grade`) with no later name beside it;
    /// - else 1.1.
    fn detect_oneroster_by_names(
        &mut self,
        found: &[Found],
        by_name: &ByName,
    ) -> Result<(), BundleError> {
        let file = |stem: &str| {
            by_name
                .get(&format!("{}.csv", stem.to_lowercase()))
                .copied()
        };
        let mut headers: HashMap<&str, Vec<String>> = HashMap::new();
        for t in [
            "users",
            "demographics",
            "academicSessions",
            "classes",
            "courses",
        ] {
            if let Some(h) = file(t).and_then(|i| self.header_of(&found[i].name, &found[i].loc)) {
                headers.insert(t, h);
            }
        }
        let has = |t: &str, c: &str| headers.get(t).map(|h| h.contains(&norm_header(c)));
        let mut why12 = vec![];
        for t in ["roles", "userProfiles"] {
            if let Some(i) = file(t) {
                why12.push(format!("{} is present", shown(&found[i].name)));
            }
        }
        // 1.2 moved a user's roles out of users.csv, orgSourcedIds with them: a users.csv
        // that still has orgSourcedIds but no role is a 1.1 file with its role misnamed (read
        // as 1.2, the roles were dropped as an unknown column).
        if has("users", "role") == Some(false) && has("users", "orgSourcedIds") != Some(true) {
            why12.push("users.csv has no role column".into());
        }
        // Traits of 1.0 against traits of a later version, 1.0 on a tie: a 1.1 bundle with
        // one required column misnamed is not a 1.0 bundle (read as one, the source's stored
        // roster changed version and the misnamed column went unreported).
        let (mut why10, mut why11) = (vec![], vec![]);
        for (t, c) in ADDED_SINCE_10 {
            match has(t, c) {
                Some(false) => why10.push(format!("{t}.csv has no {c} column")),
                Some(true) => why11.push(format!("{t}.csv has {c}")),
                None => {}
            }
        }
        for (t, old, new) in RENAMED_SINCE_10 {
            if has(t, new) == Some(true) {
                why11.push(format!("{t}.csv has {new}"));
            } else if has(t, old) == Some(true) {
                why10.push(format!("{t}.csv has {old} for {new}"));
            }
        }
        let (format, why) = if !why12.is_empty() {
            (Format::OneRoster12, why12)
        } else if !why10.is_empty() && why10.len() >= why11.len() {
            if !why11.is_empty() {
                why10.push(format!("though {}", why11.join(", ")));
            }
            (Format::OneRoster10, why10)
        } else if !why10.is_empty() {
            why11.push(format!("though {}", why10.join(", ")));
            (Format::OneRoster11, why11)
        } else {
            (
                Format::OneRoster11,
                vec!["its headers are those of OneRoster 1.1".to_string()],
            )
        };
        self.format = format;
        let schema = Schema::for_format(format);
        let mut used = vec![false; found.len()];
        let mut read = vec![];
        for def in &schema.tables {
            let Some(i) = file(def.name) else { continue };
            used[i] = true;
            let f = &found[i];
            read.push(shown(&f.name));
            self.entries.push(Entry {
                name: f.name.clone(),
                table: def.name,
                mode: Mode::Bulk,
                size: f.size,
                loc: f.loc.clone(),
                renames: vec![],
            });
        }
        if self.entries.is_empty() {
            return Err(BundleError::Invalid(format!(
                "{}: no OneRoster {} rostering file found (found: {})",
                self.path.display(),
                &format.label()["oneroster-".len()..],
                listed(found.iter().map(|f| f.name.as_str()))
            )));
        }
        let version = format.display_name();
        self.notes.push(format!(
            "no manifest.csv: read as {version} from the file names and headers ({}); every \
             OneRoster file present is read as bulk: {}",
            why.join("; "),
            read.join(", ")
        ));
        self.map_version_columns(&schema);
        self.ignore_unused(found, &used, &schema, "not a OneRoster rostering file");
        Ok(())
    }

    /// Columns under another version's name (OneRoster 1.0 headers under a 1.1 manifest, or
    /// 1.1 names in a 1.0 bundle) are read under the schema's name, with a note; a column that
    /// 1.1 added and the file lacks, as in 1.0, is noted (the check reports it missing).
    fn map_version_columns(&mut self, schema: &Schema) {
        let v10 = schema.format == Format::OneRoster10;
        let by_table: HashMap<&str, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.table, i))
            .collect();
        let mut headers: HashMap<&str, Option<Vec<String>>> = HashMap::new();
        let mut header = |this: &Self, t: &'static str| -> Option<Vec<String>> {
            let &i = by_table.get(t)?;
            headers
                .entry(t)
                .or_insert_with(|| this.header_of(&this.entries[i].name, &this.entries[i].loc))
                .clone()
        };
        for (t, old, new) in RENAMED_SINCE_10 {
            let (want, alt) = if v10 { (old, new) } else { (new, old) };
            let Some(def) = schema.table(t) else { continue };
            let Some(col) = def.column(want) else {
                continue;
            };
            let Some(h) = header(self, def.name) else {
                continue;
            };
            if h.contains(&norm_header(want)) || !h.contains(&norm_header(alt)) {
                continue;
            }
            let Some(&i) = by_table.get(def.name) else {
                continue;
            };
            let e = &mut self.entries[i];
            e.renames.push((alt, col.name));
            let alt_v = if v10 {
                "a later OneRoster"
            } else {
                "the OneRoster 1.0"
            };
            self.notes.push(format!(
                "{}: column {alt} is {alt_v} name of {want}; read as {want}, the {} name (and so \
                 written in the modified file)",
                shown(&e.name),
                schema.format.display_name()
            ));
        }
        if v10 {
            return;
        }
        for (t, c) in ADDED_SINCE_10 {
            let Some(def) = schema.table(t) else { continue };
            if def.column(c).is_none_or(|c| !c.required) {
                continue;
            }
            let Some(h) = header(self, def.name) else {
                continue;
            };
            if !h.contains(&norm_header(c)) {
                let name = by_table
                    .get(def.name)
                    .map_or(format!("{t}.csv"), |&i| shown(&self.entries[i].name));
                self.notes.push(format!(
                    "{name} has no {c} column, as in OneRoster 1.0; {} requires it",
                    schema.format.display_name()
                ));
            }
        }
    }

    /// Lists every found file not `used` as ignored, with why.
    fn ignore_unused(&mut self, found: &[Found], used: &[bool], schema: &Schema, other: &str) {
        let tables: HashSet<String> = schema
            .tables
            .iter()
            .map(|t| format!("{}.csv", t.name.to_lowercase()))
            .collect();
        let known: HashSet<String> = schema
            .known_unused
            .iter()
            .map(|t| format!("{}.csv", t.to_lowercase()))
            .collect();
        for (f, _) in found.iter().zip(used).filter(|(_, u)| !**u) {
            let lower = f.name.to_lowercase();
            let why = if tables.contains(&lower) {
                "no file.* row for it in manifest.csv, so not read"
            } else if known.contains(&lower) {
                "OneRoster file not used by rosterdrop"
            } else if lower == "manifest.csv" {
                continue;
            } else {
                other
            };
            self.ignored.push((shown(&f.name), why.into()));
        }
    }

    fn detect_oneroster(
        &mut self,
        found: &[Found],
        by_name: &ByName,
        m: usize,
    ) -> Result<(), BundleError> {
        let mname = found[m].name.clone();
        let raw = self.head(&found[m].loc, MAX_MANIFEST_BYTES + 1)?;
        if raw.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(BundleError::Invalid(format!(
                "manifest.csv is larger than {} MiB ({MAX_MANIFEST_BYTES} bytes), the most \
                 rosterdrop reads; a manifest holds one short row per file",
                MAX_MANIFEST_BYTES >> 20
            )));
        }
        let t = csvio::parse("manifest.csv", &raw[..], false).map_err(BundleError::Csv)?;
        self.passthrough.push((mname, raw));
        let (pc, vc) = match (
            t.header
                .iter()
                .position(|h| h.eq_ignore_ascii_case("propertyName")),
            t.header
                .iter()
                .position(|h| h.eq_ignore_ascii_case("value")),
        ) {
            (Some(p), Some(v)) => (p, v),
            _ => {
                return Err(BundleError::Csv(vec![CsvError {
                    file: "manifest.csv".into(),
                    line: 1,
                    column: 0,
                    message: format!(
                        "manifest header must be `propertyName,value`, found `{}`",
                        shown(&t.header.join(","))
                    ),
                }]))
            }
        };
        let mut problems: Vec<CsvError> = vec![];
        let at = |line: u32, message: String| CsvError {
            file: "manifest.csv".into(),
            line: u64::from(line),
            column: vc + 1,
            message,
        };
        let mut version = None;
        // file.* rows in manifest order: (file as written, value, line).
        let mut modes: Vec<(String, String, u32)> = vec![];
        let mut seen: HashMap<String, usize> = HashMap::new();
        for row in 0..t.len() {
            let k = t.field(row, pc).trim();
            let v = t.field(row, vc).trim();
            if k == "oneroster.version" {
                version = Some(v.to_string());
            } else if k == "source.systemName" && !v.is_empty() {
                self.system_name = Some(v.to_string());
            } else if let Some(file) = k.strip_prefix("file.") {
                let line = t.line(row);
                match seen.entry(file.to_lowercase()) {
                    hash_map::Entry::Occupied(o) => {
                        let (_, first, first_line) = &modes[*o.get()];
                        if first == v {
                            self.notes.push(format!(
                                "manifest.csv: file.{} is given twice (lines {first_line} and \
                                 {line}), both `{}`",
                                shown(file),
                                shown(v)
                            ));
                        } else {
                            problems.push(at(
                                line,
                                format!(
                                    "file.{} is given twice: `{}` on line {first_line} and `{}` \
                                     here",
                                    shown(file),
                                    shown(first),
                                    shown(v)
                                ),
                            ));
                        }
                    }
                    hash_map::Entry::Vacant(e) => {
                        e.insert(modes.len());
                        modes.push((file.to_string(), v.to_string(), line));
                    }
                }
            }
        }
        let users_has_role = || -> bool {
            by_name
                .get("users.csv")
                .and_then(|&i| self.header_of(&found[i].name, &found[i].loc))
                .is_some_and(|h| h.iter().any(|c| c == "role"))
        };
        self.format = match version.as_deref() {
            Some("1.1") | Some("1.1.1") => Format::OneRoster11,
            Some("1.2") | Some("1.2.1") => Format::OneRoster12,
            Some(v) => {
                return Err(BundleError::Invalid(format!(
                    "manifest.csv: oneroster.version `{}` is not supported (1.1, 1.2, 1.2.1; \
                     OneRoster 1.0 bundles have no manifest.csv)",
                    shown(v)
                )))
            }
            None => {
                let f = if users_has_role() {
                    Format::OneRoster11
                } else {
                    Format::OneRoster12
                };
                self.notes.push(format!(
                    "manifest.csv has no oneroster.version; assumed {} from users.csv",
                    f.label()
                ));
                f
            }
        };
        let schema = Schema::for_format(self.format);
        let defs: HashMap<String, &TableDef> = schema
            .tables
            .iter()
            .map(|t| (t.name.to_lowercase(), t))
            .collect();
        let known: HashSet<String> = schema
            .known_unused
            .iter()
            .map(|k| k.to_lowercase())
            .collect();
        let mut used = vec![false; found.len()];
        used[m] = true;
        let mut entries = vec![];
        for (file, mode, line) in &modes {
            let lower = file.to_lowercase();
            let present = by_name.get(&format!("{lower}.csv")).copied();
            let Some(def) = defs.get(&lower) else {
                if let Some(i) = present {
                    used[i] = true;
                    let why = if known.contains(&lower) {
                        "OneRoster file not used by rosterdrop"
                    } else {
                        "not a OneRoster rostering file"
                    };
                    self.ignored.push((shown(&found[i].name), why.into()));
                }
                continue;
            };
            let mode = match mode.as_str() {
                "bulk" => Mode::Bulk,
                "delta" => Mode::Delta,
                "absent" | "" => {
                    if mode.is_empty() {
                        self.notes.push(format!(
                            "manifest.csv line {line}: file.{} has no value; taken as absent",
                            shown(file)
                        ));
                    }
                    if let Some(i) = present {
                        used[i] = true;
                        let why = if mode.is_empty() {
                            "file.* is empty in manifest.csv, taken as `absent`, so not read"
                        } else {
                            "marked `absent` in manifest.csv, so not read"
                        };
                        self.ignored.push((shown(&found[i].name), why.into()));
                    }
                    continue;
                }
                other => {
                    problems.push(at(
                        *line,
                        format!(
                            "file.{} is `{}`, expected bulk, delta or absent",
                            shown(file),
                            shown(other)
                        ),
                    ));
                    continue;
                }
            };
            match present {
                Some(i) => {
                    used[i] = true;
                    let f = &found[i];
                    entries.push(Entry {
                        name: f.name.clone(),
                        table: def.name,
                        mode,
                        size: f.size,
                        loc: f.loc.clone(),
                        renames: vec![],
                    });
                }
                None => problems.push(at(
                    *line,
                    format!(
                        "file.{} is `{}` but {}.csv is not in the bundle",
                        shown(file),
                        mode.label(),
                        def.name
                    ),
                )),
            }
        }
        self.entries = entries;
        self.ignore_unused(found, &used, &schema, "not a OneRoster rostering file");
        if !problems.is_empty() {
            return Err(BundleError::Csv(problems));
        }
        if self.entries.is_empty() {
            return Err(BundleError::Invalid(
                "manifest.csv marks no rostering file as bulk or delta: nothing to process".into(),
            ));
        }
        self.map_version_columns(&schema);
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash the store records for the upload at `path`: the bundle's [`Bundle::content_hash`]
/// when it opens, else (an upload that is no readable bundle, to be rejected by the check) a
/// SHA-256 of the raw upload: the file's bytes, or every file of the directory tree with its
/// relative path. Errs only when `path` itself cannot be read.
pub fn upload_hash(path: &Path) -> std::io::Result<String> {
    match Bundle::open(path).and_then(|b| b.content_hash()) {
        Ok(h) => Ok(h),
        Err(BundleError::Io(e)) if e.path == path => Err(e.source),
        Err(_) => raw_hash(path),
    }
}

fn raw_hash(path: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<(String, PathBuf)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = format!("{rel}{name}");
            match e.file_type() {
                Ok(t) if t.is_file() => out.push((r, e.path())),
                Ok(t) if t.is_dir() && depth < 8 => {
                    walk(&e.path(), &format!("{r}/"), depth + 1, out)
                }
                _ => {}
            }
        }
    }
    let mut h = Sha256::new();
    h.update(b"rosterdrop raw upload v1\0");
    if path.is_dir() {
        let mut files = vec![];
        walk(path, "", 0, &mut files);
        files.sort();
        for (rel, p) in files {
            h.update((rel.len() as u64).to_le_bytes());
            h.update(rel.as_bytes());
            let mut fh = Sha256::new();
            if let Ok(mut f) = fs::File::open(&p) {
                std::io::copy(&mut f, &mut fh)?;
            }
            h.update(fh.finalize());
        }
    } else {
        let mut f = fs::File::open(path)?;
        std::io::copy(&mut f, &mut h)?;
    }
    Ok(hex(&h.finalize()))
}

/// How many single folders a directory bundle may nest its files in (`export/district/2026/`).
pub const MAX_FOLDER_DEPTH: usize = 4;

fn list_dir(path: &Path) -> Result<Vec<Found>, BundleError> {
    list_dir_at(path, 0)
}

/// The files of a directory bundle: those at `path`, or, when it holds no CSV and one folder,
/// those of that folder, at most [`MAX_FOLDER_DEPTH`] levels down.
fn list_dir_at(path: &Path, depth: usize) -> Result<Vec<Found>, BundleError> {
    let mut files = vec![];
    let mut dirs = vec![];
    for e in fs::read_dir(path).map_err(io(path))? {
        let e = e.map_err(io(path))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if skipped(&name) {
            continue;
        }
        let ft = e.file_type().map_err(io(path))?;
        if ft.is_dir() {
            dirs.push(e.path());
        } else if ft.is_file() {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(Found {
                name,
                size,
                loc: Location::Dir(e.path()),
            });
        }
    }
    let has_csv = files
        .iter()
        .any(|f| f.name.to_ascii_lowercase().ends_with(".csv"));
    if !has_csv && dirs.len() == 1 {
        if depth >= MAX_FOLDER_DEPTH {
            return Err(BundleError::Invalid(format!(
                "not a roster bundle: no CSV files within {MAX_FOLDER_DEPTH} nested folders; put \
                 the CSV files at the top of the upload or in one folder"
            )));
        }
        return list_dir_at(&dirs[0], depth + 1);
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The names in a zip's central directory, every record, duplicates included (the zip crate
/// keeps one entry per name). A walk over the records' fixed headers: name, extra-field and
/// comment lengths are 16-bit, so no read is larger than 64 KiB.
fn central_names(path: &Path, start: u64) -> Result<Vec<String>, BundleError> {
    let f = fs::File::open(path).map_err(io(path))?;
    let mut r = BufReader::new(f);
    r.seek(SeekFrom::Start(start)).map_err(io(path))?;
    let mut names = vec![];
    let mut fixed = [0u8; 46];
    loop {
        if r.fill_buf().map_err(io(path))?.len() < 4 {
            break;
        }
        match r.read_exact(&mut fixed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io(path)(e).into()),
        }
        if fixed[..4] != [0x50, 0x4b, 0x01, 0x02] {
            break;
        }
        let le = |o: usize| u64::from(u16::from_le_bytes([fixed[o], fixed[o + 1]]));
        let (n, extra, comment) = (le(28), le(30), le(32));
        let mut name = Vec::new();
        (&mut r).take(n).read_to_end(&mut name).map_err(io(path))?;
        names.push(String::from_utf8_lossy(&name).replace('\\', "/"));
        std::io::copy(&mut (&mut r).take(extra + comment), &mut std::io::sink())
            .map_err(io(path))?;
    }
    Ok(names)
}

fn list_zip(path: &Path, z: &zip::ZipArchive<SharedFile>) -> Result<Vec<Found>, BundleError> {
    let mut z = z.clone();
    // The zip crate keeps the last of two records with one name: find such names first.
    let names = central_names(path, z.central_directory_start())?;
    if names.len() > z.len() {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for n in &names {
            *count.entry(n.as_str()).or_default() += 1;
        }
        let mut seen = HashSet::new();
        let twice: Vec<String> = names
            .iter()
            .filter(|n| count.get(n.as_str()).is_some_and(|&c| c > 1) && seen.insert(n.as_str()))
            .map(|n| shown(n))
            .collect();
        if !twice.is_empty() {
            let pairs: Vec<String> = twice.iter().map(|n| format!("{n} and {n}")).collect();
            return Err(BundleError::Invalid(format!(
                "{}: the same file name appears twice ({}): the zip holds two entries of that \
                 name, and which of the two to read would be a guess, so the bundle was not read",
                path.display(),
                listed(pairs.iter().map(String::as_str))
            )));
        }
    }
    let mut sizes: Vec<u64> = Vec::with_capacity(z.len());
    for i in 0..z.len() {
        sizes.push(z.by_index_raw(i).map(|e| e.size()).unwrap_or(0));
    }
    let mut indexed: Vec<(String, usize)> = vec![];
    for i in 0..z.len() {
        let Some(name) = z.name_for_index(i) else {
            continue;
        };
        let name = name.replace('\\', "/");
        if name.ends_with('/') || name.split('/').any(skipped) {
            continue;
        }
        indexed.push((name, i));
    }
    let root: Vec<&(String, usize)> = indexed.iter().filter(|(n, _)| !n.contains('/')).collect();
    let pick: Vec<(String, usize)> = if root
        .iter()
        .any(|(n, _)| n.to_ascii_lowercase().ends_with(".csv"))
    {
        root.into_iter().cloned().collect()
    } else {
        let tops: std::collections::BTreeSet<&str> = indexed
            .iter()
            .filter_map(|(n, _)| n.split_once('/').map(|(t, _)| t))
            .collect();
        if tops.len() == 1 {
            indexed
                .iter()
                .filter(|(n, _)| n.matches('/').count() == 1)
                .map(|(n, i)| (n.rsplit('/').next().unwrap_or(n).to_string(), *i))
                .collect()
        } else {
            indexed.clone()
        }
    };
    Ok(pick
        .into_iter()
        .map(|(name, i)| Found {
            name,
            size: sizes.get(i).copied().unwrap_or(0),
            loc: Location::Zip(i),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    }

    fn zip_of(dir: &Path, zip: &Path, folder: &str) {
        let mut z = zip::ZipWriter::new(fs::File::create(zip).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            z.start_file(format!("{folder}{n}"), opts).unwrap();
            z.write_all(&fs::read(dir.join(&n)).unwrap()).unwrap();
        }
        z.finish().unwrap();
    }

    fn apple(dir: &Path) {
        for n in APPLE_FILES {
            write(dir, &format!("{n}.csv"), "id\n1\n");
        }
    }

    #[test]
    fn the_hash_covers_what_is_read_wherever_it_sits() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        apple(&a);
        let h = Bundle::open(&a).unwrap().content_hash().unwrap();
        // The same files zipped in a folder: the same hash.
        let z = t.path().join("a.zip");
        zip_of(&a, &z, "export/");
        assert_eq!(Bundle::open(&z).unwrap().content_hash().unwrap(), h);
        // A file the engine ignores changes nothing; a byte of a read file does.
        write(&a, "readme.txt", "x");
        assert_eq!(Bundle::open(&a).unwrap().content_hash().unwrap(), h);
        write(&a, "rosters.csv", "id\n2\n");
        assert_ne!(Bundle::open(&a).unwrap().content_hash().unwrap(), h);
    }

    #[test]
    fn capped_reader_fails_past_its_limit_and_not_at_it() {
        let mut out = Vec::new();
        Capped::new(&b"abcd"[..], 4, None)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abcd");
        let e = Capped::new(&b"abcde"[..], 4, None)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(too_big(&e), Some(TooBig::File(4))));
    }

    #[test]
    fn the_bundle_budget_is_shared_by_its_files() {
        let budget = Budget::default();
        let mut out = Vec::new();
        Capped::new(&b"abcd"[..], 100, Some((&budget, 6)))
            .read_to_end(&mut out)
            .unwrap();
        let e = Capped::new(&b"abc"[..], 100, Some((&budget, 6)))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(too_big(&e), Some(TooBig::Bundle(6))));
    }

    #[test]
    fn a_lying_compressed_size_cannot_raise_the_inflate_limit() {
        let l = Limits::default();
        assert_eq!(l.inflate(u64::MAX, 2000), 64 << 20);
        assert_eq!(l.inflate(1 << 20, 1 << 30), 200 << 20);
        assert_eq!(l.inflate(u64::MAX, u64::MAX), MAX_FILE_BYTES);
    }

    #[test]
    fn format_by_names_and_headers_without_a_manifest() {
        let t = tempfile::tempdir().unwrap();
        let users11 = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName\n";
        let b = t.path().join("b11");
        write(&b, "orgs.csv", "sourcedId,name,type\n");
        write(&b, "users.csv", users11);
        assert_eq!(Bundle::open(&b).unwrap().format, Format::OneRoster11);
        let b = t.path().join("b10");
        write(&b, "orgs.csv", "sourcedId,name,type\n");
        write(&b, "users.csv", users11);
        write(&b, "demographics.csv", "userSourcedId,status,sex\n");
        let o = Bundle::open(&b).unwrap();
        assert_eq!(o.format, Format::OneRoster10);
        assert!(o.notes[0].contains("demographics.csv has userSourcedId for sourcedId"));
        let b = t.path().join("b12");
        write(&b, "users.csv", "sourcedId,enabledUser,username\n");
        assert_eq!(Bundle::open(&b).unwrap().format, Format::OneRoster12);
        // A 1.1 users.csv with its role column misnamed stays 1.1 (the check then reports
        // the missing column), as a 1.1 bundle with one 1.1 column misnamed stays 1.1.
        let b = t.path().join("b11-role");
        write(
            &b,
            "users.csv",
            "sourcedId,enabledUser,orgSourcedIds,rol,username,givenName,familyName\n",
        );
        assert_eq!(Bundle::open(&b).unwrap().format, Format::OneRoster11);
    }

    /// Found by a mutation probe: a 1.1 bundle whose academicSessions.csv had its schoolYear
    /// header misnamed was read as 1.0 (where schoolYear is optional), so the source's stored
    /// roster changed version and the misnamed required column went unreported.
    #[test]
    fn one_missing_11_column_does_not_make_a_11_bundle_10() {
        let t = tempfile::tempdir().unwrap();
        let b = t.path().join("b");
        write(
            &b,
            "academicSessions.csv",
            "sourcedId,title,type,startDate,endDate,K200
",
        );
        write(
            &b,
            "users.csv",
            "sourcedId,enabledUser,orgSourcedIds,role,username,givenName,familyName,agentSourcedIds
",
        );
        write(
            &b,
            "classes.csv",
            "sourcedId,title,courseSourcedId,termSourcedIds,grades
",
        );
        let o = Bundle::open(&b).unwrap();
        assert_eq!(o.format, Format::OneRoster11, "{:?}", o.notes);
        assert!(
            o.notes[0].contains("though academicSessions.csv has no schoolYear column"),
            "{:?}",
            o.notes
        );
        assert!(
            o.notes.iter().any(|n| n
                .contains("academicSessions.csv has no schoolYear column, as in OneRoster 1.0")),
            "{:?}",
            o.notes
        );
    }

    #[test]
    fn the_format_setting_is_enforced() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        apple(&a);
        let b = Bundle::open(&a).unwrap();
        assert!(b.expect(Expect::Auto).is_ok() && b.expect(Expect::Apple).is_ok());
        let e = b.expect(Expect::OneRoster).unwrap_err().to_string();
        assert!(e.contains("format = \"oneroster\"") && e.contains("format = \"apple\""));
    }

    #[test]
    fn names_in_messages_have_control_characters_escaped() {
        assert_eq!(shown("a\nb\u{1b}[31m.csv"), "a\\nb\\u{1b}[31m.csv");
        assert_eq!(shown("élèves.csv"), "élèves.csv");
    }
}
