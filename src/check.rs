//! `check`: the whole offline pipeline on one bundle.

use std::path::Path;

use crate::bundle::{Bundle, BundleError};
use crate::engine::{self, External, Outcome, Settings, Verdict};
use crate::schema::Schema;

/// Runs read, parse, validate, filter and patch on the bundle at `path`.
///
/// Returns `Err` only when the path itself cannot be read (an I/O problem on our side); a
/// bundle that is malformed, of no known format or otherwise unusable yields a rejected
/// [`Outcome`] whose `errors` say why, naming file, line and column.
pub fn check(path: &Path, settings: &Settings, ext: &dyn External) -> Result<Outcome, BundleError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let rejected = |errors| Ok(Outcome::unreadable(name.clone(), settings.clone(), errors));
    let bundle = match Bundle::open(path) {
        Ok(b) => b,
        Err(BundleError::Io { path: p, source }) if p == path => {
            return Err(BundleError::Io { path: p, source })
        }
        Err(e) => return rejected(as_csv_errors(e)),
    };
    if let Err(e) = bundle.expect(settings.expect) {
        return rejected(as_csv_errors(e));
    }
    let started = std::time::Instant::now();
    let schema = Schema::for_format(bundle.format);
    // Per file: parse, bind, validate and index, in parallel across files.
    let mut schedule: Vec<usize> = (0..bundle.entries.len()).collect();
    schedule.sort_by_key(|&i| std::cmp::Reverse(bundle.entries[i].size));
    let results = crate::par::parallel_map(&bundle.entries, &schedule, |entry| {
        let def = schema.table(entry.table)?;
        let bound = bundle
            .read(entry)
            .map_err(as_csv_errors)
            .and_then(|t| engine::bind(def, t, entry.mode))
            .map(|mut w| {
                engine::prepare(&schema, settings, &mut w);
                w
            });
        Some(bound)
    });
    let mut works = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(w) => works.push(w),
            Err(mut e) => errors.append(&mut e),
        }
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "read and parse");
    if !errors.is_empty() {
        let mut o = Outcome::unreadable(name, settings.clone(), errors);
        o.format = Some(bundle.format);
        o.ignored = bundle.ignored;
        o.notes = bundle.notes;
        return Ok(o);
    }
    let (tables, findings, mut notes) = engine::run(&schema, settings, ext, works);
    let (verdict, reasons) = engine::hold(settings, &tables, engine::verdict(settings, &findings));
    let mut all_notes = bundle.notes;
    all_notes.append(&mut notes);
    for w in &tables {
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
        errors: vec![],
        reasons,
        notes: all_notes,
        ignored: bundle.ignored,
        passthrough: bundle.passthrough,
        verdict,
    })
}

/// Turns a bundle error into located errors for the report.
fn as_csv_errors(e: BundleError) -> Vec<crate::csvio::CsvError> {
    match e {
        BundleError::Csv(v) => v,
        other => vec![crate::csvio::CsvError {
            file: String::new(),
            line: 0,
            column: 0,
            message: other.to_string(),
        }],
    }
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        self.verdict == Verdict::Accepted
    }
}
