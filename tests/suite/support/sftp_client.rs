//! The SFTP server in-process (`Server::run_on` on a loopback listener) and a Rust client
//! (russh + russh-sftp) for what a batch file cannot do: exact status codes, raw packets, many
//! channels on one connection, upload events, accounts changed while sessions run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rosterdrop::sftp::accounts::Accounts;
use rosterdrop::sftp::{Server, SftpConfig, UploadEvent};
use russh_sftp::client::error::Error as SftpClientError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{OpenFlags, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use super::sftp::seed_hostkeys;

/// A running in-process server with a temporary state directory; stopped when dropped.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub addr: SocketAddr,
    /// The passwords of the accounts given to [`Fixture::start`], in their order.
    pub passwords: Vec<String>,
    /// The server's accounts, to change while it runs.
    pub accounts: Arc<RwLock<Accounts>>,
    /// The server's upload events (it waits when 16 are unread: see [`Fixture::drain_events`]).
    pub events: mpsc::Receiver<UploadEvent>,
    /// Stops the server when sent or dropped.
    pub stop: Option<oneshot::Sender<()>>,
}

impl Fixture {
    /// A server with these (account, source) pairs, its settings changed by `tune`.
    pub async fn start(accounts: &[(&str, &str)], tune: impl FnOnce(&mut SftpConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        seed_hostkeys(&state);
        let mut all = Accounts::default();
        let passwords = accounts
            .iter()
            .map(|(name, source)| all.add(name, source).unwrap())
            .collect();
        let accounts = Arc::new(RwLock::new(all));
        let mut cfg = SftpConfig {
            auth_failure_delay_ms: 50,
            fsync_uploads: false,
            ..Default::default()
        };
        tune(&mut cfg);
        let (tx, events) = mpsc::channel(16);
        let server = Server::new(&state, cfg, accounts.clone(), tx).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run_on(listener, stopped));
        Fixture {
            dir,
            state,
            addr,
            passwords,
            accounts,
            events,
            stop: Some(stop),
        }
    }

    /// Reads and forgets every upload event from now on, so that no upload waits on them.
    pub fn drain_events(&mut self) {
        let (_, closed) = mpsc::channel(1);
        let mut events = std::mem::replace(&mut self.events, closed);
        tokio::spawn(async move { while events.recv().await.is_some() {} });
    }

    pub fn drop_dir(&self, account: &str) -> PathBuf {
        self.state.join("drop").join(account)
    }
}

/// A client that trusts any host key.
pub struct Client;

impl russh::client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A connection logged in with a password; `None` when refused (or after 20 s per step).
pub async fn ssh(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> Option<russh::client::Handle<Client>> {
    let cfg = Arc::new(russh::client::Config::default());
    let mut h = timeout(
        Duration::from_secs(20),
        russh::client::connect(cfg, addr, Client),
    )
    .await
    .ok()?
    .ok()?;
    let ok = timeout(
        Duration::from_secs(20),
        h.authenticate_password(user, password),
    )
    .await
    .ok()?
    .ok()?
    .success();
    ok.then_some(h)
}

/// A new SFTP session on a new channel of `h`; `None` when the channel is refused.
pub async fn sftp(h: &russh::client::Handle<Client>) -> Option<RawSftpSession> {
    let ch = timeout(Duration::from_secs(10), h.channel_open_session())
        .await
        .ok()?
        .ok()?;
    ch.request_subsystem(true, "sftp").await.ok()?;
    let s = RawSftpSession::new(ch.into_stream());
    s.set_timeout(20);
    s.init().await.ok()?;
    Some(s)
}

/// The status code and message of a request that must fail.
pub fn code<T: std::fmt::Debug>(r: Result<T, SftpClientError>) -> (StatusCode, String) {
    match r {
        Err(SftpClientError::Status(s)) => (s.status_code, s.error_message),
        other => panic!("expected an error status, got {other:?}"),
    }
}

/// Open flags for writing a new file.
pub fn wflags() -> OpenFlags {
    OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE
}
