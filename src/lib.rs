//! Microsoft commercial-marketplace leads: LeadIngest stores each lead in an Azure Table before
//! answering; LeadNotify tells the publisher by e-mail, signed webhook, Teams or Slack.
//!
//! - [`host`]: the Azure Functions custom-handler protocol and the routes.
//! - [`lead`]: the lead domain, pure code.
//! - [`store`]: the Azure Table client.
//! - [`ingest`] and [`notify`]: the two functions; one module per channel under `notify`.
//! - [`tools`]: `send-test-lead` and the `leads` commands.

pub mod error;
pub mod host;
pub mod ingest;
pub mod lead;
pub mod notify;
pub mod schedule;
pub mod serve;
pub mod settings;
pub mod store;
pub mod tools;
