//! One SFTP session: our own request loop over russh-sftp's packet types.
//!
//! russh-sftp's `server::run` answers one request at a time and flushes after every reply, and
//! it never calls `close` when the connection dies. This loop instead reads requests from a
//! large buffer, answers them in order, and flushes replies only when no complete request is
//! waiting, so a client's pipelined writes are not held up one round trip each. Open uploads
//! live in [`Upload`], whose `Drop` removes the temporary file: a client that disconnects or
//! dies mid-upload leaves nothing under the real name.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use rand::RngExt;
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File as NameEntry, FileAttributes, Handle, Name, OpenFlags, Packet,
    Status, StatusCode, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::jail::{self, attrs, display, is_partial_name, Fail, Jail, Target, TEMP_PREFIX};
use super::{SftpConfig, UploadEvent};

/// Bytes and files being uploaded, and handles open, right now in all sessions of one account.
#[derive(Default, Debug)]
pub struct InFlight {
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    pub handles: AtomicUsize,
}

/// Handles open right now on the whole server, against the server's cap (`max_open_handles`
/// after it was fitted to the descriptor limit).
#[derive(Debug)]
pub struct HandleBudget {
    cap: usize,
    open: AtomicUsize,
}

impl HandleBudget {
    pub fn new(cap: usize) -> HandleBudget {
        HandleBudget {
            cap,
            open: AtomicUsize::new(0),
        }
    }

    /// Handles open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// One open handle counted against its account and the server; given back on drop.
struct HandleSlot {
    server: Arc<HandleBudget>,
    account: Arc<InFlight>,
}

impl Drop for HandleSlot {
    fn drop(&mut self) {
        self.server.open.fetch_sub(1, Ordering::Relaxed);
        self.account.handles.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything a session needs to know about its account.
pub struct SessionCtx {
    pub account: String,
    pub source: String,
    pub peer: SocketAddr,
    pub jail: Jail,
    pub cfg: Arc<SftpConfig>,
    pub inflight: Arc<InFlight>,
    pub handles: Arc<HandleBudget>,
    pub events: mpsc::Sender<UploadEvent>,
}

/// An upload in progress: a hidden temporary file next to its destination.
struct Upload {
    file: Option<File>,
    temp: PathBuf,
    dest: PathBuf,
    vpath: String,
    size: u64,
    /// Bytes already in the drop folder when the upload started (minus a file it replaces).
    base_used: u64,
    failed: Option<Fail>,
    times: Option<(u32, u32)>,
    inflight: Arc<InFlight>,
    counted: u64,
    done: bool,
}

impl Upload {
    /// Drops the partial data: closes and removes the temporary file.
    fn discard(&mut self) {
        self.file = None;
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
        self.inflight
            .bytes
            .fetch_sub(self.counted, Ordering::Relaxed);
        self.counted = 0;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            if self.file.is_some() || self.temp.exists() {
                tracing::info!(path = ?self.vpath, bytes = self.size, "SFTP upload not completed: partial file removed");
            }
            self.discard();
            self.inflight.files.fetch_sub(1, Ordering::Relaxed);
            self.done = true;
        }
    }
}

enum Open {
    Read { file: File },
    Upload(Box<Upload>),
    Dir { entries: Vec<NameEntry>, pos: usize },
}

pub struct Session {
    ctx: SessionCtx,
    /// Declared before `slots`: an open file is closed before its slot is given back.
    handles: HashMap<String, Open>,
    slots: HashMap<String, HandleSlot>,
    next_handle: u64,
    initialized: bool,
    /// A refused open is logged once per session (a client looping on it must not flood the log).
    open_refusal_logged: bool,
    utf8_refusal_logged: bool,
    /// A quota refusal likewise: a client putting a thousand files over the quota wrote a
    /// thousand warnings (an outside probe).
    quota_refusal_logged: bool,
    /// What this session delivered lately ([`Session::delivered`]).
    recent: std::collections::VecDeque<(String, FileAttributes, std::time::Instant)>,
}

/// Delivered files remembered per session, and for how long.
const RECENT_FILES: usize = 32;
const RECENT_FOR: Duration = Duration::from_secs(30);

const DIR_CHUNK: usize = 100;
const MAX_DIR_ENTRIES: usize = 10_000;

fn status(id: u32, code: StatusCode, msg: &str) -> Packet {
    Packet::Status(Status {
        id,
        status_code: code,
        error_message: msg.to_owned(),
        language_tag: "en-US".to_owned(),
    })
}

fn ok(id: u32) -> Packet {
    status(id, StatusCode::Ok, "Ok")
}

fn fail(id: u32, f: Fail) -> Packet {
    status(id, f.0, &f.1)
}

/// The answer to a request naming a path that is not UTF-8. russh-sftp decodes names lossily
/// (an invalid byte becomes U+FFFD), so the raw packet is checked before it is decoded: the
/// name is refused rather than stored under a name the client never sent.
const NOT_UTF8: &str = "file name is not valid UTF-8";

/// Reads an SSH `string` (raw bytes) from a packet; `None` if it runs past the end.
fn raw_string<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = data.try_get_u32().ok()? as usize;
    let s = data.get(..len)?;
    data.advance(len);
    Some(s)
}

/// For a request that names paths (type byte first): its id when one of the names is complete
/// but not valid UTF-8. Malformed packets are left to the decoder (BAD_MESSAGE).
fn non_utf8_name(pkt: &[u8]) -> Option<u32> {
    const OPEN: u8 = 3;
    const SETSTAT: u8 = 9;
    const RENAME: u8 = 18;
    const SYMLINK: u8 = 20;
    const EXTENDED: u8 = 200;
    let (&kind, mut r) = pkt.split_first()?;
    let names = match kind {
        OPEN | 7 | SETSTAT | 11 | 13..=17 | 19 => 1,
        RENAME | SYMLINK => 2,
        EXTENDED => 0,
        _ => return None,
    };
    let id = r.try_get_u32().ok()?;
    let names = if kind == EXTENDED {
        match raw_string(&mut r)? {
            b"posix-rename@openssh.com" | b"hardlink@openssh.com" => 2,
            _ => 0,
        }
    } else {
        names
    };
    for _ in 0..names {
        let name = raw_string(&mut r)?;
        if std::str::from_utf8(name).is_err() {
            return Some(id);
        }
    }
    None
}

/// Reads an SSH `string` from extended-request data.
fn ext_string(data: &mut &[u8]) -> Option<String> {
    if data.remaining() < 4 {
        return None;
    }
    let len = data.get_u32() as usize;
    if data.remaining() < len {
        return None;
    }
    let s = String::from_utf8(data[..len].to_vec()).ok();
    data.advance(len);
    s
}

impl Session {
    pub fn new(ctx: SessionCtx) -> Session {
        Session {
            ctx,
            handles: HashMap::new(),
            slots: HashMap::new(),
            next_handle: 0,
            initialized: false,
            open_refusal_logged: false,
            utf8_refusal_logged: false,
            quota_refusal_logged: false,
            recent: std::collections::VecDeque::new(),
        }
    }

