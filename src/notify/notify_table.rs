//! The notifier's own small table beside the lead table, `<LEADS_TABLE>Notify`, and everything
//! read from or written to it: the fast path's date cursor, the sweep's cursor, retention's last
//! run, the "leads changed" marker (moved by forget, retention and the inbox's "send again"; read
//! by the inbox's cache),
//! and one row per digest period. Row keys, column names and filters exist only here.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::json;

use super::lead_state::DeliveryState;
use crate::entity::{get_datetime, get_str, put_datetime, Entity};
use crate::store::{Continuation, Filter, Op, Query, SharedTable, StoreError};

const CURSOR_PK: &str = "cursor";
const DATE_CURSOR_RK: &str = "scan-from";
const SWEEP_RK: &str = "sweep";
const RETENTION_RK: &str = "retention";
const LEADS_CHANGED_RK: &str = "leads-changed";
/// The digest rows' partition.
pub const DIGEST_PK: &str = "digest";

/// Where the safety-net sweep stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepCursor {
    /// Rows written since this time are read by the current pass.
    pub from: Option<DateTime<Utc>>,
    /// When the current pass began (it ends when its last slice is read).
    pub pass_started: Option<DateTime<Utc>>,
    /// When the last pass ended.
    pub last_pass: Option<DateTime<Utc>>,
    /// The current pass's position: the next slice starts here (`None`: the pass is not under way).
    pub resume: Option<Continuation>,
    /// The oldest write of a row the current pass found unfinished: the next pass starts no later.
    pub oldest_open: Option<DateTime<Utc>>,
}

/// The RowKey of a digest period ending at `end`: RFC 3339 to the second, so keys sort as
/// times do.
pub fn digest_row_key(end: DateTime<Utc>) -> String {
    end.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where one digest period stands, as read from its row.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestRow {
    /// Read from the table (a retry), not a new period yet to be inserted.
    pub stored: bool,
    pub end: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
    pub missed_ticks: u32,
    pub capped: bool,
    pub leads: Option<u64>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: String,
}

impl DigestRow {
    /// A period not yet claimed: pending, never attempted, nothing stored.
    pub fn unclaimed(start: DateTime<Utc>, end: DateTime<Utc>, missed_ticks: u32, capped: bool) -> Self {
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
            leads: None,
            delivered_at: None,
            last_error: String::new(),
        }
    }

    pub fn read(e: &Entity) -> Option<Self> {
        let end = DateTime::parse_from_rfc3339(get_str(e, "RowKey")).ok()?.with_timezone(&Utc);
        let number = |name: &str| e.get(name).and_then(serde_json::Value::as_u64);
        Some(DigestRow {
            stored: true,
            end,
            start: get_datetime(e, "PeriodStart").unwrap_or(end),
            state: DeliveryState::parse(Some(get_str(e, "State"))),
            attempts: number("Attempts").unwrap_or(0) as u32,
            next_attempt: get_datetime(e, "NextAttempt"),
            lease_until: get_datetime(e, "LeaseUntil"),
            missed_ticks: number("MissedTicks").unwrap_or(0) as u32,
            capped: e.get("Capped").and_then(serde_json::Value::as_bool).unwrap_or(false),
            leads: number("Leads"),
            delivered_at: get_datetime(e, "DeliveredAt"),
            last_error: get_str(e, "LastError").to_string(),
        })
    }

    /// Due for an attempt now: pending, its retry time come, no live claim.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending && self.next_attempt.is_none_or(|t| t <= now) && self.lease_until.is_none_or(|t| t <= now)
    }

    /// The row a new period is claimed with (by inserting it), with the claim's columns.
    pub fn new_entity(&self, claim: Entity, message_id: &str) -> Entity {
        let mut entity = claim;
        entity.insert("PartitionKey".into(), DIGEST_PK.into());
        entity.insert("RowKey".into(), digest_row_key(self.end).into());
        entity.insert("State".into(), DeliveryState::Pending.as_str().into());
        entity.insert("Attempts".into(), json!(0));
        put_datetime(&mut entity, "PeriodStart", self.start);
        entity.insert("MissedTicks".into(), json!(self.missed_ticks));
        entity.insert("Capped".into(), json!(self.capped));
        entity.insert("MessageId".into(), message_id.into());
        entity
    }
}

