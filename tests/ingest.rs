//! LeadIngest end to end: the real binary, driven as the Functions host drives it (proxied
//! request and invocation envelope) and standalone, against a real Azurite.

mod common;

use common::*;
use serde_json::{json, Value};

async fn rows(table: &str) -> Vec<serde_json::Map<String, Value>> {
    table_client(table).query(None, None, usize::MAX).await.unwrap().entities
}

async fn post(h: &Handler, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = reqwest::Client::new().post(h.url(path)).header("content-type", "application/json").body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn proxied_request_stores_every_sample_shape() {
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;

    let (status, body) = post(&h, "/api/LeadIngest?code=functionkey", sample("https-lead.json")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "stored");
    let (status, _) = post(&h, "/api/LeadIngest?code=functionkey", sample("https-lead-legacy.json")).await;
    assert_eq!(status, 201);
    let (status, body) = post(&h, "/api/LeadIngest?code=functionkey", sample("https-lead-test.json")).await;
    assert_eq!(status, 201);
    assert_eq!(body["test"], true);

    let rows = rows(&table).await;
    assert_eq!(rows.len(), 3);
    let jana = rows.iter().find(|r| r["LastName"] == "Novák").expect("unicode name kept");
    assert_eq!(jana["FirstName"], "Jana");
    assert_eq!(jana["Company"], "Contoso s.r.o.");
    assert_eq!(jana["Phone"], "+420 601 234 567");
    assert_eq!(jana["LeadSource"], "SPZA-PLT|contoso.contoso-analytics");
    assert_eq!(jana["Source"], "SPZA");
    assert_eq!(jana["Action"], "PLT");
    assert_eq!(jana["ActionCode"], "PLT");
    assert_eq!(jana["Offer"], "contoso.contoso-analytics");
    assert_eq!(jana["OfferDisplayName"], "Contoso Analytics");
    assert_eq!(jana["IsTest"], false);
    assert_eq!(jana["Parsed"], true);
    let info: Value = serde_json::from_str(jana["CustomerInfo"].as_str().unwrap()).unwrap();
    assert_eq!(info["Email"], "jana.novak@contoso.example");
    assert!(jana["CreatedTime"].as_str().unwrap().starts_with(&chrono::Utc::now().format("%Y-").to_string()));
    let pk = jana["PartitionKey"].as_str().unwrap();
    assert_eq!(pk, marketplace_leads::lead::partition_key_for(chrono::Utc::now().date_naive()));

    let legacy = rows.iter().find(|r| r["Company"] == "Fabrikam").unwrap();
    assert_eq!(legacy["ActionCode"], "INS", "action comes from LeadSource when ActionCode is absent");
    assert_eq!(legacy["Description"], "");

    let test = rows.iter().find(|r| r["IsTest"] == true).unwrap();
    assert_eq!(test["Country"], "US");
}

#[tokio::test]
async fn envelope_invocation_puts_the_answer_in_res() {
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let client = reqwest::Client::new();

    let invoke = |body: String, method: &'static str| {
        let client = client.clone();
        let url = h.url("/LeadIngest");
        async move {
            let resp = client.post(url).json(&http_envelope(&body, method)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "the host always gets 200; the client's status is in res");
            let reply: Value = resp.json().await.unwrap();
            let res = reply["Outputs"]["res"].clone();
            assert!(res.is_object(), "res must be an object, never a bare string: {reply}");
            let inner: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
            (res["statusCode"].as_str().unwrap().to_string(), inner)
        }
    };
    let (status, body) = invoke(sample("https-lead.json"), "POST").await;
    assert_eq!(status, "201", "{body}");
    let (status, body) = invoke(sample("https-lead.json"), "POST").await;
    assert_eq!((status.as_str(), body["status"].as_str()), ("200", Some("duplicate")));
    let (status, body) = invoke("not json".into(), "POST").await;
    assert_eq!(status, "400");
    assert!(body["error"].as_str().unwrap().contains("not JSON"));
    let (status, _) = invoke(String::new(), "GET").await;
    assert_eq!(status, "405");
    assert_eq!(rows(&table).await.len(), 1);
}

