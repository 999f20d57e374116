//! The digest's lines in `handler leads status`: the last period's digest, and every recent
//! one still pending or failed, from the state rows in `<LEADS_TABLE>Notify`. Stored text
//! (a relay's answer in `LastError`, a hand-typed state) goes through `one_line`.

use std::io::Write;

use chrono::{DateTime, Duration, Utc};

use crate::entity::{get_datetime, get_str, Entity};
use crate::notify::digest_message::MAX_PERIOD_DAYS;
use crate::notify::notify_table::{digest_row_key as row_key, DIGEST_PK};
use crate::store::{Filter, Op, Query, SharedTable, StoreError};
use crate::text::one_line;

/// The digest rows of the last [`MAX_PERIOD_DAYS`] days, oldest first (keys sort as times).
pub async fn read_recent(state: &SharedTable, now: DateTime<Utc>) -> Result<Vec<Entity>, StoreError> {
    let since = row_key(now - Duration::days(MAX_PERIOD_DAYS as i64));
    let filter = Filter::eq("PartitionKey", DIGEST_PK).and(Filter::text("RowKey", Op::Ge, &since));
    state.query(&Query::filter(filter), usize::MAX).await
}

/// Nothing when the digest is off and has no rows.
pub fn print_digest_status(rows: &[Entity], enabled: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let Some(last) = rows.last() else {
        if enabled {
            writeln!(out, "{:<8} no digest sent yet (the first goes after the next digest time)", "Digest")?;
        }
        return Ok(());
    };
    let line = |e: &Entity| {
        let state = one_line(get_str(e, "State"));
        let attempts = e.get("Attempts").and_then(serde_json::Value::as_u64).unwrap_or(0);
        let leads = e.get("Leads").and_then(serde_json::Value::as_u64).map_or("-".to_string(), |n| n.to_string());
        let mut s = format!("period ending {}: {state} after {attempts} attempt(s), {leads} lead(s)", one_line(get_str(e, "RowKey")));
        if let Some(at) = get_datetime(e, "DeliveredAt").filter(|_| state == "delivered") {
            s.push_str(&format!(", sent {}", at.format("%Y-%m-%d %H:%M UTC")));
        }
        if let Some(next) = get_datetime(e, "NextAttempt").filter(|_| state == "pending") {
            s.push_str(&format!(", next attempt {}", next.format("%Y-%m-%d %H:%M UTC")));
        }
        let error = get_str(e, "LastError");
        if !error.is_empty() && state != "delivered" {
            s.push_str(&format!(": {}", one_line(error)));
        }
        s
    };
    writeln!(out, "{:<8} last {}", "Digest", line(last))?;
    for e in &rows[..rows.len() - 1] {
        if get_str(e, "State") != "delivered" {
            writeln!(out, "  Digest {}", line(e))?;
        }
    }
    Ok(())
}
