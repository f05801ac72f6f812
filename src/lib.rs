//! rosterdrop: receive, validate, patch and commit school roster bundles.
//!
//! The crate is split by layer (see `docs/ARCHITECTURE.md`, which opens with this map):
//!
//! - [`roster`]: the pure roster engine. A bundle is read, parsed, validated, patched and
//!   reported on; it touches no network and no store. [`roster::check::check`] runs all of it.
//! - [`store`]: each source's roster and batch history in sled: the on-disk codec, the diff
//!   of a checked bundle against the stored roster, export, and the read views.
//! - [`ingest`]: one bundle from check to commit (used by `rosterdrop ingest` and the daemon).
//! - [`admin`]: the admin commands (history, show, approve, discard, rollback, export), run
//!   against the store directly or through a running daemon's socket.
//! - [`sftp`]: the embedded SFTP drop-box and its accounts; a leaf that knows nothing of rosters.
//! - [`api`]: the OneRoster REST provider, being built (the query grammar and status payloads).
//! - [`daemon`]: `rosterdrop serve`: intake, spool, per-source workers, mail, the admin
//!   socket server, systemd and logging.
//! - [`console`]: the web console for district admins, on the REST API's server.
//! - [`config`]: the one configuration root, [`paths`]: every path of the state directory,
//!   [`fsutil`]: durable file work, [`zipsink`]: the writer under the zips that can fail, and
//!   [`clock`].

pub mod admin;
pub mod api;
pub mod clock;
pub mod config;
pub mod console;
pub mod daemon;
pub mod fsutil;
pub mod ingest;
pub mod paths;
pub mod roster;
pub mod sftp;
pub mod store;
pub mod zipsink;
