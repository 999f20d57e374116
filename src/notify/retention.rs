//! Retention (`LEADS_RETENTION_DAYS`): LeadNotify deletes leads older than the setting, with
//! their journey-index entries, at most once a day. Leads are personal data; a publisher who
//! answers to the GDPR keeps them no longer than needed, and this makes "no longer" automatic.
//!
//! A lead is deleted when all of these hold, decided per row as the table is read page by page
//! (memory stays flat in the table's size):
//! - **Old enough twice over**: it arrived ([`arrival`]) and was last written (`Timestamp`) more
//!   than the setting ago. A `CreatedTime` claiming 2001 on a row written today does not make it
//!   old.
//! - **No send will still be attempted** ([`will_be_sent`]): a watched channel pending on a row
//!   written within [`MAX_PENDING_DAYS`], or a live claim, keeps it (`retention_kept_pending`).
//!   A row idle longer (older than the deployment, or than a channel added later) is not pending:
//!   nothing will ever send it.
//! - **Listed by the digest**, when one is configured (even if its settings or relay are broken):
//!   a lead that arrived after the last period a digest was sent (or given up) for, or after the
//!   start of a period still pending, is kept. With no digest sent yet in the last
//!   [`MAX_PERIOD_DAYS`] days, retention waits altogether and says so (`retention_waiting`).
//!
//! `LastRun` (PartitionKey `cursor`, RowKey `retention` in `<LEADS_TABLE>Notify`) is written only
//! after a run without storage errors. Two instances deleting at once agree: deletes are
//! idempotent. Logs carry counts only, never a customer's details.

use chrono::{DateTime, Utc};

use super::deliver::MAX_PENDING_DAYS;
use super::digest_message::MAX_PERIOD_DAYS;
use super::discovery::{arrival, key_of, Discovery};
use super::journey::Journey;
use super::lead_state::{notification_id, will_be_sent};
use super::notify_table::NotifyTable;
use super::report::PollReport;
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::entity::{get_datetime, get_str, Entity};
use crate::lead::Lead;
use crate::settings::Settings;
use crate::store::{Filter, Op, Pages, Query, SharedTable, StoreError};

/// How often the retention reads the lead table.
const EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The retention job, held by the [`Notifier`](super::Notifier).
pub struct Retention {
    leads: SharedTable,
    discovery: Discovery,
    state: NotifyTable,
    index: Journey,
    days: u32,
    watched: Vec<ChannelId>,
    /// A digest is configured (working or not): leads wait for it.
    digest: bool,
    clock: Clock,
}

impl Retention {
    /// `None` when `LEADS_RETENTION_DAYS` is unset (leads are kept forever).
    pub fn new(
        settings: &Settings,
        leads: &SharedTable,
        state: &NotifyTable,
        watched: &[ChannelId],
        digest: bool,
        clock: Clock,
    ) -> Option<Self> {
        let days = settings.notify.retention_days?;
        Some(Retention {
            leads: leads.clone(),
            discovery: Discovery::new(leads),
            state: state.clone(),
            index: Journey::new(leads),
            days,
            watched: watched.to_vec(),
            digest,
            clock,
        })
    }

    /// Deletes what is due, if a day has passed since the last run. Storage errors are counted in
    /// the report's `errors` and logged; the next tick tries again.
    pub async fn run(&self, report: &mut PollReport) {
        if let Err(e) = self.run_inner(self.clock.now(), report).await {
            report.errors += 1;
            tracing::error!(error = %e, "retention: storage error; old leads are deleted on a later run");
        }
    }

