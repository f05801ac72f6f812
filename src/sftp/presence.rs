//! Who is logged in over SFTP now, and when each account last logged in (for the admins'
//! console). In memory: a restart forgets the last logins. Bounded: one entry per live
//! session (itself bounded by `max_connections`) and one per account that logged in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One live, authenticated SFTP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub account: String,
    pub source: String,
    pub addr: SocketAddr,
    /// Unix seconds.
    pub since: u64,
}

#[derive(Default)]
pub struct Presence {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
    last: Mutex<HashMap<String, (u64, SocketAddr)>>,
}

/// Keeps a session in the live list while it is alive.
pub struct LiveGuard {
    presence: Arc<Presence>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.presence
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Presence {
    /// Records a login; the session is live until the guard is dropped.
    pub fn login(self: &Arc<Self>, account: &str, source: &str, addr: SocketAddr) -> LiveGuard {
        let now = crate::clock::now_secs();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            Live {
                account: account.to_owned(),
                source: source.to_owned(),
                addr,
                since: now,
            },
        );
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.to_owned(), (now, addr));
        LiveGuard {
            presence: self.clone(),
            id,
        }
    }

    /// The live sessions, oldest first.
    pub fn live(&self) -> Vec<Live> {
        let mut v: Vec<Live> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.since.cmp(&b.since).then(a.account.cmp(&b.account)));
        v
    }

    /// When and from where `account` last logged in since the daemon started.
    pub fn last_login(&self, account: &str) -> Option<(u64, SocketAddr)> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_until_dropped_and_last_login_kept() {
        let p = Arc::new(Presence::default());
        let addr: SocketAddr = "10.0.0.1:2222".parse().unwrap();
        let g = p.login("maplesis", "maple", addr);
        assert_eq!(p.live().len(), 1);
        assert_eq!(p.live()[0].account, "maplesis");
        drop(g);
        assert!(p.live().is_empty());
        assert_eq!(p.last_login("maplesis").map(|x| x.1), Some(addr));
        assert!(p.last_login("other").is_none());
    }
}
