//! Who is calling: the REST provider's security layer (issue 16 item 6).
//!
//! [`Auth`] answers the token endpoint ([`Auth::token`], OAuth 2 client credentials) and
//! checks every API request ([`Auth::authenticate`]: a Bearer token, or an OAuth 1.0a
//! signature for 1.1 consumers), giving the HTTP layer a [`Principal`] (client, source,
//! scopes per version) or a [`Refusal`] (401 or 429, with its challenge and codeMinor).
//!
//! - Clients come from the clients file ([`crate::api::clients`]); a running daemon notices a
//!   changed file by itself (its identity, size and modification time are looked at, at most
//!   every [`RELOAD_EVERY`]), and the tokens of a removed client or of a client given a new
//!   secret stop working at once.
//! - Failed authentications count in the SFTP server's [`Defender`] (one score per address
//!   for both listeners): an unknown client id or consumer key as an unknown user, a wrong
//!   secret, a bad signature, a stale timestamp, a replayed nonce, or an unknown, expired or
//!   revoked token as wrong credentials (one stale token sent again and again from one
//!   address counts once). Not counted: requests with no credentials or that cannot be parsed,
//!   and refusals of a client that did authenticate (`invalid_scope`, 429). A banned address
//!   is refused (429, `Retry-After`) before anything else is done.
//! - A per-client token bucket (`rate_limit_per_sec`, `rate_burst`) answers 429.
//! - Nothing here logs or returns a secret, token or signature; descriptions name the reason
//!   only.

mod limit;
pub mod oauth1;
pub mod oauth2;
mod tokens;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::api::clients::{ApiClient, ApiClients, ClientsError, Scope, Scopes};
use crate::api::status::{Minor, Version};
use crate::api::ApiConfig;
use crate::sftp::accounts::{hash_password, verify_password};
use crate::sftp::defender::{Defender, Event};

pub use oauth2::TokenReply;

use limit::{NonceCheck, Nonces, RateLimit, Refused};
use tokens::{digest, Issued, Lookup, Tokens};

/// How often the clients file is looked at, at most: by default at every request (one
/// `stat`, about a microsecond), so that an `api-client` command is in force for the very
/// next request, as the issue asks ("a running daemon takes changes at once").
pub const RELOAD_EVERY: Duration = Duration::ZERO;
/// Longest bearer token read (ours are 43 characters).
const MAX_TOKEN: usize = 512;
/// Most OAuth 1.0a nonces kept per consumer, whatever the rate limit allows.
const MAX_NONCES: usize = 100_000;
/// Token requests whose secret is being verified at once (argon2id takes about 19 MiB and tens
/// of milliseconds each); more are answered 429 rather than queued.
pub const MAX_VERIFYING: usize = 8;

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Bearer,
    OAuth1,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The client's name (for logs; never personal data).
    pub client: String,
    /// The only source it sees.
    pub source: String,
    /// Scopes held for `/ims/oneroster/v1p1/...` and for `.../v1p2/...`. OAuth 1.0a grants
    /// the client's allowed scopes for 1.1 only.
    pub v1p1: Scopes,
    pub v1p2: Scopes,
    /// Moodle compatibility: add `imsx_statusInfo` to 1.2 success bodies.
    pub status_info_on_success: bool,
    pub method: Method,
}

impl Principal {
    /// The scopes held for one version.
    pub fn scopes(&self, version: Version) -> Scopes {
        match version {
            Version::V1p1 => self.v1p1,
            Version::V1p2 => self.v1p2,
        }
    }

    /// Whether it holds at least one of `any` for `version` (design notes §3.6 item 6: core
    /// or full roster each suffice for a flat route).
    pub fn has_any(&self, version: Version, any: &[Scope]) -> bool {
        let held = self.scopes(version);
        any.iter().any(|s| held.contains(*s))
    }
}

