//! The daily digest end to end: the real binary invoked as the host invokes LeadNotify, a real
//! Azurite, a real SMTP server (aiosmtpd). Each test gives its digest a daily schedule whose tick
//! has just passed, after its leads were written: the period (tick − 1 day, tick] is then
//! complete and in the past, with no waiting for 08:00. Each test mails its own recipient, so
//! `mails_containing(recipient)` finds that test's digests only.

use crate::common::leads::*;
use crate::common::*;
use chrono::{DateTime, Days, Duration, DurationRound, NaiveTime, Timelike, Utc};
use marketplace_leads::entity::{put_datetime, Entity};
use serde_json::json;

/// A tick at a whole second after every lead written so far: waits until it has passed and
/// returns it with a daily schedule that fires at it.
async fn tick_just_passed() -> (DateTime<Utc>, String) {
    let tick = Utc::now().duration_trunc(Duration::seconds(1)).unwrap() + Duration::seconds(1);
    while Utc::now() <= tick {
        tokio::time::sleep((tick - Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(10)).await;
    }
    (tick, format!("{} {} {} * * *", tick.second(), tick.minute(), tick.hour()))
}

fn digest_env(table: &str, to: &str, schedule: &str, smtp: u16) -> Vec<(&'static str, String)> {
    let mut env = base_env(table);
    env.push(("NOTIFY_DIGEST_TO", to.into()));
    env.push(("NOTIFY_DIGEST_SCHEDULE", schedule.into()));
    // At once after the tick: the tests write every lead of a period before its tick.
    env.push(("NOTIFY_DIGEST_DELAY_SECONDS", "0".into()));
    env.push(("NOTIFY_EMAIL_FROM", "Marketplace leads <leads@example.com>".into()));
    env.push(("SMTP_HOST", "127.0.0.1".into()));
    env.push(("SMTP_PORT", smtp.to_string()));
    env.push(("SMTP_SECURITY", "none".into()));
    env
}

fn recipient() -> String {
    format!("digest-{}@example.com", tag().to_lowercase())
}

struct Mail {
    subject: String,
    message_id: String,
    plain: String,
    html: String,
    header_names: Vec<String>,
    /// The MIME tree as types: the top, its parts, and the parts of a `multipart/related` one.
    top_type: String,
    alternatives: Vec<String>,
    related: Vec<String>,
    /// The inline image: its Content-ID (without brackets), disposition, and decoded body.
    image: Option<(String, String, Vec<u8>)>,
}

fn parse(raw: &str) -> Mail {
    let m = mailparse::parse_mail(raw.as_bytes()).unwrap();
    let header =
        |name: &str| m.headers.iter().find(|h| h.get_key_ref().eq_ignore_ascii_case(name)).map(|h| h.get_value()).unwrap_or_default();
    let (mut plain, mut html, mut image) = (String::new(), String::new(), None);
    for part in m.subparts.iter().flat_map(|p| std::iter::once(p).chain(p.subparts.iter())) {
        let part_header = |name: &str| {
            part.headers.iter().find(|h| h.get_key_ref().eq_ignore_ascii_case(name)).map(|h| h.get_value()).unwrap_or_default()
        };
        match part.ctype.mimetype.as_str() {
            // Mail travels with CRLF line ends.
            "text/plain" => plain = part.get_body().unwrap().replace("\r\n", "\n"),
            "text/html" => html = part.get_body().unwrap(),
            "image/png" => {
                let cid = part_header("content-id").trim().trim_start_matches('<').trim_end_matches('>').to_string();
                image = Some((cid, part_header("content-disposition"), part.get_body_raw().unwrap()));
            }
            _ => {}
        }
    }
    let types = |parts: &[mailparse::ParsedMail]| parts.iter().map(|p| p.ctype.mimetype.clone()).collect::<Vec<_>>();
    Mail {
        subject: header("subject"),
        message_id: header("message-id"),
        plain,
        html,
        header_names: m.headers.iter().map(|h| h.get_key()).collect(),
        top_type: m.ctype.mimetype.clone(),
        alternatives: types(&m.subparts),
        related: m.subparts.iter().find(|p| p.ctype.mimetype == "multipart/related").map(|p| types(&p.subparts)).unwrap_or_default(),
        image,
    }
}

fn digests(to: &str) -> Vec<Mail> {
    mails_containing(to).iter().map(|raw| parse(raw)).collect()
}

async fn digest_row(table: &str, tick: DateTime<Utc>) -> Entity {
    row(&format!("{table}Notify"), "digest", &tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).await
}

#[tokio::test]
async fn a_digest_counts_and_lists_both_routes_and_leaves_test_leads_out() {
    let table = unique_table();
    let intake = spawn_handler(Mode::Host, &base_env(&table)).await;
    let marker = tag();
    ingest(&intake, lead_body(&format!("{marker} Alpha"), "PLT")).await;
    ingest(&intake, lead_body(&format!("{marker} Beta"), "PLT")).await;
    ingest(&intake, lead_body(&format!("{marker} Gamma"), "INS")).await;
    let test_lead = sample("https-lead-test.json").replace("636573304831318844", &format!("6365733{}", Utc::now().timestamp_millis()));
    ingest(&intake, test_lead).await;

    let (tick, schedule) = tick_just_passed().await;
    // Microsoft writes CreatedTime 09:00 on the row's date: the latest such time in the period
    // (tick − 1 day, tick], chosen from the tick itself so a run near 09:00 UTC cannot miss it.
    let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
    let date = if tick.time() >= nine { tick.date_naive() } else { tick.date_naive() - Days::new(1) };
    insert_native(&table, &format!("{marker} Native"), date).await;
    insert_native(&table, &format!("{marker} Old"), tick.date_naive() - Days::new(3)).await;
    // After the tick: the next period's, not this one's.
    ingest(&intake, lead_body(&format!("{marker} Late"), "PLT")).await;

    let to = recipient();
    let h = spawn_handler(Mode::Host, &digest_env(&table, &to, &schedule, smtp_port())).await;
    let reply = timer_ok(&h).await;
    assert!(!h.logs().contains(&to), "no addresses in the logs");

    let mails = digests(&to);
    assert_eq!(mails.len(), 1, "{reply}");
    let m = &mails[0];
    let start = tick - Duration::days(1);
    assert_eq!(
        m.subject,
        format!("Marketplace leads digest: 4 new leads, {} – {} UTC", start.format("%-d %b %H:%M"), tick.format("%-d %b %H:%M"))
    );
    assert!(m.plain.contains("By offer:\n      3  Contoso Analytics\n      1  Northwind SaaS\n"), "{}", m.plain);
    assert!(m.plain.contains("By action:\n      2  Contact me\n      2  Get it now\n"), "{}", m.plain);
    for company in ["Alpha", "Beta", "Gamma", "Native"] {
        let line = m.plain.lines().find(|l| l.contains(&format!("{marker} {company}"))).unwrap_or_else(|| panic!("{company}: {}", m.plain));
        assert!(line.contains("Contoso Analytics") || line.contains("Northwind SaaS"), "{line}");
        assert!(m.html.contains(&format!("{marker} {company}")), "{company}");
    }
    assert!(m.plain.contains(&format!("{marker} Native | Ana Silva | Get it now | Northwind SaaS")), "{}", m.plain);
    for absent in ["Late", "Old", "MSFT_TEST"] {
        assert!(!m.plain.contains(absent) && !m.html.contains(absent), "{absent}: {}\n{}", m.plain, m.html);
    }

    // The chart: text/plain beside multipart/related { the HTML, the PNG its <img> names }.
    assert_eq!(m.top_type, "multipart/alternative");
    assert_eq!(m.alternatives, ["text/plain", "multipart/related"], "the plain alternative is still there");
    assert_eq!(m.related, ["text/html", "image/png"]);
    let (cid, disposition, png) = m.image.as_ref().expect("an inline PNG");
    assert!(cid.ends_with("@marketplace-leads") && disposition.starts_with("inline"), "{cid} {disposition}");
    assert!(m.html.contains(&format!("<img src=\"cid:{cid}\" width=\"600\"")), "{}", m.html);
    assert!(
        m.html.contains("alt=\"Leads per hour, ") && m.html.contains("stacked by action: 4 in total (2 Contact me, 2 Get it now)"),
        "{}",
        m.html
    );
    let (width, height) = marketplace_leads::chart::png::png_size(png).expect("the body decodes to a PNG");
    assert_eq!(width, 1200, "600 px at twice the density");
    assert!(m.html.contains(&format!("height=\"{}\"", height / 2)), "{}", m.html);

    let state = digest_row(&table, tick).await;
    assert_eq!((state["State"].as_str(), state["Attempts"].as_u64(), state["Leads"].as_u64()), (Some("delivered"), Some(1), Some(4)));

    timer_ok(&h).await;
    assert_eq!(digests(&to).len(), 1, "one digest per period");
}

#[tokio::test]
async fn an_empty_period_says_no_new_leads() {
    let table = unique_table();
    let (_, schedule) = tick_just_passed().await;
    let to = recipient();
    let h = spawn_handler(Mode::Host, &digest_env(&table, &to, &schedule, smtp_port())).await;
    timer_ok(&h).await;
    let mails = digests(&to);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].subject.starts_with("Marketplace leads digest: no new leads, "), "{}", mails[0].subject);
    assert!(mails[0].plain.contains("No new leads") && mails[0].html.contains("No new leads"));
    assert_eq!(mails[0].alternatives, ["text/plain", "text/html"], "nothing to draw: no picture");
    assert!(mails[0].image.is_none() && !mails[0].html.contains("<img"));
}

