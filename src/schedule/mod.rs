//! NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`), as Azure
//! Functions timer triggers read them, for `handler serve`.
//!
//! Hand-written rather than built on the `cron` crate: that crate numbers days of the week
//! 1-7 from Sunday, so NCRONTAB's 0-6 had to be rewritten before parsing, and its errors then
//! quoted the rewritten text (`0 0 9 * * 1-7` failed on a `2-1` the user never wrote). The
//! grammar is small, and a bitset per field with a field-by-field search is less code than
//! translating one dialect into another, and lets every error quote the user's own text.
//!
//! Read as NCrontab (<https://github.com/atifaziz/NCrontab>), the library the Functions host
//! uses, with `IncludingSeconds`:
//! - each field is `*`, a value, a range `a-b`, or a list `a,b,c` of values and ranges; any of
//!   these may carry a step: `*/n`, `a-b/n`, and `a/n` (which means `a-max/n`);
//! - months are 1-12 or English names, days of the week 0-6 from Sunday or English names;
//!   names are case-insensitive and may be shortened to any prefix, first match winning
//!   (`Jan`, `January`, `Ju` = June), as `CrontabFieldImpl.ParseValue` does;
//! - a day must match BOTH the day-of-month and the day-of-week field. NCrontab's
//!   `CrontabSchedule.TryGetNextOccurrence` picks the day from the day-of-month field and then
//!   returns it only `if (_daysOfWeek.Contains((int)nextTime.DayOfWeek))`, otherwise moves on
//!   to the next day; its README: `* 12 16 * Mon` runs on Mondays "but only if the day is the
//!   16th of the month". (Vixie cron's "either field" rule is NOT what Azure does.)
//!
//! - the day-of-week field is 0-6: `7` is refused with a hint to write `0` for Sunday, as the
//!   Functions host (which reads the same setting) refuses it; accepting it here would run
//!   `handler serve` on a schedule the timer trigger never runs.
//!
//! Where this differs from NCrontab, it is stricter:
//! - a backwards range (`17-9`) and a zero step (`*/0`) are refused; NCrontab silently swaps
//!   the range ends and treats the step as 1.
//!
//! Times are UTC, as on the Functions host without `WEBSITE_TIME_ZONE`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

/// The Gregorian calendar repeats every 400 years (146097 days, a whole number of weeks), so
/// a schedule with no tick in 400 years (e.g. `0 0 0 31 2 *`) has none at all.
const SEARCH_YEARS: i32 = 400;

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 6] = [
    Field { name: "second", min: 0, max: 59, names: &[] },
    Field { name: "minute", min: 0, max: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, names: &[] },
    Field { name: "day", min: 1, max: 31, names: &[] },
    Field { name: "month", min: 1, max: 12, names: &MONTHS },
    Field { name: "day-of-week", min: 0, max: 6, names: &DAYS },
];
const DOW: usize = 5;

#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    /// Bit `v` set when value `v` is allowed: seconds, minutes, hours, days 1-31, months 1-12,
    /// days of the week 0-6 from Sunday.
    bits: [u64; 6],
}

