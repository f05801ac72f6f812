//! The admin commands (`history`, `show`, `approve`, `discard`, `rollback`, `export`, `status`)
//! and their way into a running daemon.
//!
//! The daemon holds sled's lock on the store, so while it runs the CLI sends its request over
//! `<state_dir>/admin.sock` (a unix socket, mode 0600: only the daemon's user and root can use
//! it) and prints the reply; when no daemon runs, the CLI opens the store itself and runs the
//! same code. Protocol: one JSON [`Request`] line; the reply is one JSON [`Reply`] line followed
//! by the bytes of the files it lists (an export).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{Batch, BatchState, Store, StoreError};

/// Largest request line accepted by the daemon.
pub const MAX_REQUEST: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Request {
    History {
        source: Option<String>,
    },
    Show {
        batch: u64,
    },
    Approve {
        batch: u64,
    },
    Discard {
        batch: u64,
    },
    Rollback {
        batch: u64,
    },
    Export {
        source: String,
        format: Option<String>,
    },
    Status,
    /// Re-read accounts, keys and source settings (what SIGHUP does).
    Reload,
}

impl Request {
    /// Whether the request changes the store (and so deserves a notice to the admins).
    pub fn changes_roster(&self) -> bool {
        matches!(
            self,
            Request::Approve { .. } | Request::Discard { .. } | Request::Rollback { .. }
        )
    }
}

/// A file sent after the reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileHead {
    pub name: String,
    pub len: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The command's exit code.
    pub exit: u8,
    pub stdout: String,
    pub stderr: String,
    #[serde(default)]
    pub files: Vec<FileHead>,
    /// The batch a command changed (approve, discard, rollback).
    #[serde(default)]
    pub batch: Option<u64>,
}

