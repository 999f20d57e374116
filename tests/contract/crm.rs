//! The CRM channels end to end: the real binary, a real Azurite, and a strict loopback fake of
//! each CRM's documented API (tests/common/crm.rs). Each scenario runs against all four.

use crate::common::crm::{FakeCrm, Fault, Kind, REJECT_MESSAGE};
use crate::common::leads::*;
use crate::common::*;
use serde_json::{json, Value};

async fn setup(kind: Kind) -> (FakeCrm, Handler, String) {
    let fake = FakeCrm::start(kind).await;
    let table = unique_table();
    let mut env = base_env(&table);
    env.extend(fake.env());
    let h = spawn_handler(Mode::Host, &env).await;
    (fake, h, table)
}

fn body_with(company: &str, action: &str, email: Option<&str>) -> String {
    let mut v: Value = serde_json::from_str(&lead_body(company, action)).unwrap();
    match email {
        Some(e) => v["UserDetails"]["Email"] = e.into(),
        None => {
            v["UserDetails"].as_object_mut().unwrap().remove("Email");
        }
    }
    v.to_string()
}

fn state(e: &marketplace_leads::entity::Entity, kind: Kind, col: &str) -> Value {
    e.get(&format!("Notify{}{col}", kind.channel())).cloned().unwrap_or(Value::Null)
}

/// The CRM's record of the lead whose company is `company`.
fn record_of(fake: &FakeCrm, company: &str) -> Value {
    let records = fake.records();
    records
        .iter()
        .find(|r| r[fake.kind.company_field()] == company)
        .cloned()
        .unwrap_or_else(|| panic!("no record for {company}: {records:?}"))
}

fn assert_clean(fake: &FakeCrm) {
    assert!(fake.violations().is_empty(), "the handler broke the documented contract: {:?}", fake.violations());
}

async fn created_once(kind: Kind) {
    let (fake, h, table) = setup(kind).await;
    let company = tag();
    let (pk, rk) = ingest(&h, body_with(&company, "PLT", Some("jana@contoso.example"))).await;
    let dnc = tag();
    let (dpk, drk) = ingest(&h, body_with(&dnc, "DNC", Some("petr@fabrikam.example"))).await;
    for _ in 0..3 {
        timer_ok(&h).await;
    }
    assert_clean(&fake);
    for (p, r) in [(&pk, &rk), (&dpk, &drk)] {
        let e = row(&table, p, r).await;
        assert_eq!(state(&e, kind, "State"), "delivered", "{e:?}");
        assert_eq!(state(&e, kind, "Attempts"), 1);
    }
    let rec = record_of(&fake, &company);
    let d = record_of(&fake, &dnc);
    match kind {
        Kind::Dynamics => {
            assert_eq!(fake.records().len(), 2);
            assert_eq!((rec["firstname"].as_str(), rec["lastname"].as_str()), (Some("Jana"), Some("Novák")));
            assert_eq!(rec["emailaddress1"], "jana@contoso.example");
            assert_eq!(rec["leadsourcecode"], 8);
            assert!(rec["subject"].as_str().unwrap().contains("Contoso Analytics"));
            assert!(rec.get("donotemail").is_none());
            assert_eq!((&d["donotemail"], &d["donotphone"]), (&json!(true), &json!(true)));
        }
        Kind::Salesforce => {
            assert_eq!(fake.records().len(), 2);
            assert_eq!(rec["LastName"], "Novák");
            assert_eq!(rec["MarketplaceLeadId__c"], row(&table, &pk, &rk).await["NotifyId"]);
            assert_eq!((&d["HasOptedOutOfEmail"], &d["DoNotCall"]), (&json!(true), &json!(true)));
        }
        Kind::HubSpot => {
            assert_eq!(fake.records().len(), 2);
            assert_eq!(rec["lastname"], "Novák");
            let notes = fake.notes();
            assert_eq!(notes.len(), 2, "one note per lead");
            let dnc_note = notes.iter().find(|(c, _)| *c == d["id"].as_str().unwrap()).unwrap();
            assert!(dnc_note.1["hs_note_body"].as_str().unwrap().contains("Do not contact"));
        }
        Kind::Marketo => {
            assert_eq!(fake.records().len(), 2);
            assert_eq!(rec["lastName"], "Novák");
            assert!(rec.get("unsubscribed").is_none(), "a plain lead never touches the subscription");
            assert_eq!((&d["unsubscribed"], &d["doNotCall"]), (&json!(true), &json!(true)));
        }
    }
    if kind != Kind::HubSpot {
        assert_eq!(fake.tokens_issued(), 1, "one token for both leads");
    }
}

