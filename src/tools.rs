//! The lead tools: `send-test-lead`, `leads list`, `leads export`, `leads status`.
//! They print to stdout for the publisher (who owns these leads); diagnoses go to stderr.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::lead::{action_label, Lead};
use crate::notify::{Channel, ChannelRecord, DeliveryState};
use crate::store::{Entity, StoreError, TableClient};

/// The validation lead exactly as Partner Center sends it: `MSFT_TEST_<ticks>` in every field.
pub fn test_lead_payload(now: DateTime<Utc>) -> Value {
    // .NET ticks (100 ns since 0001-01-01), as in Microsoft's own test leads.
    let ticks = (now.timestamp() + 62_135_596_800) as i128 * 10_000_000 + (now.timestamp_subsec_nanos() / 100) as i128;
    let t = format!("MSFT_TEST_{ticks}");
    json!({
        "UserDetails": {
            "FirstName": t, "LastName": t, "Email": format!("{t}@test.com"), "Phone": "1234567890",
            "Country": "US", "Company": t, "Title": t
        },
        "LeadSource": format!("{t}-{t}|{t}"),
        "ActionCode": t,
        "OfferTitle": t,
        "Description": t
    })
}

/// Posts a test lead and explains the answer. Returns the process exit code.
pub async fn send_test_lead(url: &str) -> i32 {
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: `{url}` is not a URL ({e})");
            return 2;
        }
    };
    if !parsed.path().ends_with("/api/LeadIngest") {
        eprintln!("warning: the path is `{}`; LeadIngest's URL ends in /api/LeadIngest", parsed.path());
    }
    if !parsed.query_pairs().any(|(k, _)| k == "code") {
        eprintln!("warning: no ?code=<key> in the URL; the function key travels there (Partner Center takes a URL only)");
    }
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let body = test_lead_payload(Utc::now());
    let resp = match client.post(parsed.clone()).json(&body).send().await {
        Ok(r) => r,
        Err(e) => {
            let timed_out = e.is_timeout();
            let why = crate::store::describe_reqwest(&e.without_url());
            let lower = why.to_lowercase();
            let diagnosis = if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
                "DNS: the host name does not resolve; check the function app name in the URL"
            } else if ["certificate", "tls", "ssl", "handshake", "corrupt message"].iter().any(|w| lower.contains(w)) {
                "TLS: the server's certificate was not accepted; Partner Center needs a valid public certificate"
            } else if lower.contains("refused") {
                "nothing listens at that address and port; is the app running?"
            } else if timed_out {
                "no answer within 30 s; Partner Center would give up too"
            } else {
                "could not reach the endpoint"
            };
            eprintln!("error: {diagnosis}\n  ({why})");
            return 1;
        }
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    if !text.is_empty() {
        println!("{text}");
    }
    if status.is_success() {
        let row: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let pk = row.get("partitionKey").and_then(Value::as_str).unwrap_or("?");
        let rk = row.get("rowKey").and_then(Value::as_str).unwrap_or("?");
        println!("stored: PartitionKey {pk}, RowKey {rk}; see it with `handler leads list --include-tests`");
        return 0;
    }
    let diagnosis = match status.as_u16() {
        401 | 403 => "the key is missing or wrong: append ?code=<function key> (in Azure: the LeadIngest function key)",
        404 => "wrong route: the URL must be https://<app>.azurewebsites.net/api/LeadIngest?code=<key>",
        405 => "the endpoint only takes POST",
        413 => "the endpoint refused the size of the lead",
        400 => "the endpoint refused the lead's JSON",
        500..=599 => "the endpoint is up but could not store the lead: check the storage settings and the function's logs",
        _ => "unexpected answer",
    };
    eprintln!("error: {diagnosis}");
    1
}

/// Filters for `leads list` and `leads export`.
#[derive(Debug, Default, Clone)]
pub struct LeadFilter {
    pub offer: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub include_tests: bool,
}

/// A lead row read back from the table.
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
pub async fn read_leads(store: &TableClient, filter: &LeadFilter) -> Result<Vec<StoredLead>, StoreError> {
    let rows = store.query(None, None, usize::MAX).await?;
    let mut leads: Vec<StoredLead> = rows
        .entities
        .into_iter()
        .map(|e| StoredLead {
            partition_key: e.get("PartitionKey").and_then(Value::as_str).unwrap_or_default().to_string(),
            row_key: e.get("RowKey").and_then(Value::as_str).unwrap_or_default().to_string(),
            lead: Lead::from_entity(&e),
            entity: e,
        })
        .filter(|l| filter.include_tests || !l.lead.is_test())
        .filter(|l| filter.action.as_ref().is_none_or(|a| l.lead.action_code.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(a))))
        .filter(|l| {
            filter.offer.as_ref().is_none_or(|o| {
                let o = o.to_lowercase();
                [l.lead.offer_title.as_deref(), l.lead.lead_source.offer.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|v| v.to_lowercase().contains(&o))
            })
        })
        .filter(|l| filter.since.is_none_or(|s| l.lead.created.is_some_and(|c| c >= s)))
        .collect();
    leads.sort_by(|a, b| b.lead.created.cmp(&a.lead.created).then_with(|| a.row_key.cmp(&b.row_key)));
    Ok(leads)
}

