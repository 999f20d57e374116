//! LeadNotify: tell the publisher about every new lead, once per channel, whichever route wrote
//! it (LeadIngest, or Microsoft's own "Azure Table" destination).
//!
//! The lead's path: [`poller`] (timer → scan → claim → send → record) uses [`delivery`] (the
//! per-channel state on the row) and [`retry`] (when to try again), hands each due channel to
//! [`channels`], which renders a [`message`] through one module per channel ([`email`],
//! [`webhook`], [`teams`], [`slack`], and the CRMs under [`crm`]); the HTTP channels share
//! [`transport`] below them. Beside the per-lead path, [`digest`] sends one summary per schedule
//! period ([`digest_message`]), [`journey`] keeps the customer index each message tells, and
//! [`retention`] deletes leads older than `LEADS_RETENTION_DAYS`.

pub mod channels;
pub mod crm;
pub mod delivery;
pub mod digest;
pub mod digest_message;
pub mod email;
pub mod journey;
pub mod message;
pub mod poller;
pub mod report;
pub mod retention;
pub mod retry;
pub mod slack;
pub mod teams;
pub mod transport;
pub mod webhook;

pub use delivery::{Channel, ChannelRecord, DeliveryState};
pub use poller::Notifier;
pub use report::PollReport;
