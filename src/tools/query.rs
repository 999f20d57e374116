//! Reading leads back for the tools: every row, filtered and newest first.

use chrono::{DateTime, NaiveDate, Utc};

use crate::entity::{get_str, Entity};
use crate::lead::Lead;
use crate::store::{Pages, Query, SharedTable, StoreError};

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
    let leads: Vec<StoredLead> = rows.into_iter().map(StoredLead::from_entity).collect();
    Ok(filter_leads(leads, filter))
}

/// Every lead row a filter keeps, a page at a time, in the table's key order: memory stays flat
/// however large the table (export, reindex).
pub struct LeadPages {
    pages: Pages,
    filter: LeadFilter,
}

impl LeadPages {
    pub fn new(filter: &LeadFilter) -> Self {
        LeadPages { pages: Pages::new(Query::all()), filter: filter.clone() }
    }

    /// The next page's leads (possibly none while more follow); `None` when the table is read.
    pub async fn next(&mut self, store: &SharedTable) -> Result<Option<Vec<StoredLead>>, StoreError> {
        let Some(page) = self.pages.next(&**store).await? else { return Ok(None) };
        Ok(Some(page.into_iter().map(StoredLead::from_entity).filter(|l| self.filter.keeps(l)).collect()))
    }
}

impl StoredLead {
    pub fn from_entity(e: Entity) -> Self {
        StoredLead {
            partition_key: get_str(&e, "PartitionKey").to_string(),
            row_key: get_str(&e, "RowKey").to_string(),
            lead: Lead::from_entity(&e),
            entity: e,
        }
    }
}

impl LeadFilter {
    /// Whether the filter keeps the lead.
    pub fn keeps(&self, l: &StoredLead) -> bool {
        (self.include_tests || !l.lead.is_test())
            && self.action.as_ref().is_none_or(|a| l.lead.action_code.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(a)))
            && self.offer.as_ref().is_none_or(|o| {
                let o = o.to_lowercase();
                [l.lead.offer_title.as_deref(), l.lead.lead_source.offer.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|v| v.to_lowercase().contains(&o))
            })
            && self.since.is_none_or(|s| l.lead.created.is_some_and(|c| c >= s))
    }
}

/// The order leads are listed in: newest first, then by row key.
pub fn newest_first(a: &StoredLead, b: &StoredLead) -> std::cmp::Ordering {
    b.lead.created.cmp(&a.lead.created).then_with(|| a.row_key.cmp(&b.row_key))
}

/// The leads `filter` keeps, newest first.
pub fn filter_leads(leads: Vec<StoredLead>, filter: &LeadFilter) -> Vec<StoredLead> {
    let mut leads: Vec<StoredLead> = leads.into_iter().filter(|l| filter.keeps(l)).collect();
    leads.sort_by(newest_first);
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
