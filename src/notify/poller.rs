//! The LeadNotify run: find leads with work, claim each, send its due channels, record each
//! channel's outcome on the row.
//!
//! How a run finds work, in two ways:
//! - **Fast path**, every run: both routes partition leads by date (`M:2FD:2FYYYY`), so a run
//!   reads the date partitions from a stored cursor (the oldest date that may still hold
//!   unfinished work, at most yesterday) to tomorrow. Its cost grows with the leads of those
//!   few days, never with the table.
//! - **Safety net**, every `NOTIFY_SWEEP_MINUTES`: Microsoft does not document its row format,
//!   so a row may carry any keys. The sweep reads every row written (service-set `Timestamp`)
//!   since its own cursor, which never passes a row still unfinished and overlaps the previous
//!   sweep by [`SWEEP_OVERLAP`]. On a first deployment it starts [`FIRST_SWEEP_LOOKBACK`] back,
//!   as the fast path starts at yesterday: older history is not notified (no storm).
//!
//! A lead pending longer than [`MAX_PENDING_DAYS`] (the notifier was off for a month, a
//! channel stayed misconfigured) is ended visibly: `failed` with the reason, logged at ERROR.
//!
//! A lead is claimed with an ETag-guarded MERGE that sets the lease, so two overlapping runs
//! cannot both send it. Each channel's outcome is written as soon as that channel is done
//! (the ETag chain continues from the claim), so a slow channel never holds back another's
//! record; the last write releases the lease. A crash after sending and before recording
//! leaves the lease to expire, and the next run sends again with the same id: at most a repeat,
//! never a lost lead. A storage error on one lead is reported and leaves that lead unfinished;
//! the others are still recorded, and the cursors never move past it.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use futures_util::stream::{self, FuturesUnordered, StreamExt};
use serde_json::json;

use super::channels::Channels;
use super::delivery::{
    lease_for, notification_id, scan_columns, Channel, ChannelRecord, Column, DeliveryState, CUSTOMER_COLUMN, ID_COLUMN, JOURNEY_COLUMNS,
    LEASE_COLUMN,
};
use super::digest::Digest;
use super::journey::Journey;
use super::message::LeadMessage;
use super::report::PollReport;
use super::retention::Retention;
use super::retry::retry_delay;
use super::transport::SendOutcome;
use crate::entity::{get_datetime, get_str, put_datetime, Entity};
use crate::lead::{partition_key_for, CustomerId, Lead};
use crate::settings::Settings;
use crate::store::{Filter, Op, Query, SharedTable, StoreError};

/// Leads handled by one run at most; the rest wait for the next tick.
const MAX_LEADS_PER_RUN: usize = 200;
/// Leads handled at once within a run.
const CONCURRENCY: usize = 8;
/// Date partitions one run reads at most behind yesterday (a cursor far behind catches up over
/// several runs).
const MAX_DAYS_PER_RUN: u64 = 31;
/// A lead still pending this many days after it arrived is marked failed.
pub const MAX_PENDING_DAYS: i64 = 31;
/// How far back each sweep re-reads before its cursor (`Timestamp` precision, clock skew,
/// writes in flight while the previous sweep read).
pub const SWEEP_OVERLAP: Duration = Duration::from_secs(5 * 60);
/// Where the very first sweep starts: history older than this is not notified.
pub const FIRST_SWEEP_LOOKBACK: Duration = Duration::from_secs(24 * 60 * 60);

const CURSOR_PK: &str = "cursor";
const CURSOR_RK: &str = "scan-from";
const SWEEP_RK: &str = "sweep";

/// The notifier's own small table beside the lead table, `<LEADS_TABLE>Notify`: the cursors, the
/// digest periods, the retention's last run.
pub fn state_table(leads: &SharedTable) -> SharedTable {
    leads.with_table(&format!("{}Notify", leads.name()))
}