/// Why a request is not let in: what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 429.
    pub status: StatusCode,
    /// The `WWW-Authenticate` value (with 401).
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds (with 429).
    pub retry_after: Option<u64>,
    /// For `imsx_description`: the reason, never a secret.
    pub description: String,
    /// `unauthorisedrequest` (401) or `server_busy` (429).
    pub minor: Minor,
}

const BEARER: &str = "Bearer realm=\"rosterdrop\"";
const BEARER_INVALID: &str = "Bearer realm=\"rosterdrop\", error=\"invalid_token\"";
const BEARER_MALFORMED: &str = "Bearer realm=\"rosterdrop\", error=\"invalid_request\"";
const OAUTH: &str = "OAuth realm=\"rosterdrop\"";

impl Refusal {
    fn unauthorized(challenge: &str, description: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            www_authenticate: Some(challenge.to_owned()),
            retry_after: None,
            description: description.into(),
            minor: Minor::UnauthorisedRequest,
        }
    }

    fn busy(retry_after: u64, description: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            www_authenticate: None,
            retry_after: Some(retry_after.max(1)),
            description: description.into(),
            minor: Minor::ServerBusy,
        }
    }

    /// The headers to send with it (`WWW-Authenticate`, `Retry-After`).
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = self
            .www_authenticate
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            h.insert(http::header::WWW_AUTHENTICATE, v);
        }
        if let Some(s) = self.retry_after {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from(s));
        }
        h
    }
}

/// The clients as loaded, with an index by client id.
#[derive(Default)]
struct Loaded {
    clients: ApiClients,
    by_id: HashMap<String, String>,
}

impl Loaded {
    fn new(clients: ApiClients) -> Loaded {
        let by_id = clients
            .clients
            .iter()
            .map(|(n, c)| (c.client_id.clone(), n.clone()))
            .collect();
        Loaded { clients, by_id }
    }

    fn by_id(&self, id: &str) -> Option<(String, ApiClient)> {
        let name = self.by_id.get(id)?;
        let c = self.clients.get(name)?;
        Some((name.clone(), c.clone()))
    }
}

/// What identifies a version of the clients file: device, inode (a new one at each atomic
/// write), size and modification time.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

struct Watch {
    checked: Option<Instant>,
    stamp: Stamp,
}

/// The security layer: build one per daemon and share it (`Arc<Auth>`); every method takes
/// `&self`. [`Auth::token`] verifies an argon2id hash (tens of milliseconds of CPU): call it
/// from `spawn_blocking`. [`Auth::authenticate`] is cheap (a hash lookup or two HMACs).
pub struct Auth {
    path: PathBuf,
    defender: Arc<Defender>,
    token_ttl: Duration,
    max_age: u64,
    max_ahead: u64,
    uri_prefix: String,
    reload_every: Duration,
    clients: RwLock<Loaded>,
    watch: Mutex<Watch>,
    tokens: Mutex<Tokens>,
    limit: Mutex<RateLimit>,
    nonces: Mutex<Nonces>,
    refused: Mutex<Refused>,
    verifying: std::sync::atomic::AtomicUsize,
    /// Test clocks: added to the monotonic clock (ms) and to the wall clock (s).
    mono_skew_ms: std::sync::atomic::AtomicU64,
    wall_skew_s: std::sync::atomic::AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A hash to verify against when the client id is unknown, so that an unknown id costs what
/// a wrong secret costs.
fn dummy_hash() -> Option<&'static str> {
    static H: OnceLock<Option<String>> = OnceLock::new();
    H.get_or_init(|| hash_password(&crate::api::clients::generate_secret()).ok())
        .as_deref()
}

