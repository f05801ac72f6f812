//! The email for one event of a batch: checked (applied, unchanged, held, rejected), failed,
//! approved, discarded, rolled back. Every message is built from that event's own batch record
//! and its `patch-summary.csv`, never from another batch's `summary.txt`, and is written for a
//! district admin: one opening sentence saying what happened and whether anything is needed,
//! the counts in words, the problems grouped by what the vendor must fix (file and line), then
//! the details. The same content goes out as plain text and as HTML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Attachment, MailConfig, MailError, Notice};
use crate::roster::text::{escape, escape_line};
use crate::store::{Batch, BatchState};

mod attach;
mod content;
mod render;

use attach::*;
use content::*;
use render::*;

/// What happened to a batch.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The pipeline finished it: its state says applied, unchanged, held or rejected.
    Checked,
    /// It could not be processed; nothing was applied.
    Failed { error: &'a str },
    /// A held batch an admin approved: it is applied now.
    Approved,
    /// A held batch an admin discarded.
    Discarded,
    /// An admin rolled back `undone`; the batch given with the event is the rollback's own
    /// record (a new id, its counts the reversal of `undone`'s).
    RolledBack { undone: &'a Batch },
}

/// What the check said beyond the patch summary (from the pipeline's outcome, when the mail
/// is written right after it; empty after a restart or for an admin command).
#[derive(Debug, Clone, Default)]
pub struct CheckNotes {
    /// Why the bundle could not be read (file, line and column in each).
    pub errors: Vec<String>,
    /// Why a readable bundle was rejected.
    pub reasons: Vec<String>,
    pub notes: Vec<String>,
    /// Files present but not used, with why.
    pub ignored: Vec<(String, String)>,
}

impl CheckNotes {
    pub fn from_outcome(o: &crate::roster::engine::Outcome) -> CheckNotes {
        CheckNotes {
            errors: o.errors.iter().map(|e| e.to_string()).collect(),
            reasons: o.reasons.clone(),
            notes: o.notes.clone(),
            ignored: o.ignored.clone(),
        }
    }
}

/// Everything one message is made of.
#[derive(Debug, Clone, Copy)]
pub struct BatchMail<'a> {
    pub batch: &'a Batch,
    pub event: Event<'a>,
    /// The folder, zip or files the vendor uploaded, as the vendor named them.
    pub upload: Option<&'a str>,
    pub check: Option<&'a CheckNotes>,
    /// Server paths the upload was read from (the spool): replaced by the upload's name
    /// wherever a message quotes them.
    pub server_paths: &'a [PathBuf],
    /// Where the original upload is kept, for a failed batch.
    pub archive: Option<&'a Path>,
    /// The batch's page in the web console, when the console is served.
    pub link: Option<&'a str>,
}

impl<'a> BatchMail<'a> {
    pub fn new(batch: &'a Batch, event: Event<'a>) -> BatchMail<'a> {
        BatchMail {
            batch,
            event,
            upload: None,
            check: None,
            server_paths: &[],
            archive: None,
            link: None,
        }
    }
}

pub use crate::roster::bundle::is_marker;

/// The subject of a batch's message for `event`.
pub fn subject_of(m: &BatchMail) -> String {
    content(m, None).subject
}

/// The subject of the message after the pipeline checked `b` (`failed`: it could not).
pub fn batch_subject(b: &Batch, failed: bool) -> String {
    let event = if failed {
        Event::Failed { error: "" }
    } else {
        Event::Checked
    };
    subject_of(&BatchMail::new(b, event))
}

