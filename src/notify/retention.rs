//! Retention (`LEADS_RETENTION_DAYS`): LeadNotify deletes leads older than the setting, with
//! their journey-index entries, at most once a day. Leads are personal data; a publisher who
//! answers to the GDPR keeps them no longer than needed, and this makes "no longer" automatic.
//!
//! - **Age** is the lead's `CreatedTime`; a row without a readable one (Microsoft writes its own
//!   rows, in a format it does not document) falls back to the end of its date partition's day,
//!   then to the service `Timestamp`. Each fallback is later than the truth, never earlier, so a
//!   lead is never deleted early.
//! - **A lead with a notification still due** (a watched channel `pending`, or a live claim) is
//!   kept and counted in `retention_kept_pending`: deleting it would lose the notification; once
//!   it is delivered or given up (at most [`MAX_PENDING_DAYS`](super::poller::MAX_PENDING_DAYS)
//!   later), a later day's run deletes it.
//! - **Once a day**: a state row in `<LEADS_TABLE>Notify` (PartitionKey `cursor`, RowKey
//!   `retention`, `LastRun`) is read on every run; only when it is a day old does a run read the
//!   lead table. That read is the whole table, deliberately: rows may carry any keys, and with
//!   retention on the table holds only the last N days. `LastRun` is written only after a run
//!   without storage errors, so a failed one is repeated on the next tick.
//! - **With the digest on**, a lead is also kept until the digest that lists it has been sent
//!   (or given up): nothing created after the start of the oldest pending or still open digest
//!   period is deleted, whatever `LEADS_RETENTION_DAYS` says.
//! - Two instances running it at once both delete the same rows: deletes are idempotent.
//!
//! Logs carry counts only, never a customer's details.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::delivery::{notification_id, Channel, ChannelRecord, DeliveryState, LEASE_COLUMN};
use super::digest::Digest;
use super::journey::Journey;
use super::report::PollReport;
use crate::entity::{get_datetime, get_str, put_datetime, Entity};
use crate::lead::{date_of_partition_key, Lead};
use crate::settings::Settings;
use crate::store::{Filter, Op, Query, SharedTable, StoreError};

const STATE_PK: &str = "cursor";
const STATE_RK: &str = "retention";
/// How often the retention reads the lead table.
const EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The retention job, held by the [`Notifier`](super::Notifier).
pub struct Retention {
    leads: SharedTable,
    state: SharedTable,
    index: Journey,
    days: u32,
    /// The notifier's watched channels: a lead pending on one of them still has a notification
    /// due. (A channel never configured reads as pending on every row, so only these count.)
    watched: Vec<Channel>,
}

impl Retention {
    /// `None` when `LEADS_RETENTION_DAYS` is unset (leads are kept forever).
    pub fn new(settings: &Settings, leads: &SharedTable, state: &SharedTable, watched: &[Channel]) -> Option<Self> {
        let days = settings.retention_days?;
        Some(Retention { leads: leads.clone(), state: state.clone(), index: Journey::new(leads), days, watched: watched.to_vec() })
    }

    /// Deletes what is due, if a day has passed since the last run. Storage errors are counted in
    /// the report's `errors` and logged; the next tick tries again.
    /// `digest`: the digest, when it is on; the leads it has still to list are kept.
    pub async fn run(&self, now: DateTime<Utc>, digest: Option<&Digest>, report: &mut PollReport) {
        if let Err(e) = self.run_inner(now, digest, report).await {
            report.errors += 1;
            tracing::error!(error = %e, "retention: storage error; old leads are deleted on a later run");
        }
    }

