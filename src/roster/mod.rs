//! The roster engine: pure functions from a bundle to findings, a verdict and patched tables.
//!
//! [`bundle`] reads a directory or zip and decides the format, [`csvio`] parses CSV as vendors
//! write it, [`schema`] describes Apple School Manager and OneRoster as data, [`values`] checks
//! and normalises one field, [`engine`] validates, filters and patches to a fixpoint,
//! [`findings`] is the vocabulary of what was found (rules, findings, actions), [`report`]
//! writes the patch summary and the modified CSVs, and [`check::check`] runs all of it on one
//! bundle. Nothing here touches the network or the store.

pub mod bundle;
pub mod check;
pub mod csvio;
pub mod engine;
pub mod findings;
pub mod model;
pub mod par;
pub mod report;
pub mod schema;
pub mod synth;
pub mod text;
pub mod values;
