//! Host keys: ed25519, ECDSA P-256 and RSA 3072, generated on first start into
//! `<state_dir>/hostkeys/` (folder 0700, private keys 0600) and reused afterwards.

use crate::fsutil::{write_atomic_with, WriteMode};
use std::fs;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};

use super::SftpError;
use crate::paths::StateDir;

/// RSA modulus size of a generated host key.
pub const RSA_BITS: usize = 3072;

const KINDS: &[(&str, &str)] = &[
    ("ed25519", "ssh_host_ed25519_key"),
    ("ecdsa", "ssh_host_ecdsa_key"),
    ("rsa", "ssh_host_rsa_key"),
];

/// The host key folder of a state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    StateDir::at(state_dir).hostkeys()
}

fn generate(kind: &str) -> Result<PrivateKey, SftpError> {
    let mut rng = rand::rng();
    let key = match kind {
        "ed25519" => PrivateKey::random(&mut rng, Algorithm::Ed25519),
        "ecdsa" => PrivateKey::random(
            &mut rng,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
        _ => RsaKeypair::random(&mut rng, RSA_BITS)
            .and_then(|kp| PrivateKey::new(KeypairData::from(kp), "rosterdrop host key")),
    };
    key.map_err(|e| SftpError::HostKey(format!("generating {kind} key: {e}")))
}

/// Loads the three host keys, generating any that is missing. Returns them in the order
/// ed25519, ECDSA, RSA.
pub fn load_or_generate(state_dir: &Path) -> Result<Vec<PrivateKey>, SftpError> {
    let dir = dir(state_dir);
    fs::create_dir_all(&dir).map_err(crate::fsutil::at(&dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(crate::fsutil::at(&dir))?;
    }
    let mut keys = Vec::new();
    for (kind, file) in KINDS {
        let path = dir.join(file);
        let key = if path.exists() {
            PrivateKey::read_openssh_file(&path)
                .map_err(|e| SftpError::HostKey(format!("{}: {e}", path.display())))?
        } else {
            let key = generate(kind)?;
            let pem = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| SftpError::HostKey(e.to_string()))?;
            let private = WriteMode {
                private: true,
                ..WriteMode::default()
            };
            write_atomic_with(&path, pem.as_bytes(), private)?;
            if let Ok(public) = key.public_key().to_openssh() {
                let _ = fs::write(dir.join(format!("{file}.pub")), format!("{public}\n"));
            }
            tracing::info!(kind, fingerprint = %key.fingerprint(HashAlg::Sha256), "generated SFTP host key");
            key
        };
        keys.push(key);
    }
    Ok(keys)
}

/// `(algorithm name, SHA256 fingerprint)` of each host key, for vendors to pin.
pub fn fingerprints(keys: &[PrivateKey]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| {
            (
                k.algorithm().to_string(),
                k.fingerprint(HashAlg::Sha256).to_string(),
            )
        })
        .collect()
}
