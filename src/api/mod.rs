//! The OneRoster REST provider (issue 16): the routes ([`routes_table`]), what each selects
//! and how the query applies ([`respond`]), the records as each version's JSON ([`render`],
//! [`fields`]), the served roster kept between batches ([`served`]), authentication
//! ([`auth`], [`clients`]), the HTTP server ([`server`], [`listen`], [`tls`]), the 1.2 discovery document
//! ([`discovery`]), the collection query ([`query`]), the status payloads ([`status`]) and
//! the settings ([`config`]).

pub mod auth;
pub mod clients;
pub mod config;
pub mod discovery;
pub mod fields;
pub mod listen;
pub mod query;
pub mod render;
pub mod respond;
pub mod routes_table;
pub mod served;
pub mod server;
pub mod status;
pub mod tls;

pub use config::ApiConfig;
