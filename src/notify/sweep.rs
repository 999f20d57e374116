//! The safety-net sweep's cursor, as pure decisions: whether a slice runs now, and where the
//! next one starts. The run (`run.rs`) reads the slice and handles its rows; the cursor is
//! stored by `notify_table.rs`.
//!
//! A pass reads every row written since its `from`, a slice per run, resuming from a stored
//! continuation, so a pass over a large table spreads over several runs. When a pass completes,
//! the next starts at the completed pass's start less [`WRITE_OVERLAP`], and no later than the
//! oldest row the pass left unfinished; it never moves back before the pass it follows.

use chrono::{DateTime, Duration, Utc};

use super::discovery::WRITE_OVERLAP;
use super::notify_table::SweepCursor;
use crate::store::Continuation;

/// The cursor a slice reads from now, or `None` when no pass is under way and none is due.
/// `every`: `NOTIFY_SWEEP_MINUTES`; `lookback`: where a first deployment's first pass starts.
pub fn slice_now(stored: Option<SweepCursor>, now: DateTime<Utc>, every: Duration, lookback: Duration) -> Option<SweepCursor> {
    let first = stored.is_none();
    let mut cursor = stored.unwrap_or(SweepCursor { from: Some(now - lookback), ..SweepCursor::default() });
    if cursor.resume.is_some() {
        return Some(cursor);
    }
    if !first && cursor.last_pass.is_some_and(|t| now - t < every) {
        return None;
    }
    cursor.from = Some(cursor.from.unwrap_or(now - lookback));
    cursor.pass_started = Some(now);
    cursor.oldest_open = None;
    Some(cursor)
}

/// The cursor after a slice: `oldest_open` is the oldest write of a row this slice left
/// unfinished, `next` where the following slice starts (`None`: the pass is complete).
pub fn after_slice(
    mut cursor: SweepCursor,
    oldest_open: Option<DateTime<Utc>>,
    next: Option<Continuation>,
    now: DateTime<Utc>,
) -> SweepCursor {
    cursor.oldest_open = match (cursor.oldest_open, oldest_open) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    cursor.resume = next;
    if cursor.resume.is_some() {
        return cursor;
    }
    let overlap = Duration::from_std(WRITE_OVERLAP).unwrap_or_default();
    let started = cursor.pass_started.unwrap_or(now);
    let mut next_from = cursor.oldest_open.map_or(started - overlap, |w| w.min(started - overlap));
    if let Some(from) = cursor.from {
        next_from = next_from.max(from);
    }
    SweepCursor { from: Some(next_from), pass_started: None, last_pass: Some(now), resume: None, oldest_open: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_pass_starts_when_due_resumes_until_done_then_waits() {
        let (every, lookback) = (Duration::minutes(15), Duration::hours(24));
        let now = at("2026-12-06T10:00:00Z");
        let first = slice_now(None, now, every, lookback).unwrap();
        assert_eq!(first.from, Some(now - lookback), "a first deployment starts 24 h back");
        let more = Continuation { partition_key: "p".into(), row_key: Some("r".into()) };
        let mid = after_slice(first, Some(at("2026-12-06T09:00:00Z")), Some(more.clone()), now);
        assert_eq!(mid.resume, Some(more));
        let resumed = slice_now(Some(mid), now + Duration::minutes(1), every, lookback).unwrap();
        assert!(resumed.resume.is_some(), "a pass under way goes on whatever the period");
        let done = after_slice(resumed, None, None, now + Duration::minutes(1));
        assert_eq!(done.from, Some(at("2026-12-06T09:00:00Z")), "no later than the oldest row left unfinished");
        assert_eq!(done.last_pass, Some(now + Duration::minutes(1)));
        assert!(slice_now(Some(done.clone()), now + Duration::minutes(5), every, lookback).is_none(), "not due yet");
        let next = slice_now(Some(done), now + Duration::minutes(17), every, lookback).unwrap();
        assert_eq!(next.pass_started, Some(now + Duration::minutes(17)));
    }

    #[test]
    fn a_complete_pass_moves_to_its_start_less_the_overlap_never_back() {
        let now = at("2026-12-06T10:00:00Z");
        let cursor = SweepCursor { from: Some(at("2026-12-06T09:50:00Z")), pass_started: Some(now), ..SweepCursor::default() };
        let done = after_slice(cursor, None, None, now);
        assert_eq!(done.from, Some(now - Duration::minutes(5)));
        let cursor = SweepCursor { from: Some(at("2026-12-06T09:58:00Z")), pass_started: Some(now), ..SweepCursor::default() };
        assert_eq!(after_slice(cursor, None, None, now).from, Some(at("2026-12-06T09:58:00Z")), "never before the pass it follows");
    }
}
