//! The one interface every per-lead channel implements, below the channels and the registry
//! that lists them (so imports run one way: registry → channels → this).

use super::message::LeadMessage;
use super::transport::SendOutcome;
use crate::lead::Lead;

/// One channel: one attempt to deliver one lead.
#[async_trait::async_trait]
pub trait Sender: Send + Sync {
    async fn send(&self, lead: &Lead, msg: &LeadMessage) -> SendOutcome;
}
