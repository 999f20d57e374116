//! LeadIngest end to end: the real binary, driven as the Functions host drives it (proxied
//! request and invocation envelope) and standalone, against a real Azurite.

use crate::common::leads::*;
use crate::common::*;
use serde_json::{json, Value};

async fn rows(table: &str) -> Vec<serde_json::Map<String, Value>> {
    table_client(table).query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap()
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
    // Stored a moment ago: today's, or yesterday's if midnight passed since.
    let (now, moment_ago) = (chrono::Utc::now(), chrono::Utc::now() - chrono::Duration::minutes(1));
    let created = jana["CreatedTime"].as_str().unwrap();
    assert!([now, moment_ago].iter().any(|t| created.starts_with(&t.format("%Y-").to_string())), "{created}");
    let pk = jana["PartitionKey"].as_str().unwrap();
    let days = [now, moment_ago].map(|t| marketplace_leads::lead::partition_key_for(t.date_naive()));
    assert!(days.iter().any(|d| d == pk), "{pk}");

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
    // A UTF-16LE byte-order mark is honoured, and text that is not JSON is still bad input.
    // (The bytes ff fe 7b that stood here are a BOM and half a character: undecodable, so
    // they are now stored raw; see `undecodable_bytes_are_stored_raw_and_answered_201`.)
    let (status, reply) = post(&h, "/api/LeadIngest", vec![0xff, 0xfe, 0x7b, 0x00]).await;
    assert_eq!(status, 400);
    assert!(reply["error"].as_str().unwrap().contains("not JSON"), "{reply}");
    let resp = reqwest::Client::new().put(h.url("/api/LeadIngest")).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert!(rows(&table).await.is_empty());
}

async fn post_as(h: &Handler, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = reqwest::Client::new().post(h.url("/api/LeadIngest")).header("content-type", content_type).body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn declared_and_marked_encodings_are_decoded() {
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    // ISO-8859-1: one byte per letter, which is not UTF-8.
    let latin1: Vec<u8> = r#"{"UserDetails":{"FirstName":"Zoë","LastName":"Müller-Ærø","Company":"Café Crème"},"LeadSource":"SPZA-PLT|a.b"}"#
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    assert!(std::str::from_utf8(&latin1).is_err());
    let (status, reply) = post_as(&h, "application/json; charset=iso-8859-1", latin1).await;
    assert_eq!((status, reply["parsed"].as_bool()), (201, Some(true)), "{reply}");

    // UTF-16LE with a BOM; the BOM wins over a header that says otherwise.
    let text = r#"{"UserDetails":{"FirstName":"Jiří","LastName":"Dvořák","Company":"漢字 株式会社"},"LeadSource":"SPZA-INS|a.b"}"#;
    let utf16: Vec<u8> = [0xff, 0xfe].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    let (status, reply) = post_as(&h, "application/json; charset=iso-8859-1", utf16).await;
    assert_eq!((status, reply["parsed"].as_bool()), (201, Some(true)), "{reply}");

    let stored = rows(&table).await;
    let m = stored.iter().find(|r| r["FirstName"] == "Zoë").expect("Latin-1 lead stored decoded");
    assert_eq!((m["LastName"].as_str(), m["Company"].as_str()), (Some("Müller-Ærø"), Some("Café Crème")));
    assert_eq!(m["BodyCharset"], "windows-1252", "WHATWG reads iso-8859-1 as its superset windows-1252");
    assert!(m["RawPayload"].as_str().unwrap().contains("Müller-Ærø"), "the raw payload is the decoded text");
    let d = stored.iter().find(|r| r["LastName"] == "Dvořák").expect("UTF-16 lead stored decoded");
    assert_eq!(
        (d["FirstName"].as_str(), d["Company"].as_str(), d["BodyCharset"].as_str()),
        (Some("Jiří"), Some("漢字 株式会社"), Some("UTF-16LE"))
    );

    // The same lead in UTF-8 is the same lead: one row, answered as a duplicate.
    let (status, _) = post_as(&h, "application/json", text.as_bytes().to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&table).await.len(), 2);
}