async fn retried_after_503_without_duplicate(kind: Kind) {
    let (fake, h, table) = setup(kind).await;
    // The CRM commits the write and the answer is lost behind a 503.
    fake.fault(Fault::CommitThen503);
    let company = tag();
    let (pk, rk) = ingest(&h, body_with(&company, "INS", Some("jana@contoso.example"))).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    assert_eq!(state(&e, kind, "State"), "pending");
    assert!(state(&e, kind, "LastError").as_str().unwrap().contains("503"), "{e:?}");
    time_travel(&table, &pk, &rk, &format!("Notify{}NextAttempt", kind.channel())).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    assert_eq!(state(&e, kind, "State"), "delivered", "{e:?}");
    assert_eq!(state(&e, kind, "Attempts"), 2);
    assert_eq!(fake.records().len(), 1, "the retry found or updated the same record");
    if kind == Kind::HubSpot {
        assert_eq!(fake.notes().len(), 1, "the retry found the note by its marker");
    }
    record_of(&fake, &company);
    assert_clean(&fake);
}

async fn token_expiry_mid_run(kind: Kind) {
    let (fake, h, table) = setup(kind).await;
    let (pk, rk) = ingest(&h, body_with(&tag(), "INS", Some("jana@contoso.example"))).await;
    timer_ok(&h).await;
    assert_eq!(state(&row(&table, &pk, &rk).await, kind, "State"), "delivered");
    // The CRM revokes the token between two leads.
    fake.fault(Fault::ExpireTokens);
    let (pk, rk) = ingest(&h, body_with(&tag(), "INS", Some("ana@northwind.example"))).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    if kind == Kind::HubSpot {
        // A private-app token does not refresh: a 401 is a configuration error, said so.
        assert_eq!(state(&e, kind, "State"), "failed", "{e:?}");
        assert!(state(&e, kind, "LastError").as_str().unwrap().contains("HUBSPOT_TOKEN"), "{e:?}");
    } else {
        assert_eq!(state(&e, kind, "State"), "delivered", "{e:?}");
        assert_eq!(state(&e, kind, "Attempts"), 1, "refreshed within the attempt");
        assert_eq!(fake.tokens_issued(), 2);
        assert_eq!(fake.records().len(), 2);
    }
    assert_clean(&fake);
    assert!(!h.logs().contains("tok-"), "tokens never reach the logs");
    assert!(!h.logs().contains(crate::common::crm::CLIENT_SECRET));
}

async fn permanent_400_fails_with_the_reason(kind: Kind) {
    let (fake, h, table) = setup(kind).await;
    fake.fault(Fault::Reject);
    let (pk, rk) = ingest(&h, body_with(&tag(), "INS", Some("jana@contoso.example"))).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    assert_eq!(state(&e, kind, "State"), "failed", "{e:?}");
    let last = state(&e, kind, "LastError").as_str().unwrap().to_string();
    assert!(last.contains(REJECT_MESSAGE), "{last}");
    assert!(last.starts_with(kind.channel()), "{last}");
    // The CRM's message (which may quote the lead) stays on the row, out of the logs.
    assert!(!h.logs().contains(REJECT_MESSAGE));
    assert_clean(&fake);
}

async fn throttled_then_delivered(kind: Kind) {
    let (fake, h, table) = setup(kind).await;
    fake.fault(Fault::Status(429, Some(120)));
    let (pk, rk) = ingest(&h, body_with(&tag(), "INS", Some("jana@contoso.example"))).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    assert_eq!(state(&e, kind, "State"), "pending");
    let next = marketplace_leads::entity::get_datetime(&e, &format!("Notify{}NextAttempt", kind.channel())).unwrap();
    assert!(next > chrono::Utc::now() + chrono::Duration::seconds(100), "Retry-After honoured: {next}");
    assert!(fake.records().is_empty() || kind == Kind::HubSpot);
    assert_clean(&fake);
}

