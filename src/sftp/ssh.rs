//! The SSH side: our own accept loop (ban check before the handshake, login timeout,
//! connection cap, graceful shutdown), authentication, and channel policy (only the `sftp`
//! subsystem).

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Preferred};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::defender::{Defender, Event};
use super::jail::Jail;
use super::session::{self, HandleBudget, InFlight, SessionCtx};
use super::{SftpConfig, SftpError, UploadEvent};
use crate::paths::StateDir;
use crate::sftp::accounts::{verify_password, Accounts};

/// State shared by all connections.
pub(crate) struct Shared {
    pub state_dir: PathBuf,
    pub cfg: Arc<SftpConfig>,
    pub accounts: Arc<RwLock<Accounts>>,
    pub events: mpsc::Sender<UploadEvent>,
    pub russh: Arc<russh::server::Config>,
    /// Shared with the REST API's authentication (`Server::defender`): one score per address.
    pub defender: Arc<Defender>,
    /// Open handles on the whole server (cap: `cfg.max_open_handles`).
    pub handles: Arc<HandleBudget>,
    /// Live sessions and last logins, for the admins' console (`Server::presence`).
    pub presence: Arc<super::presence::Presence>,
    sessions: Mutex<HashMap<String, usize>>,
    inflight: Mutex<HashMap<String, Arc<InFlight>>>,
    connections: AtomicUsize,
    per_host: Mutex<HashMap<std::net::IpAddr, usize>>,
}

impl Shared {
    pub fn new(
        state_dir: PathBuf,
        cfg: SftpConfig,
        accounts: Arc<RwLock<Accounts>>,
        events: mpsc::Sender<UploadEvent>,
        russh: russh::server::Config,
    ) -> Shared {
        Shared {
            state_dir,
            defender: Arc::new(Defender::new(cfg.defender.clone())),
            handles: Arc::new(HandleBudget::new(cfg.max_open_handles)),
            presence: Arc::default(),
            cfg: Arc::new(cfg),
            accounts,
            events,
            russh: Arc::new(russh),
            sessions: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            per_host: Mutex::new(HashMap::new()),
        }
    }

    fn inflight(&self, account: &str) -> Arc<InFlight> {
        let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(account.to_owned()).or_default().clone()
    }
}

/// Counts an authenticated connection against its account's limit while alive.
struct SessionSlot {
    shared: Arc<Shared>,
    account: String,
    /// Keeps the session in the console's live list.
    _live: Option<super::presence::LiveGuard>,
}

impl SessionSlot {
    fn acquire(shared: &Arc<Shared>, account: &str) -> Option<SessionSlot> {
        let mut m = shared.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(account.to_owned()).or_insert(0);
        if *n >= shared.cfg.max_sessions_per_account {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            shared: shared.clone(),
            account: account.to_owned(),
            _live: None,
        })
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut m = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.account);
            }
        }
    }
}

/// Counts a TCP connection (in total and per address) while alive.
struct ConnSlot(Arc<Shared>, std::net::IpAddr);

impl ConnSlot {
    /// `Err(reason)` when a connection limit is reached.
    fn acquire(shared: &Arc<Shared>, ip: std::net::IpAddr) -> Result<ConnSlot, &'static str> {
        let mut hosts = shared.per_host.lock().unwrap_or_else(|p| p.into_inner());
        let n = hosts.get(&ip).copied().unwrap_or(0);
        if n >= shared.cfg.max_connections_per_host {
            return Err("too many connections from this address");
        }
        if shared.connections.fetch_add(1, Ordering::Relaxed) >= shared.cfg.max_connections {
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            return Err("too many connections");
        }
        hosts.insert(ip, n + 1);
        Ok(ConnSlot(shared.clone(), ip))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        let mut hosts = self.0.per_host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = hosts.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                hosts.remove(&self.1);
            }
        }
    }
}

