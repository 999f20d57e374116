//! NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`), as Azure
//! Functions timer triggers use them, for `handler serve`.

use std::str::FromStr;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Schedule(cron::Schedule);

impl Schedule {
    /// Parses a six-field NCRONTAB expression as Azure Functions reads it.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let mut fields: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
        if fields.len() != 6 {
            return Err(format!("NCRONTAB has six fields (seconds first), this has {}", fields.len()));
        }
        fields[5] = shift_day_numbers(&fields[5])?;
        cron::Schedule::from_str(&fields.join(" ")).map(Schedule).map_err(|e| format!("not a valid NCRONTAB expression: {e}"))
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.after(&t).next()
    }
}

/// NCRONTAB numbers days of the week 0-6 from Sunday (7 is Sunday too); the `cron` crate 1-7
/// from Sunday. Names and `*` pass unchanged; steps (`/2`) are counts, not days, and stay.
fn shift_day_numbers(field: &str) -> Result<String, String> {
    let shift = |day: &str| -> Result<String, String> {
        match day.parse::<u8>() {
            Ok(n @ 0..=6) => Ok((n + 1).to_string()),
            Ok(7) => Ok("1".to_string()),
            Ok(_) => Err(format!("day of week `{day}` is not 0-6")),
            Err(_) => Ok(day.to_string()),
        }
    };
    field
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => format!("{}-{}", shift(a)?, shift(b)?),
                None => shift(range)?,
            };
            Ok(match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|parts| parts.join(","))
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
    fn days_of_week_count_from_sunday_zero_as_in_azure() {
        assert_eq!(shift_day_numbers("1-5").unwrap(), "2-6");
        assert_eq!(shift_day_numbers("0,6").unwrap(), "1,7");
        assert_eq!(shift_day_numbers("*/2").unwrap(), "*/2");
        assert_eq!(shift_day_numbers("Mon-Fri").unwrap(), "Mon-Fri");
        assert!(shift_day_numbers("9").is_err());
        // Saturday 2026-11-21 10:00 UTC: a weekday schedule fires next on Monday the 23rd.
        let sat = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&Utc);
        let weekdays = Schedule::parse("0 0 9 * * 1-5").unwrap();
        assert_eq!(weekdays.next_after(sat).unwrap().to_rfc3339(), "2026-11-23T09:00:00+00:00");
        let sundays = Schedule::parse("0 0 9 * * 0").unwrap();
        assert_eq!(sundays.next_after(sat).unwrap().to_rfc3339(), "2026-11-22T09:00:00+00:00");
    }

    #[test]
    fn five_fields_are_refused() {
        assert!(Schedule::parse("*/5 * * * *").is_err());
    }
}