#[tokio::test]
async fn undecodable_bytes_are_stored_raw_and_answered_201() {
    use base64::Engine as _;
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("application/json", b"{\"LastName\":\"Nov\xe1k\"}".to_vec(), "not valid UTF-8"),
        ("application/json; charset=x-klingon", b"{}".to_vec(), "unknown charset `x-klingon`"),
        ("application/json", vec![0xff, 0xfe, 0x7b], "not valid UTF-16LE"),
    ];
    for (content_type, body, why) in &cases {
        let (status, reply) = post_as(&h, content_type, body.clone()).await;
        assert_eq!((status, reply["status"].as_str(), reply["parsed"].as_bool()), (201, Some("stored"), Some(false)), "{why}: {reply}");
        // A retry of the same bytes finds its row.
        let (status, _) = post_as(&h, content_type, body.clone()).await;
        assert_eq!(status, 200, "{why}");
    }
    let rows = rows(&table).await;
    assert_eq!(rows.len(), cases.len());
    for (_, body, why) in &cases {
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        let row = rows.iter().find(|r| r["RawPayload"] == b64.as_str()).unwrap_or_else(|| panic!("{why}: raw bytes kept"));
        assert_eq!((row["Parsed"].as_bool(), row["RawEncoding"].as_str()), (Some(false), Some("base64")));
        assert!(row["RawReason"].as_str().unwrap().contains(why), "{row:?}");
    }
    assert!(h.logs().contains("stored raw (RawPayload, base64)"));
}