#[tokio::test]
async fn two_processes_at_once_send_one_digest() {
    let table = unique_table();
    let (tick, schedule) = tick_just_passed().await;
    let to = recipient();
    let env = digest_env(&table, &to, &schedule, smtp_port());
    let (a, b) = (spawn_handler(Mode::Host, &env).await, spawn_handler(Mode::Host, &env).await);
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(invoke_timer(&a), invoke_timer(&b));
        assert_eq!((ra.0, rb.0), (200, 200), "{} {}", ra.1, rb.1);
    }
    assert_eq!(digests(&to).len(), 1, "exactly one digest across both processes");
    assert_eq!(digest_row(&table, tick).await["State"], "delivered");
}

#[tokio::test]
async fn a_crash_between_send_and_record_repeats_once_with_the_same_message_id() {
    let table = unique_table();
    let (tick, schedule) = tick_just_passed().await;
    let to = recipient();
    let h = spawn_handler(Mode::Host, &digest_env(&table, &to, &schedule, smtp_port())).await;
    timer_ok(&h).await;
    assert_eq!(digests(&to).len(), 1);

    // Put the row back as a run leaves it when it dies after the send: claimed, lease live,
    // nothing recorded.
    let state = table_client(&format!("{table}Notify"));
    let rk = tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (mut e, _) = state.get("digest", &rk).await.unwrap().unwrap();
    e.retain(|k, _| !k.starts_with("odata.") && k != "Timestamp" && !k.starts_with("DeliveredAt") && k != "Leads" && k != "LastError");
    e.insert("State".into(), json!("pending"));
    e.insert("Attempts".into(), json!(0));
    put_datetime(&mut e, "LeaseUntil", Utc::now() + Duration::minutes(2));
    state.upsert(&e).await.unwrap();

    timer_ok(&h).await;
    assert_eq!(digests(&to).len(), 1, "the claim is live: nobody sends");

    time_travel(&format!("{table}Notify"), "digest", &rk, "LeaseUntil").await; // the claim expires
    timer_ok(&h).await;
    let mails = digests(&to);
    assert_eq!(mails.len(), 2, "one repeat after the lease");
    assert_eq!(mails[0].message_id, mails[1].message_id, "the repeat carries the same Message-ID");
    assert!(!mails[0].message_id.is_empty());

    timer_ok(&h).await;
    assert_eq!(digests(&to).len(), 2, "and no more");
    assert_eq!(digest_row(&table, tick).await["State"], "delivered");
}