    async fn run_inner(&self, now: DateTime<Utc>, digest: Option<&Digest>, report: &mut PollReport) -> Result<(), StoreError> {
        let last = self.state.get(STATE_PK, STATE_RK).await?.and_then(|(e, _)| get_datetime(&e, "LastRun"));
        if last.is_some_and(|t| now - t < EVERY) {
            return Ok(());
        }
        let by_age = now - chrono::TimeDelta::days(i64::from(self.days));
        let cutoff = match digest {
            Some(digest) => by_age.min(digest.needs_leads_since(now).await?),
            None => by_age,
        };
        let rows = self.leads.query(&Query::all(), usize::MAX).await?;

        let mut remaining: HashSet<(String, String)> = HashSet::new();
        let mut doomed: Vec<(String, String, Option<String>)> = Vec::new();
        for row in &rows {
            let key = (get_str(row, "PartitionKey").to_string(), get_str(row, "RowKey").to_string());
            if age_of(row).is_none_or(|t| t >= cutoff) {
                remaining.insert(key);
            } else if self.still_due(row, now) {
                report.retention_kept_pending += 1;
                remaining.insert(key);
            } else {
                let customer = Lead::from_entity(row).customer_id().map(|c| c.as_str().to_string());
                doomed.push((key.0, key.1, customer));
            }
        }

        // Index entries of old leads, by their own creation time (the index copies the lead's),
        // so entries whose lead is already gone are found too.
        let filter = Filter::time("CreatedTime", Op::Lt, cutoff);
        let old_entries = self
            .index
            .table()
            .query(&Query::filter(filter).select(&["PartitionKey", "RowKey", "LeadPartitionKey", "LeadRowKey"]), usize::MAX)
            .await?;
        let mut entries: HashMap<(String, String), (String, String)> = HashMap::new();
        for e in &old_entries {
            let lead = (get_str(e, "LeadPartitionKey").to_string(), get_str(e, "LeadRowKey").to_string());
            if !remaining.contains(&lead) {
                entries.insert((get_str(e, "PartitionKey").to_string(), get_str(e, "RowKey").to_string()), lead);
            }
        }

        // The lead first, then its entry: a crash in between leaves an orphan entry, which the
        // index pass above finds on the next day's run.
        for (pk, rk, customer) in &doomed {
            if self.leads.remove(pk, rk).await? {
                report.retention_deleted += 1;
            }
            if let Some(customer) = customer {
                let entry = (customer.clone(), notification_id(pk, rk));
                // Whether or not the old-entries read saw it: its copy of the creation time may
                // be later than the age used here.
                entries.remove(&entry);
                if self.index.table().remove(&entry.0, &entry.1).await? {
                    report.retention_index_deleted += 1;
                }
            }
        }
        for (pk, rk) in entries.keys() {
            if self.index.table().remove(pk, rk).await? {
                report.retention_index_deleted += 1;
            }
        }

        let mut state = Entity::new();
        state.insert("PartitionKey".into(), STATE_PK.into());
        state.insert("RowKey".into(), STATE_RK.into());
        put_datetime(&mut state, "LastRun", now);
        self.state.upsert(&state).await?;
        tracing::info!(
            days = self.days,
            kept_for_the_digest = cutoff < by_age,
            leads_read = rows.len(),
            deleted = report.retention_deleted,
            index_entries_deleted = report.retention_index_deleted,
            kept_pending = report.retention_kept_pending,
            "retention: deleted leads older than LEADS_RETENTION_DAYS"
        );
        Ok(())
    }

    /// A notification is still due: a watched channel is pending, or a run holds the lead now.
    fn still_due(&self, row: &Entity, now: DateTime<Utc>) -> bool {
        get_datetime(row, LEASE_COLUMN).is_some_and(|t| t > now)
            || self.watched.iter().any(|c| ChannelRecord::read(row, *c).state == DeliveryState::Pending)
    }
}

/// When the lead arrived, as late as the row lets us say: `CreatedTime`, else the end of its
/// date partition's day, else the last write (`Timestamp`).
pub fn age_of(row: &Entity) -> Option<DateTime<Utc>> {
    get_datetime(row, "CreatedTime")
        .or_else(|| {
            date_of_partition_key(get_str(row, "PartitionKey"))
                .and_then(|d| d.succ_opt())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
        .or_else(|| get_datetime(row, "Timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Entity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn age_falls_back_to_later_evidence_never_earlier() {
        let created =
            row(json!({"PartitionKey": "9:2F28:2F2018", "CreatedTime": "2018-09-28T09:00:00Z", "Timestamp": "2026-01-01T00:00:00Z"}));
        assert_eq!(age_of(&created).unwrap().to_rfc3339(), "2018-09-28T09:00:00+00:00");
        let by_partition = row(json!({"PartitionKey": "9:2F28:2F2018", "CreatedTime": "28/09/2018", "Timestamp": "2026-01-01T00:00:00Z"}));
        assert_eq!(age_of(&by_partition).unwrap().to_rfc3339(), "2018-09-29T00:00:00+00:00", "the end of the day");
        let by_write = row(json!({"PartitionKey": "northwind", "Timestamp": "2026-01-01T00:00:00Z"}));
        assert_eq!(age_of(&by_write).unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(age_of(&row(json!({"PartitionKey": "x"}))), None, "no evidence: never deleted");
    }
}
