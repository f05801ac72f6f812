//! API clients: who may call the REST provider, for which source, with which scopes.
//!
//! Managed like the SFTP accounts (`rosterdrop api-client add|list|secret|remove`) and kept in
//! a TOML file (default `<state_dir>/api-clients.toml`), written atomically with mode 0600.
//! Each client has a name (for the admin and the logs), a random client id (what the client
//! sends as `client_id` or `oauth_consumer_key`), the source it may read, the scopes it may be
//! granted and the time it was made. The secret is generated here, shown once by the CLI and
//! stored as an argon2id PHC string, exactly as an SFTP password.
//!
//! **OAuth 1.0a and the secret.** An OAuth 1.0a signature is an HMAC keyed with the consumer
//! secret itself, so a verifier needs the secret, not a hash of it. Decision: a client created
//! with `--oauth1` additionally keeps its secret in `oauth1_secret` (the file is 0600 and only
//! the daemon's user reads it; encrypting it with a key kept beside it in the same state
//! directory would protect nothing more). Clients without it can use OAuth 2 only; their
//! secret exists nowhere but in the admin's hands. `secret NAME` replaces both the hash and,
//! for such a client, the kept secret.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::api::status::Version;
use crate::api::ApiConfig;
use crate::fsutil::{read_if_exists, write_private, IoError};
use crate::sftp::accounts::{hash_password, valid_name, AccountError};

/// Errors of the clients file and the `api-client` command.
#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error("reading or writing {0}")]
    Io(#[from] IoError),
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid name {0:?}: use 1-32 characters a-z, 0-9, '_', '-', '.', starting with a letter or digit")]
    InvalidName(String),
    #[error("API client {0:?} already exists")]
    Exists(String),
    #[error("no API client named {0:?}")]
    NotFound(String),
    #[error("API clients {0:?} and {1:?} have the same client id")]
    DuplicateId(String, String),
    #[error("API client {name:?} has an invalid client id")]
    InvalidId { name: String },
    #[error("API client {0:?} has no scopes")]
    NoScopes(String),
    #[error("unknown scope `{0}`: use roster-core.readonly, roster.readonly or roster-demographics.readonly")]
    UnknownScope(String),
    #[error("no source `{name}` is configured (configured: {configured}); add a [sources.{name}] table first")]
    UnknownSource { name: String, configured: String },
    #[error("no API clients yet in {0}: create one with `rosterdrop api-client add NAME --source SOURCE`")]
    NoFile(PathBuf),
    #[error("hashing the secret: {0}")]
    Hash(String),
}

/// The three rostering scopes; each exists once per version
/// (`https://purl.imsglobal.org/spec/or/v1p1/scope/...` and `.../v1p2/scope/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "roster-core.readonly")]
    RosterCore,
    #[serde(rename = "roster.readonly")]
    Roster,
    #[serde(rename = "roster-demographics.readonly")]
    RosterDemographics,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::RosterCore, Scope::Roster, Scope::RosterDemographics];

    /// The short name, as in the clients file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scope::RosterCore => "roster-core.readonly",
            Scope::Roster => "roster.readonly",
            Scope::RosterDemographics => "roster-demographics.readonly",
        }
    }

    /// The scope URI of one version, as requested and granted on the token endpoint.
    pub fn uri(self, version: Version) -> String {
        crate::api::routes_table::scope_uri(version, self.name())
    }

    /// Parses a short name.
    pub fn parse(name: &str) -> Result<Scope, ClientsError> {
        Scope::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| ClientsError::UnknownScope(name.to_owned()))
    }

    /// Parses a scope URI of either version.
    pub fn parse_uri(uri: &str) -> Option<(Version, Scope)> {
        [Version::V1p1, Version::V1p2].into_iter().find_map(|v| {
            let name = uri.strip_prefix(crate::api::routes_table::scope_prefix(v))?;
            Scope::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .map(|s| (v, s))
        })
    }

    fn bit(self) -> u8 {
        match self {
            Scope::RosterCore => 1,
            Scope::Roster => 2,
            Scope::RosterDemographics => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Scope`]s (a small bit set: cheap to copy and compare).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |b, s| b | s.bit()))
    }
    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }
    pub fn insert(&mut self, s: Scope) {
        self.0 |= s.bit();
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn intersect(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }
    /// The scopes in the set, in [`Scope::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// The scopes a client gets when `--scope` is not given: everything but demographics.
pub const DEFAULT_SCOPES: [Scope; 2] = [Scope::RosterCore, Scope::Roster];

/// One API client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiClient {
    /// What the client sends as `client_id` (OAuth 2) or `oauth_consumer_key` (OAuth 1.0a).
    pub client_id: String,
    /// argon2id PHC string of the secret.
    pub secret_hash: String,
    /// The secret itself, kept only for clients made with `--oauth1` (see the module notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth1_secret: Option<String>,
    /// The one source whose roster the client reads.
    pub source: String,
    /// Scopes the client may be granted (in both versions).
    pub scopes: Vec<Scope>,
    /// When it was made, UTC (`YYYY-MM-DDTHH:MM:SSZ`), for the admin's list only.
    #[serde(default)]
    pub created: String,
    /// Moodle compatibility (design notes §3.6 item 2): every 1.2 success body carries an
    /// `imsx_statusInfo` object.
    #[serde(default)]
    pub status_info_on_success: bool,
}

impl ApiClient {
    pub fn allowed(&self) -> Scopes {
        Scopes::of(&self.scopes)
    }
}

/// All API clients, by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiClients {
    #[serde(default)]
    pub clients: BTreeMap<String, ApiClient>,
}

