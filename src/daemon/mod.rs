//! `rosterdrop serve`: the SFTP drop-box, intake, pipeline workers, mail and the admin socket
//! in one tokio runtime.
//!
//! ```text
//! SFTP uploads ─┐                       per source, one at a time        after each batch
//! file events ──┴─> intake ─> spool/ ─> worker ─> pipeline (blocking) ─> mail queue, archive/
//!                   (claims)            (sources in parallel, bounded)
//! ```
//!
//! Everything a batch needs survives a crash: a claim is a folder in `spool/` with its
//! `batch.json`, the store records it as `received`, and on start every claim left in the spool
//! is resumed in batch order. A batch whose commit landed before the crash is not committed
//! again (its record is final); its mail and archiving are finished.

mod admin_socket;
mod api;
pub mod intake;
pub mod logging;
pub mod mail;
pub mod memory;
pub mod spool;
mod state;
pub mod systemd;
mod watcher;
mod worker;

use admin_socket::admin_loop;
use state::{lock, ReloadError, Shared};
use watcher::intake_loop;
use worker::Job;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::admin::{self, Reply, Request};
use crate::config::{Config, ConfigError, DEFAULT_RETENTION_DAYS};
use crate::daemon::mail::{MailError, Mailer};
use crate::fsutil::{at as io_err, move_path, write_atomic, IoError};
use crate::ingest;
use crate::paths::StateDir;
use crate::sftp::accounts::{AccountError, Accounts};
use crate::sftp::{Server, SftpConfig, SftpError, UploadEvent};
use crate::store::{Batch, BatchState, Store, StoreError};
use intake::{IntakeError, Rules, Tracker};
use spool::Claim;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sftp(#[from] SftpError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("watching {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// An SFTP account created on first start: (account, source, password).
pub type InitialAccount = (String, String, String);

/// Creates the accounts named by sources' `initial_account` when no accounts file exists yet.
fn bootstrap_accounts(cfg: &Config, path: &Path) -> Result<Vec<InitialAccount>, DaemonError> {
    if path.exists() {
        return Ok(vec![]);
    }
    let mut accounts = Accounts::default();
    let mut made = Vec::new();
    for (src, sc) in &cfg.sources {
        if let Some(name) = &sc.initial_account {
            let pw = accounts.add(name, src)?;
            made.push((name.clone(), src.clone(), pw));
        }
    }
    if !made.is_empty() {
        accounts.save(path)?;
    }
    Ok(made)
}

/// Removes what writes that a killed process cut short left in the state directory's own
/// folders (the served rosters' state, mail records, upload names, spool claims): at start,
/// holding the daemon's lock, so no write of this daemon is under way.
fn remove_stale_temporaries(dirs: &StateDir<'_>) {
    use crate::fsutil::remove_stale_temporaries as remove;
    let age = Duration::from_secs(600);
    let mail = dirs.mail();
    let mut folders = vec![
        dirs.root().to_path_buf(),
        dirs.api(),
        mail.join("sent"),
        mail.join("failed"),
        dirs.upload_names(),
    ];
    // spool/<source>/<batch>/
    if let Ok(sources) = std::fs::read_dir(dirs.spool()) {
        for s in sources.flatten() {
            if let Ok(batches) = std::fs::read_dir(s.path()) {
                folders.extend(batches.flatten().map(|b| b.path()));
            }
        }
    }
    let removed: usize = folders.iter().map(|f| remove(f, age)).sum();
    if removed > 0 {
        tracing::info!(
            files = removed,
            "temporary files of interrupted writes removed"
        );
    }
}

/// How often the daemon checks that the store answers.
const STORE_PROBE: Duration = Duration::from_secs(5);
/// How long the store may take to answer before the daemon stops feeding systemd's watchdog.
const STORE_PATIENCE_SECS: u64 = 90;

fn open_store_patiently(dir: &Path) -> Result<Store, StoreError> {
    // An admin command that opened the store directly: it will be quick.
    let locked = |e: &StoreError| matches!(e, StoreError::Locked { .. });
    let store = crate::clock::retry(Duration::from_secs(30), locked, || Store::open(dir))?;
    // Each open (at start, and each reopen when idle after a batch, `reopen_store_if_idle`:
    // a closed sled database forgets the blob files it was to remove, as a process does) is a
    // chance to give back what sled left behind, when the store has grown (`Store::close`).
    // It holds up the API and console for as long as it takes (about 0.3 s at 200,000
    // students, every few nights). A failed compaction leaves the store as it was, and the
    // daemon goes on with it.
    if !store.has_grown().unwrap_or(false) {
        return Ok(store);
    }
    match store.compact_now() {
        Ok(c) => tracing::info!(before = c.before, after = c.after, "store compacted"),
        Err(e) => tracing::warn!(error = %e, "the store could not be compacted"),
    }
    crate::clock::retry(Duration::from_secs(30), locked, || Store::open(dir))
}

/// A daemon already serving this state directory answers on its admin socket: say so at once,
/// with its pid, rather than waiting for the store's lock.
fn refuse_second_daemon(state_dir: &Path) -> Result<(), DaemonError> {
    let sock = admin::socket_path(state_dir);
    let Ok(stream) = std::os::unix::net::UnixStream::connect(&sock) else {
        return Ok(());
    };
    let pid = rustix::net::sockopt::socket_peercred(&stream)
        .map(|c| format!(" (pid {})", c.pid.as_raw_nonzero()))
        .unwrap_or_default();
    Err(DaemonError::Other(format!(
        "a rosterdrop daemon is already running on {}{pid}: it answers on {}; stop it first \
         (systemctl stop rosterdrop, or kill that pid)",
        state_dir.display(),
        sock.display()
    )))
}

/// What the daemon is told while it runs: `serve` turns SIGHUP into [`Control::Reload`] and
/// SIGTERM or SIGINT into [`Control::Stop`]; a test sends them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the accounts and the configuration (what `rosterdrop reload` also does).
    Reload,
    /// Stop taking sessions and uploads, finish the running batches and their mail, return.
    Stop,
}