    /// Remembers a file this session delivered (`vpath` as [`display`] shows it), as it was
    /// when delivered.
    fn remember(&mut self, vpath: &str, md: &fs::Metadata) {
        let now = std::time::Instant::now();
        self.recent
            .retain(|(p, _, at)| p != vpath && now.duration_since(*at) < RECENT_FOR);
        if self.recent.len() >= RECENT_FILES {
            self.recent.pop_front();
        }
        self.recent
            .push_back((vpath.to_owned(), attrs(md, false), now));
    }

    /// A file this session delivered within [`RECENT_FOR`] that is no longer there: the
    /// intake takes a whole zip within milliseconds, before the client's next request, and
    /// clients stat what they just wrote (paramiko's and pysftp's `put()` to confirm its size)
    /// or set its times (WinSCP). They are answered as it was when delivered, instead of "no
    /// such file" for an upload that succeeded (found by an outside probe).
    fn delivered(&self, t: &Target) -> Option<FileAttributes> {
        let Target::Drop(c) = t else { return None };
        let v = display(c);
        self.recent
            .iter()
            .rev()
            .find(|(p, _, at)| *p == v && at.elapsed() < RECENT_FOR)
            .map(|(_, a, _)| a.clone())
    }

    /// Takes a handle slot before anything is opened: at most `max_handles` in this session,
    /// `max_handles_per_account` over the account's sessions, `max_open_handles` on the server.
    /// Every handle may hold a file descriptor, so these caps bound the descriptors SFTP clients
    /// can take.
    fn reserve_handle(&mut self) -> Result<HandleSlot, Fail> {
        let cfg = &self.ctx.cfg;
        let refusal = if self.handles.len() >= cfg.max_handles {
            Some(("too many open files in this session", cfg.max_handles))
        } else if self.ctx.inflight.handles.fetch_add(1, Ordering::Relaxed)
            >= cfg.max_handles_per_account
        {
            self.ctx.inflight.handles.fetch_sub(1, Ordering::Relaxed);
            Some((
                "too many open files for this account",
                cfg.max_handles_per_account,
            ))
        } else if self.ctx.handles.open.fetch_add(1, Ordering::Relaxed) >= self.ctx.handles.cap {
            self.ctx.handles.open.fetch_sub(1, Ordering::Relaxed);
            self.ctx.inflight.handles.fetch_sub(1, Ordering::Relaxed);
            Some(("too many open files on the server", self.ctx.handles.cap))
        } else {
            None
        };
        if let Some((msg, limit)) = refusal {
            if !self.open_refusal_logged {
                self.open_refusal_logged = true;
                tracing::warn!(account = %self.ctx.account, addr = %self.ctx.peer, limit, "SFTP open refused: {msg} (logged once per session)");
            }
            return Err(Fail::failure(msg));
        }
        Ok(HandleSlot {
            server: self.ctx.handles.clone(),
            account: self.ctx.inflight.clone(),
        })
    }

    fn new_handle(&mut self, open: Open, slot: HandleSlot) -> String {
        self.next_handle += 1;
        let h = format!("h{}", self.next_handle);
        self.handles.insert(h.clone(), open);
        self.slots.insert(h.clone(), slot);
        h
    }

