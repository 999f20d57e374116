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

use chrono::{DateTime, SecondsFormat, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, Message, Tokio1Executor};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::claim::{claim, decide, lease_for, Verdict};
use super::digest_message::{DigestLine, DigestMessage, Period, MAX_PERIOD_DAYS};
use super::discovery::{arrival, Discovery};
use super::email::{deliver, smtp_transport};
use super::notify_table::{digest_row_key, DigestRow, NotifyTable, DIGEST_PK};
use super::report::PollReport;
use super::transport::{DeliveryError, SendOutcome};
use crate::clock::Clock;
use crate::entity::put_datetime;
use crate::lead::Lead;
use crate::schedule::Schedule;
use crate::settings::Settings;
use crate::store::{SharedTable, StoreError};
use crate::text::hex;

fn period_of(row: &DigestRow) -> Period {
    Period { start: row.start, end: row.end, missed_ticks: row.missed_ticks, capped: row.capped }
}

/// Digests still pending from earlier periods retried in one run at most.
const MAX_RETRIES_PER_RUN: usize = 3;

/// The digest job, held by the [`Notifier`](super::Notifier).
pub struct Digest {
    discovery: Discovery,
    table_name: String,
    state: NotifyTable,
    clock: Clock,
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
    pub fn new(settings: &Settings, leads: &SharedTable, state: &NotifyTable, clock: Clock) -> Option<Self> {
        let cfg = settings.channels.digest.as_ref()?;
        let built = smtp_transport(&cfg.email, settings.notify.send_timeout).and_then(|transport| {
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
            discovery: Discovery::new(leads),
            table_name: leads.name().to_string(),
            state: state.clone(),
            clock,
            schedule: cfg.schedule.clone(),
            delay: chrono::Duration::from_std(cfg.delay).unwrap_or_default(),
            transport,
            from,
            to,
            max_attempts: settings.notify.max_attempts,
            send_timeout: settings.notify.send_timeout,
            lease: lease_for(settings.notify.send_timeout, &settings.storage.retry),
        })
    }

    /// Sends the latest period's digest if it has none yet, and retries earlier ones that are
    /// due. Storage errors are counted in the report's `errors` and logged; nothing is claimed
    /// that is not also recorded or left to its lease.
    pub async fn run(&self, report: &mut PollReport) {
        if let Err(e) = self.run_inner(self.clock.now(), report).await {
            report.errors += 1;
            tracing::error!(error = %e, "digest: storage error; the digest is tried again on the next run");
        }
    }

