//! `handler leads status`: per channel, how many leads stand where, and every failure, unknown
//! state and misconfigured channel. Text that came from outside (receivers' answers stored in
//! `LastError`, hand-typed states) is printed through `one_line`, so it cannot drive the
//! terminal.

use std::io::Write;

use super::query::StoredLead;
use crate::channel_id::ChannelId as Channel;
use crate::notify::deliver::MAX_PENDING_DAYS;
use crate::notify::lead_state::will_be_sent;
use crate::notify::{ChannelRecord, DeliveryState};
use crate::settings::Misconfigured;
use crate::text::one_line;

/// Per watched channel (configured ones, then misconfigured ones): counts by state, then the
/// details; first what is misconfigured and why. `pending` counts only what will really still be
/// sent ([`will_be_sent`]); a lead pending on a channel that will never reach it (older than the
/// deployment or the channel) is `never sent`.
pub fn print_status(leads: &[StoredLead], all: &[Channel], misconfigured: &[Misconfigured], out: &mut dyn Write) -> std::io::Result<()> {
    if all.is_empty() && misconfigured.is_empty() {
        writeln!(out, "no notification channel is configured")?;
    }
    for bad in misconfigured {
        writeln!(
            out,
            "{:<8} MISCONFIGURED: {} (its leads stay pending until this is fixed)",
            bad.channel,
            one_line(&bad.error.to_string())
        )?;
    }
    for ch in all {
        let mut counts = [0usize; 6];
        let now = chrono::Utc::now();
        for l in leads {
            let idx = match ChannelRecord::read(&l.entity, *ch).state {
                DeliveryState::Pending if will_be_sent(&l.entity, &[*ch], now, chrono::Duration::days(MAX_PENDING_DAYS)) => 0,
                DeliveryState::Pending => 5,
                DeliveryState::Delivered => 1,
                DeliveryState::Failed => 2,
                DeliveryState::Skipped => 3,
                DeliveryState::Unknown => 4,
            };
            counts[idx] += 1;
        }
        write!(
            out,
            "{:<8} delivered {:>6}  pending {:>6}  failed {:>6}  skipped {:>6}",
            ch.name(),
            counts[1],
            counts[0],
            counts[2],
            counts[3]
        )?;
        if counts[4] > 0 {
            write!(out, "  unknown {:>6}", counts[4])?;
        }
        if counts[5] > 0 {
            write!(out, "  never sent {:>6} (older than the deployment or the channel: retention may delete them)", counts[5])?;
        }
        writeln!(out)?;
    }
    for l in leads {
        for ch in all {
            let r = ChannelRecord::read(&l.entity, *ch);
            let what = match r.state {
                DeliveryState::Failed => DeliveryState::Failed.as_str().to_string(),
                DeliveryState::Pending if r.attempts > 0 => DeliveryState::Pending.as_str().to_string(),
                DeliveryState::Unknown => {
                    format!("unknown state `{}` (never sent again until set to `pending`)", r.raw_state.as_deref().unwrap_or(""))
                }
                _ => continue,
            };
            writeln!(
                out,
                "  {} {}/{} {} after {} attempt(s): {}",
                ch.name(),
                one_line(&l.partition_key),
                one_line(&l.row_key),
                one_line(&what),
                r.attempts,
                one_line(r.last_error.as_deref().unwrap_or("-"))
            )?;
        }
    }
    Ok(())
}