    /// Answers one decoded request. `None` closes the session (protocol violation).
    pub async fn request(&mut self, packet: Packet) -> Option<Packet> {
        if !self.initialized {
            return match packet {
                Packet::Init(_) => {
                    self.initialized = true;
                    let mut extensions = HashMap::new();
                    extensions.insert("posix-rename@openssh.com".to_owned(), "1".to_owned());
                    extensions.insert("limits@openssh.com".to_owned(), "1".to_owned());
                    extensions.insert("fsync@openssh.com".to_owned(), "1".to_owned());
                    Some(Packet::Version(Version {
                        version: 3,
                        extensions,
                    }))
                }
                _ => None,
            };
        }
        let id = packet.get_request_id();
        let reply = match packet {
            Packet::Init(_) => return None,
            Packet::Open(p) => self
                .open(&p.filename, p.pflags)
                .map(|handle| Packet::Handle(Handle { id, handle })),
            Packet::Close(p) => self.close(&p.handle).await.map(|_| ok(id)),
            Packet::Read(p) => self.read(id, &p.handle, p.offset, p.len),
            Packet::Write(p) => self.write(&p.handle, p.offset, &p.data).map(|_| ok(id)),
            Packet::Lstat(p) => self
                .stat_path(&p.path)
                .map(|attrs| Packet::Attrs(Attrs { id, attrs })),
            Packet::Stat(p) => self
                .stat_path(&p.path)
                .map(|attrs| Packet::Attrs(Attrs { id, attrs })),
            Packet::Fstat(p) => self
                .fstat(&p.handle)
                .map(|attrs| Packet::Attrs(Attrs { id, attrs })),
            Packet::SetStat(p) => self.setstat(&p.path, &p.attrs).map(|_| ok(id)),
            Packet::FSetStat(p) => self.fsetstat(&p.handle, &p.attrs).map(|_| ok(id)),
            Packet::OpenDir(p) => self
                .opendir(&p.path)
                .map(|handle| Packet::Handle(Handle { id, handle })),
            Packet::ReadDir(p) => self.readdir(id, &p.handle),
            Packet::Remove(p) => self.remove(&p.filename).map(|_| ok(id)),
            Packet::MkDir(p) => self.mkdir(&p.path).map(|_| ok(id)),
            Packet::RmDir(p) => self.rmdir(&p.path).map(|_| ok(id)),
            Packet::RealPath(p) => jail::normalize(&p.path).map(|c| {
                Packet::Name(Name {
                    id,
                    files: vec![NameEntry::dummy(display(&c))],
                })
            }),
            Packet::Rename(p) => self
                .rename(&p.oldpath, &p.newpath, false)
                .await
                .map(|_| ok(id)),
            Packet::ReadLink(_) => Err(Fail::new(
                StatusCode::OpUnsupported,
                "symbolic links are not supported",
            )),
            Packet::Symlink(_) => Err(Fail::denied("creating links is not allowed")),
            Packet::Extended(p) => self.extended(id, &p.request, &p.data).await,
            // Replies sent by a client are nonsense.
            _ => Err(Fail::new(StatusCode::BadMessage, "unexpected packet type")),
        };
        Some(reply.unwrap_or_else(|f| fail(id, f)))
    }

    async fn extended(&mut self, id: u32, request: &str, data: &[u8]) -> Result<Packet, Fail> {
        let mut d = data;
        match request {
            "posix-rename@openssh.com" => {
                let (Some(old), Some(new)) = (ext_string(&mut d), ext_string(&mut d)) else {
                    return Err(Fail::new(StatusCode::BadMessage, "malformed request"));
                };
                self.rename(&old, &new, true).await.map(|_| ok(id))
            }
            "limits@openssh.com" => {
                let cfg = &self.ctx.cfg;
                let mut out = Vec::with_capacity(32);
                for v in [
                    cfg.max_sftp_packet as u64,
                    cfg.max_read_len as u64,
                    cfg.max_sftp_packet.saturating_sub(1024) as u64,
                    cfg.max_handles as u64,
                ] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                Ok(Packet::ExtendedReply(ExtendedReply { id, data: out }))
            }
            "fsync@openssh.com" => {
                let Some(h) = ext_string(&mut d) else {
                    return Err(Fail::new(StatusCode::BadMessage, "malformed request"));
                };
                match self.handles.get(&h) {
                    Some(Open::Upload(u)) => match &u.file {
                        Some(f) => f.sync_data().map(|_| ok(id)).map_err(|e| Fail::io(&e)),
                        None => Err(u
                            .failed
                            .clone()
                            .unwrap_or_else(|| Fail::failure("upload failed"))),
                    },
                    Some(_) => Ok(ok(id)),
                    None => Err(Fail::failure("invalid handle")),
                }
            }
            "hardlink@openssh.com" | "symlink@openssh.com" => {
                Err(Fail::denied("creating links is not allowed"))
            }
            _ => Err(Fail::new(
                StatusCode::OpUnsupported,
                "operation not supported",
            )),
        }
    }

    fn stat_path(&self, path: &str) -> Result<FileAttributes, Fail> {
        let t = self.ctx.jail.classify(path)?;
        match self.ctx.jail.stat(&t) {
            Err(f) if f.0 == StatusCode::NoSuchFile => self.delivered(&t).ok_or(f),
            r => r,
        }
    }

    fn open(&mut self, path: &str, flags: OpenFlags) -> Result<String, Fail> {
        let target = self.ctx.jail.classify(path)?;
        let slot = self.reserve_handle()?;
        let writing = flags.intersects(
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE,
        );
        match target {
            Target::Root | Target::ReportsRoot => Err(Fail::failure("is a directory")),
            Target::Report(c) => {
                if writing {
                    return Err(Fail::denied("reports/ is read-only"));
                }
                let p = self.ctx.jail.report_path(&c)?;
                let file = open_read(&p)?;
                Ok(self.new_handle(Open::Read { file }, slot))
            }
            Target::Drop(c) if !writing => {
                let p = self.ctx.jail.drop_path(&c)?;
                let file = open_read(&p)?;
                Ok(self.new_handle(Open::Read { file }, slot))
            }
            Target::Drop(c) => {
                let upload = self.start_upload(&c, flags)?;
                Ok(self.new_handle(Open::Upload(Box::new(upload)), slot))
            }
        }
    }

