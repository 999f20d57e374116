//! Which lead rows exist: the one place that finds them, for per-lead delivery, the digest and
//! retention alike. Microsoft does not document its row format, so a row may carry any keys;
//! both routes usually partition by date (`M:2FD:2FYYYY`), which makes recent leads a few
//! partition reads. What the date partitions miss, the service-set `Timestamp` finds: every
//! row written since a time, whatever its keys (a full scan on the server, read in bounded
//! slices). When a lead arrived is [`arrival`], decided once here.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::entity::{get_datetime, get_str, Entity};
use crate::lead::{date_of_partition_key, partition_key_for};
use crate::store::{Continuation, Filter, Op, Pages, Query, SharedTable, StoreError};

/// How far back each read by write time re-reads before its cursor (`Timestamp` precision,
/// clock skew, writes in flight while the previous read ran).
pub const WRITE_OVERLAP: Duration = Duration::from_secs(5 * 60);

/// When the lead arrived, as late as the row lets us say: `CreatedTime`, else the end of its
/// date partition's day, else the last write (`Timestamp`). Never later than the row's last
/// write: a `CreatedTime` in the future is not believed.
pub fn arrival(row: &Entity) -> Option<DateTime<Utc>> {
    let written = get_datetime(row, "Timestamp");
    let claimed = get_datetime(row, "CreatedTime").or_else(|| {
        date_of_partition_key(get_str(row, "PartitionKey"))
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    });
    match (claimed, written) {
        (Some(c), Some(w)) => Some(c.min(w)),
        (c, w) => c.or(w),
    }
}

/// The key of a row.
pub fn key_of(row: &Entity) -> (String, String) {
    (get_str(row, "PartitionKey").to_string(), get_str(row, "RowKey").to_string())
}

#[derive(Clone)]
pub struct Discovery {
    leads: SharedTable,
}

impl Discovery {
    pub fn new(leads: &SharedTable) -> Self {
        Discovery { leads: leads.clone() }
    }

    pub fn leads(&self) -> &SharedTable {
        &self.leads
    }

    /// One date partition (the fast path).
    pub async fn partition(&self, date: NaiveDate, select: Option<&[String]>) -> Result<Vec<Entity>, StoreError> {
        let mut query = Query::partition(&partition_key_for(date));
        if let Some(columns) = select {
            query = query.select(columns);
        }
        self.leads.query(&query, usize::MAX).await
    }

    /// Rows written since `from`, whatever their keys, one slice of at most `rows` rows read from
    /// `resume`: the rows, and where the next slice starts (`None`: the read is complete).
    pub async fn written_since(
        &self,
        from: DateTime<Utc>,
        resume: Option<Continuation>,
        select: Option<&[String]>,
        rows: usize,
    ) -> Result<(Vec<Entity>, Option<Continuation>), StoreError> {
        let mut query = Query::filter(Filter::time("Timestamp", Op::Ge, from));
        if let Some(columns) = select {
            let mut columns = columns.to_vec();
            if !columns.iter().any(|c| c == "Timestamp") {
                columns.push("Timestamp".into());
            }
            query = query.select(&columns);
        }
        let mut pages = Pages::resume(query, resume);
        let mut found = Vec::new();
        while found.len() < rows {
            match pages.next(&*self.leads).await? {
                Some(page) => found.extend(page),
                None => break,
            }
        }
        Ok((found, pages.position().cloned()))
    }

    /// Every lead that arrived in (start, end], whatever its keys: the date partitions of the
    /// period, and every row written since its start (odd keys, late writes). Test leads are
    /// the caller's to drop.
    pub async fn arrived_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<Entity>, StoreError> {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut leads = Vec::new();
        let mut keep = |row: Entity, leads: &mut Vec<Entity>| {
            if arrival(&row).is_some_and(|t| t > start && t <= end) && seen.insert(key_of(&row)) {
                leads.push(row);
            }
        };
        // A row written just after midnight may carry the next date.
        let (first, last) = (start.date_naive(), end.date_naive() + Days::new(1));
        let mut date = first;
        while date <= last {
            for row in self.partition(date, None).await? {
                keep(row, &mut leads);
            }
            date = date + Days::new(1);
        }
        let overlap = chrono::Duration::from_std(WRITE_OVERLAP).unwrap_or_default();
        let mut pages = Pages::new(Query::filter(Filter::time("Timestamp", Op::Ge, start - overlap)));
        while let Some(page) = pages.next(&*self.leads).await? {
            for row in page {
                keep(row, &mut leads);
            }
        }
        leads.sort_by_key(arrival);
        Ok(leads)
    }

    /// Every row, a page at a time (retention, forget, export): memory stays flat in the
    /// table's size.
    pub fn every_row(&self, select: Option<&[&str]>) -> Pages {
        let query = match select {
            Some(columns) => Query::all().select(columns),
            None => Query::all(),
        };
        Pages::new(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Entity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn arrival_falls_back_to_later_evidence_and_never_passes_the_write() {
        let created =
            row(json!({"PartitionKey": "9:2F28:2F2018", "CreatedTime": "2018-09-28T09:00:00Z", "Timestamp": "2026-01-01T00:00:00Z"}));
        assert_eq!(arrival(&created).unwrap().to_rfc3339(), "2018-09-28T09:00:00+00:00");
        let by_partition = row(json!({"PartitionKey": "9:2F28:2F2018", "CreatedTime": "28/09/2018", "Timestamp": "2026-01-01T00:00:00Z"}));
        assert_eq!(arrival(&by_partition).unwrap().to_rfc3339(), "2018-09-29T00:00:00+00:00", "the end of the day");
        let by_write = row(json!({"PartitionKey": "northwind", "Timestamp": "2026-01-01T00:00:00Z"}));
        assert_eq!(arrival(&by_write).unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        let future = row(json!({"PartitionKey": "x", "CreatedTime": "2099-01-01T00:00:00Z", "Timestamp": "2026-01-01T00:00:00Z"}));
        assert_eq!(arrival(&future).unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
    }
}
