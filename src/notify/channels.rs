//! The configured channels and their clients, built once; one call sends one lead on one
//! channel.

use std::time::Duration;

use super::delivery::Channel;
use super::email::EmailChannel;
use super::message::LeadMessage;
use super::transport::{http_client, DeliveryError, SendOutcome};
use super::{crm, slack, teams, webhook};
use crate::lead::Lead;
use crate::settings::ChannelSettings;

pub struct Channels {
    http: reqwest::Client,
    email: Option<EmailChannel>,
    crm: crm::Crms,
    settings: ChannelSettings,
    active: Vec<Channel>,
    send_timeout: Duration,
}

impl Channels {
    /// `send_timeout` bounds every send, whatever the channel does inside.
    pub fn new(settings: &ChannelSettings, send_timeout: Duration) -> Result<Self, String> {
        let email = settings.email.as_ref().map(|e| EmailChannel::new(e, send_timeout)).transpose()?;
        Ok(Channels {
            http: http_client(send_timeout)?,
            email,
            crm: crm::Crms::new(settings),
            settings: settings.clone(),
            active: Channel::configured(settings),
            send_timeout,
        })
    }

    /// The channels that are on.
    pub fn active(&self) -> &[Channel] {
        &self.active
    }

    /// One attempt on one channel, over within the send timeout whatever the peer does (a relay
    /// that accepts and never answers, a receiver that stalls mid-answer): a timeout is a
    /// failed attempt, retried like any other.
    pub async fn send(&self, ch: Channel, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        match tokio::time::timeout(self.send_timeout, self.send_unbounded(ch, lead, msg)).await {
            Ok(outcome) => outcome,
            Err(_) => SendOutcome::Retry {
                error: DeliveryError::new(format!("{}: no answer within {} s (timed out)", ch.name(), self.send_timeout.as_secs())),
                after: None,
            },
        }
    }

    async fn send_unbounded(&self, ch: Channel, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        let unconfigured = || SendOutcome::Permanent(DeliveryError::new(format!("{} is not configured", ch.name())));
        match ch {
            Channel::Email => match &self.email {
                Some(e) => e.send(msg).await,
                None => unconfigured(),
            },
            Channel::Webhook => match &self.settings.webhook {
                Some(w) => webhook::send(&self.http, w, lead, msg).await,
                None => unconfigured(),
            },
            Channel::Teams => match &self.settings.teams {
                Some(url) => teams::send(&self.http, url, msg).await,
                None => unconfigured(),
            },
            Channel::Slack => match &self.settings.slack {
                Some(url) => slack::send(&self.http, url, msg).await,
                None => unconfigured(),
            },
            Channel::Dynamics => match &self.crm.dynamics {
                Some(c) => c.send(&self.http, lead, msg).await,
                None => unconfigured(),
            },
            Channel::Salesforce => match &self.crm.salesforce {
                Some(c) => c.send(&self.http, lead, msg).await,
                None => unconfigured(),
            },
            Channel::HubSpot => match &self.crm.hubspot {
                Some(c) => c.send(&self.http, lead, msg).await,
                None => unconfigured(),
            },
            Channel::Marketo => match &self.crm.marketo {
                Some(c) => c.send(&self.http, lead, msg).await,
                None => unconfigured(),
            },
        }
    }
}
