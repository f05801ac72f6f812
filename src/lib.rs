//! rosterdrop: receive, validate, patch and commit school roster bundles.
//!
//! The roster engine is a pipeline of plain functions (see `docs/ARCHITECTURE.md`):
//! [`bundle`] reads a directory or zip and detects the format, [`csvio`] parses CSV as vendors
//! write it, [`schema`] describes Apple School Manager and OneRoster as data, [`engine`]
//! validates, filters and patches to a fixpoint, and [`report`] writes the patch summary and the
//! modified CSVs.
pub mod accounts;
pub mod sftp;
