//! The LeadNotify run: find leads with work, deliver each (the unit of work in [`deliver`]),
//! then the digest and retention. Three entry points:
//! - [`Notifier::run_once`] (the timer): the fast path, a slice of the sweep, the digest,
//!   retention.
//! - [`Notifier::deliver_new`] (right after intake): exactly the new leads, by key, no scan.
//! - [`Notifier::deliver_lead`]: one lead now (a page's "send again").
//!
//! How the timer finds work ([`discovery`] reads the table):
//! - **Fast path**, every run: the date partitions from a stored cursor (the oldest date that may
//!   still hold unfinished work, at most yesterday) to tomorrow.
//! - **Safety net**, a pass every `NOTIFY_SWEEP_MINUTES`: every row written (service-set
//!   `Timestamp`) since the pass's start, whatever its keys, read in slices of [`SWEEP_SLICE_ROWS`]
//!   rows, one slice per run, resuming from a stored continuation: a pass over a large table
//!   spreads over several runs and never holds up a new lead ([`sweep`] decides where each slice
//!   starts). A first deployment starts [`FIRST_SWEEP_LOOKBACK`] back: older history is not
//!   notified (no storm).
//!
//! A lead pending longer than [`MAX_PENDING_DAYS`] is ended visibly: `failed` with the reason,
//! logged at ERROR. A storage error on one lead is reported and leaves that lead unfinished; the
//! cursors never move past it.
//!
//! [`deliver`]: super::deliver
//! [`discovery`]: super::discovery

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate};
use futures_util::stream::{self, StreamExt};

use super::claim::lease_for;
use super::deliver::{Deliverer, LeadOutcome, MAX_PENDING_DAYS};
use super::digest::Digest;
use super::discovery::{key_of, Discovery};
use super::journey::Journey;
use super::lead_state::{scan_columns, ChannelRecord, DeliveryState, CUSTOMER_COLUMN, JOURNEY_COLUMNS, LEASE_COLUMN};
use super::notify_table::NotifyTable;
use super::registry::Registry;
use super::report::PollReport;
use super::retention::Retention;
use super::sweep;
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::entity::{get_datetime, get_str, Entity};
use crate::lead::{date_of_partition_key, CustomerId, Lead};
use crate::settings::Settings;
use crate::store::{SharedTable, StoreError};

/// Leads handled by one run at most; the rest wait for the next tick.
const MAX_LEADS_PER_RUN: usize = 200;
/// Leads handled at once within a run.
const CONCURRENCY: usize = 8;
/// Date partitions one run reads at most behind yesterday.
const MAX_DAYS_PER_RUN: u64 = 31;
/// Rows one run's slice of the sweep reads at most.
pub const SWEEP_SLICE_ROWS: usize = 5_000;
/// Where the very first sweep starts: history older than this is not notified.
pub const FIRST_SWEEP_LOOKBACK: Duration = Duration::from_secs(24 * 60 * 60);

/// A row found with at least one watched channel still pending.
struct ScanRow {
    partition_key: String,
    row_key: String,
    /// The date partition it was read from (fast path).
    date: Option<NaiveDate>,
    /// Last written (service `Timestamp`; sweep only).
    written: Option<DateTime<chrono::Utc>>,
    /// A sendable channel is due now and no live lease holds the row.
    due: bool,
    /// Not yet in the customer journey index: the customer and the lead to index.
    to_index: Option<(CustomerId, Lead)>,
}

impl ScanRow {
    fn key(&self) -> (String, String) {
        (self.partition_key.clone(), self.row_key.clone())
    }

    /// Pending since before `limit`: by its date partition, or by its last write. Never by
    /// `CreatedTime`, which a row may carry in any shape.
    fn pending_since_before(&self, limit: DateTime<chrono::Utc>) -> bool {
        match self.date {
            Some(d) => d < limit.date_naive(),
            None => self.written.is_some_and(|w| w < limit),
        }
    }
}

/// The LeadNotify job.
pub struct Notifier {
    deliverer: Deliverer,
    notify_table: NotifyTable,
    discovery: Discovery,
    sweep_every: Duration,
    running: tokio::sync::Mutex<()>,
    sweeping: tokio::sync::Mutex<()>,
    digest: Option<Digest>,
    retention: Option<Retention>,
}

