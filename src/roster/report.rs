//! Patch summary, human summary and modified CSVs (the contract of DESIGN.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::roster::csvio::CsvWriter;
use crate::roster::engine::{Outcome, Verdict};
use crate::roster::findings::{Action, Finding, Rule, PATCH_SUMMARY_HEADER};
use crate::roster::text::{escape, escape_line};
use crate::zipsink::{io_error, ZipSink};

/// How many example lines per file and rule `summary.txt` shows.
const EXAMPLES: usize = 5;

/// Writes `patch-summary.csv`, `summary.txt`, `modified/` and `modified.zip` into `dir`.
pub fn write_all(outcome: &Outcome, dir: &Path) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    fs::create_dir_all(dir)?;
    write_patch_summary(outcome, &dir.join("patch-summary.csv"))?;
    fs::write(dir.join("summary.txt"), summary_text(outcome))?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "patch summary and summary"
    );
    // A bundle with a file that could not be read has no modified bundle: it would lack
    // that file. (Its other files' findings are still in patch-summary.csv.)
    if !outcome.tables.is_empty() && outcome.errors.is_empty() {
        write_modified(outcome, &dir.join("modified"), &dir.join("modified.zip"))?;
    }
    Ok(())
}

pub fn write_patch_summary(outcome: &Outcome, path: &Path) -> std::io::Result<()> {
    let f = BufWriter::new(fs::File::create(path)?);
    let mut w = CsvWriter::new(f, crate::roster::csvio::Dialect::default())?;
    w.write_row(PATCH_SUMMARY_HEADER)?;
    let mut line = String::new();
    for x in &outcome.findings {
        line.clear();
        let _ = write!(line, "{}", x.line);
        w.write_row([
            x.file.as_str(),
            line.as_str(),
            x.id.as_str(),
            x.rule.code(),
            x.action.code(),
            x.field.as_str(),
            x.value.as_str(),
            x.detail.as_str(),
        ])?;
    }
    w.into_inner().flush()
}

/// Writes each uploaded CSV with its original header, column order and dialect, minus dropped
/// rows and with cleared fields empty, into `dir`, and the same files into the zip at
/// `zip_path`. Tables are written and compressed in parallel, each into a one-entry zip in
/// memory whose compressed entry is then copied into the final archive as is.
pub fn write_modified(outcome: &Outcome, dir: &Path, zip_path: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let n = outcome.tables.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(outcome.tables[i].table.len()));
    let started = std::time::Instant::now();
    // The biggest file's deflate is the longest chain of the step: it alone gets a thread of
    // its own, and the other files deflate where they are written, so that they take one
    // core's share beside it instead of two.
    let biggest = order.first().map(|&i| &outcome.tables[i]);
    let results = crate::roster::par::parallel_map(&outcome.tables, &order, |w| {
        let t = std::time::Instant::now();
        let r = write_one(w, dir, biggest.is_some_and(|b| std::ptr::eq(b, w)));
        tracing::debug!(file = ?w.table.file, ms = t.elapsed().as_millis() as u64, "modified file");
        r
    });
    let parts: Vec<Vec<u8>> = results.into_iter().collect::<std::io::Result<_>>()?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "modified files");
    // Written beside its name and renamed once whole: a process killed while writing it left a
    // cut-short modified.zip that `show` and the console offered (an outside probe).
    let partial = zip_path.with_extension("zip.partial");
    let written =
        write_zip(outcome, dir, parts, &partial).and_then(|()| fs::rename(&partial, zip_path));
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "modified.zip");
    Ok(())
}

