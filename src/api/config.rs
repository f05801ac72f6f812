//! `[api]` settings: where the OneRoster REST provider listens and how it answers.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The `[api]` table of the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the REST API from `serve`. Default on.
    pub enabled: bool,
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The URL clients reach the API at (behind a proxy, the proxy's): the base of every
    /// `href`, `Link` header, the token URL and OAuth 1.0a's signed URL. Default
    /// `http://{listen}` (`https://` with TLS).
    pub public_url: Option<String>,
    /// PEM certificate chain and private key: both or neither; with them the API speaks TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// API clients file; relative paths are relative to `state_dir`. Default `api-clients.toml`.
    pub clients_file: PathBuf,
    /// Largest `limit` a request gets; a larger one is lowered to it. Default 10000.
    pub max_limit: usize,
    /// Days a removed record stays visible as `status: "tobedeleted"`. Default 30.
    pub tombstone_days: u32,
    /// Lifetime of an OAuth 2 access token, seconds. Default 3600.
    pub token_ttl_secs: u64,
    /// Requests a client may make per second on average; more are answered 429. Default 50.
    pub rate_limit_per_sec: u32,
    /// Requests a client may make at once above the average. Default 200.
    pub rate_burst: u32,
    /// OAuth 1.0a: how old and how far ahead a request's `oauth_timestamp` may be, seconds.
    /// Defaults 600 and 300 (what Canvas tells districts to allow).
    pub oauth1_max_age_secs: u64,
    pub oauth1_max_ahead_secs: u64,
    /// HTTP connections open at once (the API and the console), all peers together; more wait
    /// in the kernel's backlog. They come out of the daemon's descriptors before SFTP's share.
    /// Default 256.
    pub max_connections: usize,
    /// HTTP connections one address may hold; another is closed at once. Behind a proxy every
    /// connection is the proxy's: raise it to `max_connections`. Default 64.
    pub max_connections_per_host: usize,
    /// Seconds a connection may take to send a request's headers (a kept-alive one: from the
    /// end of its last answer); then it is closed. Default 20.
    pub header_timeout_secs: u64,
    /// Reverse proxies (exact addresses) whose `X-Forwarded-For` names the client: a request
    /// from one of them is taken as from the last address in that header that is not itself a
    /// trusted proxy, for the defender, the rate limit, the console's logins and the logs.
    /// Default empty: the header is never read.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            clients_file: PathBuf::from("api-clients.toml"),
            max_limit: 10_000,
            tombstone_days: 30,
            token_ttl_secs: 3600,
            rate_limit_per_sec: 50,
            rate_burst: 200,
            oauth1_max_age_secs: 600,
            oauth1_max_ahead_secs: 300,
            max_connections: 256,
            max_connections_per_host: 64,
            header_timeout_secs: 20,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ApiConfig {
    /// Refuses values that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("api.tls_cert and api.tls_key go together: give both or neither".into());
        }
        if self.max_limit == 0 {
            return Err("api.max_limit must be at least 1".into());
        }
        if self.token_ttl_secs == 0 {
            return Err("api.token_ttl_secs must be at least 1".into());
        }
        if self.rate_limit_per_sec == 0 || self.rate_burst == 0 {
            return Err("api.rate_limit_per_sec and api.rate_burst must be at least 1".into());
        }
        if self.max_connections == 0
            || self.max_connections_per_host == 0
            || self.header_timeout_secs == 0
        {
            return Err("api.max_connections, api.max_connections_per_host and \
                        api.header_timeout_secs must be at least 1"
                .into());
        }
        if let Some(u) = &self.public_url {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => {}
                _ => {
                    return Err(format!(
                        "api.public_url `{u}` is not an http:// or https:// URL without query"
                    ))
                }
            }
        }
        Ok(())
    }

    /// What one peer may hold of the HTTP listener.
    pub fn limits(&self) -> crate::api::listen::Limits {
        crate::api::listen::Limits {
            max_connections: self.max_connections,
            max_per_host: self.max_connections_per_host,
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
        }
    }

    /// `public_url` without a trailing slash, or the default from `listen`.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", self.listen)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let c = ApiConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
        let c = ApiConfig {
            public_url: Some("https://roster.example.edu/".into()),
            ..ApiConfig::default()
        };
        assert_eq!(c.base_url(), "https://roster.example.edu");
        let bad = ApiConfig {
            tls_cert: Some("c.pem".into()),
            ..ApiConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("tls_key"));
        let bad = ApiConfig {
            public_url: Some("roster.example.edu".into()),
            ..ApiConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("public_url"));
    }
}