fn names<T: Copy>(
    list: &[String],
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>, SftpError> {
    list.iter()
        .map(|n| {
            parse(n).ok_or_else(|| SftpError::Config(format!("unknown {what} algorithm {n:?}")))
        })
        .collect()
}

/// russh settings from ours.
pub(crate) fn russh_config(
    cfg: &SftpConfig,
    keys: Vec<PrivateKey>,
) -> Result<russh::server::Config, SftpError> {
    let mut kex = names(
        &cfg.kex_names(),
        |n| russh::kex::Name::try_from(n).ok(),
        "key exchange",
    )?;
    // Protocol extensions (RFC 8308 ext-info, OpenSSH strict kex against Terrapin) travel in
    // the kex list.
    kex.push(russh::kex::EXTENSION_SUPPORT_AS_SERVER);
    kex.push(russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER);
    let cipher = names(
        &cfg.cipher_names(),
        |n| russh::cipher::Name::try_from(n).ok(),
        "cipher",
    )?;
    let mac = names(
        &cfg.mac_names(),
        |n| russh::mac::Name::try_from(n).ok(),
        "MAC",
    )?;
    let mut key = vec![
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ];
    if cfg.legacy {
        key.push(Algorithm::Rsa { hash: None });
    }
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::Password);
    methods.push(MethodKind::KeyboardInteractive);
    Ok(russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Borrowed("SSH-2.0-rosterdrop")),
        methods,
        auth_rejection_time: Duration::from_millis(cfg.auth_failure_delay_ms),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        window_size: cfg.window_size,
        maximum_packet_size: cfg.max_channel_packet,
        preferred: Preferred {
            kex: Cow::Owned(kex),
            key: Cow::Owned(key),
            cipher: Cow::Owned(cipher),
            mac: Cow::Owned(mac),
            compression: Cow::Borrowed(&[russh::compression::NONE]),
            ..Preferred::DEFAULT
        },
        // russh counts the client's initial "none" probe as a rejected attempt; OpenSSH's
        // MaxAuthTries does not. One more keeps the setting meaning "password/key tries".
        max_auth_attempts: cfg.max_auth_attempts + 1,
        inactivity_timeout: Some(Duration::from_secs(cfg.idle_timeout_secs)),
        keepalive_interval: (cfg.keepalive_secs > 0)
            .then(|| Duration::from_secs(cfg.keepalive_secs)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

/// A user name as it may appear in a log line (it comes from the network): its first 64
/// characters, logged with `?` so that it is quoted and escaped. Unquoted, a name such as
/// `x addr=10.6.6.6:22` wrote a field of its own ahead of the real address, and a log parser
/// reading `addr=` (a fail2ban filter) took the forged one (an outside probe).
fn loggable(user: &str) -> String {
    user.chars().take(64).collect()
}

/// Accept loop. Returns after `shutdown` completes and the connections have ended (at most
/// a few seconds' grace).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = impl Sized>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "SFTP server listening");
    }
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (sock, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "SFTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if let Some(left) = shared.defender.banned(peer.ip()) {
                    tracing::warn!(addr = %peer, ban_left_secs = left.as_secs(), "SFTP connection refused: address banned");
                    drop(sock);
                    continue;
                }
                let slot = match ConnSlot::acquire(&shared, peer.ip()) {
                    Ok(slot) => slot,
                    Err(reason) => {
                        tracing::warn!(addr = %peer, "SFTP connection refused: {reason}");
                        shared.defender.record(peer.ip(), Event::LimitExceeded);
                        drop(sock);
                        continue;
                    }
                };
                tasks.spawn(connection(shared.clone(), sock, peer, stop_rx.clone(), slot));
            }
        }
    }
    tracing::info!("SFTP server stopping");
    let _ = stop_tx.send(true);
    drop(listener);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

