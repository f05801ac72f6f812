//! Per-address login defence in the manner of SFTPGo's defender: failed logins add a score to
//! the client's address (an unknown user weighs more than a wrong password); an address whose
//! score within the observation window reaches the threshold is refused for the ban time.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::DefenderConfig;

/// What happened, with its weight taken from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    UnknownUser,
    WrongCredentials,
    LimitExceeded,
}

#[derive(Default)]
struct Host {
    events: VecDeque<(Instant, u32)>,
    banned_until: Option<Instant>,
}

/// Shared by all connections of one server.
pub struct Defender {
    cfg: DefenderConfig,
    hosts: Mutex<HashMap<IpAddr, Host>>,
}

/// Addresses tracked at most; the oldest quiet ones are forgotten first (bounded memory).
const MAX_HOSTS: usize = 100_000;

impl Defender {
    pub fn new(cfg: DefenderConfig) -> Defender {
        Defender {
            cfg,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Time left on the address's ban, if it is banned now.
    pub fn banned(&self, ip: IpAddr) -> Option<Duration> {
        if !self.cfg.enabled {
            return None;
        }
        let now = Instant::now();
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .get(&ip)
            .and_then(|h| h.banned_until)
            .and_then(|until| until.checked_duration_since(now))
    }

    /// The addresses banned now and the time left on each, longest first (for the console).
    pub fn bans(&self) -> Vec<(IpAddr, Duration)> {
        let now = Instant::now();
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(IpAddr, Duration)> = hosts
            .iter()
            .filter_map(|(ip, h)| Some((*ip, h.banned_until?.checked_duration_since(now)?)))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Lifts an address's ban and forgets its score; true if it was banned.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let was = hosts
            .get(&ip)
            .and_then(|h| h.banned_until)
            .is_some_and(|u| u > now);
        hosts.remove(&ip);
        if was {
            tracing::warn!(addr = %ip, "defender: ban lifted by an admin");
        }
        was
    }

    /// Records an event; returns true when this event banned the address.
    pub fn record(&self, ip: IpAddr, event: Event) -> bool {
        if !self.cfg.enabled || self.cfg.safelist.contains(&ip) {
            return false;
        }
        let score = match event {
            Event::UnknownUser => self.cfg.score_unknown_user,
            Event::WrongCredentials => self.cfg.score_wrong_credentials,
            Event::LimitExceeded => self.cfg.score_limit_exceeded,
        };
        let now = Instant::now();
        let window = Duration::from_secs(self.cfg.observation_secs);
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(&ip) {
            hosts.retain(|_, h| {
                h.banned_until.is_some_and(|u| u > now)
                    || h.events
                        .back()
                        .is_some_and(|(t, _)| now.duration_since(*t) < window)
            });
            if hosts.len() >= MAX_HOSTS {
                return false;
            }
        }
        let host = hosts.entry(ip).or_default();
        while host
            .events
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            host.events.pop_front();
        }
        host.events.push_back((now, score));
        let total: u32 = host.events.iter().map(|(_, s)| *s).sum();
        if total >= self.cfg.threshold && host.banned_until.is_none_or(|u| u <= now) {
            host.banned_until = Some(now + Duration::from_secs(self.cfg.ban_secs));
            host.events.clear();
            tracing::warn!(addr = %ip, score = total, ban_secs = self.cfg.ban_secs, "SFTP defender: address banned");
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_weighs_more() {
        let d = Defender::new(DefenderConfig {
            threshold: 4,
            ..Default::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(!d.record(a, Event::WrongCredentials));
        assert!(!d.record(a, Event::WrongCredentials));
        assert!(!d.record(a, Event::WrongCredentials));
        assert!(d.banned(a).is_none());
        assert!(d.record(a, Event::WrongCredentials));
        assert!(d.banned(a).is_some());
        assert!(!d.record(b, Event::UnknownUser));
        assert!(d.record(b, Event::UnknownUser));
        assert!(d.banned(b).is_some());
        assert_eq!(d.bans().len(), 2);
        assert!(d.unban(a));
        assert!(d.banned(a).is_none() && !d.unban(a));
        assert_eq!(d.bans().iter().map(|x| x.0).collect::<Vec<_>>(), vec![b]);
    }

    #[test]
    fn safelist_and_disabled() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let d = Defender::new(DefenderConfig {
            threshold: 1,
            safelist: vec![a],
            ..Default::default()
        });
        assert!(!d.record(a, Event::UnknownUser));
        assert!(d.banned(a).is_none());
        let d = Defender::new(DefenderConfig {
            threshold: 1,
            enabled: false,
            ..Default::default()
        });
        assert!(!d.record(a, Event::UnknownUser));
        assert!(d.banned(a).is_none());
    }
}
