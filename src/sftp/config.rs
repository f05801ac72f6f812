//! `[sftp]` settings, with defaults chosen on purpose (see docs/SFTP.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SftpError;

/// Settings of the embedded SFTP server: the `[sftp]` table of the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SftpConfig {
    /// Address to listen on. Default `127.0.0.1:2222`.
    pub listen: SocketAddr,
    /// Accounts file; relative paths are relative to `state_dir`. Default `accounts.toml`.
    pub accounts_file: PathBuf,
    /// Largest single file, bytes. Default 2 GiB.
    pub max_file_size: u64,
    /// Bytes an account may keep in its drop folder (uploads not yet taken). Default 10 GiB.
    pub quota_bytes: u64,
    /// Files an account may keep in its drop folder. Default 1000.
    pub quota_files: u64,
    /// Concurrent authenticated connections per account. Default 10.
    pub max_sessions_per_account: usize,
    /// Concurrent connections in total (authenticated or not). Default 500.
    pub max_connections: usize,
    /// Concurrent connections from one IP address (authenticated or not). Default 20, as
    /// SFTPGo's `max_per_host_connections`: one host cannot take every slot.
    pub max_connections_per_host: usize,
    /// Seconds without any traffic before a connection is closed. Default 900 (15 min):
    /// long enough for a slow SIS export job that opens the session and then builds its files,
    /// short enough that forgotten sessions do not pile up.
    pub idle_timeout_secs: u64,
    /// Seconds a connection may take to authenticate. Default 30 (OpenSSH's LoginGraceTime is 120;
    /// scripted clients need far less).
    pub login_timeout_secs: u64,
    /// Keepalive probe interval in seconds (0 = off). Default 60.
    pub keepalive_secs: u64,
    /// Authentication attempts per connection. Default 6 (OpenSSH's MaxAuthTries).
    pub max_auth_attempts: usize,
    /// Delay before a failed authentication is answered, milliseconds. Default 1000.
    pub auth_failure_delay_ms: u64,
    /// Largest SFTP packet accepted from a client, bytes (length field). Default 262144 (256 KiB,
    /// OpenSSH's SFTP_MAX_MSG_LENGTH); writes advertised through limits@openssh.com fit inside.
    pub max_sftp_packet: u32,
    /// Largest READ answered, bytes. Default 261120.
    pub max_read_len: u32,
    /// Open file and directory handles per SFTP session. Default 64 (OpenSSH clients ask
    /// `limits@openssh.com` and stay below it).
    pub max_handles: usize,
    /// Open handles over all sessions of one account. Default 128: a job uploading with
    /// `max_sessions_per_account` parallel sessions needs a few each; one account can never
    /// hold more than this many descriptors for files.
    pub max_handles_per_account: usize,
    /// Open handles over the whole server. Default 4096; lowered at start to what the
    /// descriptor limit leaves after `fd_reserve` and `max_connections` (see below), so open
    /// files can never take the descriptors of new logins, intake or the admin socket.
    pub max_open_handles: usize,
    /// Session channels per SSH connection, whether or not they run SFTP. Default 4 (OpenSSH
    /// opens one; a few clients open a second for listings).
    pub max_channels_per_connection: usize,
    /// File descriptors kept for the rest of the daemon (intake scans, the store, the admin
    /// socket, mail, logs) and never given to SFTP handles or connections. Default 256. At
    /// start the soft RLIMIT_NOFILE is raised to the hard limit, and the SFTP budget is
    /// `limit - fd_reserve`: `max_connections` sockets plus `max_open_handles` files.
    pub fd_reserve: usize,
    /// SSH channel window, bytes. Default 16 MiB: an OpenSSH client keeps 64 writes of
    /// 255 KiB in flight, russh's 2 MiB default window halves throughput.
    pub window_size: u32,
    /// Largest SSH channel packet, bytes. Default 65535 (russh's default of 32768 splits every
    /// 32 KiB SFTP write in two).
    pub max_channel_packet: u32,
    /// fsync an upload and its folder before it is announced (durable across power loss).
    /// Default true.
    pub fsync_uploads: bool,
    /// Turn on SHA-1 algorithms (diffie-hellman-group14-sha1, diffie-hellman-group-exchange-sha1,
    /// hmac-sha1, hmac-sha1-etm) for old clients. Default false.
    pub legacy: bool,
    /// Key exchange algorithms, most preferred first. Empty = the default set.
    pub kex: Vec<String>,
    /// Ciphers, most preferred first. Empty = the default set.
    pub ciphers: Vec<String>,
    /// MACs, most preferred first. Empty = the default set.
    pub macs: Vec<String>,
    /// Per-address login defence.
    pub defender: DefenderConfig,
}

/// SFTPGo-style defender: each failed login adds a score to the client's address; an address
/// whose score within `observation_secs` reaches `threshold` is refused for `ban_secs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DefenderConfig {
    pub enabled: bool,
    /// Score at which an address is banned. Default 15.
    pub threshold: u32,
    /// Score of a login attempt for a user that does not exist. Default 2.
    pub score_unknown_user: u32,
    /// Score of a wrong password or key for an existing user. Default 1.
    pub score_wrong_credentials: u32,
    /// Score of a refused connection (too many sessions, login timeout). Default 3.
    pub score_limit_exceeded: u32,
    /// Window in which scores add up, seconds. Default 1800.
    pub observation_secs: u64,
    /// Ban time, seconds. Default 1800.
    pub ban_secs: u64,
    /// Addresses never banned (exact IPs), e.g. a monitoring host. Default empty.
    pub safelist: Vec<std::net::IpAddr>,
}