/// The message for one event of a batch, to `admins`.
///
/// Keys: `batch-<id>` for the pipeline's message (checked or failed), `batch-<id>-approved`
/// and `batch-<id>-discarded` for the admin's decision on a held batch, and the rollback's own
/// `batch-<id>` for a rollback. `patch-summary.csv` of the batch is attached to the checked and
/// approved messages when it has rows: as is up to `attach_zip_over_bytes`, zipped above,
/// left out (the body says so) over `attach_max_bytes`.
pub fn compose(m: &BatchMail, admins: &[String], cfg: &MailConfig) -> Result<Notice, MailError> {
    if admins.is_empty() {
        return Err(MailError::NoRecipients);
    }
    let b = m.batch;
    // The reports this event is about: the rolled-back batch's for a rollback.
    let (report_id, report_dir) = match m.event {
        Event::RolledBack { undone } => (undone.id, undone.report_dir.as_deref()),
        _ => (b.id, b.report_dir.as_deref()),
    };
    let dir: Option<PathBuf> = report_dir.map(PathBuf::from).filter(|d| d.is_dir());
    let mut c = content(m, dir.as_deref());
    c.reports = match m.event {
        Event::Failed { .. } if dir.is_none() => vec![],
        _ => reports_lines(b, report_id, dir.as_deref()),
    };
    let (attachment, note) = match (&dir, m.event) {
        (Some(d), Event::Checked | Event::Approved) => {
            patch_attachment(&d.join("patch-summary.csv"), cfg)
        }
        _ => (None, None),
    };
    if let Some(n) = note {
        c.reports.push(n);
    }
    let key = match m.event {
        Event::Approved => format!("batch-{}-approved", b.id),
        Event::Discarded => format!("batch-{}-discarded", b.id),
        _ => format!("batch-{}", b.id),
    };
    Ok(Notice {
        key,
        to: admins.to_vec(),
        subject: c.subject.clone(),
        body: render_text(&c),
        html: Some(render_html(&c)),
        attachment,
    })
}

