//! OAuth 2 client credentials (RFC 6749 §4.4): the token request as it arrives, the scope
//! decision (design notes §4.1) and the replies of §5.1 and §5.2.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::oauth1::pct_decode;
use crate::api::clients::{Scope, Scopes};
use crate::api::status::Version;

/// Largest token request body read, bytes.
pub const MAX_BODY: usize = 4096;
/// Most form parameters in a token request.
pub const MAX_FORM_PARAMS: usize = 16;
/// Most scope values read from `scope`.
pub const MAX_SCOPES: usize = 32;

/// The RFC 6749 §5.2 error codes used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    UnsupportedGrantType,
    InvalidScope,
    /// With 429: banned address or rate limit (RFC 6749 defines no code for it).
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// The answer of the token endpoint: status, headers (`Cache-Control: no-store`,
/// `Pragma: no-cache`, and `WWW-Authenticate` or `Retry-After` where they apply) and the JSON
/// body. `client` names the client when it authenticated, for the request log.
#[derive(Debug, Clone)]
pub struct TokenReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub client: Option<String>,
}

fn base_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    h
}

impl TokenReply {
    pub fn error(code: ErrorCode, description: &str) -> TokenReply {
        let mut headers = base_headers();
        let status = match code {
            ErrorCode::InvalidClient => {
                // RFC 6749 §5.2 (and RFC 9110: a 401 carries a challenge): the scheme we take.
                headers.insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"rosterdrop\""),
                );
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::TemporarilyUnavailable => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        };
        TokenReply {
            status,
            headers,
            body: json!({ "error": code.code(), "error_description": description }),
            client: None,
        }
    }

    /// A 429 with `Retry-After`.
    pub fn busy(description: &str, retry_after: u64) -> TokenReply {
        let mut r = TokenReply::error(ErrorCode::TemporarilyUnavailable, description);
        r.headers
            .insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
        r
    }

    pub fn issued(token: &str, expires_in: u64, scope: &str, client: &str) -> TokenReply {
        TokenReply {
            status: StatusCode::OK,
            headers: base_headers(),
            body: json!({
                "access_token": token,
                "token_type": "bearer",
                "expires_in": expires_in,
                "scope": scope,
            }),
            client: Some(client.to_owned()),
        }
    }
}

impl axum::response::IntoResponse for TokenReply {
    fn into_response(self) -> axum::response::Response {
        (self.status, self.headers, axum::Json(self.body)).into_response()
    }
}

/// Where the client's credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Basic,
    Body,
}

/// A well-formed token request.
#[derive(Debug)]
pub struct TokenRequest {
    pub client_id: String,
    pub secret: String,
    pub via: Via,
    /// The `scope` parameter's values, `None` when absent or empty.
    pub scope: Option<Vec<String>>,
}

