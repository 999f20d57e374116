//! NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`), as Azure
//! Functions timer triggers use them, for `handler serve`.

use std::str::FromStr;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Schedule(cron::Schedule);

impl Schedule {
    /// Parses a six-field NCRONTAB expression. Day-of-week names (`Mon-Fri`) mean the same as in
    /// Azure; numbers follow the `cron` crate (1 = Sunday), so prefer names.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields = expr.split_whitespace().count();
        if fields != 6 {
            return Err(format!("NCRONTAB has six fields (seconds first), this has {fields}"));
        }
        cron::Schedule::from_str(expr).map(Schedule).map_err(|e| format!("not a valid NCRONTAB expression: {e}"))
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.after(&t).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_minute_and_every_second() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T10:00:30Z").unwrap().with_timezone(&Utc);
        let m = Schedule::parse("0 */1 * * * *").unwrap();
        assert_eq!(m.next_after(t).unwrap().to_rfc3339(), "2026-11-22T10:01:00+00:00");
        let s = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(s.next_after(t).unwrap().to_rfc3339(), "2026-11-22T10:00:31+00:00");
    }

    #[test]
    fn five_fields_are_refused() {
        assert!(Schedule::parse("*/5 * * * *").is_err());
    }
}
