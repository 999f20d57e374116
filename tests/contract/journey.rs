//! The customer's journey across leads, end to end: leads from both routes and in any order
//! linked by e-mail address, the story told by every channel (escaped), the webhook's documented
//! fields, two pollers on one customer, and the lead tools' view. Real Azurite, real SMTP server,
//! real receivers, the real binary.

use std::collections::HashSet;

use crate::common::leads::*;
use crate::common::*;
use chrono::{Duration, Utc};
use marketplace_leads::entity::Entity;
use serde_json::{json, Value};

fn lead(email: &str, company: &str, action: &str, offer_title: &str) -> String {
    json!({
        "UserDetails": {"FirstName": "Jana", "LastName": "Novák", "Email": email, "Phone": "+420 601 234 567",
                        "Country": "CZ", "Company": company, "Title": "CTO"},
        "LeadSource": format!("SPZA-{action}|contoso.{}", offer_title.to_lowercase().replace(' ', "-")), "ActionCode": action,
        "OfferTitle": offer_title, "Description": r#"{"mktcmpid":"spring-launch","partnerid":"4321"}"#
    })
    .to_string()
}

/// A row as Microsoft's "Azure Table" destination writes it, created at `created`.
async fn native(table: &str, email: &str, offer_title: &str, created: chrono::DateTime<Utc>) -> (String, String) {
    let pk = marketplace_leads::lead::partition_key_for(created.date_naive());
    let rk = uuid::Uuid::new_v4().to_string();
    let info = json!({"FirstName": "Jana", "LastName": "Novák", "Email": email, "Company": "Contoso s.r.o.", "Country": "CZ"});
    let entity: Entity = serde_json::from_value(json!({
        "PartitionKey": pk, "RowKey": rk, "ActionCode": "Create", "CreatedTime": created.to_rfc3339(),
        "CustomerInfo": info.to_string(), "Description": "", "LeadSource": "AzurePortal-Create|contoso.portal-offer",
        "OfferDisplayName": offer_title
    }))
    .unwrap();
    table_client(table).insert(&entity).await.unwrap();
    (pk, rk)
}

fn by_company<'a>(bodies: &'a [Value], offer_title: &str) -> &'a Value {
    bodies.iter().find(|b| b["data"]["offerTitle"] == offer_title).unwrap_or_else(|| panic!("no webhook for {offer_title}"))
}

