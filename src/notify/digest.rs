//! The digest: one e-mail per schedule period (`NOTIFY_DIGEST_SCHEDULE`) summarising its leads,
//! sent exactly once per period whatever the number of instances, retries or crashes.
//!
//! Every LeadNotify run asks: has the latest digest tick at or before now (less
//! `NOTIFY_DIGEST_DELAY_SECONDS`, the time a lead created before the tick may take to reach the
//! table) got its digest? If not, it sends it. A period is (previous digest's end, this tick]; normally the previous digest's
//! end is the previous tick. When ticks went by with no run (the app was stopped), the one digest
//! sent covers them all and says so, rather than a storm of one digest per missed tick, and
//! rather than leaving their leads untold. With no earlier digest (first deployment) it is the
//! latest period only. A period is never longer than [`MAX_PERIOD_DAYS`].
//!
//! State lives in the notifier's table (`<LEADS_TABLE>Notify`), one row per period:
//! PartitionKey `digest`, RowKey the period's end (RFC 3339, so keys sort by time). A period is
//! claimed by inserting its row (an insert that finds the row taken means another run has it),
//! or, for a retry, by an ETag-guarded MERGE, either way with a lease; the outcome (`delivered`,
//! `pending` with `NextAttempt`, `failed`) is written with the claim's ETag. A crash after the
//! send and before the record leaves the lease to expire, and the next run sends again with the
//! same Message-ID: at most one repeat, never a lost digest.
//!
//! Leads are found by their date partitions (the same keys both routes write), filtered by
//! `CreatedTime` within the period: partition reads only, never a table scan.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, Message, Tokio1Executor};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::delivery::{lease_for, DeliveryState};
use super::digest_message::{DigestLine, DigestMessage, Period, MAX_PERIOD_DAYS};
use super::email::{deliver, smtp_transport};
use super::report::PollReport;
use super::retry::retry_delay;
use super::transport::{DeliveryError, SendOutcome};
use crate::entity::{get_datetime, get_str, put_datetime, Entity};
use crate::lead::{partition_key_for, Lead};
use crate::schedule::Schedule;
use crate::settings::Settings;
use crate::store::{Filter, Op, Query, SharedTable, StoreError};
use crate::text::hex;

/// The state rows' partition in `<LEADS_TABLE>Notify`.
pub const DIGEST_PK: &str = "digest";
/// Digests still pending from earlier periods retried in one run at most.
const MAX_RETRIES_PER_RUN: usize = 3;

/// The RowKey of a period ending at `end`: RFC 3339 to the second, so keys sort as times do.
pub fn row_key(end: DateTime<Utc>) -> String {
    end.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where one period's digest stands, as read from its row.
struct DigestRow {
    /// Read from the table (a retry), not a new period yet to be inserted.
    stored: bool,
    end: DateTime<Utc>,
    start: DateTime<Utc>,
    state: DeliveryState,
    attempts: u32,
    next_attempt: Option<DateTime<Utc>>,
    lease_until: Option<DateTime<Utc>>,
    missed_ticks: u32,
    capped: bool,
}

impl DigestRow {
    fn read(e: &Entity) -> Option<Self> {
        let end = DateTime::parse_from_rfc3339(get_str(e, "RowKey")).ok()?.with_timezone(&Utc);
        let state = match get_str(e, "State").trim() {
            s if s.eq_ignore_ascii_case("pending") || s.is_empty() => DeliveryState::Pending,
            s if s.eq_ignore_ascii_case("delivered") => DeliveryState::Delivered,
            s if s.eq_ignore_ascii_case("failed") => DeliveryState::Failed,
            // A word typed by hand never causes a send, as on lead rows.
            _ => DeliveryState::Unknown,
        };
        let number = |name: &str| e.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
        Some(DigestRow {
            stored: true,
            end,
            start: get_datetime(e, "PeriodStart").unwrap_or(end),
            state,
            attempts: number("Attempts"),
            next_attempt: get_datetime(e, "NextAttempt"),
            lease_until: get_datetime(e, "LeaseUntil"),
            missed_ticks: number("MissedTicks"),
            capped: e.get("Capped").and_then(serde_json::Value::as_bool).unwrap_or(false),
        })
    }

    fn due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending && self.next_attempt.is_none_or(|t| t <= now) && self.lease_until.is_none_or(|t| t <= now)
    }

    fn period(&self) -> Period {
        Period { start: self.start, end: self.end, missed_ticks: self.missed_ticks, capped: self.capped }
    }
}

