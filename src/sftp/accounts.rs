//! SFTP accounts: who may log in, which source they upload for, and how they prove it.
//!
//! Accounts live in a TOML file (default `<state_dir>/accounts.toml`), written atomically
//! (temporary file in the same folder, fsync, rename) with mode 0600. Passwords are generated
//! here, shown once by the CLI and stored only as argon2id PHC strings; a password can be
//! regenerated at will but never read back.

use crate::fsutil::{read_if_exists, write_private, IoError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngExt;
use russh::keys::PublicKey;
use serde::{Deserialize, Serialize};

/// Errors of the account store.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("reading or writing {0}")]
    Io(#[from] IoError),
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid name {0:?}: use 1-32 characters a-z, 0-9, '_', '-', '.', starting with a letter or digit")]
    InvalidName(String),
    #[error("account {0:?} already exists")]
    Exists(String),
    #[error("no account named {0:?}")]
    NotFound(String),
    #[error("invalid public key: {0}")]
    InvalidKey(String),
    #[error("key algorithm {0} is not accepted (use ed25519, ecdsa-sha2-nistp256/384/521 or rsa of at least 2048 bits)")]
    KeyAlgorithm(String),
    #[error("this key is already authorized for account {0:?}")]
    DuplicateKey(String),
    #[error("hashing password: {0}")]
    Hash(String),
}

/// One SFTP account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// The source (one district's SIS connection) this account uploads for.
    pub source: String,
    /// argon2id PHC string; `None` means password logins are disabled for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Authorized public keys in OpenSSH one-line format.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_keys: Vec<String>,
}

/// All accounts, keyed by account name (the SSH user name).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accounts {
    #[serde(default)]
    pub accounts: BTreeMap<String, Account>,
}

/// Length of generated passwords (alphabet of 56 symbols: about 139 bits).
pub const PASSWORD_LEN: usize = 24;
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// Checks an account or source name: 1-32 of `[a-z0-9_.-]`, first a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.')
        })
}

/// A new random password for an account.
pub fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..PASSWORD_LEN)
        .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
        .collect()
}

/// argon2id hash (PHC string) of a password with a random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Checks a password against a stored PHC string (constant time in the hash comparison).
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Parses one OpenSSH public key line and checks that its algorithm is accepted.
pub fn parse_public_key(line: &str) -> Result<PublicKey, AccountError> {
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|e| AccountError::InvalidKey(e.to_string()))?;
    use russh::keys::Algorithm;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(key),
        Algorithm::Rsa { .. } => {
            let bits = key
                .key_data()
                .rsa()
                .map(|k| k.n().as_positive_bytes().map_or(0, |b| b.len() * 8));
            match bits {
                Some(b) if b >= 2048 => Ok(key),
                _ => Err(AccountError::KeyAlgorithm(
                    "rsa shorter than 2048 bits".into(),
                )),
            }
        }
        other => Err(AccountError::KeyAlgorithm(other.to_string())),
    }
}

impl Accounts {
    /// Loads the accounts file; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Accounts, AccountError> {
        let Some(text) = read_if_exists(path)? else {
            return Ok(Accounts::default());
        };
        let accounts: Accounts = toml::from_str(&text).map_err(|e| AccountError::Parse {
            path: path.to_owned(),
            message: crate::config::toml_error(&text, &e),
        })?;
        for (name, acc) in &accounts.accounts {
            if !valid_name(name) {
                return Err(AccountError::InvalidName(name.clone()));
            }
            if !valid_name(&acc.source) {
                return Err(AccountError::InvalidName(acc.source.clone()));
            }
        }
        Ok(accounts)
    }

    /// Writes the store atomically: temporary file in the same folder (mode 0600), fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), AccountError> {
        let text = toml::to_string_pretty(self).map_err(|e| AccountError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let header = "# rosterdrop SFTP accounts. Managed by `rosterdrop account`; passwords are argon2id hashes.\n";
        Ok(write_private(path, header, &text)?)
    }

    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// Adds an account with a fresh password; returns the password (to show once).
    pub fn add(&mut self, name: &str, source: &str) -> Result<String, AccountError> {
        for n in [name, source] {
            if !valid_name(n) {
                return Err(AccountError::InvalidName(n.to_owned()));
            }
        }
        if self.accounts.contains_key(name) {
            return Err(AccountError::Exists(name.to_owned()));
        }
        let password = generate_password();
        self.accounts.insert(
            name.to_owned(),
            Account {
                source: source.to_owned(),
                password_hash: Some(hash_password(&password)?),
                authorized_keys: Vec::new(),
            },
        );
        Ok(password)
    }

    /// Replaces an account's password with a new random one; returns it (to show once).
    pub fn regenerate_password(&mut self, name: &str) -> Result<String, AccountError> {
        let acc = self
            .accounts
            .get_mut(name)
            .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
        let password = generate_password();
        acc.password_hash = Some(hash_password(&password)?);
        Ok(password)
    }

    /// Authorizes a public key (OpenSSH one-line format) for an account.
    pub fn add_key(&mut self, name: &str, line: &str) -> Result<PublicKey, AccountError> {
        let key = parse_public_key(line)?;
        for (other, acc) in &self.accounts {
            if acc
                .authorized_keys
                .iter()
                .filter_map(|k| PublicKey::from_openssh(k).ok())
                .any(|k| k.key_data() == key.key_data())
            {
                return Err(AccountError::DuplicateKey(other.clone()));
            }
        }
        let acc = self
            .accounts
            .get_mut(name)
            .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
        let text = key
            .to_openssh()
            .map_err(|e| AccountError::InvalidKey(e.to_string()))?;
        acc.authorized_keys.push(text);
        Ok(key)
    }

    pub fn remove(&mut self, name: &str) -> Result<Account, AccountError> {
        self.accounts
            .remove(name)
            .ok_or_else(|| AccountError::NotFound(name.to_owned()))
    }

    /// True when `key` is one of the account's authorized keys.
    pub fn key_authorized(&self, name: &str, key: &PublicKey) -> bool {
        self.accounts.get(name).is_some_and(|acc| {
            acc.authorized_keys
                .iter()
                .filter_map(|k| PublicKey::from_openssh(k).ok())
                .any(|k| k.key_data() == key.key_data())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn names() {
        assert!(valid_name("acme-sis_1.x"));
        for bad in ["", "-a", ".a", "A", "a/b", "a b", "..", &"a".repeat(33)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn password_roundtrip_and_regenerate() {
        let mut a = Accounts::default();
        let p1 = a.add("vendor", "district").unwrap();
        assert_eq!(p1.len(), PASSWORD_LEN);
        let h1 = a.get("vendor").unwrap().password_hash.clone().unwrap();
        assert!(h1.starts_with("$argon2id$"));
        assert!(!h1.contains(&p1));
        assert!(verify_password(&h1, &p1));
        assert!(!verify_password(&h1, "wrong"));
        let p2 = a.regenerate_password("vendor").unwrap();
        assert_ne!(p1, p2);
        let h2 = a.get("vendor").unwrap().password_hash.clone().unwrap();
        assert!(!verify_password(&h2, &p1));
        assert!(verify_password(&h2, &p2));
        assert!(matches!(a.add("vendor", "x"), Err(AccountError::Exists(_))));
    }

    #[test]
    fn save_is_private_and_roundtrips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/accounts.toml");
        let mut a = Accounts::default();
        a.add("v1", "s1").unwrap();
        a.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(Accounts::load(&path).unwrap(), a);
        assert_eq!(
            Accounts::load(&dir.path().join("none.toml")).unwrap(),
            Accounts::default()
        );
    }
}
