//! What one LeadNotify run did, for logs, `handler notify`, the host's invocation log and the
//! benchmark. Below the poller and the jobs it runs (digest, retention), which all add to it.

use std::fmt;

/// What one poll did, for logs, `handler notify` and the benchmark.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PollReport {
    pub partitions_read: u32,
    pub rows_read: u32,
    /// The safety net ran in this poll.
    pub swept: bool,
    pub sweep_rows_read: u32,
    pub unfinished: u32,
    pub claimed: u32,
    pub delivered: u32,
    pub retrying: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Leads pending past [`MAX_PENDING_DAYS`](super::deliver::MAX_PENDING_DAYS), now marked failed.
    pub expired: u32,
    /// Claimed by another run at the same time (ETag mismatch or live lease).
    pub busy: u32,
    /// Storage errors: each left its lead (or its part of the scan) for the next run.
    pub errors: u32,
    /// Table requests this poll made.
    pub transactions: u64,
    /// This process was already polling: the tick was skipped.
    pub overlapped: bool,
    /// The digest's part of the run (its storage errors count in `errors`).
    pub digest: DigestReport,
    /// `LEADS_RETENTION_DAYS`: leads deleted as too old, their index entries deleted, and old
    /// leads kept because a notification is still due (its storage errors count in `errors`).
    pub retention_deleted: u32,
    pub retention_index_deleted: u32,
    pub retention_kept_pending: u32,
    /// Old leads kept because a configured digest has not listed them yet.
    pub retention_kept_for_digest: u32,
    /// Retention deleted nothing: the configured digest has sent nothing recently.
    pub retention_waiting: bool,
}

impl PollReport {
    /// Nothing happened worth a line in the host's log: nothing sent, retried, failed, ended,
    /// deleted or refused, no digest activity, no storage error.
    pub fn is_idle(&self) -> bool {
        self.claimed == 0
            && self.failed == 0
            && self.expired == 0
            && self.busy == 0
            && self.errors == 0
            && self.retention_deleted == 0
            && self.retention_index_deleted == 0
            && !self.retention_waiting
            && self.digest.sent == 0
            && self.digest.retrying == 0
            && self.digest.failed == 0
    }
}

impl fmt::Display for PollReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {} rows in {} partitions{}, {} unfinished, {} claimed: {} delivered, {} retrying, {} failed, {} skipped, {} expired, {} busy, {} storage errors; {} table transactions",
            self.rows_read,
            self.partitions_read,
            if self.swept { format!(" and {} in the sweep", self.sweep_rows_read) } else { String::new() },
            self.unfinished,
            self.claimed,
            self.delivered,
            self.retrying,
            self.failed,
            self.skipped,
            self.expired,
            self.busy,
            self.errors,
            self.transactions
        )
    }
}

/// What the digest did in one LeadNotify run (part of [`PollReport`]).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DigestReport {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
    /// Another run holds the period (its lease is live, or its insert came first).
    pub busy: u32,
}