/// The digest job, held by the [`Notifier`](super::Notifier).
pub struct Digest {
    leads: SharedTable,
    state: SharedTable,
    schedule: Schedule,
    /// A period's digest is sent this long after its tick, not at once (see `DigestSettings`).
    delay: chrono::Duration,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    max_attempts: u32,
    send_timeout: Duration,
    lease: Duration,
}

impl Digest {
    /// `None` when the digest is off (or its relay cannot be set up: logged as an ERROR naming
    /// the setting, and the rest of LeadNotify runs on, as with a misconfigured channel).
    pub fn new(settings: &Settings, leads: &SharedTable, state: &SharedTable) -> Option<Self> {
        let cfg = settings.channels.digest.as_ref()?;
        let built = smtp_transport(&cfg.email, settings.send_timeout).and_then(|transport| {
            let from = cfg.email.from.parse().map_err(|_| "NOTIFY_EMAIL_FROM is not an address".to_string())?;
            let to =
                cfg.email.to.iter().map(|a| a.parse()).collect::<Result<Vec<Mailbox>, _>>().map_err(|_| "NOTIFY_DIGEST_TO".to_string())?;
            Ok((transport, from, to))
        });
        let (transport, from, to) = match built {
            Ok(parts) => parts,
            Err(error) => {
                tracing::error!(setting = "SMTP_HOST", %error, "digest disabled: its SMTP relay cannot be set up");
                return None;
            }
        };
        Some(Digest {
            leads: leads.clone(),
            state: state.clone(),
            schedule: cfg.schedule.clone(),
            delay: chrono::Duration::from_std(cfg.delay).unwrap_or_default(),
            transport,
            from,
            to,
            max_attempts: settings.max_attempts,
            send_timeout: settings.send_timeout,
            lease: lease_for(settings.send_timeout, &settings.storage_retry),
        })
    }

    /// Sends the latest period's digest if it has none yet, and retries earlier ones that are
    /// due. Storage errors are counted in the report's `errors` and logged; nothing is claimed
    /// that is not also recorded or left to its lease.
    pub async fn run(&self, now: DateTime<Utc>, report: &mut PollReport) {
        if let Err(e) = self.run_inner(now, report).await {
            report.errors += 1;
            tracing::error!(error = %e, "digest: storage error; the digest is tried again on the next run");
        }
    }