impl Reply {
    fn ok(stdout: String) -> Reply {
        Reply {
            stdout,
            ..Reply::default()
        }
    }
    pub fn error(exit: u8, msg: impl std::fmt::Display) -> Reply {
        Reply {
            exit,
            stderr: format!("rosterdrop: {msg}\n"),
            ..Reply::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon's reply could not be read: {0}")]
    Protocol(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A reply and the bytes of the files it lists.
pub type Answer = (Reply, Vec<Vec<u8>>);

/// Exit code of a refused command (not held, no such batch, ...): the CLI's "usage or I/O
/// error" code, as before the daemon existed.
pub const EXIT_REFUSED: u8 = 2;
/// Exit code of `status` when no daemon runs.
pub const EXIT_NOT_RUNNING: u8 = 3;

pub fn fmt_time(secs: u64) -> String {
    let d = crate::roster::values::Date::from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{d} {:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// The first line of a batch's reason, cut to fit a table row (`show` has it whole).
fn short_reason(b: &Batch) -> String {
    let Some(r) = &b.reason else {
        return String::new();
    };
    let line = r.lines().next().unwrap_or("");
    let line = crate::roster::text::escape_line(line);
    const MAX: usize = 70;
    if line.chars().count() > MAX {
        let cut: String = line.chars().take(MAX - 3).collect();
        format!("{cut}...")
    } else {
        line.into_owned()
    }
}

fn batch_line(out: &mut String, b: &Batch) {
    let (a, u, d) = b.totals();
    let patches: u64 = b.patches.values().sum();
    let reason = match b.state {
        BatchState::Rejected | BatchState::Held | BatchState::Failed => short_reason(b),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "{:>6}  {}  {:<12} {:<10} {:<13} {:<11} {:>8} {:>8} {:>8} {:>8} {:>7}ms  {}",
        b.id,
        fmt_time(b.received_at),
        b.source,
        b.account,
        if b.format.is_empty() { "-" } else { &b.format },
        b.state.label(),
        a,
        u,
        d,
        patches,
        b.duration_ms,
        reason
    );
    // No trailing spaces on rows without a reason.
    if reason.is_empty() {
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    }
}

pub fn history_text(batches: &[Batch]) -> String {
    let mut out = format!(
        "{:>6}  {:<20}  {:<12} {:<10} {:<13} {:<11} {:>8} {:>8} {:>8} {:>8} {:>9}\n",
        "batch",
        "received",
        "source",
        "account",
        "format",
        "state",
        "adds",
        "updates",
        "deletes",
        "patches",
        "duration"
    );
    let header_end = out.trim_end().len();
    out.truncate(header_end);
    out.push_str("  reason\n");
    for b in batches {
        batch_line(&mut out, b);
    }
    out
}

pub fn show_text(b: &Batch) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "batch {}  source {}  account {}",
        b.id, b.source, b.account
    );
    let _ = writeln!(
        out,
        "received {}  took {} ms",
        fmt_time(b.received_at),
        b.duration_ms
    );
    let _ = writeln!(
        out,
        "format {} ({})  state {}",
        b.format,
        b.mode,
        b.state.label()
    );
    let _ = writeln!(
        out,
        "content sha256 {}",
        match (b.content_hash.is_empty(), b.rollback_of) {
            (false, _) => b.content_hash.as_str(),
            (true, Some(_)) => "- (rolled back to the empty roster)",
            (true, None) => "- (the upload was never read)",
        }
    );
    if let Some(r) = &b.rollback_of {
        let _ = writeln!(out, "rollback of batch {r}");
    }
    out.push_str(&crate::ingest::commit_text(b));
    if !b.patches.is_empty() {
        out.push_str("patches:\n");
        for (r, n) in &b.patches {
            let _ = writeln!(out, "  {r:<20} {n}");
        }
    }
    if let Some(d) = &b.report_dir {
        // Only what this batch really has: a rejected batch has no modified files.
        let dir = Path::new(d);
        let present: Vec<&str> = [
            "summary.txt",
            "patch-summary.csv",
            "modified/",
            "modified.zip",
        ]
        .into_iter()
        .filter(|f| dir.join(f.trim_end_matches('/')).exists())
        .collect();
        if present.is_empty() {
            let _ = writeln!(out, "reports: none were written");
        } else {
            let _ = writeln!(out, "reports: {d}/ ({})", present.join(", "));
        }
    }
    out
}

/// Runs a request against an open store. `scratch` is a folder the export may use.
/// `status` here answers for a store that no daemon holds.
pub fn execute(store: &Store, req: &Request, scratch: &Path) -> Answer {
    match execute_inner(store, req, scratch) {
        Ok(r) => r,
        Err(AdminError::Store(e @ (StoreError::Refused(_) | StoreError::NoBatch(_)))) => {
            (Reply::error(EXIT_REFUSED, e), vec![])
        }
        Err(e) => (Reply::error(2, e), vec![]),
    }
}

fn execute_inner(store: &Store, req: &Request, scratch: &Path) -> Result<Answer, AdminError> {
    let one = |r: Reply| Ok((r, vec![]));
    match req {
        Request::History { source } => {
            one(Reply::ok(history_text(&store.history(source.as_deref())?)))
        }
        Request::Show { batch } => one(Reply::ok(show_text(&store.batch(*batch)?))),
        Request::Approve { batch } => {
            let b = store.approve(*batch)?;
            one(Reply {
                batch: Some(b.id),
                ..Reply::ok(crate::ingest::commit_text(&b))
            })
        }
        Request::Discard { batch } => {
            let b = store.discard(*batch)?;
            one(Reply {
                batch: Some(b.id),
                ..Reply::ok(format!("batch {} discarded\n", b.id))
            })
        }
        Request::Rollback { batch } => {
            let b = store.rollback(*batch)?;
            one(Reply {
                batch: Some(b.id),
                ..Reply::ok(crate::ingest::commit_text(&b))
            })
        }
        Request::Export { source, format } => export(store, source, format.as_deref(), scratch),
        Request::Status => {
            let mut out = String::from("daemon: not running\n");
            out.push_str(&last_batches_text(store)?);
            one(Reply {
                exit: EXIT_NOT_RUNNING,
                ..Reply::ok(out)
            })
        }
        Request::Reload => one(Reply::error(
            EXIT_NOT_RUNNING,
            "no daemon is running; nothing to reload",
        )),
    }
}

/// The last batch of every source, one line each.
pub fn last_batches_text(store: &Store) -> Result<String, AdminError> {
    let mut seen = std::collections::BTreeMap::new();
    for b in store.history(None)? {
        seen.entry(b.source.clone()).or_insert(b);
    }
    let mut out = String::new();
    if seen.is_empty() {
        out.push_str("no batches yet\n");
    }
    for b in seen.values() {
        let (a, u, d) = b.totals();
        let _ = writeln!(
            out,
            "source {:<16} last batch {:>6} {:<11} {}  +{a} ~{u} -{d}",
            b.source,
            b.id,
            b.state.label(),
            fmt_time(b.received_at)
        );
    }
    Ok(out)
}

fn export(
    store: &Store,
    source: &str,
    format: Option<&str>,
    scratch: &Path,
) -> Result<Answer, AdminError> {
    if let Some(want) = format {
        if !matches!(want, "apple" | "oneroster") {
            return Ok((
                Reply::error(2, format!("unknown format `{want}` (apple or oneroster)")),
                vec![],
            ));
        }
        if let Some(have) = store.format_of(source)? {
            if (want == "apple") != (have == crate::roster::schema::Format::Apple) {
                return Ok((
                    Reply::error(
                        EXIT_REFUSED,
                        format!(
                            "source `{source}` keeps a {} roster; exporting it as {want} is not supported yet",
                            have.label()
                        ),
                    ),
                    vec![],
                ));
            }
        }
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| AdminError::Io { path: p, source }
    };
    let dir = scratch.join(format!(
        "export-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| {
        let f = store.export(source, &dir)?;
        let mut heads = Vec::new();
        let mut bodies = Vec::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for p in names {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            heads.push(FileHead {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                len: bytes.len() as u64,
            });
            bodies.push(bytes);
        }
        Ok((
            Reply {
                files: heads,
                ..Reply::ok(format!("exported {} roster of `{source}`", f.label()))
            },
            bodies,
        ))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Writes the files of a reply into `out` (created if missing).
pub fn write_files(out: &Path, reply: &Reply, bodies: &[Vec<u8>]) -> Result<(), AdminError> {
    std::fs::create_dir_all(out).map_err(|source| AdminError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    for (h, b) in reply.files.iter().zip(bodies) {
        // Names come from the daemon, but never let one climb out of `out`.
        let name = Path::new(&h.name)
            .file_name()
            .ok_or_else(|| AdminError::Protocol(format!("bad file name `{}`", h.name)))?;
        let p = out.join(name);
        std::fs::write(&p, b).map_err(|source| AdminError::Io { path: p, source })?;
    }
    Ok(())
}

/// Path of the admin socket in a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("admin.sock")
}

/// Sends `req` to the daemon listening on `sock`. `Ok(None)`: no daemon listens there.
pub fn call_daemon(sock: &Path, req: &Request) -> Result<Option<Answer>, AdminError> {
    let io = |source| AdminError::Io {
        path: sock.to_path_buf(),
        source,
    };
    let mut s = match UnixStream::connect(sock) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(io(e)),
    };
    // Approving a large batch writes a lot; exports send a whole roster.
    s.set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| AdminError::Protocol(e.to_string()))?;
    line.push(b'\n');
    s.write_all(&line).map_err(io)?;
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).map_err(io)?;
    let reply: Reply =
        serde_json::from_str(&head).map_err(|e| AdminError::Protocol(e.to_string()))?;
    let mut bodies = Vec::new();
    for f in &reply.files {
        let mut b = Vec::with_capacity(f.len.min(1 << 30) as usize);
        (&mut r).take(f.len).read_to_end(&mut b).map_err(io)?;
        if b.len() as u64 != f.len {
            return Err(AdminError::Protocol(format!("{} cut short", f.name)));
        }
        bodies.push(b);
    }
    Ok(Some((reply, bodies)))
}

/// Runs `req` through the daemon when one listens on the state directory's socket, else
/// against the store opened directly. While a daemon starts or stops, sled's lock and the
/// socket may both be briefly unavailable: this retries for up to `patience`.
pub fn run(state_dir: &Path, req: &Request, patience: Duration) -> Result<Answer, AdminError> {
    let sock = socket_path(state_dir);
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(r) = call_daemon(&sock, req)? {
            return Ok(r);
        }
        match Store::open(&state_dir.join("db")) {
            Ok(store) => {
                fail_interrupted(&store, state_dir);
                let scratch = state_dir.join("tmp");
                let _ = std::fs::create_dir_all(&scratch);
                let (mut reply, files) = execute(&store, req, &scratch);
                let changes = matches!(
                    req,
                    Request::Approve { .. } | Request::Discard { .. } | Request::Rollback { .. }
                );
                if changes && reply.exit == 0 {
                    // The mail comes from the daemon, which holds the queue and the uploads'
                    // names; without it the admin must not think the others were told.
                    reply.stdout.push_str(
                        "  no daemon is running, so no email was sent to the source's admins\n",
                    );
                }
                return Ok((reply, files));
            }
            Err(StoreError::Locked { .. }) => {
                if std::time::Instant::now() >= deadline {
                    return Err(AdminError::Protocol(format!(
                        "the store is locked by another process, and no daemon answers on {}",
                        sock.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Marks failed the batches a process stopped in (an `ingest` killed with -9, say): with the
/// store's lock held by this process and no daemon running, a batch that is still `received` or
/// `processing` and has no claim in the spool can never finish. (A daemon's claims stay in the
/// spool and are resumed by its next start.)
pub fn fail_interrupted(store: &Store, state_dir: &Path) {
    let Ok(history) = store.history(None) else {
        return;
    };
    for mut b in history {
        if is_final(b.state) {
            continue;
        }
        let claim = crate::daemon::intake::Claim::dir(&state_dir.join("spool"), &b.source, b.id);
        if claim.exists() {
            continue;
        }
        b.state = BatchState::Failed;
        b.reason = Some(
            "interrupted: the process checking it stopped before it finished; nothing was \
             applied (upload it again)"
                .into(),
        );
        match store.record(&b) {
            Ok(()) => tracing::warn!(batch = b.id, "an interrupted batch was marked failed"),
            Err(e) => tracing::warn!(batch = b.id, error = %e, "interrupted batch not marked"),
        }
    }
}

/// Whether a batch state is final: processing is over.
pub fn is_final(s: BatchState) -> bool {
    !matches!(s, BatchState::Received | BatchState::Processing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json_lines() {
        for r in [
            Request::History { source: None },
            Request::Approve { batch: 4 },
            Request::Export {
                source: "a".into(),
                format: Some("apple".into()),
            },
            Request::Status,
        ] {
            let s = serde_json::to_string(&r).unwrap();
            assert!(!s.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        }
        assert!(serde_json::from_str::<Request>(r#"{"verb":"drop-tables"}"#).is_err());
    }

    #[test]
    fn without_a_daemon_commands_use_the_store() {
        let d = tempfile::tempdir().unwrap();
        let (r, _) = run(d.path(), &Request::Status, Duration::from_secs(1)).unwrap();
        assert_eq!(r.exit, EXIT_NOT_RUNNING);
        assert!(r.stdout.contains("not running"));
        let (r, _) = run(d.path(), &Request::Approve { batch: 9 }, Duration::ZERO).unwrap();
        assert_eq!(r.exit, EXIT_REFUSED);
        assert!(r.stderr.contains('9'), "{}", r.stderr);
    }
}
