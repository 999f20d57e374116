//! LeadNotify end to end: the real binary invoked as the host invokes a timer function, a real
//! Azurite, a real SMTP server (aiosmtpd) and real HTTP receivers on loopback.

use std::collections::HashSet;

use crate::common::leads::*;
use crate::common::*;
use chrono::{Days, Utc};
use marketplace_leads::entity::Entity;
use serde_json::json;

fn verify_signature(r: &Received) {
    let wh = standardwebhooks::Webhook::new(SECRET).unwrap();
    wh.verify(r.body.as_bytes(), &r.headers).expect("a Standard Webhooks library accepts the signature");
}

fn parse_mail(raw: &str) -> (String, String, String, Vec<(String, String)>) {
    let m = mailparse::parse_mail(raw.as_bytes()).unwrap();
    let subject = m.headers.iter().find(|h| h.get_key_ref().eq_ignore_ascii_case("subject")).unwrap().get_value();
    let headers: Vec<(String, String)> = m.headers.iter().map(|h| (h.get_key(), h.get_value())).collect();
    let mut plain = String::new();
    let mut html = String::new();
    for part in m.subparts.iter().flat_map(|p| std::iter::once(p).chain(p.subparts.iter())) {
        match part.ctype.mimetype.as_str() {
            "text/plain" => plain = part.get_body().unwrap(),
            "text/html" => html = part.get_body().unwrap(),
            _ => {}
        }
    }
    (subject, plain, html, headers)
}

#[tokio::test]
async fn both_routes_notified_once_per_channel_on_every_channel() {
    let table = unique_table();
    let (hook, teams, slack) = (Receiver::start().await, Receiver::start().await, Receiver::start().await);
    let mut env = webhook_env(&table, &hook);
    env.push(("NOTIFY_TEAMS_URL", teams.url()));
    env.push(("NOTIFY_SLACK_URL", slack.url()));
    email_env(&mut env);
    let h = spawn_handler(Mode::Host, &env).await;

    let (ingested, native) = (tag(), tag());
    let (pk, rk) = ingest(&h, lead_body(&ingested, "PLT")).await;
    let (npk, nrk) = insert_native(&table, &native, Utc::now().date_naive()).await;

    let reply = timer_ok(&h).await;
    assert!(reply["Logs"][0].as_str().unwrap().contains("2 claimed"), "{reply}");
    for _ in 0..3 {
        timer_ok(&h).await;
    }

    // Webhook: one signed request per lead, Standard Webhooks shape.
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "one webhook per lead");
    for r in &reqs {
        verify_signature(r);
    }
    let bodies = hook.bodies();
    let by_company = |c: &str| bodies.iter().find(|b| b["data"]["customer"]["company"] == c).cloned().unwrap();
    let w = by_company(&ingested);
    assert_eq!(w["type"], "lead.created");
    assert_eq!(w["data"]["actionCode"], "PLT");
    assert_eq!(w["data"]["partitionKey"], pk.as_str());
    assert_eq!(w["data"]["customer"]["lastName"], "Novák");
    let n = by_company(&native);
    assert_eq!(n["data"]["offerTitle"], "Northwind SaaS");
    assert_eq!(n["data"]["customer"]["title"], "Diretora de TI");

    // Teams: Workflows message with an Adaptive Card attachment, version ≤ 1.4.
    assert_eq!(teams.requests().len(), 2);
    for card in teams.bodies() {
        assert_eq!(card["type"], "message");
        assert_eq!(card["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["attachments"][0]["content"]["version"], "1.4");
    }
    // Slack: text fallback and blocks.
    assert_eq!(slack.requests().len(), 2);
    assert!(slack.bodies().iter().all(|b| b["text"].is_string() && b["blocks"].is_array()));

    // E-mail: one message per lead, plain and HTML, subject naming company, offer and action.
    let mails = mails_containing(&ingested);
    assert_eq!(mails.len(), 1);
    let (subject, plain, html, _) = parse_mail(&mails[0]);
    assert_eq!(subject, format!("New marketplace lead: {ingested} — Contoso Analytics (Contact me)"));
    assert!(plain.contains("Novák") && html.contains("Novák") && html.contains("<table"));
    assert_eq!(mails_containing(&native).len(), 1);

    for (p, r) in [(&pk, &rk), (&npk, &nrk)] {
        let e = row(&table, p, r).await;
        for ch in ["Email", "Webhook", "Teams", "Slack"] {
            assert_eq!(e[&format!("Notify{ch}State")], "delivered", "{ch}: {e:?}");
            assert_eq!(e[&format!("Notify{ch}Attempts")], 1);
        }
    }
    // Native rows keep Microsoft's columns; ours are only added beside them.
    let e = row(&table, &npk, &nrk).await;
    assert_eq!(e["LeadSource"], "AzurePortal-Create|northwind.northwind-saas");
}

#[tokio::test]
async fn failing_channel_retries_then_recovers_without_resending_the_others() {
    let table = unique_table();
    let (hook, slack) = (Receiver::start().await, Receiver::start().await);
    let mut env = webhook_env(&table, &hook);
    env.push(("NOTIFY_SLACK_URL", slack.url()));
    let h = spawn_handler(Mode::Host, &env).await;
    hook.answer_next(&[(503, None)]);
    let (pk, rk) = ingest(&h, lead_body(&tag(), "INS")).await;

    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    assert_eq!(e["NotifyWebhookState"], "pending");
    assert_eq!(e["NotifyWebhookAttempts"], 1);
    assert!(e["NotifyWebhookLastError"].as_str().unwrap().contains("503"));
    assert_eq!(e["NotifySlackState"], "delivered");

    timer_ok(&h).await; // not due yet: nothing sent
    assert_eq!(hook.requests().len(), 1);

    time_travel(&table, &pk, &rk, "NotifyWebhookNextAttempt").await;
    timer_ok(&h).await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].headers["webhook-id"], reqs[1].headers["webhook-id"], "the retry carries the same id");
    verify_signature(&reqs[1]);
    assert_eq!(slack.requests().len(), 1, "a channel that succeeded is never re-sent");
    let e = row(&table, &pk, &rk).await;
    assert_eq!((e["NotifyWebhookState"].as_str(), e["NotifyWebhookAttempts"].as_u64()), (Some("delivered"), Some(2)));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &webhook_env(&table, &hook)).await;
    hook.answer_next(&[(429, Some(3600))]);
    let (pk, rk) = ingest(&h, lead_body(&tag(), "INS")).await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    let next = chrono::DateTime::parse_from_rfc3339(e["NotifyWebhookNextAttempt"].as_str().unwrap()).unwrap();
    assert!(next > Utc::now() + chrono::Duration::seconds(3000), "{next}");
}

