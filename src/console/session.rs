//! Logged-in sessions: opaque random ids in memory (a restart logs everyone out), each with its
//! admin's name, its CSRF token and its expiry; the cookie that carries the id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::clients::generate_secret;

/// The session cookie's name.
pub const COOKIE: &str = "rosterdrop_session";

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// Sent back in every form; a POST without it is refused.
    pub csrf: String,
    /// The user's password hash at login: a new password ends the session.
    pub password_hash: String,
    expires: Instant,
    created: Instant,
}

/// The live sessions, bounded in number.
pub struct Sessions {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            ttl,
            max: max.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// A new session for `user` (whose password hash is `hash`): its id (the cookie's value)
    /// and the session.
    pub fn create_for(&self, user: &str, hash: &str) -> (String, Session) {
        let now = Instant::now();
        let id = generate_secret();
        let s = Session {
            user: user.to_owned(),
            csrf: generate_secret(),
            password_hash: hash.to_owned(),
            expires: now + self.ttl,
            created: now,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max {
            map.retain(|_, s| s.expires > now);
        }
        while map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The live session with this id (its expiry moved on: it lasts `ttl` past its last use).
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(id) {
            Some(s) if s.expires > now => {
                s.expires = now + self.ttl;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Ends every session of `user` (a removed user, a changed password).
    pub fn remove_user(&self, user: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| s.user != user);
    }
}

/// The session id a request's `Cookie` headers carry.
pub fn from_headers(headers: &http::HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE)
}

/// The value of the cookie `name` in a request's `Cookie` headers.
pub fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` value for a session (`None`: one that ends it).
pub fn set_cookie(id: Option<&str>, path: &str, secure: bool) -> String {
    use cookie::{Cookie, SameSite};
    // No lifetime of its own: a login lasts `session_secs` past its last use, which only the
    // server knows (a Max-Age set at login logged an admin out mid-work `session_secs` after
    // logging in); the cookie goes when the browser closes, the session when unused.
    let mut c = Cookie::build((COOKIE, id.unwrap_or("").to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    if id.is_none() {
        c.make_removal();
    }
    c.to_string()
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(Duration::from_millis(50), 2);
        let (a, _) = s.create_for("ann", "h");
        assert_eq!(s.get(&a).map(|x| x.user), Some("ann".into()));
        let (b, _) = s.create_for("bob", "h");
        let (c, _) = s.create_for("cy", "h");
        assert!(s.get(&a).is_none(), "the oldest went when the third came");
        assert!(s.get(&b).is_some() && s.get(&c).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&b).is_none(), "expired");
        s.remove_user("cy");
        assert!(s.get(&c).is_none());
    }

    #[test]
    fn cookie_attributes() {
        let v = set_cookie(Some("abc"), "/admin/", true);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/admin/"] {
            assert!(v.contains(part), "{v} lacks {part}");
        }
        // The server's idle expiry decides how long a login lasts, not the cookie.
        assert!(!v.contains("Max-Age") && !v.contains("Expires"), "{v}");
        let v = set_cookie(Some("abc"), "/admin/", false);
        assert!(!v.contains("Secure"));
        // Logging out removes it.
        let v = set_cookie(None, "/admin/", false);
        assert!(v.contains("Max-Age=0"), "{v}");
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("a=1; rosterdrop_session=xyz"),
        );
        assert_eq!(from_headers(&h).as_deref(), Some("xyz"));
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("a", "ab"));
    }
}
