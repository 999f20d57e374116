//! `handler send-test-lead <url>`: posts Microsoft's validation lead and explains the answer,
//! as a publisher needs when Partner Center's "Validate" fails.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::net::describe_reqwest;

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
    let client = match crate::net::client_builder().and_then(|b| b.timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())) {
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
            let why = describe_reqwest(&e.without_url());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::Lead;

    #[test]
    fn test_lead_is_detected_as_one() {
        let body = test_lead_payload(Utc::now()).to_string();
        let (lead, _) = Lead::from_payload(body.as_bytes()).unwrap();
        assert!(lead.is_test());
        assert!(body.contains("@test.com"));
    }
}