/// What `add` and `secret` hand back to show once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub secret: String,
}

/// Length of client ids (alphabet of 33 symbols: about 100 bits; not secret, but not guessable).
pub const ID_LEN: usize = 20;
/// Length of secrets (alphabet of 56 symbols: about 232 bits).
pub const SECRET_LEN: usize = 40;
const ID_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

fn random_text(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new client id: printable, URL- and header-safe, no look-alike characters.
pub fn generate_client_id() -> String {
    random_text(ID_LEN, ID_ALPHABET)
}

/// A new secret.
pub fn generate_secret() -> String {
    random_text(SECRET_LEN, SECRET_ALPHABET)
}

/// A client id as the file may hold it: 1-64 characters `[A-Za-z0-9._-]` (generated ones are
/// [`ID_LEN`] long; a hand-edited file may carry a consumer key another system issued).
pub fn valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The clients file of a configuration (relative paths are taken in `state_dir`).
pub fn clients_path(cfg: &ApiConfig, state_dir: &Path) -> PathBuf {
    state_dir.join(&cfg.clients_file)
}

fn hash(secret: &str) -> Result<String, ClientsError> {
    hash_password(secret).map_err(|e| match e {
        AccountError::Hash(m) => ClientsError::Hash(m),
        other => ClientsError::Hash(other.to_string()),
    })
}

fn now_text() -> String {
    crate::store::views::fmt_time(crate::clock::now_secs()).replace(' ', "T")
}

impl ApiClients {
    /// Loads the clients file; a missing file is an empty set. Every entry is checked (names,
    /// ids unique and well formed, at least one scope).
    pub fn load(path: &Path) -> Result<ApiClients, ClientsError> {
        let Some(text) = read_if_exists(path)? else {
            return Ok(ApiClients::default());
        };
        let clients: ApiClients = toml::from_str(&text).map_err(|e| ClientsError::Parse {
            path: path.to_owned(),
            message: crate::config::toml_error(&text, &e),
        })?;
        clients.check()?;
        Ok(clients)
    }

    fn check(&self) -> Result<(), ClientsError> {
        let mut ids: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, c) in &self.clients {
            for n in [name, &c.source] {
                if !valid_name(n) {
                    return Err(ClientsError::InvalidName(n.clone()));
                }
            }
            if !valid_client_id(&c.client_id) {
                return Err(ClientsError::InvalidId { name: name.clone() });
            }
            if let Some(other) = ids.insert(&c.client_id, name) {
                return Err(ClientsError::DuplicateId(other.to_owned(), name.clone()));
            }
            if c.scopes.is_empty() {
                return Err(ClientsError::NoScopes(name.clone()));
            }
        }
        Ok(())
    }

    /// Writes the file atomically (temporary file, fsync, rename), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), ClientsError> {
        let text = toml::to_string_pretty(self).map_err(|e| ClientsError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let header = "# rosterdrop API clients. Managed by `rosterdrop api-client`; secrets are argon2id hashes\n# (oauth1_secret: kept for OAuth 1.0a signatures, which need the secret itself).\n";
        Ok(write_private(path, header, &text)?)
    }

    pub fn get(&self, name: &str) -> Option<&ApiClient> {
        self.clients.get(name)
    }

    /// The client with this client id, and its name.
    pub fn by_id(&self, client_id: &str) -> Option<(&str, &ApiClient)> {
        self.clients
            .iter()
            .find(|(_, c)| c.client_id == client_id)
            .map(|(n, c)| (n.as_str(), c))
    }

    /// Adds a client with a fresh id and secret; returns them (to show once). `scopes` empty
    /// means [`DEFAULT_SCOPES`]; `oauth1` keeps the secret for OAuth 1.0a.
    pub fn add(
        &mut self,
        name: &str,
        source: &str,
        scopes: &[Scope],
        oauth1: bool,
        status_info_on_success: bool,
    ) -> Result<Credentials, ClientsError> {
        for n in [name, source] {
            if !valid_name(n) {
                return Err(ClientsError::InvalidName(n.to_owned()));
            }
        }
        if self.clients.contains_key(name) {
            return Err(ClientsError::Exists(name.to_owned()));
        }
        let mut scopes: Vec<Scope> = if scopes.is_empty() {
            DEFAULT_SCOPES.to_vec()
        } else {
            scopes.to_vec()
        };
        scopes.sort();
        scopes.dedup();
        let taken: HashSet<&str> = self
            .clients
            .values()
            .map(|c| c.client_id.as_str())
            .collect();
        let client_id = loop {
            let id = generate_client_id();
            if !taken.contains(id.as_str()) {
                break id;
            }
        };
        let secret = generate_secret();
        self.clients.insert(
            name.to_owned(),
            ApiClient {
                client_id: client_id.clone(),
                secret_hash: hash(&secret)?,
                oauth1_secret: oauth1.then(|| secret.clone()),
                source: source.to_owned(),
                scopes,
                created: now_text(),
                status_info_on_success,
            },
        );
        Ok(Credentials { client_id, secret })
    }

    /// Gives a client a new secret (the old one stops working); returns it (to show once).
    pub fn regenerate_secret(&mut self, name: &str) -> Result<Credentials, ClientsError> {
        let c = self
            .clients
            .get_mut(name)
            .ok_or_else(|| ClientsError::NotFound(name.to_owned()))?;
        let secret = generate_secret();
        c.secret_hash = hash(&secret)?;
        if c.oauth1_secret.is_some() {
            c.oauth1_secret = Some(secret.clone());
        }
        Ok(Credentials {
            client_id: c.client_id.clone(),
            secret,
        })
    }

    pub fn remove(&mut self, name: &str) -> Result<ApiClient, ClientsError> {
        self.clients
            .remove(name)
            .ok_or_else(|| ClientsError::NotFound(name.to_owned()))
    }
}

