//! The date partitions the inbox reads, with the closed days kept in memory between pages.
//!
//! A list page reads one partition per day of its range (30 by default), the chart 90: on a
//! busy table that is most of a page's time and all of its table transactions. Days before
//! yesterday rarely change, so a closed day, once read, is answered from memory while all of
//! these hold:
//! - it was read less than [`CLOSED_DAY_MAX_AGE`] ago: what still changes on an old lead (a
//!   retried delivery, a late write) shows within that time; the lead page always reads the row
//!   itself;
//! - the notifier table's "leads removed" marker has not moved since: forget and retention,
//!   from whatever process (`handler leads forget` on a laptop, another instance), move it after
//!   deleting or redacting rows, so a forgotten customer never lingers on a page;
//! - this process changed no row of that day ("send again" drops the day).
//!
//! Today and yesterday are always read. A page costs the marker's point read plus those two
//! partitions and whatever closed days are not held. Memory is bounded by [`MAX_CACHED_ROWS`]:
//! the least recently used days go first. Hand-written rather than a caching crate: the rules
//! above (an age, a shared marker, days that are never held) are the whole of it, and a
//! general-purpose cache would still need each of them written around it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::clock::Clock;
use crate::lead::{date_of_partition_key, partition_key_for};
use crate::notify::notify_table::NotifyTable;
use crate::store::{Query, SharedTable, StoreError};
use crate::tools::StoredLead;

/// How long a closed day is answered from memory.
pub const CLOSED_DAY_MAX_AGE: TimeDelta = TimeDelta::minutes(2);
/// Lead rows held at most (a year of ~100 leads a day, or the chart's 90 days at ~300 a day).
pub const MAX_CACHED_ROWS: usize = 30_000;
/// Date partitions read at the same time.
const PARTITION_READS_AT_ONCE: usize = 8;

/// The rows of one day, shared with the cache: a page borrows them, it does not copy them.
pub type DayRows = Arc<Vec<StoredLead>>;

/// Reads date partitions for the inbox, holding closed days as the module says.
pub struct DayReader {
    leads: SharedTable,
    state: NotifyTable,
    columns: Vec<String>,
    clock: Clock,
    cache: Mutex<Cache>,
}

struct Cache {
    /// [`MAX_CACHED_ROWS`], smaller in tests.
    max_rows: usize,
    /// The "leads removed" marker the held days were read under.
    marker: Option<String>,
    days: HashMap<NaiveDate, HeldDay>,
    rows: usize,
    /// Increases with every use, for least-recently-used eviction.
    uses: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache { max_rows: MAX_CACHED_ROWS, marker: None, days: HashMap::new(), rows: 0, uses: 0 }
    }
}

struct HeldDay {
    rows: DayRows,
    read_at: DateTime<Utc>,
    last_used: u64,
}

impl DayReader {
    /// A reader of `leads` that reads only `columns` of each row.
    pub fn new(leads: &SharedTable, columns: Vec<String>, clock: Clock) -> Self {
        DayReader { leads: leads.clone(), state: NotifyTable::beside(leads), columns, clock, cache: Mutex::default() }
    }

    /// The rows of every day in `from..=to` (at most `max_days` days), one entry per day read.
    pub async fn between(&self, from: NaiveDate, to: NaiveDate, max_days: usize) -> Result<Vec<DayRows>, StoreError> {
        let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).take(max_days).collect();
        let marker = self.state.leads_removed_version().await?;
        let now = self.clock.now();
        let first_open_day = now.date_naive() - Days::new(1);

        let mut found: Vec<(NaiveDate, DayRows)> = Vec::with_capacity(days.len());
        let mut to_read = Vec::new();
        {
            let mut cache = self.lock();
            if cache.marker != marker {
                cache.clear_under(marker.clone());
            }
            for day in days {
                match cache.take(day, now) {
                    Some(rows) if day < first_open_day => found.push((day, rows)),
                    _ => to_read.push(day),
                }
            }
        }

