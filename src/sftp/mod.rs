//! Embedded SFTP server (russh + russh-sftp's packet types): vendors' uploads land in
//! `<state_dir>/drop/<account>/`, whole or not at all. See `docs/SFTP.md`.
//!
//! ```no_run
//! # async fn f() -> Result<(), rosterdrop::sftp::SftpError> {
//! use std::sync::{Arc, RwLock};
//! use rosterdrop::sftp::{accounts::Accounts, Server, SftpConfig};
//! let cfg = SftpConfig::default();
//! let accounts = Arc::new(RwLock::new(Accounts::load(&cfg.accounts_path("state".as_ref()))?));
//! let (tx, mut rx) = tokio::sync::mpsc::channel(64);
//! let server = Server::new("state", cfg, accounts, tx)?;
//! tokio::spawn(async move { while let Some(ev) = rx.recv().await { println!("{ev:?}"); } });
//! server.run(tokio::signal::ctrl_c()).await
//! # }
//! ```

pub mod accounts;
pub mod config;
pub mod defender;
pub mod fdlimit;
pub mod hostkeys;
pub mod jail;
pub mod presence;
pub mod session;
mod ssh;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use config::{DefenderConfig, SftpConfig};

use crate::fsutil::{at, IoError};
use crate::paths::StateDir;
use crate::sftp::accounts::{AccountError, Accounts};

/// Errors of the SFTP server (setup only: refused operations are SFTP statuses, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("host key: {0}")]
    HostKey(String),
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A completed upload: a whole file now exists under its real name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEvent {
    /// Account (SSH user) that uploaded it.
    pub account: String,
    /// Source the account belongs to.
    pub source: String,
    /// Path as the client sees it, e.g. `/roster.zip`.
    pub path: String,
    /// Real path on the server (`<state_dir>/drop/<account>/...`).
    pub file: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Client address.
    pub peer: SocketAddr,
}

/// The SFTP server, ready to run.
pub struct Server {
    inner: Arc<ssh::Shared>,
}

impl Server {
    /// Prepares a server: checks the settings, creates `drop/` and loads or generates the host
    /// keys. `accounts` may be replaced or edited at any time (reload); sessions already
    /// authenticated are not dropped.
    pub fn new(
        state_dir: impl Into<PathBuf>,
        mut cfg: SftpConfig,
        accounts: Arc<RwLock<Accounts>>,
        events: mpsc::Sender<UploadEvent>,
    ) -> Result<Server, SftpError> {
        cfg.validate()?;
        // Descriptor budget: raise the soft limit to the hard one, then fit connections and
        // open handles below it, leaving `fd_reserve` to the rest of the daemon.
        let nofile = fdlimit::raise_nofile_limit();
        let b = fdlimit::fit(&cfg, nofile);
        let configured = (cfg.max_connections, cfg.max_open_handles);
        if (b.connections, b.handles) != configured {
            tracing::warn!(
                open_files_limit = nofile,
                fd_reserve = cfg.fd_reserve,
                max_connections = b.connections,
                max_open_handles = b.handles,
                "SFTP limits lowered to fit the open files limit (raise LimitNOFILE)"
            );
        }
        tracing::info!(
            open_files_limit = nofile,
            fd_reserve = cfg.fd_reserve,
            max_connections = b.connections,
            max_open_handles = b.handles,
            max_handles_per_account = b.handles_per_account,
            "SFTP descriptor budget"
        );
        cfg.max_connections = b.connections;
        cfg.max_open_handles = b.handles;
        cfg.max_handles_per_account = b.handles_per_account;
        let state_dir = state_dir.into();
        let drop_dir = StateDir::at(&state_dir).drop();
        std::fs::create_dir_all(&drop_dir).map_err(at(&drop_dir))?;
        let stale = jail::remove_stale_temporaries(&drop_dir);
        if stale > 0 {
            tracing::info!(
                files = stale,
                "removed unfinished SFTP uploads left by a previous run"
            );
        }
        let keys = hostkeys::load_or_generate(&state_dir)?;
        let russh_cfg = ssh::russh_config(&cfg, keys)?;
        Ok(Server {
            inner: Arc::new(ssh::Shared::new(
                state_dir, cfg, accounts, events, russh_cfg,
            )),
        })
    }

    /// The server's login defender, to share with other listeners (the REST API records its
    /// failed authentications here too, so an address is banned from both at once).
    pub fn defender(&self) -> Arc<defender::Defender> {
        self.inner.defender.clone()
    }

    /// Live sessions and last logins, for the admins' console.
    pub fn presence(&self) -> Arc<presence::Presence> {
        self.inner.presence.clone()
    }

    /// SHA256 fingerprints of the host keys, `(algorithm, fingerprint)`.
    pub fn host_key_fingerprints(&self) -> Vec<(String, String)> {
        hostkeys::fingerprints(&self.inner.russh.keys)
    }

    /// Listens on `sftp.listen` and serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = impl Sized>) -> Result<(), SftpError> {
        let addr = self.inner.cfg.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SftpError::Bind { addr, source })?;
        self.run_on(listener, shutdown).await
    }

    /// Serves connections from an already bound listener until `shutdown` completes; then
    /// disconnects every client (open uploads are discarded) and returns.
    pub async fn run_on(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = impl Sized>,
    ) -> Result<(), SftpError> {
        ssh::serve(self.inner, listener, shutdown).await;
        Ok(())
    }
}
