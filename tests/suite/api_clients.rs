//! `rosterdrop api-client` (issue 16 item 6), through the real binary: what it prints and
//! stores, what it refuses, and that an `Auth` reading the same file (as the running daemon's
//! does) takes every change at once.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode};

use rosterdrop::api::auth::oauth1::{authorization_header, SignatureMethod};
use rosterdrop::api::auth::{Auth, Method};
use rosterdrop::api::clients::{ApiClients, Scope, Scopes};
use rosterdrop::api::ApiConfig;
use rosterdrop::sftp::accounts::verify_password;
use rosterdrop::sftp::defender::Defender;
use rosterdrop::sftp::DefenderConfig;

use crate::support::{cli, config, text, tmp};

struct Env {
    _dir: tempfile::TempDir,
    config: PathBuf,
    clients: PathBuf,
}

fn env() -> Env {
    let dir = tmp();
    let config = config(
        dir.path(),
        "state_dir = \"state\"\n[sources.north]\n[sources.south]\n[api]\npublic_url = \"https://roster.example.edu\"\n",
    );
    let clients = dir.path().join("state/api-clients.toml");
    Env {
        _dir: dir,
        config,
        clients,
    }
}

fn run(e: &Env, args: &[&str]) -> Output {
    let mut all = vec!["api-client"];
    all.extend_from_slice(args);
    cli(&e.config, &all)
}

