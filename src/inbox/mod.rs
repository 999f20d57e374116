//! The lead inbox: a web page where the publisher's team sees, charts and manages its leads, at
//! `/api/Inbox` under the Functions host (its own function folder, `Inbox/`) and under
//! `handler serve` alike. Server-rendered HTML, no script, a strict Content-Security-Policy.
//!
//! One file, one job:
//! - [`routes`]: the URLs, the list, chart and export pages, and the headers every answer carries;
//!   `lead_page`, `changes` (send again, forget) and `signin` hold the other pages; `page` what
//!   they all share (the `Inbox` state, admitting a viewer, answering).
//! - [`auth`]: who may look ([`auth::Gate`]), sessions and the CSRF check.
//! - [`data`]: reading and changing leads, bounded; "send again" and forget call the notifier's
//!   and `leads forget`'s own code.
//! - [`days`]: the date partitions a page reads, with closed days held in memory for a while.
//! - [`chart`]: the chart page's strings and classes over the shared geometry ([`crate::chart`]);
//!   [`views`]: the pages (askama templates in `templates/`).

pub mod auth;
mod changes;
pub mod chart;
pub mod data;
pub mod days;
mod lead_page;
mod page;
pub mod routes;
mod signin;
pub mod views;

pub use page::Inbox;
pub use routes::router;

#[cfg(test)]
mod tests;
