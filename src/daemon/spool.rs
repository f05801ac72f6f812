//! The spool: a claimed bundle waits in `spool/<source>/<batch>/` for its source's worker.
//!
//! Claiming writes `spool/<source>/<batch>/batch.json` first, then moves the files into
//! `spool/<source>/<batch>/upload/` with `rename(2)`, then marks the claim complete; a crash at
//! any point is finished by [`resume_claims`] on the next start.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::intake::{IntakeError, Ready, Shape};
use crate::fsutil::{at as io, move_path, write_atomic};
use crate::store::Arrival;

/// What the spool keeps about a claimed bundle (`batch.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    /// The batch's identity (`id`, `source`, `account`, `received_at` in `batch.json`).
    #[serde(flatten)]
    pub arrival: Arrival,
    pub shape: Shape,
    /// Where the bundle came from (a zip or folder path, or the drop folder for loose files).
    pub from: PathBuf,
    /// Loose files (names in `from`), or the zip's file name.
    pub files: Vec<String>,
    pub why: String,
    /// Marker files that said the bundle was ready; removed once the claim is complete.
    #[serde(default)]
    pub markers: Vec<PathBuf>,
    /// `false` until every file has been moved in.
    pub complete: bool,
}

impl Claim {
    /// The spool folder of this batch.
    pub fn dir(spool: &Path, source: &str, id: u64) -> PathBuf {
        spool.join(source).join(id.to_string())
    }

    /// What the pipeline reads: the zip, or the folder of files.
    pub fn bundle_path(&self, dir: &Path) -> PathBuf {
        match self.shape {
            Shape::Zip => dir
                .join("upload")
                .join(self.files.first().map_or("upload.zip", String::as_str)),
            Shape::Folder | Shape::Loose => dir.join("upload"),
        }
    }
}

pub(super) fn save_claim(dir: &Path, c: &Claim) -> Result<(), IntakeError> {
    let bytes = serde_json::to_vec_pretty(c).map_err(|e| IntakeError::Meta {
        path: dir.join("batch.json"),
        message: e.to_string(),
    })?;
    Ok(write_atomic(&dir.join("batch.json"), &bytes)?)
}

/// Reads a spool folder's `batch.json`.
pub fn load_claim(dir: &Path) -> Result<Claim, IntakeError> {
    let p = dir.join("batch.json");
    let bytes = fs::read(&p).map_err(io(&p))?;
    serde_json::from_slice(&bytes).map_err(|e| IntakeError::Meta {
        path: p,
        message: e.to_string(),
    })
}

/// Claims a ready bundle as the batch `arrival` names: after this returns, the files are in
/// `spool/<source>/<id>/upload/` and nothing of the bundle is left in the drop folder.
pub fn claim(spool: &Path, ready: &Ready, arrival: &Arrival) -> Result<Claim, IntakeError> {
    let dir = Claim::dir(spool, &arrival.source, arrival.id);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut c = Claim {
        arrival: arrival.clone(),
        shape: ready.shape.clone(),
        from: ready.path.clone(),
        files: match ready.shape {
            Shape::Folder => vec![],
            _ => ready.files.clone(),
        },
        why: ready.why.to_string(),
        markers: ready.markers.clone(),
        complete: false,
    };
    save_claim(&dir, &c)?;
    finish_moves(&dir, &c)?;
    c.complete = true;
    save_claim(&dir, &c)?;
    remove_markers(&c);
    Ok(c)
}

fn remove_markers(c: &Claim) {
    for m in &c.markers {
        let _ = fs::remove_file(m);
    }
}

fn finish_moves(dir: &Path, c: &Claim) -> Result<(), IntakeError> {
    let upload = dir.join("upload");
    match c.shape {
        Shape::Folder => {
            if c.from.exists() {
                // Both exist only after a copy across file systems was cut short: redo it.
                if upload.exists() {
                    fs::remove_dir_all(&upload).map_err(io(&upload))?;
                }
                move_path(&c.from, &upload)?;
            }
        }
        Shape::Zip | Shape::Loose => {
            fs::create_dir_all(&upload).map_err(io(&upload))?;
            let base = match c.shape {
                Shape::Zip => c.from.parent().unwrap_or(&c.from).to_path_buf(),
                _ => c.from.clone(),
            };
            for name in &c.files {
                let from = base.join(name);
                let to = upload.join(name);
                if fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
                    if to.exists() {
                        fs::remove_file(&to).map_err(io(&to))?;
                    }
                    move_path(&from, &to)?;
                }
            }
        }
    }
    if let Ok(d) = fs::File::open(&upload) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Undoes a claim that failed part way (no space, no permission): whatever reached the spool
/// goes back where it came from and the spool folder is removed, so the bundle is not split
/// into two batches. Best effort; returns whether the spool folder is gone.
pub fn unclaim(spool: &Path, ready: &Ready, source: &str, id: u64) -> bool {
    let dir = Claim::dir(spool, source, id);
    let upload = dir.join("upload");
    match ready.shape {
        Shape::Folder => {
            if upload.exists() && !ready.path.exists() {
                let _ = move_path(&upload, &ready.path);
            }
        }
        Shape::Zip | Shape::Loose => {
            let base = match ready.shape {
                Shape::Zip => ready.path.parent().unwrap_or(&ready.path).to_path_buf(),
                _ => ready.path.clone(),
            };
            for name in &ready.files {
                let (from, to) = (upload.join(name), base.join(name));
                if from.is_file() && !to.exists() {
                    let _ = move_path(&from, &to);
                }
            }
        }
    }
    fs::remove_dir_all(&dir).is_ok() || !dir.exists()
}

/// Every claim in the spool, oldest batch first; claims cut short by a crash are finished.
/// Folders that are not claims are reported and left alone.
pub fn resume_claims(spool: &Path) -> Result<Vec<(PathBuf, Claim)>, IntakeError> {
    let mut out = Vec::new();
    let sources = match fs::read_dir(spool) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(spool)(e).into()),
    };
    for s in sources {
        let s = s.map_err(io(spool))?;
        if !s.path().is_dir() {
            continue;
        }
        for b in fs::read_dir(s.path()).map_err(io(&s.path()))? {
            let b = b.map_err(io(&s.path()))?;
            let dir = b.path();
            if !dir.is_dir() {
                continue;
            }
            match load_claim(&dir) {
                Ok(mut c) => {
                    if !c.complete {
                        finish_moves(&dir, &c)?;
                        c.complete = true;
                        save_claim(&dir, &c)?;
                    }
                    remove_markers(&c);
                    out.push((dir, c));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "spool folder without a readable batch.json left alone")
                }
            }
        }
    }
    out.sort_by_key(|(_, c)| c.arrival.id);
    Ok(out)
}