#[tokio::test]
async fn camel_case_and_split_lead_source_are_understood() {
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let camel = json!({
        "userDetails": {"firstName": "Søren", "lastName": "Kierkegaard", "email": "s@k.example", "company": "Ærø ApS", "country": "DK"},
        "leadSource": "AzureMarketplace", "actionCode": "INS", "offerTitle": "Fabrikam VM",
        "description": "{\"mktcmpid\":\"spring\",\"partnerid\":\"123\"}", "somethingNew": {"kept": true}
    });
    let (status, _) = post(&h, "/api/LeadIngest", camel.to_string()).await;
    assert_eq!(status, 201);
    let dnc = json!({"UserDetails": {"Company": "漢字 株式会社"}, "LeadSource": "AzureMarketplace-DNC|a.b"});
    let (status, _) = post(&h, "/api/LeadIngest", dnc.to_string()).await;
    assert_eq!(status, 201);

    let rows = rows(&table).await;
    let s = rows.iter().find(|r| r["FirstName"] == "Søren").unwrap();
    assert_eq!((s["Source"].as_str(), s["ActionCode"].as_str()), (Some("AzureMarketplace"), Some("INS")));
    assert_eq!(s["Company"], "Ærø ApS");
    assert!(s["RawPayload"].as_str().unwrap().contains("somethingNew"), "unknown fields are kept");
    let d = rows.iter().find(|r| r["Company"] == "漢字 株式会社").unwrap();
    assert_eq!(d["DoNotContact"], true);
}

