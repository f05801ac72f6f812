//! The email for one batch: subject, body and attachment.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Attachment, MailConfig, MailError, Notice};
use crate::store::{Batch, BatchState};

/// `[rosterdrop] <source> batch <id>: <VERDICT>, <counts>`: no roster data, only the
/// source's name, the batch id, its state and numbers.
pub fn batch_subject(b: &Batch, failed: bool) -> String {
    let (a, u, d) = b.totals();
    let counts = format!("+{a} ~{u} -{d}");
    let p: u64 = b.patches.values().sum();
    let patches = match p {
        1 => "1 patch".to_string(),
        n => format!("{n} patches"),
    };
    let state = if failed { BatchState::Failed } else { b.state };
    let verdict = match state {
        BatchState::Applied => match b.rollback_of {
            Some(r) => format!("APPLIED, rollback of batch {r}, {counts}"),
            None => format!("APPLIED, {counts}, {patches}"),
        },
        BatchState::Held => match held_reason(b) {
            Some(why) => format!("HELD, approval needed: {why}; {counts}, {patches}"),
            None => format!("HELD, approval needed: {counts}, {patches}"),
        },
        BatchState::Rejected if p == 0 => "REJECTED, nothing applied".to_string(),
        BatchState::Rejected => format!(
            "REJECTED, nothing applied, {p} {}",
            if p == 1 { "finding" } else { "findings" }
        ),
        BatchState::Unchanged if p == 0 => "UNCHANGED, nothing to apply".to_string(),
        BatchState::Unchanged => format!("UNCHANGED, nothing to apply, {patches}"),
        BatchState::Failed => "FAILED, nothing applied".to_string(),
        BatchState::Discarded => "DISCARDED, nothing applied".to_string(),
        BatchState::RolledBack => "ROLLED BACK".to_string(),
        BatchState::Received | BatchState::Processing => state.label().to_uppercase(),
    };
    format!("[rosterdrop] {} batch {}: {verdict}", b.source, b.id)
}

/// The first reason a batch was held, as the store wrote it (table and file names of the
/// schema and counts, never roster data), with a count of the others; printable ASCII only
/// and bounded, since it goes into a header.
fn held_reason(b: &Batch) -> Option<String> {
    let r = b.reason.as_deref()?;
    let r = r.strip_prefix(crate::store::HELD_PREFIX)?;
    let r = r.rsplit_once(" (rosterdrop approve").map_or(r, |(a, _)| a);
    let mut parts = r.split("; ").filter(|p| !p.trim().is_empty());
    let first = parts.next()?;
    let more = parts.count();
    let mut s: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(120)
        .collect();
    if more > 0 {
        s.push_str(&format!(" (and {more} more)"));
    }
    Some(s)
}

/// The notice for `batch`, keyed `batch-<id>`, to `admins`.
///
/// Body: `summary.txt` from `report_dir` (or the batch's own report directory) verbatim,
/// then where the reports are, and for a held batch the commands that approve or discard
/// it. A failed batch (`error` set) starts with the error. `patch-summary.csv` is attached
/// when it has rows: as is up to `attach_zip_over_bytes`, zipped above, left out (the body
/// says so) when the attachment would exceed `attach_max_bytes`. A report that cannot be
/// read is mentioned in the body rather than stopping the email.
pub fn batch_notice(
    batch: &Batch,
    report_dir: Option<&Path>,
    error: Option<&str>,
    admins: &[String],
    cfg: &MailConfig,
) -> Result<Notice, MailError> {
    if admins.is_empty() {
        return Err(MailError::NoRecipients);
    }
    let failed = error.is_some() || batch.state == BatchState::Failed;
    let dir: Option<PathBuf> = report_dir
        .map(Path::to_path_buf)
        .or_else(|| batch.report_dir.as_ref().map(PathBuf::from))
        .filter(|d| d.is_dir());
    let mut body = String::new();
    if failed {
        let why = error.or(batch.reason.as_deref()).unwrap_or("unknown error");
        let _ = writeln!(
            body,
            "Batch {} of {} FAILED: nothing was applied to the roster.\n\nError: {why}\n",
            batch.id, batch.source
        );
    }
    let summary = dir.as_ref().map(|d| d.join("summary.txt"));
    match summary.as_ref().map(|s| (s, std::fs::read_to_string(s))) {
        Some((_, Ok(text))) => {
            body.push_str(&text);
            if !text.ends_with('\n') {
                body.push('\n');
            }
        }
        Some((path, Err(e))) if e.kind() != io::ErrorKind::NotFound => {
            let _ = writeln!(body, "({} could not be read: {e})", path.display());
            body.push_str(&crate::pipeline::commit_text(batch));
        }
        _ if failed => {}
        _ => body.push_str(&crate::pipeline::commit_text(batch)),
    }
    let (attachment, note) = match &dir {
        Some(d) => patch_attachment(&d.join("patch-summary.csv"), cfg),
        None => (None, None),
    };
    body.push_str(&footer(batch, dir.as_deref(), note.as_deref()));
    Ok(Notice {
        key: format!("batch-{}", batch.id),
        to: admins.to_vec(),
        subject: batch_subject(batch, failed),
        body,
        attachment,
    })
}