/// `leads list`: one line per lead, newest first.
pub fn print_list(leads: &[StoredLead], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{:<17}  {:<14}  {:<28}  {:<24}  {:<24}  {:<3}  ROW", "RECEIVED (UTC)", "ACTION", "OFFER", "COMPANY", "NAME", "CC")?;
    for l in leads {
        let lead = &l.lead;
        let mut action = lead.action_code.as_deref().map(action_label).unwrap_or("-").to_string();
        if lead.is_test() {
            action = "TEST".into();
        }
        writeln!(
            out,
            "{:<17}  {:<14}  {:<28}  {:<24}  {:<24}  {:<3}  {}/{}",
            lead.created.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into()),
            clip(&action, 14),
            clip(lead.offer().unwrap_or("-"), 28),
            clip(lead.contact.company.as_deref().unwrap_or("-"), 24),
            clip(&lead.contact.full_name().unwrap_or_else(|| "-".into()), 24),
            clip(lead.contact.country.as_deref().unwrap_or("-"), 3),
            l.partition_key,
            l.row_key
        )?;
    }
    writeln!(out, "{} lead(s)", leads.len())
}

fn clip(s: &str, width: usize) -> String {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.chars().count() <= width {
        clean
    } else {
        clean.chars().take(width - 1).chain(['…']).collect()
    }
}

const EXPORT_COLUMNS: [&str; 18] = [
    "createdTime",
    "firstName",
    "lastName",
    "email",
    "phone",
    "country",
    "company",
    "title",
    "source",
    "actionCode",
    "offerId",
    "offerTitle",
    "description",
    "leadSource",
    "isTest",
    "doNotContact",
    "partitionKey",
    "rowKey",
];

fn export_record(l: &StoredLead) -> Vec<String> {
    let lead = &l.lead;
    let c = &lead.contact;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        lead.created.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default(),
        s(&c.first_name),
        s(&c.last_name),
        s(&c.email),
        s(&c.phone),
        s(&c.country),
        s(&c.company),
        s(&c.title),
        s(&lead.lead_source.source),
        s(&lead.action_code),
        s(&lead.lead_source.offer),
        s(&lead.offer_title),
        s(&lead.description),
        lead.lead_source.raw.clone(),
        lead.is_test().to_string(),
        lead.is_do_not_contact().to_string(),
        l.partition_key.clone(),
        l.row_key.clone(),
    ]
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula: customer text
/// must not. A leading apostrophe is how spreadsheets mark "this is text".
fn csv_safe(v: String) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v
    }
}

pub fn write_csv(leads: &[StoredLead], out: &mut dyn Write) -> Result<(), String> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(EXPORT_COLUMNS).map_err(|e| e.to_string())?;
    for l in leads {
        let mut rec = export_record(l);
        // Phone numbers like "+420 …" are data, not formulas, but a spreadsheet cannot tell.
        rec = rec.into_iter().map(csv_safe).collect();
        w.write_record(rec).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

pub fn write_json(leads: &[StoredLead], out: &mut dyn Write) -> Result<(), String> {
    let items: Vec<Value> = leads
        .iter()
        .map(|l| {
            let rec = export_record(l);
            let mut obj = serde_json::Map::new();
            for (k, v) in EXPORT_COLUMNS.iter().zip(rec) {
                let value = match *k {
                    "isTest" | "doNotContact" => Value::Bool(v == "true"),
                    _ if v.is_empty() => Value::Null,
                    _ => Value::String(v),
                };
                obj.insert(k.to_string(), value);
            }
            Value::Object(obj)
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &items).map_err(|e| e.to_string())?;
    writeln!(out).map_err(|e| e.to_string())
}

/// `leads status`: per channel, how many leads stand where, and the failures in detail.
pub fn print_status(leads: &[StoredLead], channels: &[Channel], out: &mut dyn Write) -> std::io::Result<()> {
    if channels.is_empty() {
        writeln!(out, "no notification channel is configured")?;
    }
    for ch in channels {
        let mut counts = [0usize; 4];
        for l in leads {
            let idx = match ChannelRecord::read(&l.entity, *ch).state {
                DeliveryState::Pending => 0,
                DeliveryState::Delivered => 1,
                DeliveryState::Failed => 2,
                DeliveryState::Skipped => 3,
            };
            counts[idx] += 1;
        }
        writeln!(
            out,
            "{:<8} delivered {:>6}  pending {:>6}  failed {:>6}  skipped {:>6}",
            ch.name(),
            counts[1],
            counts[0],
            counts[2],
            counts[3]
        )?;
    }
    for l in leads {
        for ch in channels {
            let r = ChannelRecord::read(&l.entity, *ch);
            let show = r.state == DeliveryState::Failed || (r.state == DeliveryState::Pending && r.attempts > 0);
            if show {
                writeln!(
                    out,
                    "  {} {}/{} {} after {} attempt(s): {}",
                    ch.name(),
                    l.partition_key,
                    l.row_key,
                    r.state.as_str(),
                    r.attempts,
                    r.last_error.as_deref().unwrap_or("-")
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_lead_is_detected_as_one() {
        let body = test_lead_payload(Utc::now()).to_string();
        let (lead, _) = Lead::from_payload(body.as_bytes()).unwrap();
        assert!(lead.is_test());
        assert!(body.contains("@test.com"));
    }

    #[test]
    fn csv_cells_cannot_be_formulas() {
        assert_eq!(csv_safe("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_safe("Jana".into()), "Jana");
    }

    #[test]
    fn since_parses_dates_and_times() {
        assert!(parse_since("2026-11-01").is_ok());
        assert!(parse_since("2026-11-01T10:00:00Z").is_ok());
        assert!(parse_since("yesterday").is_err());
    }
}
