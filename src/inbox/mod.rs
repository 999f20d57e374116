//! The lead inbox: a web page where the publisher's team sees, charts and manages its leads, at
//! `/api/Inbox` under the Functions host (its own function folder, `Inbox/`) and under
//! `handler serve` alike. Server-rendered HTML, no script, a strict Content-Security-Policy.
//!
//! One file, one job:
//! - [`routes`]: the URLs, what each one reads or changes, and the headers every answer carries.
//! - [`auth`]: who may look ([`auth::Gate`]), sessions and the CSRF check.
//! - [`data`]: reading and changing leads, bounded; "send again" and forget call the notifier's
//!   and `leads forget`'s own code.
//! - [`chart`]: the chart page's strings and classes over the shared geometry ([`crate::chart`]);
//!   [`views`]: the pages (askama templates in `templates/`).

pub mod auth;
pub mod chart;
pub mod data;
pub mod routes;
pub mod views;

pub use routes::{router, Inbox};

#[cfg(test)]
mod tests;
