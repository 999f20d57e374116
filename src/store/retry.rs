//! Riding out storage blips inside one call: a transient failure (`StoreError::Unavailable`: no
//! answer, a reset, a timeout, 5xx, 408, 429) is tried again with jittered exponential backoff
//! until a deadline, then reported. Everything else (`Changed`, `NotFound`, `Rejected`,
//! `AlreadyExists`) is an answer, returned at once: trying again would only repeat it.
//!
//! Why inside the request: Microsoft does not resend a lead that got a 5xx, so a two-second
//! hiccup that answered 503 at once lost leads. Why bounded: the Functions host times out an HTTP
//! request after 230 s, and a caller waiting on a dead storage account should hear so.

use std::future::Future;
use std::time::{Duration, Instant};

use super::StoreError;

/// One HTTP attempt's limit, connection included (the table client's `timeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one table call keeps trying through transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// No new attempt starts after this much time since the first one (0: one attempt only).
    /// An attempt in flight is bounded by [`REQUEST_TIMEOUT`], so a call ends at most that long
    /// after the deadline ([`longest_call`](Self::longest_call)).
    pub deadline: Duration,
    /// The first wait's upper bound; it doubles per attempt ("full jitter": each wait is drawn
    /// uniformly from zero to the bound, so many requests failing together do not retry together).
    pub first_wait: Duration,
    /// The bound stops doubling here, so recovery is noticed within about this long.
    pub max_wait: Duration,
}

impl RetryPolicy {
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

    /// Retries until `deadline`, waits 50 ms doubling, each wait at most 1 s.
    pub const fn with_deadline(deadline: Duration) -> Self {
        RetryPolicy { deadline, first_wait: Duration::from_millis(50), max_wait: Duration::from_secs(1) }
    }

    /// The longest one table call can take: the deadline, then one last attempt.
    pub fn longest_call(&self) -> Duration {
        self.deadline + REQUEST_TIMEOUT
    }

    /// One attempt, no retries.
    pub const fn none() -> Self {
        Self::with_deadline(Duration::ZERO)
    }

    /// The upper bound of the wait after the `retry`-th failure (0-based): `first_wait * 2^retry`,
    /// capped at `max_wait`.
    pub fn wait_bound(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.first_wait.saturating_mul(factor).min(self.max_wait)
    }

    /// A wait drawn uniformly from zero to [`wait_bound`](Self::wait_bound).
    fn jittered_wait(&self, retry: u32) -> Duration {
        let bound = self.wait_bound(retry).as_micros().min(u128::from(u64::MAX)) as u64;
        Duration::from_micros(fastrand::u64(0..=bound))
    }

    /// Runs `attempt` until it returns anything but `Unavailable`, or the deadline leaves no room
    /// for another wait. `attempt` is told how many attempts came before it and whether one of
    /// them ended `Unavailable` (then an earlier write may have landed without us hearing so).
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let start = Instant::now();
        let mut retry = 0u32;
        loop {
            let result = attempt(Attempt { number: retry + 1 }).await;
            match result {
                Err(StoreError::Unavailable(why)) => {
                    let wait = self.jittered_wait(retry);
                    if start.elapsed() + wait > self.deadline {
                        if retry > 0 {
                            tracing::warn!(call = what, attempts = retry + 1, error = %why, "storage still unavailable at the retry deadline");
                        }
                        return Err(StoreError::Unavailable(why));
                    }
                    tracing::debug!(call = what, attempt = retry + 1, wait_ms = wait.as_millis() as u64, error = %why, "storage unavailable, retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                other => {
                    if retry > 0 {
                        tracing::info!(call = what, attempts = retry + 1, "storage answered after transient failures");
                    }
                    return other;
                }
            }
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::with_deadline(Self::DEFAULT_DEADLINE)
    }
}

/// Which attempt of a call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
}

impl Attempt {
    /// True after an earlier attempt failed transiently: a write sent then may have landed even
    /// though its answer never arrived (only `Unavailable` is ever retried).
    pub fn is_retry(&self) -> bool {
        self.number > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn quick(deadline_ms: u64) -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_millis(deadline_ms),
            first_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(4),
        }
    }

    #[test]
    fn waits_double_from_50ms_and_are_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.wait_bound(0), Duration::from_millis(50));
        assert_eq!(p.wait_bound(1), Duration::from_millis(100));
        assert_eq!(p.wait_bound(4), Duration::from_millis(800));
        assert_eq!(p.wait_bound(5), Duration::from_secs(1));
        assert_eq!(p.wait_bound(1000), Duration::from_secs(1));
        for retry in 0..40 {
            assert!(p.jittered_wait(retry) <= p.wait_bound(retry));
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_an_answer() {
        let calls = Cell::new(0);
        let result = quick(10_000)
            .run("test", |a| {
                calls.set(calls.get() + 1);
                async move {
                    if a.number < 4 {
                        Err(StoreError::Unavailable("reset".into()))
                    } else {
                        Ok(a.is_retry())
                    }
                }
            })
            .await;
        assert!(result.unwrap(), "the fourth attempt knows it is a retry");
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test]
    async fn answers_are_never_retried() {
        for answer in [
            StoreError::Changed,
            StoreError::NotFound,
            StoreError::AlreadyExists,
            StoreError::Rejected { status: 403, code: "AuthenticationFailed".into(), message: String::new() },
        ] {
            let calls = Cell::new(0);
            let mut answer = Some(answer);
            let result: Result<(), _> = quick(10_000)
                .run("test", |_| {
                    calls.set(calls.get() + 1);
                    let e = answer.take().expect("called once");
                    async move { Err(e) }
                })
                .await;
            assert!(!matches!(result, Err(StoreError::Unavailable(_))));
            assert_eq!(calls.get(), 1);
        }
    }

    #[tokio::test]
    async fn no_deadline_means_one_attempt_and_a_deadline_ends_the_retries() {
        let calls = Cell::new(0);
        let result: Result<(), _> = RetryPolicy::none()
            .run("test", |_| {
                calls.set(calls.get() + 1);
                async { Err(StoreError::Unavailable("refused".into())) }
            })
            .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let result: Result<(), _> = quick(30)
            .run("test", |_| {
                calls.set(calls.get() + 1);
                async { Err(StoreError::Unavailable("refused".into())) }
            })
            .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "gives up and says why");
        assert!(calls.get() > 1, "retried before giving up");
    }
}
