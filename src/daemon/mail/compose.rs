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
        }
    }
}

pub use crate::roster::bundle::is_marker;

/// The kind of record a table holds, in words.
fn kind(table: &str) -> &str {
    match table {
        "locations" => "schools (locations)",
        "students" => "students",
        "staff" => "staff",
        "courses" => "courses",
        "classes" => "classes",
        "rosters" => "class memberships (rosters)",
        "orgs" => "schools and districts (orgs)",
        "academicSessions" => "terms (academic sessions)",
        "users" => "users",
        "enrollments" => "enrollments",
        "demographics" => "demographics",
        "roles" => "roles",
        "userProfiles" => "user profiles",
        other => other,
    }
}

fn format_name(f: &str) -> String {
    match crate::roster::schema::Format::from_label(f) {
        Some(format) => format.display_name().into(),
        None if f.is_empty() || f == "unknown" => "not recognised".into(),
        None => escape(f).into_owned(),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// One line of the counts table.
#[derive(Debug, Clone)]
struct CountRow {
    kind: String,
    added: u64,
    changed: u64,
    removed: u64,
    now: u64,
}

/// Problems of one kind in one file.
#[derive(Debug, Clone, Default)]
struct Group {
    /// `students.csv: rows name a class that is not in classes.csv`.
    title: String,
    /// What rosterdrop did about them.
    outcome: String,
    count: u64,
    /// What is counted: `row`, `field` or `problem`.
    unit: &'static str,
    items: Vec<String>,
}

impl Group {
    fn counted(&self) -> String {
        let unit = if self.unit.is_empty() {
            "problem"
        } else {
            self.unit
        };
        plural(self.count, unit, &format!("{unit}s"))
    }
}

/// The message, before it is written as text or HTML.
#[derive(Debug, Default)]
struct Content {
    subject: String,
    /// What happened: one sentence.
    headline: String,
    /// `Nothing to do.` or `Action needed: ...`.
    action: String,
    action_needed: bool,
    /// Commands to run on the server, right after the action.
    commands: Vec<String>,
    /// A sentence above the counts.
    counts_title: String,
    counts: Vec<CountRow>,
    /// Said instead of the table when it is empty.
    no_counts: String,
    problems_title: String,
    problems: Vec<Group>,
    /// Left out on purpose (filters), not the vendor's to fix.
    filtered: Option<Group>,
    details: Vec<(String, String)>,
    reports: Vec<String>,
}

/// How many example lines each group of problems shows.
const EXAMPLES: usize = 5;
/// Groups of problems read from a patch summary at most (files x rules x actions).
const MAX_GROUPS: usize = 100;
/// Structural errors listed at most.
const MAX_ERRORS: usize = 50;

/// What a rule means for the vendor, and what was done.
fn rule_words(rule: &str, file: &str) -> String {
    match rule {
        "unknown-instructor" => "classes name a teacher who is not in the staff file".into(),
        "unknown-class" => "rows name a class that is not in the classes file".into(),
        "unknown-student" => "rows name a student who is not in students.csv".into(),
        "unknown-user" => "enrollments name a user who is not in users.csv".into(),
        "unknown-reference" => {
            "rows point to a record (school, course, term, person) that is not in the bundle".into()
        }
        "duplicate-id" => "the same id appears more than once".into(),
        "duplicate-account" => {
            "two people have the same first name, last name and email address".into()
        }
        "invalid-value" => "a value is missing, or is not one the format allows".into(),
        "normalized" => "a value is written in a non-standard way".into(),
        "malformed-row" => "rows have the wrong number of fields for the header".into(),
        "filtered" => {
            format!("rows of {file} outside the schools, terms or roles this district takes")
        }
        other => format!("other problems ({})", escape(other)),
    }
}

fn action_words(action: &str, rule: &str) -> &'static str {
    match (action, rule) {
        (_, "duplicate-id") | (_, "duplicate-account") => "the first was kept, these left out",
        ("dropped-row", _) => "those rows were left out of the roster",
        ("cleared-field", _) => "those fields were left empty",
        ("fixed-field", _) => "rosterdrop corrected them",
        _ => "see patch-summary.csv",
    }
}

/// Backticks around values read as code: plain quotes instead.
fn plain_detail(s: &str) -> String {
    escape_line(s).replace('`', "\"")
}

/// Reads `patch-summary.csv` into groups by (file, rule, action), first seen first.
fn read_problems(path: &Path) -> io::Result<(Vec<Group>, Option<Group>, u64)> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((vec![], None, 0)),
        Err(e) => return Err(e),
    };
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::new(f));
    let mut order: Vec<(String, String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    let mut filtered: Option<Group> = None;
    let mut total = 0u64;
    let mut rec = csv::StringRecord::new();
    while r.read_record(&mut rec).map_err(io::Error::other)? {
        let get = |i: usize| rec.get(i).unwrap_or("");
        let (file, line, id, rule, action, field, value, detail) = (
            get(0),
            get(1),
            get(2),
            get(3),
            get(4),
            get(5),
            get(6),
            get(7),
        );
        total += 1;
        let item = || {
            let mut s = format!("{} line {}", escape(file), escape(line));
            if !id.is_empty() {
                let _ = write!(s, " ({})", escape(id));
            }
            if action == "fixed-field" {
                let _ = write!(s, ": {} {}", escape(field), plain_detail(value));
            } else if !detail.is_empty() {
                let _ = write!(s, ": {}", plain_detail(detail));
            } else if !field.is_empty() {
                let _ = write!(s, ": {} {}", escape(field), plain_detail(value));
            }
            s
        };
        if rule == "filtered" {
            let g = filtered.get_or_insert_with(|| Group {
                unit: "row",
                title: "Left out on purpose: rows outside the schools, terms or roles this \
                        district takes"
                    .into(),
                outcome: "not applied, by this source's filter; nothing to fix".into(),
                ..Group::default()
            });
            g.count += 1;
            if g.items.len() < EXAMPLES {
                g.items.push(item());
            }
            continue;
        }
        let key = (file.to_string(), rule.to_string(), action.to_string());
        if !groups.contains_key(&key) {
            if groups.len() >= MAX_GROUPS {
                continue;
            }
            order.push(key.clone());
            groups.insert(
                key.clone(),
                Group {
                    title: format!("{}: {}", escape(file), rule_words(rule, file)),
                    outcome: action_words(action, rule).into(),
                    unit: if action == "dropped-row" {
                        "row"
                    } else {
                        "field"
                    },
                    ..Group::default()
                },
            );
        }
        if let Some(g) = groups.get_mut(&key) {
            g.count += 1;
            if g.items.len() < EXAMPLES {
                g.items.push(item());
            }
        }
    }
    // Normalized values last: the least urgent to fix.
    order.sort_by_key(|k| k.1 == "normalized");
    let list = order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .collect();
    Ok((list, filtered, total))
}