#[tokio::test]
async fn a_relay_that_is_down_leaves_the_digest_pending_then_it_goes_once() {
    let table = unique_table();
    let (tick, schedule) = tick_just_passed().await;
    let to = recipient();
    let closed = closed_port();
    let down = spawn_handler(Mode::Host, &digest_env(&table, &to, &schedule, closed.port)).await;
    timer_ok(&down).await;
    let e = digest_row(&table, tick).await;
    assert_eq!((e["State"].as_str(), e["Attempts"].as_u64()), (Some("pending"), Some(1)), "{e:?}");
    assert!(e["LastError"].as_str().unwrap().contains("SMTP"), "{e:?}");
    assert!(e["NextAttempt"].is_string());
    assert!(digests(&to).is_empty());
    timer_ok(&down).await; // not due yet: not even attempted
    assert_eq!(digest_row(&table, tick).await["Attempts"], 1);
    let status = |env: &[(&str, String)]| {
        let out = handler_command(env).args(["leads", "status"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let shown = status(&digest_env(&table, &to, &schedule, closed.port));
    assert!(
        shown.contains("Digest   last period ending") && shown.contains("pending after 1 attempt(s)") && shown.contains("SMTP"),
        "{shown}"
    );

    // The relay setting is fixed (the app restarts with it) and the retry time comes.
    let up = spawn_handler(Mode::Host, &digest_env(&table, &to, &schedule, smtp_port())).await;
    time_travel(&format!("{table}Notify"), "digest", &tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "NextAttempt").await;
    timer_ok(&up).await;
    timer_ok(&up).await;
    assert_eq!(digests(&to).len(), 1);
    let e = digest_row(&table, tick).await;
    assert_eq!((e["State"].as_str(), e["Attempts"].as_u64()), (Some("delivered"), Some(2)), "{e:?}");
    let shown = status(&digest_env(&table, &to, &schedule, smtp_port()));
    assert!(shown.contains("delivered after 2 attempt(s), 0 lead(s), sent "), "{shown}");
}

#[tokio::test]
async fn hostile_lead_text_is_escaped_in_the_digest() {
    let table = unique_table();
    let intake = spawn_handler(Mode::Host, &base_env(&table)).await;
    let marker = tag();
    let body = json!({
        "UserDetails": {"FirstName": "<script>alert(1)</script>", "LastName": "[click](https://evil.example)",
                        "Company": format!("{marker} <b>Bold</b>\r\nE-mail: attacker@evil.example\u{2028}Phone: +1 555\r\nBcc: victim@evil.example")},
        "LeadSource": "SPZA-PLT|x.y", "OfferTitle": "<img src=x onerror=alert(1)>"
    });
    ingest(&intake, body.to_string()).await;
    let (_, schedule) = tick_just_passed().await;
    let to = recipient();
    let h = spawn_handler(Mode::Host, &digest_env(&table, &to, &schedule, smtp_port())).await;
    timer_ok(&h).await;

    let mails = digests(&to);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert!(m.plain.contains(&marker) && m.html.contains(&marker));
    assert!(!m.subject.contains(&marker) && !m.subject.contains('\n'), "no customer text in the subject: {}", m.subject);
    assert!(m.header_names.iter().all(|k| !k.eq_ignore_ascii_case("bcc")), "{:?}", m.header_names);
    for bad in ["<script", "<img src=x", "<b>"] {
        assert!(!m.html.contains(bad), "{bad}: {}", m.html);
    }
    assert_eq!(m.html.matches("<img").count(), 1, "the chart's alone: {}", m.html);
    assert!(m.image.is_some(), "the hostile offer cannot stop the chart");
    assert!(m.html.contains("&#60;script&#62;") && m.html.contains("&#60;b&#62;Bold&#60;/b&#62;"), "{}", m.html);
    for line in m.plain.lines() {
        let l = line.trim_start();
        assert!(!l.starts_with("E-mail:") && !l.starts_with("Phone:") && !l.starts_with("Bcc:"), "a faked line: {line}");
    }
    assert!(!m.plain.contains('\u{2028}') && !m.html.contains('\u{2028}'));
}

#[tokio::test]
async fn after_downtime_one_digest_covers_every_missed_period_and_says_so() {
    let table = unique_table();
    let marker = tag();
    let now = Utc::now();
    // A lead two days back: in a period whose digest was never sent.
    insert_native(&table, &format!("{marker} Missed"), now.date_naive() - Days::new(2)).await;
    let (tick, schedule) = tick_just_passed().await;
    // The last digest sent was three ticks ago; the app was stopped since.
    let last = tick - Duration::days(3);
    let mut e = Entity::new();
    e.insert("PartitionKey".into(), json!("digest"));
    e.insert("RowKey".into(), json!(last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    e.insert("State".into(), json!("delivered"));
    table_client(&format!("{table}Notify")).upsert(&e).await.unwrap();

    let to = recipient();
    let h = spawn_handler(Mode::Host, &digest_env(&table, &to, &schedule, smtp_port())).await;
    timer_ok(&h).await;
    timer_ok(&h).await;
    let mails = digests(&to);
    assert_eq!(mails.len(), 1, "one digest, not one per missed tick");
    let m = &mails[0];
    assert!(m.subject.contains(&format!("{} – ", last.format("%-d %b %H:%M"))), "{}", m.subject);
    assert!(m.plain.contains("not running at 2 earlier digest time(s)"), "{}", m.plain);
    assert!(m.plain.contains(&format!("{marker} Missed")), "{}", m.plain);
}

#[tokio::test]
async fn a_lead_created_before_the_tick_but_written_after_it_is_waited_for() {
    let table = unique_table();
    // The handler is started before the tick, so the first run comes right after it, well
    // inside the delay, however slow the machine is at starting processes.
    let tick = Utc::now().duration_trunc(Duration::seconds(1)).unwrap() + Duration::seconds(3);
    let schedule = format!("{} {} {} * * *", tick.second(), tick.minute(), tick.hour());
    let to = recipient();
    let mut env = digest_env(&table, &to, &schedule, smtp_port());
    env.retain(|(k, _)| *k != "NOTIFY_DIGEST_DELAY_SECONDS");
    env.push(("NOTIFY_DIGEST_DELAY_SECONDS", "8".into()));
    let h = spawn_handler(Mode::Host, &env).await;
    while Utc::now() <= tick {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    timer_ok(&h).await;
    let state = table_client(&format!("{table}Notify"));
    let rk = tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(state.get("digest", &rk).await.unwrap().is_none(), "within the delay the period is not claimed");

    // Created a second before the tick, written only now: a row Microsoft writes late, or a
    // LeadIngest insert that was riding out a storage blip at the tick.
    let company = format!("{} Late Writer", tag());
    let created = tick - Duration::seconds(1);
    let info = json!({"FirstName": "Ana", "LastName": "Silva", "Email": "ana@northwind.example", "Company": company});
    let entity: Entity = serde_json::from_value(json!({
        "PartitionKey": marketplace_leads::lead::partition_key_for(created.date_naive()), "RowKey": uuid::Uuid::new_v4().to_string(),
        "ActionCode": "INS", "CreatedTime": created.to_rfc3339(), "CustomerInfo": info.to_string(),
        "LeadSource": "AzurePortal-Create|northwind.northwind-saas", "OfferDisplayName": "Northwind SaaS"
    }))
    .unwrap();
    table_client(&table).insert(&entity).await.unwrap();

    while Utc::now() < tick + Duration::seconds(8) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    timer_ok(&h).await;
    let ending = format!("– {} UTC", tick.format("%-d %b %H:%M"));
    let mails: Vec<Mail> = digests(&to).into_iter().filter(|m| m.subject.ends_with(&ending)).collect();
    assert_eq!(mails.len(), 1, "the period's one digest");
    assert!(mails[0].subject.contains("1 new lead"), "{}", mails[0].subject);
    assert!(mails[0].plain.contains(&company), "{}", mails[0].plain);
    assert_eq!(digest_row(&table, tick).await["State"], "delivered");
}