/// A row the scan found with at least one watched channel still pending.
struct ScanRow {
    /// The date partition it was read from (fast path); `None` when only the sweep found it.
    date: Option<NaiveDate>,
    partition_key: String,
    row_key: String,
    /// When the row was last written (service `Timestamp`; sweep only): the sweep's cursor, and
    /// the age of a lead nobody has touched since it arrived.
    written: Option<DateTime<Utc>>,
    /// A sendable channel is due now and no live lease holds the row.
    due: bool,
    /// Not yet in the customer journey index: the customer and the lead to index.
    to_index: Option<(CustomerId, Lead)>,
}

impl ScanRow {
    fn key(&self) -> (String, String) {
        (self.partition_key.clone(), self.row_key.clone())
    }

    /// Pending since before `limit`: by its date partition, or (found by the sweep only) by its
    /// last write. Never by `CreatedTime`, which a row may carry in any shape.
    fn pending_since_before(&self, limit: DateTime<Utc>) -> bool {
        match self.date {
            Some(d) => d < limit.date_naive(),
            None => self.written.is_some_and(|w| w < limit),
        }
    }
}

/// What handling one lead came to.
enum LeadOutcome {
    /// Another run holds it, or nothing was due after all.
    Busy,
    Done {
        delivered: u32,
        retrying: u32,
        failed: u32,
        skipped: u32,
        /// No watched channel is left pending on this lead.
        finished: bool,
    },
}

/// The LeadNotify job.
pub struct Notifier {
    leads: SharedTable,
    /// The notifier's own small table (`<LEADS_TABLE>Notify`): the cursors.
    state: SharedTable,
    channels: Channels,
    /// Sendable channels plus misconfigured ones, whose leads must stay pending (unfinished)
    /// until the setting is fixed.
    watched: Vec<Channel>,
    max_attempts: u32,
    notify_test_leads: bool,
    lease: Duration,
    sweep_every: Duration,
    running: tokio::sync::Mutex<()>,
    /// `NOTIFY_DIGEST_TO`: one summary per period, beside the per-lead channels.
    digest: Option<Digest>,
    /// The customer journey index (`NOTIFY_JOURNEY`, on by default).
    journey: Option<Journey>,
    /// `LEADS_RETENTION_DAYS`: old leads deleted once a day.
    retention: Option<Retention>,
}

impl Notifier {
    /// `leads` should be a client of its own, so its transaction count is this job's alone.
    pub fn new(settings: &Settings, leads: SharedTable) -> Result<Self, String> {
        let channels = Channels::new(&settings.channels, settings.send_timeout)?;
        let watched = Channel::watched(&settings.channels);
        let state = state_table(&leads);
        let digest = Digest::new(settings, &leads, &state);
        let leads_for_journey = leads.clone();
        let retention = Retention::new(settings, &leads, &state, &watched);
        Ok(Notifier {
            leads,
            state,
            channels,
            watched,
            max_attempts: settings.max_attempts,
            notify_test_leads: settings.notify_test_leads,
            lease: lease_for(settings.send_timeout, &settings.storage_retry),
            sweep_every: settings.sweep_every,
            running: tokio::sync::Mutex::new(()),
            digest,
            journey: settings.journey.then(|| Journey::new(&leads_for_journey)),
            retention,
        })
    }

    /// The channels that send.
    pub fn channels(&self) -> &[Channel] {
        self.channels.active()
    }

    /// One poll. Overlapping calls in this process skip instead of queueing; overlapping runs
    /// in other processes are kept apart by the ETag claim. Storage errors do not stop the run:
    /// they are counted in `errors` and logged.
    #[tracing::instrument(name = "lead_notify", skip_all)]
    pub async fn run_once(&self) -> PollReport {
        let Ok(_guard) = self.running.try_lock() else {
            return PollReport { overlapped: true, ..Default::default() };
        };
        self.run_locked().await
    }

    /// A run right after LeadIngest stored a lead: waits for a run in progress to finish rather
    /// than skipping (that run may have scanned before the new lead was written).
    #[tracing::instrument(name = "lead_notify_now", skip_all)]
    pub async fn run_after_ingest(&self) -> PollReport {
        let _guard = self.running.lock().await;
        self.run_locked().await
    }

