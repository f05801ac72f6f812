//! `check`: the whole offline pipeline on one bundle.

use std::path::Path;

use crate::roster::bundle::{Bundle, BundleError};
use crate::roster::engine::{self, External, Outcome, Settings, StoredPerson, Verdict, Work};
use crate::roster::findings::{Action, Finding, Rule};
use crate::roster::schema::Schema;

/// Runs read, parse, validate, filter and patch on the bundle at `path`.
///
/// Returns `Err` only when the path itself cannot be read (an I/O problem on our side); a
/// bundle that is malformed, of no known format or otherwise unusable yields a rejected
/// [`Outcome`] whose `errors` say why, naming file, line and column. When only some files
/// cannot be read, the others still go through every check and their findings are listed
/// (the verdict stays rejected), so that a vendor can fix everything in one round trip.
pub fn check(path: &Path, settings: &Settings, ext: &dyn External) -> Result<Outcome, BundleError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    check_named(path, &name, settings, ext)
}

/// [`check`] of a bundle that the reports call `name` (the folder or zip name the vendor
/// uploaded, when `path` is a spool folder): no message names `path` itself.
pub fn check_named(
    path: &Path,
    name: &str,
    settings: &Settings,
    ext: &dyn External,
) -> Result<Outcome, BundleError> {
    let name = name.to_string();
    let here = path.display().to_string();
    let as_csv_errors = |e: BundleError| located(e, &here, &name);
    let rejected = |errors| Ok(Outcome::unreadable(name.clone(), settings.clone(), errors));
    let bundle = match Bundle::open_limited(path, settings.limits) {
        Ok(b) => b,
        Err(BundleError::Io(e)) if e.path == path => return Err(BundleError::Io(e)),
        Err(e) => return rejected(as_csv_errors(e)),
    };
    if let Err(e) = bundle.expect(settings.expect) {
        return rejected(as_csv_errors(e));
    }
    let started = std::time::Instant::now();
    let schema = Schema::for_format(bundle.format);
    // Before the parse: the store reads the stored persons the check will ask about on a
    // thread of its own meanwhile.
    let bulk: Vec<&str> = bundle
        .entries
        .iter()
        .filter(|e| e.mode == crate::roster::bundle::Mode::Bulk)
        .map(|e| e.table)
        .collect();
    ext.persons_asked(&engine::persons_asked(&schema, &bulk));
    // Per file: parse, bind, validate and index, in parallel across files.
    let mut schedule: Vec<usize> = (0..bundle.entries.len()).collect();
    schedule.sort_by_key(|&i| std::cmp::Reverse(bundle.entries[i].size));
    let results = crate::roster::par::parallel_map(&bundle.entries, &schedule, |entry| {
        let def = schema.table(entry.table)?;
        let t0 = std::time::Instant::now();
        let bound = bundle
            .read(entry, settings.encoding)
            .map_err(as_csv_errors)
            .and_then(|t| {
                // `?`: an uploaded name is logged escaped, never raw.
                tracing::debug!(
                    file = ?entry.name,
                    at = started.elapsed().as_millis() as u64,
                    ms = t0.elapsed().as_millis() as u64,
                    "parsed"
                );
                engine::bind(def, t, entry.mode)
            })
            .map(|mut w| {
                let t1 = std::time::Instant::now();
                engine::prepare(&schema, settings, &mut w);
                tracing::debug!(
                    file = ?entry.name,
                    at = started.elapsed().as_millis() as u64,
                    ms = t1.elapsed().as_millis() as u64,
                    "prepared"
                );
                w
            });
        Some(bound)
    });
    let mut works = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    let mut unreadable: Vec<&'static str> = Vec::new();
    let mut all_notes = Vec::new();
    // Results keep the order of the entries.
    for (entry, r) in bundle.entries.iter().zip(results) {
        let Some(r) = r else { continue };
        match r {
            Ok(w) => works.push(w),
            Err(mut e) => {
                errors.append(&mut e);
                unreadable.push(entry.table);
                all_notes.push(format!(
                    "{}: the file could not be read, so references into it were not checked",
                    entry.name
                ));
            }
        }
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "read and parse");
    all_notes.splice(0..0, bundle.notes);
    // References into an unreadable file are treated like references into an absent one:
    // not checked (not even against the store), rather than every one reported unknown.
    let ext = Unreadable {
        inner: ext,
        tables: &unreadable,
    };
    let (tables, mut findings, mut notes) = engine::run(&schema, settings, &ext, works);
    // Malformed rows were never rows of their table: their findings are merged here, in the
    // engine's order (file, then line; the sort is stable).
    if tables.iter().any(|w| !w.table.malformed.is_empty()) {
        for w in &tables {
            findings.extend(malformed_findings(w));
        }
        let order = |f: &Finding| tables.iter().position(|w| w.table.file == f.file);
        findings.sort_by_cached_key(|f| (order(f), f.line));
    }
    let (mut verdict, reasons) =
        engine::hold(settings, &tables, engine::verdict(settings, &findings));
    if !errors.is_empty() {
        verdict = Verdict::Rejected;
    }
    all_notes.append(&mut notes);
    for w in &tables {
        all_notes.extend(w.table.notes.iter().cloned());
        if w.table.blank_rows > 0 {
            all_notes.push(format!(
                "{}: {} blank row(s) (only separators) skipped",
                w.table.file, w.table.blank_rows
            ));
        }
    }
    Ok(Outcome {
        bundle_name: name,
        format: Some(bundle.format),
        settings: settings.clone(),
        tables,
        findings,
        errors,
        reasons,
        notes: all_notes,
        ignored: bundle.ignored,
        passthrough: bundle.passthrough,
        verdict,
    })
}

/// One `malformed-row` finding per row whose field count did not match the header.
fn malformed_findings(w: &Work) -> impl Iterator<Item = Finding> + '_ {
    w.table.malformed.iter().map(move |m| {
        let (field, detail) = m.describe(&w.table.header);
        Finding {
            file: w.table.file.clone(),
            line: m.line,
            // The fields of such a row are not where the header puts them; only the first
            // is where it should be.
            id: if w.pk_col() == 0 {
                m.first.clone()
            } else {
                String::new()
            },
            rule: Rule::MalformedRow,
            action: Action::DroppedRow,
            field,
            value: m.extra.clone(),
            detail,
        }
    })
}

/// The caller's [`External`], except that the tables of unreadable files are unknown.
struct Unreadable<'a> {
    inner: &'a dyn External,
    tables: &'a [&'static str],
}

impl External for Unreadable<'_> {
    fn has_id(&self, table: &str, id: &str) -> Option<bool> {
        if self.tables.contains(&table) {
            return None;
        }
        self.inner.has_id(table, id)
    }
    fn person_with_key(&self, key: &str) -> Option<StoredPerson<'_>> {
        self.inner.person_with_key(key)
    }
    fn person_key_of(&self, table: &str, id: &str) -> Option<String> {
        self.inner.person_key_of(table, id)
    }
    fn persons_asked(&self, tables: &[&'static str]) {
        self.inner.persons_asked(tables)
    }
}

/// Turns a bundle error into located errors for the report, the bundle's path on this server
/// (`here`) replaced by its name: what vendors read is theirs alone.
fn located(e: BundleError, here: &str, name: &str) -> Vec<crate::roster::csvio::CsvError> {
    match e {
        BundleError::Csv(v) => v,
        other => vec![crate::roster::csvio::CsvError {
            file: String::new(),
            line: 0,
            column: 0,
            message: other.to_string().replace(here, name),
        }],
    }
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        self.verdict == Verdict::Accepted
    }
}
