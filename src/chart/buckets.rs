//! Time buckets for a period (start, end]: per hour for a period of up to two days, per day
//! beyond. A daily digest runs 08:00 to 08:00 by default: per day it would be two partial bars
//! (16 hours and 8) saying little, per hour it shows when the leads came; a weekly or monthly
//! digest per hour would be 168 to 744 slivers, per day 7 to 31 bars. Pure code.

use chrono::{DateTime, Duration, DurationRound, Utc};

/// Periods up to this long are drawn per hour.
pub const HOURLY_UP_TO: Duration = Duration::hours(48);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Hour,
    Day,
}

impl Unit {
    fn length(self) -> Duration {
        match self {
            Unit::Hour => Duration::hours(1),
            Unit::Day => Duration::days(1),
        }
    }

    /// "hour" or "day", for sentences.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Hour => "hour",
            Unit::Day => "day",
        }
    }
}

/// The buckets of one period, oldest first; bucket `i` covers `[starts[i], starts[i] + unit)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeBuckets {
    pub unit: Unit,
    pub starts: Vec<DateTime<Utc>>,
}

fn floor(t: DateTime<Utc>, unit: Unit) -> DateTime<Utc> {
    t.duration_trunc(unit.length()).unwrap_or(t)
}

impl TimeBuckets {
    /// The buckets covering (start, end]. `end` itself belongs to the bucket before it when it
    /// falls on a boundary (08:00 ends the 07:00 bucket rather than opening one of its own).
    pub fn for_period(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        let unit = if end - start <= HOURLY_UP_TO { Unit::Hour } else { Unit::Day };
        let first = floor(start, unit);
        let last = floor(end - Duration::nanoseconds(1), unit).max(first);
        let mut starts = vec![first];
        while let Some(next) = starts.last().map(|t| *t + unit.length()).filter(|t| *t <= last) {
            starts.push(next);
        }
        TimeBuckets { unit, starts }
    }

    /// The bucket `t` falls in, clamped to the period's first and last: every lead of the
    /// period is drawn, so the bars add up to the counts.
    pub fn bucket_of(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let (first, last) = (self.starts[0], self.starts[self.starts.len() - 1]);
        floor(t, self.unit).clamp(first, last)
    }

    /// The label under bucket `i`: "09:00" per hour, "Nov 21" per day (as the inbox's chart).
    pub fn label(&self, i: usize) -> String {
        match self.unit {
            Unit::Hour => self.starts[i].format("%H:%M").to_string(),
            Unit::Day => self.starts[i].format("%b %d").to_string(),
        }
    }

    /// A label under every this many buckets: at most about eight labels across.
    pub fn tick_every(&self) -> usize {
        let n = self.starts.len();
        let steps: &[usize] = match self.unit {
            Unit::Hour => &[1, 2, 3, 6, 12],
            Unit::Day => &[1, 2, 7, 14],
        };
        steps.iter().copied().find(|s| n.div_ceil(*s) <= 8).unwrap_or(steps[steps.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_day_is_drawn_per_hour_and_a_week_per_day() {
        let day = TimeBuckets::for_period(at("2026-11-21T08:00:00Z"), at("2026-11-22T08:00:00Z"));
        assert_eq!((day.unit, day.starts.len()), (Unit::Hour, 24));
        assert_eq!((day.label(0), day.label(23)), ("08:00".to_string(), "07:00".to_string()));
        assert_eq!(day.tick_every(), 3);
        let two = TimeBuckets::for_period(at("2026-11-20T08:00:00Z"), at("2026-11-22T08:00:00Z"));
        assert_eq!((two.unit, two.starts.len(), two.tick_every()), (Unit::Hour, 48, 6));
        let week = TimeBuckets::for_period(at("2026-11-15T08:00:00Z"), at("2026-11-22T08:00:00Z"));
        assert_eq!((week.unit, week.starts.len()), (Unit::Day, 8), "two partial days and six whole ones");
        assert_eq!((week.label(0), week.tick_every()), ("Nov 15".to_string(), 1));
        let month = TimeBuckets::for_period(at("2026-10-22T08:00:00Z"), at("2026-11-22T08:00:00Z"));
        assert_eq!((month.unit, month.starts.len(), month.tick_every()), (Unit::Day, 32, 7));
    }

    #[test]
    fn times_fall_in_their_bucket_and_the_ends_are_clamped() {
        let b = TimeBuckets::for_period(at("2026-11-21T08:00:00Z"), at("2026-11-22T08:00:00Z"));
        assert_eq!(b.bucket_of(at("2026-11-21T09:59:59Z")), at("2026-11-21T09:00:00Z"));
        assert_eq!(b.bucket_of(at("2026-11-22T08:00:00Z")), at("2026-11-22T07:00:00Z"), "the end closes the last bucket");
        assert_eq!(b.bucket_of(at("2026-11-01T00:00:00Z")), at("2026-11-21T08:00:00Z"));
        let odd = TimeBuckets::for_period(at("2026-11-21T08:30:15Z"), at("2026-11-21T08:30:16Z"));
        assert_eq!(odd.starts, vec![at("2026-11-21T08:00:00Z")], "a one-second period has its one bucket");
    }
}