/// `text` with every server path in `paths` replaced by the upload's name.
fn scrub(text: &str, paths: &[PathBuf], upload: &str) -> String {
    let mut out = text.to_string();
    let mut ps: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    // Longest first: a path's parent must not eat part of it.
    ps.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in ps.iter().filter(|p| p.len() > 1) {
        out = out.replace(p.as_str(), upload);
    }
    out
}

/// Tables in the order of their files in a bundle (schools first, memberships last).
const TABLE_ORDER: [&str; 13] = [
    "locations",
    "orgs",
    "academicSessions",
    "students",
    "staff",
    "users",
    "demographics",
    "roles",
    "userProfiles",
    "courses",
    "classes",
    "rosters",
    "enrollments",
];

fn table_pos(t: &str) -> usize {
    TABLE_ORDER
        .iter()
        .position(|o| *o == t)
        .unwrap_or(usize::MAX)
}

fn counts_of(b: &Batch) -> Vec<CountRow> {
    let mut tables: Vec<_> = b.tables.iter().collect();
    tables.sort_by_key(|(t, _)| table_pos(t));
    tables
        .into_iter()
        .map(|(t, c)| CountRow {
            kind: kind(t).to_string(),
            added: c.adds,
            changed: c.updates,
            removed: c.deletes,
            now: (c.before + c.adds).saturating_sub(c.deletes),
        })
        .collect()
}

