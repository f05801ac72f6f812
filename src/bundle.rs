//! A bundle: a directory or a zip of CSV files. Finds the files (at the root or in one top
//! folder), detects the format from the file names and the OneRoster manifest, and opens each
//! file for streaming parse. Nothing is extracted to disk; zip entries are read with a size cap.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::csvio::{self, CsvError, Table};
use crate::engine::Mode;
use crate::schema::Format;

/// Largest uncompressed size accepted for one file in a zip (runaway uploads).
pub const MAX_FILE_BYTES: u64 = 4 << 30;
/// A zip entry that inflates more than this many times its compressed size (CSV compresses
/// 5 to 15 times) and past 64 MiB is treated as a zip bomb.
pub const MAX_ZIP_RATIO: u64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable zip archive: {message}")]
    Zip { path: PathBuf, message: String },
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
    /// Size in bytes (uncompressed), to schedule the biggest files first.
    pub size: u64,
    loc: Location,
}

#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    pub format: Format,
    pub entries: Vec<Entry>,
    /// Files present but not used, with the reason.
    pub ignored: Vec<(String, String)>,
    /// Remarks about the manifest (missing rows, unusual versions).
    pub notes: Vec<String>,
    /// OneRoster `source.systemName`, when given.
    pub system_name: Option<String>,
    /// Files copied unchanged into the modified bundle (OneRoster's manifest.csv).
    pub passthrough: Vec<(String, Vec<u8>)>,
    zip: Option<PathBuf>,
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Names we never treat as data: hidden files, OS metadata, in-progress uploads.
fn skipped(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with("__MACOSX")
        || name.eq_ignore_ascii_case("thumbs.db")
        || name.ends_with(".filepart")
        || name.ends_with(".part")
        || name.ends_with(".tmp")
}

/// A file found in the bundle, before format detection.
struct Found {
    name: String,
    size: u64,
    loc: Location,
}

impl Bundle {
    /// Opens a directory or a zip and detects the format.
    pub fn open(path: &Path) -> Result<Bundle, BundleError> {
        let meta = fs::metadata(path).map_err(io(path))?;
        let (found, zip) = if meta.is_dir() {
            (list_dir(path)?, None)
        } else {
            (list_zip(path)?, Some(path.to_path_buf()))
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
        };
        b.detect(found)?;
        Ok(b)
    }

