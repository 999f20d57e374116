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

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal as _, Write};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::entity::{get_str, Entity};
use crate::lead::customer::normalise_email;
use crate::lead::{action_label, CustomerId, Lead};
use crate::notify::crm::Crms;
use crate::notify::journey::Journey;
use crate::notify::lead_state::notification_id;
use crate::notify::notify_table::NotifyTable;
use crate::store::{Pages, Query, SharedTable, StoreError};
use crate::text::{one_line, truncate_chars};

/// What replaces the address in a row that is kept.
pub const MARKER: &str = "[forgotten address]";

/// Characters of base64 per raw-payload property (as LeadIngest splits them).
const RAW_CHUNK_CHARS: usize = 32 * 1024;
/// UTF-16 units one Table string property holds.
const MAX_STRING_UNITS: usize = 32 * 1024;

// ---------------------------------------------------------------------------------------------
// Finding the address

/// One character of stored text with the bytes it was written as: itself, or a JSON escape.
struct Unit {
    ch: char,
    start: usize,
    end: usize,
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    s.chars().all(|c| c.is_ascii_hexdigit()).then(|| u32::from_str_radix(s, 16).ok()).flatten()
}

/// Reads `b` as characters, decoding JSON escapes (`\u0040`, surrogate pairs, `\/`, `\n`…) and
/// UTF-8; a byte that is neither is U+FFFD of its own.
fn units(b: &[u8]) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'u' {
                if let Some(code) = hex4(&b[i + 2..]) {
                    let mut end = i + 6;
                    let mut ch = char::from_u32(code);
                    if (0xD800..0xDC00).contains(&code) && b.get(end..end + 2) == Some(b"\\u") {
                        if let Some(low) = hex4(&b[end + 2..]).filter(|l| (0xDC00..0xE000).contains(l)) {
                            ch = char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00));
                            end += 6;
                        }
                    }
                    out.push(Unit { ch: ch.unwrap_or('\u{FFFD}'), start: i, end });
                    i = end;
                    continue;
                }
            }
            let escaped = match b[i + 1] {
                b'"' => Some('"'),
                b'\\' => Some('\\'),
                b'/' => Some('/'),
                b'b' => Some('\u{8}'),
                b'f' => Some('\u{c}'),
                b'n' => Some('\n'),
                b'r' => Some('\r'),
                b't' => Some('\t'),
                _ => None,
            };
            if let Some(ch) = escaped {
                out.push(Unit { ch, start: i, end: i + 2 });
                i += 2;
                continue;
            }
        }
        let width = match b[i] {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 0,
        };
        let ch = b.get(i..i + width).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.chars().next());
        match ch {
            Some(ch) => {
                out.push(Unit { ch, start: i, end: i + width });
                i += width;
            }
            None => {
                out.push(Unit { ch: '\u{FFFD}', start: i, end: i + 1 });
                i += 1;
            }
        }
    }
    out
}

/// Where `b` holds the normalised `address` as a whole address (byte spans), written in any mix
/// of plain characters and JSON escapes, ASCII case ignored: not as the tail of a longer one
/// (`mjana@…`) nor the head of one with a longer domain (`….com.au`), which are other customers'.
fn find_address(b: &[u8], address: &str) -> Vec<(usize, usize)> {
    let want: Vec<char> = address.chars().collect();
    // Cheap test first: every address has an `@`, plain or escaped.
    if want.is_empty() || !(b.contains(&b'@') || b.windows(2).any(|w| w == b"\\u")) {
        return Vec::new();
    }
    let text = units(b);
    let local_char = |c: char| c.is_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c);
    let domain_char = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    let mut spans = Vec::new();
    let mut at = 0;
    while at + want.len() <= text.len() {
        let same = text[at..at + want.len()].iter().zip(&want).all(|(u, w)| u.ch.eq_ignore_ascii_case(w));
        if same {
            let before = at.checked_sub(1).map(|i| text[i].ch);
            let next = text.get(at + want.len()).map(|u| u.ch);
            let then = text.get(at + want.len() + 1).map(|u| u.ch);
            let longer_domain = next == Some('.') && then.is_some_and(domain_char);
            if before.is_none_or(|c| !local_char(c)) && next.is_none_or(|c| !domain_char(c)) && !longer_domain {
                spans.push((text[at].start, text[at + want.len() - 1].end));
                at += want.len();
                continue;
            }
        }
        at += 1;
    }
    spans
}

/// `text` contains the normalised `address` (see [`find_address`]).
pub fn contains_address(text: &str, address: &str) -> bool {
    !find_address(text.as_bytes(), address).is_empty()
}

