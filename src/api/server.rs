//! The REST provider on axum: the two versions' bases, the token endpoint, the 1.2
//! discovery document, and a log line per request (client, path, status, milliseconds; never
//! the query, which can hold a filter on a name or an email).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{any, post};
use axum::Router;

use crate::api::auth::{Auth, Refusal};
use crate::api::config::ApiConfig;
use crate::api::respond::{self, base_path, Reply, Request};
use crate::api::served::Served;
use crate::api::status::{Minor, Version};

/// What every request handler shares.
pub struct ApiState {
    pub cfg: ApiConfig,
    /// `public_url`, or the listener's real address when none is configured.
    pub public_url: String,
    pub auth: Arc<Auth>,
    /// The 1.2 discovery document, made once for `public_url`.
    discovery: Vec<u8>,
    served: RwLock<HashMap<String, Arc<Served>>>,
}

impl ApiState {
    pub fn new(
        cfg: ApiConfig,
        public_url: String,
        auth: Arc<Auth>,
    ) -> Result<ApiState, crate::api::discovery::DiscoveryError> {
        let discovery =
            serde_json::to_vec(&crate::api::discovery::document(&public_url)?).unwrap_or_default();
        Ok(ApiState {
            cfg,
            public_url,
            auth,
            discovery,
            served: RwLock::new(HashMap::new()),
        })
    }

    /// The served roster of a source, if one was built.
    pub fn served(&self, source: &str) -> Option<Arc<Served>> {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .cloned()
    }

    /// Makes a rebuilt served roster the one requests see.
    pub fn publish(&self, served: Served) {
        self.served
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(served.source.clone(), Arc::new(served));
    }

    /// Forgets the sources no longer configured.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.served
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s, _| keep(s));
    }
}

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/ims/oneroster/v1p1/{*rest}", any(v1p1))
        .route("/ims/oneroster/rostering/v1p2/{*rest}", any(v1p2))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the API, and `extra` routes beside it (the web console), on `listener` (over TLS
/// with `tls`) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    extra: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.cfg.limits();
    let trusted: Arc<[IpAddr]> = state.cfg.trusted_proxies.clone().into();
    let mut app = router(state).merge(extra);
    if !trusted.is_empty() {
        app = app.layer(axum::middleware::map_request(
            move |mut req: axum::extract::Request| {
                let trusted = trusted.clone();
                async move {
                    forwarded_client(&mut req, &trusted);
                    req
                }
            },
        ));
    }
    crate::api::listen::serve(listener, app, tls, limits, shutdown).await
}

/// Behind a trusted reverse proxy, the request's peer becomes the client its
/// `X-Forwarded-For` names: the last address in it that is not itself a trusted proxy. A
/// request from any other peer, or whose header cannot be read there, keeps its peer (the
/// header is the client's to write, so only what a trusted proxy appended counts).
fn forwarded_client(req: &mut axum::extract::Request, trusted: &[IpAddr]) {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return;
    };
    if !trusted.contains(&peer.ip()) {
        return;
    }
    let hops = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let ip = hop
            .parse::<IpAddr>()
            .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()));
        match ip {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => {
                req.extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(ip, peer.port())));
                return;
            }
            Err(_) => return,
        }
    }
}

