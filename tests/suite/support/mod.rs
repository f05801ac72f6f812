//! Helpers shared by the integration tests.

pub mod common;
pub mod common_sftp;
pub mod legacy;
pub mod support_smtp;