impl Notifier {
    /// `leads` should be a handle of its own, so its transaction count is this job's alone.
    pub fn new(settings: &Settings, leads: SharedTable) -> Result<Self, String> {
        let channels = Registry::from_settings(&settings.channels, settings.notify.send_timeout)?;
        Ok(Self::with_parts(settings, leads, channels, Clock::System))
    }

    /// The notifier over given channels and clock (the logic tests' way in).
    pub fn with_parts(settings: &Settings, leads: SharedTable, channels: Registry, clock: Clock) -> Self {
        let notify_table = NotifyTable::beside(&leads);
        let watched = channels.watched();
        let digest = Digest::new(settings, &leads, &notify_table, clock.clone());
        let digest_configured =
            settings.channels.digest.is_some() || settings.channels.misconfigured.iter().any(|m| m.channel == ChannelId::Digest);
        let retention = Retention::new(settings, &leads, &notify_table, &watched, digest_configured, clock.clone());
        let deliverer = Deliverer {
            leads: leads.clone(),
            channels,
            watched,
            max_attempts: settings.notify.max_attempts,
            notify_test_leads: settings.notify.notify_test_leads,
            lease: lease_for(settings.notify.send_timeout, &settings.storage.retry),
            journey: settings.notify.journey.then(|| Journey::new(&leads)),
            clock,
        };
        Notifier {
            deliverer,
            notify_table,
            discovery: Discovery::new(&leads),
            sweep_every: settings.notify.sweep_every,
            running: tokio::sync::Mutex::new(()),
            sweeping: tokio::sync::Mutex::new(()),
            digest,
            retention,
        }
    }

    /// The channels that send.
    pub fn channels(&self) -> Vec<ChannelId> {
        self.deliverer.channels.active()
    }

    fn leads(&self) -> &SharedTable {
        &self.deliverer.leads
    }

    fn now(&self) -> DateTime<chrono::Utc> {
        self.deliverer.clock.now()
    }

    /// One timer run. Overlapping calls in this process skip instead of queueing; overlapping
    /// runs in other processes are kept apart by the ETag claim. Storage errors do not stop the
    /// run: they are counted in `errors` and logged.
    #[tracing::instrument(name = "lead_notify", skip_all)]
    pub async fn run_once(&self) -> PollReport {
        let Ok(_guard) = self.running.try_lock() else {
            return PollReport { overlapped: true, ..Default::default() };
        };
        let start = self.leads().transactions();
        let mut report = PollReport::default();
        if !self.deliverer.watched.is_empty() {
            self.fast_path(&mut report).await;
            self.sweep_slice(&mut report).await;
        }
        let mut digest_recorded = true;
        if let Some(digest) = &self.digest {
            let errors = report.errors;
            digest.run(&mut report).await;
            digest_recorded = report.errors == errors;
        }
        // Not after a digest step that failed on storage: its period may not be recorded yet.
        if let (Some(retention), true) = (&self.retention, digest_recorded) {
            retention.run(&mut report).await;
        }
        report.transactions = self.leads().transactions() - start;
        log_report(&report);
        report
    }