impl Auth {
    /// Loads the clients file at `clients_path` (see [`crate::api::clients::clients_path`])
    /// and takes the token lifetime, rate limit and OAuth 1.0a window from `cfg`. `defender`
    /// is the SFTP server's (`sftp::Server::defender`).
    pub fn new(
        cfg: &ApiConfig,
        clients_path: impl Into<PathBuf>,
        defender: Arc<Defender>,
    ) -> Result<Auth, ClientsError> {
        let path = clients_path.into();
        let st = stamp(&path);
        let clients = ApiClients::load(&path)?;
        let window = cfg
            .oauth1_max_age_secs
            .saturating_add(cfg.oauth1_max_ahead_secs);
        let nonce_cap = u64::from(cfg.rate_limit_per_sec)
            .saturating_mul(window.saturating_add(1))
            .saturating_add(u64::from(cfg.rate_burst))
            .min(MAX_NONCES as u64) as usize;
        let now = Instant::now();
        Ok(Auth {
            path,
            defender,
            token_ttl: Duration::from_secs(cfg.token_ttl_secs.max(1)),
            max_age: cfg.oauth1_max_age_secs,
            max_ahead: cfg.oauth1_max_ahead_secs,
            uri_prefix: oauth1::base_uri_prefix(&cfg.base_url()),
            reload_every: RELOAD_EVERY,
            clients: RwLock::new(Loaded::new(clients)),
            watch: Mutex::new(Watch {
                checked: Some(now),
                stamp: st,
            }),
            tokens: Mutex::new(Tokens::new(now)),
            limit: Mutex::new(RateLimit::new(cfg.rate_limit_per_sec, cfg.rate_burst)),
            nonces: Mutex::new(Nonces::new(nonce_cap)),
            refused: Mutex::new(Refused::new(10_000)),
            verifying: Default::default(),
            mono_skew_ms: Default::default(),
            wall_skew_s: Default::default(),
        })
    }

    /// Looks at the clients file at most this often (default [`RELOAD_EVERY`]).
    pub fn with_reload_interval(mut self, every: Duration) -> Auth {
        self.reload_every = every;
        self
    }

    /// The clients file this reads.
    pub fn clients_path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the clients file now (SIGHUP); returns the number of clients. On an error the
    /// clients loaded before stay in force.
    pub fn reload(&self) -> Result<usize, ClientsError> {
        let st = stamp(&self.path);
        let clients = ApiClients::load(&self.path)?;
        lock(&self.watch).stamp = st;
        let n = clients.clients.len();
        self.apply(clients);
        Ok(n)
    }

    /// Reloads when the file changed and the last look is old enough.
    fn maybe_reload(&self) {
        let now = Instant::now();
        {
            let mut w = lock(&self.watch);
            if w.checked
                .is_some_and(|t| now.saturating_duration_since(t) < self.reload_every)
            {
                return;
            }
            w.checked = Some(now);
            let st = stamp(&self.path);
            if st == w.stamp {
                return;
            }
            w.stamp = st;
        }
        match ApiClients::load(&self.path) {
            Ok(c) => {
                tracing::info!(clients = c.clients.len(), file = %self.path.display(), "API clients reloaded");
                self.apply(c);
            }
            Err(e) => {
                tracing::warn!(error = %e, "API clients file not reloaded; the clients loaded before stay in force")
            }
        }
    }

    /// Puts a new set of clients in force and ends what belonged to the old one.
    fn apply(&self, clients: ApiClients) {
        let creds: HashMap<String, [u8; 32]> = clients
            .clients
            .iter()
            .map(|(n, c)| (n.clone(), digest(c.secret_hash.as_bytes())))
            .collect();
        *self.clients.write().unwrap_or_else(|p| p.into_inner()) = Loaded::new(clients);
        lock(&self.tokens).retain(|t| creds.get(&t.client) == Some(&t.credential));
        lock(&self.limit).retain(|n| creds.contains_key(n));
        lock(&self.nonces).retain(|n| creds.contains_key(n));
    }

    fn now(&self) -> Instant {
        let skew = self.mono_skew_ms.load(std::sync::atomic::Ordering::Relaxed);
        Instant::now() + Duration::from_millis(skew)
    }

