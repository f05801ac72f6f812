//! Batch history, a batch's page (what happened, counts, problems, downloads) and the approve,
//! discard and rollback actions with their confirmation step.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::{layout, respond, when};
use crate::admin::Request;
use crate::console::{admin_of, blocking, poster_of, Admin, Console, Refused};
use crate::paths::StateDir;
use crate::store::{Batch, BatchState};

/// Batches per page of the history.
const PAGE: usize = 50;
/// Problem rows per page of a batch.
const PROBLEMS_PAGE: usize = 200;
/// Distinct files or rules offered in the problem filters, at most.
const MAX_CHOICES: usize = 500;
/// Largest file the console sends (reports and the original upload).
const MAX_DOWNLOAD: u64 = 512 * 1024 * 1024;

#[derive(Deserialize, Default)]
pub struct HistoryQuery {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

const STATES: [BatchState; 9] = [
    BatchState::Received,
    BatchState::Processing,
    BatchState::Applied,
    BatchState::Unchanged,
    BatchState::Held,
    BatchState::Rejected,
    BatchState::Failed,
    BatchState::Discarded,
    BatchState::RolledBack,
];

fn state_tag(s: BatchState) -> Markup {
    html! { span class=(format!("state {}", s.label())) { (s.label()) } }
}

pub async fn history(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let a = match admin_of(&c, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(&c),
    };
    let source = q.source.filter(|s| !s.is_empty());
    let state = q
        .state
        .as_deref()
        .and_then(|s| STATES.iter().copied().find(|x| x.label() == s));
    if source.as_deref().is_some_and(|s| !a.sees(s)) {
        return Refused::NotFound.into_response(&c);
    }
    let page = q.page.unwrap_or(0).min(1_000_000);
    let b = c.backend().clone();
    let user = a.user.clone();
    let src2 = source.clone();
    let got = blocking(move || {
        let store = b.store().map_err(|e| Refused::Internal(e.to_string()))?;
        let all = store
            .history(src2.as_deref())
            .map_err(|e| Refused::Internal(e.to_string()))?;
        let sources: Vec<String> = b
            .config()
            .sources
            .keys()
            .filter(|s| user.sees(s))
            .cloned()
            .collect();
        let shown: Vec<Batch> = all
            .into_iter()
            .filter(|b| user.sees(&b.source) && state.is_none_or(|s| b.state == s))
            .collect();
        Ok((shown, sources))
    })
    .await;
    let (shown, sources) = match got {
        Ok(x) => x,
        Err(e) => return e.into_response(&c),
    };
    let total = shown.len();
    let rows = shown.iter().skip(page * PAGE).take(PAGE);
    let link = |p: usize| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(x) = &source {
            s.append_pair("source", x);
        }
        if let Some(x) = state {
            s.append_pair("state", x.label());
        }
        s.append_pair("page", &p.to_string());
        c.at(&format!("batches?{}", s.finish()))
    };
    let body = html! {
        form.filters method="get" action=(c.at("batches")) {
            label for="f-source" { "Source" }
            select id="f-source" name="source" {
                option value="" { "all" }
                @for s in &sources {
                    option value=(s) selected[source.as_deref() == Some(s.as_str())] { (s) }
                }
            }
            label for="f-state" { "State" }
            select id="f-state" name="state" {
                option value="" { "all" }
                @for s in STATES {
                    option value=(s.label()) selected[state == Some(s)] { (s.label()) }
                }
            }
            button type="submit" { "Show" }
        }
        p { (total) " batches." }
        @if total > 0 {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Batch" } th scope="col" { "Source" } th scope="col" { "State" }
                        th scope="col" { "Received" } th scope="col" class="num" { "Added" }
                        th scope="col" class="num" { "Changed" } th scope="col" class="num" { "Removed" }
                    } }
                    tbody {
                        @for b in rows {
                            @let (ad, ch, de) = b.totals();
                            tr {
                                td { a href=(c.at(&format!("batch/{}", b.id))) { (b.id) } }
                                td { (b.source) } td { (state_tag(b.state)) } td { (when(b.received_at)) }
                                td.num { (ad) } td.num { (ch) } td.num { (de) }
                            }
                        }
                    }
                }
            }
        }
        nav.pages aria-label="Pages" {
            @if page > 0 { a href=(link(page - 1)) rel="prev" { "Newer" } }
            @if (page + 1) * PAGE < total { a href=(link(page + 1)) rel="next" { "Older" } }
        }
    };
    respond(StatusCode::OK, layout(&c, Some(&a), "Batches", body))
}

