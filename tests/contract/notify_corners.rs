//! LeadNotify in the corners where a lead could slip through or a peer could stall it: rows with
//! keys nobody expected, leads pending for weeks, states typed by hand, stalled relays, hostile
//! receivers, broken settings. The real binary, a real Azurite, real sockets.

use std::time::{Duration, Instant};

use crate::common::leads::*;
use crate::common::*;
use chrono::{Days, Utc};
use marketplace_leads::entity::{put_datetime, Entity};
use marketplace_leads::lead::partition_key_for;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A Microsoft-style row (native columns only) under any keys.
async fn insert_odd(table: &str, pk: &str, company: &str) -> String {
    let rk = uuid::Uuid::new_v4().to_string();
    let entity: Entity = serde_json::from_value(json!({
        "PartitionKey": pk, "RowKey": rk, "ActionCode": "PLT", "CreatedTime": Utc::now().to_rfc3339(),
        "CustomerInfo": json!({"Company": company, "Email": "ana@northwind.example"}).to_string(),
        "LeadSource": "SPZA-PLT|northwind.northwind-saas", "OfferDisplayName": "Northwind SaaS"
    }))
    .unwrap();
    table_client(table).insert(&entity).await.unwrap();
    rk
}

async fn seed_state(table: &str, row_key: &str, props: Entity) {
    let mut e = props;
    e.insert("PartitionKey".into(), "cursor".into());
    e.insert("RowKey".into(), row_key.into());
    table_client(&format!("{table}Notify")).upsert(&e).await.unwrap();
}

fn received_companies(hook: &Receiver) -> Vec<String> {
    hook.bodies().iter().map(|b| b["data"]["customer"]["company"].as_str().unwrap_or_default().to_string()).collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_with_any_keys_are_swept_up_once_per_channel_even_by_two_pollers() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    env.push(("NOTIFY_SWEEP_MINUTES", "0".into()));
    let a = spawn_handler(Mode::Host, &env).await;
    let b = spawn_handler(Mode::Host, &env).await;
    let today = Utc::now().date_naive();
    let odd_keys = [today.to_string(), "leads".to_string(), uuid::Uuid::new_v4().to_string(), format!("{}", today.format("%d.%m.%Y"))];
    for (i, pk) in odd_keys.iter().enumerate() {
        insert_odd(&table, pk, &format!("Odd key {i}")).await;
    }
    let (ra, rb) = tokio::join!(invoke_timer(&a), invoke_timer(&b));
    assert_eq!((ra.0, rb.0), (200, 200), "{ra:?} {rb:?}");
    let said = |r: &serde_json::Value| {
        r["Logs"].as_array().map(|l| l.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(" ")).unwrap_or_default()
    };
    assert!(said(&ra.1).contains("in the sweep") || said(&rb.1).contains("in the sweep"), "{} {}", ra.1, rb.1);
    // A second round from both: nothing is left to send, and an idle run says nothing to the host.
    let (ra, rb) = tokio::join!(invoke_timer(&a), invoke_timer(&b));
    assert_eq!((ra.0, rb.0), (200, 200));
    assert_eq!((said(&ra.1), said(&rb.1)), (String::new(), String::new()));
    let mut got = received_companies(&hook);
    got.sort();
    assert_eq!(got, (0..odd_keys.len()).map(|i| format!("Odd key {i}")).collect::<Vec<_>>(), "each exactly once");
}

#[tokio::test]
async fn the_sweep_starts_at_its_cursor_so_old_history_is_not_a_storm() {
    // The first sweep starts 24 h back. Rows cannot be made older in Azurite, so this moves
    // the sweep's cursor past them instead: the cursor is what bounds the first sweep.
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    env.push(("NOTIFY_SWEEP_MINUTES", "0".into()));
    insert_odd(&table, "history", "Old history").await;
    let mut sweep = Entity::new();
    put_datetime(&mut sweep, "SweepFrom", Utc::now() + chrono::Duration::minutes(10));
    put_datetime(&mut sweep, "LastSweep", Utc::now() - chrono::Duration::days(1));
    seed_state(&table, "sweep", sweep).await;
    let h = spawn_handler(Mode::Host, &env).await;
    timer_ok(&h).await;
    assert!(hook.requests().is_empty(), "rows before the sweep's start are not notified");
}