        let columns = &self.columns;
        let read: Vec<(NaiveDate, DayRows)> = stream::iter(to_read)
            .map(|day| async move {
                let query = Query::partition(&partition_key_for(day)).select(columns);
                let rows = self.leads.query(&query, usize::MAX).await?;
                Ok::<_, StoreError>((day, Arc::new(rows.into_iter().map(StoredLead::from_entity).collect::<Vec<_>>())))
            })
            .buffer_unordered(PARTITION_READS_AT_ONCE)
            .try_collect()
            .await?;

        {
            let mut cache = self.lock();
            // Held only under the marker they were read after: had it moved meanwhile, the next
            // page would drop them anyway.
            if cache.marker == marker {
                for (day, rows) in read.iter().filter(|(day, _)| *day < first_open_day) {
                    cache.hold(*day, rows.clone(), now);
                }
            }
        }
        found.extend(read);
        found.sort_by_key(|(day, _)| *day);
        Ok(found.into_iter().map(|(_, rows)| rows).collect())
    }

    /// Drops the day of partition `partition_key`: this process has just changed a row in it.
    pub fn changed(&self, partition_key: &str) {
        if let Some(day) = date_of_partition_key(partition_key) {
            self.lock().drop_day(day);
        }
    }

    /// Rows held now (for tests and the benchmark's memory figure).
    pub fn held_rows(&self) -> usize {
        self.lock().rows
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Cache {
    fn clear_under(&mut self, marker: Option<String>) {
        self.days.clear();
        self.rows = 0;
        self.marker = marker;
    }

    /// A held day still young enough to answer with.
    fn take(&mut self, day: NaiveDate, now: DateTime<Utc>) -> Option<DayRows> {
        self.uses += 1;
        let uses = self.uses;
        let held = self.days.get_mut(&day)?;
        if now - held.read_at >= CLOSED_DAY_MAX_AGE || now < held.read_at {
            self.drop_day(day);
            return None;
        }
        held.last_used = uses;
        Some(held.rows.clone())
    }

    fn hold(&mut self, day: NaiveDate, rows: DayRows, read_at: DateTime<Utc>) {
        if rows.len() > self.max_rows {
            return;
        }
        self.drop_day(day);
        while self.rows + rows.len() > self.max_rows {
            let Some(oldest) = self.days.iter().min_by_key(|(_, h)| h.last_used).map(|(d, _)| *d) else { break };
            self.drop_day(oldest);
        }
        self.uses += 1;
        self.rows += rows.len();
        self.days.insert(day, HeldDay { rows, read_at, last_used: self.uses });
    }

    fn drop_day(&mut self, day: NaiveDate) {
        if let Some(held) = self.days.remove(&day) {
            self.rows -= held.rows.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Entity;
    use crate::lead::Lead;

    fn rows(n: usize) -> DayRows {
        let lead = StoredLead { partition_key: String::new(), row_key: String::new(), lead: Lead::default(), entity: Entity::new() };
        Arc::new(vec![lead; n])
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn the_least_recently_used_days_go_first_and_the_rows_stay_bounded() {
        let now = Utc::now();
        let mut cache = Cache { max_rows: 10, ..Cache::default() };
        cache.hold(day(1), rows(4), now);
        cache.hold(day(2), rows(4), now);
        assert!(cache.take(day(1), now).is_some(), "day 1 used after day 2");
        cache.hold(day(3), rows(4), now);
        assert_eq!(cache.rows, 8);
        assert!(cache.days.contains_key(&day(1)) && cache.days.contains_key(&day(3)), "day 2 went");
        cache.hold(day(4), rows(11), now);
        assert!(!cache.days.contains_key(&day(4)), "a day larger than the bound is never held");
        assert_eq!(cache.rows, 8);
        assert!(cache.take(day(1), now + CLOSED_DAY_MAX_AGE).is_none(), "too old");
        assert_eq!(cache.rows, 4);
    }
}
