//! LeadNotify: tell the publisher about every new lead, once per channel, whichever route wrote
//! it (LeadIngest, or Microsoft's own "Azure Table" destination).
//!
//! How a poll finds work without trusting `Timestamp`: both routes partition leads by date
//! (`M:2FD:2FYYYY`), so a poll reads the date partitions from a stored cursor (the oldest date
//! that may still hold unfinished work, at most yesterday) to tomorrow, and keeps the rows whose
//! channels are not all finished. Its cost grows with the leads of those few days, never with
//! the table.
//!
//! State lives with the lead: per channel, `Notify<Channel>State`, `…Attempts`,
//! `…NextAttempt`, `…LastError`, `…DeliveredAt`. A lead is claimed with an ETag-guarded MERGE
//! that sets `NotifyLeaseUntil`, so two overlapping runs cannot both send it; results are
//! written with the ETag of the claim. A crash after sending and before recording leaves the
//! lease to expire, and the next run sends again with the same id: at most a repeat, never a
//! lost lead.

pub mod email;
pub mod message;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::lead::{partition_key_for, Lead};
use crate::settings::{ChannelSettings, Settings};
use crate::store::{get_datetime, odata_string, put_datetime, Entity, StoreError, TableClient};
use message::LeadMessage;

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
    Teams,
    Slack,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Webhook, Channel::Teams, Channel::Slack];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "Email",
            Channel::Webhook => "Webhook",
            Channel::Teams => "Teams",
            Channel::Slack => "Slack",
        }
    }

    /// Table column of one piece of this channel's state, e.g. `NotifyEmailState`.
    pub fn column(self, part: &str) -> String {
        format!("Notify{}{part}", self.name())
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
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
        }
    }

    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("delivered") => DeliveryState::Delivered,
            Some("failed") => DeliveryState::Failed,
            Some("skipped") => DeliveryState::Skipped,
            _ => DeliveryState::Pending,
        }
    }
}

/// One channel's state as stored on the lead row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRecord {
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl ChannelRecord {
    pub fn read(e: &Entity, ch: Channel) -> Self {
        ChannelRecord {
            state: DeliveryState::parse(e.get(&ch.column("State")).and_then(Value::as_str)),
            attempts: e.get(&ch.column("Attempts")).and_then(Value::as_u64).unwrap_or(0) as u32,
            next_attempt: get_datetime(e, &ch.column("NextAttempt")),
            last_error: e.get(&ch.column("LastError")).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
        }
    }

    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending && self.next_attempt.is_none_or(|t| t <= now)
    }
}

/// What one attempt on one channel came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    Delivered,
    /// Worth trying again (timeout, 5xx, 408, 429, SMTP 4xx); `after` from `Retry-After`.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Trying again will not help (4xx, 410 Gone, SMTP 5xx).
    Permanent(String),
}

/// Wait before attempt n+1 after attempt n failed (index n-1; the last entry repeats). Data, so
/// the schedule reads at a glance: about 16 hours from first to tenth attempt.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(2 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
];

/// A `Retry-After` longer than this is capped: the lead must not wait for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

pub fn retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let idx = (attempts.max(1) as usize - 1).min(RETRY_SCHEDULE.len() - 1);
    let scheduled = RETRY_SCHEDULE[idx];
    match retry_after {
        Some(ra) => ra.min(MAX_RETRY_AFTER).max(scheduled),
        None => scheduled,
    }
}

/// How long a claim keeps other runs off a lead. Longer than the slowest possible send (30 s
/// SMTP timeout; 10 s per HTTP channel; channels run concurrently).
const LEASE: Duration = Duration::from_secs(120);
/// Leads handled by one run at most; the rest wait for the next tick.
const MAX_LEADS_PER_RUN: usize = 200;
/// Leads handled at once within a run.
const CONCURRENCY: usize = 8;
/// Partitions one poll reads at most (a cursor left far behind catches up over several runs).
const MAX_DAYS_PER_RUN: u64 = 31;