#[tokio::test]
async fn leads_by_both_routes_in_any_order_tell_one_story() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &webhook_env(&table, &hook)).await;
    let email = format!("jana.{}@contoso.example", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    // A LeadIngest lead today, notified first.
    ingest(&h, lead(&email, "Contoso s.r.o.", "INS", "Contoso Analytics")).await;
    timer_ok(&h).await;
    // Microsoft's own row for a purchase made yesterday, written (and seen) only now.
    native(&table, &email.to_uppercase(), "Contoso Portal Offer", Utc::now() - Duration::days(1)).await;
    timer_ok(&h).await;
    // A third lead, in other case and with spaces: the same customer.
    ingest(&h, lead(&format!("  {}  ", email.to_uppercase()), "Contoso s.r.o.", "PLT", "Contoso Insights")).await;
    timer_ok(&h).await;

    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 3);
    let first = by_company(&bodies, "Contoso Analytics");
    let late_native = by_company(&bodies, "Contoso Portal Offer");
    let third = by_company(&bodies, "Contoso Insights");
    assert_eq!(first["data"]["leadNumber"], 1);
    assert_eq!(first["data"]["history"], json!([]));
    // Created before the first lead, though seen after it: it is the customer's first lead.
    assert_eq!(late_native["data"]["leadNumber"], 1, "{late_native}");
    assert_eq!(third["data"]["leadNumber"], 3);
    let history = third["data"]["history"].as_array().unwrap();
    let offers: Vec<&str> = history.iter().map(|h| h["offerTitle"].as_str().unwrap()).collect();
    assert_eq!(offers, ["Contoso Analytics", "Contoso Portal Offer"], "newest first");
    // The documented shape of a history item, exactly.
    for item in history {
        let keys: HashSet<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["id", "createdTime", "actionCode", "offerId", "offerTitle"]));
        assert!(item["id"].as_str().unwrap().starts_with("lead_"));
    }
    assert_eq!(history[1]["actionCode"], "Create");
    let ids: HashSet<&str> = bodies.iter().map(|b| b["data"]["customer"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one stable customer id");
    let id = ids.into_iter().next().unwrap();
    assert!(id.starts_with("cus_") && !id.contains('@'));
    assert_eq!(third["data"]["nextStep"], "The customer asked to be contacted: reply within one business day.");
    assert_eq!(third["data"]["campaign"], "mktcmpid=spring-launch, partnerid=4321");

    // The index is keyed by the hash, never the address.
    let index = table_client(&format!("{table}Customers")).query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap();
    assert_eq!(index.len(), 3);
    assert!(index.iter().all(|r| r["PartitionKey"] == id && !Value::Object(r.clone()).to_string().to_lowercase().contains(&email)));

    // The lead tools: the journey in order, and the repeat marker in the list.
    let out = handler_command(&webhook_env(&table, &hook)).args(["leads", "journey", &email.to_uppercase()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let order: Vec<usize> =
        ["Contoso Portal Offer", "Contoso Analytics", "Contoso Insights"].iter().map(|o| text.find(o).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "oldest first: {text}");
    assert!(text.contains("3 lead(s)") && text.contains("3rd"), "{text}");
    let out = handler_command(&webhook_env(&table, &hook)).args(["leads", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    let insights = list.lines().find(|l| l.contains("Contoso Insights")).unwrap();
    assert!(insights.contains("3rd"), "{list}");
    // The Campaign column LeadIngest stores.
    let rows = table_client(&table).query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap();
    assert!(rows.iter().any(|r| r.get("Campaign") == Some(&json!("mktcmpid=spring-launch, partnerid=4321"))), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pollers_racing_on_one_customer_send_each_lead_once_with_the_whole_story() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let env = webhook_env(&table, &hook);
    let email = format!("race.{}@fabrikam.example", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let now = Utc::now();
    for (i, offer) in ["Offer A", "Offer B", "Offer C"].iter().enumerate() {
        native(&table, &email, offer, now - Duration::minutes(30 - i as i64)).await;
    }
    let a = spawn_handler(Mode::Host, &env).await;
    let b = spawn_handler(Mode::Host, &env).await;
    let (ra, rb) = tokio::join!(invoke_timer(&a), invoke_timer(&b));
    assert_eq!((ra.0, rb.0), (200, 200));
    let (ra, rb) = tokio::join!(invoke_timer(&a), invoke_timer(&b));
    assert_eq!((ra.0, rb.0), (200, 200));
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 3, "each lead once");
    // Indexed before any was sent: the story is whole whichever poller sent which lead.
    assert_eq!(by_company(&bodies, "Offer C")["data"]["leadNumber"], 3);
    assert_eq!(by_company(&bodies, "Offer B")["data"]["leadNumber"], 2);
    assert_eq!(by_company(&bodies, "Offer A")["data"]["leadNumber"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_journey_is_escaped_in_every_channel() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let teams = Receiver::start().await;
    let slack = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    env.push(("NOTIFY_TEAMS_URL", teams.url()));
    env.push(("NOTIFY_SLACK_URL", slack.url()));
    env.push(("NOTIFY_EMAIL_TO", "publisher@example.com".into()));
    env.push(("NOTIFY_EMAIL_FROM", "leads@example.com".into()));
    env.push(("SMTP_HOST", "127.0.0.1".into()));
    env.push(("SMTP_PORT", smtp_port().to_string()));
    env.push(("SMTP_SECURITY", "none".into()));
    let email = format!("evil.{}@contoso.example", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let h = spawn_handler(Mode::Host, &env).await;
    let hostile_offer = "<img src=x onerror=alert(1)>[click](https://evil.example)\u{2028}E-mail: attacker@evil.example";
    ingest(&h, lead(&email, "Earlier Co", "INS", hostile_offer)).await;
    timer_ok(&h).await;
    let marker = format!("Second{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    ingest(&h, lead(&email, &marker, "PLT", "Contoso Insights")).await;
    timer_ok(&h).await;

    let mails = mails_containing(&marker);
    assert_eq!(mails.len(), 1);
    let m = mailparse::parse_mail(mails[0].as_bytes()).unwrap();
    let parts: Vec<(String, String)> = m.subparts.iter().map(|p| (p.ctype.mimetype.clone(), p.get_body().unwrap())).collect();
    let html = &parts.iter().find(|(t, _)| t == "text/html").unwrap().1;
    let plain = &parts.iter().find(|(t, _)| t == "text/plain").unwrap().1;
    assert!(html.contains("Earlier leads from this customer") && html.contains("&#60;img src=x onerror=alert(1)&#62;"), "{html}");
    assert!(!html.contains("<img"));
    assert!(plain.contains("Returning customer, 2nd lead"));
    assert!(!plain.lines().any(|l| l.trim_start().starts_with("E-mail: attacker")), "{plain}");
    assert!(!plain.contains('\u{2028}'));

    let card = teams.bodies().into_iter().find(|b| b.to_string().contains(&marker)).unwrap();
    let card_text = card.to_string();
    assert!(card_text.contains("Earlier leads") && card_text.contains("\\\\[click\\\\]\\\\(https://evil.example\\\\)"), "{card_text}");
    let slack_body = slack.bodies().into_iter().find(|b| b.to_string().contains(&marker)).unwrap();
    let history_block = slack_body["blocks"].as_array().unwrap().iter().find(|b| b.to_string().contains("Earlier leads")).unwrap();
    assert_eq!(history_block["text"]["type"], "plain_text", "never read as markup");
}

#[tokio::test]
async fn test_leads_and_leads_without_an_address_link_to_no_one() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &webhook_env(&table, &hook)).await;
    ingest(&h, sample("https-lead-test.json")).await;
    ingest(&h, json!({"UserDetails": {"Company": "Some University"}, "LeadSource": "SPZA-INS|c.o"}).to_string()).await;
    timer_ok(&h).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2);
    for b in &bodies {
        assert_eq!(b["data"]["customer"]["id"], Value::Null);
        assert_eq!(b["data"]["leadNumber"], Value::Null);
    }
    assert!(table_client(&format!("{table}Customers"))
        .query(&marketplace_leads::store::Query::all(), usize::MAX)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn leads_from_before_the_index_are_reindexed_once_and_then_tell_the_story() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let env = webhook_env(&table, &hook);
    let email = format!("old.{}@contoso.example", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // History from before the index: leads a version without it has already notified.
    let leads = table_client(&table);
    for (address, offer, days) in [
        (email.clone(), "Contoso Archive", 200),
        (email.to_uppercase(), "Contoso Legacy", 90),
        ("other@fabrikam.example".into(), "Fabrikam", 60),
    ] {
        let (pk, rk) = native(&table, &address, offer, Utc::now() - Duration::days(days)).await;
        let (mut row, _) = leads.get(&pk, &rk).await.unwrap().unwrap();
        row.retain(|k, _| !k.starts_with("odata.") && k != "Timestamp");
        row.insert("NotifyWebhookState".into(), json!("delivered"));
        leads.upsert(&row).await.unwrap();
    }
    let test_lead: Entity = serde_json::from_value(json!({
        "PartitionKey": "M:2FD:2F2025", "RowKey": uuid::Uuid::new_v4().to_string(), "ActionCode": "INS",
        "CustomerInfo": json!({"FirstName": "MSFT_TEST", "Email": email}).to_string(), "LeadSource": "SPZA-INS|contoso.o",
        "NotifyWebhookState": "delivered"
    }))
    .unwrap();
    leads.insert(&test_lead).await.unwrap();
    let index = table_client(&format!("{table}Customers"));
    assert!(index.query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap().is_empty(), "nothing is indexed before");

    let reindex = || {
        let out = handler_command(&env).args(["leads", "reindex"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.to_lowercase().contains(&email), "no address in the logs: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let said = reindex();
    assert!(said.starts_with("3 lead(s) of 2 customer(s) in the journey index; 1 lead(s) link to no one"), "{said}");
    assert_eq!(reindex(), said, "running it again changes nothing");
    assert_eq!(index.query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap().len(), 3);
    assert!(!said.contains(&email), "no address is printed");

    // The next lead from that customer is their third, with the whole story.
    let h = spawn_handler(Mode::Host, &env).await;
    ingest(&h, lead(&email, "Contoso s.r.o.", "PLT", "Contoso Insights")).await;
    timer_ok(&h).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["data"]["leadNumber"], 3, "{}", bodies[0]);
    let offers: Vec<&str> = bodies[0]["data"]["history"].as_array().unwrap().iter().map(|h| h["offerTitle"].as_str().unwrap()).collect();
    assert_eq!(offers, ["Contoso Legacy", "Contoso Archive"], "newest first");
}