/// Runs the daemon until SIGTERM or SIGINT. `on_start` is called once everything listens, with
/// the accounts created on this first start (to print their passwords).
pub fn serve(
    config_path: &Path,
    on_start: impl FnOnce(&[InitialAccount]),
) -> Result<(), DaemonError> {
    memory::limit_arenas();
    let cfg = Config::load(config_path)?;
    // A daemon already on this state directory is named before its SFTP port is found taken.
    if let Ok(state_dir) = std::fs::canonicalize(&cfg.state_dir) {
        refuse_second_daemon(&state_dir)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rosterdrop")
        .build()
        .map_err(io_err(Path::new("tokio runtime")))?;
    let ran = rt.block_on(async {
        let listen = cfg.sftp.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SftpError::Bind {
                addr: listen,
                source,
            })?;
        let (control, rx) = mpsc::unbounded_channel();
        let signals = tokio::spawn(signals(control));
        let ran = run_on(listener, cfg, rx, on_start).await;
        signals.abort();
        ran
    });
    // Everything has stopped; a blocking thread still inside sled (a flush that a full disk
    // made hang) must not keep the process from exiting.
    rt.shutdown_timeout(Duration::from_secs(5));
    ran
}

/// Ends the process at once, with status 75 (`EX_TEMPFAIL`), for the service manager to start
/// it again: sled met a full disk, or a store write failed midway and this process cannot
/// close and reopen the store. sled's database in memory then no longer matches the disk (a
/// commit whose flush failed is visible to this process, and later flushes can write part of
/// it), so not one more read, write or flush goes through it, not even the one its drop would
/// make. The next start opens what sled made durable and completes from the store's journal
/// the write that failed (`store/journal.rs`). A batch under way is tried again (alone: see the
/// crash loops).
pub(super) fn abandon_store(error: &dyn std::fmt::Display) -> ! {
    tracing::error!(
        error = %error,
        "the store cannot go on in this process: exiting at once (status 75) for the service manager to start the daemon again, which completes the store's last write"
    );
    std::process::exit(EXIT_REOPEN)
}

