//! Lead fixtures and notifier helpers shared by the LeadNotify tests: settings for channels,
//! leads posted through LeadIngest or written as Microsoft writes them, and row access.

use chrono::Utc;
use marketplace_leads::entity::{put_datetime, Entity};
use marketplace_leads::lead::partition_key_for;
use serde_json::{json, Value};

use super::*;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub fn tag() -> String {
    format!("T{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

pub fn webhook_env(table: &str, hook: &Receiver) -> Vec<(&'static str, String)> {
    let mut env = base_env(table);
    env.push(("NOTIFY_WEBHOOK_URL", hook.url()));
    env.push(("NOTIFY_WEBHOOK_SECRET", SECRET.into()));
    env
}

pub fn email_env(env: &mut Vec<(&'static str, String)>) {
    env.push(("NOTIFY_EMAIL_TO", "publisher@example.com, sales@example.com".into()));
    env.push(("NOTIFY_EMAIL_FROM", "Marketplace leads <leads@example.com>".into()));
    env.push(("SMTP_HOST", "127.0.0.1".into()));
    env.push(("SMTP_PORT", smtp_port().to_string()));
    env.push(("SMTP_SECURITY", "none".into()));
}

pub fn lead_body(company: &str, action: &str) -> String {
    json!({
        "UserDetails": {"FirstName": "Jana", "LastName": "Novák", "Email": "jana@contoso.example", "Phone": "+420 601 234 567",
                        "Country": "CZ", "Company": company, "Title": "CTO"},
        "LeadSource": format!("SPZA-{action}|contoso.contoso-analytics"), "ActionCode": action, "OfferTitle": "Contoso Analytics",
        "Description": "Campaigns: spring-launch"
    })
    .to_string()
}

pub async fn ingest(h: &Handler, body: String) -> (String, String) {
    let resp = reqwest::Client::new().post(h.url("/api/LeadIngest")).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    (v["partitionKey"].as_str().unwrap().to_string(), v["rowKey"].as_str().unwrap().to_string())
}

/// A row exactly as Microsoft's "Azure Table" destination writes it: native columns only.
pub async fn insert_native(table: &str, company: &str, date: chrono::NaiveDate) -> (String, String) {
    let pk = partition_key_for(date);
    let rk = uuid::Uuid::new_v4().to_string();
    let info = json!({"FirstName": "Ana", "LastName": "Silva", "Email": "ana@northwind.example", "Phone": "+351 21 000 0000",
                      "Country": "PT", "Company": company, "Title": "Diretora de TI"});
    let entity: Entity = serde_json::from_value(json!({
        "PartitionKey": pk, "RowKey": rk, "ActionCode": "INS", "CreatedTime": format!("{}T09:00:00.000Z", date),
        "CustomerInfo": info.to_string(), "Description": "", "LeadSource": "AzurePortal-Create|northwind.northwind-saas",
        "OfferDisplayName": "Northwind SaaS"
    }))
    .unwrap();
    table_client(table).insert(&entity).await.unwrap();
    (pk, rk)
}

pub async fn row(table: &str, pk: &str, rk: &str) -> Entity {
    table_client(table).get(pk, rk).await.unwrap().unwrap().0
}

/// Moves a lead's clock: as if its retry time or lease had come (the test cannot wait hours).
pub async fn time_travel(table: &str, pk: &str, rk: &str, column: &str) {
    let client = table_client(table);
    let (_, etag) = client.get(pk, rk).await.unwrap().unwrap();
    let mut props = Entity::new();
    put_datetime(&mut props, column, Utc::now() - chrono::Duration::seconds(1));
    client.merge(pk, rk, &props, &etag).await.unwrap();
}

pub async fn timer_ok(h: &Handler) -> Value {
    let (status, reply) = invoke_timer(h).await;
    assert_eq!(status, 200, "{reply}");
    reply
}
