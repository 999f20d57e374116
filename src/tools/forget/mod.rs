//! `handler leads forget <email>`: a customer's request to be forgotten (GDPR Art. 17). Removes
//! exactly that customer: their lead rows, their journey-index entries, the address wherever
//! else the handler stored it, and the CRM records this app created for their leads.
//!
//! **Whose row is it.** A lead row is the customer's, and is deleted, when its *own* customer
//! address is the given one: LeadIngest's `Email` column, else Microsoft's `CustomerInfo` e-mail,
//! else (a row nobody could parse) the `email` field of its raw JSON payload. Any other row that
//! merely mentions the address (a colleague's lead saying "cc jana@…", an Email field
//! `eva@…; jana@…`) is another customer's lead: it is kept, and the address text is replaced by
//! [`MARKER`] in every property containing it. Addresses compare trimmed and ASCII-case-
//! insensitively, nothing else folded (the Kelvin sign U+212A is not `k`).
//!
//! **Where the address is looked for**, in every encoding the handler stores: plain text, JSON
//! with any character written as a `\uXXXX` escape (`jana\u0040contoso.example`), and base64 raw
//! payloads (`RawEncoding=base64`, `RawPayload` + `RawPayload2`), decoded, redacted and encoded
//! again.
//!
//! **Bounded memory**: the lead table and the notifier's state table are read page by page;
//! what is kept is one line per matching row (keys, date, offer, action, company).
//!
//! **Idempotent and resumable**: every step re-reads what it changes, and a second run after a
//! crash finishes the job. CRM records are found by the notification ids of the deleted leads;
//! so that a run that could not reach a CRM can be finished later, each deleted lead's
//! journey-index entry (no contact details, keyed by a hash) is marked `ForgetPending` before its
//! row goes, and removed only once every configured CRM has answered for it.
//!
//! **CRMs** (when their settings are present where forget runs): what this app created is
//! deleted: the Dynamics `lead` row (its `leadid` is derived from the notification id), the
//! Salesforce Lead (found by the external-id field), the HubSpot notes (found by their marker).
//! People the app only created or updated (a HubSpot contact, a Marketo person: keyed on e-mail,
//! possibly holding the publisher's own history with them) are listed with their ids and the
//! CRM's own way to erase them, and erased only with `--erase-crm-people`.
//!
//! Output names no other customer: rows are shown by date, offer, action and company, redacted.

mod crm;
mod matching;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal as _, Write};

use serde_json::Value;

use crate::entity::{get_str, Entity};
use crate::lead::{CustomerId, Lead};
use crate::notify::journey::Journey;
use crate::notify::lead_state::notification_id;
use crate::notify::notify_table::NotifyTable;
use crate::store::{Pages, Query, SharedTable, StoreError};

pub use crm::CrmAccess;
use crm::*;
pub use matching::{contains_address, is_own, judge, own_address, redact_text, redaction, Verdict, MARKER};
pub use plan::{plan, print_plan, ForgetPlan, PlannedRow};

/// What [`execute`] did, and what it could not do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub deleted: usize,
    pub redacted: usize,
    pub index_removed: usize,
    /// Other customers' entries the old key had filed under this one, moved to their own key.
    pub index_refiled: usize,
    pub state_redacted: usize,
    /// What was removed or found in CRMs, one line each.
    pub crm: Vec<String>,
    /// What is left and why, one line each: non-empty makes the command fail.
    pub left: Vec<String>,
}

/// The index entry that remembers a deleted lead until its CRM records are gone.
fn pending_entry(customer: &CustomerId, pk: &str, rk: &str) -> Entity {
    let mut e = Entity::new();
    e.insert("PartitionKey".into(), customer.as_str().into());
    e.insert("RowKey".into(), notification_id(pk, rk).into());
    e.insert("LeadPartitionKey".into(), pk.into());
    e.insert("LeadRowKey".into(), rk.into());
    e.insert("ForgetPending".into(), Value::Bool(true));
    e
}

/// Step 1 of [`execute`]: each planned lead row deleted or redacted, judged on what it holds
/// now. A deleted lead's index entry is marked first (`keep_entries`: a CRM is to be reached), so
/// the CRM step (or a later run) still knows its notification id once the row is gone.
async fn remove_lead_rows(
    leads: &SharedTable,
    plan: &ForgetPlan,
    keep_entries: bool,
    deleted_ids: &mut HashSet<String>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let journey = Journey::new(leads);
    for row in &plan.rows {
        let (pk, rk) = (row.partition_key.as_str(), row.row_key.as_str());
        let Some((current, _)) = leads.get(pk, rk).await? else {
            if row.delete {
                deleted_ids.insert(notification_id(pk, rk));
            }
            continue;
        };
        match judge(&current, plan.address.as_str()) {
            Verdict::Keep => {}
            Verdict::Delete => {
                if keep_entries {
                    journey.table().upsert(&pending_entry(&plan.customer, pk, rk)).await?;
                }
                leads.remove(pk, rk).await?;
                deleted_ids.insert(notification_id(pk, rk));
                report.deleted += 1;
            }
            Verdict::Redact(props) => match leads.merge(pk, rk, &props, "*").await {
                Ok(_) => report.redacted += 1,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            },
        }
    }
    Ok(())
}