fn totals_words(b: &Batch) -> String {
    let (a, u, d) = b.totals();
    format!("{a} added, {u} changed, {d} removed")
}

/// The reason a batch was held, without the commands the store appends.
/// The first reason of a hold, fit for a subject line: printable ASCII only (a header), cut at
/// 120 characters, with a count of the other reasons.
fn subject_reason(reasons: &str) -> Option<String> {
    let mut parts = reasons.split("; ").filter(|p| !p.trim().is_empty());
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

fn held_reason(b: &Batch) -> Option<String> {
    let r = b.reason.as_deref()?;
    let r = r.strip_prefix("approved; ").unwrap_or(r);
    let r = r.strip_prefix("held for approval: ").unwrap_or(r);
    let r = match r.find(" (rosterdrop approve") {
        Some(i) => &r[..i],
        None => r,
    };
    let r = r.trim();
    if r.is_empty() {
        return None;
    }
    // `students: 6 of 7 records would be deleted (85.7% > 10%); ...`, in the mail's words.
    let parts: Vec<String> = r
        .split("; ")
        .map(|p| {
            let p = escape_line(p).replace(" records would be deleted", " would be removed");
            match p.split_once(": ") {
                Some((t, rest)) if b.tables.contains_key(t) => format!("{}: {rest}", kind(t)),
                _ => p,
            }
        })
        .collect();
    Some(parts.join("; "))
}

fn content(m: &BatchMail, report_dir: Option<&Path>) -> Content {
    let b = m.batch;
    let src = escape(&b.source).into_owned();
    let upload = m.upload.map(|u| escape(u).into_owned());
    let named = match &upload {
        Some(u) => format!("Batch {} from {src} ({u})", b.id),
        None => format!("Batch {} from {src}", b.id),
    };
    let mut c = Content {
        counts: counts_of(b),
        ..Content::default()
    };
    let scrub_name = upload.clone().unwrap_or_else(|| "the upload".into());
    let mut problems_read = false;
    let (problems, filtered, patch_rows) = match report_dir {
        Some(d) => match read_problems(&d.join("patch-summary.csv")) {
            Ok(p) => {
                problems_read = true;
                p
            }
            Err(e) => {
                c.details.push((
                    "Patch summary".into(),
                    format!("patch-summary.csv could not be read ({e})"),
                ));
                (vec![], None, 0)
            }
        },
        None => (vec![], None, 0),
    };
    let fixable: u64 = problems.iter().map(|g| g.count).sum();
    let check = m.check.cloned().unwrap_or_default();
    let subject_head = format!("[rosterdrop] {src} batch {}", b.id);
    let state = match m.event {
        Event::Failed { .. } => BatchState::Failed,
        _ => b.state,
    };
    match (m.event, state) {
        (Event::Failed { error }, _) => {
            c.subject = format!("{subject_head}: FAILED, nothing applied");
            c.headline = format!(
                "{named} could not be processed: nothing was applied, the roster is unchanged."
            );
            c.action_needed = true;
            c.action = "Action needed: look at the error below on the server; once it is \
                        fixed, ask the vendor to upload again."
                .into();
            c.counts.clear();
            c.no_counts = "No records were changed.".into();
            let why = scrub(error, m.server_paths, &scrub_name);
            c.details
                .push(("Error".into(), escape_line(&why).into_owned()));
            if let Some(a) = m.archive {
                c.details.push((
                    "Original upload".into(),
                    format!("kept on the server in {}/", a.display()),
                ));
            }
        }
        (Event::Approved, _) => {
            c.subject = format!("{subject_head}: APPROVED and APPLIED, {}", totals_words(b));
            c.headline = format!("{named} was approved by an admin and applied to the roster.");
            c.action = "Nothing to do.".into();
            c.counts_title = "What was applied:".into();
            if let Some(r) = held_reason(b) {
                c.details.push(("It had been held because".into(), r));
            }
        }
        (Event::Discarded, _) => {
            c.subject = format!("{subject_head}: DISCARDED, nothing applied");
            c.headline = format!(
                "{named} was discarded by an admin: nothing from it was applied, the roster is \
                 unchanged."
            );
            c.action = "Nothing to do; the vendor's next upload is checked as usual.".into();
            c.counts_title = "What it would have changed (not applied):".into();
            if let Some(r) = held_reason(b) {
                c.details.push(("It had been held because".into(), r));
            }
        }
        (Event::RolledBack { undone }, _) => {
            let u = undone.id;
            let uname = m
                .upload
                .map_or(String::new(), |n| format!(" ({})", escape(n)));
            c.subject = format!("[rosterdrop] {src} batch {u}: ROLLED BACK, {}", {
                let (a, ch, d) = b.totals();
                format!("{a} added back, {ch} changed back, {d} removed")
            });
            let restored = match undone.base {
                Some(p) => format!("as batch {p} left it"),
                None => "as it was before that batch (empty)".into(),
            };
            c.headline = format!(
                "Batch {u} from {src}{uname} was rolled back by an admin: the roster is again \
                 {restored}."
            );
            c.action = format!(
                "Nothing to do; the vendor's next upload is applied even if it is the same as \
                 batch {u}."
            );
            c.counts_title = format!("What came back (undoing batch {u}):");
            c.details.push((
                "Recorded as".into(),
                format!("batch {} (rosterdrop show {})", b.id, b.id),
            ));
        }
        (Event::Checked, BatchState::Applied) => {
            let patched = if fixable > 0 {
                format!(
                    ", {}",
                    plural(fixable, "problem patched", "problems patched")
                )
            } else {
                String::new()
            };
            c.subject = format!("{subject_head}: APPLIED, {}{patched}", totals_words(b));
            c.headline = format!("{named} was applied to the roster.");
            c.action = if fixable > 0 {
                format!(
                    "Nothing to do on the server. The upload had {} that rosterdrop patched \
                     (listed below): pass them on to the vendor so the next upload is clean.",
                    plural(fixable, "problem", "problems")
                )
            } else {
                "Nothing to do.".into()
            };
            c.counts_title = "What changed in the roster:".into();
        }
        (Event::Checked, BatchState::Unchanged) => {
            c.subject = format!("{subject_head}: UNCHANGED, nothing to apply");
            let why = match b.reason.as_deref() {
                Some(r) if r.starts_with("same content as the last applied batch") => {
                    match r.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()) {
                        Some(n) => format!("it is the same upload as batch {n}, already applied"),
                        None => "it is the same upload as the last one applied".into(),
                    }
                }
                _ => "every record in it already matches the roster".into(),
            };
            c.headline = format!("{named} changed nothing: {why}.");
            c.action = if fixable > 0 {
                format!(
                    "Nothing to do on the server. The upload still has {} (listed below) for \
                     the vendor to fix.",
                    plural(fixable, "problem", "problems")
                )
            } else {
                "Nothing to do.".into()
            };
            c.counts.clear();
            c.no_counts = "No records were changed.".into();
        }
        (Event::Checked, BatchState::Held) => {
            c.subject = match held_reason(b).as_deref().and_then(subject_reason) {
                Some(why) => format!("{subject_head}: HELD, approve or discard: {why}"),
                None => format!("{subject_head}: HELD, action needed: approve or discard"),
            };
            c.headline = format!("{named} is held: nothing from it has been applied yet.");
            c.action_needed = true;
            c.action = format!(
                "Action needed: approve or discard batch {} before the next upload from {src} \
                 is applied (after that it can only be discarded). On the server, run one of:",
                b.id
            );
            c.commands = vec![
                format!("rosterdrop approve {}    (apply it)", b.id),
                format!("rosterdrop discard {}    (drop it)", b.id),
            ];
            c.counts_title = "What it would change if approved:".into();
            if let Some(r) = held_reason(b) {
                c.details.insert(0, ("Why it is held".into(), r));
            }
        }
        (Event::Checked, BatchState::Rejected) => {
            let n = fixable + (check.errors.len() + check.reasons.len()) as u64;
            let n = n.max(1);
            c.subject = format!(
                "{subject_head}: REJECTED, nothing applied, {} to fix",
                plural(n, "problem", "problems")
            );
            c.headline = format!(
                "{named} was rejected: nothing from it was applied, the roster is unchanged."
            );
            c.action_needed = true;
            c.action = match report_dir {
                Some(_) => format!(
                    "Action needed: the vendor must fix the problems below and upload again; \
                     the vendor can read them in reports/{}/ over SFTP.",
                    b.id
                ),
                None => {
                    "Action needed: the vendor must fix the problems below and upload again.".into()
                }
            };
            c.counts.clear();
            c.no_counts = "No records were changed.".into();
        }
        (Event::Checked, st) => {
            c.subject = format!("{subject_head}: {}", st.label().to_uppercase());
            c.headline = format!("{named} is {}.", st.label());
            c.action = "Nothing to do yet.".into();
        }
    }
    // Why a rejected bundle was refused, before the patch findings.
    let mut groups = Vec::new();
    if matches!(m.event, Event::Checked) && state == BatchState::Rejected {
        if !check.errors.is_empty() {
            groups.push(Group {
                title: "The bundle could not be read".into(),
                outcome: "nothing was applied".into(),
                unit: "problem",
                count: check.errors.len() as u64,
                items: check
                    .errors
                    .iter()
                    .take(MAX_ERRORS)
                    .map(|e| plain_detail(&scrub(e, m.server_paths, &scrub_name)))
                    .collect(),
            });
        }
        if !check.reasons.is_empty() {
            groups.push(Group {
                title: "Why the bundle was rejected".into(),
                outcome: "nothing was applied".into(),
                unit: "problem",
                count: check.reasons.len() as u64,
                items: check
                    .reasons
                    .iter()
                    .map(|r| plain_detail(&scrub(r, m.server_paths, &scrub_name)))
                    .collect(),
            });
        }
        if groups.is_empty() && fixable == 0 {
            if let Some(r) = &b.reason {
                groups.push(Group {
                    title: "Why the bundle was rejected".into(),
                    outcome: "nothing was applied".into(),
                    unit: "problem",
                    count: 1,
                    items: vec![plain_detail(&scrub(r, m.server_paths, &scrub_name))],
                });
            }
        }
    }
    let show_problems = matches!(m.event, Event::Checked | Event::Approved);
    if show_problems {
        groups.extend(problems);
        c.filtered = filtered;
    }
    if !groups.is_empty() {
        let total: u64 = groups.iter().map(|g| g.count).sum();
        c.problems_title = if state == BatchState::Rejected && matches!(m.event, Event::Checked) {
            format!(
                "What the vendor must fix ({}):",
                plural(total, "problem", "problems")
            )
        } else {
            format!(
                "Problems for the vendor to fix ({}):",
                plural(total, "problem", "problems")
            )
        };
        c.problems = groups;
    }
    // Details.
    if let Some(u) = &upload {
        let label = match m.event {
            Event::RolledBack { .. } => "Upload undone",
            _ => "Upload",
        };
        c.details.push((label.into(), u.clone()));
    }
    c.details.push((
        "Received".into(),
        format!(
            "{} by SFTP account {}",
            crate::store::views::fmt_time(match m.event {
                Event::RolledBack { undone } => undone.received_at,
                _ => b.received_at,
            })
            .replace('Z', " UTC"),
            escape(&b.account)
        ),
    ));
    if !matches!(b.format.as_str(), "" | "unknown") && !matches!(m.event, Event::Failed { .. }) {
        let mode = match b.mode.as_str() {
            "" => String::new(),
            "bulk" => ", full upload (bulk)".into(),
            "delta" => ", changes only (delta)".into(),
            m => format!(", {}", escape(m)),
        };
        c.details
            .push(("Format".into(), format!("{}{mode}", format_name(&b.format))));
    }
    let mut tables: Vec<_> = b.tables.iter().filter(|(_, t)| t.read > 0).collect();
    tables.sort_by_key(|(t, _)| table_pos(t));
    let read: Vec<String> = tables
        .into_iter()
        .map(|(n, t)| format!("{} {}", kind(n), t.read))
        .collect();
    if !read.is_empty() && matches!(m.event, Event::Checked) {
        c.details.push(("Rows read".into(), read.join(", ")));
    }
    let stale: u64 = b.tables.values().map(|t| t.stale).sum();
    if stale > 0 {
        c.details.push((
            "Skipped".into(),
            format!(
                "{} older than the stored record",
                plural(stale, "changed row", "changed rows")
            ),
        ));
    }
    if show_problems && patch_rows > 0 && problems_read {
        let by_rule: Vec<String> = b
            .patches
            .iter()
            .map(|(r, n)| format!("{} {n}", escape(r)))
            .collect();
        if !by_rule.is_empty() {
            c.details.push((
                "Patches by rule".into(),
                format!(
                    "{} (one line each in patch-summary.csv)",
                    by_rule.join(", ")
                ),
            ));
        }
    }
    for n in &check.notes {
        c.details.push((
            "Note".into(),
            plain_detail(&scrub(n, m.server_paths, &scrub_name)),
        ));
    }
    let ignored: Vec<String> = check
        .ignored
        .iter()
        .filter(|(n, _)| !is_marker(n))
        .map(|(n, why)| format!("{} ({})", escape(n), plain_detail(why)))
        .collect();
    if !ignored.is_empty() {
        c.details
            .push(("Files not used".into(), ignored.join("; ")));
    }
    c
}