    /// Right after intake: indexes and delivers exactly these leads (no scan). Runs beside the
    /// timer run; the claim keeps the two from sending one lead twice.
    #[tracing::instrument(name = "lead_notify_now", skip_all)]
    pub async fn deliver_new(&self, keys: Vec<(String, String)>) -> PollReport {
        let start = self.leads().transactions();
        let mut report = PollReport::default();
        if self.deliverer.watched.is_empty() {
            return report;
        }
        let mut rows = Vec::new();
        for (pk, rk) in keys {
            match self.leads().get(&pk, &rk).await {
                Ok(Some((row, _))) => rows.extend(self.unfinished_row(&row, None, self.now())),
                Ok(None) => {}
                Err(e) => store_error(&mut report, "reading a new lead", &e),
            }
        }
        report.unfinished = rows.len() as u32;
        // A burst larger than one run's cap goes in several passes, not to the next tick.
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(MAX_LEADS_PER_RUN));
            self.handle(rows, &mut report).await;
            rows = rest;
        }
        report.transactions = self.leads().transactions() - start;
        log_report(&report);
        report
    }

    /// Delivers one lead now, whatever run is under way (its due channels only).
    pub async fn deliver_lead(&self, pk: &str, rk: &str) -> Result<LeadOutcome, StoreError> {
        self.deliverer.deliver(pk, rk, false).await
    }

    async fn fast_path(&self, report: &mut PollReport) {
        let now = self.now();
        let today = now.date_naive();
        let floor = today - Days::new(1);
        let cursor = match self.notify_table.date_cursor().await {
            Ok(c) => c,
            Err(e) => return store_error(report, "reading the notifier's cursor", &e),
        };
        let scan_from = cursor.map_or(floor, |d| d.min(floor));
        let mut dates: Vec<NaiveDate> =
            (0..MAX_DAYS_PER_RUN).filter_map(|i| scan_from.checked_add_days(Days::new(i))).filter(|d| *d < floor).collect();
        dates.extend([floor, today, today + Days::new(1)]);
        let select = self.scan_select();
        let mut rows = Vec::new();
        let mut complete = true;
        for date in &dates {
            match self.discovery.partition(*date, Some(&select)).await {
                Ok(found) => {
                    report.partitions_read += 1;
                    report.rows_read += found.len() as u32;
                    rows.extend(found.iter().filter_map(|row| self.unfinished_row(row, Some(*date), now)));
                }
                Err(e) => {
                    complete = false;
                    store_error(report, "reading a date partition", &e);
                }
            }
        }
        report.unfinished += rows.len() as u32;
        let finished = self.handle_expiring(&rows, report).await;
        // Move the cursor, never past a lead still unfinished (or one whose run failed).
        if complete {
            let next_from =
                rows.iter().filter(|r| !finished.contains(&r.key())).filter_map(|r| r.date).min().map_or(floor, |d| d.min(floor));
            if Some(next_from) != cursor {
                if let Err(e) = self.notify_table.set_date_cursor(next_from).await {
                    store_error(report, "writing the cursor", &e);
                }
            }
        }
    }

    /// One slice of the safety-net sweep, when a pass is under way or due. Skipped while another
    /// slice runs in this process.
    async fn sweep_slice(&self, report: &mut PollReport) {
        let Ok(_guard) = self.sweeping.try_lock() else { return };
        let now = self.now();
        let stored = match self.notify_table.sweep_cursor().await {
            Ok(c) => c,
            Err(e) => return store_error(report, "reading the sweep cursor", &e),
        };
        let lookback = chrono::Duration::from_std(FIRST_SWEEP_LOOKBACK).unwrap_or_default();
        let every = chrono::Duration::from_std(self.sweep_every).unwrap_or_default();
        let Some(cursor) = sweep::slice_now(stored, now, every, lookback) else { return };
        let from = cursor.from.unwrap_or(now - lookback);
        report.swept = true;
        let select = self.scan_select();
        let (found, next) = match self.discovery.written_since(from, cursor.resume.clone(), Some(&select), SWEEP_SLICE_ROWS).await {
            Ok(slice) => slice,
            Err(e) => return store_error(report, "sweeping the table", &e),
        };
        report.sweep_rows_read += found.len() as u32;
        let rows: Vec<ScanRow> = found
            .iter()
            .filter(|row| date_of_partition_key(&key_of(row).0).is_none_or(|d| d < now.date_naive() - Days::new(1)))
            .filter_map(|row| self.unfinished_row(row, None, now))
            .collect();
        report.unfinished += rows.len() as u32;
        let finished = self.handle_expiring(&rows, report).await;
        let oldest_open = rows.iter().filter(|r| !finished.contains(&r.key())).filter_map(|r| r.written).min();
        let cursor = sweep::after_slice(cursor, oldest_open, next, now);
        if let Err(e) = self.notify_table.set_sweep_cursor(&cursor).await {
            store_error(report, "writing the sweep cursor", &e);
        }
    }

    /// Ends leads pending too long, then delivers the due ones. The keys now finished.
    async fn handle_expiring(&self, rows: &[ScanRow], report: &mut PollReport) -> HashSet<(String, String)> {
        let now = self.now();
        let too_old = now - chrono::Duration::days(MAX_PENDING_DAYS);
        let mut finished = HashSet::new();
        let mut live = Vec::new();
        for row in rows {
            if row.pending_since_before(too_old) {
                match self.deliverer.expire(&row.partition_key, &row.row_key, now).await {
                    Ok(true) => {
                        report.expired += 1;
                        finished.insert(row.key());
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => store_error(report, "ending a lead pending too long", &e),
                }
            }
            live.push(row);
        }
        finished.extend(self.handle_refs(live, report).await);
        finished
    }

    async fn handle(&self, rows: Vec<ScanRow>, report: &mut PollReport) -> HashSet<(String, String)> {
        self.handle_refs(rows.iter().collect(), report).await
    }

    /// Indexes the due rows in the customer journey (every one before any is sent, so two leads
    /// of one customer in this run each see the other), then delivers them.
    async fn handle_refs(&self, rows: Vec<&ScanRow>, report: &mut PollReport) -> HashSet<(String, String)> {
        let due: Vec<&ScanRow> = rows.into_iter().filter(|r| r.due).take(MAX_LEADS_PER_RUN).collect();
        let mut indexed: HashSet<(String, String)> = HashSet::new();
        if let Some(journey) = &self.deliverer.journey {
            let leads: Vec<(&CustomerId, &Lead, &str, &str)> = due
                .iter()
                .filter_map(|r| r.to_index.as_ref().map(|(customer, lead)| (customer, lead, r.partition_key.as_str(), r.row_key.as_str())))
                .collect();
            for (key, result) in journey.record_all(leads, CONCURRENCY).await {
                match result {
                    Ok(()) => {
                        indexed.insert(key);
                    }
                    // The notification still goes (deliver tries the index once more).
                    Err(e) => store_error(report, "indexing a lead in the customer journey", &e),
                }
            }
        }
        let due: Vec<((String, String), bool)> = due.iter().map(|r| (r.key(), indexed.contains(&r.key()))).collect();
        let outcomes: Vec<((String, String), Result<LeadOutcome, StoreError>)> = stream::iter(due)
            .map(|(key, done)| async move {
                let outcome = self.deliverer.deliver(&key.0, &key.1, done).await;
                (key, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut finished = HashSet::new();
        for (key, outcome) in outcomes {
            match outcome {
                Ok(LeadOutcome::Busy) => report.busy += 1,
                Ok(LeadOutcome::NothingDue) => {}
                Ok(LeadOutcome::Done(tally)) => {
                    report.claimed += 1;
                    report.delivered += tally.delivered;
                    report.retrying += tally.retrying;
                    report.failed += tally.failed;
                    report.skipped += tally.skipped;
                    if tally.finished {
                        finished.insert(key);
                    }
                }
                Err(e) => store_error(report, "notifying a lead", &e),
            }
        }
        finished
    }

    /// The columns a scan reads: the channels' state, and what indexing needs when the journey is on.
    fn scan_select(&self) -> Vec<String> {
        let mut select = scan_columns(&self.deliverer.watched);
        select.push("Timestamp".into());
        if self.deliverer.journey.is_some() {
            select.extend(JOURNEY_COLUMNS.split(',').map(str::to_string));
        }
        select
    }

    fn unfinished_row(&self, row: &Entity, date: Option<NaiveDate>, now: DateTime<chrono::Utc>) -> Option<ScanRow> {
        let watched = &self.deliverer.watched;
        let records: Vec<(ChannelId, ChannelRecord)> = watched.iter().map(|c| (*c, ChannelRecord::read(row, *c))).collect();
        if records.iter().all(|(_, r)| r.state != DeliveryState::Pending) {
            return None;
        }
        let leased = get_datetime(row, LEASE_COLUMN).is_some_and(|t| t > now);
        let due = !leased && records.iter().any(|(c, r)| self.deliverer.channels.is_active(*c) && r.is_due(now));
        let (partition_key, row_key) = key_of(row);
        Some(ScanRow {
            partition_key,
            row_key,
            date,
            written: get_datetime(row, "Timestamp"),
            due,
            to_index: self.deliverer.journey.as_ref().filter(|_| get_str(row, CUSTOMER_COLUMN).is_empty()).and_then(|_| {
                let lead = Lead::from_entity(row);
                lead.customer_id().map(|c| (c, lead))
            }),
        })
    }
}

fn store_error(report: &mut PollReport, doing: &str, e: &StoreError) {
    report.errors += 1;
    tracing::error!(error = %e, "LeadNotify: storage error while {doing}; the leads concerned stay pending");
}

/// A run that did nothing logs nothing at the default level.
fn log_report(report: &PollReport) {
    if report.errors > 0 {
        tracing::error!(%report, "LeadNotify run had storage errors: the leads concerned stay pending for the next run");
    } else if !report.is_idle() {
        tracing::info!(%report, "LeadNotify run");
    } else {
        tracing::debug!(%report, "LeadNotify run");
    }
}
