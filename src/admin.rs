//! The admin commands (`history`, `show`, `approve`, `discard`, `rollback`, `export`, `status`)
//! and their way into a running daemon.
//!
//! The daemon holds sled's lock on the store, so while it runs the CLI sends its request over
//! `<state_dir>/admin.sock` (a unix socket, mode 0600: only the daemon's user and root can use
//! it) and prints the reply; when no daemon runs, the CLI opens the store itself and runs the
//! same code. Protocol: one JSON [`Request`] line; the reply is one JSON [`Reply`] line followed
//! by the bytes of the files it lists (an export). An export's files go from the disk to the
//! socket and from the socket to the disk a buffer at a time: a roster is never held whole.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsutil::{at as io, IoError};
use crate::paths::StateDir;
use crate::store::views::{history_text, last_batches_text, show_text};
use crate::store::{Store, StoreError};

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
        /// Who asks (recorded on the batch); absent from an older CLI.
        #[serde(default)]
        by: Option<Actor>,
    },
    Discard {
        batch: u64,
        /// Who asks (recorded on the batch); absent from an older CLI.
        #[serde(default)]
        by: Option<Actor>,
    },
    Rollback {
        batch: u64,
        /// Who asks (recorded on the batch); absent from an older CLI.
        #[serde(default)]
        by: Option<Actor>,
    },
    Export {
        source: String,
        format: Option<String>,
        /// The source's `[sources.X.apple]` settings (an Apple source exported to OneRoster
        /// needs them); absent: the defaults (the source's name for the district).
        #[serde(default)]
        apple: Option<crate::roster::model::AppleSettings>,
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

/// Who sends an approve, discard or rollback, and from where: the Unix user (or `--as NAME`)
/// of the CLI, the admin user of the web console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub via: crate::store::Via,
}

