//! One interface for every per-lead channel, and the registry that is the only list of them.
//!
//! A channel is a [`Sender`] (`sender.rs`): one attempt to tell one receiver about one lead, ending in a
//! [`SendOutcome`]. The [`Registry`] builds the senders the settings turn on (one line each in
//! [`Registry::from_settings`]), remembers the misconfigured ones (their leads stay pending until
//! the setting is fixed), and bounds every attempt by the send timeout whatever the channel does
//! inside. Adding a channel: its file (a `Sender`), its settings section, its [`ChannelId`], and
//! one line here.

use std::sync::Arc;
use std::time::Duration;

use super::crm::{dynamics::Dynamics, hubspot::HubSpot, marketo::Marketo, salesforce::Salesforce, Crm};
use super::email::EmailChannel;
use super::message::LeadMessage;
use super::sender::Sender;
use super::slack::Slack;
use super::teams::Teams;
use super::transport::{http_client, DeliveryError, SendOutcome};
use super::webhook::Webhook;
use crate::channel_id::ChannelId;
use crate::lead::Lead;
use crate::settings::ChannelSettings;

/// The per-lead channels that send, and those whose settings are wrong.
#[derive(Clone)]
pub struct Registry {
    senders: Vec<(ChannelId, Arc<dyn Sender>)>,
    misconfigured: Vec<ChannelId>,
    send_timeout: Duration,
}

impl Registry {
    pub fn new(send_timeout: Duration) -> Self {
        Registry { senders: Vec::new(), misconfigured: Vec::new(), send_timeout }
    }

    /// The channels the settings turn on; an error only when a shared client cannot be built.
    pub fn from_settings(settings: &ChannelSettings, send_timeout: Duration) -> Result<Self, String> {
        let http = http_client(send_timeout)?;
        let mut registry = Registry::new(send_timeout);
        if let Some(cfg) = &settings.email {
            registry = registry.with(ChannelId::Email, EmailChannel::new(cfg, send_timeout)?);
        }
        if let Some(cfg) = &settings.webhook {
            registry = registry.with(ChannelId::Webhook, Webhook::new(&http, cfg));
        }
        if let Some(url) = &settings.teams {
            registry = registry.with(ChannelId::Teams, Teams::new(&http, url));
        }
        if let Some(url) = &settings.slack {
            registry = registry.with(ChannelId::Slack, Slack::new(&http, url));
        }
        if let Some(cfg) = &settings.dynamics {
            registry = registry.with(ChannelId::Dynamics, Crm::new(&http, Dynamics::new(cfg.clone())));
        }
        if let Some(cfg) = &settings.salesforce {
            registry = registry.with(ChannelId::Salesforce, Crm::new(&http, Salesforce::new(cfg.clone())));
        }
        if let Some(cfg) = &settings.hubspot {
            registry = registry.with(ChannelId::HubSpot, Crm::new(&http, HubSpot::new(cfg.clone())));
        }
        if let Some(cfg) = &settings.marketo {
            registry = registry.with(ChannelId::Marketo, Crm::new(&http, Marketo::new(cfg.clone())));
        }
        registry.misconfigured = settings.misconfigured.iter().map(|m| m.channel).filter(|c| ChannelId::PER_LEAD.contains(c)).collect();
        Ok(registry)
    }

    /// Adds (or replaces) a channel: the settings' channels, or a test's own.
    pub fn with(mut self, id: ChannelId, sender: impl Sender + 'static) -> Self {
        self.senders.retain(|(c, _)| *c != id);
        self.senders.push((id, Arc::new(sender)));
        self.senders.sort_by_key(|(c, _)| *c);
        self
    }

    /// Marks a channel misconfigured (as the settings do for a bad value).
    pub fn with_misconfigured(mut self, id: ChannelId) -> Self {
        self.misconfigured.push(id);
        self
    }

    /// The channels that send.
    pub fn active(&self) -> Vec<ChannelId> {
        self.senders.iter().map(|(c, _)| *c).collect()
    }

    /// Whether `id` sends (without building the list: asked for every row a scan reads).
    pub fn is_active(&self, id: ChannelId) -> bool {
        self.senders.iter().any(|(c, _)| *c == id)
    }

    /// The channels whose state is kept: those that send, then the misconfigured ones.
    pub fn watched(&self) -> Vec<ChannelId> {
        let mut watched = self.active();
        watched.extend(self.misconfigured.iter().copied().filter(|c| !watched.contains(c)).collect::<Vec<_>>());
        watched
    }

    /// One attempt on one channel, over within the send timeout whatever the peer does (a relay
    /// that accepts and never answers, a receiver that stalls mid-answer): a timeout is a
    /// failed attempt, retried like any other.
    pub async fn send(&self, id: ChannelId, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        let Some((_, sender)) = self.senders.iter().find(|(c, _)| *c == id) else {
            return SendOutcome::Permanent(DeliveryError::new(format!("{id} is not configured")));
        };
        match tokio::time::timeout(self.send_timeout, sender.send(lead, msg)).await {
            Ok(outcome) => outcome,
            Err(_) => SendOutcome::Retry {
                error: DeliveryError::new(format!("{id}: no answer within {} s (timed out)", self.send_timeout.as_secs())),
                after: None,
            },
        }
    }
}
