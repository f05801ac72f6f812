//! The web console for district admins (`[console]`): server-rendered pages on the REST API's
//! axum server under `console.path`, for the admins in the admin users file.
//!
//! - [`users`]: the admin users file (`rosterdrop admin-user`).
//! - [`chart`]: a source's batches over time as SVG.
//! - [`session`]: sessions in memory, their cookie and CSRF token.
//! - [`pages`]: the pages, rendered with maud (every interpolation escaped: uploaded names,
//!   ids and problem texts are hostile).
//!
//! The console acts only through the daemon's [`Backend`]: the same admin code path as the
//! CLI's socket ([`crate::admin::execute`] and the mail that follows), never a copy.

pub mod chart;
pub mod pages;
pub mod session;
pub mod users;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use crate::admin::{Actor, Answer, Request};
use crate::config::{Config, ConsoleConfig};
use crate::sftp::defender::{Defender, Event};
use crate::store::{Store, StoreError, Via};
use session::{Session, Sessions};
use users::{AdminUser, AdminUsers};

/// What the console needs of the running daemon.
pub trait Backend: Send + Sync + 'static {
    /// The configuration in force.
    fn config(&self) -> Arc<Config>;
    /// The open store.
    fn store(&self) -> Result<Arc<Store>, StoreError>;
    /// Runs an admin request exactly as one from the admin socket (with the mail after an
    /// approve, discard or rollback). Blocking.
    fn admin(&self, req: Request) -> Answer;
    /// The daemon's state directory.
    fn state_dir(&self) -> PathBuf;
    /// Re-reads the SFTP accounts and the configuration, as `rosterdrop reload` and SIGHUP
    /// do (after the console changed the accounts file). Blocking.
    fn reload(&self) -> Result<String, String>;
}

/// Argon2 verifications running at once for logins, at most (each takes a core for tens of
/// milliseconds and 19 MiB).
const MAX_VERIFYING: usize = 2;

/// The console's shared state.
pub struct Console {
    pub cfg: ConsoleConfig,
    users_path: PathBuf,
    sessions: Sessions,
    defender: Arc<Defender>,
    presence: Arc<crate::sftp::presence::Presence>,
    backend: Arc<dyn Backend>,
    /// Cookies carry `Secure` (the API is served over TLS or behind an https `public_url`).
    secure: bool,
    verifying: tokio::sync::Semaphore,
}

impl Console {
    pub fn new(
        cfg: &Config,
        defender: Arc<Defender>,
        presence: Arc<crate::sftp::presence::Presence>,
        backend: Arc<dyn Backend>,
        secure: bool,
    ) -> Console {
        let c = &cfg.console;
        Console {
            cfg: c.clone(),
            users_path: c.users_path(&cfg.state_dir),
            sessions: Sessions::new(Duration::from_secs(c.session_secs), c.max_sessions),
            defender,
            presence,
            backend,
            secure,
            verifying: tokio::sync::Semaphore::new(MAX_VERIFYING),
        }
    }

    /// A path under the console's prefix (`rel` without a leading `/`).
    pub fn at(&self, rel: &str) -> String {
        format!("{}{rel}", self.cfg.path)
    }
}

/// The console's routes, each under `console.path`.
pub fn router(console: Arc<Console>) -> Router {
    let p = console.cfg.path.clone();
    let r = |rel: &str| format!("{p}{rel}");
    Router::new()
        .route(&r(""), get(pages::sources::page))
        .route(&r("style.css"), get(style))
        .route(&r("login"), get(login_form).post(login))
        .route(&r("logout"), post(logout))
        .route(&r("batches"), get(pages::batches::history))
        .route(&r("source/{name}"), get(pages::source::page))
        .route(&r("access"), get(pages::access::page))
        .route(&r("access/{verb}"), post(pages::access::act))
        .route(&r("batch/{id}"), get(pages::batches::batch))
        .route(&r("batch/{id}/file/{name}"), get(pages::batches::download))
        .route(
            &r("batch/{id}/do/{verb}"),
            get(pages::batches::confirm).post(pages::batches::act),
        )
        // Any other path under the console's is the console's to answer, not the API's.
        .route(&r("{*rest}"), axum::routing::any(unknown))
        .layer(axum::middleware::map_response_with_state(
            console.clone(),
            console_errors,
        ))
        .with_state(console)
}