/// The batch, if it exists and this admin sees its source (otherwise not found: the same
/// answer, so that ids of other sources' batches are not confirmed).
async fn visible_batch(c: &Console, a: &Admin, id: u64) -> Result<Batch, Refused> {
    let b = c.backend().clone();
    let batch = blocking(move || {
        let store = b.store().map_err(|e| Refused::Internal(e.to_string()))?;
        store
            .find_batch(id)
            .map_err(|e| Refused::Internal(e.to_string()))
    })
    .await?;
    match batch {
        Some(b) if a.sees(&b.source) => Ok(b),
        _ => Err(Refused::NotFound),
    }
}

/// What may be done to batch `b` now, with the buttons' words: a held batch approved or
/// discarded; the source's last applied batch rolled back (the only one `rollback` takes,
/// unless it is itself a rollback). The batch page offers these and no others, and the
/// confirmation page asks only for these (it offered "Roll back" on every applied batch, and
/// confirmed approving one already applied, found by an outside probe; the store refused).
async fn verbs_of(c: &Console, b: &Batch) -> Result<Vec<(&'static str, &'static str)>, Refused> {
    Ok(match b.state {
        BatchState::Held => vec![("approve", "Approve…"), ("discard", "Discard…")],
        BatchState::Applied if b.rollback_of.is_none() => {
            let (backend, source) = (c.backend().clone(), b.source.clone());
            let last = blocking(move || {
                let store = backend
                    .store()
                    .map_err(|e| Refused::Internal(e.to_string()))?;
                store
                    .last_applied(&source)
                    .map_err(|e| Refused::Internal(e.to_string()))
            })
            .await?;
            if last == Some(b.id) {
                vec![("rollback", "Roll back…")]
            } else {
                vec![]
            }
        }
        _ => vec![],
    })
}

/// The logged-in admin of a request and batch `id`, if it is one of theirs.
async fn admin_and_batch(
    c: &Console,
    headers: &HeaderMap,
    id: u64,
) -> Result<(Admin, Batch), Refused> {
    let a = admin_of(c, headers)?;
    let b = visible_batch(c, &a, id).await?;
    Ok((a, b))
}

#[derive(Deserialize, Default)]
pub struct ProblemQuery {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

/// One row of patch-summary.csv.
struct Problem {
    file: String,
    line: String,
    id: String,
    rule: String,
    action: String,
    field: String,
    detail: String,
}

struct Problems {
    rows: Vec<Problem>,
    matching: usize,
    files: BTreeSet<String>,
    rules: BTreeSet<String>,
}

/// Reads patch-summary.csv (streaming), keeps the page of rows that pass the filters.
fn read_problems(path: &Path, q: &ProblemQuery, page: usize) -> Result<Problems, String> {
    let mut out = Problems {
        rows: Vec::new(),
        matching: 0,
        files: BTreeSet::new(),
        rules: BTreeSet::new(),
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.to_string()),
    };
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(std::io::BufReader::new(f));
    let mut rec = csv::StringRecord::new();
    let want = |v: &Option<String>, x: &str| v.as_deref().is_none_or(|w| w.is_empty() || w == x);
    while r.read_record(&mut rec).map_err(|e| e.to_string())? {
        let get = |i: usize| rec.get(i).unwrap_or("").to_owned();
        let (file, rule) = (get(0), get(3));
        if out.files.len() < MAX_CHOICES {
            out.files.insert(file.clone());
        }
        if out.rules.len() < MAX_CHOICES {
            out.rules.insert(rule.clone());
        }
        if !(want(&q.file, &file) && want(&q.rule, &rule)) {
            continue;
        }
        out.matching += 1;
        if out.matching > page * PROBLEMS_PAGE && out.rows.len() < PROBLEMS_PAGE {
            let detail = match get(7) {
                d if d.is_empty() => get(6),
                d => d,
            };
            out.rows.push(Problem {
                file,
                line: get(1),
                id: get(2),
                rule,
                action: get(4),
                field: get(5),
                detail,
            });
        }
    }
    Ok(out)
}