/// Where this event's reports are, named only when they exist.
fn reports_lines(b: &Batch, report_id: u64, dir: Option<&Path>) -> Vec<String> {
    let Some(d) = dir.filter(|d| d.is_dir()) else {
        return vec![format!("No report was written for batch {}.", b.id)];
    };
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
    let mut out = vec![
        format!("Reports of batch {report_id}:"),
        format!("  for the vendor, over SFTP: reports/{report_id}/ in the upload account"),
        format!("  for admins, on the server: {}/", d.display()),
    ];
    if !files.is_empty() {
        out.push(format!("  files: {}", files.join(", ")));
    }
    out
}

fn render_text(c: &Content) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n{}", c.headline, c.action);
    for cmd in &c.commands {
        let _ = writeln!(s, "\n    {cmd}");
    }
    if !c.counts.is_empty() || !c.no_counts.is_empty() {
        s.push('\n');
    }
    if c.counts.is_empty() {
        if !c.no_counts.is_empty() {
            let _ = writeln!(s, "{}", c.no_counts);
        }
    } else {
        let _ = writeln!(s, "{}", c.counts_title);
        for r in &c.counts {
            if r.added + r.changed + r.removed == 0 {
                let _ = writeln!(s, "  {}: no change ({} now)", r.kind, r.now);
            } else {
                let _ = writeln!(
                    s,
                    "  {}: {} added, {} changed, {} removed ({} now)",
                    r.kind, r.added, r.changed, r.removed, r.now
                );
            }
        }
    }
    if !c.problems.is_empty() {
        let _ = writeln!(s, "\n{}", c.problems_title);
        for g in &c.problems {
            let _ = writeln!(s, "\n  {} ({}: {})", g.title, g.counted(), g.outcome);
            for i in &g.items {
                let _ = writeln!(s, "    - {i}");
            }
            if g.count > g.items.len() as u64 {
                let _ = writeln!(
                    s,
                    "    ... and {} more (patch-summary.csv has them all)",
                    g.count - g.items.len() as u64
                );
            }
        }
    }
    if let Some(g) = &c.filtered {
        let _ = writeln!(s, "\n{} ({}; {}).", g.title, g.counted(), g.outcome);
    }
    if !c.details.is_empty() {
        let _ = writeln!(s, "\nDetails:");
        for (k, v) in &c.details {
            let _ = writeln!(s, "  {k}: {v}");
        }
    }
    if !c.reports.is_empty() {
        s.push('\n');
        for l in &c.reports {
            let _ = writeln!(s, "{l}");
        }
    }
    s.push_str("\n-- \nrosterdrop: sent automatically after every batch.\n");
    s
}

