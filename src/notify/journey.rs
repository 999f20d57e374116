//! The customer's journey across leads: an index the notifier keeps in `<LEADS_TABLE>Customers`,
//! one partition per customer (keyed by [`CustomerId`], a hash: never the address), one row per
//! lead (keyed by its notification id). Finding a customer's earlier leads is one partition
//! read, whichever route wrote them. The poller indexes every lead it is about to handle before
//! it sends any of them, so leads of one customer handled in the same run see each other
//! whatever order they are handled in.

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::lead_state::notification_id;
use crate::entity::{get_datetime, get_str, put_datetime, Entity};
use crate::lead::{CustomerId, Lead};
use crate::store::{Query, SharedTable, StoreError};

/// Earlier leads shown in a notification at most (the count still says how many there are).
pub const MAX_HISTORY: usize = 5;

/// One earlier lead of the customer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PastLead {
    pub id: String,
    pub created_time: Option<DateTime<Utc>>,
    pub action_code: Option<String>,
    pub offer_id: Option<String>,
    pub offer_title: Option<String>,
}

/// What a notification says about the customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerStory {
    pub id: CustomerId,
    /// This lead's place in the customer's journey: 1 for a first lead.
    pub nth_lead: usize,
    /// Earlier leads, newest first, at most [`MAX_HISTORY`].
    pub history: Vec<PastLead>,
}

#[derive(Clone)]
pub struct Journey {
    customers: SharedTable,
}

impl Journey {
    /// The index beside the lead table `leads`.
    pub fn new(leads: &SharedTable) -> Self {
        Journey { customers: leads.with_table(&Self::table_name(leads.name())) }
    }

    pub fn table_name(leads_table: &str) -> String {
        format!("{leads_table}Customers")
    }

    /// Adds (or refreshes) the lead's index entry. Idempotent: two pollers writing the same
    /// lead write the same row.
    pub async fn record(&self, customer: &CustomerId, lead: &Lead, pk: &str, rk: &str) -> Result<(), StoreError> {
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), customer.as_str().into());
        e.insert("RowKey".into(), notification_id(pk, rk).into());
        e.insert("LeadPartitionKey".into(), pk.into());
        e.insert("LeadRowKey".into(), rk.into());
        if let Some(created) = lead.created {
            put_datetime(&mut e, "CreatedTime", created);
        }
        for (name, value) in [
            ("ActionCode", lead.action_code.as_deref()),
            ("OfferId", lead.lead_source.offer.as_deref()),
            ("OfferTitle", lead.offer_title.as_deref()),
        ] {
            e.insert(name.into(), Value::String(value.unwrap_or_default().to_string()));
        }
        self.customers.upsert(&e).await
    }

    /// Indexes several leads, `concurrency` writes at a time (the poller before its sends,
    /// `leads reindex` for a whole table): each lead's result, keyed by its row.
    pub async fn record_all(
        &self,
        leads: Vec<(&CustomerId, &Lead, &str, &str)>,
        concurrency: usize,
    ) -> Vec<((String, String), Result<(), StoreError>)> {
        // The writes are made (not started) here, each an async fn's future, then run
        // `concurrency` at a time.
        let writes: Vec<_> = leads.into_iter().map(|(customer, lead, pk, rk)| self.record_keyed(customer, lead, pk, rk)).collect();
        stream::iter(writes).buffer_unordered(concurrency).collect().await
    }

    async fn record_keyed(&self, customer: &CustomerId, lead: &Lead, pk: &str, rk: &str) -> ((String, String), Result<(), StoreError>) {
        ((pk.to_string(), rk.to_string()), self.record(customer, lead, pk, rk).await)
    }

    /// The customer's story as of the lead `this_id` created at `created`: leads before it
    /// (by creation time; the lead id breaks ties), newest first.
    pub async fn story(&self, customer: &CustomerId, this_id: &str, created: Option<DateTime<Utc>>) -> Result<CustomerStory, StoreError> {
        let rows = self.entries(customer).await?;
        let mut earlier: Vec<PastLead> = rows
            .iter()
            .filter(|r| get_str(r, "RowKey") != this_id)
            .map(|r| PastLead {
                id: get_str(r, "RowKey").to_string(),
                created_time: get_datetime(r, "CreatedTime"),
                action_code: non_empty(get_str(r, "ActionCode")),
                offer_id: non_empty(get_str(r, "OfferId")),
                offer_title: non_empty(get_str(r, "OfferTitle")),
            })
            .filter(|p| match (p.created_time, created) {
                (Some(p_at), Some(at)) => (p_at, p.id.as_str()) < (at, this_id),
                // Without times the order is unknowable: count the other lead as earlier.
                _ => true,
            })
            .collect();
        earlier.sort_by(|a, b| b.created_time.cmp(&a.created_time).then_with(|| b.id.cmp(&a.id)));
        let nth_lead = earlier.len() + 1;
        earlier.truncate(MAX_HISTORY);
        Ok(CustomerStory { id: customer.clone(), nth_lead, history: earlier })
    }

    /// Every index entry of a customer (for `leads forget`).
    pub async fn entries(&self, customer: &CustomerId) -> Result<Vec<Entity>, StoreError> {
        self.customers.query(&Query::partition(customer.as_str()), usize::MAX).await
    }

    /// The index's table client (for deletions by `leads forget` and retention).
    pub fn table(&self) -> &SharedTable {
        &self.customers
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// "1st", "2nd", "3rd", "11th"…
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111].into_iter().map(ordinal).collect();
        assert_eq!(got, ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]);
    }
}
