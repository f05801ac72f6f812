//! The `[mail]` table. `config/rosterdrop.toml` shows every key with its default.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use serde::Deserialize;

use super::MailError;

/// How messages leave the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// `.eml` files in `<state_dir>/outbox/`.
    #[default]
    File,
    Smtp,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption (port 25): only for a relay on this host or a trusted network.
    None,
}

impl Security {
    pub fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub transport: TransportKind,
    /// `From:` and envelope sender, `Name <address>` or a bare address.
    pub from: String,
    pub reply_to: Option<String>,
    pub host: Option<String>,
    /// Unset: by `security` (587, 465 or 25).
    pub port: Option<u16>,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A file holding the password (surrounding white space trimmed), e.g. a systemd
    /// credential; instead of `password`.
    pub password_file: Option<PathBuf>,
    /// Extra PEM CA certificate(s) to trust besides the system's, for an internal relay.
    pub ca_file: Option<PathBuf>,
    /// Connection and per-command timeout.
    pub timeout_secs: f64,
    /// Name sent with EHLO (default: this host's name).
    pub helo_name: Option<String>,
    /// First retry delay after a transient failure; doubles per attempt up to
    /// `retry_max_secs`, with jitter.
    pub retry_initial_secs: f64,
    pub retry_max_secs: f64,
    /// A message still undelivered this long after it was queued goes to `mail/failed/`
    /// after its next failed attempt.
    pub give_up_after_hours: f64,
    /// A `patch-summary.csv` larger than this is attached as `patch-summary.zip`.
    pub attach_zip_over_bytes: u64,
    /// An attachment (after zipping) larger than this is left out; the body says where the
    /// report is.
    pub attach_max_bytes: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: TransportKind::File,
            from: "rosterdrop <rosterdrop@localhost>".into(),
            reply_to: None,
            host: None,
            port: None,
            security: Security::Starttls,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            timeout_secs: 30.0,
            helo_name: None,
            retry_initial_secs: 30.0,
            retry_max_secs: 3600.0,
            give_up_after_hours: 72.0,
            attach_zip_over_bytes: 256 * 1024,
            attach_max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// The password stays out of logs and debug output.
impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("transport", &self.transport)
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("timeout_secs", &self.timeout_secs)
            .field("helo_name", &self.helo_name)
            .field("retry_initial_secs", &self.retry_initial_secs)
            .field("retry_max_secs", &self.retry_max_secs)
            .field("give_up_after_hours", &self.give_up_after_hours)
            .field("attach_zip_over_bytes", &self.attach_zip_over_bytes)
            .field("attach_max_bytes", &self.attach_max_bytes)
            .finish()
    }
}

fn bad(msg: impl Into<String>) -> MailError {
    MailError::Config(msg.into())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl MailConfig {
    /// Checks the values without touching the file system (see [`MailConfig::load_secrets`]).
    pub fn validate(&self) -> Result<(), MailError> {
        self.from.parse::<Mailbox>().map_err(|e| {
            bad(format!(
                "from = {:?} is not an email address: {e}",
                self.from
            ))
        })?;
        if let Some(r) = &self.reply_to {
            r.parse::<Mailbox>()
                .map_err(|e| bad(format!("reply_to = {r:?} is not an email address: {e}")))?;
        }
        for (name, v) in [
            ("timeout_secs", self.timeout_secs),
            ("retry_initial_secs", self.retry_initial_secs),
            ("retry_max_secs", self.retry_max_secs),
            ("give_up_after_hours", self.give_up_after_hours),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1e9) {
                return Err(bad(format!("{name} must be a positive number, not {v}")));
            }
        }
        if self.retry_max_secs < self.retry_initial_secs {
            return Err(bad(format!(
                "retry_max_secs ({}) is smaller than retry_initial_secs ({})",
                self.retry_max_secs, self.retry_initial_secs
            )));
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err(bad("set password or password_file, not both"));
        }
        let has_password = self.password.is_some() || self.password_file.is_some();
        match (&self.username, has_password) {
            (Some(_), false) => {
                return Err(bad(
                    "username is set but neither password nor password_file",
                ))
            }
            (None, true) => return Err(bad("a password is set but no username")),
            _ => {}
        }
        if let Some(h) = &self.helo_name {
            if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(format!("helo_name = {h:?} is not a host name")));
            }
        }
        if self.transport == TransportKind::Smtp {
            let host = match self.host.as_deref().map(str::trim) {
                None | Some("") => {
                    return Err(bad(
                        "transport = \"smtp\" needs host (the SMTP server's name)",
                    ))
                }
                Some(h) => h,
            };
            if host.contains("://") || host.contains('/') || host.chars().any(char::is_whitespace) {
                return Err(bad(format!("host = {host:?} must be a bare host name")));
            }
            if host.parse::<std::net::IpAddr>().is_err()
                && host
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                return Err(bad(format!(
                    "host = {host:?}: give the port in `port`, not in host"
                )));
            }
            if self.port == Some(0) {
                return Err(bad("port must be between 1 and 65535"));
            }
            if self.security == Security::None && self.username.is_some() && !is_loopback(host) {
                return Err(bad(
                    "security = \"none\" would send the password unencrypted; use \"starttls\" or \"tls\"",
                ));
            }
        }
        Ok(())
    }

    /// The SMTP port: `port`, or the default for `security`.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }

    /// Reads `password_file` (trimmed) and `ca_file`: the password, and the CA PEM bytes.
    pub fn load_secrets(&self) -> Result<(Option<String>, Option<Vec<u8>>), MailError> {
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| bad(format!("password_file {}: {e}", f.display())))?;
                let p = text.trim();
                if p.is_empty() {
                    return Err(bad(format!("password_file {} is empty", f.display())));
                }
                Some(p.to_string())
            }
            (None, None) => None,
        };
        let ca = match &self.ca_file {
            Some(f) => Some(read_ca(f)?),
            None => None,
        };
        Ok((password, ca))
    }
}

