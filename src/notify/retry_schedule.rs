//! When to try a failed notification again: the schedule as data, spread by jitter (so leads
//! that failed together do not all come back in the same second), bounded by the receiver's
//! `Retry-After`.

use std::time::{Duration, SystemTime};

/// Wait before attempt n+1 after attempt n failed (index n-1; the last entry repeats). Data, so
/// the schedule reads at a glance: about 16 hours from first to tenth attempt.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(2 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
];

/// Each scheduled wait is stretched by a random 0–20 %.
pub const JITTER_PERCENT: u64 = 20;

/// A `Retry-After` longer than this is capped: the lead must not wait for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait after `attempts` failed attempts: the jittered schedule, or the receiver's
/// `Retry-After` when it asks for longer (capped). Never shorter than the schedule.
pub fn retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let idx = (attempts.max(1) as usize - 1).min(RETRY_SCHEDULE.len() - 1);
    let scheduled = RETRY_SCHEDULE[idx];
    let jittered = scheduled + scheduled * fastrand::u64(0..=JITTER_PERCENT) as u32 / 100;
    match retry_after {
        Some(ra) => ra.min(MAX_RETRY_AFTER).max(jittered),
        None => jittered,
    }
}

/// Reads a `Retry-After` value in either form RFC 9110 allows: delay-seconds, or an HTTP-date
/// (a date in the past means "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within_jitter(d: Duration, base: u64) -> bool {
        let base = Duration::from_secs(base);
        d >= base && d <= base + base * JITTER_PERCENT as u32 / 100
    }

    #[test]
    fn retry_schedule_grows_with_jitter_and_honours_retry_after() {
        for _ in 0..100 {
            assert!(within_jitter(retry_delay(1, None), 30));
            assert!(within_jitter(retry_delay(2, None), 60));
            assert!(within_jitter(retry_delay(50, None), 6 * 3600));
            assert!(within_jitter(retry_delay(1, Some(Duration::from_secs(1))), 30));
        }
        assert_eq!(retry_delay(1, Some(Duration::from_secs(600))), Duration::from_secs(600));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(10 * 86400))), MAX_RETRY_AFTER);
        // Jitter really spreads: 100 draws are not all the same.
        let draws: std::collections::HashSet<Duration> = (0..100).map(|_| retry_delay(5, None)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn retry_after_in_both_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 5 ", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        for junk in ["", "-1", "soon", "1.5", "Sun, 06 Nov 1994 25:00:00 GMT", "\u{0}"] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk:?}");
        }
    }
}
