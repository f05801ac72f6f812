//! rosterdrop: receive, validate, patch and commit school roster bundles.
//!
//! The roster engine is a pipeline of plain functions (see `docs/ARCHITECTURE.md`):
//! [`bundle`] reads a directory or zip and detects the format, [`csvio`] parses CSV as vendors
//! write it, [`schema`] describes Apple School Manager and OneRoster as data, [`engine`]
//! validates, filters and patches to a fixpoint, [`report`] writes the patch summary and the
//! modified CSVs, and [`check::check`] runs all of it on one bundle. [`store`] keeps each
//! source's roster and batch history in sled, and [`pipeline::ingest`] takes a bundle from
//! check to commit. [`sftp`] is the embedded SFTP drop-box, with its [`accounts`].

pub mod accounts;
pub mod admin;
pub mod bundle;
pub mod check;
pub mod config;
pub mod csvio;
pub mod daemon;
pub mod engine;
pub mod intake;
pub mod logging;
pub mod mail;
pub mod memory;
pub mod par;
pub mod pipeline;
pub mod report;
pub mod schema;
pub mod sftp;
pub mod store;
pub mod synth;
pub mod systemd;
pub mod values;
