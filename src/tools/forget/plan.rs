//! What forgetting one address would do, read without changing anything, and how it is shown
//! (no other customer's address, rows by date, offer, action and company).

use std::io::Write;

use chrono::{DateTime, Utc};

use crate::entity::{get_str, Entity};
use crate::lead::customer::normalise_email;
use crate::lead::{action_label, CustomerId, Lead};
use crate::notify::journey::Journey;
use crate::notify::notify_table::NotifyTable;
use crate::store::{Pages, Query, SharedTable};
use crate::text::{one_line, truncate_chars};

use super::matching::*;

/// One lead row forget will change, as the publisher can recognise it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    pub partition_key: String,
    pub row_key: String,
    pub delete: bool,
    pub created: Option<DateTime<Utc>>,
    pub action: String,
    pub offer: String,
    pub company: String,
    pub unparsed: bool,
}

/// What forgetting one address will touch. Holds one line per matching row, never the table.
pub struct ForgetPlan {
    /// The normalised address (never printed).
    pub(super) address: String,
    pub customer: CustomerId,
    /// The key older versions gave this address, when it differs (see
    /// [`CustomerId::legacy_for_email`]).
    pub legacy: Option<CustomerId>,
    pub rows: Vec<PlannedRow>,
    /// Journey-index entries under this customer's key(s).
    pub index_entries: usize,
    /// Notifier state rows whose text holds the address.
    pub state_rows: usize,
}

impl ForgetPlan {
    pub fn deletes(&self) -> usize {
        self.rows.iter().filter(|r| r.delete).count()
    }

    pub fn redactions(&self) -> usize {
        self.rows.len() - self.deletes()
    }

    pub(super) fn partitions(&self) -> Vec<&CustomerId> {
        std::iter::once(&self.customer).chain(self.legacy.as_ref()).collect()
    }
}

fn planned(row: &Entity, delete: bool, redacted: Option<&Entity>) -> PlannedRow {
    let mut shown = row.clone();
    if let Some(props) = redacted {
        shown.extend(props.clone());
    }
    let lead = Lead::from_entity(&shown);
    let text = |s: Option<&str>, max| truncate_chars(&one_line(s.unwrap_or("-")), max);
    PlannedRow {
        partition_key: get_str(row, "PartitionKey").to_string(),
        row_key: get_str(row, "RowKey").to_string(),
        delete,
        created: lead.created,
        action: text(lead.action_code.as_deref().map(action_label), 14),
        offer: text(lead.offer(), 40),
        company: text(lead.contact.company.as_deref(), 40),
        unparsed: !lead.recognised,
    }
}

/// Reads everything forgetting `email` touches, page by page. Nothing is changed.
pub async fn plan(leads: &SharedTable, email: &str) -> Result<ForgetPlan, String> {
    let address = normalise_email(email).ok_or_else(|| format!("`{}` is not an e-mail address", one_line(email)))?;
    let customer = CustomerId::for_email(&address).ok_or_else(|| "not an e-mail address".to_string())?;
    let legacy = CustomerId::legacy_for_email(email).filter(|l| *l != customer);

    let mut rows = Vec::new();
    let mut pages = Pages::new(Query::all());
    while let Some(page) = pages.next(&**leads).await.map_err(|e| format!("reading {}: {e}", leads.name()))? {
        for row in &page {
            match judge(row, &address) {
                Verdict::Keep => {}
                Verdict::Delete => rows.push(planned(row, true, None)),
                Verdict::Redact(props) => rows.push(planned(row, false, Some(&props))),
            }
        }
    }

    let journey = Journey::new(leads);
    let mut index_entries = 0;
    for key in std::iter::once(&customer).chain(legacy.as_ref()) {
        index_entries += journey.entries(key).await.map_err(|e| format!("reading {}: {e}", journey.table().name()))?.len();
    }

    let state = NotifyTable::beside(leads).table().clone();
    let mut state_rows = 0;
    let mut pages = Pages::new(Query::all());
    while let Some(page) = pages.next(&*state).await.map_err(|e| format!("reading {}: {e}", state.name()))? {
        state_rows += page.iter().filter(|r| !redaction(r, &address).is_empty()).count();
    }
    Ok(ForgetPlan { address, customer, legacy, rows, index_entries, state_rows })
}

/// Prints what [`execute`] will do: each row as `delete` or `redact` with its date, action,
/// offer and company (redacted), never an address.
pub fn print_plan(plan: &ForgetPlan, leads_table: &str, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Customer {}:", plan.customer)?;
    writeln!(
        out,
        "  {} lead row(s) in {leads_table}: {} to delete (this customer's), {} to redact (another customer's lead mentioning the address)",
        plan.rows.len(),
        plan.deletes(),
        plan.redactions()
    )?;
    for row in &plan.rows {
        writeln!(
            out,
            "    {:<6}  {}  {:<14}  {}  /  {}{}",
            if row.delete { "delete" } else { "redact" },
            row.created.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into()),
            row.action,
            row.offer,
            row.company,
            if row.unparsed { " (unparsed)" } else { "" },
        )?;
    }
    writeln!(out, "  {} journey-index entr(y/ies) in {} under this customer's key", plan.index_entries, Journey::table_name(leads_table))?;
    writeln!(
        out,
        "  {} notifier state row(s) in {leads_table}Notify with the address in their text (redacted, not deleted)",
        plan.state_rows
    )
}

// ---------------------------------------------------------------------------------------------
// Doing it