    async fn run_inner(&self, now: DateTime<Utc>, report: &mut PollReport) -> Result<(), StoreError> {
        if self.state.retention_last_run().await?.is_some_and(|t| now - t < EVERY) {
            return Ok(());
        }
        let cutoff = now - chrono::TimeDelta::days(i64::from(self.days));
        let listed_until = if self.digest {
            let since = now - chrono::TimeDelta::days(MAX_PERIOD_DAYS as i64 + 1);
            match self.state.digest_listed_until(since, now).await? {
                Some(t) => Some(t),
                None => {
                    report.retention_waiting = true;
                    tracing::warn!(
                        "retention waits: no digest has been sent in the last {MAX_PERIOD_DAYS} days, and no lead is deleted before a digest has listed it (check the digest's settings and relay: `handler leads status`)"
                    );
                    return Ok(());
                }
            }
        } else {
            None
        };
        let mut rows_read = 0usize;
        let mut pages = self.discovery.every_row(None);
        while let Some(page) = pages.next(&**self.discovery.leads()).await? {
            rows_read += page.len();
            let mut attempted = false;
            let deleted = self.delete_old_rows(page, cutoff, listed_until, now, &mut attempted, report).await;
            // Told whenever a delete was tried, also one that failed half-way or found its row
            // gone (a retried delete whose first attempt landed): copies must not outlive rows.
            // The delete's own error is the one reported when both fail.
            let told = if attempted { self.state.mark_leads_changed(now).await } else { Ok(()) };
            deleted?;
            told?;
        }
        self.delete_orphan_entries(cutoff, report).await?;
        self.state.set_retention_last_run(now).await?;
        tracing::info!(
            days = self.days,
            leads_read = rows_read,
            deleted = report.retention_deleted,
            index_entries_deleted = report.retention_index_deleted,
            kept_pending = report.retention_kept_pending,
            kept_for_the_digest = report.retention_kept_for_digest,
            "retention: deleted leads older than LEADS_RETENTION_DAYS"
        );
        Ok(())
    }

    /// Deletes the rows of one page that nothing needs any more; `attempted` says whether a
    /// delete was tried.
    async fn delete_old_rows(
        &self,
        page: Vec<Entity>,
        cutoff: DateTime<Utc>,
        listed_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        attempted: &mut bool,
        report: &mut PollReport,
    ) -> Result<(), StoreError> {
        let give_up = chrono::TimeDelta::days(MAX_PENDING_DAYS);
        for row in page {
            let written = get_datetime(&row, "Timestamp");
            let old = arrival(&row).is_some_and(|t| t < cutoff) && written.is_none_or(|w| w < cutoff);
            if !old {
                continue;
            }
            if listed_until.is_some_and(|listed| arrival(&row).is_none_or(|t| t > listed)) {
                report.retention_kept_for_digest += 1;
                continue;
            }
            if will_be_sent(&row, &self.watched, now, give_up) {
                report.retention_kept_pending += 1;
                continue;
            }
            let (pk, rk) = key_of(&row);
            // The lead first, then its entry: a crash in between leaves an orphan entry, which
            // the index pass finds on the next day's run.
            *attempted = true;
            if self.leads.remove(&pk, &rk).await? {
                report.retention_deleted += 1;
            }
            if let Some(customer) = Lead::from_entity(&row).customer_id() {
                if self.index.table().remove(customer.as_str(), &notification_id(&pk, &rk)).await? {
                    report.retention_index_deleted += 1;
                }
            }
        }
        Ok(())
    }

    /// Index entries of old leads whose lead is gone (indexed under another customer id, or
    /// left by a crash between the two deletes), by their own copy of the creation time.
    async fn delete_orphan_entries(&self, cutoff: DateTime<Utc>, report: &mut PollReport) -> Result<(), StoreError> {
        let query = Query::filter(Filter::time("CreatedTime", Op::Lt, cutoff)).select(&[
            "PartitionKey",
            "RowKey",
            "LeadPartitionKey",
            "LeadRowKey",
        ]);
        let mut pages = Pages::new(query);
        while let Some(page) = pages.next(&**self.index.table()).await? {
            for entry in page {
                let (lead_pk, lead_rk) = (get_str(&entry, "LeadPartitionKey"), get_str(&entry, "LeadRowKey"));
                if self.leads.get(lead_pk, lead_rk).await?.is_none() {
                    let (pk, rk) = key_of(&entry);
                    if self.index.table().remove(&pk, &rk).await? {
                        report.retention_index_deleted += 1;
                    }
                }
            }
        }
        Ok(())
    }
}