/// Does what `plan` lists, re-reading every row first (a run after a crash, or a row changed
/// since, is handled by what the row is now). `crm`: the CRMs to reach, if any are set here.
pub async fn execute(leads: &SharedTable, plan: &ForgetPlan, crm: Option<&CrmAccess<'_>>) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let address = plan.address.as_str();
    let journey = Journey::new(leads);
    let crm = crm.filter(|c| c.any());

    // 1. Lead rows. Then copies are told (the inbox's held days), always: also when this step
    //    failed half-way, and when an earlier, interrupted run already removed every row.
    let mut deleted_ids = HashSet::new();
    let rows = remove_lead_rows(leads, plan, crm.is_some(), &mut deleted_ids, &mut report).await;
    let told = NotifyTable::beside(leads).mark_leads_changed(chrono::Utc::now()).await;
    rows?;
    told?;

    // 2. The journey index under this customer's key (and the old key, which may have merged
    //    look-alike addresses): this customer's entries go, after their CRM records; other
    //    customers' entries are re-filed under their own key.
    let mut counts = CrmCounts::default();
    let mut late = 0;
    for key in plan.partitions() {
        for entry in journey.entries(key).await? {
            let nid = get_str(&entry, "RowKey").to_string();
            let (lpk, lrk) = (get_str(&entry, "LeadPartitionKey"), get_str(&entry, "LeadRowKey"));
            let pending = entry.get("ForgetPending") == Some(&Value::Bool(true));
            let lead_row = if lpk.is_empty() { None } else { leads.get(lpk, lrk).await?.map(|(e, _)| e) };
            match lead_row {
                Some(row) if is_own(&row, address) => {
                    // A lead of this customer that arrived after the plan was read.
                    late += 1;
                    continue;
                }
                Some(row) => {
                    let lead = Lead::from_entity(&row);
                    match lead.customer_id() {
                        Some(own) if own != *key => {
                            journey.record(&own, &lead, lpk, lrk).await?;
                            journey.table().remove(key.as_str(), &nid).await?;
                            report.index_refiled += 1;
                        }
                        _ => {}
                    }
                    continue;
                }
                None => {}
            }
            // The lead is gone. Its CRM records go first when it was this customer's.
            if pending || deleted_ids.contains(&nid) {
                match crm {
                    Some(access) => {
                        let failed = erase_created(access, &nid, &mut counts).await;
                        if !failed.is_empty() {
                            report.left.extend(failed);
                            continue;
                        }
                    }
                    None if pending => {
                        report.left.push(format!(
                            "{nid}: CRM records not checked (no CRM settings here; run forget where LeadNotify's CRM settings are)"
                        ));
                        continue;
                    }
                    None => {}
                }
            }
            report.index_removed += usize::from(journey.table().remove(key.as_str(), &nid).await?);
        }
    }
    if late > 0 {
        report.left.push(format!("{late} lead(s) of this customer arrived while forget ran: run it again"));
    }

    // 3. The notifier's state rows: the address redacted, the rows kept.
    let state = NotifyTable::beside(leads).table().clone();
    let mut pages = Pages::new(Query::all());
    while let Some(page) = pages.next(&*state).await? {
        for row in page {
            let props = redaction(&row, address);
            if props.is_empty() {
                continue;
            }
            match state.merge(get_str(&row, "PartitionKey"), get_str(&row, "RowKey"), &props, "*").await {
                Ok(_) => report.state_redacted += 1,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }

    // 4. CRMs: what was removed, and the people the app only created or updated.
    if let Some(access) = crm {
        let crms = access.crms;
        if crms.dynamics.is_some() {
            report.crm.push(counts.line("Dynamics 365", format!("deleted {} lead row(s) this app created", counts.dynamics)));
        }
        if crms.salesforce.is_some() {
            report.crm.push(counts.line("Salesforce", format!("deleted {} Lead record(s) this app created", counts.salesforce)));
        }
        if let Some(h) = &crms.hubspot {
            report.crm.push(counts.line("HubSpot", format!("deleted {} note(s) this app created", counts.hubspot_notes)));
            match h.find_contact(&access.http, address).await {
                Ok(None) => report.crm.push("HubSpot: no contact with this address".into()),
                Ok(Some(id)) if access.erase_people => match h.gdpr_delete_contact(&access.http, &id).await {
                    Ok(()) => report.crm.push(format!("HubSpot: contact {id} erased with HubSpot's GDPR delete")),
                    Err(e) => report.left.push(format!("HubSpot contact {id}: GDPR delete failed: {e}")),
                },
                Ok(Some(id)) => report.crm.push(format!(
                    "HubSpot: contact {id} (created or updated by this app, may hold your own history with them) NOT erased: \
                     erase it in HubSpot (contact → Actions → Delete → Permanently delete) or with \
                     POST /crm/v3/objects/contacts/gdpr-delete {{\"objectId\":\"{id}\"}}, or run forget again with --erase-crm-people"
                )),
                Err(e) => report.left.push(format!("HubSpot contact: not looked up: {e}")),
            }
        }
        if let Some(m) = &crms.marketo {
            if !address.is_ascii() {
                report.crm.push("Marketo: the address is not ASCII, so this app never sent it to Marketo".into());
            } else {
                match m.find_people(&access.http, address).await {
                    Ok(ids) if ids.is_empty() => report.crm.push("Marketo: no person with this address".into()),
                    Ok(ids) => {
                        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                        if access.erase_people {
                            match m.delete_people(&access.http, &ids).await {
                                Ok(()) => report.crm.push(format!("Marketo: person {list} deleted")),
                                Err(e) => report.left.push(format!("Marketo person {list}: delete failed: {e}")),
                            }
                        } else {
                            report.crm.push(format!(
                                "Marketo: person {list} (created or updated by this app, may hold your own history with them) NOT deleted: \
                                 delete it in Marketo (Database → Delete Person) or with POST /rest/v1/leads/delete.json \
                                 {{\"input\":[{{\"id\":…}}]}}, or run forget again with --erase-crm-people"
                            ));
                        }
                    }
                    Err(e) => report.left.push(format!("Marketo person: not looked up: {e}")),
                }
            }
        }
    }
    Ok(report)
}

/// How the command was asked to run.
pub struct Options<'a> {
    /// Do it without asking (required when stdin is not a terminal).
    pub yes: bool,
    /// The CRMs set in this environment, if any.
    pub crm: Option<CrmAccess<'a>>,
}

/// The command: plan, show, confirm (unless `yes`), do, report. Fails (exit 1) when anything
/// is left, naming it.
pub async fn forget(leads: &SharedTable, email: &str, options: Options<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    let plan = plan(leads, email).await.map_err(anyhow::Error::msg)?;
    print_plan(&plan, leads.name(), out)?;
    let crm = options.crm.as_ref().filter(|c| c.any());
    if crm.is_none() {
        writeln!(out, "  No CRM settings here: CRM records are not checked (run forget where LeadNotify's CRM settings are).")?;
    }
    if plan.rows.is_empty() && plan.index_entries == 0 && plan.state_rows == 0 && crm.is_none() {
        writeln!(out, "Nothing names this address; nothing removed.")?;
        return Ok(());
    }
    if !options.yes {
        // A script piping input must say what it means: removal cannot be undone.
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("stdin is not a terminal: nothing removed; pass --yes to remove without asking");
        }
        write!(out, "Delete and redact as listed{}? [y/N] ", if crm.is_some() { ", and remove this app's CRM records" } else { "" })?;
        out.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            writeln!(out, "Nothing removed.")?;
            return Ok(());
        }
    }
    let report = execute(leads, &plan, crm).await?;
    writeln!(
        out,
        "Deleted {} lead row(s); redacted the address in {} other lead row(s); removed {} journey-index entr(y/ies){}; redacted the address in {} notifier state row(s).",
        report.deleted,
        report.redacted,
        report.index_removed,
        if report.index_refiled > 0 { format!(" (re-filed {} of other customers under their own key)", report.index_refiled) } else { String::new() },
        report.state_redacted
    )?;
    for line in &report.crm {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "Microsoft's own copy of these leads (Partner Center → Referrals) is not touched: remove it there.")?;
    writeln!(out, "Copies outside the app (notification e-mails, webhook receivers, exports) are not touched.")?;
    if !report.left.is_empty() {
        writeln!(out, "LEFT (not done):")?;
        for line in &report.left {
            writeln!(out, "  {line}")?;
        }
        anyhow::bail!("{} item(s) left (listed above): run forget again once the cause is fixed", report.left.len());
    }
    Ok(())
}
