//! Microsoft commercial-marketplace leads: LeadIngest stores each lead in an Azure Table before
//! answering; LeadNotify tells the publisher by e-mail, signed webhook, Teams or Slack.
//!
//! The module map, top to bottom (imports only run downwards):
//! - [`app`]: builds and runs either mode (under the Functions host, or `handler serve`).
//! - [`inbox`]: the lead inbox, a web page over the leads (list, lead, chart, send again, forget).
//! - [`tools`]: `send-test-lead` and the `leads` commands, one module per command.
//! - [`http`]: the HTTP edge: routes, the host's envelope protocol, the key layer, errors, and
//!   the accept loop with its limits on clients.
//! - [`ingest`]: LeadIngest: one lead in, one row written.
//! - [`notify`]: LeadNotify: the run, the unit of work, discovery, claim, state owners, channels.
//! - [`settings`] and [`schedule`]: every setting, parsed once into types.
//! - [`chart`]: leads per time bucket stacked by action: counting, geometry, the PNG (the
//!   inbox's chart page and the digest's picture).
//! - [`lead`]: the lead domain, pure code.
//! - [`store`]: the `Table` trait, its REST client (account and signing) and in-memory table.
//! - [`channel_id`], [`clock`], [`entity`], [`net`], [`text`]: small shared pieces at the bottom.

pub mod app;
pub mod channel_id;
pub mod chart;
pub mod clock;
pub mod entity;
pub mod http;
pub mod inbox;
pub mod ingest;
pub mod lead;
pub mod net;
pub mod notify;
pub mod schedule;
pub mod settings;
pub mod store;
pub mod text;
pub mod tools;
