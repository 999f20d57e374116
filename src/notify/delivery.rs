//! Where one lead stands on one channel, as stored on the lead's row: the channel's identity,
//! its columns (`Notify<Channel>State`, `…Attempts`, `…NextAttempt`, `…LastError`,
//! `…DeliveredAt`), and the row-wide claim columns. Every column name is spelled here only.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::entity::{get_datetime, get_str, Entity};
use crate::settings::ChannelSettings;
use crate::store::RetryPolicy;
use crate::text::hex;

/// Row-wide: until when a run has claimed the lead.
pub const LEASE_COLUMN: &str = "NotifyLeaseUntil";
/// Row-wide: the lead's stable notification id.
pub const ID_COLUMN: &str = "NotifyId";
/// Row-wide: the customer the lead was indexed under (set once indexed, so it is indexed once).
pub const CUSTOMER_COLUMN: &str = "CustomerId";
/// What indexing a lead in the customer journey needs from a scanned row (the address, test
/// markers, time, action, offer): scanned along with the state, so indexing costs no extra read.
pub const JOURNEY_COLUMNS: &str =
    "CustomerId,Email,FirstName,LastName,Company,CustomerInfo,CreatedTime,ActionCode,LeadSource,OfferDisplayName";

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Webhook,
    Teams,
    Slack,
    /// The CRM channels (`notify::crm`): each lead becomes a record in the publisher's CRM.
    Dynamics,
    Salesforce,
    HubSpot,
    Marketo,
}

impl Channel {
    pub const ALL: [Channel; 8] = [
        Channel::Email,
        Channel::Webhook,
        Channel::Teams,
        Channel::Slack,
        Channel::Dynamics,
        Channel::Salesforce,
        Channel::HubSpot,
        Channel::Marketo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "Email",
            Channel::Webhook => "Webhook",
            Channel::Teams => "Teams",
            Channel::Slack => "Slack",
            Channel::Dynamics => "Dynamics",
            Channel::Salesforce => "Salesforce",
            Channel::HubSpot => "HubSpot",
            Channel::Marketo => "Marketo",
        }
    }

    /// The channels the settings turn on, in a fixed order.
    pub fn configured(settings: &ChannelSettings) -> Vec<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| match c {
                Channel::Email => settings.email.is_some(),
                Channel::Webhook => settings.webhook.is_some(),
                Channel::Teams => settings.teams.is_some(),
                Channel::Slack => settings.slack.is_some(),
                Channel::Dynamics => settings.dynamics.is_some(),
                Channel::Salesforce => settings.salesforce.is_some(),
                Channel::HubSpot => settings.hubspot.is_some(),
                Channel::Marketo => settings.marketo.is_some(),
            })
            .collect()
    }

    /// The channels whose settings are present but invalid: they send nothing, and their leads
    /// stay pending until the setting is fixed.
    pub fn misconfigured(settings: &ChannelSettings) -> Vec<Channel> {
        Channel::ALL.into_iter().filter(|c| settings.misconfigured.iter().any(|m| m.channel == c.name())).collect()
    }

    /// The channels whose state the notifier keeps: the configured ones, then the
    /// misconfigured ones (whose leads stay pending until the setting is fixed).
    pub fn watched(settings: &ChannelSettings) -> Vec<Channel> {
        let mut watched = Channel::configured(settings);
        watched.extend(Channel::misconfigured(settings));
        watched
    }

    pub fn column(self, part: Column) -> String {
        format!("Notify{}{}", self.name(), part.suffix())
    }
}

/// One piece of a channel's state on the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    State,
    Attempts,
    NextAttempt,
    LastError,
    DeliveredAt,
}

impl Column {
    fn suffix(self) -> &'static str {
        match self {
            Column::State => "State",
            Column::Attempts => "Attempts",
            Column::NextAttempt => "NextAttempt",
            Column::LastError => "LastError",
            Column::DeliveredAt => "DeliveredAt",
        }
    }
}

/// Where one lead stands on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not sent yet, or failed and due for another attempt.
    Pending,
    Delivered,
    /// Given up: a permanent error, or `NOTIFY_MAX_ATTEMPTS` reached. Logged as an error.
    Failed,
    /// Not sent on purpose (a test lead with `NOTIFY_TEST_LEADS=false`).
    Skipped,
    /// A value this code does not know (say, typed by hand in Storage Explorer). Never causes a
    /// send: a person changed it, a person decides; `leads status` shows it.
    Unknown,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
            DeliveryState::Unknown => "unknown",
        }
    }

    /// Reads the stored value. Absent or empty is pending (a new lead); the known words match
    /// without regard to case or surrounding spaces; anything else is `Unknown`.
    fn parse(s: Option<&str>) -> Self {
        let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else { return DeliveryState::Pending };
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Failed, DeliveryState::Skipped]
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(s))
            .unwrap_or(DeliveryState::Unknown)
    }
}

