//! Issue 13, items 1-3: every email tells the truth of its own event, in words a district admin
//! reads, with an HTML alternative; what vendors see under `reports/` is theirs alone.
//!
//! The real daemon with a temporary state directory, bundles uploaded with OpenSSH `sftp` the
//! way the README says, admin commands through `admin.sock`, and the `.eml` files it writes
//! parsed with mail-parser.

use std::fs;
use std::path::Path;

use mail_parser::{MessageParser, MimeHeaders};

use crate::support::bundles::zip_dir;
use crate::support::daemon::Daemon;
use crate::support::*;

/// Copies a sample bundle into `to`, changing file contents with `edit(file name, text)`.
fn copy_bundle(from: &Path, to: &Path, edit: impl Fn(&str, String) -> Option<String>) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(e.path()).unwrap();
        if let Some(t) = edit(&name, text) {
            fs::write(to.join(&name), t).unwrap();
        }
    }
}

// ---- reading the mail ----

#[derive(Debug)]
struct Mail {
    name: String,
    subject: String,
    text: String,
    html: String,
    /// Names of the attached files.
    attachments: Vec<String>,
}

impl Mail {
    fn read(path: &Path) -> Mail {
        let raw = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let m = MessageParser::default()
            .parse(&raw)
            .unwrap_or_else(|| panic!("{} does not parse", path.display()));
        let subject = m.subject().unwrap_or_default().to_string();
        // A real text/plain part and a real text/html part (mail-parser would make up either
        // from the other).
        let part_of = |sub: &str| {
            m.parts
                .iter()
                .find(|p| {
                    p.content_type().is_some_and(|ct| {
                        ct.ctype() == "text"
                            && ct.subtype() == Some(sub)
                            && p.attachment_name().is_none()
                    })
                })
                .and_then(|p| p.text_contents())
                .map(|t| t.replace("\r\n", "\n"))
        };
        let text =
            part_of("plain").unwrap_or_else(|| panic!("{}: no text/plain part", path.display()));
        // Checked last in `assert_common`, so that the text's own defects show first.
        let html = part_of("html").unwrap_or_default();
        let attachments = m
            .attachments()
            .filter_map(|a| a.attachment_name().map(str::to_string))
            .collect();
        Mail {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            subject,
            text,
            html,
            attachments,
        }
    }

    /// The opening paragraph: what happened and whether anything is needed.
    fn opening(&self) -> &str {
        self.text.split("\n\n").next().unwrap_or("")
    }

    /// The text above the signature line.
    fn above_signature(&self) -> &str {
        self.text.split("\n-- \n").next().unwrap_or("")
    }

    fn below_signature(&self) -> &str {
        self.text.split_once("\n-- \n").map_or("", |(_, b)| b)
    }
}

/// Checks that `html` is well formed: every element closed in order (void elements aside), no
/// stray `<` or `&` that is not an entity.
fn assert_valid_html(name: &str, html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{name}: {html}");
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html.trim_start_matches("<!DOCTYPE html>");
    while let Some(i) = rest.find(['<', '&']) {
        let (before, at) = rest.split_at(i);
        let _ = before;
        if at.starts_with('&') {
            let end = at
                .find(';')
                .unwrap_or_else(|| panic!("{name}: bare & in {at:.40}"));
            let ent = &at[1..end];
            assert!(
                ["lt", "gt", "amp", "quot", "#x27", "#39"].contains(&ent),
                "{name}: unknown entity &{ent}; in {at:.40}"
            );
            rest = &at[end + 1..];
            continue;
        }
        let end = at
            .find('>')
            .unwrap_or_else(|| panic!("{name}: unclosed tag {at:.40}"));
        let tag = &at[1..end];
        assert!(!tag.contains('<'), "{name}: stray < in {at:.60}");
        let tname: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(!tname.is_empty(), "{name}: stray < in {at:.40}");
        if tag.starts_with('/') {
            let open = stack.pop();
            assert_eq!(
                open.as_deref(),
                Some(tname.as_str()),
                "{name}: </{tname}> closes {open:?}"
            );
        } else if !VOID.contains(&tname.as_str()) {
            stack.push(tname);
        }
        rest = &at[end + 1..];
    }
    assert!(stack.is_empty(), "{name}: never closed: {stack:?}");
}

