//! Bounded per-client state: the token-bucket rate limit and the OAuth 1.0a nonces seen.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// A token bucket per client: `burst` requests at once, refilled at `per_sec`.
pub struct RateLimit {
    per_sec: f64,
    burst: f64,
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimit {
    pub fn new(per_sec: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one request from `client`'s bucket; `Err(seconds)` when it is empty: how long
    /// until a request is allowed again (at least 1).
    pub fn take(&mut self, client: &str, now: Instant) -> Result<(), u64> {
        let (per_sec, burst) = (self.per_sec, self.burst);
        let entry = match self.buckets.get_mut(client) {
            Some(e) => e,
            None => self
                .buckets
                .entry(client.to_owned())
                .or_insert((burst, now)),
        };
        let (tokens, last) = entry;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * per_sec).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / per_sec;
            Err((wait.ceil() as u64).max(1))
        }
    }

    /// Forgets the buckets of clients `keep` refuses (removed from the clients file).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.buckets.retain(|k, _| keep(k));
    }
}

/// OAuth 1.0a nonces per consumer, each kept until its timestamp has left the accepted window
/// (then a replay is refused as stale anyway). Nonces are kept as 64-bit keyed hashes (a
/// random key per process): 16 bytes each, whatever their length.
pub struct Nonces {
    cap: usize,
    hasher: std::collections::hash_map::RandomState,
    seen: HashMap<String, HashMap<u64, u64>>,
}

/// What [`Nonces::check_and_insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    Replayed,
    /// The consumer's store is full of nonces still in the window: seconds until one leaves.
    Full(u64),
}

impl Nonces {
    /// `cap`: nonces kept per consumer at most.
    pub fn new(cap: usize) -> Nonces {
        Nonces {
            cap: cap.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            seen: HashMap::new(),
        }
    }

    /// Records `nonce` for `consumer`, to be forgotten at `forget_at` (wall seconds); refuses
    /// one already seen. `now` is the wall clock in seconds.
    pub fn check_and_insert(
        &mut self,
        consumer: &str,
        nonce: &[u8],
        forget_at: u64,
        now: u64,
    ) -> NonceCheck {
        let h = self.hasher.hash_one(nonce);
        let cap = self.cap;
        let set = match self.seen.get_mut(consumer) {
            Some(s) => s,
            None => self.seen.entry(consumer.to_owned()).or_default(),
        };
        if set.get(&h).is_some_and(|&until| until > now) {
            return NonceCheck::Replayed;
        }
        if set.len() >= cap {
            set.retain(|_, until| *until > now);
            if set.len() >= cap {
                let soonest = set.values().min().copied().unwrap_or(now);
                return NonceCheck::Full(soonest.saturating_sub(now).max(1));
            }
        }
        set.insert(h, forget_at);
        NonceCheck::Fresh
    }

    /// Forgets the nonces of consumers `keep` refuses.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.seen.retain(|k, _| keep(k));
    }
}

/// A bounded set of recently refused bearer tokens per address, so that one stale token sent
/// again and again (by a client's workers after a restart of the daemon, say) counts once in
/// the defender, while every different token counts.
pub struct Refused {
    cap: usize,
    seen: std::collections::HashSet<(std::net::IpAddr, [u8; 32])>,
    since: Instant,
}

impl Refused {
    pub fn new(cap: usize) -> Refused {
        Refused {
            cap,
            seen: Default::default(),
            since: Instant::now(),
        }
    }

    /// True the first time this address sends this token (within the last half hour or so).
    pub fn first(&mut self, ip: std::net::IpAddr, token: [u8; 32], now: Instant) -> bool {
        if self.seen.len() >= self.cap
            || now.saturating_duration_since(self.since) > Duration::from_secs(1800)
        {
            self.seen.clear();
            self.since = now;
        }
        self.seen.insert((ip, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_refills_at_the_rate() {
        let mut r = RateLimit::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.take("a", t0), Ok(()));
        }
        assert_eq!(r.take("a", t0), Err(1));
        // Another client has its own bucket.
        assert_eq!(r.take("b", t0), Ok(()));
        // Half a second at 2/s gives one request back, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(r.take("a", t1), Ok(()));
        assert!(r.take("a", t1).is_err());
        // A long pause refills up to the burst only.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(r.take("a", t2), Ok(()));
        }
        assert!(r.take("a", t2).is_err());
        // A slow rate says how long to wait.
        let mut slow = RateLimit::new(1, 1);
        assert_eq!(slow.take("a", t0), Ok(()));
        assert_eq!(slow.take("a", t0), Err(1));
        r.retain(|k| k == "b");
        assert_eq!(r.take("a", t0), Ok(()), "a removed client starts afresh");
    }

    #[test]
    fn nonces_replay_expire_and_stay_bounded() {
        let mut n = Nonces::new(3);
        assert_eq!(n.check_and_insert("c", b"n1", 100, 10), NonceCheck::Fresh);
        assert_eq!(
            n.check_and_insert("c", b"n1", 100, 10),
            NonceCheck::Replayed
        );
        assert_eq!(n.check_and_insert("d", b"n1", 100, 10), NonceCheck::Fresh);
        assert_eq!(n.check_and_insert("c", b"n2", 50, 10), NonceCheck::Fresh);
        assert_eq!(n.check_and_insert("c", b"n3", 100, 10), NonceCheck::Fresh);
        assert_eq!(
            n.check_and_insert("c", b"n4", 100, 10),
            NonceCheck::Full(40)
        );
        // Once n2's time has passed it makes room, and a replay of it is no longer tracked
        // (its timestamp is stale by then).
        assert_eq!(n.check_and_insert("c", b"n4", 100, 60), NonceCheck::Fresh);
        assert_eq!(
            n.check_and_insert("c", b"n1", 100, 60),
            NonceCheck::Replayed
        );
    }

    #[test]
    fn refused_tokens_count_once_per_address() {
        let mut r = Refused::new(2);
        let a = "10.0.0.1".parse().unwrap();
        let b = "10.0.0.2".parse().unwrap();
        let t = Instant::now();
        assert!(r.first(a, [1; 32], t));
        assert!(!r.first(a, [1; 32], t));
        assert!(r.first(b, [1; 32], t));
        assert!(r.first(a, [2; 32], t), "full: forgotten, so it counts");
    }
}
