//! `handler leads forget <email>`: a customer's request to be forgotten (GDPR Art. 17). Removes
//! every lead row that names the address, the customer's journey-index entries, and scrubs the
//! address from the notifier's state table should it appear there.
//!
//! Lead rows are found by reading the whole lead table, deliberately: forget is rare, and it must
//! not miss a row the index lacks (a lead not notified yet, an unparsed one, a row Microsoft wrote
//! with keys of its own). A row names the customer when its e-mail (LeadIngest's columns or
//! Microsoft's `CustomerInfo`) is the address, or when any text on it contains the address,
//! without regard to case: the raw payload of a lead nobody could parse, a description, the
//! base64 of a body no encoding read.
//!
//! The notifier's state table (`<LEADS_TABLE>Notify`) holds cursors and digest rows: times,
//! counts, states and a relay's last error; no customer's details by design. It is still read in
//! full, and any text there containing the address is blanked (the row itself stays: deleting a
//! digest row would send that digest again).
//!
//! Output names no other customer, and shows this one's rows by date, offer and action only.

use std::io::{BufRead, IsTerminal as _, Write};

use base64::Engine as _;
use serde_json::Value;

use crate::entity::{get_str, Entity};
use crate::lead::customer::normalise_email;
use crate::lead::{action_label, CustomerId, Lead};
use crate::notify::journey::Journey;
use crate::notify::lead_state::notification_id;
use crate::notify::notify_table::NotifyTable;
use crate::store::{Query, SharedTable, StoreError};
use crate::text::{one_line, truncate_chars};

/// What forgetting one address removes.
pub struct ForgetPlan {
    pub customer: CustomerId,
    /// The lead rows naming the address.
    pub leads: Vec<Entity>,
    /// Journey-index entries to remove: (partition, row). The customer's own partition, plus the
    /// entry of every lead above (a lead found by its raw text may be indexed under another id).
    pub index_entries: Vec<(String, String)>,
    /// Notifier state rows with text naming the address: (partition, row, properties).
    pub state_rows: Vec<(String, String, Vec<String>)>,
}

impl ForgetPlan {
    pub fn total(&self) -> usize {
        self.leads.len() + self.index_entries.len() + self.state_rows.len()
    }
}

/// Whether a lead (or any) row names the normalised `address`.
pub fn names(row: &Entity, address: &str) -> bool {
    if Lead::from_entity(row).contact.email.as_deref().and_then(normalise_email).as_deref() == Some(address) {
        return true;
    }
    if !matching_properties(row, address).is_empty() {
        return true;
    }
    // A body no encoding read is stored as base64: look inside it too.
    if get_str(row, "RawEncoding").eq_ignore_ascii_case("base64") {
        let b64 = format!("{}{}", get_str(row, "RawPayload"), get_str(row, "RawPayload2"));
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
            return contains_address(&String::from_utf8_lossy(&bytes), address);
        }
    }
    false
}

/// The string properties of `row` that contain `address` (case-insensitive).
fn matching_properties(row: &Entity, address: &str) -> Vec<String> {
    row.iter().filter(|(_, v)| v.as_str().is_some_and(|s| contains_address(s, address))).map(|(k, _)| k.clone()).collect()
}

/// `text` contains the normalised `address` as a whole address, without regard to case: not as
/// the tail of a longer one (`mjana@…`) nor the head of one with a longer domain (`….com.au`),
/// which belong to other customers.
pub fn contains_address(text: &str, address: &str) -> bool {
    let text = text.to_lowercase();
    let local_char = |c: char| c.is_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c);
    let domain_char = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(address).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let mut after = text[at + address.len()..].chars();
        let (next, then) = (after.next(), after.next());
        let longer_domain = next == Some('.') && then.is_some_and(domain_char);
        before.is_none_or(|c| !local_char(c)) && next.is_none_or(|c| !domain_char(c)) && !longer_domain
    })
}

/// Reads everything that names `email`. Nothing is changed.
pub async fn plan(leads: &SharedTable, email: &str) -> Result<ForgetPlan, String> {
    let address = normalise_email(email).ok_or_else(|| format!("`{}` is not an e-mail address", one_line(email)))?;
    let customer = CustomerId::for_email(&address).ok_or_else(|| "not an e-mail address".to_string())?;
    let store_error = |e: StoreError| format!("reading {}: {e}", leads.name());
    let rows = leads.query(&Query::all(), usize::MAX).await.map_err(store_error)?;
    let matched: Vec<Entity> = rows.into_iter().filter(|r| names(r, &address)).collect();

    let journey = Journey::new(leads);
    let mut index_entries: Vec<(String, String)> = journey
        .entries(&customer)
        .await
        .map_err(|e| format!("reading {}: {e}", journey.table().name()))?
        .iter()
        .map(|e| (get_str(e, "PartitionKey").to_string(), get_str(e, "RowKey").to_string()))
        .collect();
    for row in &matched {
        if let Some(other) = Lead::from_entity(row).customer_id().filter(|c| *c != customer) {
            let entry = (other.as_str().to_string(), notification_id(get_str(row, "PartitionKey"), get_str(row, "RowKey")));
            // Only if it exists: the other partition is someone else's, and a plan lists what is there.
            if journey.table().get(&entry.0, &entry.1).await.map_err(|e| format!("reading the journey index: {e}"))?.is_some() {
                index_entries.push(entry);
            }
        }
    }

    let state = NotifyTable::beside(leads).table().clone();
    let state_rows = state
        .query(&Query::all(), usize::MAX)
        .await
        .map_err(|e| format!("reading {}: {e}", state.name()))?
        .iter()
        .filter_map(|r| {
            let props: Vec<String> = matching_properties(r, &address).into_iter().filter(|p| !p.starts_with("odata.")).collect();
            (!props.is_empty()).then(|| (get_str(r, "PartitionKey").to_string(), get_str(r, "RowKey").to_string(), props))
        })
        .collect();
    Ok(ForgetPlan { customer, leads: matched, index_entries, state_rows })
}