/// What happened to the batch, in a sentence.
fn story(b: &Batch) -> String {
    let (a, ch, d) = b.totals();
    let counts = format!("{a} added, {ch} changed, {d} removed");
    let by = b
        .decided
        .as_ref()
        .map(|d| format!(" ({})", d.text()))
        .unwrap_or_default();
    match b.state {
        BatchState::Applied => match b.rollback_of {
            Some(u) => format!("This batch rolled back batch {u}: {counts}{by}."),
            None => format!("Applied to the roster: {counts}{by}."),
        },
        BatchState::Held => format!(
            "Held for approval: nothing is applied until an admin approves it ({counts} if \
             approved)."
        ),
        BatchState::Unchanged => "Nothing changed: the upload matched the roster.".into(),
        BatchState::Rejected => "Rejected: nothing was applied.".into(),
        BatchState::Failed => "Failed: nothing was applied.".into(),
        BatchState::Discarded => format!("Discarded: nothing from it was applied{by}."),
        BatchState::RolledBack => format!("Applied, then rolled back{by}."),
        BatchState::Received | BatchState::Processing => "Being checked.".into(),
    }
}

/// The report files the console serves, and the original upload (zipped).
const REPORT_FILES: [&str; 3] = ["patch-summary.csv", "modified.zip", "summary.txt"];
const UPLOAD: &str = "upload.zip";

fn upload_dir(state_dir: &Path, b: &Batch) -> PathBuf {
    StateDir::at(state_dir)
        .archive()
        .join(&b.source)
        .join(b.id.to_string())
}