impl Default for DefenderConfig {
    fn default() -> Self {
        DefenderConfig {
            enabled: true,
            threshold: 15,
            score_unknown_user: 2,
            score_wrong_credentials: 1,
            score_limit_exceeded: 3,
            observation_secs: 1800,
            ban_secs: 1800,
            safelist: Vec::new(),
        }
    }
}

impl Default for SftpConfig {
    fn default() -> Self {
        SftpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            accounts_file: PathBuf::from("accounts.toml"),
            max_file_size: 2 << 30,
            quota_bytes: 10 << 30,
            quota_files: 1000,
            max_sessions_per_account: 10,
            max_connections: 500,
            max_connections_per_host: 20,
            idle_timeout_secs: 900,
            login_timeout_secs: 30,
            keepalive_secs: 60,
            max_auth_attempts: 6,
            auth_failure_delay_ms: 1000,
            max_sftp_packet: 262_144,
            max_read_len: 261_120,
            max_handles: 64,
            max_handles_per_account: 128,
            max_open_handles: 4096,
            max_channels_per_connection: 4,
            fd_reserve: 256,
            window_size: 16 << 20,
            max_channel_packet: 65535,
            fsync_uploads: true,
            legacy: false,
            kex: Vec::new(),
            ciphers: Vec::new(),
            macs: Vec::new(),
            defender: DefenderConfig::default(),
        }
    }
}

/// Default key exchange set (DESIGN.md "SFTP compatibility"), plus OpenSSH's post-quantum hybrid.
pub const DEFAULT_KEX: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group14-sha256",
];
/// Added to the key exchange set by `legacy = true`.
pub const LEGACY_KEX: &[&str] = &[
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group-exchange-sha1",
];
/// Default ciphers.
pub const DEFAULT_CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
];
/// Default MACs (used with the CTR ciphers only; the AEAD ciphers carry their own).
pub const DEFAULT_MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
];
/// Added to the MACs by `legacy = true`.
pub const LEGACY_MACS: &[&str] = &["hmac-sha1-etm@openssh.com", "hmac-sha1"];

impl SftpConfig {
    /// The accounts file for a state directory.
    pub fn accounts_path(&self, state_dir: &Path) -> PathBuf {
        state_dir.join(&self.accounts_file)
    }

    fn list(
        configured: &[String],
        default: &[&str],
        legacy: &[&str],
        legacy_on: bool,
    ) -> Vec<String> {
        if !configured.is_empty() {
            return configured.to_vec();
        }
        let mut v: Vec<String> = default.iter().map(|s| s.to_string()).collect();
        if legacy_on {
            v.extend(legacy.iter().map(|s| s.to_string()));
        }
        v
    }

    /// Effective key exchange names.
    pub fn kex_names(&self) -> Vec<String> {
        Self::list(&self.kex, DEFAULT_KEX, LEGACY_KEX, self.legacy)
    }
    /// Effective cipher names.
    pub fn cipher_names(&self) -> Vec<String> {
        Self::list(&self.ciphers, DEFAULT_CIPHERS, &[], self.legacy)
    }
    /// Effective MAC names.
    pub fn mac_names(&self) -> Vec<String> {
        Self::list(&self.macs, DEFAULT_MACS, LEGACY_MACS, self.legacy)
    }

    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), SftpError> {
        let bad = |m: &str| Err(SftpError::Config(m.to_owned()));
        if self.max_sftp_packet < 34_000 || self.max_sftp_packet > 16 << 20 {
            return bad("sftp.max_sftp_packet must be between 34000 and 16 MiB");
        }
        if self.max_read_len == 0 || self.max_read_len > self.max_sftp_packet {
            return bad("sftp.max_read_len must be between 1 and max_sftp_packet");
        }
        if self.window_size < 65536 {
            return bad("sftp.window_size must be at least 65536");
        }
        if !(1024..=262_144).contains(&self.max_channel_packet) {
            return bad("sftp.max_channel_packet must be between 1024 and 262144");
        }
        if self.max_handles == 0
            || self.max_handles_per_account == 0
            || self.max_open_handles == 0
            || self.max_channels_per_connection == 0
            || self.max_connections == 0
            || self.max_auth_attempts == 0
            || self.max_sessions_per_account == 0
        {
            return bad("sftp.max_handles, max_handles_per_account, max_open_handles, max_channels_per_connection, max_connections, max_auth_attempts and max_sessions_per_account must be at least 1");
        }
        if self.login_timeout_secs == 0 || self.idle_timeout_secs == 0 {
            return bad("sftp.login_timeout_secs and idle_timeout_secs must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[sftp]` table documented in `config/rosterdrop.toml` parses and shows the defaults.
    #[test]
    fn documented_table_is_the_defaults() {
        /// The `[sftp]` table of the file, whatever else the file holds.
        #[derive(Deserialize)]
        struct File {
            sftp: SftpConfig,
        }
        let file: File = toml::from_str(include_str!("../../config/rosterdrop.toml")).unwrap();
        assert_eq!(file.sftp, SftpConfig::default());
        file.sftp.validate().unwrap();
    }

    #[test]
    fn zero_limits_are_refused() {
        for tune in [
            |c: &mut SftpConfig| c.max_handles_per_account = 0,
            |c: &mut SftpConfig| c.max_open_handles = 0,
            |c: &mut SftpConfig| c.max_channels_per_connection = 0,
            |c: &mut SftpConfig| c.max_connections = 0,
        ] {
            let mut c = SftpConfig::default();
            tune(&mut c);
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