async fn connection(
    shared: Arc<Shared>,
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    _slot: ConnSlot,
) {
    let authed = Arc::new(AtomicBool::new(false));
    let handler = Conn {
        shared: shared.clone(),
        peer,
        user: None,
        authed: authed.clone(),
        slot: None,
        channels: HashMap::new(),
        live_channels: Arc::new(AtomicUsize::new(0)),
        over_session_limit: false,
        refusals_logged: 0,
        key_scored: false,
    };
    let login_timeout = Duration::from_secs(shared.cfg.login_timeout_secs);
    let setup = tokio::time::timeout(
        login_timeout,
        russh::server::run_stream(shared.russh.clone(), sock, handler),
    );
    let session = match setup.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(addr = %peer, error = %e, "SFTP connection setup failed");
            return;
        }
        Err(_) => {
            tracing::warn!(addr = %peer, "SFTP connection closed: login timeout");
            shared.defender.record(peer.ip(), Event::LimitExceeded);
            return;
        }
    };
    let handle = session.handle();
    let login_timer = async {
        tokio::time::sleep(login_timeout).await;
        if authed.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(session);
    tokio::select! {
        res = &mut session => {
            if let Err(e) = res {
                tracing::debug!(addr = %peer, error = %e, "SFTP connection ended with an error");
            }
            return;
        }
        _ = login_timer => {
            tracing::warn!(addr = %peer, "SFTP connection closed: login timeout");
            shared.defender.record(peer.ip(), Event::LimitExceeded);
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "login timeout".into(), "en".into())
                .await;
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "server shutting down".into(), "en".into())
                .await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), session).await;
}

/// One SSH connection.
struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// `(account, source)` once authenticated.
    user: Option<(String, String)>,
    authed: Arc<AtomicBool>,
    slot: Option<SessionSlot>,
    /// Session channels that have not started the SFTP subsystem yet: the sender hands the
    /// session context (or a refusal) to the channel's task.
    channels: HashMap<ChannelId, mpsc::Sender<Option<SessionCtx>>>,
    /// Session channels open on this connection, running SFTP or not (each channel's task
    /// holds a [`ChannelSlot`]).
    live_channels: Arc<AtomicUsize>,
    /// The credentials were right but the account has `max_sessions_per_account` sessions:
    /// disconnected with that reason as soon as russh reports the authentication.
    over_session_limit: bool,
    /// Refusals logged on this connection (at most [`MAX_REFUSAL_LOGS`]).
    refusals_logged: u32,
    key_scored: bool,
}

/// One session channel counted against its connection's limit while its task runs.
struct ChannelSlot(Arc<AtomicUsize>);

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Channel-policy refusals logged per connection; a client repeating them is not worth more.
const MAX_REFUSAL_LOGS: u32 = 16;

/// Owns a session channel from its opening. russh forwards every request and every byte of
/// data on a channel into a bounded queue and *awaits* room in it; a queue nobody reads (a
/// client sending env requests or data before the subsystem) would stall the whole connection,
/// keepalives and timeouts included. This task keeps reading and drops all of it until the
/// `sftp` subsystem is granted, then runs the SFTP session on the channel. A channel idle for
/// `idle` before that is closed.
async fn channel_task(
    mut ch: Channel<Msg>,
    mut ctl: mpsc::Receiver<Option<SessionCtx>>,
    idle: Duration,
    _slot: ChannelSlot,
    handle: russh::server::Handle,
) {
    loop {
        let msg = match tokio::time::timeout(idle, ch.wait()).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(_) => {
                let _ = ch.close().await;
                return;
            }
        };
        if let russh::ChannelMsg::RequestSubsystem { .. } = msg {
            match ctl.recv().await {
                Some(Some(ctx)) => {
                    let id = ch.id();
                    let mut stream = ch.into_stream();
                    session::run(&mut stream, session::Session::new(ctx)).await;
                    // The subsystem ended: its exit status before the channel closes (RFC
                    // 4254 6.10), as sshd sends when sftp-server exits. OpenSSH 9's scp, which
                    // speaks SFTP, takes ssh's status as its own: without one it reported
                    // every upload as failed (found by an outside probe). The stream is
                    // dropped after, which closes the channel.
                    let _ = handle.exit_status_request(id, 0).await;
                    let _ = handle.eof(id).await;
                    drop(stream);
                    return;
                }
                Some(None) => continue,
                None => return,
            }
        }
    }
}