#[tokio::test]
async fn a_lead_pending_for_weeks_ends_failed_with_its_reason() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let env = webhook_env(&table, &hook);
    let old = Utc::now().date_naive() - Days::new(40);
    let (pk, rk) = insert_native(&table, "Forgotten Ltd", old).await;
    let mut cursor = Entity::new();
    cursor.insert("ScanFrom".into(), (old - Days::new(5)).to_string().into());
    seed_state(&table, "scan-from", cursor).await;
    let h = spawn_handler(Mode::Host, &env).await;
    timer_ok(&h).await;
    let r = row(&table, &pk, &rk).await;
    assert_eq!(r["NotifyWebhookState"], "failed");
    assert!(r["NotifyWebhookLastError"].as_str().unwrap().contains("31 days"), "{r:?}");
    assert!(hook.requests().is_empty(), "a month-old lead is ended, not sent");
    assert!(h.logs().contains("ERROR") && h.logs().contains("31 days"), "{}", h.logs());
    let out = handler_command(&env).args(["leads", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed after 0 attempt(s): gave up"), "{text}");
}

#[tokio::test]
async fn a_state_typed_by_hand_is_never_sent_and_is_shown() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let env = webhook_env(&table, &hook);
    let (pk, rk) = insert_native(&table, "Hand Typed", Utc::now().date_naive()).await;
    let client = table_client(&table);
    let (_, etag) = client.get(&pk, &rk).await.unwrap().unwrap();
    let mut props = Entity::new();
    props.insert("NotifyWebhookState".into(), "done".into());
    client.merge(&pk, &rk, &props, &etag).await.unwrap();
    let (pk2, rk2) = insert_native(&table, "Typed Delivered", Utc::now().date_naive()).await;
    let (_, etag) = client.get(&pk2, &rk2).await.unwrap().unwrap();
    props.insert("NotifyWebhookState".into(), "Delivered".into());
    client.merge(&pk2, &rk2, &props, &etag).await.unwrap();

    let h = spawn_handler(Mode::Host, &env).await;
    timer_ok(&h).await;
    assert!(hook.requests().is_empty(), "neither row is sent again");
    let out = handler_command(&env).args(["leads", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unknown state `done`"), "{text}");
    let line = text.lines().find(|l| l.starts_with("Webhook")).unwrap();
    assert!(line.contains("delivered      1") && line.contains("unknown      1"), "{text}");
}

/// An SMTP "relay" that accepts connections and then says nothing, or stops answering once the
/// message body starts (`stall_at_data`).
async fn stalled_smtp(stall_at_data: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            if !stall_at_data {
                held.push(sock); // never a byte back
                continue;
            }
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 stall.example ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    if upper.starts_with("EHLO") {
                        let _ = write.write_all(b"250-stall.example\r\n250 8BITMIME\r\n").await;
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        // …and never another word, while the client sends the message.
                        while let Ok(Some(_)) = lines.next_line().await {}
                        return;
                    } else {
                        let _ = write.write_all(b"250 ok\r\n").await;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_relay_costs_one_timed_out_attempt_and_never_holds_the_webhook_back() {
    for stall_at_data in [false, true] {
        let table = unique_table();
        let hook = Receiver::start().await;
        let mut env = webhook_env(&table, &hook);
        env.push(("NOTIFY_EMAIL_TO", "publisher@example.com".into()));
        env.push(("NOTIFY_EMAIL_FROM", "leads@example.com".into()));
        env.push(("SMTP_HOST", "127.0.0.1".into()));
        env.push(("SMTP_PORT", stalled_smtp(stall_at_data).await.to_string()));
        env.push(("SMTP_SECURITY", "none".into()));
        // Long enough that the webhook's record and the polling below always come first, even
        // on a busy machine.
        env.push(("NOTIFY_SEND_TIMEOUT_SECONDS", "10".into()));
        let (pk, rk) = insert_native(&table, "Stalled Relay", Utc::now().date_naive()).await;
        let h = spawn_handler(Mode::Host, &env).await;
        let run = tokio::spawn({
            let url = h.url("/LeadNotify");
            async move { reqwest::Client::new().post(url).json(&timer_envelope()).send().await.map(|r| r.status().as_u16()) }
        });
        // The webhook is recorded while the relay is still stalling: seen delivered while the
        // e-mail has no record yet.
        let deadline = Instant::now() + Duration::from_secs(20);
        let seen = loop {
            let r = row(&table, &pk, &rk).await;
            if r.get("NotifyWebhookState") == Some(&json!("delivered")) {
                break r;
            }
            assert!(Instant::now() < deadline, "the webhook was never recorded: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(seen.get("NotifyEmailAttempts").is_none(), "recorded independently of the stalled e-mail: {seen:?}");
        assert_eq!(run.await.unwrap().unwrap(), 200, "the run ends: the send deadline cut the relay off");
        let r = row(&table, &pk, &rk).await;
        assert_eq!(r["NotifyEmailState"], "pending", "a timeout is retried");
        assert_eq!(r["NotifyEmailAttempts"], 1, "and counted as an attempt");
        assert!(r["NotifyEmailLastError"].as_str().unwrap().contains("timed out"), "{r:?}");
        assert!(h.logs().contains("notification failed, will retry"), "a log line says so");
        assert_eq!(hook.requests().len(), 1);
    }
}

/// A receiver that answers 500 with a body that never ends.
async fn endless_receiver() -> String {
    use axum::body::{Body, Bytes};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let body = Body::from_stream(futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone())));
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, body)
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

/// A receiver that sends `status` and its headers, one chunk of body, then nothing ever again.
async fn stalling_receiver(status: u16) -> String {
    use axum::body::{Body, Bytes};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"partial answer")) });
        let body = Body::from_stream(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
        (axum::http::StatusCode::from_u16(status).unwrap(), body)
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_stalls_after_its_headers_cannot_hold_the_run() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    // A 500 whose answer never ends, and a 200 whose answer never ends.
    env.push(("NOTIFY_TEAMS_URL", stalling_receiver(500).await));
    env.push(("NOTIFY_SLACK_URL", stalling_receiver(200).await));
    env.push(("NOTIFY_SEND_TIMEOUT_SECONDS", "5".into()));
    let (pk, rk) = insert_native(&table, "Stalling Answer", Utc::now().date_naive()).await;
    let h = spawn_handler(Mode::Host, &env).await;
    // The run ends: reading an answer is bounded by the send deadline.
    timer_ok(&h).await;
    let r = row(&table, &pk, &rk).await;
    assert_eq!(r["NotifyWebhookState"], "delivered", "the other channels are not held back");
    assert_eq!(r["NotifyTeamsState"], "pending", "a 500 is retried, whatever its body does");
    assert_eq!(r["NotifyTeamsAttempts"], 1);
    assert!(r["NotifyTeamsLastError"].as_str().unwrap().starts_with("HTTP 500; answer: partial answer"), "{r:?}");
    assert_eq!(r["NotifySlackState"], "delivered", "a 200 is an acceptance, even if its body then stalls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_an_endless_body_costs_a_kilobyte() {
    let table = unique_table();
    let mut env = base_env(&table);
    env.push(("NOTIFY_WEBHOOK_URL", endless_receiver().await));
    env.push(("NOTIFY_WEBHOOK_SECRET", SECRET.into()));
    env.push(("NOTIFY_SLACK_URL", endless_receiver().await));
    let (pk, rk) = insert_native(&table, "Endless Answer", Utc::now().date_naive()).await;
    let h = spawn_handler(Mode::Host, &env).await;
    timer_ok(&h).await;
    let r = row(&table, &pk, &rk).await;
    for ch in ["Webhook", "Slack"] {
        assert_eq!(r[&format!("Notify{ch}State")], "pending");
        let err = r[&format!("Notify{ch}LastError")].as_str().unwrap();
        assert!(err.starts_with("HTTP 500; answer: xxx") && err.len() < 400, "{err}");
    }
    let rss = rss_kib(h.child.id());
    assert!(rss < 64 * 1024, "the process stays small: {rss} KiB");
}

#[tokio::test]
async fn an_unresolved_key_vault_reference_disables_its_channel_not_intake() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = base_env(&table);
    env.push(("NOTIFY_WEBHOOK_URL", "@Microsoft.KeyVault(SecretUri=https://leads-kv.vault.azure.net/secrets/webhook-url/)".into()));
    env.push(("NOTIFY_WEBHOOK_SECRET", SECRET.into()));
    env.push(("NOTIFY_SLACK_URL", "http://hooks.slack.example/services/T0/B0/x".into()));
    let h = spawn_handler(Mode::Host, &env).await;
    let (pk, rk) = ingest(&h, lead_body("Vault Pending", "PLT")).await;
    timer_ok(&h).await;
    let logs = h.logs();
    assert!(logs.contains("ERROR") && logs.contains("NOTIFY_WEBHOOK_URL") && logs.contains("Key Vault"), "{logs}");
    assert!(logs.contains("NOTIFY_SLACK_URL") && logs.contains("https://"), "{logs}");
    assert!(!logs.contains("hooks.slack.example"), "setting values are not echoed");
    let r = row(&table, &pk, &rk).await;
    assert!(r.get("NotifyWebhookState").is_none(), "not sent, not failed: still pending");

    for args in [&["leads", "status"][..], &["settings"][..]] {
        let out = handler_command(&env).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(text.contains("Webhook MISCONFIGURED") || text.contains("Webhook  MISCONFIGURED"), "{args:?}: {text}");
    }

    // The vault answers now: the lead that waited is delivered.
    drop(h);
    let fixed = webhook_env(&table, &hook);
    let h = spawn_handler(Mode::Host, &fixed).await;
    timer_ok(&h).await;
    assert_eq!(received_companies(&hook), vec!["Vault Pending".to_string()]);
}

#[tokio::test]
async fn a_company_of_three_thousand_characters_keeps_mail_headers_short() {
    let table = unique_table();
    let mut env = base_env(&table);
    env.push(("NOTIFY_EMAIL_TO", "publisher@example.com".into()));
    env.push(("NOTIFY_EMAIL_FROM", "leads@example.com".into()));
    env.push(("SMTP_HOST", "127.0.0.1".into()));
    env.push(("SMTP_PORT", smtp_port().to_string()));
    env.push(("SMTP_SECURITY", "none".into()));
    let marker = format!("Huge{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let company = format!("{marker}{}", "x".repeat(3000));
    let h = spawn_handler(Mode::Host, &env).await;
    ingest(&h, lead_body(&company, "PLT")).await;
    timer_ok(&h).await;
    let mails = mails_containing(&marker);
    assert_eq!(mails.len(), 1);
    let raw = &mails[0];
    let header_block = &raw[..raw.find("\r\n\r\n").or_else(|| raw.find("\n\n")).unwrap()];
    assert!(header_block.lines().all(|l| l.len() <= 998), "RFC 5322 line limit");
    assert!(mails_containing(&company).len() == 1, "the full company is in the body");
}

#[tokio::test]
async fn cli_output_carries_no_control_characters_and_exports_are_private() {
    let table = unique_table();
    let hook = Receiver::start().await;
    hook.answer_next(&[(400, None)]);
    let env = webhook_env(&table, &hook);
    let h = spawn_handler(Mode::Host, &env).await;
    let (pk, rk) = ingest(&h, lead_body("Evil\u{1b}[2J\u{1b}]8;;https://evil.example\u{7}Co", "PLT")).await;
    timer_ok(&h).await;
    // A receiver's answer with terminal escapes, as stored in LastError.
    let client = table_client(&table);
    let (_, etag) = client.get(&pk, &rk).await.unwrap().unwrap();
    let mut props = Entity::new();
    props.insert("NotifyWebhookLastError".into(), "HTTP 400; answer: \u{1b}[2J\u{9b}31m\u{1b}]8;;https://evil.example\u{7}click".into());
    client.merge(&pk, &rk, &props, &etag).await.unwrap();
    for args in [&["leads", "status"][..], &["leads", "list"][..]] {
        let out = handler_command(&env).args(args).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {text:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leads.csv");
    std::fs::write(&path, "old").unwrap(); // an existing, world-readable file is narrowed too
    let out = handler_command(&env).args(["leads", "export", "--output", path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&path).unwrap().contains("Evil"));
}

#[tokio::test]
async fn leads_in_partitions_of_tomorrow_and_yesterday_are_still_read_by_the_fast_path() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let env = webhook_env(&table, &hook);
    let today = Utc::now().date_naive();
    insert_native(&table, "Yesterday Co", today - Days::new(1)).await;
    insert_native(&table, "Tomorrow Co", today + Days::new(1)).await;
    let h = spawn_handler(Mode::Host, &env).await;
    let reply = timer_ok(&h).await;
    let mut got = received_companies(&hook);
    got.sort();
    assert_eq!(got, vec!["Tomorrow Co".to_string(), "Yesterday Co".to_string()], "{reply}");
    assert!(partition_key_for(today).contains(":2F"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storage_cut_in_the_middle_of_a_poll_loses_nothing_and_is_reported() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let proxy = FaultProxy::start(azurite_port()).await;
    let mut env = webhook_env(&table, &hook);
    env.retain(|(k, _)| *k != "AzureWebJobsStorage");
    env.push(("AzureWebJobsStorage", azurite_connection_string(proxy.port)));
    env.push(("STORAGE_RETRY_SECONDS", "1".into()));
    let today = Utc::now().date_naive();
    let leads = [insert_native(&table, "Cut One", today).await, insert_native(&table, "Cut Two", today).await];
    let h = spawn_handler(Mode::Host, &env).await;

    // The receiver holds both sends; storage goes away while they are in flight.
    hook.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let run = tokio::spawn({
        let url = h.url("/LeadNotify");
        async move {
            let resp = reqwest::Client::new().post(url).json(&timer_envelope()).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap_or_default())
        }
    });
    eventually("both sends are in flight", || hook.requests().len() == 2).await;
    proxy.cut();
    hook.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, reply) = run.await.unwrap();
    assert_eq!(status, 500, "a run with storage errors is a failed invocation: {reply}");
    // Each lead's record, then the two cursors (which therefore stay where they were).
    assert!(reply["Logs"][0].as_str().unwrap().contains("4 storage errors"), "every failure is counted: {reply}");
    assert!(h.logs().contains("storage error while notifying a lead"), "{}", h.logs());

    // Storage is back. The unrecorded leads keep their claim until it lapses; then the next run
    // sends again with the same id (a repeat the receiver can drop, never a loss) and records it.
    proxy.restore();
    for (pk, rk) in &leads {
        assert!(row(&table, pk, rk).await.get("NotifyWebhookState").is_none(), "nothing was recorded as delivered");
        time_travel(&table, pk, rk, "NotifyLeaseUntil").await;
    }
    timer_ok(&h).await;
    for (pk, rk) in &leads {
        assert_eq!(row(&table, pk, rk).await["NotifyWebhookState"], "delivered");
    }
    let ids: Vec<String> = hook.requests().iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 2, "repeats carry the same webhook-id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_storage_while_one_channel_is_recorded_never_turns_anothers_answer_into_a_timeout() {
    let table = unique_table();
    let (hook, slack) = (Receiver::start().await, Receiver::start().await);
    let proxy = FaultProxy::start(azurite_port()).await;
    let mut env = webhook_env(&table, &hook);
    env.retain(|(k, _)| *k != "AzureWebJobsStorage");
    env.extend([
        ("AzureWebJobsStorage", azurite_connection_string(proxy.port)),
        ("NOTIFY_SLACK_URL", slack.url()),
        ("NOTIFY_SEND_TIMEOUT_SECONDS", "10".into()),
        ("STORAGE_RETRY_SECONDS", "30".into()),
    ]);
    let (pk, rk) = insert_native(&table, "Slow Storage", Utc::now().date_naive()).await;
    let h = spawn_handler(Mode::Host, &env).await;

    for r in [&hook, &slack] {
        r.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let run = tokio::spawn({
        let url = h.url("/LeadNotify");
        async move { reqwest::Client::new().post(url).json(&timer_envelope()).send().await.map(|r| r.status().as_u16()) }
    });
    eventually("both sends are in flight", || hook.requests().len() == 1 && slack.requests().len() == 1).await;
    // Storage goes away, then both receivers answer 200 at once: the first answer's record
    // waits for storage for longer than the other send's deadline.
    proxy.cut();
    for r in [&hook, &slack] {
        r.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    proxy.restore();
    assert_eq!(run.await.unwrap().unwrap(), 200, "{}", h.logs());
    let r = row(&table, &pk, &rk).await;
    assert_eq!((r["NotifyWebhookState"].as_str(), r["NotifySlackState"].as_str()), (Some("delivered"), Some("delivered")), "{r:?}");
    assert_eq!((hook.requests().len(), slack.requests().len()), (1, 1), "each sent once");
}