#[tokio::test]
async fn unknown_shape_is_stored_raw_and_marked_unparsed() {
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let (status, body) = post(&h, "/api/LeadIngest", r#"{"lead":{"who":"someone"},"v":2}"#).await;
    assert_eq!(status, 201);
    assert_eq!(body["parsed"], false);
    let rows = rows(&table).await;
    assert_eq!(rows[0]["Parsed"], false);
    assert_eq!(rows[0]["RawPayload"], r#"{"lead":{"who":"someone"},"v":2}"#);
    assert!(h.logs().contains("none of the known fields"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_stores_nothing() {
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    for (body, expect) in [("{not json", "not JSON"), ("[1,2,3]", "not an object"), ("\"a string\"", "not an object"), ("", "empty")] {
        let (status, reply) = post(&h, "/api/LeadIngest", body).await;
        assert_eq!(status, 400, "{body}");
        assert!(reply["error"].as_str().unwrap().contains(expect), "{reply}");
    }
    let big = format!(r#"{{"UserDetails":{{"FirstName":"{}"}}}}"#, "x".repeat(40 * 1024));
    let (status, reply) = post(&h, "/api/LeadIngest", big).await;
    assert_eq!(status, 413, "{reply}");
    let (status, _) = post(&h, "/api/LeadIngest", vec![0xff, 0xfe, 0x7b]).await;
    assert_eq!(status, 400);
    let resp = reqwest::Client::new().put(h.url("/api/LeadIngest")).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert!(rows(&table).await.is_empty());
}

#[tokio::test]
async fn largest_accepted_lead_fits_the_table_limits() {
    // 32 KiB of non-ASCII text (2 bytes in UTF-8, 1 unit in UTF-16): stored whole, no 500.
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let name = "é".repeat(16_000);
    let body = json!({"UserDetails": {"FirstName": name}, "LeadSource": "SPZA-INS|a.b"}).to_string();
    assert!(body.len() <= 32 * 1024);
    let (status, reply) = post(&h, "/api/LeadIngest", body).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(rows(&table).await[0]["FirstName"].as_str().unwrap().chars().count(), 16_000);
}

#[tokio::test]
async fn storage_down_answers_5xx_and_claims_nothing() {
    let closed = free_port();
    let env = vec![("AzureWebJobsStorage", connection_string_for_port(closed)), ("LEADS_TABLE", "Leads".to_string())];
    let h = spawn_handler(Mode::Host, &env).await;
    let (status, body) = post(&h, "/api/LeadIngest", sample("https-lead.json")).await;
    assert_eq!(status, 503, "{body}");
    let text = body.to_string();
    assert!(text.contains("not stored") && !text.contains("refused") && !text.contains(&closed.to_string()), "no internals leak: {text}");
    assert!(h.logs().contains("lead not stored"));
}

#[tokio::test]
async fn serve_mode_checks_the_key() {
    let table = unique_table();
    let mut env = base_env(&table);
    env.push(("LEADS_INGEST_KEY", "s3cret-key".into()));
    let h = spawn_handler(Mode::Serve, &env).await;
    let (status, _) = post(&h, "/api/LeadIngest", sample("https-lead.json")).await;
    assert_eq!(status, 401);
    let (status, _) = post(&h, "/api/LeadIngest?code=wrong", sample("https-lead.json")).await;
    assert_eq!(status, 401);
    assert!(rows(&table).await.is_empty());
    let (status, _) = post(&h, "/api/LeadIngest?code=s3cret-key", sample("https-lead.json")).await;
    assert_eq!(status, 201);
    let resp = reqwest::Client::new()
        .post(h.url("/api/LeadIngest"))
        .header("x-functions-key", "s3cret-key")
        .body(sample("https-lead-legacy.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // No host in this mode: the unauthenticated envelope endpoints must not exist.
    let envelope = http_envelope(&sample("https-lead.json"), "POST");
    for path in ["/LeadIngest", "/LeadNotify"] {
        let resp = reqwest::Client::new().post(h.url(path)).json(&envelope).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let logs = h.logs();
    assert!(!logs.contains("s3cret-key"), "key in logs");
    assert!(!logs.contains("jana.novak@contoso.example") && !logs.contains("601 234 567"), "contact details at info level: {logs}");
    assert!(logs.contains("lead stored"));
}

#[tokio::test]
async fn serve_mode_refuses_to_start_without_a_key() {
    let out = handler_command(&base_env("Leads")).args(["serve", "--port", &free_port().to_string()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LEADS_INGEST_KEY"));
}

#[tokio::test]
async fn bad_settings_fail_at_start_naming_the_setting() {
    let secret = "AccountName=acct;AccountKey=bm90LWEta2V5LWJ1dC1iYXNlNjQ=;SuperSecretMarker=1";
    for (name, value, also) in [
        ("LEADS_TABLE", "no-dashes-allowed", None),
        ("NOTIFY_SCHEDULE", "*/5 * * * *", None),
        ("NOTIFY_WEBHOOK_SECRET", "whsec_short", Some(("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/x"))),
        ("SMTP_SECURITY", "ssl", Some(("NOTIFY_EMAIL_TO", "a@b.example"))),
    ] {
        let mut env = base_env("Leads");
        env.retain(|(k, _)| *k != name);
        env.push((name, value.to_string()));
        if let Some((k, v)) = also {
            env.push((k, v.to_string()));
        }
        if name == "SMTP_SECURITY" {
            env.push(("SMTP_HOST", "127.0.0.1".into()));
            env.push(("NOTIFY_EMAIL_FROM", "leads@b.example".into()));
        }
        let out = handler_command(&env).env("FUNCTIONS_CUSTOMHANDLER_PORT", free_port().to_string()).output().unwrap();
        assert!(!out.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    let out = handler_command(&[("AzureWebJobsStorage", secret.to_string())])
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", free_port().to_string())
        .env("LEADS_STORAGE", "AccountName=x;AccountKey=%%%%")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("LEADS_STORAGE") && !stderr.contains("%%%%"), "{stderr}");
}

#[tokio::test]
async fn a_retry_across_midnight_is_still_one_lead() {
    use chrono::TimeZone;
    let table = unique_table();
    let store = table_client(&table);
    let body = sample("https-lead.json");
    let before = chrono::Utc.with_ymd_and_hms(2026, 3, 9, 23, 59, 58).unwrap();
    let after = chrono::Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 3).unwrap();
    let first = marketplace_leads::ingest::ingest_at(&store, body.as_bytes(), before).await.unwrap();
    let retry = marketplace_leads::ingest::ingest_at(&store, body.as_bytes(), after).await.unwrap();
    assert!(!first.duplicate && retry.duplicate);
    assert_eq!(retry.partition_key, "3:2F9:2F2026");
    let later = chrono::Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
    let next_morning = marketplace_leads::ingest::ingest_at(&store, body.as_bytes(), later).await.unwrap();
    assert!(!next_morning.duplicate, "outside the window the same content is a new day's lead");
    assert_eq!(rows(&table).await.len(), 2);
}