/// `<LEADS_TABLE>Notify`.
#[derive(Clone)]
pub struct NotifyTable {
    table: SharedTable,
}

impl NotifyTable {
    /// The notifier's table beside the lead table `leads`.
    pub fn beside(leads: &SharedTable) -> Self {
        NotifyTable { table: leads.with_table(&format!("{}Notify", leads.name())) }
    }

    pub fn table(&self) -> &SharedTable {
        &self.table
    }

    /// The oldest date partition that may still hold unfinished work.
    pub async fn date_cursor(&self) -> Result<Option<NaiveDate>, StoreError> {
        let row = self.table.get(CURSOR_PK, DATE_CURSOR_RK).await?;
        Ok(row.and_then(|(e, _)| get_str(&e, "ScanFrom").parse().ok()))
    }

    pub async fn set_date_cursor(&self, from: NaiveDate) -> Result<(), StoreError> {
        let mut e = cursor_row(DATE_CURSOR_RK);
        e.insert("ScanFrom".into(), from.to_string().into());
        self.table.upsert(&e).await
    }

    pub async fn sweep_cursor(&self) -> Result<Option<SweepCursor>, StoreError> {
        let Some((e, _)) = self.table.get(CURSOR_PK, SWEEP_RK).await? else { return Ok(None) };
        let resume = Some(get_str(&e, "ResumePartitionKey"))
            .filter(|pk| !pk.is_empty())
            .map(|pk| Continuation { partition_key: pk.to_string(), row_key: Some(get_str(&e, "ResumeRowKey").to_string()) });
        Ok(Some(SweepCursor {
            from: get_datetime(&e, "SweepFrom"),
            pass_started: get_datetime(&e, "PassStarted"),
            last_pass: get_datetime(&e, "LastSweep"),
            resume,
            oldest_open: get_datetime(&e, "OldestOpen"),
        }))
    }

    pub async fn set_sweep_cursor(&self, cursor: &SweepCursor) -> Result<(), StoreError> {
        let mut e = cursor_row(SWEEP_RK);
        for (name, at) in [
            ("SweepFrom", cursor.from),
            ("PassStarted", cursor.pass_started),
            ("LastSweep", cursor.last_pass),
            ("OldestOpen", cursor.oldest_open),
        ] {
            if let Some(at) = at {
                put_datetime(&mut e, name, at);
            }
        }
        let (pk, rk) = cursor
            .resume
            .as_ref()
            .map_or((String::new(), String::new()), |c| (c.partition_key.clone(), c.row_key.clone().unwrap_or_default()));
        e.insert("ResumePartitionKey".into(), pk.into());
        e.insert("ResumeRowKey".into(), rk.into());
        self.table.upsert(&e).await
    }

