//! Every path of the state directory (the contract of DESIGN.md "Directories on a server"),
//! named once. Nothing else joins a name onto `state_dir`.
//!
//! ```text
//! hostkeys/                  SFTP host keys, generated on first start (0600)
//! db/                        the sled store (db/rosterdrop.lock: one process at a time)
//! drop/<account>/            an SFTP account's root: uploads land here
//! spool/<source>/<batch>/    claimed bundles being processed (resumed on start)
//! archive/<source>/<batch>/  original uploads, kept for `retention_days`
//! reports/<source>/<batch>/  patch-summary.csv, summary.txt, modified/, modified.zip
//! outbox/                    emails as .eml files when mail.transport = "file"
//! mail/                      the mail queue (queue/, sent/, failed/) and upload names
//! tmp/                       scratch space of exports
//! admin.sock                 the CLI's way into a running daemon (0600)
//! ```

use std::path::{Path, PathBuf};

/// A state directory and the paths in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDir<'a>(&'a Path);

impl<'a> StateDir<'a> {
    pub fn at(root: &'a Path) -> StateDir<'a> {
        StateDir(root)
    }
    pub fn root(self) -> &'a Path {
        self.0
    }
    pub fn hostkeys(self) -> PathBuf {
        self.0.join("hostkeys")
    }
    pub fn db(self) -> PathBuf {
        self.0.join("db")
    }
    pub fn drop(self) -> PathBuf {
        self.0.join("drop")
    }
    pub fn spool(self) -> PathBuf {
        self.0.join("spool")
    }
    pub fn archive(self) -> PathBuf {
        self.0.join("archive")
    }
    pub fn reports(self) -> PathBuf {
        self.0.join("reports")
    }
    pub fn outbox(self) -> PathBuf {
        self.0.join("outbox")
    }
    pub fn mail(self) -> PathBuf {
        self.0.join("mail")
    }
    /// What each batch's upload was called, for the mails that follow an admin's command.
    pub fn upload_names(self) -> PathBuf {
        self.mail().join("uploads")
    }
    /// What the REST provider keeps between runs: per source, when each served record last
    /// changed and the records it still shows as removed (`<source>.served`).
    pub fn api(self) -> PathBuf {
        self.0.join("api")
    }
    pub fn tmp(self) -> PathBuf {
        self.0.join("tmp")
    }
    pub fn admin_socket(self) -> PathBuf {
        self.0.join("admin.sock")
    }
    /// The folders `serve` creates at start (the rest are made by whoever owns them).
    pub fn serve_folders(self) -> [PathBuf; 5] {
        [
            self.drop(),
            self.spool(),
            self.archive(),
            self.reports(),
            self.tmp(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are DESIGN's contract: the systemd unit, docs and vendors' reports rely on them.
    #[test]
    fn every_path_of_the_contract() {
        let s = StateDir::at(Path::new("/var/lib/rosterdrop"));
        let p = |p: PathBuf| p.to_string_lossy().into_owned();
        assert_eq!(p(s.hostkeys()), "/var/lib/rosterdrop/hostkeys");
        assert_eq!(p(s.db()), "/var/lib/rosterdrop/db");
        assert_eq!(p(s.drop()), "/var/lib/rosterdrop/drop");
        assert_eq!(p(s.spool()), "/var/lib/rosterdrop/spool");
        assert_eq!(p(s.archive()), "/var/lib/rosterdrop/archive");
        assert_eq!(p(s.reports()), "/var/lib/rosterdrop/reports");
        assert_eq!(p(s.outbox()), "/var/lib/rosterdrop/outbox");
        assert_eq!(p(s.mail()), "/var/lib/rosterdrop/mail");
        assert_eq!(p(s.upload_names()), "/var/lib/rosterdrop/mail/uploads");
        assert_eq!(p(s.tmp()), "/var/lib/rosterdrop/tmp");
        assert_eq!(p(s.admin_socket()), "/var/lib/rosterdrop/admin.sock");
        assert_eq!(s.root(), Path::new("/var/lib/rosterdrop"));
    }
}
