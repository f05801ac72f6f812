//! The integration tests, as one test binary (`suite`): one module per concern, all sharing
//! `support/`. One binary links the crate once instead of once per test file.

mod support;

mod api_clients;
mod api_http;
mod api_shapes;
mod check_bundles;
mod check_cli;
mod check_edges;
mod check_filters;
mod check_golden;
mod check_hostile;
mod check_malformed;
mod check_roundtrip;
mod check_structure;
mod check_untidy;
mod cli_messages;
mod console_browser;
mod console_http;
mod daemon_e2e;
mod daemon_in_process;
mod export_formats;
mod mail_messages;
mod mail_smtp;
mod sftp_hostile;
mod sftp_limits;
mod sftp_openssh;
mod sftp_other_clients;
mod sftp_rust_client;
mod store;
mod store_guards;
mod systemd_unit;
