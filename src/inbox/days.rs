//! The date partitions the inbox reads, with the closed days kept in memory between pages.
//!
//! A list page reads one partition per day of its range (30 by default), the chart 90: on a
//! busy table that is most of a page's time and all of its table transactions. Days before
//! yesterday rarely change, so a closed day, once read, is answered from memory while all of
//! these hold:
//! - it was read less than [`CLOSED_DAY_MAX_AGE`] ago: what LeadNotify still changes on an old
//!   lead (a retried delivery) shows within that time; the lead page always reads the row itself;
//! - the notifier table's "leads changed" marker has not moved since: forget, retention and the
//!   inbox's "send again", from whatever process (`handler leads forget` on a laptop, another
//!   instance), move it after changing rows, so a forgotten customer is never shown again and a
//!   lead sent again shows its new state on the next page, whichever instance serves it. A page
//!   holds what it read only if the marker it read before reading is still the one held: a change
//!   made while it read is caught by the next page.
//!
//! Today and yesterday are always read. A page costs the marker's point read plus those two
//! partitions and whatever closed days are not held. Memory: at most [`MAX_CACHED_BYTES`] of
//! row text is held (the least recently used days go first), and a day past its age leaves
//! memory on the next page or the next [`DayReader::drop_expired`] (the app calls it every
//! minute), so rows a forget removed elsewhere do not linger in this process either.
//! Hand-written rather than a caching crate: the rules above (an age, a shared marker, days that
//! are never held, a byte budget) are the whole of it, and a general-purpose cache would still
//! need each of them written around it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::clock::Clock;
use crate::lead::partition_key_for;
use crate::notify::notify_table::NotifyTable;
use crate::store::{Query, SharedTable, StoreError};
use crate::tools::StoredLead;

/// How long a closed day is answered from memory.
pub const CLOSED_DAY_MAX_AGE: TimeDelta = TimeDelta::minutes(2);
/// Memory held at most, as [`approximate_size`] estimates it (each row's text twice, plus an
/// overhead): a table of long hostile values fits fewer rows, not more memory.
pub const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;
/// What a held day and each held row cost beyond their text (map entries, allocations).
const DAY_OVERHEAD_BYTES: usize = 256;
const ROW_OVERHEAD_BYTES: usize = 512;
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
    /// [`MAX_CACHED_BYTES`], smaller in tests.
    max_bytes: usize,
    /// The "leads changed" marker the held days were read under.
    marker: Option<String>,
    days: HashMap<NaiveDate, HeldDay>,
    bytes: usize,
    /// Increases with every use, for least-recently-used eviction.
    uses: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache { max_bytes: MAX_CACHED_BYTES, marker: None, days: HashMap::new(), bytes: 0, uses: 0 }
    }
}

struct HeldDay {
    rows: DayRows,
    bytes: usize,
    read_at: DateTime<Utc>,
    last_used: u64,
}

/// About what a row takes in memory: its text twice (the row as read, and the lead parsed from
/// it) and a fixed overhead.
fn approximate_size(l: &StoredLead) -> usize {
    let text: usize = l.entity.iter().map(|(k, v)| k.len() + v.as_str().map_or(16, str::len)).sum();
    2 * text + ROW_OVERHEAD_BYTES
}

impl DayReader {
    /// A reader of `leads` that reads only `columns` of each row.
    pub fn new(leads: &SharedTable, columns: Vec<String>, clock: Clock) -> Self {
        DayReader { leads: leads.clone(), state: NotifyTable::beside(leads), columns, clock, cache: Mutex::default() }
    }

    /// The rows of every day in `from..=to` (at most `max_days` days), one entry per day read.
    pub async fn between(&self, from: NaiveDate, to: NaiveDate, max_days: usize) -> Result<Vec<DayRows>, StoreError> {
        let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).take(max_days).collect();
        let marker = self.state.leads_changed_version().await?;
        let now = self.clock.now();
        let first_open_day = now.date_naive() - Days::new(1);
        // A version the store did not name cannot tell a change: nothing is held under it.
        let can_hold = marker.as_deref() != Some("");