    pub async fn retention_last_run(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.table.get(CURSOR_PK, RETENTION_RK).await?.and_then(|(e, _)| get_datetime(&e, "LastRun")))
    }

    pub async fn set_retention_last_run(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut e = cursor_row(RETENTION_RK);
        put_datetime(&mut e, "LastRun", at);
        self.table.upsert(&e).await
    }

    /// Says that lead rows were deleted, redacted or sent again by hand (forget, retention, the
    /// inbox), for whoever keeps copies of them: the inbox drops its held days when the marker
    /// moves. Written after the rows changed, so a reader that sees the new marker reads the rows
    /// as they are now.
    pub async fn mark_leads_changed(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut e = cursor_row(LEADS_CHANGED_RK);
        put_datetime(&mut e, "LastChange", at);
        self.table.upsert(&e).await
    }

    /// The marker's version (its ETag): it changes with every
    /// [`mark_leads_changed`](Self::mark_leads_changed); `None` while nothing was ever marked.
    pub async fn leads_changed_version(&self) -> Result<Option<String>, StoreError> {
        Ok(self.table.get(CURSOR_PK, LEADS_CHANGED_RK).await?.map(|(_, etag)| etag))
    }

    /// Digest rows ending at or after `since` that are at or after `recent`, or still pending:
    /// the rows a digest run may act on (a frequent schedule makes thousands a month; the rest
    /// stay on the server).
    pub async fn digest_rows(&self, since: DateTime<Utc>, recent: DateTime<Utc>) -> Result<Vec<DigestRow>, StoreError> {
        let filter = Filter::eq("PartitionKey", DIGEST_PK)
            .and(Filter::text("RowKey", Op::Ge, &digest_row_key(since)))
            .and(Filter::text("RowKey", Op::Ge, &digest_row_key(recent)).or(Filter::eq("State", DeliveryState::Pending.as_str())));
        Ok(self.table.query(&Query::filter(filter), usize::MAX).await?.iter().filter_map(DigestRow::read).collect())
    }

    /// Every digest row ending in [since, before), newest last.
    pub async fn digest_rows_between(&self, since: DateTime<Utc>, before: DateTime<Utc>) -> Result<Vec<DigestRow>, StoreError> {
        let filter = Filter::eq("PartitionKey", DIGEST_PK).and(Filter::text("RowKey", Op::Ge, &digest_row_key(since))).and(Filter::text(
            "RowKey",
            Op::Lt,
            &digest_row_key(before),
        ));
        Ok(self.table.query(&Query::filter(filter), usize::MAX).await?.iter().filter_map(DigestRow::read).collect())
    }

    /// The end of the last period a digest was sent for (only its key is read).
    pub async fn last_digest_end(&self, since: DateTime<Utc>, before: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let filter = Filter::eq("PartitionKey", DIGEST_PK).and(Filter::text("RowKey", Op::Ge, &digest_row_key(since))).and(Filter::text(
            "RowKey",
            Op::Lt,
            &digest_row_key(before),
        ));
        let keys = self.table.query(&Query::filter(filter).select(&["RowKey"]), usize::MAX).await?;
        Ok(keys.iter().filter_map(|e| DateTime::parse_from_rfc3339(get_str(e, "RowKey")).ok()).map(|d| d.with_timezone(&Utc)).max())
    }

    /// Leads created after this time still have a digest to be listed in: the start of the
    /// oldest period still pending, else the end of the newest period done (sent or given up).
    /// `None` when no digest has ever been sent: nothing is known to be listed.
    pub async fn digest_listed_until(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let rows = self.digest_rows_between(since, now + chrono::Duration::seconds(1)).await?;
        let oldest_pending = rows.iter().filter(|r| r.state == DeliveryState::Pending).map(|r| r.start).min();
        let newest_done = rows.iter().filter(|r| r.state != DeliveryState::Pending).map(|r| r.end).max();
        Ok(match (oldest_pending, newest_done) {
            (Some(p), Some(d)) => Some(p.min(d)),
            (p, d) => p.or(d),
        })
    }

    /// The claim of a digest row, as [`super::claim::claim`] writes it.
    pub fn digest_claim(lease_until: DateTime<Utc>, claim_id: &str) -> Entity {
        let mut claim = Entity::new();
        put_datetime(&mut claim, "LeaseUntil", lease_until);
        claim.insert("ClaimId".into(), claim_id.into());
        claim
    }

    pub fn claim_id_of(e: &Entity) -> &str {
        get_str(e, "ClaimId")
    }
}

fn cursor_row(rk: &str) -> Entity {
    let mut e = Entity::new();
    e.insert("PartitionKey".into(), CURSOR_PK.into());
    e.insert("RowKey".into(), rk.into());
    e
}