const CURSOR_PK: &str = "cursor";
const CURSOR_RK: &str = "scan-from";

/// The configured channels and their clients.
pub struct Channels {
    http: reqwest::Client,
    email: Option<email::EmailChannel>,
    settings: ChannelSettings,
}

impl Channels {
    pub fn new(settings: &ChannelSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            // A webhook that redirects is misconfigured; following it could leak the lead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("marketplace-leads/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let email = settings.email.as_ref().map(email::EmailChannel::new).transpose()?;
        Ok(Channels { http, email, settings: settings.clone() })
    }

    pub fn configured(&self) -> Vec<Channel> {
        let s = &self.settings;
        Channel::ALL
            .into_iter()
            .filter(|c| match c {
                Channel::Email => s.email.is_some(),
                Channel::Webhook => s.webhook.is_some(),
                Channel::Teams => s.teams.is_some(),
                Channel::Slack => s.slack.is_some(),
            })
            .collect()
    }

    async fn send(&self, ch: Channel, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        let unconfigured = || SendOutcome::Permanent(format!("{} is not configured", ch.name()));
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
        }
    }
}

/// Separates an error from the receiver's answer body, which goes to the table (for `leads
/// status`) but not to the logs: an endpoint may echo the lead back.
const BODY_MARK: &str = "; answer: ";

fn loggable(error: &str) -> &str {
    error.split(BODY_MARK).next().unwrap_or(error)
}

/// POSTs JSON and classifies the answer. Errors never include the URL (it carries tokens).
pub(crate) async fn post_json(http: &reqwest::Client, url: &str, headers: &[(&str, String)], body: String) -> SendOutcome {
    let mut req = http.post(url).header("Content-Type", "application/json").body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return SendOutcome::Retry { error: crate::store::describe_reqwest(&e.without_url()), after: None },
    };
    let status = resp.status();
    if status.is_success() {
        return SendOutcome::Delivered;
    }
    let retry_after =
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
    let snippet: String = resp.text().await.unwrap_or_default().chars().take(200).collect();
    let error = format!("HTTP {}{BODY_MARK}{}", status.as_u16(), snippet.replace(['\r', '\n'], " "));
    match status.as_u16() {
        408 | 429 | 500..=599 => SendOutcome::Retry { error, after: retry_after },
        300..=399 => SendOutcome::Permanent(format!("{error} (redirects are not followed: use the final URL)")),
        410 => SendOutcome::Permanent(format!("{error} (the endpoint is gone)")),
        _ => SendOutcome::Permanent(error),
    }
}

/// What one poll did, for logs, `handler notify` and the benchmark.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PollReport {
    pub partitions_read: u32,
    pub rows_read: u32,
    pub unfinished: u32,
    pub claimed: u32,
    pub delivered: u32,
    pub retrying: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Claimed by another run at the same time (ETag mismatch or live lease).
    pub busy: u32,
    /// Table requests this poll made.
    pub transactions: u64,
    /// This process was already polling: the tick was skipped.
    pub overlapped: bool,
}

impl fmt::Display for PollReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {} rows in {} partitions, {} unfinished, {} claimed: {} delivered, {} retrying, {} failed, {} skipped, {} busy; {} table transactions",
            self.rows_read, self.partitions_read, self.unfinished, self.claimed, self.delivered, self.retrying, self.failed, self.skipped, self.busy, self.transactions
        )
    }
}

/// The LeadNotify job.
pub struct Notifier {
    leads: TableClient,
    cursor: TableClient,
    channels: Channels,
    active: Vec<Channel>,
    max_attempts: u32,
    notify_test_leads: bool,
    running: tokio::sync::Mutex<()>,
}