/// Every server path and every `reports/N/` the text names exists (`reports/N/` in the
/// vendor's account is `state/reports/<source>/N/`).
fn assert_paths_exist(m: &Mail, state: &Path, source: &str) {
    for word in m.text.split_whitespace() {
        let w = word.trim_matches(|c: char| matches!(c, '.' | ',' | ';' | ':' | '(' | ')' | '"'));
        if w.starts_with('/') {
            assert!(
                Path::new(w).exists(),
                "{}: {w} does not exist:\n{}",
                m.name,
                m.text
            );
        }
        if let Some(i) = w.find("reports/") {
            let n: String = w[i + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !n.is_empty() && !w.starts_with('/') {
                let p = state.join("reports").join(source).join(&n);
                assert!(
                    p.is_dir(),
                    "{}: {w} ({}) does not exist:\n{}",
                    m.name,
                    p.display(),
                    m.text
                );
            }
        }
    }
}

/// The batch ids a text names (`batch N`, `reports/N/`, `approve N`, ...).
fn batch_ids(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let w0 = w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '/');
        let next = words.get(i + 1).map(|n| {
            n.trim_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
                .ok()
        });
        let counted = words.get(i + 2).is_some_and(|n| n.starts_with("time"));
        if !counted
            && matches!(
                w0.to_ascii_lowercase().as_str(),
                "batch" | "approve" | "discard" | "show" | "rollback"
            )
        {
            if let Some(Some(n)) = next {
                out.push(n);
            }
        }
        if let Some(j) = w.find("reports/") {
            let n: String = w[j + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = n.parse() {
                if !w.starts_with('/') {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// What every message must be: parseable, opening with what happened and whether anything is
/// needed, counts in words, nothing after the signature but the signature, a valid HTML part,
/// only existing paths, only the batches it is about.
fn assert_common(m: &Mail, state: &Path, source: &str, allowed_ids: &[u64]) {
    if std::env::var_os("SHOW_MAIL").is_some() {
        eprintln!(
            "===== {}\nSubject: {}\n{}\n----- html\n{}",
            m.name, m.subject, m.text, m.html
        );
    }
    let open = m.opening();
    assert!(open.starts_with("Batch "), "{}: {open}", m.name);
    assert!(
        open.contains("Nothing to do") || open.contains("Action needed:"),
        "{}: the opening does not say whether anything is needed: {open}",
        m.name
    );
    for jargon in [
        "+0",
        "~0",
        "-0 ",
        "pages ",
        "dropped-row",
        "cleared-field",
        "`",
        "rosterdrop check:",
        "Bundle:",
        "upload\n",
        "ACCEPTED",
    ] {
        assert!(
            !m.text.contains(jargon),
            "{}: {jargon:?} in\n{}",
            m.name,
            m.text
        );
        assert!(
            !m.subject.contains(jargon),
            "{}: {jargon:?} in {}",
            m.name,
            m.subject
        );
    }
    assert!(
        !m.text.contains("not an Apple School Manager file"),
        "{}: a marker listed as ignored:\n{}",
        m.name,
        m.text
    );
    assert!(
        !m.text.contains("/spool/"),
        "{}: a spool path:\n{}",
        m.name,
        m.text
    );
    // Instructions above the signature; below it, only the signature.
    let below = m.below_signature();
    assert!(!below.is_empty(), "{}: no signature", m.name);
    assert!(
        !below.contains("rosterdrop approve") && !below.contains("reports/"),
        "{}: {below}",
        m.name
    );
    assert_paths_exist(m, state, source);
    for id in batch_ids(&m.text).into_iter().chain(batch_ids(&m.subject)) {
        assert!(
            allowed_ids.contains(&id),
            "{}: names batch {id} (only {allowed_ids:?}):\n{}\n{}",
            m.name,
            m.subject,
            m.text
        );
    }
    // The HTML says the same: the opening sentence and every problem line.
    assert!(!m.html.is_empty(), "{}: no text/html part", m.name);
    assert_valid_html(&m.name, &m.html);
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&amp;", "&")
    };
    let html_text = unescape(&m.html);
    let first = open.lines().next().unwrap_or("");
    assert!(
        html_text.contains(first),
        "{}: HTML lacks {first:?}:\n{}",
        m.name,
        m.html
    );
    for l in m
        .above_signature()
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
    {
        let item = l.trim_start().trim_start_matches("- ");
        assert!(html_text.contains(item), "{}: HTML lacks {item:?}", m.name);
    }
}

const MAPLE: &str = "[sources.maple]\nadmins = [\"it@maple.example\"]\nguard.min_rows = 1\n\
                     guard.max_delete_percent = 10.0\n[sources.birch]\nadmins = [\"it@birch.example\"]\n";

/// The README's walk: a folder `nightly` with a READY marker, the same again, two cuts that
/// the guard holds (one discarded, one approved, then rolled back), and a bundle that is
/// rejected. Eight messages, each checked for its own truth.
#[test]
fn every_event_mails_its_own_truth() {
    let d = Daemon::new(MAPLE, 2);
    let key = d.account("maplesis", "maple");
    let srv = d.start();
    let outbox = d.state.join("outbox");
    let mail = |name: &str| {
        let p = outbox.join(name);
        srv.wait_until(20, 50, name, || p.exists());
        Mail::read(&p)
    };

    // 1. applied, with patches: the folder `nightly` and its READY marker. One value carries
    // markup, which the HTML part must show as text.
    let nightly = d.dir.path().join("nightly");
    copy_bundle(&sample("apple-with-errors"), &nightly, |name, t| {
        Some(if name == "students.csv" {
            t.replace(",Freshman,", ",<b>Fresh&man</b>,")
        } else {
            t
        })
    });
    let ready = d.dir.path().join("READY");
    fs::write(&ready, "").unwrap();
    let upload_nightly = format!(
        "mkdir nightly\nput {}/* nightly/\nput {} nightly/READY\n",
        nightly.display(),
        ready.display()
    );
    d.sftp_ok("maplesis", &key, &upload_nightly);
    let done = d.wait_batches("maple", 1, 60);
    let (applied, st) = done[0].clone();
    assert_eq!(st, "applied", "{}", srv.log_text());
    let m = mail(&format!("batch-{applied}.eml"));
    assert_common(&m, &d.state, "maple", &[applied]);
    assert_eq!(
        m.subject,
        format!("[rosterdrop] maple batch {applied}: APPLIED, 33 added, 0 changed, 0 removed, 7 problems patched"),
        "{}",
        m.text
    );
    assert!(
        m.opening().starts_with(&format!("Batch {applied} from maple (nightly) was applied to the roster.\nNothing to do on the server.")),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("  students: 9 added, 0 changed, 0 removed (9 now)"),
        "{}",
        m.text
    );
    // Problems grouped by what to fix, with file and line.
    assert!(m.text.contains("rosters.csv: rows name a student who is not in students.csv (1 row: those rows were left out of the roster)"), "{}", m.text);
    assert!(
        m.text
            .contains("- rosters.csv line 10 (R9): \"S9999\" is not in students.csv"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("- students.csv line 10 (S1008): \"<b>Fresh&man</b>\" is not one of"),
        "{}",
        m.text
    );
    assert!(
        !m.html.contains("<b>Fresh"),
        "unescaped value in the HTML: {}",
        m.html
    );
    assert!(
        m.html.contains("&lt;b&gt;Fresh&amp;man&lt;/b&gt;"),
        "{}",
        m.html
    );
    assert!(m.html.contains("<table"), "{}", m.html);
    assert!(m.text.contains("Upload: nightly\n"), "{}", m.text);
    assert_eq!(m.attachments, vec!["patch-summary.csv".to_string()]);

    // 2. unchanged: the same folder again.
    d.sftp_ok("maplesis", &key, &upload_nightly);
    let done = d.wait_batches("maple", 2, 60);
    let (unchanged, st) = done[1].clone();
    assert_eq!(st, "unchanged");
    let m = mail(&format!("batch-{unchanged}.eml"));
    assert_common(&m, &d.state, "maple", &[unchanged, applied]);
    assert_eq!(
        m.subject,
        format!("[rosterdrop] maple batch {unchanged}: UNCHANGED, nothing to apply")
    );
    assert!(
        m.opening().starts_with(&format!("Batch {unchanged} from maple (nightly) changed nothing: it is the same upload as batch {applied}, already applied.\nNothing to do.")),
        "{}",
        m.text
    );
    assert!(m.text.contains("No records were changed."), "{}", m.text);

    // 3. held: students.csv cut to one row would remove most students.
    let cut = d.dir.path().join("cut");
    copy_bundle(&sample("apple"), &cut, |name, t| {
        Some(if name == "students.csv" {
            t.lines().take(2).map(|l| format!("{l}\n")).collect()
        } else {
            t
        })
    });
    let cut_zip = d.dir.path().join("cut.zip");
    zip_dir(&cut, &cut_zip, None);
    d.sftp_ok(
        "maplesis",
        &key,
        &format!("put {} cut.zip\n", cut_zip.display()),
    );
    let done = d.wait_batches("maple", 3, 60);
    let (held, st) = done[2].clone();
    assert_eq!(st, "held");
    let m = mail(&format!("batch-{held}.eml"));
    assert_common(&m, &d.state, "maple", &[held]);
    // The subject gives the first reason, and how many more (issue 11, item 3).
    assert!(
        m.subject.starts_with(&format!(
            "[rosterdrop] maple batch {held}: HELD, approve or discard: "
        )) && m.subject.contains("more than guard.max_patch_drop_percent"),
        "{}",
        m.subject
    );
    assert!(
        m.opening().starts_with(&format!(
            "Batch {held} from maple (cut.zip) is held: nothing from it has been applied yet.\n\
             Action needed: approve or discard batch {held} before the next upload from maple is applied"
        )),
        "{}",
        m.text
    );
    let above = m.above_signature();
    assert!(
        above.contains(&format!("\n    rosterdrop approve {held}")),
        "{}",
        m.text
    );
    assert!(
        above.contains(&format!("\n    rosterdrop discard {held}")),
        "{}",
        m.text
    );
    assert!(
        above.contains("What it would change if approved:"),
        "{}",
        m.text
    );
    assert!(above.contains("Why it is held: "), "{}", m.text);
    assert!(
        above.contains("students: 8 of 9 would be removed"),
        "{}",
        m.text
    );
    assert!(
        m.html.contains(&format!("rosterdrop approve {held}")),
        "{}",
        m.html
    );

    // 4. discarded.
    d.cli_ok(&["discard", &held.to_string(), "--as", "dana"]);
    let m = mail(&format!("batch-{held}-discarded.eml"));
    assert_common(&m, &d.state, "maple", &[held]);
    assert_eq!(
        m.subject,
        format!("[rosterdrop] maple batch {held}: DISCARDED, nothing applied")
    );
    assert!(
        m.opening().starts_with(&format!("Batch {held} from maple (cut.zip) was discarded by dana: nothing from it was applied, the roster is unchanged.\nNothing to do")),
        "{}",
        m.text
    );
    assert!(
        !m.text.contains("rosterdrop approve") && !m.text.contains("is held"),
        "{}",
        m.text
    );
    assert!(m.attachments.is_empty());

    // 5. held again under another name, then approved.
    d.sftp_ok(
        "maplesis",
        &key,
        &format!("put {} cut2.zip\n", cut_zip.display()),
    );
    let done = d.wait_batches("maple", 4, 60);
    let (approved, st) = done[3].clone();
    assert_eq!(st, "held");
    let _ = mail(&format!("batch-{approved}.eml"));
    let out = d.cli_ok(&["approve", &approved.to_string(), "--as", "dana"]);
    assert!(out.contains("APPLIED"), "{out}");
    let m = mail(&format!("batch-{approved}-approved.eml"));
    assert_common(&m, &d.state, "maple", &[approved]);
    assert_eq!(m.subject, format!("[rosterdrop] maple batch {approved}: APPROVED and APPLIED, 0 added, 0 changed, 20 removed"));
    assert!(
        m.opening().starts_with(&format!("Batch {approved} from maple (cut2.zip) was approved by dana and applied to the roster.\nNothing to do.")),
        "{}",
        m.text
    );
    assert!(m.text.contains("What was applied:\n"), "{}", m.text);
    // Who approved it, as the batch records it (`--as`; by default the Unix user).
    assert!(
        m.text
            .contains("Decided: approved by dana from the command line at "),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("  students: 0 added, 0 changed, 8 removed (1 now)"),
        "{}",
        m.text
    );
    assert!(
        !m.text.contains("rosterdrop approve") && !m.text.contains("HELD"),
        "{}",
        m.text
    );

    // 6. rolled back: the mail names the batch undone and what came back, and its reports.
    let out = d.cli_ok(&["rollback", &approved.to_string(), "--as", "dana"]);
    let rb: u64 = d.history().iter().map(|(id, _, _)| *id).max().unwrap();
    assert!(rb > approved, "{out}");
    // The undone batch keeps its approval beside its rollback; the rollback's own record
    // names only the rollback.
    let shown = d.cli_ok(&["show", &approved.to_string()]);
    let approved_at = shown.find("decided approved by dana from the command line at ");
    let rolled_at = shown.find("decided rolled back by dana from the command line at ");
    assert!(
        matches!((approved_at, rolled_at), (Some(a), Some(r)) if a < r),
        "{shown}"
    );
    let shown = d.cli_ok(&["show", &rb.to_string()]);
    assert!(
        shown.contains("decided rolled back by dana") && !shown.contains("decided approved"),
        "{shown}"
    );
    let m = mail(&format!("batch-{rb}.eml"));
    assert_common(&m, &d.state, "maple", &[approved, applied, rb]);
    assert_eq!(m.subject, format!("[rosterdrop] maple batch {approved}: ROLLED BACK, 20 added back, 0 changed back, 0 removed"));
    assert!(
        m.opening().starts_with(&format!("Batch {approved} from maple (cut2.zip) was rolled back by dana: the roster is again as batch {applied} left it.\nNothing to do")),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains(&format!("What came back (undoing batch {approved}):\n")),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("\n  students: 8 added, 0 changed, 0 removed (9 now)\n"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains(&format!("reports/{approved}/ in the upload account")),
        "{}",
        m.text
    );
    assert!(!m.text.contains(&format!("reports/{rb}/")), "{}", m.text);
    assert!(
        !m.text.contains("is held") && !m.text.contains("rosterdrop approve"),
        "{}",
        m.text
    );

    // 7. rejected: rosters.csv missing.
    let broken = d.dir.path().join("broken");
    copy_bundle(&sample("apple"), &broken, |name, t| {
        (name != "rosters.csv").then_some(t)
    });
    let broken_zip = d.dir.path().join("broken.zip");
    zip_dir(&broken, &broken_zip, None);
    d.sftp_ok(
        "maplesis",
        &key,
        &format!("put {} nightly.zip\n", broken_zip.display()),
    );
    let done = d.wait_batches("maple", 6, 60);
    let (rejected, st) = done.last().cloned().unwrap();
    assert_eq!(st, "rejected", "{done:?}");
    let m = mail(&format!("batch-{rejected}.eml"));
    assert_common(&m, &d.state, "maple", &[rejected]);
    assert_eq!(
        m.subject,
        format!("[rosterdrop] maple batch {rejected}: REJECTED, nothing applied, 1 problem to fix")
    );
    assert!(
        m.opening().starts_with(&format!(
            "Batch {rejected} from maple (nightly.zip) was rejected: nothing from it was applied, the roster is unchanged.\n\
             Action needed: the vendor must fix the problems below and upload again; the vendor can read them in reports/{rejected}/ over SFTP."
        )),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("What the vendor must fix (1 problem):"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("- nightly.zip: Apple School Manager bundle is missing rosters.csv"),
        "{}",
        m.text
    );
    assert!(!m.text.contains("ACCEPTED"), "{}", m.text);
}

/// A batch that could not be processed: the mail says so, gives the error and where the
/// upload is kept, and names no report that does not exist.
#[test]
fn a_failed_batch_says_what_failed_and_where_the_upload_is() {
    let d = Daemon::new("[sources.s]\nadmins = [\"admin@district.example\"]\n", 2);
    let _key = d.account("vendor", "s");
    // A claim the daemon died in three times (see daemon_e2e.rs).
    let spool = d.spool_crashed_claim("s", "vendor", 3);
    let srv = d.start();
    assert_eq!(d.wait_batches("s", 1, 30), vec![(1, "failed".to_string())]);
    let eml = d.state.join("outbox/batch-1.eml");
    srv.wait_until(20, 50, "the email", || eml.exists());
    srv.wait_until(20, 50, "the spool emptied", || !spool.exists());
    let m = Mail::read(&eml);
    assert_common(&m, &d.state, "s", &[1]);
    assert_eq!(m.subject, "[rosterdrop] s batch 1: FAILED, nothing applied");
    assert!(
        m.opening().starts_with(
            "Batch 1 from s (nightly.zip) could not be processed: nothing was applied, the roster is unchanged.\n\
             Action needed: look at the error below"
        ),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("stopped while checking this batch 3 times"),
        "{}",
        m.text
    );
    let kept = format!(
        "kept on the server in {}/",
        d.state.join("archive/s/1").display()
    );
    assert!(m.text.contains(&kept), "{}", m.text);
    assert!(!m.text.contains("reports/"), "{}", m.text);
}

/// Item 3: what the vendor reads under `reports/` names no server path and no other source.
/// (`summary.txt` is written by src/report.rs and src/pipeline.rs, and the path comes from
/// src/bundle.rs's messages: see the report of this branch for the fix.)
#[test]
fn a_rejected_report_names_no_server_path() {
    let d = Daemon::new(MAPLE, 2);
    let key = d.account("maplesis", "maple");
    let srv = d.start();
    let broken = d.dir.path().join("broken");
    copy_bundle(&sample("apple"), &broken, |name, t| {
        (name != "rosters.csv").then_some(t)
    });
    let ready = d.dir.path().join("READY");
    fs::write(&ready, "").unwrap();
    d.sftp_ok(
        "maplesis",
        &key,
        &format!(
            "mkdir nightly\nput {}/* nightly/\nput {} nightly/READY\n",
            broken.display(),
            ready.display()
        ),
    );
    let done = d.wait_batches("maple", 1, 60);
    assert_eq!(done[0].1, "rejected", "{}", srv.log_text());
    let got = d.dir.path().join("got-summary.txt");
    d.sftp_ok(
        "maplesis",
        &key,
        &format!("get reports/{}/summary.txt {}\n", done[0].0, got.display()),
    );
    let text = fs::read_to_string(&got).unwrap();
    let state = d.state.display().to_string();
    assert!(
        !text.contains(&state) && !text.contains("/spool/"),
        "{text}"
    );
    assert!(!text.contains("birch"), "{text}");
    assert!(text.contains("nightly"), "{text}");
    assert!(
        text.contains("nothing was applied") || text.contains("Nothing was applied"),
        "{text}"
    );
    assert!(
        !text.contains("READY: not an Apple School Manager file"),
        "{text}"
    );
}
