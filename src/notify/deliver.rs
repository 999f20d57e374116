//! The unit of work: deliver one lead. Claim it, put it in the customer journey, render the
//! message, send every due channel, record each channel's outcome as it comes. Called by the
//! timer run, the immediate path after intake, and anything else that needs one lead sent now.
//!
//! A lead is claimed with an ETag-guarded MERGE that sets the lease, so two overlapping runs
//! cannot both send it. Each channel's outcome is written as soon as that channel is done (the
//! ETag chain continues from the claim), so a slow channel never holds back another's record;
//! the last write releases the lease. A crash after sending and before recording leaves the
//! lease to expire, and the next run sends again with the same id: at most a repeat, never a
//! lost lead.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::claim::{claim, decide, Verdict};
use super::journey::Journey;
use super::lead_state::{column, notification_id, ChannelRecord, Column, DeliveryState, CUSTOMER_COLUMN, ID_COLUMN, LEASE_COLUMN};
use super::message::LeadMessage;
use super::registry::Registry;
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::entity::{get_datetime, put_datetime, Entity};
use crate::lead::Lead;
use crate::store::{SharedTable, StoreError};

/// A lead still pending this many days after it arrived is marked failed.
pub const MAX_PENDING_DAYS: i64 = 31;

/// What delivering one lead came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadOutcome {
    /// Another run holds it (a live lease, or it changed under our claim).
    Busy,
    /// No channel was due (already done, waiting for a retry, or gone).
    NothingDue,
    Done(Tally),
}

/// The channels' outcomes on one lead (or, summed, on a run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub delivered: u32,
    pub retrying: u32,
    pub failed: u32,
    pub skipped: u32,
    /// No watched channel is left pending on this lead.
    pub finished: bool,
}

impl Tally {
    fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Delivered => self.delivered += 1,
            Verdict::Skipped(_) => self.skipped += 1,
            Verdict::Retry { .. } => self.retrying += 1,
            Verdict::Failed(_) => self.failed += 1,
        }
    }
}

/// Everything delivering a lead needs, built once per notifier.
pub struct Deliverer {
    pub leads: SharedTable,
    pub channels: Registry,
    /// Sendable channels plus misconfigured ones, whose leads stay pending until the setting is
    /// fixed.
    pub watched: Vec<ChannelId>,
    pub max_attempts: u32,
    pub notify_test_leads: bool,
    pub lease: Duration,
    pub journey: Option<Journey>,
    pub clock: Clock,
}

