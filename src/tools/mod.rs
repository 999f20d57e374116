//! The lead tools, one module per command: [`test_lead`] (`send-test-lead`), [`list`],
//! [`export`] and [`status`] (`leads …`), all reading through [`query`]; [`forget`] removes a
//! customer's personal data on request; [`reindex`] fills the journey index with leads that
//! predate it. They print to stdout for the publisher (who owns these leads); diagnoses go to
//! stderr.

pub mod digest_status;
pub mod export;
pub mod forget;
pub mod journey;
pub mod list;
pub mod query;
pub mod reindex;
pub mod status;
pub mod test_lead;

pub use query::{filter_leads, newest_first, parse_since, read_leads, LeadFilter, StoredLead};