/// Prints what [`execute`] would remove: this customer's rows by date, offer and action.
pub fn print_plan(plan: &ForgetPlan, leads_table: &str, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Customer {}:", plan.customer)?;
    writeln!(out, "  {} lead row(s) in {leads_table}", plan.leads.len())?;
    for row in &plan.leads {
        let lead = Lead::from_entity(row);
        let action = lead.action_code.as_deref().map(action_label).unwrap_or("-");
        let unparsed = if lead.recognised { "" } else { " (unparsed)" };
        writeln!(
            out,
            "    {}  {:<14}  {}{unparsed}",
            lead.created.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into()),
            one_line(action),
            truncate_chars(&one_line(lead.offer().unwrap_or("-")), 40),
        )?;
    }
    writeln!(out, "  {} journey-index entr(y/ies) in {}", plan.index_entries.len(), Journey::table_name(leads_table))?;
    writeln!(
        out,
        "  {} notifier state row(s) in {leads_table}Notify with the address in their text (blanked, not deleted)",
        plan.state_rows.len()
    )
}

/// What [`execute`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub leads: usize,
    pub index_entries: usize,
    pub state_rows: usize,
}

/// Removes what `plan` lists. Lead rows first, then the index: a notifier run that indexed one
/// of these leads meanwhile is caught by re-reading the customer's partition at the end.
/// Running forget again after a failure finishes the job (every step is idempotent).
pub async fn execute(leads: &SharedTable, plan: &ForgetPlan) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    for row in &plan.leads {
        removed.leads += usize::from(leads.remove(get_str(row, "PartitionKey"), get_str(row, "RowKey")).await?);
    }
    let journey = Journey::new(leads);
    for (pk, rk) in &plan.index_entries {
        removed.index_entries += usize::from(journey.table().remove(pk, rk).await?);
    }
    for late in journey.entries(&plan.customer).await? {
        removed.index_entries += usize::from(journey.table().remove(get_str(&late, "PartitionKey"), get_str(&late, "RowKey")).await?);
    }
    let state = NotifyTable::beside(leads).table().clone();
    for (pk, rk, props) in &plan.state_rows {
        let blank: Entity = props.iter().map(|p| (p.clone(), Value::String(String::new()))).collect();
        match state.merge(pk, rk, &blank, "*").await {
            Ok(_) | Err(StoreError::NotFound) => removed.state_rows += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The command: plan, show, confirm (unless `yes`), remove, report.
pub async fn forget(leads: &SharedTable, email: &str, yes: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let plan = plan(leads, email).await.map_err(anyhow::Error::msg)?;
    print_plan(&plan, leads.name(), out)?;
    if plan.total() == 0 {
        writeln!(out, "Nothing names this address; nothing removed.")?;
        return Ok(());
    }
    if !yes {
        // A script piping input must say what it means: removal cannot be undone.
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("stdin is not a terminal: nothing removed; pass --yes to remove without asking");
        }
        write!(out, "Remove these {} rows? [y/N] ", plan.total())?;
        out.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            writeln!(out, "Nothing removed.")?;
            return Ok(());
        }
    }
    let removed = execute(leads, &plan).await?;
    writeln!(
        out,
        "Removed {} lead row(s) and {} journey-index entr(y/ies); blanked the address in {} notifier state row(s).",
        removed.leads, removed.index_entries, removed.state_rows
    )?;
    writeln!(out, "Microsoft's own copy of these leads (Partner Center → Referrals) is not touched: remove it there.")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Entity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_row_names_the_address_by_email_or_by_any_text() {
        let a = "jana@contoso.example";
        assert!(names(&row(json!({"Email": " Jana@Contoso.Example "})), a));
        assert!(names(&row(json!({"CustomerInfo": "{\"Email\":\"JANA@contoso.example\"}"})), a));
        assert!(names(&row(json!({"Parsed": false, "RawPayload": "{\"mail\":\"Jana@Contoso.example\"}"})), a));
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"\xff jana@CONTOSO.example");
        assert!(names(&row(json!({"RawEncoding": "base64", "RawPayload": b64})), a));
        assert!(!names(&row(json!({"Email": "ana@northwind.example", "RawPayload": "jan@contoso.example"})), a));
        for other in ["mjana@contoso.example", "j.jana@contoso.example", "jana@contoso.example.com", "jana@contoso.examples"] {
            assert!(!names(&row(json!({"RawPayload": format!("{{\"Email\":\"{other}\"}}")})), a), "{other}");
        }
        for same in ["<Jana@contoso.example>", "mailto:jana@contoso.example.", "jana@contoso.example,x"] {
            assert!(contains_address(same, a), "{same}");
        }
    }
}