fn footer(b: &Batch, dir: Option<&Path>, note: Option<&str>) -> String {
    let mut s = String::from("\n-- \n");
    if b.state == BatchState::Held {
        let _ = writeln!(
            s,
            "This batch is HELD: nothing has been applied yet. On the server, an admin either\n\
             applies it:\n\n    rosterdrop approve {id}\n\nor drops it:\n\n    rosterdrop discard {id}\n",
            id = b.id
        );
    }
    match dir {
        Some(d) => {
            let _ = writeln!(s, "Reports of batch {}:", b.id);
            let _ = writeln!(
                s,
                "  vendor, over SFTP:     reports/{}/ in the upload account",
                b.id
            );
            let _ = writeln!(s, "  admins, on the server: {}/", d.display());
            let files: Vec<&str> = [
                ("summary.txt", "summary.txt"),
                (
                    "patch-summary.csv",
                    "patch-summary.csv (one line per patch)",
                ),
                ("modified", "modified/ (the patched CSVs)"),
                ("modified.zip", "modified.zip"),
            ]
            .into_iter()
            .filter(|(f, _)| d.join(f).exists())
            .map(|(_, label)| label)
            .collect();
            if !files.is_empty() {
                let _ = writeln!(s, "  files:                 {}", files.join(", "));
            }
        }
        None => {
            let _ = writeln!(s, "No report was written for batch {}.", b.id);
        }
    }
    if let Some(n) = note {
        let _ = writeln!(s, "{n}");
    }
    s
}

/// Whether a CSV file has a line after its header.
fn has_rows(path: &Path) -> io::Result<bool> {
    let mut r = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    line.clear();
    r.read_until(b'\n', &mut line)?;
    Ok(line.iter().any(|b| !b.is_ascii_whitespace()))
}

/// `patch-summary.csv` as an attachment, or why there is none.
fn patch_attachment(path: &Path, cfg: &MailConfig) -> (Option<Attachment>, Option<String>) {
    let size = match (std::fs::metadata(path), has_rows(path)) {
        (Ok(m), Ok(true)) => m.len(),
        (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return (None, None),
        (Ok(_), Ok(false)) => return (None, None),
        (Err(e), _) | (_, Err(e)) => {
            return (
                None,
                Some(format!(
                    "patch-summary.csv could not be read ({e}); see the reports above."
                )),
            )
        }
    };
    let too_big = |n: u64| {
        Some(format!(
            "patch-summary.csv is not attached: {} is over the {} limit; see the reports above.",
            human(n),
            human(cfg.attach_max_bytes)
        ))
    };
    if size <= cfg.attach_zip_over_bytes {
        if size > cfg.attach_max_bytes {
            return (None, too_big(size));
        }
        return match std::fs::read(path) {
            Ok(data) => (
                Some(Attachment {
                    filename: "patch-summary.csv".into(),
                    content_type: "text/csv; charset=utf-8".into(),
                    data,
                }),
                None,
            ),
            Err(e) => (
                None,
                Some(format!("patch-summary.csv could not be read ({e})")),
            ),
        };
    }
    match zip_file(path, "patch-summary.csv", cfg.attach_max_bytes) {
        Ok(data) => (
            Some(Attachment {
                filename: "patch-summary.zip".into(),
                content_type: "application/zip".into(),
                data,
            }),
            None,
        ),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => (
            None,
            Some(format!(
                "patch-summary.csv is not attached: {} even zipped is over the {} limit; see the reports above.",
                human(size),
                human(cfg.attach_max_bytes)
            )),
        ),
        Err(e) => (
            None,
            Some(format!("patch-summary.csv could not be zipped ({e})")),
        ),
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

/// An in-memory buffer that refuses to grow past `cap` bytes (`FileTooLarge`), so that
/// zipping a huge file stops as soon as the result cannot be attached.
struct Capped {
    buf: Cursor<Vec<u8>>,
    cap: u64,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.position() + data.len() as u64 > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "attachment over the size limit",
            ));
        }
        self.buf.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Capped {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.buf.seek(pos)
    }
}

