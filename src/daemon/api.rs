//! The REST provider inside the daemon: its listener, and the task that rebuilds a source's
//! served roster whenever the store's roster of that source moves (a commit, an approval, a
//! rollback, here or by an admin command) or its Apple settings change.

use super::*;

use crate::api::served;
use crate::api::server::ApiState;

/// How often the served rosters are compared with the store when nothing woke the task.
const POLL: Duration = Duration::from_secs(2);
/// How long a rebuild that failed waits before it is tried again on the same store state.
const RETRY_FAILED: Duration = Duration::from_secs(60);

/// Binds the API's listener (before anything else starts, so a taken port stops the start).
pub(super) async fn bind(cfg: &Config) -> Result<Option<tokio::net::TcpListener>, DaemonError> {
    if !cfg.api.enabled {
        return Ok(None);
    }
    let addr = cfg.api.listen;
    tokio::net::TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|e| DaemonError::Other(format!("api.listen {addr}: {e}")))
}

/// The TLS acceptor when `api.tls_cert` and `api.tls_key` are set (read at start, so a bad
/// file stops the start with its name).
pub(super) fn tls(cfg: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, DaemonError> {
    match (&cfg.api.tls_cert, &cfg.api.tls_key) {
        (Some(c), Some(k)) => {
            let resolve = |p: &Path| crate::config::resolve_beside(&cfg.path, p);
            crate::api::tls::acceptor(&resolve(c), &resolve(k))
                .map(Some)
                .map_err(|e| DaemonError::Other(e.to_string()))
        }
        _ => Ok(None),
    }
}

/// The URL clients reach the API at: `public_url`, or the listener's own address.
pub(super) fn public_url(cfg: &Config, listener: &tokio::net::TcpListener) -> String {
    match (&cfg.api.public_url, listener.local_addr()) {
        (Some(_), _) | (None, Err(_)) => cfg.api.base_url(),
        (None, Ok(addr)) if cfg.api.tls_cert.is_some() => format!("https://{addr}"),
        (None, Ok(addr)) => format!("http://{addr}"),
    }
}

/// Keeps every configured source's served roster in step with the store until the daemon
/// stops.
pub(super) async fn keep_served(sh: Arc<Shared>, api: Arc<ApiState>) {
    let mut stop = sh.stopping.subscribe();
    // The store state whose rebuild failed, per source, and when: tried again when it moves,
    // or after a while (the failure may have been the disk, full for a time).
    let mut failed: HashMap<String, ((Option<u64>, String), Instant)> = HashMap::new();
    loop {
        let cfg = sh.cfg();
        api.retain(|s| cfg.sources.contains_key(s));
        for (name, sc) in &cfg.sources {
            if sh.stopping() {
                return;
            }
            let apple = sc.apple.settings(name);
            let Ok(store) = sh.store() else { continue };
            let Ok(batch) = store.last_applied(name) else {
                continue;
            };
            let current = api.served(name);
            let fresh = current
                .as_ref()
                .is_some_and(|s| s.batch == batch && s.settings == served::settings_text(&apple));
            let state = (batch, served::settings_text(&apple));
            let failed_now = failed
                .get(name)
                .is_some_and(|(st, at)| *st == state && at.elapsed() < RETRY_FAILED);
            if fresh || failed_now {
                continue;
            }
            let dir = sh.dirs().api();
            let days = cfg.api.tombstone_days;
            let name2 = name.clone();
            let built = tokio::task::spawn_blocking(move || {
                let span = tracing::info_span!("served", source = %name2, batch = ?batch);
                let _e = span.enter();
                let started = Instant::now();
                let now = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
                let r =
                    served::refresh(&store, &name2, &apple, current.as_deref(), &dir, now, days);
                // The roster read for the build is gone: give its memory back.
                crate::daemon::memory::release_free_memory();
                if let Ok(s) = &r {
                    tracing::info!(
                        records = s.counts().iter().sum::<usize>(),
                        ms = started.elapsed().as_millis() as u64,
                        "served roster rebuilt"
                    );
                    // Apple has no terms: without the setting a class names none, which
                    // OneRoster 1.2 requires (the export to OneRoster is refused for it).
                    let kept = store.format_of(&name2);
                    if apple.school_year.is_none()
                        && matches!(kept, Ok(Some(crate::roster::schema::Format::Apple)))
                    {
                        tracing::warn!(
                            "an Apple roster without [sources.{name2}.apple.school_year]: its \
                             classes are served without terms, which OneRoster 1.2 consumers \
                             reject; set the school year"
                        );
                    }
                }
                r
            })
            .await;
            match built {
                Ok(Ok(s)) => {
                    failed.remove(name);
                    api.publish(s);
                }
                Ok(Err(e)) => {
                    tracing::error!(source = %name, error = %e, "served roster not rebuilt");
                    failed.insert(name.clone(), (state, Instant::now()));
                    // The previous roster, if any, stays served; without one the source
                    // answers 503, never an empty roster a consumer could take for everyone
                    // deleted.
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            _ = sh.api_changed.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