async fn token(
    State(st): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let st2 = st.clone();
    let ip = peer.ip();
    // Verifying a secret is argon2 work: off the async threads.
    let reply = match tokio::task::spawn_blocking(move || st2.auth.token(&headers, &body, ip)).await
    {
        Ok(r) => r,
        Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let client = reply.client.clone();
    let resp = reply.into_response();
    crate::api::auth::log_request(
        client.as_deref(),
        &Method::POST,
        "/oauth/token",
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

async fn v1p1(
    st: State<Arc<ApiState>>,
    peer: ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    handle(st.0, Version::V1p1, peer.0.ip(), method, uri, headers).await
}

async fn v1p2(
    st: State<Arc<ApiState>>,
    peer: ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    handle(st.0, Version::V1p2, peer.0.ip(), method, uri, headers).await
}

async fn not_found(uri: Uri) -> Response {
    let v = if uri.path().starts_with(base_path(Version::V1p1)) {
        Version::V1p1
    } else {
        Version::V1p2
    };
    to_response(Reply::error(v, Minor::UnknownObject, "no such path"))
}

/// Longest query string answered; a longer one is refused (`invaliddata`).
const MAX_QUERY: usize = 16 << 10;

async fn handle(
    st: Arc<ApiState>,
    v: Version,
    peer: IpAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let path = uri.path();
    let rest = path.strip_prefix(base_path(v)).unwrap_or("");
    let (client, reply) = route(&st, v, peer, &method, &uri, rest, &headers).await;
    let status = reply.status;
    let length = reply.body.len();
    let mut resp = to_response(reply);
    if method == Method::HEAD {
        // The length a GET would send (RFC 9110, 8.6), not the empty body's.
        *resp.body_mut() = Body::empty();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_LENGTH,
            HeaderValue::from(length),
        );
    }
    let path_and_query = uri.path_and_query().map_or(path, |p| p.as_str());
    crate::api::auth::log_request(
        client.as_deref(),
        &method,
        path_and_query,
        status,
        started.elapsed(),
    );
    resp
}

/// The answer to one API request, and the client it came from when it authenticated.
async fn route(
    st: &Arc<ApiState>,
    v: Version,
    peer: IpAddr,
    method: &Method,
    uri: &Uri,
    rest: &str,
    headers: &HeaderMap,
) -> (Option<String>, Reply) {
    if uri.query().is_some_and(|q| q.len() > MAX_QUERY) {
        // Its paging links would repeat it past what clients and proxies read (hyper itself
        // answers a target past 64 KiB with a bare 414).
        let why = format!("the query string is longer than {} KiB", MAX_QUERY >> 10);
        return (None, Reply::error(v, Minor::InvalidData, &why));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = Reply::error(v, Minor::InvalidData, "only GET and HEAD are served");
        r.status = 405;
        r.headers.push(("allow", "GET, HEAD".into()));
        return (None, r);
    }
    if v == Version::V1p2 && is_discovery(rest) {
        return (
            None,
            Reply {
                status: 200,
                headers: vec![("content-type", "application/json".into())],
                body: st.discovery.clone(),
            },
        );
    }
    let Some(m) = respond::match_route(rest) else {
        return (None, Reply::error(v, Minor::UnknownObject, "no such path"));
    };
    let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let principal = match st.auth.authenticate(method, path_and_query, headers, peer) {
        Ok(p) => p,
        Err(refusal) => return (None, refused(v, &refusal)),
    };
    let client = Some(principal.client.clone());
    let needed = respond::scopes_for(&m);
    if !principal.has_any(v, &needed) {
        let mut r = Reply::error(
            v,
            Minor::Forbidden,
            "the access token does not carry the scope this operation needs",
        );
        let uris: Vec<String> = needed.iter().map(|s| s.uri(v)).collect();
        r.headers.push((
            "www-authenticate",
            format!(
                "Bearer realm=\"rosterdrop\", error=\"insufficient_scope\", scope=\"{}\"",
                uris.join(" ")
            ),
        ));
        return (client, r);
    }
    // No served roster yet (the daemon just started, or its build failed): 503, never an
    // empty roster, which a consumer could take for everyone deleted.
    let Some(served) = st.served(&principal.source) else {
        let mut r = Reply::error(
            v,
            Minor::ServerBusy,
            "The roster is being prepared; try again in a few seconds.",
        );
        r.status = 503;
        r.headers.push(("retry-after", "10".to_string()));
        return (client, r);
    };
    let query = uri.query().unwrap_or("").to_string();
    let public_url = st.public_url.clone();
    let rest = rest.to_string();
    let max_limit = st.cfg.max_limit;
    let status_info = principal.status_info_on_success;
    let tombstones_after_ms = i64::try_from(crate::clock::now_ms())
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::from(st.cfg.tombstone_days) * 86_400_000);
    // Rendering a page of thousands of records is CPU work: off the async threads.
    let reply = tokio::task::spawn_blocking(move || {
        let req = Request {
            version: v,
            query: &query,
            public_url: &public_url,
            rest: &rest,
            max_limit,
            status_info_on_success: status_info,
            tombstones_after_ms,
        };
        respond::answer(&req, &m, &served)
    })
    .await
    .unwrap_or_else(|_| Reply::error(v, Minor::InternalServerError, "internal error"));
    (client, reply)
}

/// The 1.2 discovery document's paths: `{base}/discovery`, and both names 1EdTech's documents
/// give its file.
fn is_discovery(rest: &str) -> bool {
    match rest.strip_prefix("/discovery") {
        Some("") | Some("/") => true,
        Some(name) => crate::api::discovery::FILE_NAMES
            .iter()
            .any(|f| name.strip_prefix('/') == Some(*f)),
        None => false,
    }
}

fn refused(v: Version, r: &Refusal) -> Reply {
    let mut reply = Reply::error(v, r.minor, &r.description);
    reply.status = r.status.as_u16();
    if let Some(w) = &r.www_authenticate {
        reply.headers.push(("www-authenticate", w.clone()));
    }
    if let Some(secs) = r.retry_after {
        reply.headers.push(("retry-after", secs.to_string()));
    }
    reply
}

fn to_response(reply: Reply) -> Response {
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in &reply.headers {
        set(&mut resp, k, v);
    }
    resp
}

fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(name, v);
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before a source's served roster is built (the daemon just started, or its build
    /// failed, as on a full disk), a request gets 503 with Retry-After, never a 200 with no
    /// records, which a consumer could take for everyone deleted (an outside probe saw
    /// `x-total-count: 0` for a store of 737,000 records).
    #[tokio::test]
    async fn no_served_roster_yet_is_503_not_an_empty_roster() {
        use base64::Engine as _;
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-clients.toml");
        let mut clients = crate::api::clients::ApiClients::default();
        let c = clients.add("lms", "north", &[], false, false).unwrap();
        clients.save(&path).unwrap();
        let cfg = ApiConfig::default();
        let defender = Arc::new(crate::sftp::defender::Defender::new(
            crate::sftp::DefenderConfig::default(),
        ));
        let auth = Arc::new(Auth::new(&cfg, &path, defender).unwrap());
        let state = Arc::new(ApiState::new(cfg, "http://127.0.0.1:1".into(), auth).unwrap());
        let app = router(state.clone());
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let call = |req: axum::http::Request<Body>| {
            let mut req = req;
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        };
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.client_id, c.secret));
        let resp = call(
            axum::http::Request::post("/oauth/token")
                .header("authorization", format!("Basic {basic}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let token = v["access_token"].as_str().unwrap().to_string();
        let users = || {
            axum::http::Request::get("/ims/oneroster/v1p1/users")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };
        let resp = call(users()).await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers().get("retry-after").unwrap(), "10");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["statusInfoSet"][0]["imsx_CodeMinor"]["imsx_codeMinorField"][0]
                ["imsx_codeMinorFieldValue"],
            "server_busy"
        );
        // Once built (here: a source with no roster yet), it answers.
        let built = Served::build(
            "north",
            None,
            String::new(),
            crate::roster::model::Roster::default(),
            None,
            0,
            30,
        )
        .unwrap();
        state.publish(built);
        assert_eq!(call(users()).await.unwrap().status(), 200);
    }

    fn client_of(peer: &str, xff: &[&str], trusted: &[&str]) -> IpAddr {
        let mut req = axum::extract::Request::new(Body::empty());
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        for v in xff {
            req.headers_mut()
                .append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        let trusted: Vec<IpAddr> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        forwarded_client(&mut req, &trusted);
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .unwrap()
            .0
            .ip()
    }

    /// Only a trusted proxy's header counts, and only what it appended: an address a client
    /// wrote into the header itself is ahead of it, and never taken.
    #[test]
    fn the_client_is_the_last_address_a_trusted_proxy_saw() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = "10.0.0.1:40000";
        assert_eq!(
            client_of(proxy, &["203.0.113.9"], &["10.0.0.1"]),
            ip("203.0.113.9")
        );
        // A client's own header value is before the address the proxy saw.
        assert_eq!(
            client_of(proxy, &["1.2.3.4, 203.0.113.9"], &["10.0.0.1"]),
            ip("203.0.113.9")
        );
        // Two proxies, two header lines; brackets and ports.
        assert_eq!(
            client_of(
                proxy,
                &["203.0.113.9", "10.0.0.2"],
                &["10.0.0.1", "10.0.0.2"]
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_of(proxy, &["[2001:db8::1]:443"], &["10.0.0.1"]),
            ip("2001:db8::1")
        );
        // Not from a trusted proxy, or a header it cannot read: the peer.
        assert_eq!(
            client_of("198.51.100.7:1", &["203.0.113.9"], &["10.0.0.1"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_of(proxy, &["unknown"], &["10.0.0.1"]),
            ip("10.0.0.1")
        );
        assert_eq!(client_of(proxy, &[], &["10.0.0.1"]), ip("10.0.0.1"));
    }
}