/// `b` with every span replaced by the marker; `short` cuts each marker to the span's length in
/// characters, so the text never grows (for a value at the property's limit).
fn replace_spans(b: &[u8], spans: &[(usize, usize)], short: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut from = 0;
    for &(start, end) in spans {
        out.extend_from_slice(&b[from..start]);
        let marker = if short { &MARKER[..MARKER.len().min(end - start)] } else { MARKER };
        out.extend_from_slice(marker.as_bytes());
        from = end;
    }
    out.extend_from_slice(&b[from..]);
    out
}

/// `text` with the address replaced by [`MARKER`], `None` when it does not contain it.
pub fn redact_text(text: &str, address: &str) -> Option<String> {
    let spans = find_address(text.as_bytes(), address);
    if spans.is_empty() {
        return None;
    }
    // Spans fall on character boundaries and the marker is ASCII: still UTF-8.
    let full = String::from_utf8_lossy(&replace_spans(text.as_bytes(), &spans, false)).into_owned();
    if full.encode_utf16().count() <= MAX_STRING_UNITS {
        return Some(full);
    }
    Some(String::from_utf8_lossy(&replace_spans(text.as_bytes(), &spans, true)).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Whose row it is, and what happens to it

/// A row's raw payload as bytes: base64-decoded when LeadIngest stored it so.
fn raw_bytes(row: &Entity) -> Option<Vec<u8>> {
    let first = get_str(row, "RawPayload");
    if get_str(row, "RawEncoding").eq_ignore_ascii_case("base64") {
        let b64 = format!("{first}{}", get_str(row, "RawPayload2"));
        return base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()).ok();
    }
    (!first.is_empty()).then(|| first.as_bytes().to_vec())
}

/// The first string under a key named `email` (any ASCII case, any depth) of a JSON value.
fn email_field(v: &Value) -> Option<&str> {
    match v {
        Value::Object(map) => map
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case("email") && v.is_string())
            .and_then(|(_, v)| v.as_str())
            .or_else(|| map.values().find_map(email_field)),
        Value::Array(items) => items.iter().find_map(email_field),
        _ => None,
    }
}

/// The row's own customer address, as written: the parsed e-mail (LeadIngest's column, else
/// Microsoft's `CustomerInfo`), else, for a row nobody could parse, its raw payload's `email`.
pub fn own_address(row: &Entity) -> Option<String> {
    let lead = Lead::from_entity(row);
    if let Some(email) = lead.contact.email {
        return Some(email);
    }
    if lead.recognised {
        return None;
    }
    let raw = raw_bytes(row)?;
    let json: Value = serde_json::from_str(&String::from_utf8_lossy(&raw)).ok()?;
    email_field(&json).map(str::to_string)
}

/// Whether the row is the lead of the customer with the normalised `address`.
pub fn is_own(row: &Entity, address: &str) -> bool {
    own_address(row).as_deref().and_then(normalise_email).as_deref() == Some(address)
}

/// The properties to write so `row` no longer holds the address (empty when it holds none):
/// every string property containing it, and a base64 raw payload re-encoded.
pub fn redaction(row: &Entity, address: &str) -> Entity {
    let mut props = Entity::new();
    for (k, v) in row {
        if matches!(k.as_str(), "PartitionKey" | "RowKey" | "Timestamp") || k.starts_with("odata.") || k.contains("@odata.") {
            continue;
        }
        if let Some(redacted) = v.as_str().and_then(|s| redact_text(s, address)) {
            props.insert(k.clone(), Value::String(redacted));
        }
    }
    if get_str(row, "RawEncoding").eq_ignore_ascii_case("base64") {
        if let Some(bytes) = raw_bytes(row) {
            let spans = find_address(&bytes, address);
            if !spans.is_empty() {
                let engine = base64::engine::general_purpose::STANDARD;
                let mut b64 = engine.encode(replace_spans(&bytes, &spans, false));
                if b64.len() > 2 * RAW_CHUNK_CHARS {
                    b64 = engine.encode(replace_spans(&bytes, &spans, true));
                }
                let (first, rest) = b64.split_at(b64.len().min(RAW_CHUNK_CHARS));
                props.insert("RawPayload".into(), Value::String(first.to_string()));
                if !rest.is_empty() || row.contains_key("RawPayload2") {
                    props.insert("RawPayload2".into(), Value::String(rest.to_string()));
                }
            }
        }
    }
    props
}

