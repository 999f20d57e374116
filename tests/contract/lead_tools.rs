//! The lead tools end to end: the real binary's `leads list|export|status` and `send-test-lead`
//! against a real Azurite and a running handler.

use crate::common::*;
use chrono::Utc;
use marketplace_leads::lead::{DedupeKey, Lead};
use serde_json::{json, Value};

/// Stores a lead as LeadIngest would, at a chosen time.
async fn seed(table: &str, body: Value, at: chrono::DateTime<Utc>) {
    let raw = body.to_string();
    let (lead, payload) = Lead::from_payload(raw.as_bytes()).unwrap();
    table_client(table).insert(&lead.to_entity(&DedupeKey::new(&payload, at), at, &raw)).await.unwrap();
}

fn lead(first: &str, last: &str, company: &str, action: &str, offer: &str) -> Value {
    json!({"UserDetails": {"FirstName": first, "LastName": last, "Email": format!("{}@x.example", first.to_lowercase()),
                           "Company": company, "Country": "CZ", "Phone": "+420 1"},
           "LeadSource": format!("SPZA-{action}|{offer}"), "OfferTitle": offer})
}

/// The first day of the seeded leads: a few days ago, so the notifier still takes them (it
/// gives up on leads pending for more than 31 days).
fn first_day() -> chrono::NaiveDate {
    Utc::now().date_naive() - chrono::Days::new(3)
}

async fn seeded_table() -> String {
    let table = unique_table();
    let t = |day: u64, h: u32| (first_day() + chrono::Days::new(day)).and_hms_opt(h, 0, 0).unwrap().and_utc();
    seed(&table, lead("Jana", "Novák", "Contoso s.r.o.", "PLT", "contoso.analytics"), t(0, 9)).await;
    seed(&table, lead("Søren", "Ærø", "=HYPERLINK(\"http://evil\")", "INS", "fabrikam.vm"), t(1, 9)).await;
    seed(&table, lead("漢字", "山田", "株式会社", "DNC", "contoso.analytics"), t(2, 8)).await;
    let test: Value = serde_json::from_str(&sample("https-lead-test.json")).unwrap();
    seed(&table, test, t(2, 10)).await;
    // A row Microsoft wrote itself (Azure Table destination), older than the rest.
    let native: marketplace_leads::entity::Entity = serde_json::from_str(&sample("table-native-entity.json")).unwrap();
    table_client(&table).insert(&native).await.unwrap();
    table
}

fn run(table: &str, args: &[&str]) -> (bool, String, String) {
    let out = handler_command(&base_env(table)).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn data_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().skip(1).filter(|l| !l.ends_with("lead(s)")).collect()
}

#[tokio::test]
async fn list_is_newest_first_hides_tests_and_filters() {
    let table = seeded_table().await;
    let (ok, out, err) = run(&table, &["leads", "list"]);
    assert!(ok, "{err}");
    let lines = data_lines(&out);
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("株式会社") && lines[1].contains("Søren") && lines[2].contains("Novák"), "{out}");
    assert!(lines[3].contains("Northwind Lda"), "Microsoft's own rows are listed: {out}");
    assert!(!out.contains("MSFT_TEST"));

    let (_, out, _) = run(&table, &["leads", "list", "--include-tests"]);
    assert_eq!(data_lines(&out).len(), 5);
    assert!(data_lines(&out)[0].contains("TEST"));

    let (_, out, _) = run(&table, &["leads", "list", "--offer", "ANALYTICS"]);
    assert_eq!(data_lines(&out).len(), 2, "{out}");
    let (_, out, _) = run(&table, &["leads", "list", "--action", "plt"]);
    assert_eq!(data_lines(&out).len(), 1);
    assert!(out.contains("Contact me"));
    let second_day = (first_day() + chrono::Days::new(1)).to_string();
    let (_, out, _) = run(&table, &["leads", "list", "--since", &second_day]);
    assert_eq!(data_lines(&out).len(), 2, "{out}");
    let (_, out, _) = run(&table, &["leads", "list", "--limit", "1"]);
    assert_eq!(data_lines(&out).len(), 1);

    let (ok, _, err) = run(&table, &["leads", "list", "--since", "last tuesday"]);
    assert!(!ok && err.contains("neither a date"), "{err}");
}

#[tokio::test]
async fn csv_export_reads_back_with_unicode_and_no_formulas() {
    let table = seeded_table().await;
    let (ok, out, err) = run(&table, &["leads", "export", "--format", "csv"]);
    assert!(ok, "{err}");
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "createdTime");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 4);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    // Streamed page by page in the table's order, not sorted: find each lead by name.
    let by = |field: &str, value: &str| records.iter().find(|r| &r[col(field)] == value).unwrap_or_else(|| panic!("no {value}"));
    assert_eq!(&by("lastName", "山田")[col("company")], "株式会社");
    assert_eq!(&by("firstName", "Søren")[col("company")], "'=HYPERLINK(\"http://evil\")");
    assert_eq!(&by("lastName", "Novák")[col("actionCode")], "PLT");
    assert_eq!(&by("lastName", "Novák")[col("phone")], "'+420 1", "a leading + is marked as text for spreadsheets");
}