/// A rejection that keeps every method on offer. russh's `Auth::reject()` drops the failed
/// method from the list, so a vendor who mistypes a password could not retry on the same
/// connection (OpenSSH allows MaxAuthTries tries); `max_auth_attempts` bounds retries instead.
fn reject() -> Auth {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::Password);
    methods.push(MethodKind::KeyboardInteractive);
    Auth::Reject {
        proceed_with_methods: Some(methods),
        partial_success: false,
    }
}

impl Conn {
    fn refuse(&self, event: Event) {
        self.shared.defender.record(self.peer.ip(), event);
    }

    /// Logs a refused channel or global request, at info: the kind of request, the account
    /// (escaped) and the address; nothing the client sent with it.
    fn log_refusal(&mut self, what: &str) {
        if self.refusals_logged >= MAX_REFUSAL_LOGS {
            return;
        }
        self.refusals_logged += 1;
        let account = self
            .user
            .as_ref()
            .map(|(a, _)| loggable(a))
            .unwrap_or_else(|| "-".to_owned());
        if self.refusals_logged == MAX_REFUSAL_LOGS {
            tracing::info!(account = %account, addr = %self.peer, "SFTP refused: {what} (further refusals on this connection are not logged)");
        } else {
            tracing::info!(account = %account, addr = %self.peer, "SFTP refused: {what}");
        }
    }

    /// Admits an account whose credentials checked out (session limit permitting).
    fn admit(&mut self, user: &str, method: &str) -> Auth {
        let source = {
            let accounts = self
                .shared
                .accounts
                .read()
                .unwrap_or_else(|p| p.into_inner());
            match accounts.get(user) {
                Some(a) => a.source.clone(),
                None => return reject(),
            }
        };
        let Some(mut slot) = SessionSlot::acquire(&self.shared, user) else {
            // The credentials were right: nothing for the defender, and the client is told why
            // (a rejection would read as a wrong password). Accepted here, disconnected with
            // the reason in `auth_succeeded`; no channel is ever opened (`user` stays unset).
            tracing::warn!(account = %loggable(user), addr = %self.peer, max = self.shared.cfg.max_sessions_per_account, "SFTP login refused: too many sessions for this account");
            self.over_session_limit = true;
            // Not a login timeout either (that would score): the disconnect ends it.
            self.authed.store(true, Ordering::Release);
            return Auth::Accept;
        };
        tracing::info!(account = %user, source = %source, addr = %self.peer, method, "SFTP login");
        slot._live = Some(self.shared.presence.login(user, &source, self.peer));
        self.slot = Some(slot);
        self.user = Some((user.to_owned(), source));
        self.authed.store(true, Ordering::Release);
        Auth::Accept
    }