    async fn run_inner(&self, now: DateTime<Utc>, report: &mut PollReport) -> Result<(), StoreError> {
        // The latest period whose delay has run out: a lead created just before the tick has
        // been written by then, so no lead falls between two digests.
        let Some(end) = self.schedule.last_at_or_before(now - self.delay) else { return Ok(()) };
        let since = end - chrono::Duration::days(MAX_PERIOD_DAYS as i64 + 1);
        let previous_tick = self.schedule.last_at_or_before(end - chrono::Duration::seconds(1));
        let rows = self.state.digest_rows(since, previous_tick.unwrap_or(end)).await?;

        let mut todo: Vec<DigestRow> = Vec::new();
        if !rows.iter().any(|r| r.end == end) {
            // Where did the last digest end? Every row counts, sent or pending: a period is
            // never listed twice. Keys only, and only when the previous tick has no row.
            let mut last_digest = previous_tick.filter(|p| rows.iter().any(|r| r.end == *p));
            if last_digest.is_none() {
                last_digest = self.state.last_digest_end(since, end).await?;
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
        DigestRow::unclaimed(start, end, missed_ticks, capped)
    }

    /// Reads the period's leads, claims the period, sends, records.
    async fn attempt(&self, row: DigestRow, report: &mut PollReport) -> Result<(), StoreError> {
        // Read first: a storage failure here costs nothing, no claim is left behind.
        let lines = self.leads_of(row.start, row.end).await?;
        let rk = digest_row_key(row.end);
        let Some(etag) = self.claim(&row, &rk).await? else {
            report.digest.busy += 1;
            return Ok(());
        };

        let message = DigestMessage::new(&period_of(&row), &lines);
        let id = self.message_id(row.end);
        let outcome = match tokio::time::timeout(self.send_timeout, self.send(&message, &id)).await {
            Ok(outcome) => outcome,
            Err(_) => SendOutcome::Retry {
                error: DeliveryError::new(format!("Digest: no answer within {} s (timed out)", self.send_timeout.as_secs())),
                after: None,
            },
        };

        let done_at = self.clock.now();
        let attempts = row.attempts + 1;
        // E-mail never skips; were it to, the digest is not sent, so it has failed.
        let verdict = decide(outcome, attempts, self.max_attempts, false);
        let mut result = verdict.record("", attempts, done_at);
        result.insert("Leads".into(), json!(lines.len()));
        // Releases the claim in the same write.
        put_datetime(&mut result, "LeaseUntil", done_at);
        let period = format!("{} – {}", row.start.to_rfc3339_opts(SecondsFormat::Secs, true), rk);
        match &verdict {
            Verdict::Delivered => {
                report.digest.sent += 1;
                tracing::info!(period, leads = lines.len(), attempts, "digest sent");
            }
            Verdict::Retry { error, wait } => {
                report.digest.retrying += 1;
                tracing::warn!(period, attempts, error = %error, retry_in_s = wait.as_secs(), "digest failed, will retry");
            }
            Verdict::Skipped(error) | Verdict::Failed(error) => {
                report.digest.failed += 1;
                tracing::error!(period, attempts, error = %error, "digest failed for good: see `handler leads status`");
            }
        }
        match self.state.table().merge(DIGEST_PK, &rk, &result, &etag).await {
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
        let now = self.clock.now();
        let claim_id = uuid::Uuid::new_v4().to_string();
        let claim_row = NotifyTable::digest_claim(now + self.lease, &claim_id);
        let table = self.state.table();
        if !row.stored {
            // A new period: whoever inserts its row first has it.
            match table.insert(&row.new_entity(claim_row, &self.message_id(row.end))).await {
                Ok(()) => {}
                Err(StoreError::AlreadyExists) => return Ok(None),
                Err(e) => return Err(e),
            }
            // A retried insert reports success when it finds the row taken (its first attempt
            // may have landed unheard): the claim id read back says whose row it is.
            return match table.get(DIGEST_PK, rk).await? {
                Some((e, etag)) if NotifyTable::claim_id_of(&e) == claim_id => Ok(Some(etag)),
                _ => Ok(None),
            };
        }
        // A retry: the row as it stands now, claimed only if still due and unleased.
        let Some((entity, etag)) = table.get(DIGEST_PK, rk).await? else { return Ok(None) };
        if !DigestRow::read(&entity).is_some_and(|r| r.due(now)) {
            return Ok(None);
        }
        claim(&**table, DIGEST_PK, rk, &claim_row, &etag).await
    }

    /// The period's leads, oldest first, test leads left out: every lead that arrived in
    /// (start, end], found as the per-lead channels find them (date partitions and rows written
    /// since, whatever their keys).
    async fn leads_of(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<DigestLine>, StoreError> {
        let rows = self.discovery.arrived_between(start, end).await?;
        Ok(rows
            .iter()
            .map(|row| (Lead::from_entity(row), arrival(row)))
            .filter(|(l, _)| !l.is_test())
            .map(|(l, arrived)| DigestLine { arrived: arrived.or(l.created), ..DigestLine::from_lead(&l) })
            .collect())
    }

    /// Stable per period and table: a repeat after a crash carries the same id, so a mail
    /// client or archive can drop it.
    fn message_id(&self, end: DateTime<Utc>) -> String {
        let digest = Sha256::digest(format!("{}\n{}", self.table_name, digest_row_key(end)).as_bytes());
        format!("<digest_{}@marketplace-leads>", hex(&digest[..12]))
    }

    async fn send(&self, message: &DigestMessage, id: &str) -> SendOutcome {
        // Recipients come from settings only; the subject holds counts and times, no lead text.
        let mut builder = Message::builder().from(self.from.clone()).subject(message.subject.clone()).message_id(Some(id.to_string()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        // An HTML part that could not be drawn is left out, not sent empty (a blank mail).
        let built = if message.html.is_empty() {
            builder.singlepart(SinglePart::plain(message.plain.clone()))
        } else {
            builder.multipart(body(message))
        };
        match built {
            Ok(email) => deliver(&self.transport, email).await,
            Err(e) => SendOutcome::Permanent(DeliveryError::new(format!("could not build the digest: {e}"))),
        }
    }
}

/// `multipart/alternative` { text/plain, text/html }, or with a chart, { text/plain,
/// `multipart/related` { text/html, image/png inline with the Content-ID its `<img>` names } }.
fn body(message: &DigestMessage) -> MultiPart {
    let (Some(chart), Ok(png_type)) = (&message.chart, ContentType::parse("image/png")) else {
        return MultiPart::alternative_plain_html(message.plain.clone(), message.html.clone());
    };
    let png = Attachment::new_inline(chart.content_id.clone()).body(chart.png.clone(), png_type);
    MultiPart::alternative()
        .singlepart(SinglePart::plain(message.plain.clone()))
        .multipart(MultiPart::related().singlepart(SinglePart::html(message.html.clone())).singlepart(png))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn row_keys_sort_as_times() {
        assert_eq!(digest_row_key(at("2026-11-22T08:00:00.123Z")), "2026-11-22T08:00:00Z");
        assert!(digest_row_key(at("2026-11-22T08:00:00Z")) < digest_row_key(at("2026-11-22T09:00:00Z")));
    }
}