    fn start_upload(&mut self, comps: &[String], flags: OpenFlags) -> Result<Upload, Fail> {
        let cfg = self.ctx.cfg.clone();
        let dest = self.ctx.jail.drop_path(comps)?;
        let vpath = display(comps);
        let existing = match fs::symlink_metadata(&dest) {
            Ok(md) if md.file_type().is_symlink() => return Err(Fail::denied("permission denied")),
            Ok(md) if md.is_dir() => return Err(Fail::failure("is a directory")),
            Ok(md) if !md.is_file() || md.nlink() > 1 => {
                return Err(Fail::denied("permission denied"))
            }
            Ok(md) => Some(md),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Fail::io(&e)),
        };
        if existing.is_some() && flags.contains(OpenFlags::EXCLUDE) {
            return Err(Fail::failure("file already exists"));
        }
        if existing.is_none() && !flags.contains(OpenFlags::CREATE) {
            return Err(Fail::no_such());
        }
        let (used, entries) = jail::usage(&self.ctx.jail.root, &cfg);
        let replaced = existing.as_ref().map_or(0, |m| m.len());
        let base_used = used.saturating_sub(replaced);
        let inflight_files = self.ctx.inflight.files.load(Ordering::Relaxed);
        if existing.is_none() && entries.saturating_add(inflight_files) >= cfg.quota_files {
            if !std::mem::replace(&mut self.quota_refusal_logged, true) {
                tracing::warn!(account = %self.ctx.account, addr = %self.ctx.peer, path = ?vpath, limit = cfg.quota_files, "SFTP upload refused: file quota exceeded (logged once per session)");
            }
            return Err(Fail::failure(format!(
                "quota exceeded: at most {} files",
                cfg.quota_files
            )));
        }
        if base_used.saturating_add(self.ctx.inflight.bytes.load(Ordering::Relaxed))
            >= cfg.quota_bytes
        {
            if !std::mem::replace(&mut self.quota_refusal_logged, true) {
                tracing::warn!(account = %self.ctx.account, addr = %self.ctx.peer, path = ?vpath, limit = cfg.quota_bytes, "SFTP upload refused: byte quota exceeded (logged once per session)");
            }
            return Err(Fail::failure(format!(
                "quota exceeded: at most {} bytes",
                cfg.quota_bytes
            )));
        }
        let parent = dest.parent().ok_or_else(Fail::no_such)?;
        let name = comps.last().map(String::as_str).unwrap_or("upload");
        let tag: u64 = rand::rng().random();
        let temp = parent.join(format!(
            "{TEMP_PREFIX}{tag:016x}.{}",
            truncate_name(name, 200)
        ));
        let file = fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(crate::fsutil::nofollow_flag())
            .open(&temp)
            .map_err(|e| Fail::io(&e))?;
        self.ctx.inflight.files.fetch_add(1, Ordering::Relaxed);
        let mut up = Upload {
            file: Some(file),
            temp,
            dest,
            vpath,
            size: 0,
            base_used,
            failed: None,
            times: None,
            inflight: self.ctx.inflight.clone(),
            counted: 0,
            done: false,
        };
        // A write without TRUNCATE to an existing file continues it (resume, partial rewrite):
        // start from a copy so offsets mean what the client thinks.
        if let Some(md) = existing {
            if !flags.contains(OpenFlags::TRUNCATE) && md.len() > 0 {
                if md.len() > cfg.max_file_size {
                    return Err(Fail::failure("file too large"));
                }
                let copied = fs::copy(&up.dest, &up.temp).map_err(|e| Fail::io(&e))?;
                up.size = copied;
                up.counted = copied;
                self.ctx.inflight.bytes.fetch_add(copied, Ordering::Relaxed);
            }
        }
        tracing::debug!(account = %self.ctx.account, path = ?up.vpath, "SFTP upload started");
        Ok(up)
    }

    fn write(&mut self, handle: &str, offset: u64, data: &[u8]) -> Result<(), Fail> {
        let cfg = self.ctx.cfg.clone();
        let account = &self.ctx.account;
        let peer = self.ctx.peer;
        let up = match self.handles.get_mut(handle) {
            Some(Open::Upload(u)) => u,
            Some(_) => return Err(Fail::denied("handle not open for writing")),
            None => return Err(Fail::failure("invalid handle")),
        };
        if let Some(f) = &up.failed {
            return Err(f.clone());
        }
        let end = offset.saturating_add(data.len() as u64);
        let grow = end.saturating_sub(up.size);
        let refuse = if end > cfg.max_file_size {
            Some(format!(
                "file too large: at most {} bytes",
                cfg.max_file_size
            ))
        } else if grow > 0
            && up
                .base_used
                .saturating_add(up.inflight.bytes.load(Ordering::Relaxed))
                .saturating_add(grow)
                > cfg.quota_bytes
        {
            Some(format!("quota exceeded: at most {} bytes", cfg.quota_bytes))
        } else {
            None
        };
        if let Some(msg) = refuse {
            tracing::warn!(account = %account, addr = %peer, path = ?up.vpath, "SFTP upload refused: {msg}; partial file removed");
            let f = Fail::failure(msg);
            up.failed = Some(f.clone());
            up.discard();
            return Err(f);
        }
        let Some(file) = &up.file else {
            return Err(Fail::failure("upload failed"));
        };
        if let Err(e) = file.write_all_at(data, offset) {
            let f = Fail::io(&e);
            tracing::warn!(account = %account, path = ?up.vpath, error = %e, "SFTP write failed; partial file removed");
            up.failed = Some(f.clone());
            up.discard();
            return Err(f);
        }
        if grow > 0 {
            up.size = end;
            up.counted += grow;
            up.inflight.bytes.fetch_add(grow, Ordering::Relaxed);
        }
        Ok(())
    }