/// Turns SIGHUP into [`Control::Reload`], and SIGTERM or SIGINT into [`Control::Stop`].
async fn signals(control: mpsc::UnboundedSender<Control>) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(io_err(Path::new("SIGHUP")))?;
    let mut term = signal(SignalKind::terminate()).map_err(io_err(Path::new("SIGTERM")))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err(Path::new("SIGINT")))?;
    loop {
        let c = tokio::select! {
            _ = hup.recv() => Control::Reload,
            _ = term.recv() => Control::Stop,
            _ = int.recv() => Control::Stop,
        };
        if control.send(c).is_err() {
            return Ok(());
        }
    }
}

/// Runs the daemon on an SFTP listener that is already bound, with `cfg` (read from
/// `cfg.path`, which a reload reads again), until [`Control::Stop`] arrives or every sender
/// of `control` is gone. `on_start` is called once everything listens, with the accounts
/// created on this first start. This is all of `serve` but the signals and the port, so a test
/// can run the daemon in its own process.
pub async fn run_on(
    listener: tokio::net::TcpListener,
    cfg: Config,
    control: mpsc::UnboundedReceiver<Control>,
    on_start: impl FnOnce(&[InitialAccount]),
) -> Result<(), DaemonError> {
    let listen = listener
        .local_addr()
        .map_err(io_err(Path::new("SFTP listener")))?;
    let (shared, sftp, initial) = tokio::task::spawn_blocking(move || prepare(cfg, listen))
        .await
        .map_err(|e| DaemonError::Other(format!("start-up stopped: {e}")))??;
    run(shared, sftp, listener, initial, control, on_start).await
}

