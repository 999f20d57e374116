//! LeadNotify at once after intake (`NOTIFY_IMMEDIATE`, on by default): a stored lead wakes a
//! run in the same process, under the host and standalone, with no timer tick needed; a burst
//! is notified once per lead.

use crate::common::leads::*;
use crate::common::*;

fn immediate_env(table: &str, hook: &Receiver) -> Vec<(&'static str, String)> {
    let mut env = webhook_env(table, hook);
    env.retain(|(k, _)| *k != "NOTIFY_IMMEDIATE");
    // A schedule that will not tick during the test: only the immediate run can notify.
    env.push(("NOTIFY_SCHEDULE", "0 0 0 1 1 *".into()));
    env
}

#[tokio::test]
async fn under_the_host_a_lead_is_notified_without_a_timer_tick() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &immediate_env(&table, &hook)).await;
    ingest(&h, lead_body("At Once Co", "PLT")).await;
    eventually("the webhook arrives with no timer invocation", || hook.requests().len() == 1).await;
    assert!(hook.bodies()[0]["data"]["customer"]["company"] == "At Once Co");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_a_burst_is_notified_once_per_lead() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = immediate_env(&table, &hook);
    env.push(("LEADS_INGEST_KEY", "k".into()));
    let h = spawn_handler(Mode::Serve, &env).await;
    let client = reqwest::Client::new();
    let posts = (0..20).map(|i| {
        let client = client.clone();
        let url = h.url("/api/LeadIngest?code=k");
        async move {
            let resp = client.post(url).body(lead_body(&format!("Burst {i}"), "INS")).send().await.unwrap();
            assert_eq!(resp.status(), 201);
        }
    });
    futures_util::future::join_all(posts).await;
    eventually("every lead of the burst is notified", || hook.requests().len() >= 20).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ids: std::collections::HashSet<String> =
        hook.requests().iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_string()).collect();
    assert_eq!((hook.requests().len(), ids.len()), (20, 20), "once per lead, coalesced runs never double-send");
}