    fn read(&mut self, id: u32, handle: &str, offset: u64, len: u32) -> Result<Packet, Fail> {
        let max = self.ctx.cfg.max_read_len;
        let file = match self.handles.get(handle) {
            Some(Open::Read { file }) => file,
            Some(Open::Upload(u)) => match &u.file {
                Some(f) => f,
                None => {
                    return Err(u
                        .failed
                        .clone()
                        .unwrap_or_else(|| Fail::failure("upload failed")))
                }
            },
            Some(Open::Dir { .. }) => return Err(Fail::failure("is a directory")),
            None => return Err(Fail::failure("invalid handle")),
        };
        let mut buf = vec![0u8; len.min(max) as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset.saturating_add(got as u64)) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fail::io(&e)),
            }
        }
        if got == 0 && len > 0 {
            return Err(Fail::new(StatusCode::Eof, "end of file"));
        }
        buf.truncate(got);
        Ok(Packet::Data(Data { id, data: buf }))
    }

    async fn close(&mut self, handle: &str) -> Result<(), Fail> {
        // Declared first, dropped last: the slot is given back after the file is closed.
        let _slot = self.slots.remove(handle);
        let open = self
            .handles
            .remove(handle)
            .ok_or_else(|| Fail::failure("invalid handle"))?;
        let Open::Upload(mut up) = open else {
            return Ok(());
        };
        if let Some(f) = up.failed.clone() {
            return Err(f);
        }
        let cfg = self.ctx.cfg.clone();
        // Exact quota check now that the file is complete (other sessions may have finished
        // uploads since this one started).
        let (used, _) = jail::usage(&self.ctx.jail.root, &cfg);
        let replaced = fs::symlink_metadata(&up.dest)
            .map(|m| if m.is_file() { m.len() } else { 0 })
            .unwrap_or(0);
        if used.saturating_sub(replaced).saturating_add(up.size) > cfg.quota_bytes {
            tracing::warn!(account = %self.ctx.account, addr = %self.ctx.peer, path = ?up.vpath, "SFTP upload refused at close: byte quota exceeded; partial file removed");
            return Err(Fail::failure(format!(
                "quota exceeded: at most {} bytes",
                cfg.quota_bytes
            )));
        }
        let Some(file) = up.file.take() else {
            return Err(Fail::failure("upload failed"));
        };
        if cfg.fsync_uploads {
            file.sync_all().map_err(|e| Fail::io(&e))?;
        }
        if let Some((atime, mtime)) = up.times {
            let t = fs::FileTimes::new()
                .set_accessed(UNIX_EPOCH + Duration::from_secs(atime as u64))
                .set_modified(UNIX_EPOCH + Duration::from_secs(mtime as u64));
            let _ = file.set_times(t);
        }
        drop(file);
        if let Ok(md) = fs::symlink_metadata(&up.dest) {
            if md.is_dir() || md.file_type().is_symlink() {
                return Err(Fail::failure("cannot replace this name"));
            }
        }
        fs::rename(&up.temp, &up.dest).map_err(|e| Fail::io(&e))?;
        up.done = true;
        up.inflight.bytes.fetch_sub(up.counted, Ordering::Relaxed);
        up.counted = 0;
        up.inflight.files.fetch_sub(1, Ordering::Relaxed);
        if cfg.fsync_uploads {
            if let Some(parent) = up.dest.parent() {
                if let Ok(d) = File::open(parent) {
                    let _ = d.sync_all();
                }
            }
        }
        let name = up.vpath.rsplit('/').next().unwrap_or("");
        tracing::info!(account = %self.ctx.account, source = %self.ctx.source, addr = %self.ctx.peer, path = ?up.vpath, bytes = up.size, "SFTP upload complete");
        if !is_partial_name(name) {
            if let Ok(md) = fs::metadata(&up.dest) {
                self.remember(&up.vpath, &md);
            }
            self.announce(&up.vpath, up.dest.clone(), up.size).await;
        }
        Ok(())
    }

    async fn announce(&self, vpath: &str, file: PathBuf, size: u64) {
        let ev = UploadEvent {
            account: self.ctx.account.clone(),
            source: self.ctx.source.clone(),
            path: vpath.to_owned(),
            file,
            size,
            peer: self.ctx.peer,
        };
        if self.ctx.events.send(ev).await.is_err() {
            tracing::debug!("no listener for SFTP upload events");
        }
    }

    fn fstat(&self, handle: &str) -> Result<FileAttributes, Fail> {
        match self.handles.get(handle) {
            Some(Open::Read { file }) => file
                .metadata()
                .map(|m| attrs(&m, false))
                .map_err(|e| Fail::io(&e)),
            Some(Open::Upload(u)) => match &u.file {
                Some(f) => f
                    .metadata()
                    .map(|m| attrs(&m, false))
                    .map_err(|e| Fail::io(&e)),
                None => Err(u
                    .failed
                    .clone()
                    .unwrap_or_else(|| Fail::failure("upload failed"))),
            },
            Some(Open::Dir { .. }) => self.ctx.jail.stat(&Target::Root),
            None => Err(Fail::failure("invalid handle")),
        }
    }

    fn setstat(&self, path: &str, a: &FileAttributes) -> Result<(), Fail> {
        let target = self.ctx.jail.classify(path)?;
        match &target {
            Target::Root => Ok(()),
            Target::ReportsRoot | Target::Report(_) => Err(Fail::denied("reports/ is read-only")),
            Target::Drop(c) => {
                let p = self.ctx.jail.drop_path(c)?;
                let md = match Jail::lstat(&p) {
                    // Taken already: its times are the upload's business no more.
                    Err(f)
                        if f.0 == StatusCode::NoSuchFile && self.delivered(&target).is_some() =>
                    {
                        return Ok(())
                    }
                    r => r?,
                };
                if let (Some(at), Some(mt), true) = (a.atime, a.mtime, md.is_file()) {
                    let f = fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(crate::fsutil::nofollow_flag())
                        .open(&p)
                        .map_err(|e| Fail::io(&e))?;
                    let t = fs::FileTimes::new()
                        .set_accessed(UNIX_EPOCH + Duration::from_secs(at as u64))
                        .set_modified(UNIX_EPOCH + Duration::from_secs(mt as u64));
                    let _ = f.set_times(t);
                }
                // Modes, owners and sizes are not the client's business: accepted, ignored.
                Ok(())
            }
        }
    }

    fn fsetstat(&mut self, handle: &str, a: &FileAttributes) -> Result<(), Fail> {
        match self.handles.get_mut(handle) {
            Some(Open::Upload(u)) => {
                if let (Some(at), Some(mt)) = (a.atime, a.mtime) {
                    u.times = Some((at, mt));
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(Fail::failure("invalid handle")),
        }
    }

    fn opendir(&mut self, path: &str) -> Result<String, Fail> {
        let target = self.ctx.jail.classify(path)?;
        let (dir, read_only) = match &target {
            Target::Root => (self.ctx.jail.root.clone(), false),
            Target::ReportsRoot => (self.ctx.jail.reports.clone(), true),
            Target::Report(c) => (self.ctx.jail.report_path(c)?, true),
            Target::Drop(c) => (self.ctx.jail.drop_path(c)?, false),
        };
        let slot = self.reserve_handle()?;
        let mut entries = Vec::new();
        if target == Target::Root {
            entries.push(NameEntry::new(
                super::jail::REPORTS,
                self.ctx.jail.stat(&Target::ReportsRoot)?,
            ));
        }
        match Jail::lstat(&dir) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(Fail::failure("not a directory")),
            Err(_) if target == Target::ReportsRoot => {
                return Ok(self.new_handle(Open::Dir { entries, pos: 0 }, slot));
            }
            Err(f) => return Err(f),
        }
        let rd = fs::read_dir(&dir).map_err(|e| Fail::io(&e))?;
        for e in rd.flatten() {
            if entries.len() >= MAX_DIR_ENTRIES {
                break;
            }
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX)
                || (target == Target::Root && name == super::jail::REPORTS)
            {
                continue;
            }
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.file_type().is_symlink() || !(md.is_file() || md.is_dir()) {
                continue;
            }
            entries.push(NameEntry::new(name, attrs(&md, read_only)));
        }
        Ok(self.new_handle(Open::Dir { entries, pos: 0 }, slot))
    }

    fn readdir(&mut self, id: u32, handle: &str) -> Result<Packet, Fail> {
        match self.handles.get_mut(handle) {
            Some(Open::Dir { entries, pos }) => {
                if *pos >= entries.len() {
                    return Err(Fail::new(StatusCode::Eof, "end of directory"));
                }
                let end = (*pos + DIR_CHUNK).min(entries.len());
                let files = entries[*pos..end].to_vec();
                *pos = end;
                Ok(Packet::Name(Name { id, files }))
            }
            Some(_) => Err(Fail::failure("not a directory handle")),
            None => Err(Fail::failure("invalid handle")),
        }
    }

    fn drop_target(&self, path: &str) -> Result<Vec<String>, Fail> {
        match self.ctx.jail.classify(path)? {
            Target::Drop(c) => Ok(c),
            Target::Root => Err(Fail::denied("permission denied")),
            _ => Err(Fail::denied("reports/ is read-only")),
        }
    }

    fn remove(&mut self, path: &str) -> Result<(), Fail> {
        let c = self.drop_target(path)?;
        let p = self.ctx.jail.drop_path(&c)?;
        let md = Jail::lstat(&p)?;
        if md.is_dir() {
            return Err(Fail::failure("is a directory"));
        }
        fs::remove_file(&p).map_err(|e| Fail::io(&e))?;
        let vpath = display(&c);
        tracing::info!(account = %self.ctx.account, addr = %self.ctx.peer, path = ?vpath, "SFTP remove");
        Ok(())
    }

    fn mkdir(&mut self, path: &str) -> Result<(), Fail> {
        let c = self.drop_target(path)?;
        let p = self.ctx.jail.drop_path(&c)?;
        let (_, entries) = jail::usage(&self.ctx.jail.root, &self.ctx.cfg);
        if entries.saturating_add(self.ctx.inflight.files.load(Ordering::Relaxed))
            >= self.ctx.cfg.quota_files
        {
            return Err(Fail::failure(format!(
                "quota exceeded: at most {} files",
                self.ctx.cfg.quota_files
            )));
        }
        fs::create_dir(&p).map_err(|e| Fail::io(&e))
    }

    fn rmdir(&mut self, path: &str) -> Result<(), Fail> {
        let c = self.drop_target(path)?;
        let p = self.ctx.jail.drop_path(&c)?;
        let md = Jail::lstat(&p)?;
        if !md.is_dir() {
            return Err(Fail::failure("not a directory"));
        }
        fs::remove_dir(&p).map_err(|e| Fail::io(&e))
    }

    async fn rename(&mut self, old: &str, new: &str, overwrite: bool) -> Result<(), Fail> {
        let oc = self.drop_target(old)?;
        let nc = self.drop_target(new)?;
        let op = self.ctx.jail.drop_path(&oc)?;
        let np = self.ctx.jail.drop_path(&nc)?;
        let md = Jail::lstat(&op)?;
        if md.is_file() && md.nlink() > 1 {
            return Err(Fail::denied("permission denied"));
        }
        if nc.starts_with(&oc) && nc.len() > oc.len() {
            return Err(Fail::failure("cannot move a folder into itself"));
        }
        // The limits hold for every path a request creates: a folder moved to `nc` must not
        // take its deepest descendant past the depth limit, nor any path below it past the
        // longest path the system can name (the quota walk could not see it).
        if md.is_dir() {
            let levels = jail::MAX_DEPTH.saturating_sub(nc.len());
            let bytes = jail::MAX_REAL_PATH.saturating_sub(np.as_os_str().len());
            let refusal =
                match jail::subtree_fits(&op, levels, bytes, jail::walk_limit(&self.ctx.cfg)) {
                    jail::Fits::Yes => None,
                    jail::Fits::TooDeep => Some(format!(
                        "folders nested too deep: at most {} levels",
                        jail::MAX_DEPTH
                    )),
                    jail::Fits::TooLong => Some("path too long".to_owned()),
                    jail::Fits::TooBig => Some("folder too large to move".to_owned()),
                };
            if let Some(msg) = refusal {
                tracing::info!(account = %self.ctx.account, addr = %self.ctx.peer, "SFTP rename refused: {msg}");
                return Err(Fail::failure(msg));
            }
        }
        match fs::symlink_metadata(&np) {
            Ok(_) if op == np => return Ok(()),
            Ok(m) if m.is_dir() || m.file_type().is_symlink() => {
                return Err(Fail::failure("file already exists"))
            }
            Ok(_) if !overwrite => return Err(Fail::failure("file already exists")),
            Ok(_) if md.is_dir() => return Err(Fail::failure("file already exists")),
            _ => {}
        }
        fs::rename(&op, &np).map_err(|e| Fail::io(&e))?;
        let (ov, nv) = (display(&oc), display(&nc));
        tracing::info!(account = %self.ctx.account, addr = %self.ctx.peer, from = ?ov, to = ?nv, "SFTP rename");
        let name = nc.last().map(String::as_str).unwrap_or("");
        if md.is_file() && !is_partial_name(name) {
            self.remember(&nv, &md);
            self.announce(&nv, np, md.len()).await;
        }
        Ok(())
    }
}