/// Everything `run` needs that start-up makes: the state directory's folders, the store (waiting
/// for another process's lock), the accounts (created on first start) and the mail queue.
fn prepare(
    cfg: Config,
    listen: std::net::SocketAddr,
) -> Result<(Arc<Shared>, SftpConfig, Vec<InitialAccount>), DaemonError> {
    let config_path = cfg.path.clone();
    std::fs::create_dir_all(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    let state_dir = std::fs::canonicalize(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    for p in StateDir::at(&state_dir).serve_folders() {
        std::fs::create_dir_all(&p).map_err(io_err(&p))?;
    }
    refuse_second_daemon(&state_dir)?;
    remove_stale_temporaries(&StateDir::at(&state_dir));
    let store = match open_store_patiently(&StateDir::at(&state_dir).db()) {
        Err(StoreError::Locked { .. }) => {
            return Err(DaemonError::Other(format!(
                "the store in {} stayed locked by another process for 30 s (a daemon starting \
                 or stopping, or a long `rosterdrop ingest`); stop it first",
                StateDir::at(&state_dir).db().display()
            )))
        }
        r => r?,
    };
    let accounts_path = cfg.sftp.accounts_path(&state_dir);
    let initial = bootstrap_accounts(&cfg, &accounts_path)?;
    let accounts = Arc::new(RwLock::new(Accounts::load(&accounts_path)?));
    let parallel = cfg.daemon.max_parallel_batches.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let mailer = Arc::new(Mailer::new(&state_dir, cfg.mail.clone())?);
    let (stop_tx, _) = watch::channel(false);
    let mut sftp = cfg.sftp.clone();
    // The HTTP listener's connections come out of the descriptors before SFTP's share.
    if cfg.api.enabled {
        sftp.fd_reserve = sftp.fd_reserve.saturating_add(cfg.api.max_connections);
    }
    let shared = Arc::new(Shared {
        state_dir: state_dir.clone(),
        config_path,
        cfg: RwLock::new(Arc::new(cfg)),
        store: RwLock::new(Some(Arc::new(store))),
        accounts: accounts.clone(),
        accounts_path,
        listen,
        stopping: stop_tx,
        status: Mutex::new(BTreeMap::new()),
        queues: Mutex::new(HashMap::new()),
        workers: Mutex::new(Vec::new()),
        permits: Semaphore::new(parallel.max(1)),
        parallel: parallel.max(1),
        started: Instant::now(),
        processed: 0.into(),
        heartbeat: 0.into(),
        mailer,
        unconfigured: Mutex::new(HashSet::new()),
        rescan_now: tokio::sync::Notify::new(),
        retry_now: tokio::sync::Notify::new(),
        disk_full: std::sync::atomic::AtomicBool::new(false),
        api_changed: tokio::sync::Notify::new(),
    });

    Ok((shared, sftp, initial))
}

async fn run(
    sh: Arc<Shared>,
    sftp: SftpConfig,
    listener: tokio::net::TcpListener,
    initial: Vec<InitialAccount>,
    mut control: mpsc::UnboundedReceiver<Control>,
    on_start: impl FnOnce(&[InitialAccount]),
) -> Result<(), DaemonError> {
    // Batches cut short by the last stop, oldest first.
    let resumed = spool::resume_claims(&sh.dirs().spool())?;
    let mut claimed = HashSet::new();
    for (dir, claim) in resumed {
        let a = &claim.arrival;
        claimed.insert(a.id);
        if sh.store()?.find_batch(a.id)?.is_none() {
            sh.store()?.received(a)?;
        }
        tracing::info!(batch = a.id, source = %a.source, "resuming a batch left in the spool");
        sh.submit(Job { dir, claim });
    }
    // A batch recorded as received whose claim never reached the spool: its files are still in
    // the drop folder and will be taken again as a new batch.
    for b in sh.store()?.history(None)? {
        if !b.state.is_final() && !claimed.contains(&b.id) {
            sh.store()?.fail(
                &b.arrival(),
                "interrupted before its upload was claimed; taken again as a later batch".into(),
            )?;
        }
    }

    // Admin socket: refuse to start beside another daemon on the same state directory.
    let sock = admin::socket_path(&sh.state_dir);
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        return Err(DaemonError::Other(format!(
            "another rosterdrop daemon answers on {}",
            sock.display()
        )));
    }
    let _ = std::fs::remove_file(&sock);
    let admin_listener = tokio::net::UnixListener::bind(&sock).map_err(io_err(&sock))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&sock))?;
    }

    // File system events from the drop folders.
    let (fs_tx, fs_rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev| {
        let _ = fs_tx.send(ev);
    })
    .map_err(|source| DaemonError::Watch {
        path: sh.dirs().drop(),
        source,
    })?;
    {
        use notify::Watcher as _;
        watcher
            .watch(&sh.dirs().drop(), notify::RecursiveMode::Recursive)
            .map_err(|source| DaemonError::Watch {
                path: sh.dirs().drop(),
                source,
            })?;
    }

    // The REST API's port is taken before anything serves, so a taken port stops the start.
    let cfg_now = sh.cfg();
    let api_listener = api::bind(&cfg_now).await?;
    let api_tls = api::tls(&cfg_now)?;

    let (up_tx, up_rx) = mpsc::channel(1024);
    let server = Server::new(&sh.state_dir, sftp.clone(), sh.accounts.clone(), up_tx)?;
    let api_tasks = match api_listener {
        None => None,
        Some(l) => {
            let public_url = api::public_url(&cfg_now, &l);
            let auth = crate::api::auth::Auth::new(
                &cfg_now.api,
                crate::api::clients::clients_path(&cfg_now.api, &sh.state_dir),
                server.defender(),
            )
            .map_err(|e| DaemonError::Other(e.to_string()))?;
            let state = Arc::new(
                crate::api::server::ApiState::new(
                    cfg_now.api.clone(),
                    public_url.clone(),
                    Arc::new(auth),
                )
                .map_err(|e| DaemonError::Other(e.to_string()))?,
            );
            let console = if cfg_now.console.enabled {
                let secure = api_tls.is_some() || public_url.starts_with("https://");
                let backend: Arc<dyn crate::console::Backend> = sh.clone();
                let c = crate::console::Console::new(
                    &cfg_now,
                    server.defender(),
                    server.presence(),
                    backend,
                    secure,
                );
                tracing::info!(url = %format!("{public_url}{}", cfg_now.console.path), "web console served");
                crate::console::router(Arc::new(c))
            } else {
                axum::Router::new()
            };
            let mut stop = sh.stopping.subscribe();
            let http = tokio::spawn(crate::api::server::serve(
                l,
                state.clone(),
                console,
                api_tls,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ));
            let keeper = tokio::spawn(api::keep_served(sh.clone(), state));
            tracing::info!(url = %public_url, "OneRoster REST API listening");
            Some((http, keeper))
        }
    };
    for (alg, fp) in server.host_key_fingerprints() {
        tracing::info!(algorithm = %alg, fingerprint = %fp, "SFTP host key");
    }
    let mut stop = sh.stopping.subscribe();
    let sftp_task = tokio::spawn(server.run_on(listener, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    let intake = tokio::spawn(intake_loop(sh.clone(), fs_rx, up_rx));
    // Mail stops last, after the running batches have queued theirs.
    let (mail_stop, mut mail_stop_rx) = watch::channel(false);
    let mail = tokio::spawn(sh.mailer.clone().run(async move {
        let _ = mail_stop_rx.wait_for(|s| *s).await;
    }));
    let admin = tokio::spawn(admin_loop(sh.clone(), admin_listener));
    on_start(&initial);
    tracing::info!(state_dir = %sh.state_dir.display(), "rosterdrop daemon ready");
    let _ = crate::daemon::systemd::ready();
    let _ = crate::daemon::systemd::status(&format!("listening on {}", sh.listen));
    // The watchdog is fed while the intake loop goes round (it ticks every second) and the
    // store answers (probed every few seconds on a thread of its own, one probe at a time: a
    // full disk once left sled hanging in every flush, and the daemon wedged with it while
    // the watchdog was still fed).
    let store_ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let probe = {
        let (sh, ok) = (sh.clone(), store_ok.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(STORE_PROBE);
            loop {
                every.tick().await;
                let sh2 = sh.clone();
                let answered =
                    tokio::task::spawn_blocking(move || sh2.store().and_then(|s| s.ping())).await;
                // An answer, even an error, is health: only a store that hangs is restarted
                // (one that cannot be read keeps the drop box up while its batches wait).
                // But sled does not come back from a write that found the disk full: every
                // later write fails too. Once there is room again, the daemon stops and exits
                // with an error, so that systemd starts it again on a freshly opened store.
                if let Ok(Err(e)) = &answered {
                    if crate::daemon::worker::out_of_space(e) {
                        abandon_store(e);
                    }
                    tracing::warn!(error = %e, "store health probe failed");
                }
                // Waiting batches and uploads go on as soon as there is room again.
                sh.has_room();
                ok.store(
                    sh.started.elapsed().as_secs(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        })
    };
    let wd = sh.clone();
    let watchdog = tokio::spawn(async move {
        crate::daemon::systemd::watchdog(move || {
            let now = wd.started.elapsed().as_secs();
            let beat = wd.heartbeat.load(std::sync::atomic::Ordering::Relaxed);
            let store = store_ok.load(std::sync::atomic::Ordering::Relaxed);
            now.saturating_sub(beat) < 30 && now.saturating_sub(store) < STORE_PATIENCE_SECS
        })
        .await
    });

    while let Some(Control::Reload) = control.recv().await {
        let _ = crate::daemon::systemd::reloading();
        if let Err(e) = sh.reload() {
            tracing::error!(error = %e, "configuration not reloaded; the previous one stays in force");
        }
        let _ = crate::daemon::systemd::ready();
    }
    tracing::info!("stopping: no new sessions or batches; the running batches finish");
    let _ = crate::daemon::systemd::stopping();
    let _ = sh.stopping.send(true);
    watchdog.abort();
    probe.abort();
    drop(watcher);
    let _ = sftp_task.await;
    let _ = intake.await;
    let _ = admin.await;
    if let Some((http, keeper)) = api_tasks {
        let _ = keeper.await;
        if let Ok(Err(e)) = http.await {
            tracing::error!(error = %e, "the REST API stopped with an error");
        }
    }
    let workers: Vec<_> = std::mem::take(&mut *lock(&sh.workers));
    for w in workers {
        let _ = w.await;
    }
    // A few seconds for the last batches' mail; whatever is still queued (an SMTP outage) is
    // delivered after the next start.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sh.mailer.pending() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = mail_stop.send(true);
    let _ = mail.await;
    let _ = std::fs::remove_file(&sock);
    tracing::info!("rosterdrop daemon stopped");
    Ok(())
}

/// The exit status of a daemon that left its store for the next start to open afresh
/// (`EX_TEMPFAIL`): `Restart=on-failure` starts it again.
const EXIT_REOPEN: i32 = 75;

/// The exit status for a [`serve`] that failed: `EX_TEMPFAIL` (75) when the cause is the disk
/// or quota running full (a start after `abandon_store` while the disk is still full: the
/// same condition, said the same way), else `other`.
pub fn exit_status_of_failed_start(e: &(dyn std::error::Error + 'static), other: u8) -> u8 {
    if worker::out_of_space(e) {
        EXIT_REOPEN as u8
    } else {
        other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    #[test]
    fn a_start_that_finds_the_disk_full_exits_75() {
        let full = StoreError::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(exit_status_of_failed_start(&full, 2), 75);
        let denied = StoreError::Io(std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(exit_status_of_failed_start(&denied, 2), 2);
    }

    /// Every file of an export, by name.
    fn exported(store: &Store, out: &Path) -> BTreeMap<String, String> {
        store.export("north", out).unwrap();
        std::fs::read_dir(out)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_daemon_compacts_a_store_sled_left_blob_files_in_when_it_opens_it() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-csv/apple");
        let before = {
            let store = Store::open(&dir).unwrap();
            let reports = d.path().join("reports");
            let sc = SourceConfig::default();
            crate::ingest::ingest(&store, &reports, "north", &sc, &sample, "sis").unwrap();
            exported(&store, &d.path().join("e1"))
        };
        assert!(before.contains_key("students.csv"));
        // What sled 0.34 leaves behind (docs/ARCHITECTURE.md): a blob file no tree refers to,
        // from before the log's stable point (sled removes those after it when it opens).
        let leaked = dir.join("blobs").join("1");
        std::fs::write(&leaked, vec![7u8; 12 << 20]).unwrap();
        let grown = crate::store::dir_bytes(&dir);

        let store = open_store_patiently(&dir).unwrap();
        assert!(!leaked.exists(), "the compaction left the leaked blob file");
        // The space is given back (a fresh database may take a little more than the old one
        // took without the leaked file: sled sizes its log in whole segments).
        let after = crate::store::dir_bytes(&dir);
        assert!(after + (11 << 20) < grown, "{after} after, {grown} before");
        assert!(dir.join("compacted-bytes").exists());
        assert_eq!(exported(&store, &d.path().join("e2")), before);
        assert_eq!(store.last_applied("north").unwrap(), Some(1));
        drop(store);

        // A store that has not grown since is opened as it is.
        let remembered = std::fs::read(dir.join("compacted-bytes")).unwrap();
        let store = open_store_patiently(&dir).unwrap();
        assert_eq!(
            std::fs::read(dir.join("compacted-bytes")).unwrap(),
            remembered
        );
        assert_eq!(exported(&store, &d.path().join("e3")), before);
    }
}