async fn unknown() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// A refusal the console's own code did not write (a path it does not have; an id that is no
/// number or a query or form it cannot read, which axum's extractors answer in plain text
/// naming Rust types) becomes a console page, with the console's headers: found by an outside
/// probe, which got `Cannot parse "abc" to a u64` and the REST API's JSON 404 under `/admin/`.
async fn console_errors(State(c): State<Arc<Console>>, resp: Response) -> Response {
    let status = resp.status();
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html || !status.is_client_error() {
        return resp;
    }
    match status {
        StatusCode::NOT_FOUND => Refused::NotFound.into_response(&c),
        StatusCode::METHOD_NOT_ALLOWED => pages::error_page(
            &c,
            None,
            status,
            "Not allowed",
            "This page cannot be asked for that way.",
        ),
        _ => pages::error_page(
            &c,
            None,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "This address or form is not one the console understands.",
        ),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

/// A logged-in admin, as a request handler sees them.
pub struct Admin {
    pub name: String,
    pub user: AdminUser,
    pub session: Session,
}

impl Admin {
    pub fn sees(&self, source: &str) -> bool {
        self.user.sees(source)
    }
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            via: Via::Console,
        }
    }
}

/// Why a request was not served.
pub enum Refused {
    /// Not logged in (or the session expired): to the login page.
    Login,
    /// A POST without the session's CSRF token, or a banned address.
    Forbidden(std::borrow::Cow<'static, str>),
    /// No such thing, or one this admin may not see (the same answer for both).
    NotFound,
    /// Something on the server went wrong.
    Internal(String),
}

impl Refused {
    pub fn into_response(self, c: &Console) -> Response {
        match self {
            Refused::Login => {
                let mut r = (StatusCode::SEE_OTHER, "log in first").into_response();
                if let Ok(v) = HeaderValue::from_str(&c.at("login")) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Refused::Forbidden(why) => {
                pages::error_page(c, None, StatusCode::FORBIDDEN, "Refused", &why)
            }
            Refused::NotFound => pages::error_page(
                c,
                None,
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or nothing you may see.",
            ),
            Refused::Internal(e) => {
                tracing::error!(error = %e, "console page failed");
                pages::error_page(
                    c,
                    None,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "The server could not answer; its log says why.",
                )
            }
        }
    }
}

/// The logged-in admin of a request. The users file is read each time: a removed admin or a
/// new password ends their sessions at once.
pub fn admin_of(c: &Console, headers: &HeaderMap) -> Result<Admin, Refused> {
    let id = session::from_headers(headers).ok_or(Refused::Login)?;
    let s = c.sessions.get(&id).ok_or(Refused::Login)?;
    let users = AdminUsers::load(&c.users_path).map_err(|e| Refused::Internal(e.to_string()))?;
    match users.users.get(&s.user) {
        Some(u) if s.password_hash == u.password_hash => Ok(Admin {
            name: s.user.clone(),
            user: u.clone(),
            session: s,
        }),
        _ => {
            c.sessions.remove(&id);
            Err(Refused::Login)
        }
    }
}

/// The admin of a POST whose form carries the session's CSRF token.
pub fn poster_of(
    c: &Console,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Result<Admin, Refused> {
    let a = admin_of(c, headers)?;
    match form.get("csrf") {
        Some(t) if session::same_token(t, &a.session.csrf) => Ok(a),
        _ => Err(Refused::Forbidden(
            "This form was not sent from a page of this console (its security token is \
             missing or old). Open the page again and resend it."
                .into(),
        )),
    }
}

/// The login form's own token (before a session exists): a cookie and a form field that must
/// match.
const LOGIN_COOKIE: &str = "rosterdrop_login";

#[derive(serde::Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    pub out: Option<String>,
}

async fn login_form(State(c): State<Arc<Console>>, Query(q): Query<LoginQuery>) -> Response {
    login_page(
        &c,
        StatusCode::OK,
        q.out.is_some().then_some("You are logged out."),
    )
}

fn login_page(c: &Console, status: StatusCode, note: Option<&str>) -> Response {
    let token = crate::api::clients::generate_secret();
    let mut r = pages::login(c, status, &token, note);
    let cookie = cookie::Cookie::build((LOGIN_COOKIE, token))
        .path(c.cfg.path.clone())
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(c.secure)
        .build()
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn login(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let ip: IpAddr = peer.ip();
    if c.defender.banned(ip).is_some() {
        tracing::warn!(addr = %ip, "console login refused: address banned");
        return login_page(
            &c,
            StatusCode::FORBIDDEN,
            Some("Too many failed logins from your address: try again later."),
        );
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let token_ok = session::cookie_value(&headers, LOGIN_COOKIE)
        .is_some_and(|t| !t.is_empty() && session::same_token(&t, field("csrf")));
    if !token_ok {
        return login_page(
            &c,
            StatusCode::FORBIDDEN,
            Some("The login form had expired: please log in again."),
        );
    }
    let (name, password) = (field("name").to_owned(), field("password").to_owned());
    if name.len() > 64 || password.len() > 256 {
        c.defender.record(ip, Event::WrongCredentials);
        return login_page(
            &c,
            StatusCode::UNAUTHORIZED,
            Some("Wrong name or password."),
        );
    }
    let Ok(_permit) = c.verifying.acquire().await else {
        return Refused::Internal("closed".into()).into_response(&c);
    };
    let path = c.users_path.clone();
    let n2 = name.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let users = AdminUsers::load(&path)?;
        let known = users.users.contains_key(&n2);
        Ok::<_, users::UsersError>((users.verify(&n2, &password).cloned(), known))
    })
    .await;
    let (user, known) = match checked {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Refused::Internal(e.to_string()).into_response(&c),
        Err(e) => return Refused::Internal(e.to_string()).into_response(&c),
    };
    let Some(user) = user else {
        let ev = if known {
            Event::WrongCredentials
        } else {
            Event::UnknownUser
        };
        c.defender.record(ip, ev);
        tracing::warn!(addr = %ip, known, "console login failed");
        return login_page(
            &c,
            StatusCode::UNAUTHORIZED,
            Some("Wrong name or password."),
        );
    };
    let (id, _) = c.sessions.create_for(&name, &user.password_hash);
    tracing::info!(admin = %name, addr = %ip, "console login");
    let mut r = (StatusCode::SEE_OTHER, "logged in").into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&c.cfg.path) {
        h.insert(header::LOCATION, v);
    }
    let set = session::set_cookie(Some(&id), &c.cfg.path, c.secure);
    if let Ok(v) = HeaderValue::from_str(&set) {
        h.append(header::SET_COOKIE, v);
    }
    r
}

async fn logout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(e) = poster_of(&c, &headers, &form) {
        return e.into_response(&c);
    }
    if let Some(id) = session::from_headers(&headers) {
        c.sessions.remove(&id);
    }
    let mut r = (StatusCode::SEE_OTHER, "logged out").into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&c.at("login?out=1")) {
        h.insert(header::LOCATION, v);
    }
    let set = session::set_cookie(None, &c.cfg.path, c.secure);
    if let Ok(v) = HeaderValue::from_str(&set) {
        h.append(header::SET_COOKIE, v);
    }
    r
}

impl Console {
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    pub fn defender(&self) -> &Arc<Defender> {
        &self.defender
    }
    pub fn presence(&self) -> &Arc<crate::sftp::presence::Presence> {
        &self.presence
    }
}

/// Runs blocking work (store reads, file reads, admin requests) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refused> + Send + 'static,
) -> Result<T, Refused> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Refused::Internal(e.to_string())))
}