fn truncate_name(name: &str, max: usize) -> &str {
    if name.len() <= max {
        return name;
    }
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn open_read(p: &std::path::Path) -> Result<File, Fail> {
    let md = Jail::lstat(p)?;
    if md.is_dir() {
        return Err(Fail::failure("is a directory"));
    }
    if md.nlink() > 1 {
        return Err(Fail::denied("permission denied"));
    }
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(crate::fsutil::nofollow_flag())
        .open(p)
        .map_err(|e| Fail::io(&e))
}

/// Id of an undecodable request, to answer it with a status.
fn raw_request_id(b: &[u8]) -> u32 {
    if b.len() >= 5 {
        u32::from_be_bytes([b[1], b[2], b[3], b[4]])
    } else {
        0
    }
}

/// A WRITE request parsed in place: `(id, handle, offset, data)`, borrowing the packet.
fn parse_write(p: &[u8]) -> Option<(u32, &str, u64, &[u8])> {
    let mut r = p.get(1..)?;
    let id = r.try_get_u32().ok()?;
    let hlen = r.try_get_u32().ok()? as usize;
    let handle = std::str::from_utf8(r.get(..hlen)?).ok()?;
    r = &r[hlen..];
    let offset = r.try_get_u64().ok()?;
    let dlen = r.try_get_u32().ok()? as usize;
    let data = r.get(..dlen)?;
    Some((id, handle, offset, data))
}

impl Session {
    /// Answers one raw request (type byte first). WRITEs, the bulk of the traffic, are parsed
    /// in place and their data goes to the file straight from the receive buffer.
    async fn raw(&mut self, pkt: &[u8]) -> Option<Packet> {
        const SSH_FXP_WRITE: u8 = 6;
        if self.initialized && pkt.first() == Some(&SSH_FXP_WRITE) {
            let reply = match parse_write(pkt) {
                Some((id, handle, offset, data)) => match self.write(handle, offset, data) {
                    Ok(()) => ok(id),
                    Err(f) => fail(id, f),
                },
                None => status(
                    raw_request_id(pkt),
                    StatusCode::BadMessage,
                    "malformed request",
                ),
            };
            return Some(reply);
        }
        if self.initialized {
            if let Some(id) = non_utf8_name(pkt) {
                if !self.utf8_refusal_logged {
                    self.utf8_refusal_logged = true;
                    tracing::info!(account = %self.ctx.account, addr = %self.ctx.peer, "SFTP request refused: file name is not valid UTF-8 (logged once per session)");
                }
                return Some(status(id, StatusCode::Failure, NOT_UTF8));
            }
        }
        let mut bytes = Bytes::copy_from_slice(pkt);
        match Packet::try_from(&mut bytes) {
            Ok(p) => self.request(p).await,
            Err(_) if !self.initialized => None,
            Err(_) => Some(status(
                raw_request_id(pkt),
                StatusCode::BadMessage,
                "malformed request",
            )),
        }
    }
}

/// Writes and flushes `out` within `limit`; false when the client is gone or stuck.
async fn send<W: AsyncWrite + Unpin>(w: &mut W, out: &[u8], limit: Duration) -> bool {
    let io = async {
        w.write_all(out).await?;
        w.flush().await
    };
    matches!(tokio::time::timeout(limit, io).await, Ok(Ok(())))
}

/// Runs the SFTP protocol on a channel stream until the client goes away.
///
/// Requests are taken from one receive buffer in order; replies are collected and flushed only
/// when no complete request is waiting (or 256 KiB of replies are pending), so pipelined
/// writes are not held up by a flush each.
pub async fn run<S>(stream: S, mut session: Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = session.ctx.cfg.max_sftp_packet as usize;
    // A client that stops reading our replies (or sending) must not hold the session forever.
    let io_timeout = Duration::from_secs(session.ctx.cfg.idle_timeout_secs);
    let account = session.ctx.account.clone();
    let peer = session.ctx.peer;
    let (mut r, mut w) = tokio::io::split(stream);
    let cap = (1usize << 20).max(2 * (max + 4));
    let mut buf = vec![0u8; cap];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let avail = end - start;
        let need = (avail >= 4).then(|| {
            4 + u32::from_be_bytes([buf[start], buf[start + 1], buf[start + 2], buf[start + 3]])
                as usize
        });
        if let Some(n) = need {
            if n == 4 || n - 4 > max {
                tracing::warn!(account = %account, addr = %peer, len = n - 4, max, "SFTP packet over the size limit: closing session");
                break;
            }
        }
        match need {
            Some(n) if avail >= n => {
                let reply = session.raw(&buf[start + 4..start + n]).await;
                start += n;
                if start == end {
                    start = 0;
                    end = 0;
                }
                let Some(reply) = reply else {
                    tracing::warn!(account = %account, addr = %peer, "SFTP protocol violation: closing session");
                    break;
                };
                match Bytes::try_from(reply) {
                    Ok(b) => out.extend_from_slice(&b),
                    Err(e) => {
                        tracing::warn!(error = %e, "encoding SFTP reply failed");
                        break;
                    }
                }
                if out.len() >= 256 * 1024 {
                    if !send(&mut w, &out, io_timeout).await {
                        break;
                    }
                    out.clear();
                }
            }
            _ => {
                // Nothing complete to answer: send what we have, then wait for more input.
                if !out.is_empty() {
                    if !send(&mut w, &out, io_timeout).await {
                        break;
                    }
                    out.clear();
                }
                if start + need.unwrap_or(4) > cap || end == cap {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                match tokio::time::timeout(io_timeout, r.read(&mut buf[end..])).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => end += n,
                    Err(_) => {
                        tracing::info!(account = %account, addr = %peer, "SFTP session idle: closing");
                        break;
                    }
                }
            }
        }
    }
    if !out.is_empty() {
        let _ = w.write_all(&out).await;
        let _ = w.flush().await;
    }
    let _ = w.shutdown().await;
    let open_uploads = session
        .handles
        .values()
        .filter(|h| matches!(h, Open::Upload(_)))
        .count();
    if open_uploads > 0 {
        tracing::info!(account = %account, addr = %peer, open_uploads, "SFTP session ended with unfinished uploads");
    }
    // Dropping the session drops every open upload: temporary files are removed.
    drop(session);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pkt(handle: &str, offset: u64, data: &[u8], dlen: u32) -> Vec<u8> {
        let mut p = vec![6, 0, 0, 0, 42];
        p.extend_from_slice(&(handle.len() as u32).to_be_bytes());
        p.extend_from_slice(handle.as_bytes());
        p.extend_from_slice(&offset.to_be_bytes());
        p.extend_from_slice(&dlen.to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn parse_write_in_place() {
        let p = write_pkt("h1", 7, b"abc", 3);
        assert_eq!(parse_write(&p), Some((42, "h1", 7, &b"abc"[..])));
        // Declared lengths past the packet, truncation anywhere: refused, no panic.
        assert_eq!(parse_write(&write_pkt("h1", 7, b"abc", u32::MAX)), None);
        for cut in 0..p.len() - 1 {
            assert_eq!(parse_write(&p[..cut]), None, "cut {cut}");
        }
        let mut bad = p.clone();
        bad[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_write(&bad), None);
        assert_eq!(raw_request_id(&p), 42);
        assert_eq!(raw_request_id(&[6, 0]), 0);
    }

    #[test]
    fn names_are_checked_in_the_raw_request() {
        let req = |kind: u8, names: &[&[u8]]| {
            let mut p = vec![kind, 0, 0, 0, 9];
            for n in names {
                p.extend_from_slice(&(n.len() as u32).to_be_bytes());
                p.extend_from_slice(n);
            }
            p
        };
        assert_eq!(non_utf8_name(&req(3, &[b"a\xff"])), Some(9));
        assert_eq!(non_utf8_name(&req(3, &["caf\u{e9}".as_bytes()])), None);
        assert_eq!(non_utf8_name(&req(18, &[b"ok", b"\xc3"])), Some(9));
        assert_eq!(
            non_utf8_name(&req(200, &[b"posix-rename@openssh.com", b"ok", b"\xe9"])),
            Some(9)
        );
        assert_eq!(
            non_utf8_name(&req(200, &[b"statvfs@openssh.com", b"\xe9"])),
            None
        );
        // Handles are not names; truncated packets are left to the decoder.
        assert_eq!(non_utf8_name(&req(4, &[b"\xff"])), None);
        let p = req(3, &[b"a\xff"]);
        for cut in 0..p.len() {
            assert_eq!(non_utf8_name(&p[..cut]), None, "cut {cut}");
        }
    }
}