/// One `rosterdrop api-client` command (the CLI maps its arguments onto this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `add NAME --source S [--scope S ...] [--oauth1] [--status-info-on-success]`
    Add {
        name: String,
        source: String,
        scopes: Vec<String>,
        oauth1: bool,
        status_info_on_success: bool,
    },
    List,
    /// A new secret; the old one and every token made with it stop working.
    Secret {
        name: String,
    },
    Remove {
        name: String,
    },
}

/// Runs an `api-client` command on the clients file at `path` and returns what to print.
/// `sources` are the configured source names (`add` refuses any other). A running daemon
/// notices the changed file by itself (see `auth::Auth`): nothing needs telling.
pub fn execute(action: Action, path: &Path, sources: &[String]) -> Result<String, ClientsError> {
    use std::fmt::Write as _;
    if !matches!(action, Action::Add { .. }) && !path.exists() {
        return Err(ClientsError::NoFile(path.to_owned()));
    }
    let mut clients = ApiClients::load(path)?;
    let mut out = String::new();
    match action {
        Action::Add {
            name,
            source,
            scopes,
            oauth1,
            status_info_on_success,
        } => {
            if !sources.contains(&source) {
                return Err(ClientsError::UnknownSource {
                    name: source,
                    configured: if sources.is_empty() {
                        "none".into()
                    } else {
                        sources.join(", ")
                    },
                });
            }
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            let cred = clients.add(&name, &source, &scopes, oauth1, status_info_on_success)?;
            clients.save(path)?;
            let c = clients
                .get(&name)
                .ok_or(ClientsError::NotFound(name.clone()))?;
            let _ = writeln!(out, "API client `{name}` (source `{source}`) created");
            let _ = writeln!(out, "client id: {}", cred.client_id);
            let _ = writeln!(out, "secret: {}", cred.secret);
            let _ = writeln!(out, "scopes: {}", scope_list(c));
            let _ = writeln!(
                out,
                "  the secret is shown once; `rosterdrop api-client secret {name}` makes a new one"
            );
            let _ = writeln!(
                out,
                "{}",
                if oauth1 {
                    "  OAuth 2 client credentials and OAuth 1.0a signatures (1.1 only)"
                } else {
                    "  OAuth 2 client credentials only (add with --oauth1 for OAuth 1.0a signatures)"
                }
            );
        }
        Action::List => {
            let _ = writeln!(
                out,
                "{:<20} {:<20} {:<20} {:<6} {:<20} scopes",
                "client", "client id", "source", "oauth1", "created"
            );
            for (name, c) in &clients.clients {
                let _ = writeln!(
                    out,
                    "{:<20} {:<20} {:<20} {:<6} {:<20} {}",
                    name,
                    c.client_id,
                    c.source,
                    if c.oauth1_secret.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    c.created,
                    scope_list(c)
                );
            }
        }
        Action::Secret { name } => {
            let cred = clients.regenerate_secret(&name)?;
            clients.save(path)?;
            let _ = writeln!(out, "new secret for API client `{name}`");
            let _ = writeln!(out, "client id: {}", cred.client_id);
            let _ = writeln!(out, "secret: {}", cred.secret);
            let _ = writeln!(
                out,
                "  shown once; the old secret and the tokens made with it no longer work"
            );
        }
        Action::Remove { name } => {
            clients.remove(&name)?;
            clients.save(path)?;
            let _ = writeln!(out, "API client {name} removed; its tokens no longer work");
        }
    }
    Ok(out)
}

