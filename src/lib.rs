//! rosterdrop: receive, validate, patch and commit school roster bundles.
//!
//! The roster engine is a pipeline of plain functions (see `docs/ARCHITECTURE.md`):
//! [`bundle`] reads a directory or zip and detects the format, [`csvio`] parses CSV as vendors
//! write it, [`schema`] describes Apple School Manager and OneRoster as data, [`engine`]
//! validates, filters and patches to a fixpoint, [`report`] writes the patch summary and the
//! modified CSVs, and [`check::check`] runs all of it on one bundle.

pub mod bundle;
pub mod check;
pub mod config;
pub mod csvio;
pub mod engine;
pub mod par;
pub mod pipeline;
pub mod report;
pub mod schema;
pub mod store;
pub mod synth;
pub mod values;