    fn wall(&self) -> u64 {
        let skew = self.wall_skew_s.load(std::sync::atomic::Ordering::Relaxed);
        crate::clock::now_secs().saturating_add_signed(skew)
    }

    fn client_by_id(&self, id: &str) -> Option<(String, ApiClient)> {
        self.clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id(id)
    }

    fn banned(&self, peer: IpAddr) -> Option<u64> {
        self.defender
            .banned(peer)
            .map(|left| left.as_secs().saturating_add(1))
    }

    fn record(&self, peer: IpAddr, event: Event, client: Option<&str>, reason: &str) {
        tracing::info!(addr = %peer, client = client.unwrap_or("-"), reason, "API authentication refused");
        self.defender.record(peer, event);
    }

    /// The token endpoint (`POST {public_url}/oauth/token`): `headers` and `body` as received
    /// (the body is read up to [`oauth2::MAX_BODY`]; a larger one is refused), `peer` the
    /// client's address. Always an answer to send.
    pub fn token(&self, headers: &HeaderMap, body: &[u8], peer: IpAddr) -> TokenReply {
        // `::ffff:a.b.c.d` from a dual-stack socket is the address SFTP sees as `a.b.c.d`.
        let peer = peer.to_canonical();
        if let Some(left) = self.banned(peer) {
            return TokenReply::busy("too many failed authentications from this address", left);
        }
        self.maybe_reload();
        let req = match oauth2::parse(headers, body) {
            Ok(r) => r,
            Err((code, description)) => return TokenReply::error(code, description),
        };
        // Bounded argon2 work: a flood of token requests waits outside, not in memory.
        let Some(_slot) = Slot::take(&self.verifying) else {
            return TokenReply::busy("too many token requests at once", 1);
        };
        let failed = || {
            TokenReply::error(
                oauth2::ErrorCode::InvalidClient,
                "client authentication failed",
            )
        };
        let Some((name, client)) = self.client_by_id(&req.client_id) else {
            if let Some(h) = dummy_hash() {
                let _ = verify_password(h, &req.secret);
            }
            self.record(peer, Event::UnknownUser, None, "unknown client id");
            return failed();
        };
        if !verify_password(&client.secret_hash, &req.secret) {
            self.record(
                peer,
                Event::WrongCredentials,
                Some(&name),
                "wrong client secret",
            );
            return failed();
        }
        let Some(granted) = oauth2::grant(req.scope.as_deref(), client.allowed()) else {
            let mut r = TokenReply::error(
                oauth2::ErrorCode::InvalidScope,
                "none of the requested scopes is allowed for this client",
            );
            r.client = Some(name);
            return r;
        };
        let now = self.now();
        if let Err(wait) = lock(&self.limit).take(&name, now) {
            let mut r = TokenReply::busy("rate limit exceeded", wait);
            r.client = Some(name);
            return r;
        }
        let scope = oauth2::scope_text(&granted);
        let token = lock(&self.tokens).issue(
            Issued {
                client: name.clone(),
                credential: digest(client.secret_hash.as_bytes()),
                v1p1: granted[0].1,
                v1p2: granted[1].1,
                expires: now + self.token_ttl,
            },
            now,
        );
        tracing::info!(client = %name, scope = %scope, "API access token issued");
        TokenReply::issued(&token, self.token_ttl.as_secs(), &scope, &name)
    }