fn ok(e: &Env, args: &[&str]) -> String {
    let o = run(e, args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refused(e: &Env, args: &[&str]) -> String {
    let o = run(e, args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `client id:` and `secret:` lines of `add` or `secret`.
fn printed(out: &str) -> (String, String) {
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no `{k}` in:\n{out}"))
            .trim()
            .to_owned()
    };
    (field("client id:"), field("secret:"))
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn add_list_secret_remove() {
    let e = env();
    let out = ok(&e, &["add", "moodle", "--source", "north"]);
    let (id, secret) = printed(&out);
    assert!(
        out.contains("roster-core.readonly roster.readonly"),
        "{out}"
    );
    assert!(!out.contains("demographics"), "{out}");
    assert_eq!(mode(&e.clients), 0o600);
    let file = std::fs::read_to_string(&e.clients).unwrap();
    assert!(
        !file.contains(&secret),
        "the secret is stored as a hash only"
    );
    let c = ApiClients::load(&e.clients).unwrap();
    let m = c.get("moodle").unwrap();
    assert_eq!(m.client_id, id);
    assert_eq!(m.source, "north");
    assert!(verify_password(&m.secret_hash, &secret));
    assert_eq!(m.oauth1_secret, None);

    // Demographics only when asked; --oauth1 keeps the secret for signatures.
    let out = ok(
        &e,
        &[
            "add",
            "d2l",
            "--source",
            "south",
            "--scope",
            "roster.readonly",
            "--scope",
            "roster-demographics.readonly",
            "--oauth1",
        ],
    );
    let (id2, secret2) = printed(&out);
    assert_ne!(id, id2);
    let c = ApiClients::load(&e.clients).unwrap();
    let d = c.get("d2l").unwrap();
    assert_eq!(d.scopes, vec![Scope::Roster, Scope::RosterDemographics]);
    assert_eq!(d.oauth1_secret.as_deref(), Some(secret2.as_str()));

    let list = ok(&e, &["list"]);
    for want in ["moodle", "d2l", &id, &id2, "north", "south"] {
        assert!(list.contains(want), "{want}: {list}");
    }
    assert!(
        !list.contains(&secret) && !list.contains(&secret2),
        "{list}"
    );

    // A new secret: same id, the old secret no longer verifies.
    let out = ok(&e, &["secret", "moodle"]);
    let (same, new) = printed(&out);
    assert_eq!(same, id);
    assert_ne!(new, secret);
    let c = ApiClients::load(&e.clients).unwrap();
    let m = c.get("moodle").unwrap();
    assert!(verify_password(&m.secret_hash, &new));
    assert!(!verify_password(&m.secret_hash, &secret));

    ok(&e, &["remove", "d2l"]);
    let c = ApiClients::load(&e.clients).unwrap();
    assert_eq!(c.clients.keys().collect::<Vec<_>>(), vec!["moodle"]);
    assert_eq!(mode(&e.clients), 0o600);
}

#[test]
fn refusals_are_plain() {
    let e = env();
    let err = refused(&e, &["list"]);
    assert!(err.contains("no API clients yet"), "{err}");
    let err = refused(&e, &["add", "x", "--source", "west"]);
    assert!(
        err.contains("no source `west`") && err.contains("north, south"),
        "{err}"
    );
    assert!(!e.clients.exists(), "a refused add writes nothing");
    let err = refused(
        &e,
        &["add", "x", "--source", "north", "--scope", "gradebook"],
    );
    assert!(err.contains("unknown scope `gradebook`"), "{err}");
    let err = refused(&e, &["add", "Bad/Name", "--source", "north"]);
    assert!(err.contains("invalid name"), "{err}");
    ok(&e, &["add", "x", "--source", "north"]);
    let err = refused(&e, &["add", "x", "--source", "south"]);
    assert!(err.contains("already exists"), "{err}");
    let err = refused(&e, &["secret", "nobody"]);
    assert!(err.contains("no API client named"), "{err}");
    let err = refused(&e, &["remove", "nobody"]);
    assert!(err.contains("no API client named"), "{err}");
    let o = run(&e, &["add", "y"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "--source is required: {}",
        text(&o)
    );
}

fn peer() -> IpAddr {
    IpAddr::from([192, 0, 2, 1])
}

fn token(auth: &Auth, id: &str, secret: &str) -> (StatusCode, Option<String>) {
    let mut h = HeaderMap::new();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
    );
    let r = auth.token(&h, b"grant_type=client_credentials", peer());
    let t = r.body["access_token"].as_str().map(str::to_owned);
    (r.status, t)
}

fn with_bearer(auth: &Auth, t: &str) -> Result<rosterdrop::api::auth::Principal, StatusCode> {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    auth.authenticate(
        &http::Method::GET,
        "/ims/oneroster/rostering/v1p2/users",
        &h,
        peer(),
    )
    .map_err(|r| r.status)
}

/// Waits out the interval at which `Auth` looks at the file (as the daemon's does).
fn settle() {
    std::thread::sleep(rosterdrop::api::auth::RELOAD_EVERY + Duration::from_millis(50));
}

#[test]
fn a_running_auth_takes_every_command_at_once() {
    let e = env();
    let (id, secret) = printed(&ok(&e, &["add", "lms", "--source", "north"]));
    let api = ApiConfig {
        public_url: Some("https://roster.example.edu".into()),
        ..ApiConfig::default()
    };
    let defender = Arc::new(Defender::new(DefenderConfig::default()));
    let auth = Auth::new(&api, &e.clients, defender).unwrap();
    let (status, t) = token(&auth, &id, &secret);
    assert_eq!(status, StatusCode::OK);
    let t = t.unwrap();
    let p = with_bearer(&auth, &t).unwrap();
    assert_eq!((p.client.as_str(), p.source.as_str()), ("lms", "north"));
    assert_eq!(p.v1p2, Scopes::of(&[Scope::RosterCore, Scope::Roster]));

    // `secret`: the old secret and the token made with it stop working; the new one works.
    let (_, new) = printed(&ok(&e, &["secret", "lms"]));
    settle();
    assert_eq!(with_bearer(&auth, &t), Err(StatusCode::UNAUTHORIZED));
    assert_eq!(token(&auth, &id, &secret).0, StatusCode::UNAUTHORIZED);
    let (status, t2) = token(&auth, &id, &new);
    assert_eq!(status, StatusCode::OK);
    let t2 = t2.unwrap();
    assert!(with_bearer(&auth, &t2).is_ok());

    // `add --oauth1` while running: its signed requests are taken (1.1 only).
    let (oid, osecret) = printed(&ok(&e, &["add", "d2l", "--source", "south", "--oauth1"]));
    settle();
    let url = "https://roster.example.edu/ims/oneroster/v1p1/users?limit=10";
    let sign = |nonce: &str| {
        let mut h = HeaderMap::new();
        let v = authorization_header(
            "GET",
            url,
            &oid,
            &osecret,
            SignatureMethod::HmacSha256,
            nonce,
            rosterdrop::clock::now_secs(),
        );
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&v).unwrap(),
        );
        auth.authenticate(
            &http::Method::GET,
            "/ims/oneroster/v1p1/users?limit=10",
            &h,
            peer(),
        )
    };
    let p = sign("n1").unwrap();
    assert_eq!(p.method, Method::OAuth1);
    assert_eq!(p.source, "south");
    assert_eq!(p.v1p2, Scopes::NONE);

    // `remove`: tokens and signatures stop at once.
    ok(&e, &["remove", "lms"]);
    ok(&e, &["remove", "d2l"]);
    settle();
    assert_eq!(with_bearer(&auth, &t2), Err(StatusCode::UNAUTHORIZED));
    assert_eq!(sign("n2").unwrap_err().status, StatusCode::UNAUTHORIZED);
}
