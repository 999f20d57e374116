//! Storage blips with real faults: the real handler talks to the real Azurite through a TCP proxy
//! on loopback that the test cuts (every connection reset, new ones too) and restores, or that
//! loses the answer to a write that did land. A lead that got a 2xx must be in the table exactly
//! once; a blip shorter than STORAGE_RETRY_SECONDS must refuse no lead.

use std::time::Duration;

use crate::common::*;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

async fn rows(table: &str) -> Vec<serde_json::Map<String, Value>> {
    table_client(table).query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap()
}

fn lead(i: usize) -> String {
    json!({
        "UserDetails": {"FirstName": "Stream", "LastName": format!("Lead {i}"), "Email": format!("lead{i}@stream.example"), "Company": "Contoso"},
        "LeadSource": "SPZA-PLT|contoso.contoso-analytics", "ActionCode": "PLT", "OfferTitle": "Contoso Analytics"
    })
    .to_string()
}

async fn post(client: &reqwest::Client, h: &Handler, body: String) -> (u16, Value) {
    let resp = client.post(h.url("/api/LeadIngest")).header("content-type", "application/json").body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn env_via(proxy: &FaultProxy, table: &str) -> Vec<(&'static str, String)> {
    vec![("AzureWebJobsStorage", azurite_connection_string(proxy.port)), ("LEADS_TABLE", table.to_string())]
}

#[tokio::test]
async fn a_two_second_cut_mid_stream_refuses_no_lead_and_doubles_none() {
    const LEADS: usize = 300;
    const CUT_AT: usize = 100;
    let table = unique_table();
    let proxy = FaultProxy::start(azurite_port()).await;
    let h = spawn_handler(Mode::Host, &env_via(&proxy, &table)).await; // default deadline: 10 s
    let client = reqwest::Client::new();

    // Eight at a time, as a burst of leads arrives; lead CUT_AT cuts storage off as it starts,
    // so leads before it are in flight when their connections are reset, and the ones after it
    // wait out the cut inside their requests.
    let answers: Vec<(usize, u16, Value)> = futures_util::stream::iter(0..LEADS)
        .map(|i| {
            let (client, proxy, h) = (&client, &proxy, &h);
            async move {
                if i == CUT_AT {
                    proxy.cut();
                    let proxy = proxy.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        proxy.restore();
                    });
                }
                let (status, body) = post(client, h, lead(i)).await;
                (i, status, body)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;

    let refused: Vec<_> = answers.iter().filter(|(_, s, _)| !(200..300).contains(s)).collect();
    let stored = rows(&table).await;
    let missing: Vec<_> = answers
        .iter()
        .filter(|(_, s, _)| (200..300).contains(s))
        .filter(|(_, _, body)| !stored.iter().any(|r| r["RowKey"] == body["rowKey"]))
        .collect();
    let retried = h.logs().matches("storage answered after transient failures").count();
    println!("{LEADS} leads, storage cut for 2 s at lead {CUT_AT}: {} refused, {} acknowledged and missing, {} rows, {retried} table calls recovered by retrying", refused.len(), missing.len(), stored.len());
    assert!(refused.is_empty(), "refused: {refused:?}");
    assert!(missing.is_empty(), "acknowledged but not in the table: {missing:?}");
    assert!(retried > 0, "the cut must have hit requests: {}", h.logs());
    for i in 0..LEADS {
        let email = format!("lead{i}@stream.example");
        assert_eq!(stored.iter().filter(|r| r["Email"] == email.as_str()).count(), 1, "{email} stored exactly once");
    }
    assert_eq!(stored.len(), LEADS);
    assert!(answers.iter().all(|(_, s, b)| *s == 201 && b["status"] == "stored"), "every lead was new, so every answer is 201 stored");
}

#[tokio::test]
async fn a_write_that_landed_unheard_is_answered_stored_once() {
    let table = unique_table();
    table_client(&table).create_table().await.unwrap();
    let proxy = FaultProxy::start(azurite_port()).await;
    let h = spawn_handler(Mode::Host, &env_via(&proxy, &table)).await;
    // The insert reaches Azurite and is written; its answer is lost and the connection reset.
    proxy.lose_replies_to(&format!("POST /devstoreaccount1/{table} "), 1);

    let (status, body) = post(&reqwest::Client::new(), &h, sample("https-lead.json")).await;
    assert_eq!((status, body["status"].as_str()), (201, Some("stored")), "our own write, found by the retry: {body}");
    let stored = rows(&table).await;
    assert_eq!(stored.len(), 1, "never two rows");
    assert_eq!(stored[0]["RowKey"], body["rowKey"]);
    assert!(h.logs().contains("insert retry found its row"), "{}", h.logs());

    // The same delivery again, with nothing lost: a plain duplicate.
    let (status, body) = post(&reqwest::Client::new(), &h, sample("https-lead.json")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(rows(&table).await.len(), 1);
}

#[tokio::test]
async fn storage_down_past_the_deadline_answers_503_and_stores_nothing() {
    let table = unique_table();
    let proxy = FaultProxy::start(azurite_port()).await;
    proxy.cut();
    let mut env = env_via(&proxy, &table);
    env.push(("STORAGE_RETRY_SECONDS", "1".into()));
    let h = spawn_handler(Mode::Host, &env).await;

    let (status, body) = post(&reqwest::Client::new(), &h, sample("https-lead.json")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not stored"));
    let logs = h.logs();
    assert!(logs.contains("still unavailable at the retry deadline") && logs.contains("lead not stored"), "{logs}");
    assert!(rows(&table).await.is_empty(), "a 503 claims nothing, and nothing is there");

    // Storage back: the sender's retry of the same lead is stored.
    proxy.restore();
    let (status, _) = post(&reqwest::Client::new(), &h, sample("https-lead.json")).await;
    assert_eq!(status, 201);
    assert_eq!(rows(&table).await.len(), 1);
}