pub async fn batch(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Query(q): Query<ProblemQuery>,
) -> Response {
    let (a, b) = match admin_and_batch(&c, &headers, id).await {
        Ok(ab) => ab,
        Err(e) => return e.into_response(&c),
    };
    let page = q.page.unwrap_or(0).min(1_000_000);
    let report = b.report_dir.clone().map(PathBuf::from);
    let upload = upload_dir(&c.backend().state_dir(), &b);
    let (q, got) = {
        let report = report.clone();
        let got = blocking(move || {
            let present: Vec<&'static str> = REPORT_FILES
                .into_iter()
                .filter(|f| report.as_ref().is_some_and(|d| d.join(f).is_file()))
                .collect();
            let problems = match &report {
                Some(d) => read_problems(&d.join("patch-summary.csv"), &q, page)
                    .map_err(Refused::Internal)?,
                None => read_problems(Path::new(""), &q, page).map_err(Refused::Internal)?,
            };
            Ok((q, present, problems, upload.is_dir()))
        })
        .await;
        match got {
            Ok((q, p, pr, up)) => (q, (p, pr, up)),
            Err(e) => return e.into_response(&c),
        }
    };
    let (present, problems, has_upload) = got;
    let here = c.at(&format!("batch/{}", b.id));
    let verbs = match verbs_of(&c, &b).await {
        Ok(v) => v,
        Err(e) => return e.into_response(&c),
    };
    let page_link = |p: usize| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(x) = q.file.as_deref().filter(|x| !x.is_empty()) {
            s.append_pair("file", x);
        }
        if let Some(x) = q.rule.as_deref().filter(|x| !x.is_empty()) {
            s.append_pair("rule", x);
        }
        s.append_pair("page", &p.to_string());
        format!("{here}?{}#problems", s.finish())
    };
    let body = html! {
        p.lead { (story(&b)) }
        @if let Some(r) = &b.reason { p { "Reason: " (r) } }
        dl.facts {
            dt { "Source" } dd { a href=(c.at(&format!("batches?source={}", b.source))) { (b.source) } }
            dt { "State" } dd { (state_tag(b.state)) }
            dt { "Account" } dd { (b.account) }
            dt { "Received" } dd { (when(b.received_at)) }
            dt { "Format" } dd { (b.format) " " (b.mode) }
            @for d in b.decisions() { dt { "Decided" } dd { (d.text()) } }
            @if let Some(u) = b.rollback_of { dt { "Rollback of" } dd { a href=(c.at(&format!("batch/{u}"))) { "batch " (u) } } }
        }
        @if !verbs.is_empty() {
            div.actions {
                @for (v, label) in &verbs {
                    a.button href=(format!("{here}/do/{v}")) { (label) }
                }
            }
        }
        h2 { "Counts" }
        div.scroll { table {
            thead { tr {
                th scope="col" { "Records" } th scope="col" class="num" { "Read" } th scope="col" class="num" { "Added" }
                th scope="col" class="num" { "Changed" } th scope="col" class="num" { "Removed" } th scope="col" class="num" { "Before" }
            } }
            tbody {
                @for (t, n) in &b.tables {
                    tr { th scope="row" { (t) } td.num { (n.read) } td.num { (n.adds) } td.num { (n.updates) } td.num { (n.deletes) } td.num { (n.before) } }
                }
            }
        } }
        h2 { "Downloads" }
        @if present.is_empty() && !has_upload { p { "No reports were written for this batch." } }
        ul.downloads {
            @for f in &present { li { a href=(format!("{here}/file/{f}")) download { (f) } } }
            @if has_upload { li { a href=(format!("{here}/file/{UPLOAD}")) download { "the original upload (" (UPLOAD) ")" } } }
        }
        h2 id="problems" { "Problems" }
        form.filters method="get" action=(format!("{here}#problems")) {
            label for="p-file" { "File" }
            select id="p-file" name="file" {
                option value="" { "all" }
                @for f in &problems.files { option value=(f) selected[q.file.as_deref() == Some(f.as_str())] { (f) } }
            }
            label for="p-rule" { "Rule" }
            select id="p-rule" name="rule" {
                option value="" { "all" }
                @for r in &problems.rules { option value=(r) selected[q.rule.as_deref() == Some(r.as_str())] { (r) } }
            }
            button type="submit" { "Filter" }
        }
        p { (problems.matching) " problem rows match." }
        @if !problems.rows.is_empty() {
            div.scroll { table.problems {
                thead { tr {
                    th scope="col" { "File" } th scope="col" class="num" { "Line" } th scope="col" { "Id" } th scope="col" { "Rule" }
                    th scope="col" { "Action" } th scope="col" { "Field" } th scope="col" { "Detail" }
                } }
                tbody {
                    @for p in &problems.rows {
                        tr { td { (p.file) } td.num { (p.line) } td { (p.id) } td { (p.rule) } td { (p.action) } td { (p.field) } td { (p.detail) } }
                    }
                }
            } }
            nav.pages aria-label="Problem pages" {
                @if page > 0 { a href=(page_link(page - 1)) { "Previous" } }
                @if (page + 1) * PROBLEMS_PAGE < problems.matching { a href=(page_link(page + 1)) { "Next" } }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(
            &c,
            Some(&a),
            &format!("Batch {} from {}", b.id, b.source),
            body,
        ),
    )
}

pub async fn download(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath((id, name)): UrlPath<(u64, String)>,
) -> Response {
    let (_, b) = match admin_and_batch(&c, &headers, id).await {
        Ok(ab) => ab,
        Err(e) => return e.into_response(&c),
    };
    // Only the names above: never a path from the request.
    let Some(name) = REPORT_FILES
        .into_iter()
        .chain([UPLOAD])
        .find(|f| *f == name)
    else {
        return Refused::NotFound.into_response(&c);
    };
    let state_dir = c.backend().state_dir();
    let bytes = blocking(move || {
        if name == UPLOAD {
            return zip_dir(&upload_dir(&state_dir, &b));
        }
        let Some(d) = &b.report_dir else {
            return Err(Refused::NotFound);
        };
        let p = Path::new(d).join(name);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.len() <= MAX_DOWNLOAD => {
                std::fs::read(&p).map_err(|e| Refused::Internal(e.to_string()))
            }
            Ok(_) => Err(Refused::NotFound),
            Err(_) => Err(Refused::NotFound),
        }
    })
    .await;
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return e.into_response(&c),
    };
    let kind = match name.rsplit('.').next() {
        Some("csv") => "text/csv; charset=utf-8",
        Some("zip") => "application/zip",
        _ => "text/plain; charset=utf-8",
    };
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"batch-{id}-{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// The archived upload folder as one zip (its files, under their names in it).
fn zip_dir(dir: &Path) -> Result<Vec<u8>, Refused> {
    if !dir.is_dir() {
        return Err(Refused::NotFound);
    }
    let internal = |e: &dyn std::fmt::Display| Refused::Internal(e.to_string());
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut stack = vec![dir.to_path_buf()];
    let mut total = 0u64;
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| internal(&e))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p.strip_prefix(dir).map_err(|e| internal(&e))?;
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                total = total.saturating_add(len);
                if total > MAX_DOWNLOAD {
                    return Err(Refused::Internal("upload too large to send".into()));
                }
                zw.start_file(rel.to_string_lossy(), opts)
                    .map_err(|e| internal(&e))?;
                let bytes = std::fs::read(&p).map_err(|e| internal(&e))?;
                zw.write_all(&bytes).map_err(|e| internal(&e))?;
            }
        }
    }
    zw.finish()
        .map(|c| c.into_inner())
        .map_err(|e| internal(&e))
}

