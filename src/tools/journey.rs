//! `handler leads journey <email>`: one customer's leads, oldest first, from either route. Reads
//! the lead table itself rather than the notifier's index, so it also shows leads the notifier has
//! not reached (or that predate the index).

use std::io::Write;

use super::query::StoredLead;
use crate::lead::words::country_name;
use crate::lead::{action_label, source_label, CustomerId};
use crate::notify::journey::ordinal;
use crate::text::one_line;

/// Prints the customer's leads in order; an error when `email` is not an address.
pub fn print_journey(email: &str, all: &[StoredLead], out: &mut dyn Write) -> anyhow::Result<()> {
    let customer = CustomerId::for_email(email).ok_or_else(|| anyhow::anyhow!("`{}` is not an e-mail address", one_line(email)))?;
    let mut leads: Vec<&StoredLead> = all.iter().filter(|l| l.lead.customer_id().as_ref() == Some(&customer)).collect();
    leads.sort_by(|a, b| a.lead.created.cmp(&b.lead.created).then_with(|| a.row_key.cmp(&b.row_key)));
    let Some(latest) = leads.last() else {
        writeln!(out, "no leads from this address (customer id {customer})")?;
        return Ok(());
    };
    let c = &latest.lead.contact;
    let who =
        [c.full_name(), c.company.clone(), c.country.as_deref().map(country_name)].into_iter().flatten().collect::<Vec<_>>().join(", ");
    writeln!(out, "customer {customer}: {}; {} lead(s)", one_line(&who), leads.len())?;
    for (i, l) in leads.iter().enumerate() {
        let lead = &l.lead;
        writeln!(
            out,
            "{:>5}  {}  {:<14}  {:<18}  {}  ({}/{})",
            ordinal(i + 1),
            lead.created.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into()),
            one_line(lead.action_code.as_deref().map(action_label).unwrap_or("-")),
            one_line(lead.lead_source.source.as_deref().map(source_label).unwrap_or("-")),
            one_line(lead.offer().unwrap_or("-")),
            one_line(&l.partition_key),
            one_line(&l.row_key),
        )?;
    }
    Ok(())
}
