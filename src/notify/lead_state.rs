//! Where one lead stands on each channel, as stored on the lead's row: the per-channel columns (`Notify<Channel>State`, `…Attempts`, `…NextAttempt`, `…LastError`,
//! `…DeliveredAt`, and `…ResentBy` / `…ResentAt` from the inbox's "send again"), and the
//! row-wide claim columns. Every column name is spelled here only.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::channel_id::ChannelId;
use crate::entity::{get_datetime, get_str, Entity};
use crate::settings::ChannelSettings;
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

/// The name of one piece of a channel's state on the row: `Notify<Channel><Part>`.
pub fn column(ch: ChannelId, part: Column) -> String {
    format!("Notify{}{}", ch.name(), part.suffix())
}

/// The per-lead channels the settings turn on, in a fixed order.
pub fn configured(settings: &ChannelSettings) -> Vec<ChannelId> {
    ChannelId::PER_LEAD
        .into_iter()
        .filter(|c| match c {
            ChannelId::Email => settings.email.is_some(),
            ChannelId::Webhook => settings.webhook.is_some(),
            ChannelId::Teams => settings.teams.is_some(),
            ChannelId::Slack => settings.slack.is_some(),
            ChannelId::Dynamics => settings.dynamics.is_some(),
            ChannelId::Salesforce => settings.salesforce.is_some(),
            ChannelId::HubSpot => settings.hubspot.is_some(),
            ChannelId::Marketo => settings.marketo.is_some(),
            ChannelId::Digest => false,
        })
        .collect()
}

/// The per-lead channels whose settings are present but invalid: they send nothing, and their
/// leads stay pending until the setting is fixed.
pub fn misconfigured(settings: &ChannelSettings) -> Vec<ChannelId> {
    ChannelId::PER_LEAD.into_iter().filter(|c| settings.misconfigured.iter().any(|m| m.channel == *c)).collect()
}

/// The channels whose state the notifier keeps: the configured ones, then the misconfigured
/// ones (whose leads stay pending until the setting is fixed).
pub fn watched(settings: &ChannelSettings) -> Vec<ChannelId> {
    let mut watched = configured(settings);
    watched.extend(misconfigured(settings));
    watched
}

/// One piece of a channel's state on the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    State,
    Attempts,
    NextAttempt,
    LastError,
    DeliveredAt,
    /// Who last asked for the lead to be sent again on this channel (the inbox's "send again").
    ResentBy,
    /// When they asked.
    ResentAt,
}

