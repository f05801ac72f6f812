//! The descriptor budget: every SFTP connection holds a socket and every open handle may hold a
//! file, so together they are capped below the process's limit of open files, leaving
//! `fd_reserve` descriptors to the rest of the daemon (intake scans, the store, the admin
//! socket, mail, logs) whatever the clients do.

use super::SftpConfig;

/// Raises the soft limit of open files to the hard limit (allowed without privileges) and
/// returns the soft limit in force afterwards; `None` when it is unlimited.
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?lim.current, to = ?lim.maximum, "raised the open files limit")
            }
            Err(e) => tracing::debug!(error = %e, "could not raise the open files limit"),
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The caps in force: `max_connections`, `max_open_handles` and `max_handles_per_account`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub connections: usize,
    pub handles: usize,
    pub handles_per_account: usize,
}

/// The caps that fit `nofile` descriptors after `fd_reserve`: the configured
/// `max_connections` and `max_open_handles` when they fit; otherwise handles are lowered first
/// (new logins matter more than yet another open file), but keep at least a quarter of what is
/// left, and connections give up the rest. Handles lowered that way are shared out too: one
/// account then gets at most a quarter of them, so it cannot take them all from the other
/// vendors.
pub fn fit(cfg: &SftpConfig, nofile: Option<u64>) -> Budget {
    let (mut conns, mut handles) = (cfg.max_connections, cfg.max_open_handles);
    if let Some(nofile) = nofile {
        let avail =
            usize::try_from(nofile.saturating_sub(cfg.fd_reserve as u64)).unwrap_or(usize::MAX);
        if conns.saturating_add(handles) > avail {
            conns = conns.min(avail - avail / 4).max(1);
            handles = handles.min(avail - conns.min(avail)).max(1);
        }
    }
    let per_account = if handles < cfg.max_open_handles {
        cfg.max_handles_per_account.min(handles / 4).max(1)
    } else {
        cfg.max_handles_per_account
    };
    Budget {
        connections: conns,
        handles,
        handles_per_account: per_account,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fits_the_limit() {
        let b = |connections, handles, handles_per_account| Budget {
            connections,
            handles,
            handles_per_account,
        };
        let cfg = SftpConfig::default();
        // 500 connections + 4096 handles + 256 reserved.
        assert_eq!(fit(&cfg, None), b(500, 4096, 128));
        assert_eq!(fit(&cfg, Some(65536)), b(500, 4096, 128));
        assert_eq!(fit(&cfg, Some(1024)), b(500, 268, 67));
        assert_eq!(fit(&cfg, Some(456)), b(150, 50, 12));
        let small = SftpConfig {
            max_connections: 20,
            ..Default::default()
        };
        assert_eq!(fit(&small, Some(400)), b(20, 124, 31));
        // A limit below the reserve still admits one of each (and says so at start).
        assert_eq!(fit(&cfg, Some(100)), b(1, 1, 1));
    }
}