/// `modified.zip`'s bytes into `path`: the passthrough files, then each modified file's
/// one-entry zip copied raw.
fn write_zip(
    outcome: &Outcome,
    dir: &Path,
    parts: Vec<Vec<u8>>,
    path: &Path,
) -> std::io::Result<()> {
    let zf = fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(ZipSink::new(BufWriter::with_capacity(1 << 20, zf)));
    for (name, bytes) in &outcome.passthrough {
        let name = safe_name(name);
        fs::write(dir.join(&name), bytes)?;
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file(name.to_string_lossy(), opts)
            .map_err(io_error)?;
        zip.write_all(bytes)?;
    }
    for bytes in parts {
        let mut one = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(io_error)?;
        let entry = one.by_index_raw(0).map_err(io_error)?;
        zip.raw_copy_file(entry).map_err(io_error)?;
    }
    let mut inner = zip.finish().map_err(io_error)?.into_inner()?;
    inner.flush()
}

/// Writes one modified CSV to `dir` and returns a one-entry zip of it, built while writing.
///
/// With `own_thread`, the deflate runs on a thread of its own, fed the writer's chunks in
/// order through a short queue: for the biggest file it was more than half of the file's time,
/// on one core, while writing the rows waited for it. Either way the deflate sees the same
/// chunks, in the same order, followed by the same flush, so the zip's bytes are the same.
fn write_one(
    w: &crate::roster::engine::Work,
    dir: &Path,
    own_thread: bool,
) -> std::io::Result<Vec<u8>> {
    /// Writes every chunk to the file and to the zip.
    struct Both<A, B>(A, B);
    impl<A: Write, B: Write> Write for Both<A, B> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write_all(buf)?;
            self.1.write_all(buf)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    /// Hands a copy of every chunk to the deflate thread.
    struct ToThread(std::sync::mpsc::SyncSender<Vec<u8>>);
    impl Write for ToThread {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            // Fails only when the deflate thread stopped on an error, which it returns.
            self.0
                .send(buf.to_vec())
                .map_err(|_| std::io::Error::other("deflate stopped"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let name = safe_name(&w.table.file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(w.table.heap_bytes() as u64 >= u32::MAX as u64 / 2);
    let entry = name.to_string_lossy().into_owned();
    let file = fs::File::create(dir.join(&name))?;
    if !own_thread {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(entry, opts).map_err(io_error)?;
        let mut both = Both(file, &mut zip);
        w.write_csv(&mut both)?;
        both.flush()?;
        zip.flush()?;
        return Ok(zip.finish().map_err(io_error)?.into_inner());
    }
    // Four chunks of `WRITE_CHUNK` in flight at most.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    std::thread::scope(|s| {
        let deflate = s.spawn(move || -> std::io::Result<Vec<u8>> {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            zip.start_file(entry, opts).map_err(io_error)?;
            for chunk in rx {
                zip.write_all(&chunk)?;
            }
            // The sync flush of the deflate stream at the end, as it always was.
            zip.flush()?;
            Ok(zip.finish().map_err(io_error)?.into_inner())
        });
        let written = {
            let mut both = Both(file, ToThread(tx));
            w.write_csv(&mut both).and_then(|()| both.flush())
            // `both` (with the sender) is dropped here: the deflate thread sees the end.
        };
        let zipped = deflate
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        // The deflate thread's own error explains a failed send; else the write's.
        let zipped = zipped?;
        written?;
        Ok(zipped)
    })
}

/// Only the base name of an uploaded file is ever used for output paths.
fn safe_name(name: &str) -> PathBuf {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let base = if base.is_empty() || base == "." || base == ".." {
        "unnamed.csv"
    } else {
        base
    };
    PathBuf::from(base)
}

/// The admin-readable summary that also goes into the email.
pub fn summary_text(o: &Outcome) -> String {
    let mut s = String::new();
    let verdict = match o.verdict {
        Verdict::Accepted if o.findings.is_empty() => "ACCEPTED (no patches needed)",
        Verdict::Accepted => "ACCEPTED WITH PATCHES",
        Verdict::Held => "HELD",
        Verdict::Rejected => "REJECTED",
    };
    let _ = writeln!(s, "rosterdrop check: {verdict}");
    if !o.reasons.is_empty() {
        let why = if o.verdict == Verdict::Held {
            "held"
        } else {
            "rejected"
        };
        let _ = writeln!(s, "\nWhy the bundle was {why}:");
        for r in &o.reasons {
            let _ = writeln!(s, "  - {}", escape_line(r));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "Bundle:  {}", escape(&o.bundle_name));
    if let Some(f) = o.format {
        let _ = writeln!(s, "Format:  {}", f.label());
    }
    let _ = writeln!(
        s,
        "Patching errors: {}; preventing duplicate accounts: {}",
        if o.settings.patch_errors { "on" } else { "off" },
        if o.settings.prevent_duplicates {
            "on"
        } else {
            "off"
        }
    );
    if !o.errors.is_empty() {
        let _ = writeln!(
            s,
            "\nThe bundle could not be read ({} problem(s)); nothing was applied:",
            o.errors.len()
        );
        for e in o.errors.iter().take(50) {
            let _ = writeln!(s, "  {}", escape_line(&e.to_string()));
        }
    }
    if !o.tables.is_empty() {
        let _ = writeln!(s, "\nRows per file:");
        let _ = writeln!(
            s,
            "  {:<24} {:>6} {:>10} {:>10} {:>10} {:>8}",
            "file", "mode", "read", "kept", "dropped", "cleared"
        );
        for w in &o.tables {
            // Malformed rows were read and dropped, but never became rows of the table.
            let malformed = w.table.malformed.len();
            let dropped = w.dropped_rows();
            let cleared = o
                .findings
                .iter()
                .filter(|f| f.file == w.table.file && f.action == Action::ClearedField)
                .count();
            let _ = writeln!(
                s,
                "  {:<24} {:>6} {:>10} {:>10} {:>10} {:>8}",
                escape(&w.table.file),
                w.mode.label(),
                w.table.len() + malformed,
                w.table.len() - dropped,
                dropped + malformed,
                cleared
            );
        }
    }
    // Counts per file and rule, with the first examples.
    let file_pos = |f: &str| o.tables.iter().position(|w| w.table.file == f);
    let mut groups: BTreeMap<(Option<usize>, &str, Rule), Vec<&Finding>> = BTreeMap::new();
    for f in &o.findings {
        let key = (file_pos(&f.file), f.file.as_str(), f.rule);
        groups.entry(key).or_default().push(f);
    }
    if !groups.is_empty() {
        let _ = writeln!(
            s,
            "\nPatches by file and rule (details in patch-summary.csv):"
        );
        for ((_, file, rule), list) in &groups {
            let _ = writeln!(s, "  {}  {rule}: {}", escape(file), list.len());
            for f in list.iter().take(EXAMPLES) {
                let field = if f.field.is_empty() {
                    String::new()
                } else {
                    format!(" {}", escape(&f.field))
                };
                let _ = writeln!(
                    s,
                    "      line {} id {}{}: {} ({})",
                    f.line,
                    if f.id.is_empty() {
                        "-".into()
                    } else {
                        escape(&f.id)
                    },
                    field,
                    if f.action == Action::FixedField {
                        // What changed is the point of a rewrite: `TRUE -> true`.
                        format!("{}, {}", escape(&f.value), escape_line(&f.detail))
                    } else {
                        escape_line(&f.detail).into_owned()
                    },
                    f.action.code()
                );
            }
            if list.len() > EXAMPLES {
                let _ = writeln!(s, "      ... and {} more", list.len() - EXAMPLES);
            }
        }
    }
    if !o.notes.is_empty() {
        let _ = writeln!(s, "\nNotes:");
        for n in &o.notes {
            let _ = writeln!(s, "  - {}", escape_line(n));
        }
    }
    if !o.ignored.is_empty() {
        let _ = writeln!(s, "\nIgnored files:");
        for (name, why) in &o.ignored {
            let _ = writeln!(s, "  - {}: {}", escape(name), escape_line(why));
        }
    }
    s
}
