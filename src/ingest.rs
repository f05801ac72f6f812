//! One bundle from upload to committed batch: check against the stored roster, write the
//! reports, commit (or hold, or reject). Used by `rosterdrop ingest` and the daemon.

use std::path::{Path, PathBuf};

use crate::config::SourceConfig;
use crate::roster::check::check;
use crate::roster::engine::{Outcome, Verdict};
use crate::roster::report;
use crate::store::views::commit_text;
use crate::store::{Arrival, Batch, BatchState, Guard, Incoming, Store};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Bundle(#[from] crate::roster::bundle::BundleError),
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
}

/// What an ingest produced.
pub struct Ingested {
    pub batch: Batch,
    /// `None` when the upload was identical to the last applied one and was not checked.
    pub outcome: Option<Outcome>,
    pub report_dir: PathBuf,
}

pub fn guard_of(sc: &SourceConfig) -> Guard {
    let d = Guard::default();
    Guard {
        max_delete_percent: sc.guard.max_delete_percent.unwrap_or(d.max_delete_percent),
        min_rows: sc.guard.min_rows.unwrap_or(d.min_rows),
    }
}

/// Checks `path` for `source` against the stored roster, writes its reports under
/// `reports_root/<source>/<batch>/`, and commits it as a new batch.
pub fn ingest(
    store: &Store,
    reports_root: &Path,
    source: &str,
    sc: &SourceConfig,
    path: &Path,
    account: &str,
) -> Result<Ingested, IngestError> {
    let arrival = store.arrival(source, account)?;
    let span = tracing::info_span!("batch", id = arrival.id, source);
    let _g = span.enter();
    ingest_arrival(store, reports_root, sc, path, &arrival, None)
}

/// [`ingest`] for an upload whose batch id was reserved when it was received (the daemon's
/// intake). `upload_name` is what the vendor called the bundle (the folder or zip name), for
/// the reports; `None`: the name of `path`. Running it again for the same arrival after a
/// crash is safe: the commit is atomic and the batch record is overwritten.
pub fn ingest_arrival(
    store: &Store,
    reports_root: &Path,
    sc: &SourceConfig,
    path: &Path,
    arrival: &Arrival,
    upload_name: Option<&str>,
) -> Result<Ingested, IngestError> {
    use crate::fsutil::at as io;
    let started = std::time::Instant::now();
    let (id, source) = (arrival.id, arrival.source.as_str());
    // The hash of the files the engine reads, from the bundle itself (bundle.rs): an upload
    // identical to the last applied one is recognised before it is checked.
    let hash = crate::roster::bundle::upload_hash(path).map_err(io(path))?;
    let report_dir = reports_root.join(source).join(id.to_string());
    let settings = sc.settings();
    let inc = Incoming {
        arrival: arrival.clone(),
        content_hash: hash,
        settings_hash: settings.fingerprint(),
        report_dir: Some(report_dir.display().to_string()),
        started,
    };
    store.processing(&inc)?;
    if store.is_last_applied(&inc)? {
        // Byte-for-byte the last applied upload, under the same settings: nothing to check or
        // write.
        let batch = store.unchanged(&inc)?;
        std::fs::create_dir_all(&report_dir).map_err(io(&report_dir))?;
        let summary = report_dir.join("summary.txt");
        std::fs::write(&summary, commit_text(&batch)).map_err(io(&summary))?;
        return Ok(Ingested {
            batch,
            outcome: None,
            report_dir,
        });
    }
    let view = store.view(source)?;
    // The stored persons are read on one thread while the bundle is parsed on the others.
    let checked = std::thread::scope(|s| {
        let span = tracing::Span::current();
        let v = &view;
        s.spawn(move || {
            let _g = span.enter();
            let t = std::time::Instant::now();
            v.load_persons();
            tracing::debug!(ms = t.elapsed().as_millis() as u64, "stored persons loaded");
        });
        let _checking = view.checking();
        match upload_name {
            Some(n) => crate::roster::check::check_named(path, n, &settings, &view),
            None => check(path, &settings, &view),
        }
    });
    view.finish()?;
    let mut outcome = checked?;
    let t = std::time::Instant::now();
    // The reports are written on one thread while the commit works out its writes on
    // another; the commit writes nothing until the reports are complete, and nothing at all
    // when they fail. It records the batch's final state once, with the time the pipeline
    // took up to it, and stands whatever happens after it: later steps only log.
    let mut report_err: Option<IngestError> = None;
    let committed = std::thread::scope(|s| {
        let span = tracing::Span::current();
        let (o, dir) = (&outcome, &report_dir);
        let mut writer = Some(s.spawn(move || {
            let _g = span.enter();
            let t = std::time::Instant::now();
            let r = report::write_all(o, dir);
            tracing::debug!(ms = t.elapsed().as_millis() as u64, "reports written");
            r
        }));
        let mut ready = || -> Result<(), crate::store::StoreError> {
            let Some(h) = writer.take() else {
                return Ok(());
            };
            match h.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    report_err = Some(IngestError::Io(io(&report_dir)(e)));
                    Err(crate::store::StoreError::Refused(
                        "the batch's reports were not written".into(),
                    ))
                }
                Err(p) => std::panic::resume_unwind(p),
            }
        };
        let r = store.commit_when(&outcome, &inc, guard_of(sc), &mut ready);
        // Joined whatever the commit did.
        let joined = ready();
        r.and_then(|c| joined.map(|()| c))
    });
    if let Some(e) = report_err {
        return Err(e);
    }
    let committed = committed?;
    let batch = committed.batch.clone();
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "reported and committed"
    );
    // What the store added: stored records the batch's deletions took with them, a hold by
    // the deletion guard, a refusal.
    let cascaded = !committed.cascaded.is_empty();
    outcome.findings.extend(committed.cascaded);
    match batch.state {
        BatchState::Held if outcome.verdict != Verdict::Rejected => {
            outcome.verdict = Verdict::Held;
            outcome.reasons.extend(committed.held);
        }
        BatchState::Rejected if outcome.verdict != Verdict::Rejected => {
            outcome.verdict = Verdict::Rejected;
            outcome.reasons.extend(batch.reason.clone());
        }
        _ => {}
    }
    if cascaded {
        let p = report_dir.join("patch-summary.csv");
        if let Err(e) = report::write_patch_summary(&outcome, &p) {
            tracing::warn!(error = %e, path = %p.display(), "patch-summary.csv not completed");
        }
    }
    // The summary, with the verdict as committed, ends with what happened to the roster.
    let summary = report_dir.join("summary.txt");
    let text = report::summary_text(&outcome) + &commit_text(&batch);
    if let Err(e) = std::fs::write(&summary, text) {
        tracing::warn!(error = %e, path = %summary.display(), "summary.txt not completed");
    }
    Ok(Ingested {
        batch,
        outcome: Some(outcome),
        report_dir,
    })
}

