//! Opaque OAuth 2 access tokens, in memory only: 32 random bytes (base64url), kept by their
//! SHA-256 (the token itself is never stored), with their client, scopes and expiry. Bounded:
//! [`PER_CLIENT`] live tokens per client (the oldest goes first), expired ones pruned.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::api::clients::Scopes;

/// Live tokens per client at most: enough for a consumer's parallel workers.
pub const PER_CLIENT: usize = 64;
/// How often expired tokens are swept out, at most.
const SWEEP: Duration = Duration::from_secs(60);

/// What a token stands for.
#[derive(Debug, Clone)]
pub struct Issued {
    pub client: String,
    /// SHA-256 of the client's secret hash when the token was made: a new secret (or a new
    /// client of the same name) ends the token.
    pub credential: [u8; 32],
    pub v1p1: Scopes,
    pub v1p2: Scopes,
    pub expires: Instant,
}

pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What looking a token up found.
#[derive(Debug)]
pub enum Lookup {
    Live(Issued),
    Expired,
    Unknown,
}

pub struct Tokens {
    live: HashMap<[u8; 32], Issued>,
    per_client: HashMap<String, VecDeque<[u8; 32]>>,
    swept: Instant,
}

impl Tokens {
    pub fn new(now: Instant) -> Tokens {
        Tokens {
            live: HashMap::new(),
            per_client: HashMap::new(),
            swept: now,
        }
    }

    /// Makes a token; returns the text to hand out.
    pub fn issue(&mut self, issued: Issued, now: Instant) -> String {
        self.sweep(now);
        let mut raw = [0u8; 32];
        rand::rng().fill(&mut raw);
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let key = digest(text.as_bytes());
        let queue = self.per_client.entry(issued.client.clone()).or_default();
        while queue.len() >= PER_CLIENT {
            if let Some(old) = queue.pop_front() {
                self.live.remove(&old);
            }
        }
        queue.push_back(key);
        self.live.insert(key, issued);
        text
    }

    /// Finds a token by its SHA-256.
    pub fn lookup(&mut self, key: &[u8; 32], now: Instant) -> Lookup {
        match self.live.get(key) {
            None => Lookup::Unknown,
            Some(t) if t.expires <= now => Lookup::Expired,
            Some(t) => Lookup::Live(t.clone()),
        }
    }

    /// Ends every token `keep` refuses (its client removed, or given a new secret).
    pub fn retain(&mut self, keep: impl Fn(&Issued) -> bool) {
        self.live.retain(|_, t| keep(t));
        let live = &self.live;
        self.per_client.retain(|_, q| {
            q.retain(|k| live.contains_key(k));
            !q.is_empty()
        });
    }

    /// Number of tokens held (live or not yet swept).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.live.len()
    }

    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < SWEEP {
            return;
        }
        self.swept = now;
        self.retain(|t| t.expires > now);
    }
}