/// Customer text reaches the CRM as typed (quotes, markup, SQL) except what notifications strip
/// too: control characters and escape sequences' ESC, line breaks in a one-line field, bidi controls.
async fn hostile_text_arrives_cleaned(kind: Kind) {
    let (fake, h, table) = setup(kind).await;
    let hostile = "Evil\"},{\"x\":1} <script>alert(1)</script> ' OR 1=1 -- \u{202e}\\n\u{1b}[2J\r\nEnd\u{2066}";
    let cleaned = "Evil\"},{\"x\":1} <script>alert(1)</script> ' OR 1=1 -- \\n [2J  End";
    let (pk, rk) = ingest(&h, body_with(hostile, "INS", Some("jana@contoso.example"))).await;
    timer_ok(&h).await;
    assert_eq!(state(&row(&table, &pk, &rk).await, kind, "State"), "delivered");
    let rec = record_of(&fake, cleaned);
    assert_eq!(rec[kind.company_field()], cleaned);
    if kind == Kind::HubSpot {
        let body = fake.notes()[0].1["hs_note_body"].as_str().unwrap().to_string();
        assert!(!body.contains("<script>") && body.contains("&lt;script&gt;"), "the note is HTML: escaped");
    }
    assert_clean(&fake);
}

async fn two_pollers_one_record(kind: Kind) {
    let fake = FakeCrm::start(kind).await;
    let table = unique_table();
    let mut env = base_env(&table);
    env.extend(fake.env());
    let (a, b) = (spawn_handler(Mode::Host, &env).await, spawn_handler(Mode::Host, &env).await);
    let company = tag();
    ingest(&a, body_with(&company, "INS", Some("jana@contoso.example"))).await;
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(invoke_timer(&a), invoke_timer(&b));
        assert_eq!((ra.0, rb.0), (200, 200));
    }
    assert_eq!(fake.records().len(), 1);
    assert_eq!(fake.writes(), 1, "one write in all");
    if kind == Kind::HubSpot {
        assert_eq!(fake.notes().len(), 1);
    }
    record_of(&fake, &company);
    assert_clean(&fake);
}

async fn no_email_is_skipped(kind: Kind) {
    let (fake, h, table) = setup(kind).await;
    let (pk, rk) = ingest(&h, body_with(&tag(), "INS", None)).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    match kind {
        Kind::HubSpot | Kind::Marketo => {
            assert_eq!(state(&e, kind, "State"), "skipped", "{e:?}");
            assert!(state(&e, kind, "LastError").as_str().unwrap().contains("no e-mail"));
            assert!(fake.records().is_empty());
        }
        // Keyed on our id: a lead without e-mail is still a lead.
        _ => assert_eq!(state(&e, kind, "State"), "delivered", "{e:?}"),
    }
    assert_clean(&fake);
}

macro_rules! for_each_crm {
    ($($crm:ident: $kind:expr),* $(,)?) => {$(
        mod $crm {
            use super::*;
            #[tokio::test] async fn created_once() { super::created_once($kind).await }
            #[tokio::test] async fn retried_after_503_without_duplicate() { super::retried_after_503_without_duplicate($kind).await }
            #[tokio::test] async fn token_expiry_mid_run() { super::token_expiry_mid_run($kind).await }
            #[tokio::test] async fn permanent_400_fails_with_the_reason() { super::permanent_400_fails_with_the_reason($kind).await }
            #[tokio::test] async fn throttled_then_delivered() { super::throttled_then_delivered($kind).await }
            #[tokio::test] async fn hostile_text_arrives_cleaned() { super::hostile_text_arrives_cleaned($kind).await }
            #[tokio::test] async fn two_pollers_one_record() { super::two_pollers_one_record($kind).await }
            #[tokio::test] async fn no_email_is_skipped() { super::no_email_is_skipped($kind).await }
        }
    )*};
}

for_each_crm!(dynamics: Kind::Dynamics, salesforce: Kind::Salesforce, hubspot: Kind::HubSpot, marketo: Kind::Marketo);

#[tokio::test]
async fn a_misconfigured_crm_does_not_stop_intake() {
    let table = unique_table();
    let mut env = base_env(&table);
    env.push(("SALESFORCE_DOMAIN", "http://acme.my.salesforce.com".into()));
    env.push(("SALESFORCE_CLIENT_ID", "x".into()));
    env.push(("SALESFORCE_CLIENT_SECRET", "very-secret-value".into()));
    let h = spawn_handler(Mode::Host, &env).await;
    let (pk, rk) = ingest(&h, lead_body(&tag(), "INS")).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    assert!(e.get("NotifySalesforceState").is_none_or(|s| s == "pending"), "{e:?}");
    assert!(h.logs().contains("SALESFORCE_DOMAIN"));
    assert!(!h.logs().contains("very-secret-value"));
}