/// Why a token request was refused before its credentials were checked (nothing to count in
/// the defender): the error code and its description.
pub type Refused = (ErrorCode, &'static str);

/// Reads a token request.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, Refused> {
    let bad = |d: &'static str| Err((ErrorCode::InvalidRequest, d));
    if let Some(ct) = headers.get(http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return bad("the token request must be application/x-www-form-urlencoded");
        }
    }
    if body.len() > MAX_BODY {
        return bad("the token request is too large");
    }
    let mut grant_type = None;
    let mut scope = None;
    let mut body_id = None;
    let mut body_secret = None;
    let mut n = 0;
    for part in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        n += 1;
        if n > MAX_FORM_PARAMS {
            return bad("too many parameters");
        }
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(eq) => (&part[..eq], &part[eq + 1..]),
            None => (part, &b""[..]),
        };
        let name = pct_decode(name, true).unwrap_or_default();
        let slot = match name.as_slice() {
            b"grant_type" => &mut grant_type,
            b"scope" => &mut scope,
            b"client_id" => &mut body_id,
            b"client_secret" => &mut body_secret,
            // RFC 6749 §3.2: unknown parameters are ignored.
            _ => continue,
        };
        if slot.is_some() {
            return bad("a parameter is given twice");
        }
        let value = pct_decode(value, true).unwrap_or_default();
        let Ok(value) = String::from_utf8(value) else {
            return bad("a parameter is not UTF-8");
        };
        *slot = Some(value);
    }
    // RFC 6749 §3.1: a parameter without a value is as if it were not there.
    let present = |v: Option<String>| v.filter(|s| !s.is_empty());
    let (grant_type, scope) = (present(grant_type), present(scope));
    let (body_id, body_secret) = (present(body_id), present(body_secret));
    match grant_type.as_deref() {
        None => return bad("grant_type is missing"),
        Some("client_credentials") => {}
        Some(_) => {
            return Err((
                ErrorCode::UnsupportedGrantType,
                "only grant_type=client_credentials is served",
            ))
        }
    }
    let scope = match scope {
        Some(s) => {
            let values: Vec<String> = s.split_ascii_whitespace().map(str::to_owned).collect();
            if values.len() > MAX_SCOPES {
                return bad("too many scopes");
            }
            Some(values).filter(|v| !v.is_empty())
        }
        None => None,
    };
    let mut auths = headers.get_all(http::header::AUTHORIZATION).iter();
    let header = auths.next();
    if auths.next().is_some() {
        return bad("more than one Authorization header");
    }
    let basic = match header {
        None => None,
        Some(h) => Some(parse_basic(h).ok_or((
            ErrorCode::InvalidClient,
            "the Authorization header is not HTTP Basic with client id and secret",
        ))?),
    };
    match (basic, body_id, body_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            bad("client credentials both in the Authorization header and in the body")
        }
        (Some((client_id, secret)), None, None) => Ok(TokenRequest {
            client_id,
            secret,
            via: Via::Basic,
            scope,
        }),
        (None, Some(client_id), Some(secret)) => Ok(TokenRequest {
            client_id,
            secret,
            via: Via::Body,
            scope,
        }),
        (None, Some(_), None) | (None, None, Some(_)) => {
            bad("client_id and client_secret go together")
        }
        (None, None, None) => Err((
            ErrorCode::InvalidClient,
            "no client credentials: use HTTP Basic or client_id and client_secret",
        )),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(h: &HeaderValue) -> Option<(String, String)> {
    let v = h.to_str().ok()?;
    if v.len() > 2048 {
        return None;
    }
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let id = String::from_utf8(pct_decode(&raw[..colon], true)?).ok()?;
    let secret = String::from_utf8(pct_decode(&raw[colon + 1..], true)?).ok()?;
    (!id.is_empty()).then_some((id, secret))
}

/// The scopes granted per version: what was asked ∩ what the client may have; unknown values
/// ignored; no `scope` at all → everything allowed in both versions. `None`: nothing left
/// (`invalid_scope`).
pub fn grant(requested: Option<&[String]>, allowed: Scopes) -> Option<[(Version, Scopes); 2]> {
    let Some(requested) = requested else {
        return Some([(Version::V1p1, allowed), (Version::V1p2, allowed)]);
    };
    let mut v1p1 = Scopes::NONE;
    let mut v1p2 = Scopes::NONE;
    for (v, s) in requested.iter().filter_map(|r| Scope::parse_uri(r)) {
        match v {
            Version::V1p1 => v1p1.insert(s),
            Version::V1p2 => v1p2.insert(s),
        }
    }
    let g = [
        (Version::V1p1, v1p1.intersect(allowed)),
        (Version::V1p2, v1p2.intersect(allowed)),
    ];
    (!g.iter().all(|(_, s)| s.is_empty())).then_some(g)
}