#[tokio::test]
async fn permanent_4xx_fails_the_channel_for_good_and_says_so() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &webhook_env(&table, &hook)).await;
    hook.answer_next(&[(400, None)]);
    let (pk, rk) = ingest(&h, lead_body(&tag(), "INS")).await;
    timer_ok(&h).await;
    timer_ok(&h).await;
    assert_eq!(hook.requests().len(), 1);
    let e = row(&table, &pk, &rk).await;
    assert_eq!(e["NotifyWebhookState"], "failed");
    assert!(h.logs().contains("ERROR") && h.logs().contains("failed for good"));
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    env.push(("NOTIFY_MAX_ATTEMPTS", "2".into()));
    let h = spawn_handler(Mode::Host, &env).await;
    hook.answer_next(&[(500, None), (502, None), (503, None)]);
    let (pk, rk) = ingest(&h, lead_body(&tag(), "INS")).await;
    timer_ok(&h).await;
    assert_eq!(row(&table, &pk, &rk).await["NotifyWebhookState"], "pending");
    time_travel(&table, &pk, &rk, "NotifyWebhookNextAttempt").await;
    timer_ok(&h).await;
    let e = row(&table, &pk, &rk).await;
    assert_eq!((e["NotifyWebhookState"].as_str(), e["NotifyWebhookAttempts"].as_u64()), (Some("failed"), Some(2)));
    timer_ok(&h).await;
    assert_eq!(hook.requests().len(), 2);
}

#[tokio::test]
async fn a_run_killed_half_way_repeats_with_the_same_id_and_loses_nothing() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let env = webhook_env(&table, &hook);
    let mut first = spawn_handler(Mode::Host, &env).await;
    let (pk, rk) = ingest(&first, lead_body(&tag(), "PLT")).await;

    hook.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let url = first.url("/LeadNotify");
    let stuck = tokio::spawn(async move { reqwest::Client::new().post(url).json(&timer_envelope()).send().await });
    let h2 = hook.clone();
    eventually("the first run to reach the webhook", move || !h2.requests().is_empty()).await;
    first.kill(); // the host is recycled mid-send
    let _ = stuck.await;
    hook.hang.store(false, std::sync::atomic::Ordering::SeqCst);

    let e = row(&table, &pk, &rk).await;
    assert!(e.get("NotifyWebhookState").is_none(), "nothing recorded: {e:?}");
    let second = spawn_handler(Mode::Host, &env).await;
    timer_ok(&second).await; // the claim is still live: no double send
    assert_eq!(hook.requests().len(), 1);

    time_travel(&table, &pk, &rk, "NotifyLeaseUntil").await; // the claim expires
    timer_ok(&second).await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].headers["webhook-id"], reqs[1].headers["webhook-id"]);
    assert_eq!(row(&table, &pk, &rk).await["NotifyWebhookState"], "delivered");
}