/// What forget does with one lead row.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Not this customer's and no mention of the address.
    Keep,
    /// This customer's lead.
    Delete,
    /// Another customer's lead mentioning the address: these properties are written.
    Redact(Entity),
}

pub fn judge(row: &Entity, address: &str) -> Verdict {
    if is_own(row, address) {
        return Verdict::Delete;
    }
    let props = redaction(row, address);
    if props.is_empty() {
        Verdict::Keep
    } else {
        Verdict::Redact(props)
    }
}

// ---------------------------------------------------------------------------------------------
// The plan

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
    address: String,
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

    fn partitions(&self) -> Vec<&CustomerId> {
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

/// The CRMs forget reaches: the clients LeadNotify's settings turn on.
pub struct CrmAccess<'a> {
    pub http: reqwest::Client,
    pub crms: &'a Crms,
    /// Erase the people the app only created or updated (HubSpot contact, Marketo person) too.
    pub erase_people: bool,
}

impl CrmAccess<'_> {
    fn any(&self) -> bool {
        let c = self.crms;
        c.dynamics.is_some() || c.salesforce.is_some() || c.hubspot.is_some() || c.marketo.is_some()
    }
}

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

/// Counts of CRM records removed for this customer's leads.
#[derive(Default)]
struct CrmCounts {
    dynamics: usize,
    salesforce: usize,
    hubspot_notes: usize,
    /// CRMs with a call that failed: their counts are not the whole story.
    failed: HashSet<&'static str>,
}

impl CrmCounts {
    fn line(&self, crm: &'static str, done: String) -> String {
        if self.failed.contains(crm) {
            format!("{crm}: {done} so far; NOT all reached (see LEFT below)")
        } else {
            format!("{crm}: {done}")
        }
    }
}

