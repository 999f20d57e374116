//! The contract tests, in one crate so they share one build and run side by side: the real
//! `handler` binary driven as the Functions host drives it, a real Azurite and SMTP server
//! (`scripts/test` starts them), HTTP receivers, strict CRM fakes and a storage fault proxy on
//! loopback. The notifier's logic is tested in process (`src/notify/logic_tests.rs`); these test
//! the real parts. One module per area.

#[path = "../common/mod.rs"]
mod common;

mod crm;
mod digest;
mod docs;
mod immediate;
mod inbox_browser;
mod infra;
mod ingest;
mod journey;
mod keyless;
mod lead_tools;
mod notify;
mod notify_corners;
mod personal_data;
mod properties;
mod slow_clients;
mod storage_faults;
