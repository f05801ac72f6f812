//! The OneRoster REST provider (issue 16): the collection query (paging, sort, fields and the
//! filter grammar) in [`query`], each version's status payloads in [`status`], and its
//! settings in [`config`].

pub mod auth;
pub mod clients;
pub mod config;
pub mod discovery;
pub mod fields;
pub mod query;
pub mod render;
pub mod routes_table;
pub mod status;

pub use config::ApiConfig;
