//! What a batch's email says, decided once for both parts: the opening, the counts in words,
//! the problems grouped by what the vendor must fix, the reports and paths.

use super::*;

/// The kind of record a table holds, in words.
pub(super) fn kind(table: &str) -> &str {
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

pub(super) fn format_name(f: &str) -> String {
    match crate::roster::schema::Format::from_label(f) {
        Some(format) => format.display_name().into(),
        None if f.is_empty() || f == "unknown" => "not recognised".into(),
        None => escape(f).into_owned(),
    }
}

pub(super) fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// One line of the counts table.
#[derive(Debug, Clone)]
pub(super) struct CountRow {
    pub(super) kind: String,
    pub(super) added: u64,
    pub(super) changed: u64,
    pub(super) removed: u64,
    pub(super) now: u64,
}

/// Problems of one kind in one file.
#[derive(Debug, Clone, Default)]
pub(super) struct Group {
    /// `students.csv: rows name a class that is not in classes.csv`.
    pub(super) title: String,
    /// What rosterdrop did about them.
    pub(super) outcome: String,
    pub(super) count: u64,
    /// What is counted: `row`, `field` or `problem`.
    pub(super) unit: &'static str,
    pub(super) items: Vec<String>,
}

impl Group {
    pub(super) fn counted(&self) -> String {
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
pub(super) struct Content {
    pub(super) subject: String,
    /// What happened: one sentence.
    pub(super) headline: String,
    /// `Nothing to do.` or `Action needed: ...`.
    pub(super) action: String,
    pub(super) action_needed: bool,
    /// Commands to run on the server, right after the action.
    pub(super) commands: Vec<String>,
    /// A sentence above the counts.
    pub(super) counts_title: String,
    pub(super) counts: Vec<CountRow>,
    /// Said instead of the table when it is empty.
    pub(super) no_counts: String,
    pub(super) problems_title: String,
    pub(super) problems: Vec<Group>,
    /// Left out on purpose (filters), not the vendor's to fix.
    pub(super) filtered: Option<Group>,
    pub(super) details: Vec<(String, String)>,
    pub(super) reports: Vec<String>,
}

/// How many example lines each group of problems shows.
pub(super) const EXAMPLES: usize = 5;

/// Groups of problems read from a patch summary at most (files x rules x actions).
pub(super) const MAX_GROUPS: usize = 100;

/// Structural errors listed at most.
pub(super) const MAX_ERRORS: usize = 50;

/// What a rule means for the vendor, and what was done.
pub(super) fn rule_words(rule: &str, file: &str) -> String {
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

pub(super) fn action_words(action: &str, rule: &str) -> &'static str {
    match (action, rule) {
        (_, "duplicate-id") | (_, "duplicate-account") => "the first was kept, these left out",
        ("dropped-row", _) => "those rows were left out of the roster",
        ("cleared-field", _) => "those fields were left empty",
        ("fixed-field", _) => "rosterdrop corrected them",
        _ => "see patch-summary.csv",
    }
}

/// Backticks around values read as code: plain quotes instead.
pub(super) fn plain_detail(s: &str) -> String {
    escape_line(s).replace('`', "\"")
}

/// Reads `patch-summary.csv` into groups by (file, rule, action), first seen first.
pub(super) fn read_problems(path: &Path) -> io::Result<(Vec<Group>, Option<Group>, u64)> {
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
pub(super) fn scrub(text: &str, paths: &[PathBuf], upload: &str) -> String {
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
pub(super) const TABLE_ORDER: [&str; 13] = [
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

pub(super) fn table_pos(t: &str) -> usize {
    TABLE_ORDER
        .iter()
        .position(|o| *o == t)
        .unwrap_or(usize::MAX)
}

pub(super) fn counts_of(b: &Batch) -> Vec<CountRow> {
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

pub(super) fn totals_words(b: &Batch) -> String {
    let (a, u, d) = b.totals();
    format!("{a} added, {u} changed, {d} removed")
}

/// The reason a batch was held, without the commands the store appends.
/// The first reason of a hold, fit for a subject line: printable ASCII only (a header), cut at
/// 120 characters, with a count of the other reasons.
pub(super) fn subject_reason(reasons: &str) -> Option<String> {
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

pub(super) fn held_reason(b: &Batch) -> Option<String> {
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

pub(super) fn content(m: &BatchMail, report_dir: Option<&Path>) -> Content {
    let b = m.batch;
    let src = escape(&b.source).into_owned();
    // "an admin", or who it was when the batch records it (a console user's or a Unix name).
    let who = match &b.decided {
        Some(d) => escape(&d.by).into_owned(),
        None => "an admin".to_string(),
    };
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
            c.headline = format!("{named} was approved by {who} and applied to the roster.");
            c.action = "Nothing to do.".into();
            c.counts_title = "What was applied:".into();
            if let Some(r) = held_reason(b) {
                c.details.push(("It had been held because".into(), r));
            }
        }
        (Event::Discarded, _) => {
            c.subject = format!("{subject_head}: DISCARDED, nothing applied");
            c.headline = format!(
                "{named} was discarded by {who}: nothing from it was applied, the roster is \
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
                "Batch {u} from {src}{uname} was rolled back by {who}: the roster is again \
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
    if let Some(d) = &b.decided {
        c.details
            .push(("Decided".into(), escape(&d.text()).into_owned()));
    }
    if let Some(url) = m.link {
        c.details
            .push(("Batch page".into(), escape(url).into_owned()));
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
pub(super) fn reports_lines(b: &Batch, report_id: u64, dir: Option<&Path>) -> Vec<String> {
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
