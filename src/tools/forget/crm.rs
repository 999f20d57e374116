//! Forget in the CRMs: what this app created is deleted, people it only created or updated are
//! listed (or erased with `--erase-crm-people`), and what a CRM could not do is reported.

use std::collections::HashSet;

use crate::notify::crm::Crms;

/// The CRMs forget reaches: the clients LeadNotify's settings turn on.
pub struct CrmAccess<'a> {
    pub http: reqwest::Client,
    pub crms: &'a Crms,
    /// Erase the people the app only created or updated (HubSpot contact, Marketo person) too.
    pub erase_people: bool,
}

impl CrmAccess<'_> {
    pub(super) fn any(&self) -> bool {
        let c = self.crms;
        c.dynamics.is_some() || c.salesforce.is_some() || c.hubspot.is_some() || c.marketo.is_some()
    }
}

/// Counts of CRM records removed for this customer's leads.
#[derive(Default)]
pub(super) struct CrmCounts {
    pub(super) dynamics: usize,
    pub(super) salesforce: usize,
    pub(super) hubspot_notes: usize,
    /// CRMs with a call that failed: their counts are not the whole story.
    pub(super) failed: HashSet<&'static str>,
}

impl CrmCounts {
    pub(super) fn line(&self, crm: &'static str, done: String) -> String {
        if self.failed.contains(crm) {
            format!("{crm}: {done} so far; NOT all reached (see LEFT below)")
        } else {
            format!("{crm}: {done}")
        }
    }
}

/// Deletes what this app created in each CRM for the lead `nid`; the failures.
pub(super) async fn erase_created(access: &CrmAccess<'_>, nid: &str, counts: &mut CrmCounts) -> Vec<String> {
    let mut failed = Vec::new();
    let http = &access.http;
    if let Some(d) = &access.crms.dynamics {
        match d.erase_lead(http, nid).await {
            Ok(removed) => counts.dynamics += usize::from(removed),
            Err(e) => {
                counts.failed.insert("Dynamics 365");
                failed.push(format!("Dynamics lead row of {nid}: {e}"));
            }
        }
    }
    if let Some(s) = &access.crms.salesforce {
        match s.erase_lead(http, nid).await {
            Ok(n) => counts.salesforce += n,
            Err(e) => {
                counts.failed.insert("Salesforce");
                failed.push(format!("Salesforce Lead of {nid}: {e}"));
            }
        }
    }
    if let Some(h) = &access.crms.hubspot {
        match h.erase_notes(http, nid).await {
            Ok(n) => counts.hubspot_notes += n,
            Err(e) => {
                counts.failed.insert("HubSpot");
                failed.push(format!("HubSpot notes of {nid}: {e}"));
            }
        }
    }
    failed
}