/// The verbs of the action URLs.
fn request_of(verb: &str, id: u64, a: &Admin) -> Option<Request> {
    let by = Some(a.actor());
    match verb {
        "approve" => Some(Request::Approve { batch: id, by }),
        "discard" => Some(Request::Discard { batch: id, by }),
        "rollback" => Some(Request::Rollback { batch: id, by }),
        _ => None,
    }
}

fn consequence(verb: &str, b: &Batch) -> String {
    let (a, ch, d) = b.totals();
    match verb {
        "approve" => format!(
            "Approving applies batch {} to the roster of {}: {a} added, {ch} changed, {d} removed. \
             The admins are emailed.",
            b.id, b.source
        ),
        "discard" => format!(
            "Discarding drops batch {}: nothing from it is applied; the vendor's next upload is \
             checked as usual. The admins are emailed.",
            b.id
        ),
        _ => format!(
            "Rolling back restores the roster of {} as it was before batch {}: its {a} added \
             records are removed, {ch} changed ones changed back and {d} removed ones restored. \
             The admins are emailed.",
            b.source, b.id
        ),
    }
}

pub async fn confirm(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath((id, verb)): UrlPath<(u64, String)>,
) -> Response {
    let (a, b) = match admin_and_batch(&c, &headers, id).await {
        Ok(ab) => ab,
        Err(e) => return e.into_response(&c),
    };
    if request_of(&verb, id, &a).is_none() {
        return Refused::NotFound.into_response(&c);
    }
    let here = c.at(&format!("batch/{id}"));
    let verbs = match verbs_of(&c, &b).await {
        Ok(v) => v,
        Err(e) => return e.into_response(&c),
    };
    if !verbs.iter().any(|(v, _)| *v == verb) {
        // Back after an approval, a stale link, another admin first: nothing to confirm.
        let title = format!("Batch {id} is {}", b.state.label());
        let body = html! {
            p.notice role="alert" {
                "Batch " (id) " of " (b.source) " is " (b.state.label()) ": it cannot be "
                (past_of(&verb)) " now."
            }
            p { a href=(here) { "Open batch " (id) } }
        };
        return respond(StatusCode::CONFLICT, layout(&c, Some(&a), &title, body));
    }
    let title = format!("{}{} batch {id}?", verb[..1].to_uppercase(), &verb[1..]);
    let body = html! {
        p.lead { (consequence(&verb, &b)) }
        form.card method="post" action=(format!("{here}/do/{verb}")) {
            input type="hidden" name="csrf" value=(a.session.csrf);
            div.actions {
                button.danger type="submit" { "Yes, " (verb) " batch " (id) }
                a.button.secondary href=(here) { "No, go back" }
            }
        }
    };
    respond(StatusCode::OK, layout(&c, Some(&a), &title, body))
}

pub async fn act(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath((id, verb)): UrlPath<(u64, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let a = match poster_of(&c, &headers, &form) {
        Ok(a) => a,
        Err(e) => return e.into_response(&c),
    };
    if let Err(e) = visible_batch(&c, &a, id).await {
        return e.into_response(&c);
    }
    let Some(req) = request_of(&verb, id, &a) else {
        return Refused::NotFound.into_response(&c);
    };
    let backend = c.backend().clone();
    let (reply, _) = match blocking(move || Ok(backend.admin(req))).await {
        Ok(r) => r,
        Err(e) => return e.into_response(&c),
    };
    tracing::info!(batch = id, admin = %a.name, verb = %verb, exit = reply.exit, "console action");
    let target = reply.batch.unwrap_or(id);
    let title = if reply.exit == 0 { "Done" } else { "Not done" };
    let body = html! {
        @if reply.exit == 0 {
            p.lead role="status" { (reply.stdout.trim()) }
        } @else {
            p.notice role="alert" { (reply.stderr.trim().trim_start_matches("rosterdrop: ")) }
        }
        p { a href=(c.at(&format!("batch/{target}"))) { "Open batch " (target) } }
    };
    let status = if reply.exit == 0 {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    respond(status, layout(&c, Some(&a), title, body))
}

/// A verb's past participle, for "it cannot be approved now".
fn past_of(verb: &str) -> &'static str {
    match verb {
        "approve" => "approved",
        "discard" => "discarded",
        "rollback" => "rolled back",
        _ => "changed",
    }
}
