//! Where `tracing` output goes: the journal when systemd connected stderr to it, plain text on
//! stderr otherwise.
//!
//! Under systemd the events go to journald in its native protocol, so that each field is a
//! journal field one can filter on. An event inside the daemon's `batch` span,
//! `info_span!("batch", id = 42, source = "maple-valley")`, arrives as
//! `MESSAGE=...`, `PRIORITY=6`, `SPAN_NAME=batch`, `F_ID=42`, `F_SOURCE=maple-valley` plus the
//! event's own fields (`F_` + upper-cased name), `TARGET`, `CODE_FILE`, `CODE_LINE` and
//! `SYSLOG_IDENTIFIER=rosterdrop`; so `journalctl -u rosterdrop F_SOURCE=maple-valley` shows one
//! source's batches. Levels map to syslog priorities: error 3, warn 4, info 6, debug and
//! trace 7.
//!
//! `RUST_LOG` (an `EnvFilter` directive such as `info,rosterdrop::sftp=debug`) overrides the
//! level given to [`init`].

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: journald when [`stderr_is_journal`], otherwise
/// text on stderr (with colours only on a terminal). `default_level` (`"info"` for the daemon,
/// `"warn"` for commands) applies unless `RUST_LOG` is set. A second call, or a call after
/// another subscriber was installed, changes nothing.
pub fn init(default_level: &str) {
    let (filter, bad_rust_log) = filter(std::env::var("RUST_LOG").ok().as_deref(), default_level);
    let mut journal_error = None;
    let journal = if stderr_is_journal() {
        tracing_journald::layer()
            .map_err(|e| journal_error = Some(e))
            .ok()
    } else {
        None
    };
    let installed = match journal {
        Some(journal) => tracing_subscriber::registry()
            .with(filter)
            .with(journal.with_priority_mappings(priorities()))
            .try_init()
            .is_ok(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            // An event stderr refuses (its reader gone: EPIPE; a full disk: ENOSPC) is dropped.
            // Left on, tracing-subscriber reports it with `eprintln!`, which panics when stderr
            // fails, in whichever thread logged: SFTP sessions and batches died with it.
            .log_internal_errors(false)
            .try_init()
            .is_ok(),
    };
    if !installed {
        return;
    }
    if let Some(e) = journal_error {
        tracing::warn!(error = %e, "the journal's socket cannot be reached; logging to stderr");
    }
    if let Some(e) = bad_rust_log {
        tracing::warn!(error = %e, level = default_level, "RUST_LOG ignored");
    }
}

/// Whether stderr is a stream to journald: systemd sets `$JOURNAL_STREAM` to the device and
/// inode (`DEV:INO`) of the stream it connected, and the variable alone is not enough because a
/// child whose stderr was redirected inherits it.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some(value) = value.to_str() else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => journal_stream_is(value, m.dev(), m.ino()),
        Err(_) => false,
    }
}

fn journal_stream_is(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// The filter from `RUST_LOG` when it parses, else `default_level`, with the parse error.
fn filter(
    rust_log: Option<&str>,
    default_level: &str,
) -> (EnvFilter, Option<tracing_subscriber::filter::ParseError>) {
    match rust_log.filter(|s| !s.trim().is_empty()) {
        Some(directives) => match EnvFilter::try_new(directives) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(default_level), Some(e)),
        },
        None => (EnvFilter::new(default_level), None),
    }
}

fn priorities() -> PriorityMappings {
    let mut p = PriorityMappings::new();
    p.error = Priority::Error;
    p.warn = Priority::Warning;
    p.info = Priority::Informational;
    p.debug = Priority::Debug;
    p.trace = Priority::Debug;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_match_device_and_inode() {
        assert!(journal_stream_is("8:1234", 8, 1234));
        assert!(journal_stream_is("64769:98765\n", 64769, 98765));
        assert!(!journal_stream_is("8:1234", 8, 1235));
        assert!(!journal_stream_is("9:1234", 8, 1234));
        assert!(!journal_stream_is("8", 8, 1234));
        assert!(!journal_stream_is("", 8, 1234));
        assert!(!journal_stream_is("x:y", 8, 1234));
    }

    #[test]
    fn rust_log_overrides_the_default_level() {
        let (f, err) = filter(Some("debug,rosterdrop::sftp=trace"), "info");
        assert!(err.is_none());
        let mut directives: Vec<String> = f.to_string().split(',').map(String::from).collect();
        directives.sort();
        assert_eq!(directives, ["debug", "rosterdrop::sftp=trace"]);
        let (f, err) = filter(None, "warn");
        assert!(err.is_none());
        assert_eq!(f.to_string(), "warn");
        let (f, err) = filter(Some("  "), "info");
        assert!(err.is_none());
        assert_eq!(f.to_string(), "info");
        let (f, err) = filter(Some("rosterdrop=notalevel"), "info");
        assert!(err.is_some());
        assert_eq!(f.to_string(), "info");
    }
}