impl Notifier {
    /// `leads` should be a client of its own, so its transaction count is this job's alone.
    pub fn new(settings: &Settings, leads: TableClient) -> Result<Self, String> {
        let channels = Channels::new(&settings.channels)?;
        let active = channels.configured();
        let cursor = leads.with_table(&format!("{}Notify", leads.table_name()));
        Ok(Notifier {
            leads,
            cursor,
            channels,
            active,
            max_attempts: settings.max_attempts,
            notify_test_leads: settings.notify_test_leads,
            running: tokio::sync::Mutex::new(()),
        })
    }

    pub fn channels(&self) -> &[Channel] {
        &self.active
    }

    /// One poll. Overlapping calls in this process skip instead of queueing; overlapping runs
    /// in other processes are kept apart by the ETag claim.
    #[tracing::instrument(name = "lead_notify", skip_all)]
    pub async fn run_once(&self) -> Result<PollReport, StoreError> {
        let Ok(_guard) = self.running.try_lock() else {
            return Ok(PollReport { overlapped: true, ..Default::default() });
        };
        // `cursor` shares `leads`' counter (same client, other table).
        let start = self.leads.transactions();
        let mut report = PollReport::default();
        if !self.active.is_empty() {
            self.poll(Utc::now(), &mut report).await?;
        }
        report.transactions = self.leads.transactions() - start;
        if report.claimed > 0 || report.failed > 0 {
            tracing::info!(%report, "LeadNotify run");
        } else {
            tracing::debug!(%report, "LeadNotify run");
        }
        Ok(report)
    }