impl Schedule {
    /// Parses a six-field NCRONTAB expression as Azure Functions reads it.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        match parts.len() {
            6 => {}
            0 => {
                return Err("the NCRONTAB schedule is empty; Azure Functions needs six fields: \
                             `{second} {minute} {hour} {day} {month} {day-of-week}`"
                    .to_string())
            }
            5 => {
                return Err(format!(
                    "`{expr}` has five fields; Azure Functions needs six, seconds first: \
                     `{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}` (try `0 {}`)",
                    parts.join(" ")
                ))
            }
            n => {
                return Err(format!(
                    "`{expr}` has {n} fields; Azure Functions needs six: `{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}`"
                ))
            }
        }
        let mut bits = [0u64; 6];
        for (i, part) in parts.iter().enumerate() {
            bits[i] = parse_field(i, part).map_err(|e| format!("{e} in `{expr}`"))?;
        }
        Ok(Schedule { text: expr.to_string(), bits })
    }

    /// The latest tick at or before `t`, looking back as far as the calendar repeats; `None`
    /// when there is none.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Doubling the look-back finds the tick in a few calls whatever the schedule's spacing
        // (every second or once a year), and walks forward over few ticks.
        let limit = Duration::days(366 * 401);
        let mut back = Duration::seconds(1);
        loop {
            let from = t.checked_sub_signed(back)?;
            if let Some(first) = self.next_after(from).filter(|x| *x <= t) {
                let mut last = first;
                while let Some(next) = self.next_after(last).filter(|x| *x <= t) {
                    last = next;
                }
                return Some(last);
            }
            if back > limit {
                return None;
            }
            back = back * 2;
        }
    }

    /// The first tick strictly after `t`, or `None` if there is none (`0 0 0 31 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = t.naive_utc().with_nanosecond(0)?.checked_add_signed(Duration::seconds(1))?;
        let last_year = start.year().checked_add(SEARCH_YEARS)?;
        let mut date = start.date();
        let mut from = (start.hour(), start.minute(), start.second());
        loop {
            if date.year() > last_year {
                return None;
            }
            if !self.has(4, date.month()) {
                // Jump to the 1st of the next allowed month.
                date = match next_bit(self.bits[4], date.month() + 1) {
                    Some(m) => NaiveDate::from_ymd_opt(date.year(), m, 1)?,
                    None => NaiveDate::from_ymd_opt(date.year().checked_add(1)?, next_bit(self.bits[4], 1)?, 1)?,
                };
                from = (0, 0, 0);
                continue;
            }
            if !self.has(3, date.day()) {
                // Jump to the next allowed day of this month, or the 1st of the next month.
                date = match next_bit(self.bits[3], date.day() + 1).and_then(|d| date.with_day(d)) {
                    Some(d) => d,
                    None => first_of_next_month(date)?,
                };
                from = (0, 0, 0);
                continue;
            }
            if self.has(DOW, date.weekday().num_days_from_sunday()) {
                if let Some(time) = self.first_time_from(from) {
                    return Some(NaiveDateTime::new(date, time).and_utc());
                }
            }
            date = date.succ_opt()?;
            from = (0, 0, 0);
        }
    }

    fn has(&self, field: usize, value: u32) -> bool {
        (self.bits[field] >> value) & 1 == 1
    }

    /// The first allowed time of day at or after `h0:m0:s0`.
    fn first_time_from(&self, (h0, m0, s0): (u32, u32, u32)) -> Option<NaiveTime> {
        let [seconds, minutes, hours, ..] = self.bits;
        let mut h = next_bit(hours, h0)?;
        loop {
            let mut minute = next_bit(minutes, if h == h0 { m0 } else { 0 });
            while let Some(m) = minute {
                if let Some(s) = next_bit(seconds, if (h, m) == (h0, m0) { s0 } else { 0 }) {
                    return NaiveTime::from_hms_opt(h, m, s);
                }
                minute = next_bit(minutes, m + 1);
            }
            h = next_bit(hours, h + 1)?;
        }
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Schedule::parse(s)
    }
}

/// The expression as the user wrote it.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The lowest set bit at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    let rest = bits.checked_shr(from)?.checked_shl(from)?;
    (rest != 0).then(|| rest.trailing_zeros())
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    match date.month() {
        12 => NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1),
        m => NaiveDate::from_ymd_opt(date.year(), m + 1, 1),
    }
}

/// One field as a bitset; errors name the field and quote the user's text (the caller adds
/// the whole expression).
fn parse_field(index: usize, text: &str) -> Result<u64, String> {
    let field = &FIELDS[index];
    let name = field.name;
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name} `{text}` has an empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step = parse_number(s)
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("{name} step `{s}` in `{item}` is not a whole number of at least 1"))?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(field, a)?, parse_value(field, b)?);
            if a > b {
                return Err(format!("{name} range `{range}` runs backwards; write the smaller end first"));
            }
            (a, b)
        } else {
            let v = parse_value(field, range)?;
            (v, if step.is_some() { field.max.max(v) } else { v })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v = v.saturating_add(step.unwrap_or(1));
        }
    }
    Ok(bits)
}

fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Long runs of digits are out of range, not unreadable.
    Some(s.parse::<u32>().unwrap_or(u32::MAX))
}

fn parse_value(field: &Field, s: &str) -> Result<u32, String> {
    let name = field.name;
    if s.is_empty() {
        return Err(format!("{name} has a range with a missing end"));
    }
    if let Some(n) = parse_number(s) {
        if n < field.min || n > field.max {
            let hint = if std::ptr::eq(field, &FIELDS[DOW]) && n == 7 { " (Sunday is `0`: the Functions host refuses `7`)" } else { "" };
            return Err(format!("{name} `{s}` is out of range {}-{}{hint}", field.min, field.max));
        }
        return Ok(n);
    }
    if field.names.is_empty() {
        return Err(format!("{name} `{s}` is not a number {}-{}", field.min, field.max));
    }
    let lower = s.to_ascii_lowercase();
    match field.names.iter().position(|n| n.to_ascii_lowercase().starts_with(&lower)) {
        Some(i) => Ok(field.min + i as u32),
        None => Err(format!(
            "{name} `{s}` is neither a number {}-{} nor a name ({}, ... {}, or three letters as `{}`)",
            field.min,
            field.max,
            field.names[0],
            field.names[field.names.len() - 1],
            &field.names[1][..3]
        )),
    }
}

#[cfg(test)]
mod tests;