impl Actor {
    /// The decision recorded on the batch, made now.
    fn decision(by: &Option<Actor>) -> Option<crate::store::Decision> {
        by.as_ref().map(|a| crate::store::Decision {
            what: String::new(),
            by: a.name.clone(),
            via: a.via,
            at: crate::clock::now_secs(),
        })
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
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("the daemon's reply could not be read: {0}")]
    Protocol(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--out` is not where an export may go.
    #[error("{0}")]
    Out(String),
}

/// Where an export's files go. `--out` must be a new or an empty directory, and not a symbolic
/// link: an outside probe exported into a folder of other files (same-named ones overwritten,
/// an Apple and a OneRoster export mixed into one bundle that `check` took for OneRoster), into
/// a report folder of the store, and through a link into `/etc`. The files are written into a
/// folder of their own beside it, which is renamed to `--out` once every file is whole: a full
/// disk left a bundle with some files whole and one empty.
struct ExportDir {
    out: PathBuf,
    partial: PathBuf,
}

impl ExportDir {
    fn prepare(out: &Path) -> Result<ExportDir, AdminError> {
        let refuse = |why: &str| {
            AdminError::Out(format!(
                "{}: {why}; give --out a new or an empty folder",
                out.display()
            ))
        };
        match std::fs::symlink_metadata(out) {
            Ok(m) if m.file_type().is_symlink() => return Err(refuse("is a symbolic link")),
            Ok(m) if !m.is_dir() => return Err(refuse("is a file")),
            Ok(_) => {
                let n = std::fs::read_dir(out).map_err(io(out))?.count();
                if n > 0 {
                    return Err(refuse(&format!("is not empty ({n} entries)")));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(out)(e).into()),
        }
        let name = out
            .file_name()
            .ok_or_else(|| refuse("names no folder"))?
            .to_string_lossy()
            .into_owned();
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir(&partial).map_err(io(&partial))?;
        Ok(ExportDir {
            out: out.to_path_buf(),
            partial,
        })
    }

    /// Puts the whole export at `--out` (an empty folder there is replaced).
    fn finish(self) -> Result<(), AdminError> {
        std::fs::rename(&self.partial, &self.out).map_err(io(&self.out))?;
        if let Some(parent) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = crate::fsutil::sync_dir(parent);
        }
        Ok(())
    }
}

impl Drop for ExportDir {
    fn drop(&mut self) {
        // Still there when the export failed: nothing of it is left.
        let _ = std::fs::remove_dir_all(&self.partial);
    }
}

/// A reply and the files it lists.
pub type Answer = (Reply, Files);

/// The files of an export, in a scratch folder of their own that goes when this is dropped
/// (in the daemon, once they are sent; in the CLI, once they are moved to `--out`).
#[derive(Debug, Default)]
pub struct Files {
    dir: Option<PathBuf>,
    /// In the order of the reply's [`FileHead`]s.
    paths: Vec<PathBuf>,
}

impl Files {
    /// No files: every reply but an export's.
    pub fn none() -> Files {
        Files::default()
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Moves the files into `out` (created if missing), each under its own name; copied
    /// when `out` is on another file system.
    pub fn move_into(&self, out: &Path) -> Result<(), AdminError> {
        std::fs::create_dir_all(out).map_err(io(out))?;
        for p in &self.paths {
            let Some(name) = p.file_name() else { continue };
            let to = out.join(name);
            if std::fs::rename(p, &to).is_err() {
                std::fs::copy(p, &to).map_err(io(&to))?;
            }
        }
        Ok(())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Exit code of a refused command (not held, no such batch, ...): the CLI's "usage or I/O
/// error" code, as before the daemon existed.
pub const EXIT_REFUSED: u8 = 2;
/// Exit code of `status` when no daemon runs.
pub const EXIT_NOT_RUNNING: u8 = 3;

/// Runs a request against an open store. `scratch` is a folder the export may use.
/// `status` here answers for a store that no daemon holds.
pub fn execute(store: &Store, req: &Request, scratch: &Path) -> Answer {
    match execute_inner(store, req, scratch) {
        Ok(r) => r,
        Err(AdminError::Store(e @ (StoreError::Refused(_) | StoreError::NoBatch(_)))) => {
            (Reply::error(EXIT_REFUSED, e), Files::none())
        }
        Err(e) => (Reply::error(2, e), Files::none()),
    }
}

fn execute_inner(store: &Store, req: &Request, scratch: &Path) -> Result<Answer, AdminError> {
    let one = |r: Reply| Ok((r, Files::none()));
    match req {
        Request::History { source } => {
            one(Reply::ok(history_text(&store.history(source.as_deref())?)))
        }
        Request::Show { batch } => one(Reply::ok(show_text(&store.batch(*batch)?))),
        Request::Approve { batch, by } => {
            let b = store.approve_as(*batch, Actor::decision(by))?;
            one(Reply {
                batch: Some(b.id),
                ..Reply::ok(crate::store::views::commit_text(&b))
            })
        }
        Request::Discard { batch, by } => {
            let b = store.discard_as(*batch, Actor::decision(by))?;
            one(Reply {
                batch: Some(b.id),
                ..Reply::ok(format!("batch {} discarded\n", b.id))
            })
        }
        Request::Rollback { batch, by } => {
            let b = store.rollback_as(*batch, Actor::decision(by))?;
            one(Reply {
                batch: Some(b.id),
                ..Reply::ok(crate::store::views::commit_text(&b))
            })
        }
        Request::Export {
            source,
            format,
            apple,
        } => export(store, source, format.as_deref(), apple.as_ref(), scratch),
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

/// `export`: the source's roster as a bundle. `format`: `apple`, `oneroster-1.1`,
/// `oneroster-1.2`, or `oneroster` (the source's own OneRoster version); none: the source's own
/// format. The source's own format is written losslessly; another is converted through the one
/// roster model and what it could not hold is listed in the reply.
fn export(
    store: &Store,
    source: &str,
    format: Option<&str>,
    apple: Option<&crate::roster::model::AppleSettings>,
    scratch: &Path,
) -> Result<Answer, AdminError> {
    use crate::roster::schema::Format;
    let have = store.format_of(source)?;
    let target = match (format, have) {
        (_, None) => {
            return Err(StoreError::Refused(format!("source `{source}` has no roster yet")).into())
        }
        (None, Some(f)) => f,
        (Some("apple"), _) => Format::Apple,
        (Some("oneroster-1.1"), _) => Format::OneRoster11,
        (Some("oneroster-1.2"), _) => Format::OneRoster12,
        (Some("oneroster"), Some(f)) if f.is_oneroster() => f,
        (Some("oneroster"), Some(_)) => {
            return Ok((
                Reply::error(
                    EXIT_REFUSED,
                    format!(
                        "source `{source}` keeps an Apple roster, which has no OneRoster \
                         version of its own: say --format oneroster-1.1 or oneroster-1.2"
                    ),
                ),
                Files::none(),
            ))
        }
        (Some(want), _) => {
            return Ok((
                Reply::error(
                    2,
                    format!(
                        "unknown format `{want}` (apple, oneroster-1.1, oneroster-1.2, or \
                         oneroster: the source's own OneRoster version)"
                    ),
                ),
                Files::none(),
            ))
        }
    };
    let defaults = crate::roster::model::AppleSettings {
        district_id: source.to_string(),
        district_name: source.to_string(),
        school_year: None,
    };
    let apple = apple.unwrap_or(&defaults);
    let dir = scratch.join(format!(
        "export-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    // Removes the folder on every way out, and after the files are sent or moved.
    let mut files = Files {
        dir: Some(dir.clone()),
        paths: Vec::new(),
    };
    let done = store.export_as(source, target, apple, &dir)?;
    let mut heads = Vec::new();
    files.paths = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.paths.sort();
    for p in &files.paths {
        let len = std::fs::metadata(p).map_err(io(p))?.len();
        heads.push(FileHead {
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            len,
        });
    }
    let mut text = if done.format == done.source_format {
        format!("exported {} roster of `{source}`", done.format.label())
    } else {
        format!(
            "exported {} roster of `{source}` as {}",
            done.source_format.label(),
            done.format.label()
        )
    };
    if !done.lost.is_empty() {
        text.push_str(&format!(
            "\nleft out ({} has no place for them):",
            done.format.display_name()
        ));
        for l in &done.lost {
            text.push_str(&format!("\n  {l}"));
        }
        text.push('\n');
    }
    Ok((
        Reply {
            files: heads,
            ..Reply::ok(text)
        },
        files,
    ))
}

/// Path of the admin socket in a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    StateDir::at(state_dir).admin_socket()
}

/// Sends `req` to the daemon listening on `sock`. `Ok(None)`: no daemon listens there. The
/// files of the reply (an export's) are written into `out`, as they arrive.
pub fn call_daemon(
    sock: &Path,
    req: &Request,
    out: Option<&Path>,
) -> Result<Option<Reply>, AdminError> {
    let io = |source| io(sock)(source);
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
        Err(e) => return Err(io(e).into()),
    };
    // Approving a large batch writes a lot; exports send a whole roster.
    s.set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| AdminError::Protocol(e.to_string()))?;
    line.push(b'\n');
    s.write_all(&line).map_err(io)?;
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut head = String::new();
    r.read_line(&mut head).map_err(io)?;
    let reply: Reply =
        serde_json::from_str(&head).map_err(|e| AdminError::Protocol(e.to_string()))?;
    if reply.files.is_empty() {
        return Ok(Some(reply));
    }
    let Some(out) = out else {
        return Err(AdminError::Protocol(
            "the daemon sent files nobody asked for".into(),
        ));
    };
    std::fs::create_dir_all(out).map_err(crate::fsutil::at(out))?;
    for f in &reply.files {
        // Names come from the daemon, but never let one climb out of `out`.
        let name = Path::new(&f.name)
            .file_name()
            .ok_or_else(|| AdminError::Protocol(format!("bad file name `{}`", f.name)))?;
        let p = out.join(name);
        let file = std::fs::File::create(&p).map_err(crate::fsutil::at(&p))?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
        let n = std::io::copy(&mut (&mut r).take(f.len), &mut file).map_err(io)?;
        file.flush().map_err(crate::fsutil::at(&p))?;
        if n != f.len {
            return Err(AdminError::Protocol(format!("{} cut short", f.name)));
        }
    }
    Ok(Some(reply))
}

/// Runs `req` through the daemon when one listens on the state directory's socket, else
/// against the store opened directly. While a daemon starts or stops, sled's lock and the
/// socket may both be briefly unavailable: this retries for up to `patience`. The files of the
/// reply (an export's) end up in `out`.
pub fn run(
    state_dir: &Path,
    req: &Request,
    patience: Duration,
    out: Option<&Path>,
) -> Result<Reply, AdminError> {
    let sock = socket_path(state_dir);
    let locked = |e: &AdminError| matches!(e, AdminError::Store(StoreError::Locked { .. }));
    let target = out.map(ExportDir::prepare).transpose()?;
    let out = target.as_ref().map(|t| t.partial.as_path());
    let answer = crate::clock::retry(patience, locked, || {
        if let Some(r) = call_daemon(&sock, req, out)? {
            return Ok(r);
        }
        let store = Store::open(&StateDir::at(state_dir).db())?;
        fail_interrupted(&store, state_dir);
        let scratch = StateDir::at(state_dir).tmp();
        let _ = std::fs::create_dir_all(&scratch);
        let (mut reply, files) = execute(&store, req, &scratch);
        let changes = matches!(
            req,
            Request::Approve { .. } | Request::Discard { .. } | Request::Rollback { .. }
        );
        // Only a command that changed the roster closes the store with a compaction (a
        // reading command's output stays what it reads).
        match changes
            .then(|| store.close())
            .transpose()
            .map(Option::flatten)
        {
            Ok(Some(c)) => reply
                .stdout
                .push_str(&format!("{}\n", crate::store::views::compacted_text(&c))),
            Ok(None) => {}
            Err(e) => reply
                .stdout
                .push_str(&format!("  warning: the store was not compacted: {e}\n")),
        }
        if changes && reply.exit == 0 {
            // The mail comes from the daemon, which holds the queue and the uploads' names;
            // without it the admin must not think the others were told.
            reply
                .stdout
                .push_str("  no daemon is running, so no email was sent to the source's admins\n");
        }
        if let (Some(out), false) = (out, files.paths().is_empty()) {
            files.move_into(out)?;
        }
        Ok(reply)
    });
    match answer {
        Err(e) if locked(&e) => Err(AdminError::Protocol(format!(
            "the store is locked by another process, and no daemon answers on {}",
            sock.display()
        ))),
        Ok(reply) => {
            // An export that wrote its files is put in place; a refused one leaves nothing.
            if let Some(t) = target {
                let wrote = std::fs::read_dir(&t.partial).is_ok_and(|mut d| d.next().is_some());
                if reply.exit == 0 && wrote {
                    t.finish()?;
                }
            }
            Ok(reply)
        }
        r => r,
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
    for b in history {
        if b.state.is_final() {
            continue;
        }
        let claim =
            crate::daemon::spool::Claim::dir(&StateDir::at(state_dir).spool(), &b.source, b.id);
        if claim.exists() {
            continue;
        }
        let reason = "interrupted: the process checking it stopped before it finished; nothing \
                      was applied (upload it again)";
        match store.fail(&b.arrival(), reason.into()) {
            Ok(_) => tracing::warn!(batch = b.id, "an interrupted batch was marked failed"),
            Err(e) => tracing::warn!(batch = b.id, error = %e, "interrupted batch not marked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json_lines() {
        for r in [
            Request::History { source: None },
            Request::Approve { batch: 4, by: None },
            Request::Export {
                source: "a".into(),
                format: Some("oneroster-1.2".into()),
                apple: Some(crate::roster::model::AppleSettings {
                    district_id: "d".into(),
                    district_name: "District".into(),
                    school_year: Some(crate::roster::model::SchoolYear {
                        sourced_id: "y".into(),
                        title: "2026-2027".into(),
                        start_date: "2026-08-17".into(),
                        end_date: "2027-06-11".into(),
                        year: "2027".into(),
                    }),
                }),
            },
            Request::Export {
                source: "a".into(),
                format: None,
                apple: None,
            },
            Request::Status,
        ] {
            let s = serde_json::to_string(&r).unwrap();
            assert!(!s.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        }
        assert!(serde_json::from_str::<Request>(r#"{"verb":"drop-tables"}"#).is_err());
        // A request without the apple settings (an older client) still reads.
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"verb":"export","source":"a","format":null}"#)
                .unwrap(),
            Request::Export {
                source: "a".into(),
                format: None,
                apple: None
            }
        );
    }

    /// An export's files wait in a scratch folder of their own, listed with their lengths,
    /// until they are sent or moved; the folder goes with them, and so on a refusal.
    #[test]
    fn an_export_leaves_nothing_in_the_scratch_folder() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("db")).unwrap();
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-csv/apple");
        let sc = crate::config::SourceConfig::default();
        let reports = d.path().join("reports");
        crate::ingest::ingest(&store, &reports, "north", &sc, &sample, "sis").unwrap();
        let scratch = d.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let export = |format: &str| Request::Export {
            source: "north".into(),
            format: Some(format.into()),
            apple: None,
        };
        let (reply, files) = execute(&store, &export("apple"), &scratch);
        assert_eq!(reply.exit, 0, "{}", reply.stderr);
        let names: Vec<&str> = reply.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), 6, "{names:?}");
        assert!(names.contains(&"students.csv"));
        for (p, h) in files.paths().iter().zip(&reply.files) {
            assert_eq!(std::fs::metadata(p).unwrap().len(), h.len);
        }
        let out = d.path().join("out");
        files.move_into(&out).unwrap();
        drop(files);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
        let direct = d.path().join("direct");
        store.export("north", &direct).unwrap();
        for h in &reply.files {
            assert_eq!(
                std::fs::read(out.join(&h.name)).unwrap(),
                std::fs::read(direct.join(&h.name)).unwrap(),
                "{}",
                h.name
            );
        }
        // An Apple roster without a school year cannot become OneRoster: refused, and the
        // folder made for it is gone.
        let (reply, files) = execute(&store, &export("oneroster-1.2"), &scratch);
        assert_eq!(reply.exit, EXIT_REFUSED, "{}", reply.stdout);
        assert!(files.paths().is_empty());
        drop(files);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }

    #[test]
    fn without_a_daemon_commands_use_the_store() {
        let d = tempfile::tempdir().unwrap();
        let r = run(d.path(), &Request::Status, Duration::from_secs(1), None).unwrap();
        assert_eq!(r.exit, EXIT_NOT_RUNNING);
        assert!(r.stdout.contains("not running"));
        // sled lets go of the first open's lock from its own thread, a moment after the drop:
        // the second command waits for it as a real one would.
        let r = run(
            d.path(),
            &Request::Approve { batch: 9, by: None },
            Duration::from_secs(10),
            None,
        )
        .unwrap();
        assert_eq!(r.exit, EXIT_REFUSED);
        assert!(r.stderr.contains('9'), "{}", r.stderr);
    }
}