        let mut found: Vec<(NaiveDate, DayRows)> = Vec::with_capacity(days.len());
        let mut to_read = Vec::new();
        {
            let mut cache = self.lock();
            if cache.marker != marker {
                cache.clear_under(marker.clone());
            }
            cache.drop_expired(now);
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
            if can_hold && cache.marker == marker {
                for (day, rows) in read.iter().filter(|(day, _)| *day < first_open_day) {
                    cache.hold(*day, rows.clone(), now);
                }
            }
        }
        found.extend(read);
        found.sort_by_key(|(day, _)| *day);
        Ok(found.into_iter().map(|(_, rows)| rows).collect())
    }

    /// Lets go of the days past their age: rows leave memory even when no page asks for them.
    pub fn drop_expired(&self) {
        let now = self.clock.now();
        self.lock().drop_expired(now);
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Cache {
    fn clear_under(&mut self, marker: Option<String>) {
        self.days.clear();
        self.bytes = 0;
        self.marker = marker;
    }

    fn fresh(held: &HeldDay, now: DateTime<Utc>) -> bool {
        now >= held.read_at && now - held.read_at < CLOSED_DAY_MAX_AGE
    }

    fn drop_expired(&mut self, now: DateTime<Utc>) {
        let old: Vec<NaiveDate> = self.days.iter().filter(|(_, h)| !Self::fresh(h, now)).map(|(d, _)| *d).collect();
        for day in old {
            self.drop_day(day);
        }
    }

    /// A held day still young enough to answer with.
    fn take(&mut self, day: NaiveDate, now: DateTime<Utc>) -> Option<DayRows> {
        self.uses += 1;
        let uses = self.uses;
        let held = self.days.get_mut(&day)?;
        if !Self::fresh(held, now) {
            self.drop_day(day);
            return None;
        }
        held.last_used = uses;
        Some(held.rows.clone())
    }

    fn hold(&mut self, day: NaiveDate, rows: DayRows, read_at: DateTime<Utc>) {
        let bytes = DAY_OVERHEAD_BYTES + rows.iter().map(approximate_size).sum::<usize>();
        if bytes > self.max_bytes {
            return;
        }
        self.drop_day(day);
        while self.bytes + bytes > self.max_bytes {
            let Some(oldest) = self.days.iter().min_by_key(|(_, h)| h.last_used).map(|(d, _)| *d) else { break };
            self.drop_day(oldest);
        }
        self.uses += 1;
        self.bytes += bytes;
        self.days.insert(day, HeldDay { rows, bytes, read_at, last_used: self.uses });
    }

    fn drop_day(&mut self, day: NaiveDate) {
        if let Some(held) = self.days.remove(&day) {
            self.bytes -= held.bytes;
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
    fn the_least_recently_used_days_go_first_and_the_bytes_stay_bounded() {
        let now = Utc::now();
        let day_of = |n: usize| DAY_OVERHEAD_BYTES + n * approximate_size(&rows(1)[0]);
        let mut cache = Cache { max_bytes: day_of(4) * 2 + day_of(1), ..Cache::default() };
        cache.hold(day(1), rows(4), now);
        cache.hold(day(2), rows(4), now);
        assert!(cache.take(day(1), now).is_some(), "day 1 used after day 2");
        cache.hold(day(3), rows(4), now);
        assert_eq!(cache.bytes, day_of(4) * 2);
        assert!(cache.days.contains_key(&day(1)) && cache.days.contains_key(&day(3)), "day 2 went");
        cache.hold(day(4), rows(20), now);
        assert!(!cache.days.contains_key(&day(4)), "a day larger than the budget is never held");
        assert!(cache.take(day(1), now + CLOSED_DAY_MAX_AGE).is_none(), "too old");
        assert_eq!(cache.bytes, day_of(4));
    }

    #[test]
    fn empty_days_count_too_and_expired_days_leave_without_being_asked_for() {
        let now = Utc::now();
        let mut cache = Cache { max_bytes: 10 * DAY_OVERHEAD_BYTES, ..Cache::default() };
        for d in 1..=28 {
            cache.hold(day(d), rows(0), now);
        }
        assert_eq!(cache.days.len(), 10, "a day without leads still costs its overhead");
        cache.drop_expired(now + CLOSED_DAY_MAX_AGE);
        assert!(cache.days.is_empty() && cache.bytes == 0);
    }

    #[test]
    fn long_values_fill_the_budget_sooner() {
        let mut long = rows(1)[0].clone();
        long.entity.insert("Description".into(), "x".repeat(32 * 1024).into());
        assert!(approximate_size(&long) > 64 * 1024, "counted twice: the row and the parsed lead");
    }
}