impl Deliverer {
    /// Claims one lead, sends its due channels, records each outcome as it comes.
    /// `indexed`: the caller has already put the lead in the customer index.
    pub async fn deliver(&self, pk: &str, rk: &str, indexed: bool) -> Result<LeadOutcome, StoreError> {
        let now = self.clock.now();
        let Some((entity, etag)) = self.leads.get(pk, rk).await? else {
            return Ok(LeadOutcome::NothingDue);
        };
        if get_datetime(&entity, LEASE_COLUMN).is_some_and(|t| t > now) {
            return Ok(LeadOutcome::Busy);
        }
        let active = self.channels.active();
        let due: Vec<(ChannelId, ChannelRecord)> =
            active.iter().map(|c| (*c, ChannelRecord::read(&entity, *c))).filter(|(_, r)| r.is_due(now)).collect();
        if due.is_empty() {
            return Ok(LeadOutcome::NothingDue);
        }
        let lead = Lead::from_entity(&entity);
        let mut states: Vec<(ChannelId, DeliveryState)> =
            self.watched.iter().map(|c| (*c, ChannelRecord::read(&entity, *c).state)).collect();
        let mut tally = Tally::default();

        if lead.is_test() && !self.notify_test_leads {
            let mut result = Entity::new();
            for (ch, _) in &due {
                result.insert(column(*ch, Column::State), DeliveryState::Skipped.as_str().into());
                set_state(&mut states, *ch, DeliveryState::Skipped);
                tally.skipped += 1;
            }
            return match claim(&*self.leads, pk, rk, &result, &etag).await? {
                Some(_) => {
                    tally.finished = all_final(&states);
                    Ok(LeadOutcome::Done(tally))
                }
                None => Ok(LeadOutcome::Busy),
            };
        }

        let id = notification_id(pk, rk);
        let mut claim_row = Entity::new();
        put_datetime(&mut claim_row, LEASE_COLUMN, now + self.lease);
        claim_row.insert(ID_COLUMN.into(), id.clone().into());
        let customer = self.journey.as_ref().and_then(|_| lead.customer_id());
        if let Some(c) = &customer {
            claim_row.insert(CUSTOMER_COLUMN.into(), c.as_str().into());
        }
        // Microsoft-written rows get the column LeadIngest writes.
        if let (None, Some(campaign)) = (entity.get("Campaign"), lead.campaign()) {
            claim_row.insert("Campaign".into(), campaign.into());
        }
        let Some(mut etag) = claim(&*self.leads, pk, rk, &claim_row, &etag).await? else { return Ok(LeadOutcome::Busy) };

        let mut msg = LeadMessage::new(&lead, &id, pk, rk);
        if let (Some(journey), Some(customer)) = (&self.journey, &customer) {
            // Indexed before the run's sends; here only a lead that was not (an earlier run set
            // CustomerId and then failed to record, or its indexing failed). Idempotent.
            let recorded =
                if indexed || entity.get(CUSTOMER_COLUMN).is_some() { Ok(()) } else { journey.record(customer, &lead, pk, rk).await };
            let story = match recorded {
                Ok(()) => journey.story(customer, &id, lead.created).await,
                Err(e) => Err(e),
            };
            match story {
                Ok(story) => msg = msg.with_story(story),
                Err(e) => {
                    tracing::warn!(partition_key = pk, row_key = rk, error = %e, "customer journey unavailable: notifying without it")
                }
            }
        }
        let mut sends: FuturesUnordered<_> = due
            .iter()
            .map(|(ch, record)| {
                let (ch, attempts) = (*ch, record.attempts + 1);
                let send = self.channels.send(ch, &lead, &msg);
                async move { (ch, attempts, send.await) }
            })
            .collect();
        let mut recording = true;
        let mut first_error = None;
        // Outcomes that came in while a record was being written, in order.
        let mut answered = VecDeque::new();
        loop {
            let (ch, attempts, outcome) = match answered.pop_front() {
                Some(done) => done,
                None => match sends.next().await {
                    Some(done) => done,
                    None => break,
                },
            };
            let done_at = self.clock.now();
            let verdict = decide(outcome, attempts, self.max_attempts, true);
            log_verdict(pk, rk, ch, attempts, &verdict);
            tally.count(&verdict);
            set_state(&mut states, ch, verdict.state());
            let mut result = verdict.record(&format!("Notify{}", ch.name()), attempts, done_at);
            // The last record releases the claim in the same write; the others renew it, so a
            // claim outlives slow storage as long as records keep landing.
            let last = sends.is_empty() && answered.is_empty();
            put_datetime(&mut result, LEASE_COLUMN, if last { done_at } else { done_at + self.lease });
            if !recording {
                continue;
            }
            // The other sends go on while this record is written: a send's deadline runs whether
            // or not it is polled, and a receiver's answer must not turn into a timeout because
            // storage was slow to take the previous record.
            let written = {
                let write = self.leads.merge(pk, rk, &result, &etag);
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        written = &mut write => break written,
                        Some(done) = sends.next(), if !sends.is_empty() => answered.push_back(done),
                    }
                }
            };
            match written {
                Ok(next) => etag = next,
                Err(StoreError::Changed) => {
                    recording = false;
                    tracing::warn!(
                        partition_key = pk,
                        row_key = rk,
                        "lead changed while notifying (lease expired?): outcome not recorded, a repeat with the same id may follow"
                    );
                }
                // The row keeps its lease and pending state: a later run retries this channel.
                Err(e) => {
                    recording = false;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        tally.finished = all_final(&states);
        Ok(LeadOutcome::Done(tally))
    }

    /// Marks the still-pending channels of a lead pending too long as failed. `false` when the
    /// row changed or vanished meanwhile (another run got to it).
    pub async fn expire(&self, pk: &str, rk: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some((entity, etag)) = self.leads.get(pk, rk).await? else { return Ok(false) };
        if get_datetime(&entity, LEASE_COLUMN).is_some_and(|t| t > now) {
            return Ok(false);
        }
        let reason = format!("gave up: still pending more than {MAX_PENDING_DAYS} days after the lead arrived (never delivered)");
        let mut result = Entity::new();
        for ch in &self.watched {
            if ChannelRecord::read(&entity, *ch).state == DeliveryState::Pending {
                result.insert(column(*ch, Column::State), DeliveryState::Failed.as_str().into());
                result.insert(column(*ch, Column::LastError), reason.clone().into());
                tracing::error!(partition_key = pk, row_key = rk, channel = ch.name(), "{reason}: see `handler leads status`");
            }
        }
        if result.is_empty() {
            return Ok(false);
        }
        Ok(claim(&*self.leads, pk, rk, &result, &etag).await?.is_some())
    }
}

fn set_state(states: &mut [(ChannelId, DeliveryState)], ch: ChannelId, state: DeliveryState) {
    if let Some(s) = states.iter_mut().find(|(c, _)| *c == ch) {
        s.1 = state;
    }
}

fn all_final(states: &[(ChannelId, DeliveryState)]) -> bool {
    states.iter().all(|(_, s)| *s != DeliveryState::Pending)
}

/// Keys and channel names only: the receiver's answer is on the row, never in a log.
fn log_verdict(pk: &str, rk: &str, ch: ChannelId, attempts: u32, verdict: &Verdict) {
    let channel = ch.name();
    match verdict {
        Verdict::Delivered => tracing::info!(partition_key = pk, row_key = rk, channel, attempts, "lead notified"),
        Verdict::Skipped(reason) => {
            tracing::info!(partition_key = pk, row_key = rk, channel, reason = %reason, "lead skipped on this channel")
        }
        Verdict::Retry { error, wait } => tracing::warn!(
            partition_key = pk,
            row_key = rk,
            channel,
            attempts,
            error = %error,
            retry_in_s = wait.as_secs(),
            "notification failed, will retry"
        ),
        Verdict::Failed(error) => tracing::error!(
            partition_key = pk,
            row_key = rk,
            channel,
            attempts,
            error = %error,
            "notification failed for good: see `handler leads status`"
        ),
    }
}