#[tokio::test]
async fn envelope_bodies_arrive_as_text_and_are_not_decoded_twice() {
    // The host has already read the body into a string; the request's declared charset must
    // not be applied to it again (that would turn "Novák" into "NovÃ¡k").
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let mut envelope = http_envelope(&sample("https-lead.json"), "POST");
    envelope["Data"]["req"]["Headers"]["Content-Type"] = json!(["application/json; charset=iso-8859-1"]);
    let resp = reqwest::Client::new().post(h.url("/LeadIngest")).json(&envelope).send().await.unwrap();
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(reply["Outputs"]["res"]["statusCode"], "201", "{reply}");
    assert_eq!(rows(&table).await[0]["LastName"], "Novák");
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
async fn values_that_grow_when_rewritten_still_fit_the_table() {
    // Found by tests/properties.rs: `0.1e10` is 6 bytes on the wire but `1000000000.0` when a
    // field's value is written back as JSON text, so a body under the limit made a FirstName
    // (and CustomerInfo) over the Table's 32 Ki-unit limit: storage refused it, the lead got a 500.
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let body = format!(r#"{{"UserDetails":{{"FirstName":[{}]}},"LeadSource":"SPZA-INS|a.b"}}"#, vec!["0.1e10"; 4_600].join(","));
    assert!(body.len() <= 32 * 1024);
    let (status, reply) = post(&h, "/api/LeadIngest", body.clone()).await;
    assert_eq!(status, 201, "{reply}");
    let row = &rows(&table).await[0];
    assert_eq!(row["RawPayload"], body.as_str(), "the body is kept whole");
}

#[tokio::test]
async fn storage_down_answers_5xx_and_claims_nothing() {
    let closed = closed_port();
    // A short retry deadline keeps this quick; tests/storage_faults.rs covers the retrying.
    let env = vec![
        ("AzureWebJobsStorage", azurite_connection_string(closed.port)),
        ("LEADS_TABLE", "Leads".to_string()),
        ("STORAGE_RETRY_SECONDS", "1".to_string()),
    ];
    let h = spawn_handler(Mode::Host, &env).await;
    let (status, body) = post(&h, "/api/LeadIngest", sample("https-lead.json")).await;
    assert_eq!(status, 503, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("not stored") && !text.contains("refused") && !text.contains(&closed.port.to_string()),
        "no internals leak: {text}"
    );
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
    for (name, value) in [("LEADS_TABLE", "no-dashes-allowed"), ("STORAGE_RETRY_SECONDS", "61")] {
        let mut env = base_env("Leads");
        env.retain(|(k, _)| *k != name);
        env.push((name, value.to_string()));
        let out = handler_command(&env).env("FUNCTIONS_CUSTOMHANDLER_PORT", free_port().to_string()).output().unwrap();
        assert!(!out.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    // A bad *channel* setting must not take intake down (issue 9): the handler starts, names the
    // setting in an ERROR, and still stores leads.
    for (name, value, also) in [
        ("NOTIFY_WEBHOOK_SECRET", "whsec_short", ("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/x")),
        ("SMTP_SECURITY", "ssl", ("NOTIFY_EMAIL_TO", "a@b.example")),
    ] {
        let table = unique_table();
        let mut env = base_env(&table);
        env.push((name, value.to_string()));
        env.push((also.0, also.1.to_string()));
        if name == "SMTP_SECURITY" {
            env.push(("SMTP_HOST", "127.0.0.1".into()));
            env.push(("NOTIFY_EMAIL_FROM", "leads@b.example".into()));
        }
        let h = spawn_handler(Mode::Host, &env).await;
        let (status, _) = post(&h, "/api/LeadIngest", sample("https-lead.json")).await;
        assert_eq!(status, 201, "{name}");
        let logs = h.logs();
        assert!(logs.contains("ERROR") && logs.contains(name), "{name}: {logs}");
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
async fn a_bad_notify_schedule_leaves_intake_and_notifications_running_in_both_modes() {
    let hook = Receiver::start().await;
    for (mode, path) in [(Mode::Host, "/api/LeadIngest"), (Mode::Serve, "/api/LeadIngest?code=k")] {
        let table = unique_table();
        let mut env = webhook_env(&table, &hook);
        env.retain(|(k, _)| *k != "NOTIFY_IMMEDIATE");
        // Five fields: a cron line, not NCRONTAB. The host would refuse the timer as well.
        env.extend([("NOTIFY_SCHEDULE", "*/5 * * * *".into()), ("NOTIFY_IMMEDIATE", "true".into()), ("LEADS_INGEST_KEY", "k".into())]);
        let h = spawn_handler(mode, &env).await;
        let (status, body) = post(&h, path, sample("https-lead.json")).await;
        assert_eq!(status, 201, "{body}");
        let logs = h.logs();
        let said = if path.contains("code") { "LeadNotify uses the default" } else { "will not run the LeadNotify timer" };
        assert!(logs.contains("ERROR") && logs.contains("setting NOTIFY_SCHEDULE") && logs.contains(said), "{logs}");
        eventually("the lead is still notified right after intake", || hook.requests().len() == usize::from(path.contains("code")) + 1)
            .await;
        let out = handler_command(&env).arg("settings").output().unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("NOTIFY_SCHEDULE MISCONFIGURED: setting NOTIFY_SCHEDULE"), "{shown}");
    }
}

#[tokio::test]
async fn a_retry_across_midnight_is_still_one_lead() {
    use chrono::TimeZone;
    let table = unique_table();
    let store = table_client(&table);
    let body = sample("https-lead.json");
    let before = chrono::Utc.with_ymd_and_hms(2026, 3, 9, 23, 59, 58).unwrap();
    let after = chrono::Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 3).unwrap();
    let first = marketplace_leads::ingest::ingest_at(&store, body.as_bytes(), None, before).await.unwrap();
    let retry = marketplace_leads::ingest::ingest_at(&store, body.as_bytes(), None, after).await.unwrap();
    assert!(!first.duplicate && retry.duplicate);
    assert_eq!(retry.partition_key, "3:2F9:2F2026");
    let later = chrono::Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
    let next_morning = marketplace_leads::ingest::ingest_at(&store, body.as_bytes(), None, later).await.unwrap();
    assert!(!next_morning.duplicate, "outside the window the same content is a new day's lead");
    assert_eq!(rows(&table).await.len(), 2);
}
