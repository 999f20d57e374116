//! `handler leads list`: one line per lead, newest first.

use std::collections::HashMap;
use std::io::Write;

use super::query::StoredLead;
use crate::lead::action_label;
use crate::notify::journey::ordinal;
use crate::text::{one_line, truncate_chars};

/// Each lead's place in its customer's journey (1 for a first lead), counted over `all` leads
/// oldest first; `None` for leads that link to no customer (tests, no e-mail address).
pub fn nth_lead_of_customer<'a>(all: impl IntoIterator<Item = &'a StoredLead>) -> HashMap<(String, String), usize> {
    let mut by_age: Vec<&StoredLead> = all.into_iter().collect();
    by_age.sort_by(|a, b| a.lead.created.cmp(&b.lead.created).then_with(|| a.row_key.cmp(&b.row_key)));
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut nth = HashMap::new();
    for l in by_age {
        if let Some(customer) = l.lead.customer_id() {
            let n = seen.entry(customer.to_string()).or_insert(0);
            *n += 1;
            nth.insert((l.partition_key.clone(), l.row_key.clone()), *n);
        }
    }
    nth
}

/// `leads list`: one line per lead, newest first; `REPEAT` marks a returning customer's lead
/// (`2nd`, `3rd`…, counted over `all` leads, not just the listed ones).
pub fn print_list(leads: &[StoredLead], all: &[StoredLead], out: &mut dyn Write) -> std::io::Result<()> {
    let nth = nth_lead_of_customer(all);
    writeln!(
        out,
        "{:<17}  {:<14}  {:<28}  {:<24}  {:<24}  {:<3}  {:<6}  ROW",
        "RECEIVED (UTC)", "ACTION", "OFFER", "COMPANY", "NAME", "CC", "REPEAT"
    )?;
    for l in leads {
        let repeat = match nth.get(&(l.partition_key.clone(), l.row_key.clone())) {
            Some(n) if *n > 1 => ordinal(*n),
            _ => "-".to_string(),
        };
        let lead = &l.lead;
        let mut action = lead.action_code.as_deref().map(action_label).unwrap_or("-").to_string();
        if lead.is_test() {
            action = "TEST".into();
        }
        writeln!(
            out,
            "{:<17}  {:<14}  {:<28}  {:<24}  {:<24}  {:<3}  {:<6}  {}/{}",
            lead.created.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into()),
            clip(&action, 14),
            clip(lead.offer().unwrap_or("-"), 28),
            clip(lead.contact.company.as_deref().unwrap_or("-"), 24),
            clip(&lead.contact.full_name().unwrap_or_else(|| "-".into()), 24),
            clip(lead.contact.country.as_deref().unwrap_or("-"), 3),
            repeat,
            one_line(&l.partition_key),
            one_line(&l.row_key)
        )?;
    }
    writeln!(out, "{} lead(s)", leads.len())
}

/// Fits customer text to a column: control characters (terminal escapes) become spaces.
fn clip(s: &str, width: usize) -> String {
    truncate_chars(&one_line(s), width)
}
