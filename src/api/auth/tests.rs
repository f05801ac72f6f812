//! `Auth` as the HTTP layer drives it: token requests, Bearer and OAuth 1.0a requests, the
//! defender, the rate limit and reloads of the clients file.

use std::sync::atomic::Ordering;

use base64::Engine as _;

use super::oauth1::{authorization_header, base_string, pct_encode, signature, SignatureMethod};
use super::*;
use crate::api::clients::{Credentials, Scope};
use crate::sftp::DefenderConfig;

const PUBLIC: &str = "https://roster.example.edu";

struct Fx {
    _dir: tempfile::TempDir,
    path: PathBuf,
    auth: Auth,
    defender: Arc<Defender>,
}

fn peer(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn cfg() -> ApiConfig {
    ApiConfig {
        public_url: Some(PUBLIC.into()),
        token_ttl_secs: 600,
        ..ApiConfig::default()
    }
}

/// A clients file holding `clients` (name, source, scopes, oauth1), and an `Auth` on it that
/// looks at the file at every call.
fn fixture(
    cfg: ApiConfig,
    defender: DefenderConfig,
    clients: &[(&str, &str, &[Scope], bool)],
) -> (Fx, Vec<Credentials>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api-clients.toml");
    let mut c = ApiClients::default();
    let creds = clients
        .iter()
        .map(|(n, s, sc, o)| c.add(n, s, sc, *o, false).unwrap())
        .collect();
    c.save(&path).unwrap();
    let defender = Arc::new(Defender::new(defender));
    let auth = Auth::new(&cfg, &path, defender.clone())
        .unwrap()
        .with_reload_interval(Duration::ZERO);
    (
        Fx {
            _dir: dir,
            path,
            auth,
            defender,
        },
        creds,
    )
}

fn simple() -> (Fx, Credentials) {
    let (fx, mut c) = fixture(cfg(), quiet_defender(), &[("lms", "north", &[], false)]);
    (fx, c.remove(0))
}

fn quiet_defender() -> DefenderConfig {
    DefenderConfig {
        threshold: 1000,
        ..DefenderConfig::default()
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn form_headers(auth: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Some(a) = auth {
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(a).unwrap(),
        );
    }
    h
}

fn get_token(fx: &Fx, c: &Credentials, scope: Option<&str>) -> TokenReply {
    let mut body = String::from("grant_type=client_credentials");
    if let Some(s) = scope {
        body.push_str("&scope=");
        body.push_str(&pct_encode(s.as_bytes()));
    }
    fx.auth.token(
        &form_headers(Some(&basic(&c.client_id, &c.secret))),
        body.as_bytes(),
        peer(1),
    )
}

fn token_text(r: &TokenReply) -> String {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["access_token"].as_str().unwrap().to_owned()
}

fn bearer(t: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    h
}

const USERS: &str = "/ims/oneroster/rostering/v1p2/users?limit=5";

fn call(fx: &Fx, h: &HeaderMap, ip: IpAddr) -> Result<Principal, Refusal> {
    fx.auth.authenticate(&http::Method::GET, USERS, h, ip)
}

fn uri(v: Version, s: Scope) -> String {
    s.uri(v)
}

/// The score the defender holds for an address, seen from outside: how many more wrong
/// credentials it takes to ban it (the defender keeps its scores private). Bans the address.
fn wrongs_until_ban(d: &Defender, ip: IpAddr, max: u32) -> Option<u32> {
    (1..=max).find(|_| d.record(ip, Event::WrongCredentials))
}

#[test]
fn token_by_basic_or_body_and_its_use() {
    let (fx, c) = simple();
    let r = get_token(&fx, &c, None);
    let t = token_text(&r);
    // 32 random bytes, base64url without padding.
    assert_eq!(t.len(), 43);
    assert!(t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 600);
    assert_eq!(r.headers[http::header::CACHE_CONTROL], "no-store");
    assert_eq!(r.client.as_deref(), Some("lms"));
    // No scope asked: everything the client may have, in both versions.
    let granted: Vec<&str> = r.body["scope"].as_str().unwrap().split(' ').collect();
    assert_eq!(granted.len(), 4, "{granted:?}");
    for v in [Version::V1p1, Version::V1p2] {
        for s in [Scope::RosterCore, Scope::Roster] {
            assert!(granted.contains(&uri(v, s).as_str()), "{granted:?}");
        }
    }
    let p = call(&fx, &bearer(&t), peer(1)).unwrap();
    assert_eq!(p.client, "lms");
    assert_eq!(p.source, "north");
    assert_eq!(p.method, Method::Bearer);
    assert_eq!(
        p.scopes(Version::V1p2),
        Scopes::of(&[Scope::RosterCore, Scope::Roster])
    );
    assert_eq!(p.v1p1, p.v1p2);
    assert!(!p.status_info_on_success);
    assert!(p.has_any(Version::V1p1, &[Scope::RosterDemographics, Scope::Roster]));
    assert!(!p.has_any(Version::V1p2, &[Scope::RosterDemographics]));

    // Body credentials work too; the two tokens differ.
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        c.client_id, c.secret
    );
    let r = fx.auth.token(&form_headers(None), body.as_bytes(), peer(1));
    let t2 = token_text(&r);
    assert_ne!(t, t2);
    assert!(call(&fx, &bearer(&t2), peer(1)).is_ok());
    // Basic with the id and secret percent-encoded (RFC 6749 §2.3.1).
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let h = form_headers(Some(&basic(&enc(&c.client_id), &enc(&c.secret))));
    let r = fx.auth.token(&h, b"grant_type=client_credentials", peer(1));
    token_text(&r);
    // Nothing was counted against the address.
    assert_eq!(wrongs_until_ban(&fx.defender, peer(1), 2000), Some(1000));
}

#[test]
fn token_errors_and_what_the_defender_counts() {
    let (fx, mut c) = fixture(
        cfg(),
        DefenderConfig {
            threshold: 100,
            ..DefenderConfig::default()
        },
        &[
            ("lms", "north", &[], false),
            ("demo", "north", &[Scope::RosterDemographics], false),
        ],
    );
    let (lms, demo) = (c.remove(0), c.remove(0));
    let ip = peer(7);
    let ask = |h: HeaderMap, body: &str| fx.auth.token(&h, body.as_bytes(), ip);
    let gt = "grant_type=client_credentials";

    // Wrong secret by Basic: 401 invalid_client with the Basic challenge; counts 1.
    let r = ask(form_headers(Some(&basic(&lms.client_id, "nope"))), gt);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"], "invalid_client");
    assert_eq!(
        r.headers[http::header::WWW_AUTHENTICATE],
        "Basic realm=\"rosterdrop\""
    );
    assert!(r.client.is_none());
    // Unknown client id in the body: invalid_client; counts 2 (an unknown user).
    let r = ask(
        form_headers(None),
        &format!("{gt}&client_id=nobody&client_secret={}", lms.secret),
    );
    assert_eq!(
        (r.status.as_u16(), r.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // The secret never appears in a reply.
    assert!(!r.body.to_string().contains(&lms.secret));
    // Malformed requests are refused without counting.
    let both = ask(
        form_headers(Some(&basic(&lms.client_id, &lms.secret))),
        &format!(
            "{gt}&client_id={}&client_secret={}",
            lms.client_id, lms.secret
        ),
    );
    assert_eq!(
        (both.status.as_u16(), both.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let grant = ask(
        form_headers(Some(&basic(&lms.client_id, &lms.secret))),
        "grant_type=password",
    );
    assert_eq!(grant.body["error"], "unsupported_grant_type");
    let none = ask(form_headers(None), gt);
    assert_eq!(
        (none.status.as_u16(), none.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A right secret with only scopes it may not have: invalid_scope, not counted.
    let r = fx.auth.token(
        &form_headers(Some(&basic(&lms.client_id, &lms.secret))),
        format!(
            "{gt}&scope={}",
            pct_encode(uri(Version::V1p2, Scope::RosterDemographics).as_bytes())
        )
        .as_bytes(),
        ip,
    );
    assert_eq!(
        (r.status.as_u16(), r.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    assert_eq!(r.client.as_deref(), Some("lms"));
    // Scope narrowing: the demographics client asking for everything gets demographics only.
    let all: Vec<String> = Scope::ALL
        .iter()
        .flat_map(|s| [uri(Version::V1p1, *s), uri(Version::V1p2, *s)])
        .collect();
    let r = get_token(&fx, &demo, Some(&all.join(" ")));
    let granted = r.body["scope"].as_str().unwrap().to_owned();
    assert_eq!(
        granted,
        format!(
            "{} {}",
            uri(Version::V1p1, Scope::RosterDemographics),
            uri(Version::V1p2, Scope::RosterDemographics)
        )
    );
    let p = call(&fx, &bearer(&token_text(&r)), peer(1)).unwrap();
    assert_eq!(p.v1p2, Scopes::of(&[Scope::RosterDemographics]));
    // 1 (wrong secret) + 2 (unknown client) so far: 97 more wrong credentials ban.
    assert_eq!(wrongs_until_ban(&fx.defender, ip, 200), Some(97));
}

#[test]
fn a_banned_address_is_refused_before_any_work() {
    let (fx, mut c) = fixture(
        cfg(),
        DefenderConfig {
            threshold: 3,
            ..DefenderConfig::default()
        },
        &[("lms", "north", &[], true)],
    );
    let c = c.remove(0);
    let ip = peer(9);
    let good = get_token(&fx, &c, None);
    let t = token_text(&good);
    // An unknown id (2) and a wrong secret (1): banned.
    let h = form_headers(Some(&basic("unknown-id", "x")));
    fx.auth.token(&h, b"grant_type=client_credentials", ip);
    assert!(fx.defender.banned(ip).is_none());
    let h = form_headers(Some(&basic(&c.client_id, "x")));
    fx.auth.token(&h, b"grant_type=client_credentials", ip);
    assert!(fx.defender.banned(ip).is_some());
    // Right credentials from the banned address: 429 with Retry-After, on both endpoints.
    let h = form_headers(Some(&basic(&c.client_id, &c.secret)));
    let r = fx.auth.token(&h, b"grant_type=client_credentials", ip);
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers[http::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 1801, "{wait}");
    let e = call(&fx, &bearer(&t), ip).unwrap_err();
    assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.minor, Minor::ServerBusy);
    assert!(e.retry_after.is_some());
    // The same address as IPv4-mapped IPv6 (a dual-stack socket) is the same address.
    let mapped = match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    assert_eq!(
        call(&fx, &bearer(&t), mapped).unwrap_err().status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another address is not affected.
    assert!(call(&fx, &bearer(&t), peer(10)).is_ok());
}

#[test]
fn bearer_refusals_and_expiry() {
    let (fx, c) = simple();
    let t = token_text(&get_token(&fx, &c, None));
    let ip = peer(3);
    // No credentials: 401 with a challenge without an error code; nothing counted.
    let e = call(&fx, &HeaderMap::new(), ip).unwrap_err();
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        e.www_authenticate.as_deref(),
        Some("Bearer realm=\"rosterdrop\"")
    );
    assert_eq!(e.minor, Minor::UnauthorisedRequest);
    assert_eq!(
        e.headers()[http::header::WWW_AUTHENTICATE],
        "Bearer realm=\"rosterdrop\""
    );
    // Basic on an API path: not a scheme we take.
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&basic(&c.client_id, &c.secret)).unwrap(),
    );
    assert_eq!(
        call(&fx, &h, ip).unwrap_err().status,
        StatusCode::UNAUTHORIZED
    );
    // An unknown token: invalid_token; sent three times, it counts once.
    let bogus = "A".repeat(43);
    for _ in 0..3 {
        let e = call(&fx, &bearer(&bogus), ip).unwrap_err();
        assert_eq!(
            e.www_authenticate.as_deref(),
            Some("Bearer realm=\"rosterdrop\", error=\"invalid_token\"")
        );
        assert!(!e.description.contains(&bogus));
    }
    assert_eq!(wrongs_until_ban(&fx.defender, ip, 2000), Some(999));
    // The token is not taken from the query string.
    let q = format!("{USERS}&access_token={t}");
    let e = fx
        .auth
        .authenticate(&http::Method::GET, &q, &HeaderMap::new(), peer(4))
        .unwrap_err();
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    // Two Authorization headers.
    let mut two = bearer(&t);
    two.append(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    assert_eq!(
        call(&fx, &two, peer(4)).unwrap_err().status,
        StatusCode::UNAUTHORIZED
    );

    // The token works until its lifetime is over, then it is expired.
    assert!(call(&fx, &bearer(&t), peer(4)).is_ok());
    fx.auth.mono_skew_ms.store(599_000, Ordering::Relaxed);
    assert!(call(&fx, &bearer(&t), peer(4)).is_ok());
    fx.auth.mono_skew_ms.store(600_001, Ordering::Relaxed);
    let e = call(&fx, &bearer(&t), peer(4)).unwrap_err();
    assert!(e.description.contains("expired"), "{}", e.description);
    // A fresh token works again.
    let t2 = token_text(&get_token(&fx, &c, None));
    assert!(call(&fx, &bearer(&t2), peer(4)).is_ok());
}

#[test]
fn tokens_are_bounded_per_client() {
    let (fx, c) = simple();
    let first = token_text(&get_token(&fx, &c, None));
    let mut last = String::new();
    for _ in 0..tokens::PER_CLIENT {
        last = token_text(&get_token(&fx, &c, None));
    }
    assert_eq!(lock(&fx.auth.tokens).count(), tokens::PER_CLIENT);
    assert!(
        call(&fx, &bearer(&first), peer(1)).is_err(),
        "the oldest token made room"
    );
    assert!(call(&fx, &bearer(&last), peer(1)).is_ok());
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let (fx, mut c) = fixture(
        ApiConfig {
            rate_limit_per_sec: 1,
            rate_burst: 3,
            ..cfg()
        },
        quiet_defender(),
        &[("lms", "north", &[], false), ("other", "south", &[], false)],
    );
    let (lms, other) = (c.remove(0), c.remove(0));
    // The token request takes one from the bucket, two requests the rest.
    let t = token_text(&get_token(&fx, &lms, None));
    assert!(call(&fx, &bearer(&t), peer(1)).is_ok());
    assert!(call(&fx, &bearer(&t), peer(1)).is_ok());
    let e = call(&fx, &bearer(&t), peer(1)).unwrap_err();
    assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.minor, Minor::ServerBusy);
    assert_eq!(e.retry_after, Some(1));
    assert_eq!(e.headers()[http::header::RETRY_AFTER], "1");
    assert!(e.www_authenticate.is_none());
    // Per client: the other one is not slowed down.
    let t2 = token_text(&get_token(&fx, &other, None));
    assert!(call(&fx, &bearer(&t2), peer(1)).is_ok());
    // A second later there is room for one more.
    fx.auth.mono_skew_ms.store(1_000, Ordering::Relaxed);
    assert!(call(&fx, &bearer(&t), peer(1)).is_ok());
    assert!(call(&fx, &bearer(&t), peer(1)).is_err());
    // 429s do not count in the defender.
    assert_eq!(wrongs_until_ban(&fx.defender, peer(1), 2000), Some(1000));
}

#[test]
fn clients_file_changes_take_effect_at_once() {
    let (fx, mut c) = fixture(
        cfg(),
        quiet_defender(),
        &[("lms", "north", &[], false), ("keep", "north", &[], false)],
    );
    let (lms, keep) = (c.remove(0), c.remove(0));
    let t = token_text(&get_token(&fx, &lms, None));
    let tk = token_text(&get_token(&fx, &keep, None));
    assert!(call(&fx, &bearer(&t), peer(1)).is_ok());

    // A new secret (what `api-client secret` does): the old secret and its token stop working.
    let mut file = ApiClients::load(&fx.path).unwrap();
    let new = file.regenerate_secret("lms").unwrap();
    file.save(&fx.path).unwrap();
    // (Reloading ended the token: it is unknown now.)
    let e = call(&fx, &bearer(&t), peer(1)).unwrap_err();
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    assert_eq!(e.www_authenticate.as_deref(), Some(BEARER_INVALID));
    let r = fx.auth.token(
        &form_headers(Some(&basic(&lms.client_id, &lms.secret))),
        b"grant_type=client_credentials",
        peer(1),
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let t_new = token_text(&get_token(&fx, &new, None));
    assert!(call(&fx, &bearer(&t_new), peer(1)).is_ok());
    // The other client's token is untouched.
    assert!(call(&fx, &bearer(&tk), peer(1)).is_ok());

    // A client added while running can get a token; a removed one loses its tokens.
    let mut file = ApiClients::load(&fx.path).unwrap();
    let added = file.add("late", "south", &[], false, true).unwrap();
    file.remove("lms").unwrap();
    file.save(&fx.path).unwrap();
    assert!(call(&fx, &bearer(&t_new), peer(1)).is_err());
    let p = call(
        &fx,
        &bearer(&token_text(&get_token(&fx, &added, None))),
        peer(1),
    )
    .unwrap();
    assert_eq!((p.client.as_str(), p.source.as_str()), ("late", "south"));
    assert!(p.status_info_on_success);

    // A broken file keeps the clients in force; the next good one is taken.
    std::fs::write(&fx.path, "this is not toml [").unwrap();
    assert!(call(&fx, &bearer(&tk), peer(1)).is_ok());
    assert!(fx.auth.reload().is_err());
    file.remove("keep").unwrap();
    file.save(&fx.path).unwrap();
    assert!(call(&fx, &bearer(&tk), peer(1)).is_err());
    // The whole file removed: no clients at all.
    std::fs::remove_file(&fx.path).unwrap();
    assert_eq!(fx.auth.reload().unwrap(), 0);
    let r = fx.auth.token(
        &form_headers(Some(&basic(&added.client_id, &added.secret))),
        b"grant_type=client_credentials",
        peer(1),
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_file_is_looked_at_at_most_every_interval() {
    let (fx, c) = simple();
    let auth = Auth::new(&cfg(), &fx.path, fx.defender.clone())
        .unwrap()
        .with_reload_interval(Duration::from_secs(3600));
    let h = form_headers(Some(&basic(&c.client_id, &c.secret)));
    assert_eq!(
        auth.token(&h, b"grant_type=client_credentials", peer(1))
            .status,
        StatusCode::OK
    );
    let mut file = ApiClients::load(&fx.path).unwrap();
    file.remove("lms").unwrap();
    file.save(&fx.path).unwrap();
    // Within the interval the old file is still in force; reload() takes the new one.
    assert_eq!(
        auth.token(&h, b"grant_type=client_credentials", peer(1))
            .status,
        StatusCode::OK
    );
    auth.reload().unwrap();
    assert_eq!(
        auth.token(&h, b"grant_type=client_credentials", peer(1))
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// The OAuth 1.0a request of the design notes §4.2 (key123/secret456, timestamp 1700000000)
/// as the server receives it, with the server's clock set near that time.
#[test]
fn oauth1_design_notes_vector_is_accepted_once() {
    let (fx, _) = fixture(cfg(), quiet_defender(), &[]);
    let mut file = ApiClients::load(&fx.path).unwrap();
    file.add("d2l", "north", &[], true, false).unwrap();
    if let Some(c) = file.clients.get_mut("d2l") {
        c.client_id = "key123".into();
        c.oauth1_secret = Some("secret456".into());
    }
    file.save(&fx.path).unwrap();
    let target = "/ims/oneroster/v1p1/users?limit=100&filter=status%3D%27active%27%20AND%20dateLastModified%3E%272024-09-01%27";
    let header = "OAuth realm=\"rosterdrop\", oauth_consumer_key=\"key123\", oauth_nonce=\"abc123\", \
         oauth_signature_method=\"HMAC-SHA256\", oauth_timestamp=\"1700000000\", \
         oauth_version=\"1.0\", oauth_signature=\"nA9iz3nuvaisJymvdXDzHpbLDgpiOzkrJkx9NMpRc%2FY%3D\"";
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static(header),
    );
    let at = |now: u64| {
        let skew = now as i64 - crate::clock::now_secs() as i64;
        fx.auth.wall_skew_s.store(skew, Ordering::Relaxed);
    };
    // 610 s later the timestamp is stale; 310 s before it, it is too far ahead (a margin over
    // the 600 and 300 allowed, so that a second ticking by does not matter).
    at(1_700_000_610);
    let e = fx
        .auth
        .authenticate(&http::Method::GET, target, &h, peer(2))
        .unwrap_err();
    assert!(e.description.contains("old"), "{}", e.description);
    assert_eq!(
        e.www_authenticate.as_deref(),
        Some("OAuth realm=\"rosterdrop\"")
    );
    at(1_700_000_000 - 310);
    let e = fx
        .auth
        .authenticate(&http::Method::GET, target, &h, peer(2))
        .unwrap_err();
    assert!(e.description.contains("ahead"), "{}", e.description);
    // In the window: accepted, with the client's scopes for 1.1 and none for 1.2.
    at(1_700_000_000 + 590);
    let p = fx
        .auth
        .authenticate(&http::Method::GET, target, &h, peer(2))
        .unwrap();
    assert_eq!(p.client, "d2l");
    assert_eq!(p.method, Method::OAuth1);
    assert_eq!(p.v1p1, Scopes::of(&[Scope::RosterCore, Scope::Roster]));
    assert_eq!(p.v1p2, Scopes::NONE);
    // The same request again: the nonce is refused.
    let e = fx
        .auth
        .authenticate(&http::Method::GET, target, &h, peer(2))
        .unwrap_err();
    assert!(e.description.contains("nonce"), "{}", e.description);
    // The same URL signed with SHA-1 while naming HMAC-SHA256 (the notes' value): refused.
    let sha1 = header
        .replace(
            "nA9iz3nuvaisJymvdXDzHpbLDgpiOzkrJkx9NMpRc%2FY%3D",
            "kLN7Jy24hbxhWXh5q2eEXa8Qysc%3D",
        )
        .replace("abc123", "abc124");
    let mut h1 = HeaderMap::new();
    h1.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&sha1).unwrap(),
    );
    let e = fx
        .auth
        .authenticate(&http::Method::GET, target, &h1, peer(2))
        .unwrap_err();
    assert!(
        e.description.contains("does not match"),
        "{}",
        e.description
    );
    // A different method or path than signed: refused.
    let e = fx
        .auth
        .authenticate(&http::Method::HEAD, target, &h, peer(5))
        .unwrap_err();
    assert!(
        e.description.contains("does not match"),
        "{}",
        e.description
    );
}

#[test]
fn oauth1_signed_requests_sha256_sha1_query_and_refusals() {
    let (fx, mut c) = fixture(
        cfg(),
        quiet_defender(),
        &[
            ("d2l", "north", &[], true),
            ("oauth2only", "north", &[], false),
        ],
    );
    let (d2l, o2) = (c.remove(0), c.remove(0));
    let url = format!("{PUBLIC}/ims/oneroster/v1p1/classes?limit=2&filter=title%3D%27a+b%27");
    let target = url.trim_start_matches(PUBLIC).to_owned();
    let now = crate::clock::now_secs();
    let signed = |id: &str, secret: &str, m: SignatureMethod, nonce: &str, ts: u64| {
        let mut h = HeaderMap::new();
        let v = authorization_header("GET", &url, id, secret, m, nonce, ts);
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&v).unwrap(),
        );
        h
    };
    let ok = |h: &HeaderMap| {
        fx.auth
            .authenticate(&http::Method::GET, &target, h, peer(6))
    };
    for (i, m) in [SignatureMethod::HmacSha256, SignatureMethod::HmacSha1]
        .into_iter()
        .enumerate()
    {
        let p = ok(&signed(
            &d2l.client_id,
            &d2l.secret,
            m,
            &format!("n{i}"),
            now,
        ))
        .unwrap();
        assert_eq!(p.source, "north");
    }
    // Wrong secret; OAuth 2-only client; unknown consumer key; another method name.
    let e = ok(&signed(
        &d2l.client_id,
        "wrong",
        SignatureMethod::HmacSha256,
        "w1",
        now,
    ))
    .unwrap_err();
    assert!(e.description.contains("does not match"));
    let e = ok(&signed(
        &o2.client_id,
        &o2.secret,
        SignatureMethod::HmacSha256,
        "w2",
        now,
    ))
    .unwrap_err();
    assert!(e.description.contains("OAuth 2"), "{}", e.description);
    let e = ok(&signed(
        "nobody",
        "x",
        SignatureMethod::HmacSha256,
        "w3",
        now,
    ))
    .unwrap_err();
    assert!(e.description.contains("unknown"));
    let plain = signed(
        &d2l.client_id,
        &d2l.secret,
        SignatureMethod::HmacSha256,
        "w4",
        now,
    );
    let text = plain[http::header::AUTHORIZATION]
        .to_str()
        .unwrap()
        .replace("HMAC-SHA256", "PLAINTEXT");
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&text).unwrap(),
    );
    let e = ok(&h).unwrap_err();
    assert!(e.description.contains("PLAINTEXT"), "{}", e.description);
    // Defender: 1 + 1 + 2 (unknown consumer) + 1 so far.
    assert_eq!(wrongs_until_ban(&fx.defender, peer(6), 2000), Some(995));

    // Signed in the query string instead of the header.
    let mut params: Vec<(String, String)> = vec![
        ("limit".into(), "2".into()),
        ("filter".into(), "title='a b'".into()),
        ("oauth_consumer_key".into(), d2l.client_id.clone()),
        ("oauth_nonce".into(), "q1".into()),
        ("oauth_signature_method".into(), "HMAC-SHA1".into()),
        ("oauth_timestamp".into(), now.to_string()),
    ];
    let bytes: Vec<(Vec<u8>, Vec<u8>)> = params
        .iter()
        .map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes()))
        .collect();
    let b = base_string(
        "GET",
        &format!("{PUBLIC}/ims/oneroster/v1p1/classes"),
        &bytes,
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(signature(
        SignatureMethod::HmacSha1,
        &d2l.secret,
        "",
        &b,
    ));
    params.push(("oauth_signature".into(), sig));
    let q = params
        .iter()
        .map(|(n, v)| format!("{}={}", pct_encode(n.as_bytes()), pct_encode(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("&");
    let target_q = format!("/ims/oneroster/v1p1/classes?{q}");
    let p = fx
        .auth
        .authenticate(&http::Method::GET, &target_q, &HeaderMap::new(), peer(8))
        .unwrap();
    assert_eq!(p.method, Method::OAuth1);
    // Replayed from the query string too.
    assert!(fx
        .auth
        .authenticate(&http::Method::GET, &target_q, &HeaderMap::new(), peer(8))
        .is_err());

    // A removed OAuth 1.0a client stops at once.
    let mut file = ApiClients::load(&fx.path).unwrap();
    file.remove("d2l").unwrap();
    file.save(&fx.path).unwrap();
    let h = signed(
        &d2l.client_id,
        &d2l.secret,
        SignatureMethod::HmacSha256,
        "z",
        now,
    );
    let e = fx
        .auth
        .authenticate(&http::Method::GET, &target, &h, peer(12))
        .unwrap_err();
    assert!(e.description.contains("unknown"), "{}", e.description);
}

#[test]
fn no_input_makes_it_panic() {
    let (fx, c) = simple();
    let t = token_text(&get_token(&fx, &c, None));
    let junk: Vec<String> = vec![
        String::new(),
        "Bearer".into(),
        "Bearer ".into(),
        format!("Bearer {t} extra"),
        format!("bearer   {t}"),
        "OAuth".into(),
        "OAuth ,,,".into(),
        "OAuth oauth_consumer_key".into(),
        "OAuth oauth_consumer_key=\"".into(),
        format!(
            "OAuth oauth_consumer_key=\"{}\", oauth_timestamp=\"99999999999999999999999\"",
            c.client_id
        ),
        format!("Bearer {}", "x".repeat(5000)),
        "Digest a=b".into(),
        "\t".into(),
    ];
    for j in &junk {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(j) {
            h.insert(http::header::AUTHORIZATION, v);
        }
        for target in [
            "/",
            "",
            "?",
            "/x?oauth_",
            "/x?oauth_consumer_key=%",
            "/%zz?&&=&",
        ] {
            let r = fx
                .auth
                .authenticate(&http::Method::GET, target, &h, peer(11));
            if let Err(e) = r {
                assert!(!e.description.contains(&t));
            }
        }
        let _ = fx.auth.token(&h, j.as_bytes(), peer(11));
    }
    // Non-UTF-8 header bytes.
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
    );
    assert!(call(&fx, &h, peer(11)).is_err());
    let _ = fx
        .auth
        .token(&h, b"grant_type=client_credentials&scope=%ff", peer(11));
}

#[test]
fn concurrent_verifications_are_bounded() {
    let (fx, c) = simple();
    let slots: Vec<_> = (0..MAX_VERIFYING)
        .map(|_| Slot::take(&fx.auth.verifying).unwrap())
        .collect();
    let r = get_token(&fx, &c, None);
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers[http::header::RETRY_AFTER], "1");
    drop(slots);
    token_text(&get_token(&fx, &c, None));
    // Threads at once: every request is answered, none lost, the count back at zero.
    let ok = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                if get_token(&fx, &c, None).status == StatusCode::OK {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(ok.load(Ordering::Relaxed), 4);
    assert_eq!(fx.auth.verifying.load(Ordering::Relaxed), 0);
}

#[test]
fn auth_is_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Auth>();
    shared::<Principal>();
    shared::<Refusal>();
    shared::<TokenReply>();
}