#[tokio::test]
async fn json_export_to_a_file() {
    let table = seeded_table().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leads.json");
    let (ok, out, err) = run(&table, &["leads", "export", "--format", "json", "--include-tests", "--output", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.is_empty() && err.contains("5 lead(s) written"));
    let items: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items.iter().filter(|i| i["isTest"] == true).count(), 1);
    assert!(items.iter().any(|i| i["lastName"] == "Novák" && i["doNotContact"] == false));
    assert!(items.iter().any(|i| i["company"] == "株式会社" && i["doNotContact"] == true));
}

// Multi-threaded: the receiver must answer while this thread waits for the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_channel_and_its_failures() {
    let table = seeded_table().await;
    let hook = Receiver::start().await;
    hook.answer_next(&[(400, None)]);
    let mut env = base_env(&table);
    env.push(("NOTIFY_WEBHOOK_URL", hook.url()));
    env.push(("NOTIFY_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()));
    // The seeded leads are dated in the past: start the notifier's cursor before them.
    let mut cursor = marketplace_leads::entity::Entity::new();
    cursor.insert("PartitionKey".into(), "cursor".into());
    cursor.insert("RowKey".into(), "scan-from".into());
    cursor.insert("ScanFrom".into(), (first_day() - chrono::Days::new(1)).to_string().into());
    table_client(&format!("{table}Notify")).upsert(&cursor).await.unwrap();
    let out = handler_command(&env).arg("notify").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["delivered"].as_u64().unwrap() >= 3, "{report}");

    let out = handler_command(&env).args(["leads", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let webhook_line = text.lines().find(|l| l.starts_with("Webhook")).unwrap();
    assert!(webhook_line.contains("failed      1"), "{text}");
    assert!(text.contains("failed after 1 attempt(s): HTTP 400"), "{text}");
}

#[tokio::test]
async fn send_test_lead_stores_msft_test_lead_and_diagnoses_failures() {
    let table = unique_table();
    let mut env = base_env(&table);
    env.push(("LEADS_INGEST_KEY", "the-key".into()));
    let h = spawn_handler(Mode::Serve, &env).await;

    let (ok, out, err) = run(&table, &["send-test-lead", &h.url("/api/LeadIngest?code=the-key")]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("201") && out.contains("stored: PartitionKey"), "{out}");
    let rows = table_client(&table).query(&marketplace_leads::store::Query::all(), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["IsTest"], true);
    assert!(rows[0]["Email"].as_str().unwrap().starts_with("MSFT_TEST_") && rows[0]["Email"].as_str().unwrap().ends_with("@test.com"));

    let (ok, _, err) = run(&table, &["send-test-lead", &h.url("/api/LeadIngest?code=wrong")]);
    assert!(!ok && err.contains("key is missing or wrong"), "{err}");
    let (ok, _, err) = run(&table, &["send-test-lead", &h.url("/api/Nope?code=the-key")]);
    assert!(!ok && err.contains("wrong route"), "{err}");
    let refusing = closed_port();
    let closed = format!("http://127.0.0.1:{}/api/LeadIngest?code=x", refusing.port);
    let (ok, _, err) = run(&table, &["send-test-lead", &closed]);
    assert!(!ok && err.contains("nothing listens"), "{err}");
    // https:// to a plain-HTTP port: the TLS handshake fails.
    let (ok, _, err) = run(&table, &["send-test-lead", &h.url("/api/LeadIngest?code=x").replace("http://", "https://")]);
    assert!(!ok && err.contains("TLS"), "{err}");
    let (ok, _, err) = run(&table, &["send-test-lead", "not a url"]);
    assert!(!ok && err.contains("not a URL"), "{err}");

    let down = vec![("AzureWebJobsStorage", azurite_connection_string(refusing.port)), ("LEADS_TABLE", "Leads".to_string())];
    let broken = spawn_handler(Mode::Host, &down).await;
    let (ok, _, err) = run(&table, &["send-test-lead", &broken.url("/api/LeadIngest")]);
    assert!(!ok && err.contains("could not store"), "{err}");
}

#[test]
fn every_command_has_help_and_errors_go_to_stderr() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["send-test-lead", "--help"],
        vec!["leads", "--help"],
        vec!["leads", "list", "--help"],
        vec!["leads", "export", "--help"],
        vec!["leads", "status", "--help"],
        vec!["leads", "journey", "--help"],
        vec!["leads", "reindex", "--help"],
        vec!["leads", "forget", "--help"],
        vec!["notify", "--help"],
        vec!["settings", "--help"],
    ] {
        let out = handler_command(&[]).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
    let out = handler_command(&[]).arg("frobnicate").output().unwrap();
    assert!(!out.status.success() && !out.stderr.is_empty() && out.stdout.is_empty());
    let out = handler_command(&[]).args(["leads", "list"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("AzureWebJobsStorage"));
    let out = handler_command(&[]).args(["leads", "export", "--format", "xml"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("xml"));
}