    async fn poll(&self, now: DateTime<Utc>, report: &mut PollReport) -> Result<(), StoreError> {
        let today = now.date_naive();
        let floor = today - Days::new(1);
        let scan_from = self.read_cursor().await?.map_or(floor, |d| d.min(floor)).max(today - Days::new(MAX_DAYS_PER_RUN));
        let mut select = vec!["PartitionKey".to_string(), "RowKey".to_string(), "NotifyLeaseUntil".to_string()];
        for ch in &self.active {
            select.push(ch.column("State"));
            select.push(ch.column("NextAttempt"));
        }
        let select = select.join(",");

        // Every row with unfinished channels, by date; those due now are claimed below.
        let mut unfinished: Vec<(NaiveDate, String, String, bool)> = Vec::new();
        let mut date = scan_from;
        while date <= today + Days::new(1) {
            let pk = partition_key_for(date);
            let filter = format!("PartitionKey eq {}", odata_string(&pk));
            let rows = self.leads.query(Some(&filter), Some(&select), usize::MAX).await?;
            report.partitions_read += 1;
            report.rows_read += rows.entities.len() as u32;
            for row in rows.entities {
                let records: Vec<ChannelRecord> = self.active.iter().map(|c| ChannelRecord::read(&row, *c)).collect();
                if records.iter().all(|r| r.state != DeliveryState::Pending) {
                    continue;
                }
                let leased = get_datetime(&row, "NotifyLeaseUntil").is_some_and(|t| t > now);
                let due = records.iter().any(|r| r.is_due(now)) && !leased;
                let rk = row.get("RowKey").and_then(Value::as_str).unwrap_or_default().to_string();
                unfinished.push((date, pk.clone(), rk, due));
            }
            date = date + Days::new(1);
        }
        report.unfinished = unfinished.len() as u32;

        let due: Vec<(String, String)> =
            unfinished.iter().filter(|u| u.3).take(MAX_LEADS_PER_RUN).map(|(_, pk, rk, _)| (pk.clone(), rk.clone())).collect();
        let outcomes: Vec<((String, String), Result<LeadOutcome, StoreError>)> = stream::iter(due)
            .map(|(pk, rk)| async move {
                let outcome = self.process(&pk, &rk).await;
                ((pk, rk), outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut finished = std::collections::HashSet::new();
        for (key, outcome) in outcomes {
            match outcome? {
                LeadOutcome::Busy => report.busy += 1,
                LeadOutcome::Done { delivered, retrying, failed, skipped, finished: all_final } => {
                    report.claimed += 1;
                    report.delivered += delivered;
                    report.retrying += retrying;
                    report.failed += failed;
                    report.skipped += skipped;
                    if all_final {
                        finished.insert(key);
                    }
                }
            }
        }
        let oldest_unfinished = unfinished.iter().filter(|(_, pk, rk, _)| !finished.contains(&(pk.clone(), rk.clone()))).map(|u| u.0).min();

        let next_from = oldest_unfinished.map_or(floor, |d| d.min(floor));
        if next_from != scan_from {
            self.write_cursor(next_from).await?;
        }
        Ok(())
    }

    async fn read_cursor(&self) -> Result<Option<NaiveDate>, StoreError> {
        let row = self.cursor.get(CURSOR_PK, CURSOR_RK).await;
        let row = match row {
            Err(StoreError::NotFound) => None,
            other => other?,
        };
        Ok(row.and_then(|(e, _)| e.get("ScanFrom").and_then(Value::as_str).and_then(|s| s.parse().ok())))
    }

    async fn write_cursor(&self, from: NaiveDate) -> Result<(), StoreError> {
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), CURSOR_PK.into());
        e.insert("RowKey".into(), CURSOR_RK.into());
        e.insert("ScanFrom".into(), from.to_string().into());
        self.cursor.upsert(&e).await
    }

    /// Claims one lead, sends its due channels, records the outcomes.
    async fn process(&self, pk: &str, rk: &str) -> Result<LeadOutcome, StoreError> {
        let now = Utc::now();
        let Some((entity, etag)) = self.leads.get(pk, rk).await? else {
            return Ok(LeadOutcome::Busy);
        };
        if get_datetime(&entity, "NotifyLeaseUntil").is_some_and(|t| t > now) {
            return Ok(LeadOutcome::Busy);
        }
        let due: Vec<(Channel, ChannelRecord)> =
            self.active.iter().map(|c| (*c, ChannelRecord::read(&entity, *c))).filter(|(_, r)| r.is_due(now)).collect();
        if due.is_empty() {
            return Ok(LeadOutcome::Busy);
        }
        let lead = Lead::from_entity(&entity);
        let id = notification_id(pk, rk);

        let mut result = Entity::new();
        if lead.is_test() && !self.notify_test_leads {
            for (ch, _) in &due {
                result.insert(ch.column("State"), DeliveryState::Skipped.as_str().into());
            }
            return match self.leads.merge(pk, rk, &result, &etag).await {
                Ok(_) => {
                    let finished = self
                        .active
                        .iter()
                        .all(|c| due.iter().any(|(d, _)| d == c) || ChannelRecord::read(&entity, *c).state != DeliveryState::Pending);
                    Ok(LeadOutcome::Done { delivered: 0, retrying: 0, failed: 0, skipped: due.len() as u32, finished })
                }
                Err(StoreError::Changed) => Ok(LeadOutcome::Busy),
                Err(e) => Err(e),
            };
        }

        let mut claim = Entity::new();
        put_datetime(&mut claim, "NotifyLeaseUntil", now + LEASE);
        claim.insert("NotifyId".into(), id.clone().into());
        let etag = match self.leads.merge(pk, rk, &claim, &etag).await {
            Ok(etag) => etag,
            Err(StoreError::Changed) => return Ok(LeadOutcome::Busy),
            Err(e) => return Err(e),
        };

        let msg = LeadMessage::new(&lead, &id, pk, rk);
        let sends = due.iter().map(|(ch, _)| self.channels.send(*ch, &lead, &msg));
        let outcomes = futures_util::future::join_all(sends).await;

        let (mut delivered, mut retrying, mut failed) = (0, 0, 0);
        let done_at = Utc::now();
        for ((ch, record), outcome) in due.iter().zip(outcomes) {
            let attempts = record.attempts + 1;
            result.insert(ch.column("Attempts"), json!(attempts));
            let state = match outcome {
                SendOutcome::Delivered => {
                    delivered += 1;
                    put_datetime(&mut result, &ch.column("DeliveredAt"), done_at);
                    result.insert(ch.column("LastError"), "".into());
                    tracing::info!(partition_key = pk, row_key = rk, channel = ch.name(), attempts, "lead notified");
                    DeliveryState::Delivered
                }
                SendOutcome::Retry { error, after } if attempts < self.max_attempts => {
                    retrying += 1;
                    let wait = retry_delay(attempts, after);
                    put_datetime(&mut result, &ch.column("NextAttempt"), done_at + wait);
                    tracing::warn!(
                        partition_key = pk,
                        row_key = rk,
                        channel = ch.name(),
                        attempts,
                        error = loggable(&error),
                        retry_in_s = wait.as_secs(),
                        "notification failed, will retry"
                    );
                    result.insert(ch.column("LastError"), error.into());
                    DeliveryState::Pending
                }
                SendOutcome::Retry { error, .. } | SendOutcome::Permanent(error) => {
                    failed += 1;
                    tracing::error!(
                        partition_key = pk,
                        row_key = rk,
                        channel = ch.name(),
                        attempts,
                        error = loggable(&error),
                        "notification failed for good: see `handler leads status`"
                    );
                    result.insert(ch.column("LastError"), error.into());
                    DeliveryState::Failed
                }
            };
            result.insert(ch.column("State"), state.as_str().into());
        }
        // Release the claim in the same write that records the outcomes.
        put_datetime(&mut result, "NotifyLeaseUntil", done_at);
        match self.leads.merge(pk, rk, &result, &etag).await {
            Ok(_) => {}
            Err(StoreError::Changed) => {
                tracing::warn!(
                    partition_key = pk,
                    row_key = rk,
                    "lead changed while notifying (lease expired?): outcome not recorded, a repeat with the same id may follow"
                );
            }
            Err(e) => return Err(e),
        }
        let finished = self.active.iter().all(|c| match result.get(&c.column("State")).and_then(Value::as_str) {
            Some(state) => state != DeliveryState::Pending.as_str(),
            None => ChannelRecord::read(&entity, *c).state != DeliveryState::Pending,
        });
        Ok(LeadOutcome::Done { delivered, retrying, failed, skipped: 0, finished })
    }
}

enum LeadOutcome {
    Busy,
    /// `finished`: no configured channel is left pending on this lead.
    Done {
        delivered: u32,
        retrying: u32,
        failed: u32,
        skipped: u32,
        finished: bool,
    },
}

/// The stable id of a lead's notifications (`webhook-id`, e-mail Message-ID).
pub fn notification_id(pk: &str, rk: &str) -> String {
    let digest = Sha256::digest(format!("{pk}\n{rk}").as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("lead_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule_grows_and_honours_retry_after() {
        assert_eq!(retry_delay(1, None), Duration::from_secs(30));
        assert_eq!(retry_delay(2, None), Duration::from_secs(60));
        assert_eq!(retry_delay(50, None), Duration::from_secs(6 * 3600));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(600))), Duration::from_secs(600));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(1))), Duration::from_secs(30));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(10 * 86400))), MAX_RETRY_AFTER);
    }

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
    fn answer_bodies_stay_out_of_logs() {
        let error = format!("HTTP 400{BODY_MARK}invalid lead jana@contoso.example");
        assert_eq!(loggable(&error), "HTTP 400");
        assert_eq!(loggable("SMTP: timed out"), "SMTP: timed out");
    }

    #[test]
    fn notification_id_is_stable() {
        assert_eq!(notification_id("a", "b"), notification_id("a", "b"));
        assert_ne!(notification_id("a", "b"), notification_id("a", "c"));
    }
}