#[tokio::test]
async fn concurrent_runs_never_double_send() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let env = webhook_env(&table, &hook);
    let (a, b) = (spawn_handler(Mode::Host, &env).await, spawn_handler(Mode::Host, &env).await);
    for i in 0..12 {
        ingest(if i % 2 == 0 { &a } else { &b }, lead_body(&format!("Company {i} {}", tag()), "INS")).await;
    }
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(invoke_timer(&a), invoke_timer(&b));
        assert_eq!((ra.0, rb.0), (200, 200));
    }
    let ids: Vec<String> = hook.requests().iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_string()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 12, "every lead exactly once across both runs");
    assert_eq!(unique.len(), 12);
}

#[tokio::test]
async fn hostile_lead_text_is_escaped_everywhere() {
    let table = unique_table();
    let (teams, slack) = (Receiver::start().await, Receiver::start().await);
    let mut env = base_env(&table);
    env.push(("NOTIFY_TEAMS_URL", teams.url()));
    env.push(("NOTIFY_SLACK_URL", slack.url()));
    email_env(&mut env);
    let h = spawn_handler(Mode::Host, &env).await;
    let marker = tag();
    let body = json!({
        "UserDetails": {"FirstName": "<script>alert(1)</script>", "LastName": "[click](https://evil.example)",
                        "Company": format!("{marker}\r\nBcc: victim@evil.example"), "Title": "<!channel> *bold* <https://evil.example|x>",
                        "Email": "a@b.example\r\nCc: other@evil.example"},
        "LeadSource": "SPZA-PLT|x.y", "OfferTitle": "<img src=x onerror=alert(1)>"
    });
    ingest(&h, body.to_string()).await;
    timer_ok(&h).await;

    let mails = mails_containing(&marker);
    assert_eq!(mails.len(), 1);
    let (subject, _, html, headers) = parse_mail(&mails[0]);
    assert!(!subject.contains('\n'));
    for (k, _) in &headers {
        assert!(!k.eq_ignore_ascii_case("bcc") && !k.eq_ignore_ascii_case("cc"), "injected header {k}");
    }
    let to = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("to")).unwrap().1.clone();
    assert!(!to.contains("evil"), "{to}");
    assert!(!html.contains("<script>") && !html.contains("<img") && html.contains("&#60;script&#62;"), "{html}");
    assert!(!html.contains("href"));

    let s = &slack.bodies()[0];
    let text = s.to_string();
    assert!(!s["text"].as_str().unwrap().contains('<'), "{s}");
    for block in s["blocks"].as_array().unwrap() {
        for f in block["fields"].as_array().into_iter().flatten() {
            if f["text"].as_str().unwrap().contains("evil") {
                assert_eq!(f["type"], "plain_text", "customer text is never mrkdwn: {f}");
            }
        }
    }
    assert!(!text.contains("\"type\":\"mrkdwn\",\"text\":\"<"));

    let card = teams.bodies()[0].to_string();
    assert!(card.contains(r"\\[click\\]\\(https://evil.example\\)"), "{card}");
    assert!(!card.contains("[click](https"));
}

#[tokio::test]
async fn test_leads_are_marked_or_suppressed() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    email_env(&mut env);
    let h = spawn_handler(Mode::Host, &env).await;
    let test_lead = sample("https-lead-test.json").replace("636573304831318844", &format!("6365733{}", &Utc::now().timestamp_millis()));
    ingest(&h, test_lead.clone()).await;
    timer_ok(&h).await;
    assert_eq!(hook.bodies()[0]["data"]["isTest"], true);
    let marker = test_lead.split("MSFT_TEST_").nth(1).unwrap()[..19].to_string();
    let mails = mails_containing(&marker);
    assert_eq!(mails.len(), 1);
    assert!(parse_mail(&mails[0]).0.starts_with("[Test lead]"));

    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    env.push(("NOTIFY_TEST_LEADS", "false".into()));
    let h = spawn_handler(Mode::Host, &env).await;
    let (pk, rk) = ingest(&h, sample("https-lead-test.json")).await;
    ingest(&h, lead_body("Real Co", "DNC")).await;
    timer_ok(&h).await;
    timer_ok(&h).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "only the real lead");
    assert_eq!(bodies[0]["data"]["doNotContact"], true);
    assert_eq!(row(&table, &pk, &rk).await["NotifyWebhookState"], "skipped");
}

