//! LeadNotify: tell the publisher about every new lead, once per channel, whichever route wrote
//! it (LeadIngest, or Microsoft's own "Azure Table" destination).
//!
//! The module map, top to bottom:
//! - [`run`]: the LeadNotify run (timer, immediate path after intake, one lead on demand).
//! - [`digest`] (one summary per schedule period, [`digest_message`]) and [`retention`] (deletes
//!   old leads): beside the per-lead path, on the same discovery and state.
//! - [`deliver`]: the unit of work, deliver one lead: claim, index, render, send, record.
//! - [`registry`]: the only list of channels, built from settings; one module per channel: [`email`], [`webhook`], [`teams`], [`slack`], the CRMs under [`crm`].
//! - [`sender`]: the one channel interface every channel implements; [`message`] renders a lead; [`journey`] keeps the customer index each message tells.
//! - [`sweep`]: the safety-net sweep's cursor, as pure decisions.
//! - [`discovery`]: the one way leads are found (date partitions, rows written since a time,
//!   every row page by page) and when a lead arrived.
//! - [`claim`]: the claim / lease and the one decision "outcome + attempts → next state", for
//!   lead rows and digest periods alike; [`retry_schedule`]: when to try again.
//! - [`lead_state`] (a lead row's notify columns) and [`notify_table`] (`<LEADS_TABLE>Notify`:
//!   cursors, retention, digest periods): the only owners of column names and filters.
//! - [`new_leads`]: intake's hand-over of new keys; [`report`]: what a run did;
//!   [`transport`]: the HTTP client and outcome types the channels share.

pub mod claim;
pub mod crm;
pub mod deliver;
pub mod digest;
pub mod digest_message;
pub mod discovery;
pub mod email;
pub mod journey;
pub mod lead_state;
pub mod message;
pub mod new_leads;
pub mod notify_table;
pub mod registry;
pub mod report;
pub mod retention;
pub mod retry_schedule;
pub mod run;
pub mod sender;
pub mod slack;
pub mod sweep;
pub mod teams;
pub mod transport;
pub mod webhook;

#[cfg(test)]
mod logic_tests;

pub use lead_state::{ChannelRecord, DeliveryState};
pub use registry::Registry;
pub use report::PollReport;
pub use run::Notifier;
pub use sender::Sender;