    /// Checks one API request: `method` and `path_and_query` exactly as received (OAuth 1.0a
    /// signs them), its headers and the client's address. Bearer tokens come only from the
    /// `Authorization` header (never the query, which lands in logs); OAuth 1.0a parameters
    /// from the header or the query.
    pub fn authenticate(
        &self,
        method: &http::Method,
        path_and_query: &str,
        headers: &HeaderMap,
        peer: IpAddr,
    ) -> Result<Principal, Refusal> {
        let peer = peer.to_canonical();
        if let Some(left) = self.banned(peer) {
            return Err(Refusal::busy(
                left,
                "too many failed authentications from this address",
            ));
        }
        self.maybe_reload();
        let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
        let first = all.next();
        if all.next().is_some() {
            return Err(Refusal::unauthorized(
                BEARER_MALFORMED,
                "more than one Authorization header",
            ));
        }
        let principal = match first {
            None if oauth1::query_is_signed(path_and_query) => {
                self.oauth1(method, path_and_query, None, peer)?
            }
            None => {
                return Err(Refusal::unauthorized(
                    BEARER,
                    "authentication required: a Bearer token from /oauth/token or an OAuth 1.0a signature",
                ))
            }
            Some(v) => {
                let Ok(v) = v.to_str() else {
                    return Err(Refusal::unauthorized(
                        BEARER_MALFORMED,
                        "the Authorization header is not readable",
                    ));
                };
                if v.len() > oauth1::MAX_HEADER {
                    return Err(Refusal::unauthorized(
                        BEARER_MALFORMED,
                        "the Authorization header is too long",
                    ));
                }
                let v = v.trim();
                let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
                if scheme.eq_ignore_ascii_case("bearer") {
                    self.bearer(rest.trim(), peer)?
                } else if scheme.eq_ignore_ascii_case("oauth") {
                    self.oauth1(method, path_and_query, Some(rest), peer)?
                } else {
                    return Err(Refusal::unauthorized(
                        BEARER,
                        "unsupported authentication scheme: use a Bearer token or an OAuth 1.0a signature",
                    ));
                }
            }
        };
        if let Err(wait) = lock(&self.limit).take(&principal.client, self.now()) {
            return Err(Refusal::busy(wait, "rate limit exceeded"));
        }
        Ok(principal)
    }

    fn bearer(&self, token: &str, peer: IpAddr) -> Result<Principal, Refusal> {
        let key = digest(token.as_bytes());
        let refuse = |client: Option<&str>, reason: &str, said: &str| {
            if lock(&self.refused).first(peer, key, Instant::now()) {
                self.record(peer, Event::WrongCredentials, client, reason);
            }
            Refusal::unauthorized(BEARER_INVALID, said)
        };
        if token.is_empty() || token.len() > MAX_TOKEN {
            return Err(refuse(None, "malformed token", "malformed access token"));
        }
        let issued = match lock(&self.tokens).lookup(&key, self.now()) {
            Lookup::Live(t) => t,
            Lookup::Expired => {
                return Err(refuse(
                    None,
                    "expired token",
                    "the access token has expired; get a new one from /oauth/token",
                ))
            }
            Lookup::Unknown => {
                return Err(refuse(
                    None,
                    "unknown token",
                    "unknown access token; get one from /oauth/token",
                ))
            }
        };
        let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
        match clients.clients.get(&issued.client) {
            Some(c) if digest(c.secret_hash.as_bytes()) == issued.credential => {
                let allowed = c.allowed();
                Ok(Principal {
                    client: issued.client.clone(),
                    source: c.source.clone(),
                    v1p1: issued.v1p1.intersect(allowed),
                    v1p2: issued.v1p2.intersect(allowed),
                    status_info_on_success: c.status_info_on_success,
                    method: Method::Bearer,
                })
            }
            _ => {
                drop(clients);
                Err(refuse(
                    Some(&issued.client),
                    "revoked token",
                    "the access token was revoked (client removed or given a new secret)",
                ))
            }
        }
    }

