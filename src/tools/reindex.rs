//! `handler leads reindex`: puts every lead already in the table into the customer-journey index.
//! LeadNotify indexes the leads it handles; leads that were there before it (a table Microsoft
//! has been writing into for years, or leads notified by a version without the index) are not,
//! and their customers would look new in every notification. Safe to run at any time, also while
//! LeadNotify runs: an entry is the same upsert the notifier writes, so running twice changes
//! nothing.

use std::collections::HashSet;

use super::query::StoredLead;
use crate::lead::CustomerId;
use crate::notify::journey::Journey;
use crate::store::{SharedTable, StoreError};

/// Index writes in flight at once: quick on a big table, gentle on the account.
const CONCURRENT_WRITES: usize = 16;

/// What a reindex did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reindexed {
    /// Leads written to the index.
    pub indexed: usize,
    /// Distinct customers among them (hashes only: 32 bytes a customer, not a lead).
    pub customers: HashSet<CustomerId>,
    /// Leads linked to no one: test leads, leads without an address, rows that are not leads.
    pub unlinked: usize,
}

impl Reindexed {
    /// Adds a page's counts to the whole run's.
    pub fn add(&mut self, page: Reindexed) {
        self.indexed += page.indexed;
        self.unlinked += page.unlinked;
        self.customers.extend(page.customers);
    }
}

/// Indexes every lead of `all` (one page of the table) that links to a customer.
pub async fn reindex(store: &SharedTable, all: &[StoredLead]) -> Result<Reindexed, StoreError> {
    let journey = Journey::new(store);
    let linked: Vec<(CustomerId, &StoredLead)> = all.iter().filter_map(|l| l.lead.customer_id().map(|c| (c, l))).collect();
    let leads = linked.iter().map(|(customer, l)| (customer, &l.lead, l.partition_key.as_str(), l.row_key.as_str())).collect();
    if let Some(e) = journey.record_all(leads, CONCURRENT_WRITES).await.into_iter().find_map(|(_, result)| result.err()) {
        return Err(e);
    }
    let customers = linked.iter().map(|(c, _)| c.clone()).collect::<HashSet<_>>();
    Ok(Reindexed { indexed: linked.len(), customers, unlinked: all.len() - linked.len() })
}