    async fn check_password(&mut self, user: &str, password: &str, method: &str) -> Auth {
        if self.shared.defender.banned(self.peer.ip()).is_some() {
            return reject();
        }
        let hash = {
            let accounts = self
                .shared
                .accounts
                .read()
                .unwrap_or_else(|p| p.into_inner());
            accounts.get(user).map(|a| a.password_hash.clone())
        };
        let Some(hash) = hash else {
            tracing::warn!(user = ?loggable(user), addr = %self.peer, method, "SFTP login failed: unknown user");
            self.refuse(Event::UnknownUser);
            return reject();
        };
        let good = match hash {
            Some(h) => {
                let pw = password.to_owned();
                tokio::task::spawn_blocking(move || verify_password(&h, &pw))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        if !good {
            tracing::warn!(account = %loggable(user), addr = %self.peer, method, "SFTP login failed: wrong password");
            self.refuse(Event::WrongCredentials);
            return reject();
        }
        self.admit(user, method)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some((account, _)) = &self.user {
            tracing::info!(account = %account, addr = %self.peer, "SFTP session closed");
        }
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if self.over_session_limit {
            let msg = format!(
                "too many sessions for this account (at most {}); try again when one has ended",
                self.shared.cfg.max_sessions_per_account
            );
            session.disconnect(russh::Disconnect::TooManyConnections, &msg, "en")?;
        }
        Ok(())
    }

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.check_password(user, password, "password").await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        match response {
            // Same prompt whether or not the user exists.
            None => Ok(Auth::Partial {
                name: Cow::Borrowed(""),
                instructions: Cow::Borrowed(""),
                prompts: Cow::Owned(vec![(Cow::Borrowed("Password: "), false)]),
            }),
            Some(mut answers) => {
                let answer = answers
                    .next()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                Ok(self
                    .check_password(user, &answer, "keyboard-interactive")
                    .await)
            }
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.shared.defender.banned(self.peer.ip()).is_some() {
            return Ok(reject());
        }
        let (exists, ok) = {
            let accounts = self
                .shared
                .accounts
                .read()
                .unwrap_or_else(|p| p.into_inner());
            (
                accounts.get(user).is_some(),
                accounts.key_authorized(user, offer.public_key),
            )
        };
        if ok {
            return Ok(Auth::Accept);
        }
        // Clients offer every key they have: count one failure per connection, not per key.
        if !self.key_scored {
            self.key_scored = true;
            if exists {
                tracing::info!(account = %loggable(user), addr = %self.peer, "SFTP public key not authorized");
                self.refuse(Event::WrongCredentials);
            } else {
                tracing::warn!(user = ?loggable(user), addr = %self.peer, method = "publickey", "SFTP login failed: unknown user");
                self.refuse(Event::UnknownUser);
            }
        }
        Ok(reject())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let ok = {
            let accounts = self
                .shared
                .accounts
                .read()
                .unwrap_or_else(|p| p.into_inner());
            accounts.key_authorized(user, key.public_key)
        };
        if !ok {
            return Ok(reject());
        }
        Ok(self.admit(user, "publickey"))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.user.is_none() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let max = self.shared.cfg.max_channels_per_connection;
        if self.live_channels.fetch_add(1, Ordering::Relaxed) >= max {
            self.live_channels.fetch_sub(1, Ordering::Relaxed);
            self.log_refusal("too many session channels on this connection");
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        let slot = ChannelSlot(self.live_channels.clone());
        let (tx, rx) = mpsc::channel(4);
        self.channels.insert(channel.id(), tx);
        tokio::spawn(channel_task(
            channel,
            rx,
            Duration::from_secs(self.shared.cfg.idle_timeout_secs),
            slot,
            session.handle(),
        ));
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A channel still ours (no subsystem running) is closed on EOF, or OpenSSH waits forever.
        if self.channels.remove(&channel).is_some() {
            session.close(channel)?;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some((account, source)) = self.user.clone() else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let Some(ctl) = self.channels.get(&channel).cloned() else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if name != "sftp" {
            self.log_refusal("subsystem other than sftp");
            let _ = ctl.try_send(None);
            session.channel_failure(channel)?;
            return Ok(());
        }
        let root = StateDir::at(&self.shared.state_dir).drop().join(&account);
        let ready = std::fs::create_dir_all(&root)
            .and_then(|_| std::fs::symlink_metadata(&root))
            .map(|m| m.is_dir() && !m.file_type().is_symlink())
            .unwrap_or(false);
        if !ready {
            tracing::error!(account = %account, "SFTP drop folder missing or not a folder");
            let _ = ctl.try_send(None);
            session.channel_failure(channel)?;
            return Ok(());
        }
        let ctx = SessionCtx {
            jail: Jail {
                root,
                reports: StateDir::at(&self.shared.state_dir).reports().join(&source),
            },
            inflight: self.shared.inflight(&account),
            handles: self.shared.handles.clone(),
            account,
            source,
            peer: self.peer,
            cfg: self.shared.cfg.clone(),
            events: self.shared.events.clone(),
        };
        if ctl.try_send(Some(ctx)).is_err() {
            session.channel_failure(channel)?;
            return Ok(());
        }
        self.channels.remove(&channel);
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("shell request");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("exec request");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("pty request");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("env request");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("x11 request");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.log_refusal("agent forwarding");
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.log_refusal("remote port forwarding");
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.log_refusal("remote socket forwarding");
        Ok(false)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("local port forwarding");
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("local socket forwarding");
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("x11 channel");
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log_refusal("forwarded-tcpip channel");
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }
}