/// [`compose`] for the pipeline's message about `batch` (checked, or failed with `error`).
/// `report_dir` overrides the batch's own report directory.
pub fn batch_notice(
    batch: &Batch,
    report_dir: Option<&Path>,
    error: Option<&str>,
    admins: &[String],
    cfg: &MailConfig,
) -> Result<Notice, MailError> {
    let mut b = batch.clone();
    if let Some(d) = report_dir {
        b.report_dir = Some(d.display().to_string());
    }
    let why = error.or(batch.reason.as_deref()).unwrap_or("unknown error");
    let event = if error.is_some() || batch.state == BatchState::Failed {
        Event::Failed { error: why }
    } else {
        Event::Checked
    };
    compose(&BatchMail::new(&b, event), admins, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::TableCounts;

    fn batch(state: BatchState) -> Batch {
        let mut tables = BTreeMap::new();
        tables.insert(
            "students".to_string(),
            TableCounts {
                adds: 1000,
                updates: 2,
                before: 10,
                read: 1002,
                ..TableCounts::default()
            },
        );
        tables.insert(
            "rosters".to_string(),
            TableCounts {
                adds: 200,
                updates: 1,
                deletes: 4,
                before: 4,
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
            settings_hash: String::new(),
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
            bytes_written: 0,
            bytes_stored: 0,
            decided: None,
            earlier: Vec::new(),
        }
    }

    fn admins() -> Vec<String> {
        vec!["it@maple.example".to_string()]
    }

    /// A report directory with `rows` unknown-class rows and one invalid value.
    fn report(dir: &Path, rows: usize) {
        std::fs::write(
            dir.join("summary.txt"),
            "HELD rosterdrop approve 13 / discard 13\n",
        )
        .unwrap();
        let mut csv = String::from("file,line,id,rule,action,field,value,detail\n");
        for i in 0..rows {
            csv.push_str(&format!(
                "rosters.csv,{},R{i},unknown-class,dropped-row,class_id,C{i},`C{i}` is not in classes.csv\n",
                i + 2
            ));
        }
        csv.push_str(
            "students.csv,7,S7,invalid-value,cleared-field,grade_level,<b>x&y</b>,\"`<b>x&y</b>` is not a grade\"\n",
        );
        std::fs::write(dir.join("patch-summary.csv"), csv).unwrap();
    }

    fn with_dir(mut b: Batch, d: &Path) -> Batch {
        b.report_dir = Some(d.display().to_string());
        b
    }

    fn mail<'a>(b: &'a Batch, event: Event<'a>, upload: Option<&'a str>) -> Notice {
        let m = BatchMail {
            upload,
            ..BatchMail::new(b, event)
        };
        compose(&m, &admins(), &MailConfig::default()).unwrap()
    }

    /// Issue 11, item 3: a held batch's subject gives the first reason (and how many more).
    #[test]
    fn a_held_subject_says_why() {
        let mut b = batch(BatchState::Held);
        b.reason = Some(format!(
            "{}users.csv: patches drop 3 of its 10 rows (30.0%, more than \
             guard.max_patch_drop_percent = 20%); students: 10 of 10 records would be deleted \
             (100.0%, the whole table) (rosterdrop approve 42 / discard 42)",
            crate::store::HELD_PREFIX
        ));
        let s = batch_subject(&b, false);
        assert!(
            s.starts_with("[rosterdrop] maple-valley batch 42: HELD, approve or discard: users.csv: patches drop 3 of its 10 rows"),
            "{s}"
        );
        assert!(s.ends_with("(and 1 more)"), "{s}");
    }

    #[test]
    fn subjects_say_the_event_in_words() {
        let s = |st| batch_subject(&batch(st), false);
        assert_eq!(
            s(BatchState::Applied),
            "[rosterdrop] maple-valley batch 42: APPLIED, 1200 added, 3 changed, 4 removed"
        );
        assert_eq!(
            s(BatchState::Held),
            "[rosterdrop] maple-valley batch 42: HELD, action needed: approve or discard"
        );
        assert_eq!(
            s(BatchState::Rejected),
            "[rosterdrop] maple-valley batch 42: REJECTED, nothing applied, 1 problem to fix"
        );
        assert_eq!(
            s(BatchState::Unchanged),
            "[rosterdrop] maple-valley batch 42: UNCHANGED, nothing to apply"
        );
        assert_eq!(
            batch_subject(&batch(BatchState::Processing), true),
            "[rosterdrop] maple-valley batch 42: FAILED, nothing applied"
        );
        let b = batch(BatchState::Applied);
        assert_eq!(
            subject_of(&BatchMail::new(&b, Event::Approved)),
            "[rosterdrop] maple-valley batch 42: APPROVED and APPLIED, 1200 added, 3 changed, 4 removed"
        );
        let b = batch(BatchState::Discarded);
        assert_eq!(
            subject_of(&BatchMail::new(&b, Event::Discarded)),
            "[rosterdrop] maple-valley batch 42: DISCARDED, nothing applied"
        );
        // A rollback is about the batch it undid, not its own record's id.
        let mut undone = batch(BatchState::RolledBack);
        undone.id = 13;
        let mut rb = batch(BatchState::Applied);
        rb.rollback_of = Some(13);
        let s = subject_of(&BatchMail::new(&rb, Event::RolledBack { undone: &undone }));
        assert_eq!(
            s,
            "[rosterdrop] maple-valley batch 13: ROLLED BACK, 1200 added back, 3 changed back, 4 removed"
        );
    }

    #[test]
    fn applied_body_opens_with_what_happened_then_counts_then_problems() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 8);
        let b = with_dir(batch(BatchState::Applied), d.path());
        let n = mail(&b, Event::Checked, Some("nightly"));
        assert_eq!(n.key, "batch-42");
        assert_eq!(n.to, admins());
        assert!(
            n.subject.ends_with("4 removed, 9 problems patched"),
            "{}",
            n.subject
        );
        let body = &n.body;
        assert!(
            body.starts_with(
                "Batch 42 from maple-valley (nightly) was applied to the roster.\n\
                 Nothing to do on the server. The upload had 9 problems"
            ),
            "{body}"
        );
        // Counts in words, in the order of the bundle's files.
        let students = body.find("  students: 1000 added, 2 changed, 0 removed (1010 now)\n");
        let rosters =
            body.find("  class memberships (rosters): 200 added, 1 changed, 4 removed (200 now)\n");
        assert!(
            students.is_some() && rosters.is_some() && students < rosters,
            "{body}"
        );
        // Grouped by what to fix, with file and line; the first five, then how many more.
        assert!(body.contains(
            "  rosters.csv: rows name a class that is not in the classes file (8 rows: those rows were left out of the roster)\n\
                 \x20   - rosters.csv line 2 (R0): \"C0\" is not in classes.csv\n"
        ), "{body}");
        assert!(
            body.contains("    ... and 3 more (patch-summary.csv has them all)\n"),
            "{body}"
        );
        assert!(
            body.contains("(1 field: those fields were left empty)"),
            "{body}"
        );
        // Nothing from another batch's summary.txt, no jargon.
        for bad in ["HELD", "approve 13", "dropped-row", "`", "+1200", "~3"] {
            assert!(!body.contains(bad), "{bad} in {body}");
        }
        assert!(body.contains("reports/42/ in the upload account"), "{body}");
        assert!(body.contains(&format!("{}/", d.path().display())), "{body}");
        // The signature is last.
        assert!(body.ends_with("\n-- \nrosterdrop: sent automatically after every batch.\n"));
        let a = n.attachment.unwrap();
        assert_eq!(a.filename, "patch-summary.csv");
        assert_eq!(a.content_type, "text/csv; charset=utf-8");
        assert_eq!(
            a.data,
            std::fs::read(d.path().join("patch-summary.csv")).unwrap()
        );
        assert!(!n.subject.contains("R1"));
    }

    #[test]
    fn html_has_the_same_content_with_every_uploaded_value_escaped() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 1);
        let b = with_dir(batch(BatchState::Applied), d.path());
        let n = mail(&b, Event::Checked, Some("<i>night</i>.zip"));
        let html = n.html.unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(
            !html.contains("<b>x") && !html.contains("<i>night"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;x&amp;y&lt;/b&gt;"), "{html}");
        assert!(html.contains("(&lt;i&gt;night&lt;/i&gt;.zip)"), "{html}");
        assert!(
            html.contains("<td>students</td><td>1000</td><td>2</td><td>0</td><td>1010</td>"),
            "{html}"
        );
        assert!(
            html.contains("background:#fdecea"),
            "problems are highlighted: {html}"
        );
        // The text part keeps the value as text.
        assert!(
            n.body.contains("\"<b>x&y</b>\" is not a grade"),
            "{}",
            n.body
        );
    }

    #[test]
    fn held_batch_gives_the_commands_above_the_signature() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 0);
        let mut b = with_dir(batch(BatchState::Held), d.path());
        b.reason = Some(
            "held for approval: rosters: 4 of 4 records would be deleted (100.0% > 10%) \
             (rosterdrop approve 42 / discard 42)"
                .into(),
        );
        let n = mail(&b, Event::Checked, Some("cut.zip"));
        let (above, below) = n.body.split_once("\n-- \n").unwrap();
        assert!(above.starts_with(
            "Batch 42 from maple-valley (cut.zip) is held: nothing from it has been applied yet.\n\
             Action needed: approve or discard batch 42 before the next upload from maple-valley is applied"
        ), "{above}");
        assert!(
            above.contains("\n    rosterdrop approve 42    (apply it)\n"),
            "{above}"
        );
        assert!(
            above.contains("\n    rosterdrop discard 42    (drop it)\n"),
            "{above}"
        );
        assert!(above.contains(
            "Why it is held: class memberships (rosters): 4 of 4 would be removed (100.0% > 10%)\n"
        ), "{above}");
        assert!(!below.contains("approve"), "{below}");
    }

    #[test]
    fn approve_and_discard_do_not_repeat_the_held_text() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 1);
        let mut b = with_dir(batch(BatchState::Applied), d.path());
        b.reason = Some(
            "approved; held for approval: rosters: 4 of 4 records would be deleted (100.0% > 10%) \
             (rosterdrop approve 42 / discard 42)"
                .into(),
        );
        let n = mail(&b, Event::Approved, Some("cut.zip"));
        assert_eq!(n.key, "batch-42-approved");
        assert!(n.body.starts_with(
            "Batch 42 from maple-valley (cut.zip) was approved by an admin and applied to the roster.\nNothing to do.\n"
        ), "{}", n.body);
        assert!(n.body.contains("What was applied:\n"), "{}", n.body);
        assert!(
            !n.body.contains("rosterdrop approve") && !n.body.contains("is held"),
            "{}",
            n.body
        );
        assert!(n.attachment.is_some());
        b.state = BatchState::Discarded;
        let n = mail(&b, Event::Discarded, Some("cut.zip"));
        assert_eq!(n.key, "batch-42-discarded");
        assert!(n.body.starts_with(
            "Batch 42 from maple-valley (cut.zip) was discarded by an admin: nothing from it was applied, the roster is unchanged.\nNothing to do"
        ), "{}", n.body);
        assert!(
            !n.body.contains("rosterdrop approve") && !n.body.contains("Problems"),
            "{}",
            n.body
        );
        assert!(n.attachment.is_none());
    }

    #[test]
    fn rollback_names_the_batch_it_undid_and_its_reports() {
        let root = tempfile::tempdir().unwrap();
        let d13 = root.path().join("13");
        std::fs::create_dir_all(&d13).unwrap();
        report(&d13, 2);
        let mut undone = with_dir(batch(BatchState::RolledBack), &d13);
        undone.id = 13;
        undone.base = Some(12);
        // The store's rollback record: a new id, the undone batch's report dir, swapped counts.
        let mut rb = undone.clone();
        rb.id = 14;
        rb.state = BatchState::Applied;
        rb.rollback_of = Some(13);
        let n = mail(&rb, Event::RolledBack { undone: &undone }, Some("nightly"));
        assert_eq!(n.key, "batch-14");
        assert!(n.subject.contains("batch 13: ROLLED BACK"), "{}", n.subject);
        assert!(n.body.starts_with(
            "Batch 13 from maple-valley (nightly) was rolled back by an admin: the roster is again as batch 12 left it.\nNothing to do"
        ), "{}", n.body);
        assert!(
            n.body.contains("What came back (undoing batch 13):\n"),
            "{}",
            n.body
        );
        assert!(
            n.body.contains("reports/13/ in the upload account"),
            "{}",
            n.body
        );
        assert!(
            n.body.contains(&format!("{}/", d13.display())),
            "{}",
            n.body
        );
        assert!(!n.body.contains("reports/14/"), "{}", n.body);
        assert!(
            !n.body.contains("HELD") && !n.body.contains("approve"),
            "{}",
            n.body
        );
        assert!(n.body.contains("Recorded as: batch 14"), "{}", n.body);
        assert!(n.attachment.is_none());
    }

    #[test]
    fn rejected_says_what_to_fix_and_that_nothing_was_applied() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 0);
        let spool = PathBuf::from("/var/lib/rosterdrop/spool/maple-valley/42/upload");
        let mut b = with_dir(batch(BatchState::Rejected), d.path());
        b.tables.clear();
        b.format = "unknown".into();
        let check = CheckNotes {
            errors: vec![format!(
                "{}: Apple School Manager bundle is missing rosters.csv",
                spool.display()
            )],
            ignored: vec![
                ("READY".into(), "not an Apple School Manager file".into()),
                (
                    "notes.txt".into(),
                    "not an Apple School Manager file".into(),
                ),
            ],
            ..CheckNotes::default()
        };
        let paths = [spool.clone()];
        let m = BatchMail {
            upload: Some("nightly"),
            check: Some(&check),
            server_paths: &paths,
            ..BatchMail::new(&b, Event::Checked)
        };
        let n = compose(&m, &admins(), &MailConfig::default()).unwrap();
        assert!(
            n.subject
                .ends_with("REJECTED, nothing applied, 2 problems to fix"),
            "{}",
            n.subject
        );
        assert!(n.body.starts_with(
            "Batch 42 from maple-valley (nightly) was rejected: nothing from it was applied, the roster is unchanged.\n\
             Action needed: the vendor must fix the problems below and upload again"
        ), "{}", n.body);
        assert!(
            n.body
                .contains("- nightly: Apple School Manager bundle is missing rosters.csv\n"),
            "{}",
            n.body
        );
        assert!(!n.body.contains("/var/lib"), "{}", n.body);
        assert!(!n.body.contains("ACCEPTED"), "{}", n.body);
        // A marker is not a file the bundle did not use; another file is.
        assert!(
            n.body
                .contains("Files not used: notes.txt (not an Apple School Manager file)"),
            "{}",
            n.body
        );
        assert!(!n.body.contains("READY"), "{}", n.body);
        assert!(!n.body.contains("Format:"), "{}", n.body);
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
        assert!(n.body.starts_with(
            "Batch 42 from maple-valley could not be processed: nothing was applied, the roster is unchanged.\nAction needed:"
        ), "{}", n.body);
        assert!(n
            .body
            .contains("Error: spool/maple-valley/42: No space left on device"));
        assert!(!n.body.contains("reports/"), "{}", n.body);
        assert!(n.attachment.is_none());
    }

    #[test]
    fn uploaded_names_cannot_write_lines_of_their_own() {
        let d = tempfile::tempdir().unwrap();
        report(d.path(), 0);
        let b = with_dir(batch(BatchState::Applied), d.path());
        let n = mail(&b, Event::Checked, Some("a\nFrom: x\r\n.zip"));
        assert!(
            n.body
                .starts_with("Batch 42 from maple-valley (a\\nFrom: x\\r\\n.zip) was applied"),
            "{}",
            n.body
        );
        assert!(!n.body.contains("\nFrom: x"));
    }

    #[test]
    fn markers_are_recognised() {
        for m in ["READY", "ready.TXT", "nightly.zip.done", "sub/READY"] {
            assert!(is_marker(m), "{m}");
        }
        for m in ["students.csv", ".done", "READY.csv", "done"] {
            assert!(!is_marker(m), "{m}");
        }
    }

    #[test]
    fn problems_are_read_in_bounded_groups() {
        let d = tempfile::tempdir().unwrap();
        let mut csv = String::from("file,line,id,rule,action,field,value,detail\n");
        for i in 0..(MAX_GROUPS + 20) {
            csv.push_str(&format!("f{i}.csv,2,X,invalid-value,dropped-row,a,b,c\n"));
        }
        csv.push_str("students.csv,3,S,filtered,dropped-row,location_id,L9,outside\n");
        let p = d.path().join("patch-summary.csv");
        std::fs::write(&p, csv).unwrap();
        let (groups, filtered, total) = read_problems(&p).unwrap();
        assert_eq!(groups.len(), MAX_GROUPS);
        assert_eq!(total, MAX_GROUPS as u64 + 21);
        assert_eq!(filtered.map(|f| f.count), Some(1));
        // No file: no problems, no error.
        assert_eq!(read_problems(&d.path().join("none.csv")).unwrap().2, 0);
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
        let (above, _) = n.body.split_once("\n-- \n").unwrap();
        assert!(
            above.contains("patch-summary.csv is not attached"),
            "{}",
            n.body
        );
        // The size said is the file's; its zipped size is not known (the zip stops at the cap).
        let size = attach::human(csv.len() as u64);
        assert!(
            above.contains(&format!(
                "it is {size}, and over the 2.0 KiB limit even zipped"
            )),
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