fn scope_list(c: &ApiClient) -> String {
    c.scopes
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sftp::accounts::verify_password;
    use std::fs;

    #[test]
    fn scopes_parse_and_print() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.name()).unwrap(), s);
            for v in [Version::V1p1, Version::V1p2] {
                assert_eq!(Scope::parse_uri(&s.uri(v)), Some((v, s)));
            }
        }
        assert_eq!(
            Scope::parse_uri("https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly"),
            Some((Version::V1p2, Scope::Roster))
        );
        assert_eq!(
            Scope::parse_uri("https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly"),
            Some((Version::V1p1, Scope::RosterCore))
        );
        for bad in [
            "roster.readonly",
            "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly",
            "https://purl.imsglobal.org/spec/or/v1p3/scope/roster.readonly",
            "",
        ] {
            assert_eq!(Scope::parse_uri(bad), None, "{bad}");
        }
        assert!(matches!(
            Scope::parse("demographics"),
            Err(ClientsError::UnknownScope(_))
        ));
        let set = Scopes::of(&[Scope::Roster, Scope::RosterDemographics]);
        assert!(set.contains(Scope::Roster) && !set.contains(Scope::RosterCore));
        assert_eq!(
            set.intersect(Scopes::of(&DEFAULT_SCOPES))
                .iter()
                .collect::<Vec<_>>(),
            vec![Scope::Roster]
        );
    }

    #[test]
    fn add_regenerate_remove() {
        let mut c = ApiClients::default();
        let cred = c.add("moodle", "north", &[], false, true).unwrap();
        assert!(valid_client_id(&cred.client_id), "{}", cred.client_id);
        assert_eq!(cred.secret.len(), SECRET_LEN);
        let m = c.get("moodle").unwrap().clone();
        assert_eq!(m.scopes, DEFAULT_SCOPES.to_vec());
        assert!(m.secret_hash.starts_with("$argon2id$"));
        assert!(!m.secret_hash.contains(&cred.secret));
        assert!(verify_password(&m.secret_hash, &cred.secret));
        assert_eq!(m.oauth1_secret, None);
        assert!(m.status_info_on_success);
        assert_eq!(c.by_id(&cred.client_id).map(|(n, _)| n), Some("moodle"));

        let d = c
            .add(
                "d2l",
                "north",
                &[Scope::RosterDemographics, Scope::Roster, Scope::Roster],
                true,
                false,
            )
            .unwrap();
        assert_ne!(d.client_id, cred.client_id);
        let dc = c.get("d2l").unwrap();
        assert_eq!(dc.scopes, vec![Scope::Roster, Scope::RosterDemographics]);
        assert_eq!(dc.oauth1_secret.as_deref(), Some(d.secret.as_str()));

        let again = c.regenerate_secret("d2l").unwrap();
        assert_eq!(again.client_id, d.client_id);
        assert_ne!(again.secret, d.secret);
        let dc = c.get("d2l").unwrap();
        assert!(!verify_password(&dc.secret_hash, &d.secret));
        assert!(verify_password(&dc.secret_hash, &again.secret));
        assert_eq!(dc.oauth1_secret.as_deref(), Some(again.secret.as_str()));

        assert!(matches!(
            c.add("moodle", "north", &[], false, false),
            Err(ClientsError::Exists(_))
        ));
        assert!(matches!(
            c.add("Bad Name", "north", &[], false, false),
            Err(ClientsError::InvalidName(_))
        ));
        assert!(matches!(
            c.regenerate_secret("nobody"),
            Err(ClientsError::NotFound(_))
        ));
        c.remove("moodle").unwrap();
        assert!(c.by_id(&cred.client_id).is_none());
        assert!(matches!(c.remove("moodle"), Err(ClientsError::NotFound(_))));
    }

    #[test]
    fn file_is_private_roundtrips_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/api-clients.toml");
        let mut c = ApiClients::default();
        c.add("a", "north", &[], true, false).unwrap();
        c.add("b", "south", &[Scope::RosterCore], false, false)
            .unwrap();
        c.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(ApiClients::load(&path).unwrap(), c);
        assert_eq!(
            ApiClients::load(&dir.path().join("none.toml")).unwrap(),
            ApiClients::default()
        );
        // Hand edits that cannot work are refused with the client named.
        let text = fs::read_to_string(&path).unwrap();
        let id_b = c.get("b").unwrap().client_id.clone();
        let id_a = c.get("a").unwrap().client_id.clone();
        fs::write(&path, text.replace(&id_b, &id_a)).unwrap();
        assert!(matches!(
            ApiClients::load(&path),
            Err(ClientsError::DuplicateId(_, _))
        ));
        fs::write(&path, text.replace("roster-core.readonly", "gradebook")).unwrap();
        assert!(matches!(
            ApiClients::load(&path),
            Err(ClientsError::Parse { .. })
        ));
        fs::write(&path, text.replace(&id_b, "has space")).unwrap();
        assert!(matches!(
            ApiClients::load(&path),
            Err(ClientsError::InvalidId { .. })
        ));
    }

    #[test]
    fn execute_refuses_unknown_sources_and_shows_the_secret_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-clients.toml");
        let sources = vec!["north".to_string(), "south".to_string()];
        let e = execute(Action::List, &path, &sources).unwrap_err();
        assert!(matches!(e, ClientsError::NoFile(_)));
        let add = |source: &str, scopes: &[&str]| Action::Add {
            name: "sis".into(),
            source: source.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            oauth1: false,
            status_info_on_success: false,
        };
        let e = execute(add("west", &[]), &path, &sources).unwrap_err();
        assert!(e.to_string().contains("configured: north, south"), "{e}");
        assert!(!path.exists());
        let e = execute(add("north", &["gradebook.readonly"]), &path, &sources).unwrap_err();
        assert!(matches!(e, ClientsError::UnknownScope(_)));
        let out = execute(add("north", &["roster.readonly"]), &path, &sources).unwrap();
        let secret = out
            .lines()
            .find_map(|l| l.strip_prefix("secret: "))
            .unwrap()
            .to_owned();
        let c = ApiClients::load(&path).unwrap();
        assert!(verify_password(&c.get("sis").unwrap().secret_hash, &secret));
        let list = execute(Action::List, &path, &sources).unwrap();
        assert!(list.contains("sis") && list.contains("roster.readonly"));
        assert!(!list.contains(&secret));
        assert!(!fs::read_to_string(&path).unwrap().contains(&secret));
    }
}