fn h(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_text(s)
}

fn render_html(c: &Content) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    let _ = write!(
        s,
        "{}</title></head>\n<body style=\"font-family:sans-serif\">\n",
        h(&c.subject)
    );
    let _ = writeln!(s, "<p><strong>{}</strong></p>", h(&c.headline));
    let style = if c.action_needed {
        "background:#fff3cd;border-left:4px solid #d39e00;padding:6px"
    } else {
        "background:#e8f5e9;border-left:4px solid #2e7d32;padding:6px"
    };
    let _ = writeln!(s, "<p style=\"{style}\">{}</p>", h(&c.action));
    if !c.commands.is_empty() {
        s.push_str("<pre>");
        for cmd in &c.commands {
            let _ = writeln!(s, "{}", h(cmd));
        }
        s.push_str("</pre>\n");
    }
    if c.counts.is_empty() {
        if !c.no_counts.is_empty() {
            let _ = writeln!(s, "<p>{}</p>", h(&c.no_counts));
        }
    } else {
        let _ = writeln!(s, "<p>{}</p>", h(&c.counts_title));
        s.push_str(
            "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\n\
             <tr><th>records</th><th>added</th><th>changed</th><th>removed</th><th>now</th></tr>\n",
        );
        for r in &c.counts {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                h(&r.kind),
                r.added,
                r.changed,
                r.removed,
                r.now
            );
        }
        s.push_str("</table>\n");
    }
    if !c.problems.is_empty() {
        let _ = writeln!(s, "<h3>{}</h3>", h(&c.problems_title));
        for g in &c.problems {
            let _ = writeln!(
                s,
                "<div style=\"background:#fdecea;border-left:4px solid #c62828;padding:6px;margin:6px 0\">\
                 <p><strong>{}</strong> ({}: {})</p>\n<ul>",
                h(&g.title),
                h(&g.counted()),
                h(&g.outcome)
            );
            for i in &g.items {
                let _ = writeln!(s, "<li>{}</li>", h(i));
            }
            if g.count > g.items.len() as u64 {
                let _ = writeln!(
                    s,
                    "<li>... and {} more (patch-summary.csv has them all)</li>",
                    g.count - g.items.len() as u64
                );
            }
            s.push_str("</ul></div>\n");
        }
    }
    if let Some(g) = &c.filtered {
        let _ = writeln!(
            s,
            "<p>{} ({}; {}).</p>",
            h(&g.title),
            h(&g.counted()),
            h(&g.outcome)
        );
    }
    if !c.details.is_empty() {
        s.push_str("<h3>Details</h3>\n<table cellpadding=\"2\">\n");
        for (k, v) in &c.details {
            let _ = writeln!(
                s,
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                h(k),
                h(v)
            );
        }
        s.push_str("</table>\n");
    }
    if !c.reports.is_empty() {
        s.push_str("<p>");
        let lines: Vec<String> = c.reports.iter().map(|l| h(l.trim()).into_owned()).collect();
        s.push_str(&lines.join("<br>\n"));
        s.push_str("</p>\n");
    }
    s.push_str("<p style=\"color:#777\">-- <br>\nrosterdrop: sent automatically after every batch.</p>\n</body></html>\n");
    s
}

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