    fn reader(&self, loc: &Location) -> Result<Box<dyn Read + '_>, BundleError> {
        match loc {
            Location::Dir(p) => {
                let f = fs::File::open(p).map_err(io(p))?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
            }
            Location::Zip(i) => {
                let zp = self.zip.as_deref().unwrap_or(&self.path);
                let f = fs::File::open(zp).map_err(io(zp))?;
                let mut z =
                    zip::ZipArchive::new(BufReader::new(f)).map_err(|e| BundleError::Zip {
                        path: zp.to_path_buf(),
                        message: e.to_string(),
                    })?;
                let entry = z.by_index(*i).map_err(|e| BundleError::Zip {
                    path: zp.to_path_buf(),
                    message: e.to_string(),
                })?;
                let name = entry.name().to_string();
                // The declared sizes are the sender's word: the limit is enforced on what
                // actually inflates.
                let limit = MAX_FILE_BYTES.min(
                    (entry.compressed_size().max(1))
                        .saturating_mul(MAX_ZIP_RATIO)
                        .max(64 << 20),
                );
                let mut buf = Vec::with_capacity(entry.size().min(limit) as usize);
                entry
                    .take(limit + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| BundleError::Zip {
                        path: zp.to_path_buf(),
                        message: format!("{name}: {e}"),
                    })?;
                if buf.len() as u64 > limit {
                    return Err(BundleError::Invalid(format!(
                        "{}: {name} inflates past {limit} bytes (more than {MAX_ZIP_RATIO} times \
                         its compressed size, or over {MAX_FILE_BYTES} bytes): refused as a \
                         zip bomb",
                        zp.display()
                    )));
                }
                Ok(Box::new(std::io::Cursor::new(buf)))
            }
        }
    }

    /// Parses one entry.
    pub fn read(&self, e: &Entry, encoding: csvio::Encoding) -> Result<Table, BundleError> {
        let r = self.reader(&e.loc)?;
        csvio::parse_sized(&e.name, r, self.format == Format::Apple, e.size, encoding)
            .map_err(BundleError::Csv)
    }

    fn detect(&mut self, found: Vec<Found>) -> Result<(), BundleError> {
        let stem = |n: &str| {
            n.strip_suffix(".csv")
                .or_else(|| n.strip_suffix(".CSV"))
                .map(str::to_string)
        };
        let manifest = found
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("manifest.csv"));
        if let Some(m) = manifest {
            let loc = m.loc.clone();
            return self.detect_oneroster(&found, loc);
        }
        let apple: Vec<&Found> = found
            .iter()
            .filter(|f| {
                stem(&f.name)
                    .is_some_and(|s| APPLE_FILES.iter().any(|a| a.eq_ignore_ascii_case(&s)))
            })
            .collect();
        if apple.is_empty() {
            let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
            return Err(BundleError::Invalid(format!(
                "{}: not a roster bundle: neither Apple School Manager files ({}) nor a \
                 OneRoster manifest.csv were found; found: {}",
                self.path.display(),
                APPLE_FILES.map(|a| format!("{a}.csv")).join(", "),
                if names.is_empty() {
                    "no files".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        self.format = Format::Apple;
        let mut missing = vec![];
        for a in APPLE_FILES {
            match apple
                .iter()
                .find(|f| stem(&f.name).is_some_and(|s| s.eq_ignore_ascii_case(a)))
            {
                Some(f) => self.entries.push(Entry {
                    name: f.name.clone(),
                    table: a,
                    mode: Mode::Bulk,
                    size: f.size,
                    loc: f.loc.clone(),
                }),
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
        for f in &found {
            if !self.entries.iter().any(|e| e.name == f.name) {
                self.ignored
                    .push((f.name.clone(), "not an Apple School Manager file".into()));
            }
        }
        Ok(())
    }

    fn detect_oneroster(&mut self, found: &[Found], mloc: Location) -> Result<(), BundleError> {
        let mut raw = Vec::new();
        self.reader(&mloc)?
            .take(1 << 20)
            .read_to_end(&mut raw)
            .map_err(io(&self.path))?;
        let t = csvio::parse("manifest.csv", &raw[..], false).map_err(BundleError::Csv)?;
        let mname = found
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("manifest.csv"))
            .map_or("manifest.csv".to_string(), |f| f.name.clone());
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
                        t.header.join(",")
                    ),
                }]))
            }
        };
        let mut version = None;
        let mut modes: Vec<(String, String, u32)> = vec![];
        for row in 0..t.len() {
            let k = t.field(row, pc).trim();
            let v = t.field(row, vc).trim();
            if k == "oneroster.version" {
                version = Some(v.to_string());
            } else if k == "source.systemName" && !v.is_empty() {
                self.system_name = Some(v.to_string());
            } else if let Some(file) = k.strip_prefix("file.") {
                modes.push((file.to_string(), v.to_string(), t.line(row)));
            }
        }
        let users_has_role = || -> bool {
            found
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("users.csv"))
                .and_then(|f| self.reader(&f.loc).ok())
                .and_then(|r| csvio::parse("users.csv", r.take(64 * 1024), false).ok())
                .is_some_and(|t| t.header.iter().any(|h| h.trim() == "role"))
        };
        self.format = match version.as_deref() {
            Some("1.1") | Some("1.1.1") => Format::OneRoster11,
            Some("1.2") | Some("1.2.1") => Format::OneRoster12,
            Some(v) => {
                return Err(BundleError::Invalid(format!(
                    "manifest.csv: oneroster.version `{v}` is not supported (1.1, 1.2, 1.2.1)"
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
        let schema = crate::schema::Schema::for_format(self.format);
        let find = |name: &str| {
            found
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&format!("{name}.csv")))
        };
        let mut problems: Vec<CsvError> = vec![];
        let at = |line: u32, message: String| CsvError {
            file: "manifest.csv".into(),
            line: u64::from(line),
            column: vc + 1,
            message,
        };
        let mut used: Vec<String> = vec!["manifest.csv".into()];
        for (file, mode, line) in &modes {
            let Some(def) = schema
                .tables
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(file))
            else {
                if let Some(f) = find(file) {
                    used.push(f.name.clone());
                    let known = schema
                        .known_unused
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(file));
                    let why = if known {
                        "OneRoster file not used by rosterdrop"
                    } else {
                        "not a OneRoster rostering file"
                    };
                    self.ignored.push((f.name.clone(), why.into()));
                }
                continue;
            };
            let mode = match mode.as_str() {
                "bulk" => Mode::Bulk,
                "delta" => Mode::Delta,
                "absent" => {
                    if let Some(f) = find(def.name) {
                        used.push(f.name.clone());
                        self.ignored.push((
                            f.name.clone(),
                            "marked `absent` in manifest.csv, so not read".into(),
                        ));
                    }
                    continue;
                }
                other => {
                    problems.push(at(
                        *line,
                        format!("file.{file} is `{other}`, expected bulk, delta or absent"),
                    ));
                    continue;
                }
            };
            match find(def.name) {
                Some(f) => {
                    used.push(f.name.clone());
                    self.entries.push(Entry {
                        name: f.name.clone(),
                        table: def.name,
                        mode,
                        size: f.size,
                        loc: f.loc.clone(),
                    });
                }
                None => problems.push(at(
                    *line,
                    format!(
                        "file.{file} is `{}` but {}.csv is not in the bundle",
                        mode.label(),
                        def.name
                    ),
                )),
            }
        }
        for f in found {
            if used.contains(&f.name) {
                continue;
            }
            let is_schema = schema
                .tables
                .iter()
                .any(|t| f.name.eq_ignore_ascii_case(&format!("{}.csv", t.name)));
            let why = if is_schema {
                "no file.* row for it in manifest.csv, so not read"
            } else {
                "not a OneRoster rostering file"
            };
            self.ignored.push((f.name.clone(), why.into()));
        }
        if !problems.is_empty() {
            return Err(BundleError::Csv(problems));
        }
        if self.entries.is_empty() {
            return Err(BundleError::Invalid(
                "manifest.csv marks no rostering file as bulk or delta: nothing to process".into(),
            ));
        }
        Ok(())
    }
}

fn list_dir(path: &Path) -> Result<Vec<Found>, BundleError> {
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
        return list_dir(&dirs[0]);
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn list_zip(path: &Path) -> Result<Vec<Found>, BundleError> {
    let f = fs::File::open(path).map_err(io(path))?;
    let z = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| BundleError::Zip {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut sizes: Vec<u64> = Vec::with_capacity(z.len());
    let mut z = z;
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