/// Deletes what this app created in each CRM for the lead `nid`; the failures.
async fn erase_created(access: &CrmAccess<'_>, nid: &str, counts: &mut CrmCounts) -> Vec<String> {
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

/// Does what `plan` lists, re-reading every row first (a run after a crash, or a row changed
/// since, is handled by what the row is now). `crm`: the CRMs to reach, if any are set here.
pub async fn execute(leads: &SharedTable, plan: &ForgetPlan, crm: Option<&CrmAccess<'_>>) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let address = plan.address.as_str();
    let journey = Journey::new(leads);
    let crm = crm.filter(|c| c.any());

    // 1. Lead rows. A deleted lead's index entry is marked first, so the CRM step below (or a
    //    later run) still knows its notification id once the row is gone.
    let mut deleted_ids = HashSet::new();
    for row in &plan.rows {
        let (pk, rk) = (row.partition_key.as_str(), row.row_key.as_str());
        let Some((current, _)) = leads.get(pk, rk).await? else {
            if row.delete {
                deleted_ids.insert(notification_id(pk, rk));
            }
            continue;
        };
        match judge(&current, address) {
            Verdict::Keep => {}
            Verdict::Delete => {
                if crm.is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::store::{MemoryTable, Table};
    use serde_json::json;
    use std::sync::Arc;

    fn row(v: Value) -> Entity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_address_is_found_in_every_encoding_and_only_as_itself() {
        let a = "jana@contoso.example";
        for same in [
            "<Jana@Contoso.Example>",
            "mailto:jana@contoso.example.",
            "jana@contoso.example,x",
            r#"{"mail":"jana\u0040contoso.example"}"#,
            r#"{"mail":"\u006A\u0061NA@contoso\u002eexample"}"#,
        ] {
            assert!(contains_address(same, a), "{same}");
        }
        assert!(!contains_address(r#"{"mail":"jana@contoso\/example"}"#, a), "a slash is not a dot");
        for other in ["mjana@contoso.example", "j.jana@contoso.example", "jana@contoso.example.com", "jana@contoso.examples", r"x\\u0040"] {
            assert!(!contains_address(other, a), "{other}");
        }
        // Only ASCII case is folded: the Kelvin sign is not `k`.
        assert!(!contains_address("\u{212A}ate@contoso.example", "kate@contoso.example"));
        assert!(contains_address("\u{212A}ATE@contoso.example", "\u{212A}ate@contoso.example"));
        assert!(!contains_address("kate@contoso.example", "\u{212A}ate@contoso.example"));
        assert_eq!(redact_text(r#"cc "jana\u0040CONTOSO.example" and bob"#, a).as_deref(), Some(r#"cc "[forgotten address]" and bob"#));
        assert_eq!(redact_text("eva@x.example; Jana@contoso.example", a).as_deref(), Some("eva@x.example; [forgotten address]"));
    }

    #[test]
    fn a_row_is_deleted_only_when_its_own_address_is_the_one() {
        let a = "jana@contoso.example";
        assert_eq!(judge(&row(json!({"Email": " Jana@Contoso.Example "})), a), Verdict::Delete);
        assert_eq!(judge(&row(json!({"CustomerInfo": "{\"Email\":\"JANA@contoso.example\"}"})), a), Verdict::Delete);
        let unparsed = json!({"Parsed": false, "RawPayload": "{\"contact\":{\"EMAIL\":\"jana\\u0040contoso.example\"}}"});
        assert_eq!(judge(&row(unparsed), a), Verdict::Delete, "an unparsed row's own address is its payload's email field");
        // Others that merely mention it keep their lead.
        let bob = row(json!({"Email": "bob@fabrikam.example", "Description": "cc my colleague jana@contoso.example"}));
        let Verdict::Redact(props) = judge(&bob, a) else { panic!("bob's lead is redacted") };
        assert_eq!(props.len(), 1);
        assert_eq!(props["Description"], "cc my colleague [forgotten address]");
        let eva = row(
            json!({"Email": "eva@x.example; jana@contoso.example", "CustomerInfo": "{\"Email\":\"eva@x.example; jana@contoso.example\"}"}),
        );
        let Verdict::Redact(props) = judge(&eva, a) else { panic!("eva's lead is redacted") };
        assert_eq!(props["Email"], "eva@x.example; [forgotten address]");
        assert!(!props["CustomerInfo"].as_str().unwrap().contains("jana"));
        let mention = row(json!({"Parsed": false, "RawPayload": "{\"note\":\"jana@contoso.example\"}"}));
        assert!(matches!(judge(&mention, a), Verdict::Redact(_)));
        assert_eq!(judge(&row(json!({"Email": "ana@northwind.example", "RawPayload": "jan@contoso.example"})), a), Verdict::Keep);
        // The Kelvin-sign customer is another customer.
        assert_eq!(judge(&row(json!({"Email": "\u{212A}ate@contoso.example"})), "kate@contoso.example"), Verdict::Keep);
    }

    #[test]
    fn a_base64_payload_is_redacted_and_encoded_again() {
        let engine = base64::engine::general_purpose::STANDARD;
        let body = b"\xff{\"who\":\"JANA@contoso.example\",\"x\":\"jana\\u0040contoso.example\"}";
        let r = row(json!({"Parsed": false, "RawEncoding": "base64", "RawPayload": engine.encode(body)}));
        let Verdict::Redact(props) = judge(&r, "jana@contoso.example") else { panic!("redacted") };
        let decoded = engine.decode(props["RawPayload"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, b"\xff{\"who\":\"[forgotten address]\",\"x\":\"[forgotten address]\"}");
        // Its own address, in base64: deleted.
        let own =
            row(json!({"Parsed": false, "RawEncoding": "base64", "RawPayload": engine.encode(b"{\"email\":\"jana@contoso.example\"}")}));
        assert_eq!(judge(&own, "jana@contoso.example"), Verdict::Delete);
    }

    async fn put(t: &MemoryTable, pk: &str, rk: &str, v: Value) {
        let mut e = row(v);
        e.insert("PartitionKey".into(), pk.into());
        e.insert("RowKey".into(), rk.into());
        t.insert(&e).await.unwrap();
    }

    fn lead(email: &str, description: &str) -> Value {
        json!({"Email": email, "Company": "Contoso s.r.o.", "ActionCode": "PLT", "OfferDisplayName": "Contoso Analytics",
               "Description": description, "LeadSource": "SPZA-PLT|contoso.analytics"})
    }

    #[tokio::test]
    async fn forget_removes_exactly_one_customer_page_by_page_and_twice_is_once() {
        let mem = MemoryTable::new("Leads", Clock::System);
        mem.set_page_size(2);
        let leads: SharedTable = Arc::new(mem.clone());
        put(&mem, "p1", "jana1", lead("jana@contoso.example", "")).await;
        put(&mem, "p1", "jana2", lead("JANA@contoso.example ", "")).await;
        put(&mem, "p2", "bob", lead("bob@fabrikam.example", "cc my colleague jana@contoso.example")).await;
        put(&mem, "p2", "eva", lead("eva@x.example; jana@contoso.example", "")).await;
        put(&mem, "p3", "kate", lead("kate@contoso.example", "")).await;
        put(&mem, "p3", "kelvin", lead("\u{212A}ate@contoso.example", "")).await;
        put(&mem, "p4", "raw", json!({"Parsed": false, "RawPayload": "{\"x\":{\"email\":\"jana\\u0040contoso.example\"}}"})).await;
        // The index, as the old key wrote it: Kelvin-Kate's entry sits under kate's key.
        let journey = Journey::new(&leads);
        for (pk, rk) in [("p1", "jana1"), ("p1", "jana2"), ("p2", "bob"), ("p3", "kate")] {
            let l = Lead::from_entity(&leads.get(pk, rk).await.unwrap().unwrap().0);
            journey.record(&l.customer_id().unwrap(), &l, pk, rk).await.unwrap();
        }
        let kate = CustomerId::for_email("kate@contoso.example").unwrap();
        let kelvin_lead = Lead::from_entity(&leads.get("p3", "kelvin").await.unwrap().unwrap().0);
        journey.record(&kate, &kelvin_lead, "p3", "kelvin").await.unwrap();
        let state = leads.with_table("LeadsNotify");
        state
            .upsert(&row(json!({"PartitionKey": "digest", "RowKey": "d1", "LastError": "550 <jana@contoso.example> rejected"})))
            .await
            .unwrap();

        let p = plan(&leads, " Jana@Contoso.example").await.unwrap();
        assert_eq!((p.deletes(), p.redactions(), p.index_entries, p.state_rows), (3, 2, 2, 1));
        let mut shown = Vec::new();
        print_plan(&p, "Leads", &mut shown).unwrap();
        let shown = String::from_utf8(shown).unwrap();
        assert!(!shown.contains('@'), "no address is shown: {shown}");
        assert_eq!(shown.matches("delete  ").count() + shown.matches("redact  ").count(), 5, "{shown}");
        assert!(shown.contains("Contact me") && shown.contains("Contoso Analytics") && shown.contains("Contoso s.r.o."), "{shown}");

        let report = execute(&leads, &p, None).await.unwrap();
        assert_eq!((report.deleted, report.redacted, report.index_removed, report.state_redacted), (3, 2, 2, 1));
        assert!(report.left.is_empty(), "{:?}", report.left);
        let keys: Vec<String> = mem.rows().iter().map(|r| get_str(r, "RowKey").to_string()).collect();
        assert_eq!(keys, ["bob", "eva", "kate", "kelvin"]);
        for r in mem.rows() {
            assert!(!Value::Object(r.clone()).to_string().to_ascii_lowercase().contains("jana@"), "{r:?}");
        }
        let bob = leads.get("p2", "bob").await.unwrap().unwrap().0;
        assert_eq!(bob["Description"], "cc my colleague [forgotten address]");
        assert_eq!(bob["Email"], "bob@fabrikam.example");
        assert_eq!(journey.entries(&CustomerId::for_email("bob@fabrikam.example").unwrap()).await.unwrap().len(), 1);
        assert_eq!(state.get("digest", "d1").await.unwrap().unwrap().0["LastError"], "550 <[forgotten address]> rejected");

        // A second run finds nothing to do.
        let again = plan(&leads, "jana@contoso.example").await.unwrap();
        assert_eq!((again.rows.len(), again.index_entries, again.state_rows), (0, 0, 0));

        // Forgetting kate keeps the Kelvin-sign customer, and moves her entry to her own key.
        let p = plan(&leads, "kate@contoso.example").await.unwrap();
        assert_eq!((p.deletes(), p.redactions()), (1, 0));
        let report = execute(&leads, &p, None).await.unwrap();
        assert_eq!((report.deleted, report.index_removed, report.index_refiled), (1, 1, 1));
        assert!(leads.get("p3", "kelvin").await.unwrap().is_some());
        assert!(journey.entries(&kate).await.unwrap().is_empty());
        assert_eq!(journey.entries(&kelvin_lead.customer_id().unwrap()).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_crashed_run_is_finished_by_the_next() {
        let mem = MemoryTable::new("Leads", Clock::System);
        let leads: SharedTable = Arc::new(mem.clone());
        put(&mem, "p1", "jana1", lead("jana@contoso.example", "")).await;
        put(&mem, "p1", "bob", lead("bob@fabrikam.example", "jana@contoso.example")).await;
        let p = plan(&leads, "jana@contoso.example").await.unwrap();
        // The crash: the lead row went, nothing else happened.
        leads.remove("p1", "jana1").await.unwrap();
        let report = execute(&leads, &p, None).await.unwrap();
        assert_eq!((report.deleted, report.redacted), (0, 1));
        let again = plan(&leads, "jana@contoso.example").await.unwrap();
        assert!(again.rows.is_empty());
    }
}