    fn oauth1(
        &self,
        method: &http::Method,
        path_and_query: &str,
        header: Option<&str>,
        peer: IpAddr,
    ) -> Result<Principal, Refusal> {
        let signed = oauth1::parse(method.as_str(), &self.uri_prefix, path_and_query, header)
            .map_err(|m| Refusal::unauthorized(OAUTH, m.describe()))?;
        let Some((name, client)) = self.client_by_id(&signed.consumer_key) else {
            self.record(peer, Event::UnknownUser, None, "unknown oauth_consumer_key");
            return Err(Refusal::unauthorized(OAUTH, "unknown oauth_consumer_key"));
        };
        let fail = |reason: &str, said: String| {
            self.record(peer, Event::WrongCredentials, Some(&name), reason);
            Refusal::unauthorized(OAUTH, said)
        };
        let Some(secret) = client.oauth1_secret.as_deref() else {
            return Err(fail(
                "not an OAuth 1.0a client",
                "this client may not use OAuth 1.0a signatures; use OAuth 2".into(),
            ));
        };
        let Some(sm) = signed.method else {
            return Err(fail(
                "signature method refused",
                format!(
                    "oauth_signature_method `{}` is not accepted: use HMAC-SHA256 or HMAC-SHA1",
                    signed.method_name.escape_default()
                ),
            ));
        };
        if !signed.version_ok {
            return Err(fail(
                "bad oauth_version",
                "oauth_version must be 1.0".into(),
            ));
        }
        if signed.has_token {
            return Err(fail(
                "oauth_token given",
                "oauth_token is not used (two-legged OAuth 1.0a)".into(),
            ));
        }
        let now = self.wall();
        let Some(ts) = signed.timestamp else {
            return Err(fail(
                "bad timestamp",
                "oauth_timestamp is not a number".into(),
            ));
        };
        if ts.saturating_add(self.max_age) < now {
            return Err(fail(
                "stale timestamp",
                format!(
                    "oauth_timestamp is more than {} s old (server time {now})",
                    self.max_age
                ),
            ));
        }
        if ts > now.saturating_add(self.max_ahead) {
            return Err(fail(
                "timestamp ahead",
                format!(
                    "oauth_timestamp is more than {} s ahead (server time {now})",
                    self.max_ahead
                ),
            ));
        }
        let good = signed
            .signature
            .as_deref()
            .is_some_and(|sig| oauth1::verify(sm, secret, &signed.base, sig));
        if !good {
            return Err(fail(
                "bad signature",
                "the OAuth 1.0a signature does not match".into(),
            ));
        }
        let forget_at = ts.saturating_add(self.max_age).saturating_add(1);
        match lock(&self.nonces).check_and_insert(&name, &signed.nonce, forget_at, now) {
            NonceCheck::Fresh => {}
            NonceCheck::Replayed => {
                return Err(fail(
                    "replayed nonce",
                    "oauth_nonce was used already".into(),
                ))
            }
            NonceCheck::Full(wait) => {
                return Err(Refusal::busy(
                    wait,
                    "too many signed requests in the window",
                ))
            }
        }
        Ok(Principal {
            client: name.clone(),
            source: client.source.clone(),
            v1p1: client.allowed(),
            v1p2: Scopes::NONE,
            status_info_on_success: client.status_info_on_success,
            method: Method::OAuth1,
        })
    }
}

/// One of [`MAX_VERIFYING`] places, given back when dropped.
struct Slot<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Slot<'a> {
    fn take(n: &'a std::sync::atomic::AtomicUsize) -> Option<Slot<'a>> {
        use std::sync::atomic::Ordering::AcqRel;
        if n.fetch_add(1, AcqRel) >= MAX_VERIFYING {
            n.fetch_sub(1, AcqRel);
            return None;
        }
        Some(Slot(n))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Writes one request log line: client (or `-`), method, the path without its query (filter
/// values can be names or email addresses), status and milliseconds.
pub fn log_request(
    client: Option<&str>,
    method: &http::Method,
    path_and_query: &str,
    status: u16,
    elapsed: Duration,
) {
    let path = path_and_query.split('?').next().unwrap_or("");
    tracing::info!(
        client = client.unwrap_or("-"),
        method = %method,
        path,
        status,
        ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "API request"
    );
}