    async fn run_locked(&self) -> PollReport {
        // `state` shares `leads`' counter (same client, other table).
        let start = self.leads.transactions();
        let mut report = PollReport::default();
        if !self.watched.is_empty() {
            self.poll(Utc::now(), &mut report).await;
        }
        let mut digest_recorded = true;
        if let Some(digest) = &self.digest {
            let errors = report.errors;
            digest.run(Utc::now(), &mut report).await;
            digest_recorded = report.errors == errors;
        }
        // Not after a digest step that failed on storage: its period may not be recorded yet,
        // and retention keeps only what recorded periods still need.
        if let (Some(retention), true) = (&self.retention, digest_recorded) {
            retention.run(Utc::now(), self.digest.as_ref(), &mut report).await;
        }
        report.transactions = self.leads.transactions() - start;
        if report.errors > 0 {
            tracing::error!(%report, "LeadNotify run had storage errors: the leads concerned stay pending for the next run");
        } else if report.claimed > 0 || report.failed > 0 || report.expired > 0 {
            tracing::info!(%report, "LeadNotify run");
        } else {
            tracing::debug!(%report, "LeadNotify run");
        }
        report
    }

    async fn poll(&self, now: DateTime<Utc>, report: &mut PollReport) {
        let today = now.date_naive();
        let floor = today - Days::new(1);

        // Fast path: the date partitions from the cursor.
        let cursor = match self.read_date_cursor().await {
            Ok(c) => c,
            Err(e) => return self.store_error(report, "reading the notifier's cursor", &e),
        };
        let scan_from = cursor.map_or(floor, |d| d.min(floor));
        let mut dates: Vec<NaiveDate> =
            (0..MAX_DAYS_PER_RUN).filter_map(|i| scan_from.checked_add_days(Days::new(i))).filter(|d| *d < floor).collect();
        dates.extend([floor, today, today + Days::new(1)]);
        let mut rows = Vec::new();
        let mut fast_path_complete = true;
        for date in &dates {
            match self.scan_partition(*date, now, report).await {
                Ok(found) => rows.extend(found),
                Err(e) => {
                    fast_path_complete = false;
                    self.store_error(report, "reading a date partition", &e);
                }
            }
        }

        // Safety net: every row written since the sweep cursor, whatever its keys.
        let sweep = match self.sweep_due(now).await {
            Ok(s) => s,
            Err(e) => {
                self.store_error(report, "reading the sweep cursor", &e);
                None
            }
        };
        let mut sweep_complete = false;
        if let Some(sweep_from) = sweep {
            report.swept = true;
            match self.sweep(sweep_from, now, report).await {
                Ok(found) => {
                    sweep_complete = true;
                    let seen: HashSet<(String, String)> = rows.iter().map(ScanRow::key).collect();
                    rows.extend(found.into_iter().filter(|r| !seen.contains(&r.key())));
                }
                Err(e) => self.store_error(report, "sweeping the table", &e),
            }
        }
        report.unfinished = rows.len() as u32;

        // End leads pending for too long, then handle the due ones.
        let too_old = now - chrono::Duration::days(MAX_PENDING_DAYS);
        let mut finished: HashSet<(String, String)> = HashSet::new();
        for row in rows.iter().filter(|r| r.pending_since_before(too_old)) {
            match self.expire(&row.partition_key, &row.row_key, now).await {
                Ok(true) => {
                    report.expired += 1;
                    finished.insert(row.key());
                }
                Ok(false) => {}
                Err(e) => self.store_error(report, "ending a lead pending too long", &e),
            }
        }
        let due: Vec<&ScanRow> = rows.iter().filter(|r| r.due && !finished.contains(&r.key())).take(MAX_LEADS_PER_RUN).collect();
        // Every lead about to be handled is in the customer index before any is sent, so two
        // leads of one customer in this run each see the other, whatever order they go in.
        let mut indexed: HashSet<(String, String)> = HashSet::new();
        if let Some(journey) = &self.journey {
            let leads: Vec<(&CustomerId, &Lead, &str, &str)> = due
                .iter()
                .filter_map(|r| r.to_index.as_ref().map(|(customer, lead)| (customer, lead, r.partition_key.as_str(), r.row_key.as_str())))
                .collect();
            for (key, result) in journey.record_all(leads, CONCURRENCY).await {
                match result {
                    Ok(()) => {
                        indexed.insert(key);
                    }
                    // The notification still goes (process() tries the index once more).
                    Err(e) => self.store_error(report, "indexing a lead in the customer journey", &e),
                }
            }
        }
        let due: Vec<(String, String, bool)> = due
            .into_iter()
            .map(|r| {
                let (pk, rk) = r.key();
                let done = indexed.contains(&(pk.clone(), rk.clone()));
                (pk, rk, done)
            })
            .collect();
        let outcomes: Vec<((String, String), Result<LeadOutcome, StoreError>)> = stream::iter(due)
            .map(|(pk, rk, indexed)| async move {
                let outcome = self.process(&pk, &rk, indexed).await;
                ((pk, rk), outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (key, outcome) in outcomes {
            match outcome {
                Ok(LeadOutcome::Busy) => report.busy += 1,
                Ok(LeadOutcome::Done { delivered, retrying, failed, skipped, finished: all_final }) => {
                    report.claimed += 1;
                    report.delivered += delivered;
                    report.retrying += retrying;
                    report.failed += failed;
                    report.skipped += skipped;
                    if all_final {
                        finished.insert(key);
                    }
                }
                Err(e) => self.store_error(report, "notifying a lead", &e),
            }
        }

        // Move the cursors, never past a lead still unfinished (or one whose run failed).
        let unfinished = || rows.iter().filter(|r| !finished.contains(&r.key()));
        if fast_path_complete {
            let next_from = unfinished().filter_map(|r| r.date).min().map_or(floor, |d| d.min(floor));
            if Some(next_from) != cursor {
                if let Err(e) = self.write_state(CURSOR_RK, "ScanFrom", json!(next_from.to_string())).await {
                    self.store_error(report, "writing the cursor", &e);
                }
            }
        }
        if let (Some(sweep_from), true) = (sweep, sweep_complete) {
            let overlap = chrono::Duration::from_std(SWEEP_OVERLAP).unwrap_or_default();
            let oldest_open = unfinished().filter(|r| r.date.is_none()).filter_map(|r| r.written).min();
            let next = oldest_open.map_or(now - overlap, |w| w.min(now - overlap)).max(sweep_from);
            let mut e = Entity::new();
            put_datetime(&mut e, "SweepFrom", next);
            put_datetime(&mut e, "LastSweep", now);
            if let Err(err) = self.write_state_entity(SWEEP_RK, e).await {
                self.store_error(report, "writing the sweep cursor", &err);
            }
        }
    }

    fn store_error(&self, report: &mut PollReport, doing: &str, e: &StoreError) {
        report.errors += 1;
        tracing::error!(error = %e, "LeadNotify: storage error while {doing}; the leads concerned stay pending");
    }

    /// The unfinished rows of one date partition.
    async fn scan_partition(&self, date: NaiveDate, now: DateTime<Utc>, report: &mut PollReport) -> Result<Vec<ScanRow>, StoreError> {
        let query = Query::partition(&partition_key_for(date)).select(&self.scan_select());
        let rows = self.leads.query(&query, usize::MAX).await?;
        report.partitions_read += 1;
        report.rows_read += rows.len() as u32;
        Ok(rows.iter().filter_map(|row| self.unfinished_row(row, Some(date), now)).collect())
    }

    /// The unfinished rows written since `from`, whatever their keys.
    async fn sweep(&self, from: DateTime<Utc>, now: DateTime<Utc>, report: &mut PollReport) -> Result<Vec<ScanRow>, StoreError> {
        let mut select = self.scan_select();
        select.push("Timestamp".into());
        let rows = self.leads.query(&Query::filter(Filter::time("Timestamp", Op::Ge, from)).select(&select), usize::MAX).await?;
        report.sweep_rows_read += rows.len() as u32;
        Ok(rows.iter().filter_map(|row| self.unfinished_row(row, None, now)).collect())
    }

    /// The columns a scan reads: the channels' state, and what indexing needs when the journey is on.
    fn scan_select(&self) -> Vec<String> {
        let mut select = scan_columns(&self.watched);
        if self.journey.is_some() {
            select.extend(JOURNEY_COLUMNS.split(',').map(str::to_string));
        }
        select
    }

    fn unfinished_row(&self, row: &Entity, date: Option<NaiveDate>, now: DateTime<Utc>) -> Option<ScanRow> {
        let records: Vec<(Channel, ChannelRecord)> = self.watched.iter().map(|c| (*c, ChannelRecord::read(row, *c))).collect();
        if records.iter().all(|(_, r)| r.state != DeliveryState::Pending) {
            return None;
        }
        let leased = get_datetime(row, LEASE_COLUMN).is_some_and(|t| t > now);
        let due = !leased && records.iter().any(|(c, r)| self.channels().contains(c) && r.is_due(now));
        Some(ScanRow {
            date,
            partition_key: get_str(row, "PartitionKey").to_string(),
            row_key: get_str(row, "RowKey").to_string(),
            written: get_datetime(row, "Timestamp"),
            due,
            to_index: self.journey.as_ref().filter(|_| get_str(row, CUSTOMER_COLUMN).is_empty()).and_then(|_| {
                let lead = Lead::from_entity(row);
                lead.customer_id().map(|c| (c, lead))
            }),
        })
    }

    /// `Some(from)` when a sweep is due now.
    async fn sweep_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = self.state.get(CURSOR_PK, SWEEP_RK).await?.map(|(e, _)| e);
        let lookback = chrono::Duration::from_std(FIRST_SWEEP_LOOKBACK).unwrap_or_default();
        let Some(row) = row else { return Ok(Some(now - lookback)) };
        let every = chrono::Duration::from_std(self.sweep_every).unwrap_or_default();
        let last = get_datetime(&row, "LastSweep");
        if last.is_some_and(|t| now - t < every) {
            return Ok(None);
        }
        Ok(Some(get_datetime(&row, "SweepFrom").unwrap_or(now - lookback)))
    }

    async fn read_date_cursor(&self) -> Result<Option<NaiveDate>, StoreError> {
        let row = self.state.get(CURSOR_PK, CURSOR_RK).await?;
        Ok(row.and_then(|(e, _)| get_str(&e, "ScanFrom").parse().ok()))
    }

    async fn write_state(&self, row_key: &str, name: &str, value: serde_json::Value) -> Result<(), StoreError> {
        let mut e = Entity::new();
        e.insert(name.into(), value);
        self.write_state_entity(row_key, e).await
    }

    async fn write_state_entity(&self, row_key: &str, mut e: Entity) -> Result<(), StoreError> {
        e.insert("PartitionKey".into(), CURSOR_PK.into());
        e.insert("RowKey".into(), row_key.into());
        self.state.upsert(&e).await
    }

    /// Marks the still-pending channels of a lead pending too long as failed. `false` when the
    /// row changed or vanished meanwhile (another run got to it).
    async fn expire(&self, pk: &str, rk: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some((entity, etag)) = self.leads.get(pk, rk).await? else { return Ok(false) };
        if get_datetime(&entity, LEASE_COLUMN).is_some_and(|t| t > now) {
            return Ok(false);
        }
        let reason = format!("gave up: still pending more than {MAX_PENDING_DAYS} days after the lead arrived (never delivered)");
        let mut result = Entity::new();
        for ch in &self.watched {
            if ChannelRecord::read(&entity, *ch).state == DeliveryState::Pending {
                result.insert(ch.column(Column::State), DeliveryState::Failed.as_str().into());
                result.insert(ch.column(Column::LastError), reason.clone().into());
                tracing::error!(partition_key = pk, row_key = rk, channel = ch.name(), "{reason}: see `handler leads status`");
            }
        }
        if result.is_empty() {
            return Ok(false);
        }
        match self.leads.merge(pk, rk, &result, &etag).await {
            Ok(_) => Ok(true),
            Err(StoreError::Changed | StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Claims one lead, sends its due channels, records each outcome as it comes.
    /// `indexed`: this run has already put the lead in the customer index.
    async fn process(&self, pk: &str, rk: &str, indexed: bool) -> Result<LeadOutcome, StoreError> {
        let now = Utc::now();
        let Some((entity, etag)) = self.leads.get(pk, rk).await? else {
            return Ok(LeadOutcome::Busy);
        };
        if get_datetime(&entity, LEASE_COLUMN).is_some_and(|t| t > now) {
            return Ok(LeadOutcome::Busy);
        }
        let due: Vec<(Channel, ChannelRecord)> =
            self.channels().iter().map(|c| (*c, ChannelRecord::read(&entity, *c))).filter(|(_, r)| r.is_due(now)).collect();
        if due.is_empty() {
            return Ok(LeadOutcome::Busy);
        }
        let lead = Lead::from_entity(&entity);
        let mut states: Vec<(Channel, DeliveryState)> = self.watched.iter().map(|c| (*c, ChannelRecord::read(&entity, *c).state)).collect();
        let mut set_state = |ch: Channel, state: DeliveryState| {
            if let Some(s) = states.iter_mut().find(|(c, _)| *c == ch) {
                s.1 = state;
            }
        };

        if lead.is_test() && !self.notify_test_leads {
            let mut result = Entity::new();
            for (ch, _) in &due {
                result.insert(ch.column(Column::State), DeliveryState::Skipped.as_str().into());
                set_state(*ch, DeliveryState::Skipped);
            }
            return match self.leads.merge(pk, rk, &result, &etag).await {
                Ok(_) => {
                    let finished = states.iter().all(|(_, s)| *s != DeliveryState::Pending);
                    Ok(LeadOutcome::Done { delivered: 0, retrying: 0, failed: 0, skipped: due.len() as u32, finished })
                }
                Err(StoreError::Changed) => Ok(LeadOutcome::Busy),
                Err(e) => Err(e),
            };
        }

        let id = notification_id(pk, rk);
        let mut claim = Entity::new();
        put_datetime(&mut claim, LEASE_COLUMN, now + self.lease);
        claim.insert(ID_COLUMN.into(), id.clone().into());
        let customer = self.journey.as_ref().and_then(|_| lead.customer_id());
        if let Some(c) = &customer {
            claim.insert(CUSTOMER_COLUMN.into(), c.as_str().into());
        }
        // Microsoft-written rows get the column LeadIngest writes.
        if let (None, Some(campaign)) = (entity.get("Campaign"), lead.campaign()) {
            claim.insert("Campaign".into(), campaign.into());
        }
        let mut etag = match self.leads.merge(pk, rk, &claim, &etag).await {
            Ok(etag) => etag,
            Err(StoreError::Changed) => return Ok(LeadOutcome::Busy),
            Err(e) => return Err(e),
        };

        let mut msg = LeadMessage::new(&lead, &id, pk, rk);
        if let (Some(journey), Some(customer)) = (&self.journey, &customer) {
            // Indexed before the run's sends; here only a lead that was not (an earlier run set
            // CustomerId and then failed to record, or its indexing failed). Idempotent.
            let recorded =
                if indexed || entity.get(CUSTOMER_COLUMN).is_some() { Ok(()) } else { journey.record(customer, &lead, pk, rk).await };
            let story = match recorded {
                Ok(()) => journey.story(customer, &id, lead.created).await,
                Err(e) => Err(e),
            };
            match story {
                Ok(story) => msg = msg.with_story(story),
                Err(e) => {
                    tracing::warn!(partition_key = pk, row_key = rk, error = %e, "customer journey unavailable: notifying without it")
                }
            }
        }
        let mut sends: FuturesUnordered<_> = due
            .iter()
            .map(|(ch, record)| {
                let (ch, attempts) = (*ch, record.attempts + 1);
                let send = self.channels.send(ch, &lead, &msg);
                async move { (ch, attempts, send.await) }
            })
            .collect();
        let (mut delivered, mut retrying, mut failed, mut skipped) = (0, 0, 0, 0);
        let mut recording = true;
        let mut first_error = None;
        // Outcomes that came in while a record was being written, in order.
        let mut answered = std::collections::VecDeque::new();
        loop {
            let (ch, attempts, outcome) = match answered.pop_front() {
                Some(done) => done,
                None => match sends.next().await {
                    Some(done) => done,
                    None => break,
                },
            };
            let done_at = Utc::now();
            let mut result = Entity::new();
            result.insert(ch.column(Column::Attempts), json!(attempts));
            let state = match outcome {
                SendOutcome::Delivered => {
                    delivered += 1;
                    put_datetime(&mut result, &ch.column(Column::DeliveredAt), done_at);
                    result.insert(ch.column(Column::LastError), "".into());
                    tracing::info!(partition_key = pk, row_key = rk, channel = ch.name(), attempts, "lead notified");
                    DeliveryState::Delivered
                }
                SendOutcome::Skipped(reason) => {
                    skipped += 1;
                    tracing::info!(partition_key = pk, row_key = rk, channel = ch.name(), reason = %reason, "lead skipped on this channel");
                    result.insert(ch.column(Column::LastError), reason.for_table().into());
                    DeliveryState::Skipped
                }
                SendOutcome::Retry { error, after } if attempts < self.max_attempts => {
                    retrying += 1;
                    let wait = retry_delay(attempts, after);
                    put_datetime(&mut result, &ch.column(Column::NextAttempt), done_at + wait);
                    tracing::warn!(
                        partition_key = pk,
                        row_key = rk,
                        channel = ch.name(),
                        attempts,
                        error = %error,
                        retry_in_s = wait.as_secs(),
                        "notification failed, will retry"
                    );
                    result.insert(ch.column(Column::LastError), error.for_table().into());
                    DeliveryState::Pending
                }
                SendOutcome::Retry { error, .. } | SendOutcome::Permanent(error) => {
                    failed += 1;
                    tracing::error!(
                        partition_key = pk,
                        row_key = rk,
                        channel = ch.name(),
                        attempts,
                        error = %error,
                        "notification failed for good: see `handler leads status`"
                    );
                    result.insert(ch.column(Column::LastError), error.for_table().into());
                    DeliveryState::Failed
                }
            };
            result.insert(ch.column(Column::State), state.as_str().into());
            set_state(ch, state);
            // The last record releases the claim in the same write; the others renew it, so a
            // claim outlives slow storage as long as records keep landing.
            let last = sends.is_empty() && answered.is_empty();
            put_datetime(&mut result, LEASE_COLUMN, if last { done_at } else { done_at + self.lease });
            if !recording {
                continue;
            }
            // The other sends go on while this record is written: a send's deadline runs whether
            // or not it is polled, and a receiver's answer must not turn into a timeout because
            // storage was slow to take the previous record.
            let written = {
                let write = self.leads.merge(pk, rk, &result, &etag);
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        written = &mut write => break written,
                        Some(done) = sends.next(), if !sends.is_empty() => answered.push_back(done),
                    }
                }
            };
            match written {
                Ok(next) => etag = next,
                Err(StoreError::Changed) => {
                    recording = false;
                    tracing::warn!(
                        partition_key = pk,
                        row_key = rk,
                        "lead changed while notifying (lease expired?): outcome not recorded, a repeat with the same id may follow"
                    );
                }
                // The row keeps its lease and pending state: a later run retries this channel.
                Err(e) => {
                    recording = false;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let finished = states.iter().all(|(_, s)| *s != DeliveryState::Pending);
        Ok(LeadOutcome::Done { delivered, retrying, failed, skipped, finished })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RetryPolicy;

    #[test]
    fn the_lease_outlasts_what_a_run_does_between_two_writes() {
        for secs in [5, 30, 120] {
            for storage_secs in [0, 10, 60] {
                let (timeout, storage) = (Duration::from_secs(secs), RetryPolicy::with_deadline(Duration::from_secs(storage_secs)));
                // Journey record and story, the concurrent sends, the first record.
                let longest = storage.longest_call() * 2 + timeout + storage.longest_call();
                assert!(lease_for(timeout, &storage) > longest, "{secs} s sends, {storage_secs} s storage");
            }
        }
        let defaults = lease_for(Duration::from_secs(30), &RetryPolicy::default());
        assert_eq!(defaults.as_secs(), 240, "the README says so");
    }
}