/// Marks the reports of a batch that failed after its check wrote them (the disk filled up, the
/// commit failed): `summary.txt` then begins by saying that nothing was applied and that the
/// files beside it may be cut short, and ends with the batch as recorded. It used to keep the
/// check's `ACCEPTED` for a batch recorded as failed.
pub fn mark_reports_failed(report_dir: &Path, batch: &crate::store::Batch) {
    let summary = report_dir.join("summary.txt");
    let Ok(before) = std::fs::read_to_string(&summary) else {
        return;
    };
    let text = format!(
        "THIS BATCH FAILED: nothing from it was applied. The reports below and beside this file \
         were written before it failed and may be incomplete.\n\n{before}{}",
        commit_text(batch)
    );
    if let Err(e) = std::fs::write(&summary, text) {
        tracing::warn!(error = %e, path = %summary.display(), "summary.txt not marked failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reports of a batch that failed after its check no longer say it was accepted.
    #[test]
    fn a_failed_batch_s_summary_says_so_first() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("summary.txt"),
            "rosterdrop check: ACCEPTED (no patches needed)\n",
        )
        .unwrap();
        let b: crate::store::Batch = serde_json::from_str(
            r#"{"id":7,"source":"north","account":"sis","content_hash":"","format":"apple","mode":"bulk","state":"failed","received_at":0,"duration_ms":0,"tables":{},"patches":{},"report_dir":null,"reason":"No space left on device (os error 28)","base":null,"rollback_of":null}"#,
        )
        .unwrap();
        mark_reports_failed(d.path(), &b);
        let text = std::fs::read_to_string(d.path().join("summary.txt")).unwrap();
        assert!(
            text.starts_with("THIS BATCH FAILED: nothing from it was applied."),
            "{text}"
        );
        assert!(text.contains("ACCEPTED (no patches needed)"), "{text}");
        assert!(text.contains("Batch 7 (north): FAILED."), "{text}");
        assert!(text.contains("No space left on device"), "{text}");
        // No summary (the check never got that far): nothing is written.
        let e = tempfile::tempdir().unwrap();
        mark_reports_failed(e.path(), &b);
        assert!(!e.path().join("summary.txt").exists());
    }
}