    async fn run_inner(&self, now: DateTime<Utc>, report: &mut PollReport) -> Result<(), StoreError> {
        // The latest period whose delay has run out: a lead created just before the tick has
        // been written by then, so no lead falls between two digests.
        let Some(end) = self.schedule.last_at_or_before(now - self.delay) else { return Ok(()) };
        let since = row_key(end - chrono::Duration::days(MAX_PERIOD_DAYS as i64 + 1));
        let previous_tick = self.schedule.last_at_or_before(end - chrono::Duration::seconds(1));
        // Only the rows this run may act on: this period's and the previous one's, and any still
        // pending. A frequent schedule (every minute) makes thousands of rows a month; they stay
        // on the server.
        let filter = Filter::eq("PartitionKey", DIGEST_PK)
            .and(Filter::text("RowKey", Op::Ge, &since))
            .and(Filter::text("RowKey", Op::Ge, &row_key(previous_tick.unwrap_or(end))).or(Filter::eq("State", "pending")));
        let rows: Vec<DigestRow> = self.state.query(&Query::filter(filter), usize::MAX).await?.iter().filter_map(DigestRow::read).collect();

        let mut todo: Vec<DigestRow> = Vec::new();
        if !rows.iter().any(|r| r.end == end) {
            let mut last_digest = rows.iter().map(|r| r.end).filter(|e| *e < end).max();
            if last_digest.is_none() {
                // The previous tick got no digest (downtime, or a first deployment): where did
                // the last one end? Read once per such tick, keys only.
                let filter = Filter::eq("PartitionKey", DIGEST_PK).and(Filter::text("RowKey", Op::Ge, &since)).and(Filter::text(
                    "RowKey",
                    Op::Lt,
                    &row_key(end),
                ));
                let keys = self.state.query(&Query::filter(filter).select(&["PartitionKey", "RowKey"]), usize::MAX).await?;
                last_digest = keys
                    .iter()
                    .filter_map(|e| DateTime::parse_from_rfc3339(get_str(e, "RowKey")).ok())
                    .map(|d| d.with_timezone(&Utc))
                    .max();
            }
            todo.push(self.new_period(end, previous_tick, last_digest));
        }
        let mut retries: Vec<DigestRow> = rows.into_iter().filter(|r| r.due(now)).collect();
        retries.sort_by_key(|r| std::cmp::Reverse(r.end));
        todo.extend(retries.into_iter().take(MAX_RETRIES_PER_RUN));

        let mut first_error = None;
        for row in todo {
            if let Err(e) = self.attempt(row, report).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Leads created after this time are still to be listed by a digest, so retention keeps
    /// them: the start of the oldest period still pending (within the retry window), else the
    /// start of the period whose tick has not yet come round (the latest tick, less the delay).
    pub async fn needs_leads_since(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        let open = self.schedule.last_at_or_before(now - self.delay).unwrap_or(now);
        let filter = Filter::eq("PartitionKey", DIGEST_PK)
            .and(Filter::text("RowKey", Op::Ge, &row_key(now - chrono::Duration::days(MAX_PERIOD_DAYS as i64 + 1))))
            .and(Filter::eq("State", "pending"));
        let pending = self.state.query(&Query::filter(filter), usize::MAX).await?;
        Ok(pending.iter().filter_map(DigestRow::read).map(|r| r.start).fold(open, DateTime::min))
    }

    /// The period ending at `end`, not yet claimed: from the previous digest's end (covering any
    /// ticks that got none), else from the previous tick (first deployment: no backfill).
    fn new_period(&self, end: DateTime<Utc>, previous_tick: Option<DateTime<Utc>>, last_digest: Option<DateTime<Utc>>) -> DigestRow {
        let mut start = last_digest.or(previous_tick).unwrap_or(end - chrono::Duration::days(1));
        let mut missed_ticks = 0;
        if let (Some(last), Some(prev)) = (last_digest, previous_tick) {
            let mut t = last;
            while let Some(next) = self.schedule.next_after(t).filter(|n| *n <= prev) {
                missed_ticks += 1;
                t = next;
            }
        }
        let floor = end - chrono::Duration::days(MAX_PERIOD_DAYS as i64);
        let capped = start < floor;
        if capped {
            start = floor;
        }
        DigestRow {
            stored: false,
            end,
            start,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt: None,
            lease_until: None,
            missed_ticks,
            capped,
        }
    }

    /// Reads the period's leads, claims the period, sends, records.
    async fn attempt(&self, row: DigestRow, report: &mut PollReport) -> Result<(), StoreError> {
        // Read first: a storage failure here costs nothing, no claim is left behind.
        let lines = self.leads_of(row.start, row.end).await?;
        let rk = row_key(row.end);
        let Some(etag) = self.claim(&row, &rk).await? else {
            report.digest.busy += 1;
            return Ok(());
        };

        let message = DigestMessage::new(&row.period(), &lines);
        let id = self.message_id(row.end);
        let outcome = match tokio::time::timeout(self.send_timeout, self.send(&message, &id)).await {
            Ok(outcome) => outcome,
            Err(_) => SendOutcome::Retry {
                error: DeliveryError::new(format!("Digest: no answer within {} s (timed out)", self.send_timeout.as_secs())),
                after: None,
            },
        };

        let done_at = Utc::now();
        let attempts = row.attempts + 1;
        let mut result = Entity::new();
        result.insert("Attempts".into(), json!(attempts));
        result.insert("Leads".into(), json!(lines.len()));
        // Releases the claim in the same write.
        put_datetime(&mut result, "LeaseUntil", done_at);
        let period = format!("{} – {}", row.start.to_rfc3339_opts(SecondsFormat::Secs, true), rk);
        let state = match outcome {
            SendOutcome::Delivered => {
                report.digest.sent += 1;
                put_datetime(&mut result, "DeliveredAt", done_at);
                result.insert("LastError".into(), "".into());
                tracing::info!(period, leads = lines.len(), attempts, "digest sent");
                DeliveryState::Delivered
            }
            SendOutcome::Retry { error, after } if attempts < self.max_attempts => {
                report.digest.retrying += 1;
                let wait = retry_delay(attempts, after);
                put_datetime(&mut result, "NextAttempt", done_at + wait);
                tracing::warn!(period, attempts, error = %error, retry_in_s = wait.as_secs(), "digest failed, will retry");
                result.insert("LastError".into(), error.for_table().into());
                DeliveryState::Pending
            }
            // E-mail never skips; were it to, the digest is not sent, so it has failed.
            SendOutcome::Retry { error, .. } | SendOutcome::Permanent(error) | SendOutcome::Skipped(error) => {
                report.digest.failed += 1;
                tracing::error!(period, attempts, error = %error, "digest failed for good: see `handler leads status`");
                result.insert("LastError".into(), error.for_table().into());
                DeliveryState::Failed
            }
        };
        result.insert("State".into(), state.as_str().into());
        match self.state.merge(DIGEST_PK, &rk, &result, &etag).await {
            Ok(_) => Ok(()),
            Err(StoreError::Changed) => {
                tracing::warn!(
                    period,
                    "digest row changed while sending (lease expired?): outcome not recorded, a repeat with the same Message-ID may follow"
                );
                Ok(())
            }
            // The row keeps its lease and pending state: a run after the lease sends again.
            Err(e) => Err(e),
        }
    }

    /// Claims the period; its ETag when this run has it, `None` when another run does.
    async fn claim(&self, row: &DigestRow, rk: &str) -> Result<Option<String>, StoreError> {
        let now = Utc::now();
        let claim_id = uuid::Uuid::new_v4().to_string();
        let mut claim = Entity::new();
        put_datetime(&mut claim, "LeaseUntil", now + self.lease);
        claim.insert("ClaimId".into(), claim_id.clone().into());
        if !row.stored {
            // A new period: whoever inserts its row first has it.
            let mut entity = claim;
            entity.insert("PartitionKey".into(), DIGEST_PK.into());
            entity.insert("RowKey".into(), rk.into());
            entity.insert("State".into(), DeliveryState::Pending.as_str().into());
            entity.insert("Attempts".into(), json!(0));
            put_datetime(&mut entity, "PeriodStart", row.start);
            entity.insert("MissedTicks".into(), json!(row.missed_ticks));
            entity.insert("Capped".into(), json!(row.capped));
            entity.insert("MessageId".into(), self.message_id(row.end).into());
            match self.state.insert(&entity).await {
                Ok(()) => {}
                Err(StoreError::AlreadyExists) => return Ok(None),
                Err(e) => return Err(e),
            }
            // A retried insert reports success when it finds the row taken (its first attempt
            // may have landed unheard): the claim id read back says whose row it is.
            return match self.state.get(DIGEST_PK, rk).await? {
                Some((e, etag)) if get_str(&e, "ClaimId") == claim_id => Ok(Some(etag)),
                _ => Ok(None),
            };
        }
        // A retry: the row as it stands now, claimed only if still due and unleased.
        let Some((entity, etag)) = self.state.get(DIGEST_PK, rk).await? else { return Ok(None) };
        if !DigestRow::read(&entity).is_some_and(|r| r.due(now)) {
            return Ok(None);
        }
        match self.state.merge(DIGEST_PK, rk, &claim, &etag).await {
            Ok(etag) => Ok(Some(etag)),
            Err(StoreError::Changed | StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The period's leads, oldest first, test leads left out: the date partitions from the
    /// start's date to the day after the end (a row written just after midnight may carry the
    /// next date), filtered by `CreatedTime` in (start, end].
    async fn leads_of(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<DigestLine>, StoreError> {
        let first: NaiveDate = start.date_naive();
        let last = end.date_naive() + Days::new(1);
        let mut leads: Vec<Lead> = Vec::new();
        let mut date = first;
        while date <= last {
            for e in self.leads.query(&Query::partition(&partition_key_for(date)), usize::MAX).await? {
                let lead = Lead::from_entity(&e);
                if lead.created.is_some_and(|t| t > start && t <= end) && !lead.is_test() {
                    leads.push(lead);
                }
            }
            date = date + Days::new(1);
        }
        leads.sort_by_key(|l| l.created);
        Ok(leads.iter().map(DigestLine::from_lead).collect())
    }

    /// Stable per period and table: a repeat after a crash carries the same id, so a mail
    /// client or archive can drop it.
    fn message_id(&self, end: DateTime<Utc>) -> String {
        let digest = Sha256::digest(format!("{}\n{}", self.leads.name(), row_key(end)).as_bytes());
        format!("<digest_{}@marketplace-leads>", hex(&digest[..12]))
    }

    async fn send(&self, message: &DigestMessage, id: &str) -> SendOutcome {
        // Recipients come from settings only; the subject holds counts and times, no lead text.
        let mut builder = Message::builder().from(self.from.clone()).subject(message.subject.clone()).message_id(Some(id.to_string()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        match builder.multipart(MultiPart::alternative_plain_html(message.plain.clone(), message.html.clone())) {
            Ok(email) => deliver(&self.transport, email).await,
            Err(e) => SendOutcome::Permanent(DeliveryError::new(format!("could not build the digest: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn row_keys_sort_as_times() {
        assert_eq!(row_key(at("2026-11-22T08:00:00.123Z")), "2026-11-22T08:00:00Z");
        assert!(row_key(at("2026-11-22T08:00:00Z")) < row_key(at("2026-11-22T09:00:00Z")));
    }
}