/// The granted scopes as the `scope` reply field: URIs separated by spaces.
pub fn scope_text(granted: &[(Version, Scopes)]) -> String {
    granted
        .iter()
        .flat_map(|(v, s)| s.iter().map(move |sc| sc.uri(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str, basic: Option<&str>) -> Result<TokenRequest, Refused> {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        if let Some(b) = basic {
            h.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(b).unwrap(),
            );
        }
        parse(&h, body.as_bytes())
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    fn code(r: Result<TokenRequest, Refused>) -> (u16, String) {
        let (c, d) = r.unwrap_err();
        let e = TokenReply::error(c, d);
        (
            e.status.as_u16(),
            e.body["error"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn requests_parse_from_basic_or_body() {
        // Percent-encoded id and secret inside Basic (RFC 6749 §2.3.1): decoded.
        let r = form(
            "grant_type=client_credentials",
            Some(&basic("cl%69ent", "s%3Ac+r%2Bt")),
        )
        .unwrap();
        assert_eq!(
            (r.client_id.as_str(), r.secret.as_str()),
            ("client", "s:c r+t")
        );
        assert_eq!(r.via, Via::Basic);
        assert_eq!(r.scope, None);
        let r = form(
            "grant_type=client_credentials&client_id=a&client_secret=b%20c&scope=x++y&other=1",
            None,
        )
        .unwrap();
        assert_eq!((r.client_id.as_str(), r.secret.as_str()), ("a", "b c"));
        assert_eq!(r.via, Via::Body);
        assert_eq!(r.scope, Some(vec!["x".to_string(), "y".to_string()]));
        // An empty scope is no scope.
        let r = form(
            "grant_type=client_credentials&scope=",
            Some(&basic("a", "b")),
        )
        .unwrap();
        assert_eq!(r.scope, None);
    }

    #[test]
    fn every_malformed_request_has_its_error() {
        let b = basic("a", "b");
        let cases: Vec<(Result<TokenRequest, Refused>, u16, &str)> = vec![
            (form("", Some(&b)), 400, "invalid_request"),
            (
                form("grant_type=password", Some(&b)),
                400,
                "unsupported_grant_type",
            ),
            (
                form(
                    "grant_type=client_credentials&grant_type=client_credentials",
                    Some(&b),
                ),
                400,
                "invalid_request",
            ),
            (
                form(
                    "grant_type=client_credentials&client_id=a&client_secret=b",
                    Some(&b),
                ),
                400,
                "invalid_request",
            ),
            (
                form("grant_type=client_credentials&client_id=a", Some(&b)),
                400,
                "invalid_request",
            ),
            (
                form("grant_type=client_credentials&client_id=a", None),
                400,
                "invalid_request",
            ),
            (
                form("grant_type=client_credentials", None),
                401,
                "invalid_client",
            ),
            (
                form("grant_type=client_credentials", Some("Basic !!!")),
                401,
                "invalid_client",
            ),
            (
                form("grant_type=client_credentials", Some("Bearer abc")),
                401,
                "invalid_client",
            ),
            (
                form(
                    &format!("grant_type=client_credentials&{}", "x=1&".repeat(20)),
                    Some(&b),
                ),
                400,
                "invalid_request",
            ),
            (
                form(
                    &format!("grant_type=client_credentials&pad={}", "x".repeat(MAX_BODY)),
                    Some(&b),
                ),
                400,
                "invalid_request",
            ),
        ];
        for (i, (r, status, err)) in cases.into_iter().enumerate() {
            assert_eq!(code(r), (status, err.to_string()), "case {i}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(
            code(parse(&h, br#"{"grant_type":"client_credentials"}"#)),
            (400, "invalid_request".into())
        );
        let mut h = HeaderMap::new();
        h.append(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&b).unwrap(),
        );
        h.append(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&b).unwrap(),
        );
        assert_eq!(
            code(parse(&h, b"grant_type=client_credentials")),
            (400, "invalid_request".into())
        );
    }

    #[test]
    fn replies_carry_their_headers() {
        let e = TokenReply::error(ErrorCode::InvalidClient, "no");
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            e.headers[http::header::WWW_AUTHENTICATE],
            "Basic realm=\"rosterdrop\""
        );
        assert_eq!(e.headers[http::header::CACHE_CONTROL], "no-store");
        let ok = TokenReply::issued("t", 60, "s", "c");
        assert_eq!(ok.headers[http::header::CACHE_CONTROL], "no-store");
        assert_eq!(ok.headers[http::header::PRAGMA], "no-cache");
        assert_eq!(ok.body["token_type"], "bearer");
        let busy = TokenReply::busy("slow down", 7);
        assert_eq!(busy.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(busy.headers[http::header::RETRY_AFTER], "7");
    }

    #[test]
    fn scopes_are_narrowed_to_what_the_client_may_have() {
        let core_and_full = Scopes::of(&[Scope::RosterCore, Scope::Roster]);
        let uri = |v, s: Scope| s.uri(v);
        // Nothing asked: everything allowed, both versions.
        let g = grant(None, core_and_full).unwrap();
        assert_eq!(
            scope_text(&g),
            [
                uri(Version::V1p1, Scope::RosterCore),
                uri(Version::V1p1, Scope::Roster),
                uri(Version::V1p2, Scope::RosterCore),
                uri(Version::V1p2, Scope::Roster),
            ]
            .join(" ")
        );
        // Asked for demographics (not allowed), roster 1.2 and a gradebook scope: roster 1.2.
        let asked = vec![
            uri(Version::V1p2, Scope::RosterDemographics),
            uri(Version::V1p2, Scope::Roster),
            "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly".to_string(),
        ];
        let g = grant(Some(&asked), core_and_full).unwrap();
        assert_eq!(g[0].1, Scopes::NONE);
        assert_eq!(g[1].1, Scopes::of(&[Scope::Roster]));
        assert_eq!(scope_text(&g), uri(Version::V1p2, Scope::Roster));
        // Only things it may not have: invalid_scope.
        let asked = vec![uri(Version::V1p1, Scope::RosterDemographics), "junk".into()];
        assert!(grant(Some(&asked), core_and_full).is_none());
    }
}
