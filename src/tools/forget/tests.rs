//! forget's rules in process, over the in-memory table.

use super::*;
use crate::clock::Clock;
use crate::store::{MemoryTable, Table};
use base64::Engine as _;
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
    let eva =
        row(json!({"Email": "eva@x.example; jana@contoso.example", "CustomerInfo": "{\"Email\":\"eva@x.example; jana@contoso.example\"}"}));
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
    let own = row(json!({"Parsed": false, "RawEncoding": "base64", "RawPayload": engine.encode(b"{\"email\":\"jana@contoso.example\"}")}));
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