/// One channel's state as stored on the lead row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRecord {
    pub state: DeliveryState,
    /// The stored text of the state, for showing an `Unknown` one.
    pub raw_state: Option<String>,
    pub attempts: u32,
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl ChannelRecord {
    pub fn read(e: &Entity, ch: Channel) -> Self {
        ChannelRecord {
            state: match e.get(&ch.column(Column::State)) {
                None | Some(Value::Null) => DeliveryState::Pending,
                Some(Value::String(s)) => DeliveryState::parse(Some(s)),
                Some(_) => DeliveryState::Unknown,
            },
            raw_state: e.get(&ch.column(Column::State)).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
            attempts: e.get(&ch.column(Column::Attempts)).and_then(Value::as_u64).unwrap_or(0) as u32,
            next_attempt: get_datetime(e, &ch.column(Column::NextAttempt)),
            last_error: Some(get_str(e, &ch.column(Column::LastError))).filter(|s| !s.is_empty()).map(str::to_string),
        }
    }

    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending && self.next_attempt.is_none_or(|t| t <= now)
    }
}

/// How long a claim keeps other runs off a lead (or a digest period). It must outlast what a run
/// does between two writes to the row: after the claim, up to two storage calls (the customer
/// journey), the sends (concurrent, each cut at the send timeout) and the first record; each
/// later record renews the claim. Doubled send time and a minute on top are the margin.
pub fn lease_for(send_timeout: std::time::Duration, storage: &RetryPolicy) -> std::time::Duration {
    send_timeout * 2 + storage.longest_call() * 3 + std::time::Duration::from_secs(60)
}

/// The columns a poll needs to decide which rows have work, for the given channels.
pub fn scan_columns(channels: &[Channel]) -> Vec<String> {
    let mut select = vec!["PartitionKey".to_string(), "RowKey".to_string(), LEASE_COLUMN.to_string()];
    for ch in channels {
        select.push(ch.column(Column::State));
        select.push(ch.column(Column::NextAttempt));
    }
    select
}

/// The stable id of a lead's notifications (`webhook-id`, e-mail Message-ID).
pub fn notification_id(pk: &str, rk: &str) -> String {
    let digest = Sha256::digest(format!("{pk}\n{rk}").as_bytes());
    format!("lead_{}", hex(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::put_datetime;

    #[test]
    fn record_is_due_when_pending_and_time_has_come() {
        let now = Utc::now();
        let mut e = Entity::new();
        assert!(ChannelRecord::read(&e, Channel::Email).is_due(now));
        put_datetime(&mut e, "NotifyEmailNextAttempt", now + chrono::Duration::seconds(60));
        assert!(!ChannelRecord::read(&e, Channel::Email).is_due(now));
        e.insert("NotifyEmailState".into(), "delivered".into());
        assert_eq!(ChannelRecord::read(&e, Channel::Email).state, DeliveryState::Delivered);
    }

    #[test]
    fn unknown_states_are_never_pending() {
        let state = |v: &str| {
            let mut e = Entity::new();
            e.insert("NotifyEmailState".into(), v.into());
            ChannelRecord::read(&e, Channel::Email).state
        };
        assert_eq!(state("Delivered"), DeliveryState::Delivered);
        assert_eq!(state(" FAILED "), DeliveryState::Failed);
        assert_eq!(state(""), DeliveryState::Pending);
        assert_eq!(state("done"), DeliveryState::Unknown);
        let mut e = Entity::new();
        e.insert("NotifyEmailState".into(), serde_json::json!(1));
        assert_eq!(ChannelRecord::read(&e, Channel::Email).state, DeliveryState::Unknown);
        assert!(!ChannelRecord::read(&e, Channel::Email).is_due(Utc::now()));
    }

    #[test]
    fn column_names_are_the_documented_ones() {
        assert_eq!(Channel::Slack.column(Column::LastError), "NotifySlackLastError");
        assert_eq!(Channel::Email.column(Column::DeliveredAt), "NotifyEmailDeliveredAt");
        assert_eq!(Channel::Dynamics.column(Column::State), "NotifyDynamicsState");
        assert_eq!(Channel::HubSpot.column(Column::Attempts), "NotifyHubSpotAttempts");
    }

    #[test]
    fn notification_id_is_stable() {
        assert_eq!(notification_id("a", "b"), notification_id("a", "b"));
        assert_ne!(notification_id("a", "b"), notification_id("a", "c"));
    }
}
