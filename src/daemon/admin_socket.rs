//! The admin socket server: `rosterdrop` commands sent to the running daemon, run beside the
//! workers, with the mail that follows an approval, a discard or a rollback.

use super::*;

impl Shared {
    /// The mail for an admin command that changed batch `id` (`rollback`: `id` is the
    /// rollback's own record).
    pub(super) fn notify_command(&self, req: &Request, b: &Batch) {
        use crate::daemon::mail::{BatchMail, Event};
        let undone = match (req, b.rollback_of) {
            (Request::Rollback { .. }, Some(u)) => match self.store().and_then(|s| s.find_batch(u))
            {
                Ok(Some(u)) => Some(u),
                _ => {
                    tracing::error!(batch = b.id, "rolled-back batch not found: no mail");
                    return;
                }
            },
            _ => None,
        };
        let event = match (req, &undone) {
            (Request::Approve { .. }, _) => Event::Approved,
            (Request::Discard { .. }, _) => Event::Discarded,
            (Request::Rollback { .. }, Some(u)) => Event::RolledBack { undone: u },
            _ => return,
        };
        let upload = self.recall_upload(undone.as_ref().map_or(b.id, |u| u.id));
        let link = self.batch_link(b.id);
        let mail = BatchMail {
            upload: upload.as_deref(),
            link: link.as_deref(),
            ..BatchMail::new(b, event)
        };
        let _ = self.notify_admins(&mail);
    }
}

impl Shared {
    /// Runs an admin request against the store, then, for an approve, discard or rollback
    /// that changed a batch, sends its mail and wakes the REST provider. The one path of the
    /// admin socket and the web console. Blocking.
    pub(super) fn run_admin(&self, req: &Request) -> admin::Answer {
        let scratch = self.dirs().tmp();
        let _ = std::fs::create_dir_all(&scratch);
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => {
                return (
                    Reply::error(1, format!("store unreadable: {e}")),
                    admin::Files::none(),
                )
            }
        };
        let out = admin::execute(&store, req, &scratch);
        if req.changes_roster() && out.0.exit == 0 {
            if let Some(b) = out
                .0
                .batch
                .and_then(|id| store.find_batch(id).ok().flatten())
            {
                let span = tracing::info_span!("batch", batch = b.id);
                let _e = span.enter();
                tracing::info!(source = %b.source, state = b.state.label(), "admin command applied");
                self.notify_command(req, &b);
                self.api_changed.notify_one();
            }
        }
        out
    }

    /// The batch's page in the web console, when the console is served.
    pub(super) fn batch_link(&self, id: u64) -> Option<String> {
        let cfg = self.cfg();
        (cfg.console.enabled && cfg.api.enabled)
            .then(|| format!("{}{}batch/{id}", cfg.api.base_url(), cfg.console.path))
    }
}

/// The web console's way into the daemon.
impl crate::console::Backend for Shared {
    fn config(&self) -> Arc<Config> {
        self.cfg()
    }
    fn store(&self) -> Result<Arc<Store>, StoreError> {
        Shared::store(self)
    }
    fn admin(&self, req: Request) -> admin::Answer {
        self.run_admin(&req)
    }
    fn state_dir(&self) -> PathBuf {
        self.state_dir.clone()
    }
    fn reload(&self) -> Result<String, String> {
        Shared::reload(self).map_err(|e| e.to_string())
    }
}

pub(super) async fn admin_loop(sh: Arc<Shared>, listener: tokio::net::UnixListener) {
    let mut stop = sh.stopping.subscribe();
    loop {
        let conn = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            c = listener.accept() => c,
        };
        let Ok((stream, _)) = conn else { continue };
        let sh = sh.clone();
        tokio::spawn(async move {
            if let Err(e) = admin_conn(sh, stream).await {
                tracing::warn!(error = %e, "admin connection failed");
            }
        });
    }
}

async fn reload_off_runtime(sh: &Arc<Shared>) -> Result<String, ReloadError> {
    let sh2 = sh.clone();
    tokio::task::spawn_blocking(move || sh2.reload())
        .await
        .unwrap_or(Err(ReloadError::Stopped))
}

/// How much of an export file is read at once when it is sent.
const EXPORT_CHUNK: usize = 1 << 20;

async fn admin_conn(sh: Arc<Shared>, stream: tokio::net::UnixStream) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut r = tokio::io::BufReader::new(r.take(admin::MAX_REQUEST));
    tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let (reply, files) = match serde_json::from_str::<Request>(&line) {
        Err(e) => (
            Reply::error(2, format!("bad request: {e}")),
            admin::Files::none(),
        ),
        Ok(Request::Status) => {
            // Reads the history: file I/O, off the runtime.
            let sh2 = sh.clone();
            let text = tokio::task::spawn_blocking(move || sh2.status_text())
                .await
                .unwrap_or_else(|_| "status unavailable\n".into());
            (
                Reply {
                    stdout: text,
                    ..Reply::default()
                },
                admin::Files::none(),
            )
        }
        Ok(Request::Reload) => match reload_off_runtime(&sh).await {
            Ok(m) => (
                Reply {
                    stdout: format!("{m}\n"),
                    ..Reply::default()
                },
                admin::Files::none(),
            ),
            Err(e) => (
                Reply::error(1, format!("not reloaded: {e}")),
                admin::Files::none(),
            ),
        },
        Ok(req) => {
            let sh2 = sh.clone();
            tokio::task::spawn_blocking(move || sh2.run_admin(&req))
                .await
                .unwrap_or_else(|_| (Reply::error(2, "internal error"), admin::Files::none()))
        }
    };
    let mut head = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{}".to_vec());
    head.push(b'\n');
    w.write_all(&head).await?;
    // Each file from the disk to the socket, a buffer at a time, exactly as long as the reply
    // said (a shorter one ends the connection, which the client reports as cut short).
    for (path, head) in files.paths().iter().zip(&reply.files) {
        // Read in large pieces: each read of a tokio file is a trip to the blocking pool, and
        // at `copy`'s 8 KiB a 20,000-student export took 40% longer than sending it from memory.
        let f = tokio::fs::File::open(path).await?;
        let mut f = tokio::io::BufReader::with_capacity(EXPORT_CHUNK, f.take(head.len));
        let sent = tokio::io::copy_buf(&mut f, &mut w).await?;
        if sent != head.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "an export file shrank while it was sent",
            ));
        }
    }
    drop(files);
    w.shutdown().await
}
