//! The intake loop: file system events, SFTP upload events and periodic rescans of the drop
//! folders; what is ready is claimed into the spool and handed to its source's worker.

use super::*;

impl Shared {
    /// Finds what is ready in one drop folder and claims it.
    pub(super) fn intake_account(
        self: &Arc<Self>,
        account: &str,
        tracker: &Mutex<Tracker>,
    ) -> bool {
        let source = match self
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
        {
            Some(a) => a.source.clone(),
            None => return false,
        };
        let cfg = self.cfg();
        if cfg.intake.paused {
            return false;
        }
        if !cfg.sources.contains_key(&source) {
            if lock(&self.unconfigured).insert(source.clone()) {
                tracing::warn!(account, source = %source, "uploads wait: the account's source is not in the configuration (add it, then reload)");
            }
            return false;
        }
        let rules = Rules {
            quiet: Duration::from_secs(cfg.intake.quiet_period_secs),
            incomplete_after: (cfg.intake.incomplete_after_secs > 0)
                .then(|| Duration::from_secs(cfg.intake.incomplete_after_secs)),
        };
        let root = self.dirs().drop().join(account);
        let ready = {
            let t = lock(tracker);
            match intake::scan(&root, &t, rules) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(account, error = %e, "drop folder not scanned");
                    return false;
                }
            }
        };
        let pending = !ready.is_empty() || folder_has_files(&root);
        if !ready.is_empty() && !self.has_room() {
            // Taking an upload writes to the store: it waits in the drop folder.
            return pending;
        }
        for r in ready {
            if self.stopping() {
                break;
            }
            let arrival = match self.store().and_then(|s| s.arrival(&source, account)) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "no batch id; upload left in the drop folder");
                    break;
                }
            };
            let id = arrival.id;
            let claim = match spool::claim(&self.dirs().spool(), &r, &arrival) {
                Ok(c) => c,
                Err(e) => {
                    let undone = spool::unclaim(&self.dirs().spool(), &r, &source, id);
                    tracing::error!(batch = id, error = %e, undone, "upload could not be claimed; it stays in the drop folder and is tried again");
                    // Nothing more from this account this round (the next tick tries again).
                    break;
                }
            };
            {
                let mut t = lock(tracker);
                match r.shape {
                    intake::Shape::Loose => {
                        for f in &r.files {
                            t.forget_under(&root.join(f));
                        }
                    }
                    _ => t.forget_under(&r.path),
                }
            }
            if let Err(e) = self.store().and_then(|s| s.received(&arrival)) {
                tracing::error!(batch = id, error = %e, "claim not recorded in the store");
            }
            tracing::info!(
                batch = id,
                source = %source,
                account,
                shape = ?claim.shape,
                why = %claim.why,
                files = claim.files.len(),
                "bundle received"
            );
            self.submit(Job {
                dir: Claim::dir(&self.dirs().spool(), &source, id),
                claim,
            });
        }
        pending
    }
}

fn folder_has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_some())
}

/// Maps a path under `drop/` to its account.
fn account_of(drop_dir: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(drop_dir).ok()?;
    match rest.components().next()? {
        std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    }
}

pub(super) async fn intake_loop(
    sh: Arc<Shared>,
    mut fs_rx: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    mut up_rx: mpsc::Receiver<UploadEvent>,
) {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let drop_dir = sh.dirs().drop();
    let mut stop = sh.stopping.subscribe();
    let mut dirty: HashSet<String> = HashSet::new();
    let mut waiting: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let rescan = Duration::from_secs(sh.cfg().intake.rescan_secs.max(1));
    let mut full = tokio::time::interval(rescan);
    loop {
        sh.heartbeat.store(
            sh.started.elapsed().as_secs(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut now_scan: Vec<String> = Vec::new();
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            _ = sh.rescan_now.notified() => {
                full.reset_immediately();
                continue;
            }
            Some(up) = up_rx.recv() => {
                lock(&tracker).finished(&up.file, Instant::now());
                now_scan.push(up.account);
            }
            Some(ev) = fs_rx.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        // Lost events (queue overflow): look at everything again.
                        tracing::warn!(error = %e, "file system watch error; rescanning");
                        full.reset_immediately();
                        continue;
                    }
                };
                let now = Instant::now();
                let mut t = lock(&tracker);
                let finished = matches!(
                    ev.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Modify(ModifyKind::Name(RenameMode::To))
                        | EventKind::Modify(ModifyKind::Name(RenameMode::Both))
                );
                let target = match ev.kind {
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.last(),
                    _ => ev.paths.first(),
                };
                let Some(p) = target else { continue };
                match ev.kind {
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                        t.forget_under(p)
                    }
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) | EventKind::Modify(ModifyKind::Name(_)) if finished => {
                        if let EventKind::Modify(ModifyKind::Name(RenameMode::Both)) = ev.kind {
                            if let Some(old) = ev.paths.first() { t.forget_under(old); }
                        }
                        t.finished(p, now)
                    }
                    EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => continue,
                    _ => t.touched(p, now),
                }
                drop(t);
                if let Some(a) = account_of(&drop_dir, p) {
                    if finished { now_scan.push(a) } else { dirty.insert(a); }
                }
            }
            _ = tick.tick() => {
                now_scan.extend(dirty.drain());
                now_scan.extend(waiting.iter().cloned());
            }
            _ = full.tick() => {
                if let Ok(rd) = std::fs::read_dir(&drop_dir) {
                    now_scan.extend(rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
                }
                let sh2 = sh.clone();
                tokio::task::spawn_blocking(move || sh2.expire_archive());
            }
        }
        now_scan.sort();
        now_scan.dedup();
        if now_scan.is_empty() {
            continue;
        }
        let sh2 = sh.clone();
        let t2 = tracker.clone();
        let res = tokio::task::spawn_blocking(move || {
            now_scan
                .into_iter()
                .map(|a| {
                    let pending = sh2.intake_account(&a, &t2);
                    (a, pending)
                })
                .collect::<Vec<_>>()
        })
        .await;
        for (a, pending) in res.unwrap_or_default() {
            if pending {
                waiting.insert(a);
            } else {
                waiting.remove(&a);
            }
        }
    }
}