impl Column {
    fn suffix(self) -> &'static str {
        match self {
            Column::State => "State",
            Column::Attempts => "Attempts",
            Column::NextAttempt => "NextAttempt",
            Column::LastError => "LastError",
            Column::DeliveredAt => "DeliveredAt",
            Column::ResentBy => "ResentBy",
            Column::ResentAt => "ResentAt",
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
    pub fn parse(s: Option<&str>) -> Self {
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
    pub fn read(e: &Entity, ch: ChannelId) -> Self {
        ChannelRecord {
            state: match e.get(&column(ch, Column::State)) {
                None | Some(Value::Null) => DeliveryState::Pending,
                Some(Value::String(s)) => DeliveryState::parse(Some(s)),
                Some(_) => DeliveryState::Unknown,
            },
            raw_state: e.get(&column(ch, Column::State)).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
            attempts: e.get(&column(ch, Column::Attempts)).and_then(Value::as_u64).unwrap_or(0) as u32,
            next_attempt: get_datetime(e, &column(ch, Column::NextAttempt)),
            last_error: Some(get_str(e, &column(ch, Column::LastError))).filter(|s| !s.is_empty()).map(str::to_string),
        }
    }

    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending && self.next_attempt.is_none_or(|t| t <= now)
    }
}

/// Whether a send for this lead will really still be attempted: a run holds it now, or a watched
/// channel is pending and the row was written within `give_up` (every attempt writes the row, and
/// a lead pending longer is ended as failed; a row idle longer, such as one older than the
/// deployment or than a channel added later, is never picked up again).
pub fn will_be_sent(row: &Entity, watched: &[ChannelId], now: DateTime<Utc>, give_up: chrono::Duration) -> bool {
    if get_datetime(row, LEASE_COLUMN).is_some_and(|t| t > now) {
        return true;
    }
    let pending = watched.iter().any(|c| ChannelRecord::read(row, *c).state == DeliveryState::Pending);
    pending && get_datetime(row, "Timestamp").is_none_or(|written| now - written <= give_up)
}

/// The columns that put one channel of a lead back to pending with the same notification id
/// (the inbox's "send again"): state pending, attempts zero, due `now`, and who asked when.
pub fn send_again(ch: ChannelId, who: &str, now: DateTime<Utc>) -> Entity {
    let mut e = Entity::new();
    e.insert(column(ch, Column::State), DeliveryState::Pending.as_str().into());
    e.insert(column(ch, Column::Attempts), Value::from(0));
    crate::entity::put_datetime(&mut e, &column(ch, Column::NextAttempt), now);
    e.insert(column(ch, Column::ResentBy), who.into());
    crate::entity::put_datetime(&mut e, &column(ch, Column::ResentAt), now);
    e
}

/// The columns a poll needs to decide which rows have work, for the given channels.
pub fn scan_columns(channels: &[ChannelId]) -> Vec<String> {
    let mut select = vec!["PartitionKey".to_string(), "RowKey".to_string(), LEASE_COLUMN.to_string()];
    for ch in channels {
        select.push(column(*ch, Column::State));
        select.push(column(*ch, Column::NextAttempt));
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
        assert!(ChannelRecord::read(&e, ChannelId::Email).is_due(now));
        put_datetime(&mut e, "NotifyEmailNextAttempt", now + chrono::Duration::seconds(60));
        assert!(!ChannelRecord::read(&e, ChannelId::Email).is_due(now));
        e.insert("NotifyEmailState".into(), "delivered".into());
        assert_eq!(ChannelRecord::read(&e, ChannelId::Email).state, DeliveryState::Delivered);
    }

    #[test]
    fn unknown_states_are_never_pending() {
        let state = |v: &str| {
            let mut e = Entity::new();
            e.insert("NotifyEmailState".into(), v.into());
            ChannelRecord::read(&e, ChannelId::Email).state
        };
        assert_eq!(state("Delivered"), DeliveryState::Delivered);
        assert_eq!(state(" FAILED "), DeliveryState::Failed);
        assert_eq!(state(""), DeliveryState::Pending);
        assert_eq!(state("done"), DeliveryState::Unknown);
        let mut e = Entity::new();
        e.insert("NotifyEmailState".into(), serde_json::json!(1));
        assert_eq!(ChannelRecord::read(&e, ChannelId::Email).state, DeliveryState::Unknown);
        assert!(!ChannelRecord::read(&e, ChannelId::Email).is_due(Utc::now()));
    }

    #[test]
    fn column_names_are_the_documented_ones() {
        assert_eq!(column(ChannelId::Slack, Column::LastError), "NotifySlackLastError");
        assert_eq!(column(ChannelId::Email, Column::DeliveredAt), "NotifyEmailDeliveredAt");
        assert_eq!(column(ChannelId::Dynamics, Column::State), "NotifyDynamicsState");
        assert_eq!(column(ChannelId::HubSpot, Column::Attempts), "NotifyHubSpotAttempts");
        assert_eq!(column(ChannelId::Webhook, Column::ResentBy), "NotifyWebhookResentBy");
    }

    #[test]
    fn send_again_makes_the_channel_due_now() {
        let now = Utc::now();
        let mut row = Entity::new();
        row.insert("NotifyWebhookState".into(), "failed".into());
        row.insert("NotifyWebhookAttempts".into(), 10.into());
        row.extend(send_again(ChannelId::Webhook, "ana@publisher.example", now));
        let record = ChannelRecord::read(&row, ChannelId::Webhook);
        assert!(record.is_due(now));
        assert_eq!(record.attempts, 0);
        assert_eq!(get_str(&row, "NotifyWebhookResentBy"), "ana@publisher.example");
    }

    #[test]
    fn notification_id_is_stable() {
        assert_eq!(notification_id("a", "b"), notification_id("a", "b"));
        assert_ne!(notification_id("a", "b"), notification_id("a", "c"));
    }
}
