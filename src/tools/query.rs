//! Reading leads back for the tools: every row, filtered and newest first.

use chrono::{DateTime, NaiveDate, Utc};

use crate::entity::{get_str, Entity};
use crate::lead::Lead;
use crate::store::{Query, SharedTable, StoreError};

/// Filters for `leads list` and `leads export`.
#[derive(Debug, Default, Clone)]
pub struct LeadFilter {
    pub offer: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub include_tests: bool,
}

/// A lead row read back from the table.
#[derive(Clone)]
pub struct StoredLead {
    pub partition_key: String,
    pub row_key: String,
    pub lead: Lead,
    pub entity: Entity,
}

/// Parses `--since`: a date (`2026-11-01`) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = s.parse::<NaiveDate>() {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| format!("`{s}` is neither a date (2026-11-01) nor an RFC 3339 time"))
}

/// Reads every lead row, newest first, filtered.
pub async fn read_leads(store: &SharedTable, filter: &LeadFilter) -> Result<Vec<StoredLead>, StoreError> {
    let rows = store.query(&Query::all(), usize::MAX).await?;
    let leads: Vec<StoredLead> = rows
        .into_iter()
        .map(|e| StoredLead {
            partition_key: get_str(&e, "PartitionKey").to_string(),
            row_key: get_str(&e, "RowKey").to_string(),
            lead: Lead::from_entity(&e),
            entity: e,
        })
        .collect();
    Ok(filter_leads(leads, filter))
}

/// The leads `filter` keeps, newest first.
pub fn filter_leads(leads: Vec<StoredLead>, filter: &LeadFilter) -> Vec<StoredLead> {
    let mut leads: Vec<StoredLead> = leads
        .into_iter()
        .filter(|l| filter.include_tests || !l.lead.is_test())
        .filter(|l| filter.action.as_ref().is_none_or(|a| l.lead.action_code.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(a))))
        .filter(|l| {
            filter.offer.as_ref().is_none_or(|o| {
                let o = o.to_lowercase();
                [l.lead.offer_title.as_deref(), l.lead.lead_source.offer.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|v| v.to_lowercase().contains(&o))
            })
        })
        .filter(|l| filter.since.is_none_or(|s| l.lead.created.is_some_and(|c| c >= s)))
        .collect();
    leads.sort_by(|a, b| b.lead.created.cmp(&a.lead.created).then_with(|| a.row_key.cmp(&b.row_key)));
    leads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_dates_and_times() {
        assert!(parse_since("2026-11-01").is_ok());
        assert!(parse_since("2026-11-01T10:00:00Z").is_ok());
        assert!(parse_since("yesterday").is_err());
    }
}