#[tokio::test]
async fn no_channel_is_a_warning_not_a_crash() {
    let table = unique_table();
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;
    let (pk, rk) = ingest(&h, lead_body("Nobody Told", "INS")).await;
    timer_ok(&h).await;
    assert!(h.logs().contains("no notification channel is configured"));
    assert!(row(&table, &pk, &rk).await.get("NotifyLeaseUntil").is_none());
}

#[tokio::test]
async fn a_lead_left_behind_by_downtime_is_found_through_the_cursor() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &webhook_env(&table, &hook)).await;
    let today = Utc::now().date_naive();
    // The notifier last ran six days ago and left its cursor there; a lead arrived five days ago.
    let mut cursor = Entity::new();
    cursor.insert("PartitionKey".into(), "cursor".into());
    cursor.insert("RowKey".into(), "scan-from".into());
    cursor.insert("ScanFrom".into(), (today - Days::new(6)).to_string().into());
    table_client(&format!("{table}Notify")).upsert(&cursor).await.unwrap();
    let company = tag();
    insert_native(&table, &company, today - Days::new(5)).await;

    timer_ok(&h).await;
    assert_eq!(hook.bodies()[0]["data"]["customer"]["company"], company.as_str());
    let (c, _) = table_client(&format!("{table}Notify")).get("cursor", "scan-from").await.unwrap().unwrap();
    // Yesterday as the run saw it (midnight may have passed since `today` was read).
    let yesterdays = [today, Utc::now().date_naive()].map(|d| (d - Days::new(1)).to_string());
    assert!(
        yesterdays.contains(&c["ScanFrom"].as_str().unwrap().to_string()),
        "the cursor moves up once nothing older is unfinished: {c:?}"
    );
}

#[tokio::test]
async fn serve_mode_notifies_on_its_own_schedule() {
    let table = unique_table();
    let hook = Receiver::start().await;
    let mut env = webhook_env(&table, &hook);
    env.push(("LEADS_INGEST_KEY", "k".into()));
    env.push(("NOTIFY_SCHEDULE", "* * * * * *".into()));
    let h = spawn_handler(Mode::Serve, &env).await;
    let resp = reqwest::Client::new().post(h.url("/api/LeadIngest?code=k")).body(lead_body(&tag(), "INS")).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let hk = hook.clone();
    eventually("the scheduled run to deliver the webhook", move || hk.requests().len() == 1).await;
    verify_signature(&hook.requests()[0]);
}

/// A real SMTP relay (aiosmtpd) that speaks only TLS, with a certificate made by the test:
/// STARTTLS required, or TLS from the first byte (`implicit`). It stores into the shared maildir.
struct TlsRelay {
    _process: Killed,
    port: u16,
}

impl TlsRelay {
    async fn start(cert: &std::path::Path, key: &std::path::Path, implicit: bool) -> TlsRelay {
        let port = free_port();
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
        let (cert_flag, key_flag) = if implicit { ("--smtpscert", "--smtpskey") } else { ("--tlscert", "--tlskey") };
        let child = std::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(cert_flag)
            .arg(cert)
            .arg(key_flag)
            .arg(key)
            .arg(maildir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd from .venv: run ./scripts/test");
        let relay = TlsRelay { _process: Killed(child), port };
        eventually("the TLS relay listens", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
        relay
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_tls_to_a_relay_trusted_through_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(dir.path());
    for (security, implicit) in [("starttls", false), ("tls", true)] {
        let relay = TlsRelay::start(&cert, &key, implicit).await;
        for trusted in [false, true] {
            let table = unique_table();
            let mut env = base_env(&table);
            email_env(&mut env);
            env.retain(|(k, _)| !matches!(*k, "SMTP_PORT" | "SMTP_SECURITY"));
            env.extend([("SMTP_PORT", relay.port.to_string()), ("SMTP_SECURITY", security.to_string())]);
            if trusted {
                env.push(("SSL_CERT_FILE", cert.to_string_lossy().into_owned()));
            }
            let company = format!("Relay {security} {trusted} {}", tag());
            let (pk, rk) = insert_native(&table, &company, Utc::now().date_naive()).await;
            let h = spawn_handler(Mode::Host, &env).await;
            timer_ok(&h).await;
            let r = row(&table, &pk, &rk).await;
            if trusted {
                assert_eq!(r["NotifyEmailState"], "delivered", "{security}: {r:?}");
                assert_eq!(mails_containing(&company).len(), 1, "{security}");
            } else {
                // Not in the system store: refused, so the certificate is really checked.
                assert_eq!(r["NotifyEmailState"], "pending", "{security}: {r:?}");
                let error = r["NotifyEmailLastError"].as_str().unwrap().to_lowercase();
                assert!(error.contains("certificate"), "{security}: {error}");
                assert!(mails_containing(&company).is_empty(), "{security}");
            }
        }
    }
}
