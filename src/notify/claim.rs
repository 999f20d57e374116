//! What lead rows and digest periods share: the claim that keeps two runs from sending the same
//! thing (an ETag-guarded write of a lease), and the one pure decision "this attempt's outcome,
//! after n attempts → the next state", with the columns it writes.
//!
//! A lead row keeps one set of columns per channel (`Notify<Channel>State`, …); a digest row
//! keeps one set (`State`, …). Both are the same parts under a prefix, so one [`Verdict`]
//! records both.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::lead_state::DeliveryState;
use super::retry_schedule::retry_delay;
use super::transport::{DeliveryError, SendOutcome};
use crate::entity::{put_datetime, Entity};
use crate::store::{RetryPolicy, StoreError, Table};

/// How long a claim keeps other runs off a lead (or a digest period). It must outlast what a run
/// does between two writes to the row: after the claim, up to two storage calls (the customer
/// journey), the sends (concurrent, each cut at the send timeout) and the first record; each
/// later record renews the claim. Doubled send time and a minute on top are the margin.
pub fn lease_for(send_timeout: Duration, storage: &RetryPolicy) -> Duration {
    send_timeout * 2 + storage.longest_call() * 3 + Duration::from_secs(60)
}

/// Writes `claim` (which sets a lease) onto the row if it still has `etag`: the new ETag when
/// this run has the row, `None` when another run changed or removed it first.
pub async fn claim<T: Table + ?Sized>(table: &T, pk: &str, rk: &str, claim: &Entity, etag: &str) -> Result<Option<String>, StoreError> {
    match table.merge(pk, rk, claim, etag).await {
        Ok(etag) => Ok(Some(etag)),
        Err(StoreError::Changed | StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What one attempt comes to.
#[derive(Debug)]
pub enum Verdict {
    Delivered,
    /// Not sent on purpose, for good (the reason is recorded).
    Skipped(DeliveryError),
    /// Failed; tried again after `wait`.
    Retry {
        error: DeliveryError,
        wait: Duration,
    },
    /// Failed for good: a permanent error, or the last attempt allowed.
    Failed(DeliveryError),
}

/// The decision: `attempts` counts this one. Skipping is final only where the caller allows it
/// (a digest that skips has not been sent, so it has failed).
pub fn decide(outcome: SendOutcome, attempts: u32, max_attempts: u32, can_skip: bool) -> Verdict {
    match outcome {
        SendOutcome::Delivered => Verdict::Delivered,
        SendOutcome::Skipped(reason) if can_skip => Verdict::Skipped(reason),
        SendOutcome::Retry { error, after } if attempts < max_attempts => Verdict::Retry { error, wait: retry_delay(attempts, after) },
        SendOutcome::Retry { error, .. } | SendOutcome::Permanent(error) | SendOutcome::Skipped(error) => Verdict::Failed(error),
    }
}

impl Verdict {
    pub fn state(&self) -> DeliveryState {
        match self {
            Verdict::Delivered => DeliveryState::Delivered,
            Verdict::Skipped(_) => DeliveryState::Skipped,
            Verdict::Retry { .. } => DeliveryState::Pending,
            Verdict::Failed(_) => DeliveryState::Failed,
        }
    }

    pub fn error(&self) -> Option<&DeliveryError> {
        match self {
            Verdict::Delivered => None,
            Verdict::Skipped(e) | Verdict::Retry { error: e, .. } | Verdict::Failed(e) => Some(e),
        }
    }

    /// The columns recording this verdict, each named `prefix` + part (`State`, `Attempts`,
    /// `NextAttempt`, `LastError`, `DeliveredAt`). The receiver's answer goes to `LastError`
    /// only, never to a log.
    pub fn record(&self, prefix: &str, attempts: u32, at: DateTime<Utc>) -> Entity {
        let mut e = Entity::new();
        e.insert(format!("{prefix}State"), self.state().as_str().into());
        e.insert(format!("{prefix}Attempts"), json!(attempts));
        e.insert(format!("{prefix}LastError"), self.error().map(DeliveryError::for_table).unwrap_or_default().into());
        match self {
            Verdict::Delivered => put_datetime(&mut e, &format!("{prefix}DeliveredAt"), at),
            Verdict::Retry { wait, .. } => put_datetime(&mut e, &format!("{prefix}NextAttempt"), at + *wait),
            Verdict::Skipped(_) | Verdict::Failed(_) => {}
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::get_datetime;

    #[test]
    fn outcome_and_attempts_decide_the_next_state() {
        let err = || DeliveryError::new("boom");
        let retry = || SendOutcome::Retry { error: err(), after: None };
        assert_eq!(decide(SendOutcome::Delivered, 1, 3, true).state(), DeliveryState::Delivered);
        assert_eq!(decide(retry(), 1, 3, true).state(), DeliveryState::Pending);
        assert_eq!(decide(retry(), 3, 3, true).state(), DeliveryState::Failed, "the last attempt allowed");
        assert_eq!(decide(SendOutcome::Permanent(err()), 1, 3, true).state(), DeliveryState::Failed);
        assert_eq!(decide(SendOutcome::Skipped(err()), 1, 3, true).state(), DeliveryState::Skipped);
        assert_eq!(decide(SendOutcome::Skipped(err()), 1, 3, false).state(), DeliveryState::Failed);
        let after = Some(Duration::from_secs(3600));
        match decide(SendOutcome::Retry { error: err(), after }, 1, 3, true) {
            Verdict::Retry { wait, .. } => assert_eq!(wait, Duration::from_secs(3600), "Retry-After is honoured"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_verdict_records_under_its_prefix() {
        let at = Utc::now();
        let e = decide(SendOutcome::Retry { error: DeliveryError::new("503"), after: None }, 2, 5, true).record("NotifySlack", 2, at);
        assert_eq!(e["NotifySlackState"], "pending");
        assert_eq!(e["NotifySlackAttempts"], 2);
        assert!(get_datetime(&e, "NotifySlackNextAttempt").is_some_and(|t| t > at));
        let d = Verdict::Delivered.record("", 1, at);
        assert_eq!((d["State"].as_str(), d["LastError"].as_str()), (Some("delivered"), Some("")));
    }

    #[test]
    fn the_lease_outlasts_what_a_run_does_between_two_writes() {
        for secs in [5, 30, 120] {
            for storage_secs in [0, 10, 60] {
                let (timeout, storage) = (Duration::from_secs(secs), RetryPolicy::with_deadline(Duration::from_secs(storage_secs)));
                // Journey record and story, the concurrent sends, the first record.
                let longest = storage.longest_call() * 2 + timeout + storage.longest_call();
                assert!(lease_for(timeout, &storage) > longest, "{secs} s sends, {storage_secs} s storage");
            }
        }
        let defaults = lease_for(Duration::from_secs(30), &RetryPolicy::default());
        assert_eq!(defaults.as_secs(), 240, "the README says so");
    }
}
