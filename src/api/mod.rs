//! The OneRoster REST provider (issue 16), built up piece by piece: so far the collection
//! query (paging, sort, fields and the filter grammar) in [`query`] and each version's status
//! payloads in [`status`]; nothing serves them yet.

pub mod query;
pub mod status;