/// `path` deflated into a one-file zip named `name`, at most `cap` bytes.
fn zip_file(path: &Path, name: &str, cap: u64) -> io::Result<Vec<u8>> {
    let mut src = File::open(path)?;
    let large = src.metadata()?.len() >= u64::from(u32::MAX);
    let mut z = zip::ZipWriter::new(Capped {
        buf: Cursor::new(Vec::new()),
        cap,
    });
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(large);
    let zerr = |e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(e) => e,
        e => io::Error::other(e.to_string()),
    };
    z.start_file(name, opts).map_err(zerr)?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = src.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        z.write_all(&chunk[..n])?;
    }
    Ok(z.finish().map_err(zerr)?.buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::store::TableCounts;

    fn batch(state: BatchState) -> Batch {
        let mut tables = BTreeMap::new();
        tables.insert(
            "students".to_string(),
            TableCounts {
                adds: 1000,
                updates: 2,
                before: 10,
                ..TableCounts::default()
            },
        );
        tables.insert(
            "rosters".to_string(),
            TableCounts {
                adds: 200,
                updates: 1,
                ..TableCounts::default()
            },
        );
        let mut patches = BTreeMap::new();
        patches.insert("unknown-class".to_string(), 10);
        patches.insert("invalid-value".to_string(), 4);
        Batch {
            id: 42,
            source: "maple-valley".into(),
            account: "sis".into(),
            content_hash: "h".into(),
            format: "apple".into(),
            mode: "bulk".into(),
            state,
            received_at: 0,
            duration_ms: 0,
            tables,
            patches,
            report_dir: None,
            reason: None,
            base: None,
            rollback_of: None,
            buckets_before: BTreeMap::new(),
            buckets_after: BTreeMap::new(),
        }
    }

    fn admins() -> Vec<String> {
        vec!["it@maple.example".to_string()]
    }

    #[test]
    fn subjects() {
        let s = |st| batch_subject(&batch(st), false);
        assert_eq!(
            s(BatchState::Applied),
            "[rosterdrop] maple-valley batch 42: APPLIED, +1200 ~3 -0, 14 patches"
        );
        assert_eq!(
            s(BatchState::Held),
            "[rosterdrop] maple-valley batch 42: HELD, approval needed: +1200 ~3 -0, 14 patches"
        );
        assert_eq!(
            s(BatchState::Rejected),
            "[rosterdrop] maple-valley batch 42: REJECTED, nothing applied, 14 findings"
        );
        assert_eq!(
            s(BatchState::Unchanged),
            "[rosterdrop] maple-valley batch 42: UNCHANGED, nothing to apply, 14 patches"
        );
        assert_eq!(
            batch_subject(&batch(BatchState::Processing), true),
            "[rosterdrop] maple-valley batch 42: FAILED, nothing applied"
        );
        let mut b = batch(BatchState::Unchanged);
        b.patches.clear();
        b.tables.clear();
        assert_eq!(
            batch_subject(&b, false),
            "[rosterdrop] maple-valley batch 42: UNCHANGED, nothing to apply"
        );
        b.state = BatchState::Applied;
        b.patches.insert("duplicate-id".into(), 1);
        assert!(batch_subject(&b, false).ends_with("APPLIED, +0 ~0 -0, 1 patch"));
        b.rollback_of = Some(40);
        assert!(batch_subject(&b, false).ends_with("APPLIED, rollback of batch 40, +0 ~0 -0"));
    }

    fn report(dir: &Path, rows: usize) {
        std::fs::write(
            dir.join("summary.txt"),
            "rosterdrop check: ACCEPTED WITH PATCHES\nline two",
        )
        .unwrap();
        let mut csv = String::from("file,line,id,rule,action,field,value,detail\n");
        for i in 0..rows {
            csv.push_str(&format!(
                "rosters.csv,{},R{i},unknown-class,dropped-row,class_id,C{i},no such class\n",
                i + 2
            ));
        }
        std::fs::write(dir.join("patch-summary.csv"), csv).unwrap();
    }

    #[test]
    fn body_is_the_summary_then_where_the_reports_are() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 3);
        let n = batch_notice(
            &batch(BatchState::Applied),
            Some(d.path()),
            None,
            &admins(),
            &MailConfig::default(),
        )
        .unwrap();
        assert_eq!(n.key, "batch-42");
        assert_eq!(n.to, admins());
        assert!(n
            .body
            .starts_with("rosterdrop check: ACCEPTED WITH PATCHES\nline two\n"));
        assert!(n.body.contains("reports/42/ in the upload account"));
        assert!(n.body.contains(&format!("{}/", d.path().display())));
        assert!(n
            .body
            .contains("files:                 summary.txt, patch-summary.csv"));
        assert!(!n.body.contains("approve"));
        let a = n.attachment.unwrap();
        assert_eq!(a.filename, "patch-summary.csv");
        assert_eq!(a.content_type, "text/csv; charset=utf-8");
        assert_eq!(
            a.data,
            std::fs::read(d.path().join("patch-summary.csv")).unwrap()
        );
        // A student id from the report stays out of the subject.
        assert!(!n.subject.contains("R1"));
    }

    #[test]
    fn a_held_subject_says_why() {
        let mut b = batch(BatchState::Held);
        b.reason = Some(format!(
            "{}users.csv: patches drop 3 of its 10 rows (30.0%, more than \
             guard.max_patch_drop_percent = 20%); students: 10 of 10 records would be deleted \
             (100.0%, the whole table) (rosterdrop approve 42 / discard 42)",
            crate::store::HELD_PREFIX
        ));
        assert_eq!(
            batch_subject(&b, false),
            "[rosterdrop] maple-valley batch 42: HELD, approval needed: users.csv: patches \
             drop 3 of its 10 rows (30.0%, more than guard.max_patch_drop_percent = 20%) \
             (and 1 more); +1200 ~3 -0, 14 patches"
        );
        // Nothing but printable ASCII reaches the header.
        b.reason = Some(format!("{}a\r\nBcc: x@y\u{7}", crate::store::HELD_PREFIX));
        let s = batch_subject(&b, false);
        assert!(
            !s.contains('\r') && !s.contains('\n') && !s.contains('\u{7}'),
            "{s}"
        );
    }

    #[test]
    fn held_batch_gives_the_commands() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 0);
        let n = batch_notice(
            &batch(BatchState::Held),
            Some(d.path()),
            None,
            &admins(),
            &MailConfig::default(),
        )
        .unwrap();
        assert!(n.subject.contains("HELD, approval needed"));
        assert!(n.body.contains("\n    rosterdrop approve 42\n"));
        assert!(n.body.contains("\n    rosterdrop discard 42\n"));
        // Only a header: nothing to attach.
        assert!(n.attachment.is_none());
    }

    #[test]
    fn failed_batch_carries_the_error() {
        let n = batch_notice(
            &batch(BatchState::Processing),
            None,
            Some("spool/maple-valley/42: No space left on device"),
            &admins(),
            &MailConfig::default(),
        )
        .unwrap();
        assert!(n.subject.ends_with("FAILED, nothing applied"));
        assert!(n.body.starts_with("Batch 42 of maple-valley FAILED"));
        assert!(n
            .body
            .contains("Error: spool/maple-valley/42: No space left on device"));
        assert!(n.body.contains("No report was written for batch 42."));
        assert!(n.attachment.is_none());
    }

    #[test]
    fn missing_summary_falls_back_to_the_batch_counts() {
        let d = tempfile::tempdir().unwrap();
        let n = batch_notice(
            &batch(BatchState::Applied),
            Some(d.path()),
            None,
            &admins(),
            &MailConfig::default(),
        )
        .unwrap();
        assert!(n
            .body
            .contains("Batch 42 (maple-valley): APPLIED. 1200 added, 3 updated"));
    }

    #[test]
    fn attachment_thresholds() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 2000);
        let csv = std::fs::read(d.path().join("patch-summary.csv")).unwrap();
        let cfg = MailConfig {
            attach_zip_over_bytes: 1000,
            ..MailConfig::default()
        };
        let b = batch(BatchState::Applied);
        let n = batch_notice(&b, Some(d.path()), None, &admins(), &cfg).unwrap();
        let a = n.attachment.unwrap();
        assert_eq!(a.filename, "patch-summary.zip");
        assert_eq!(a.content_type, "application/zip");
        assert!(a.data.len() < csv.len() / 4);
        let mut z = zip::ZipArchive::new(Cursor::new(a.data)).unwrap();
        let mut back = Vec::new();
        z.by_name("patch-summary.csv")
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, csv);
        // Too large even zipped: no attachment, the body says where the file is.
        let cfg = MailConfig {
            attach_zip_over_bytes: 1000,
            attach_max_bytes: 2000,
            ..MailConfig::default()
        };
        let n = batch_notice(&b, Some(d.path()), None, &admins(), &cfg).unwrap();
        assert!(n.attachment.is_none());
        assert!(
            n.body.contains("patch-summary.csv is not attached"),
            "{}",
            n.body
        );
        // Under the zip threshold but over the maximum.
        let cfg = MailConfig {
            attach_max_bytes: 100,
            ..MailConfig::default()
        };
        let n = batch_notice(&b, Some(d.path()), None, &admins(), &cfg).unwrap();
        assert!(n.attachment.is_none());
        assert!(n.body.contains("is over the 100 bytes limit"), "{}", n.body);
    }

    #[test]
    fn no_admins_no_notice() {
        let e = batch_notice(
            &batch(BatchState::Applied),
            None,
            None,
            &[],
            &MailConfig::default(),
        );
        assert!(matches!(e, Err(MailError::NoRecipients)));
    }
}