fn read_ca(f: &Path) -> Result<Vec<u8>, MailError> {
    let pem = std::fs::read(f).map_err(|e| bad(format!("ca_file {}: {e}", f.display())))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(bad(format!(
            "ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            f.display()
        )));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table parsed and validated; a TOML error is shown as a validation error would be.
    fn parse(s: &str) -> Result<MailConfig, MailError> {
        let c: MailConfig = toml::from_str(s).map_err(|e| MailError::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.transport, TransportKind::File);
        assert_eq!(c.from, "rosterdrop <rosterdrop@localhost>");
        assert_eq!(c.security, Security::Starttls);
        assert_eq!(c.port(), 587);
        assert_eq!(c.timeout_secs, 30.0);
        assert_eq!(c.retry_initial_secs, 30.0);
        assert_eq!(c.retry_max_secs, 3600.0);
        assert_eq!(c.give_up_after_hours, 72.0);
        assert_eq!(c.attach_zip_over_bytes, 262_144);
        assert_eq!(c.attach_max_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn ports_follow_security_and_integers_are_accepted_for_seconds() {
        let c = parse("transport = \"smtp\"\nhost = \"mx.example\"\nsecurity = \"tls\"\nretry_initial_secs = 2\n").unwrap();
        assert_eq!(c.port(), 465);
        assert_eq!(c.retry_initial_secs, 2.0);
        let c =
            parse("transport = \"smtp\"\nhost = \"mx.example\"\nsecurity = \"none\"\n").unwrap();
        assert_eq!(c.port(), 25);
        let c = parse("transport = \"smtp\"\nhost = \"mx.example\"\nport = 2525\n").unwrap();
        assert_eq!(c.port(), 2525);
    }

    #[test]
    fn clear_errors() {
        let cases = [
            ("transport = \"smtp\"", "needs host"),
            ("transport = \"smtp\"\nhost = \"\"", "needs host"),
            ("transport = \"smtp\"\nhost = \"mx.example:587\"", "give the port in `port`"),
            ("transport = \"smtp\"\nhost = \"smtp://mx.example\"", "bare host name"),
            ("transport = \"smtp\"\nhost = \"mx\"\nport = 0", "between 1 and 65535"),
            ("transport = \"mail\"", "unknown variant"),
            ("security = \"ssl\"", "unknown variant"),
            ("hots = \"x\"", "unknown field"),
            ("from = \"not an address\"", "from = "),
            ("reply_to = \"@@\"", "reply_to"),
            ("username = \"u\"", "neither password nor password_file"),
            ("password = \"p\"", "no username"),
            ("username = \"u\"\npassword = \"p\"\npassword_file = \"/x\"", "not both"),
            ("retry_initial_secs = 0", "positive"),
            ("retry_initial_secs = 60\nretry_max_secs = 30", "smaller than"),
            ("give_up_after_hours = -1", "positive"),
            ("helo_name = \"a b\"", "host name"),
            (
                "transport = \"smtp\"\nhost = \"mx.example\"\nsecurity = \"none\"\nusername = \"u\"\npassword = \"p\"",
                "unencrypted",
            ),
        ];
        for (toml, want) in cases {
            let e = parse(toml).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(want), "{toml:?}: {e:?} lacks {want:?}");
        }
        // A relay on this host may take a password in clear.
        parse("transport = \"smtp\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nusername = \"u\"\npassword = \"p\"").unwrap();
    }

    /// The documented `[mail]` table of `config/rosterdrop.toml` parses, and shows the
    /// defaults.
    #[test]
    fn shipped_config_shows_the_defaults() {
        let all: toml::Table =
            toml::from_str(include_str!("../../../config/rosterdrop.toml")).unwrap();
        let table = all.get("mail").cloned().unwrap();
        let c: MailConfig = table.try_into().unwrap();
        c.validate().unwrap();
        assert_eq!(format!("{c:?}"), format!("{:?}", MailConfig::default()));
    }

    #[test]
    fn password_file_is_trimmed_and_debug_hides_password() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "  s3cret\n").unwrap();
        let c = MailConfig {
            username: Some("u".into()),
            password_file: Some(f.clone()),
            ..MailConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(c.load_secrets().unwrap().0.as_deref(), Some("s3cret"));
        std::fs::write(&f, "\n").unwrap();
        assert!(c
            .load_secrets()
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        let c = MailConfig {
            username: Some("u".into()),
            password: Some("s3cret".into()),
            ..MailConfig::default()
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let c = MailConfig {
            ca_file: Some(ca),
            ..MailConfig::default()
        };
        assert!(c
            .load_secrets()
            .unwrap_err()
            .to_string()
            .contains("no PEM certificate"));
    }
}
