//! The benchmark behind BENCHMARKS.md. Run with `./scripts/bench` (it starts Azurite and passes
//! its port in TEST_AZURITE_TABLE_PORT, as `scripts/test` does; the test-support module is shared). Everything is measured in one run on one machine, each
//! figure next to its baseline, because these machines are noisy.
//!
//! 1. Intake: leads through `handler serve` vs the same inserts done directly with the storage
//!    client, same concurrency, interleaved rounds.
//! 2. Start-up: exec to listening, and idle RSS.
//! 3. Notify latency: intake to webhook delivery, immediate run vs the timer alone, journey on
//!    and off; table transactions per notified lead, counted by an in-process notifier.
//! 4. Poll cost: table transactions, rows read and time per poll with 100 vs 100 000 stored,
//!    notified leads: fast path only, and with the safety-net sweep (first, overlapping, steady).
//! 5. Storage cut: a paced stream through `handler serve` whose storage path (`FaultProxy`) is cut
//!    for 2 s, with the default retry window and with none.
//!
//! `./scripts/bench cost` runs `cost/mod.rs` instead: the units of the cost model.
//! `./scripts/bench personal-data` runs `personal_data/mod.rs`: retention, forget, reindex and
//! export over 100 000 leads (time, peak RSS). `./scripts/bench notify`: intake and notify
//! latency only (with the sweep-in-progress row).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "cost/mod.rs"]
mod cost;
#[path = "personal_data/mod.rs"]
mod personal_data;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use common::{connection_string, free_port, table_client as client, FaultProxy, Receiver};
use futures_util::stream::{self, StreamExt};
use marketplace_leads::entity::{put_datetime, Entity};
use marketplace_leads::lead::{partition_key_for, DedupeKey, Lead};
use marketplace_leads::notify::Notifier;
use marketplace_leads::settings::Settings;
use marketplace_leads::store::{Query, SharedTable};
use serde_json::{json, Value};
const CONCURRENCY: usize = 16;
const ROUND: usize = 1000;
const ROUNDS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // `./scripts/bench cost` (cargo bench … -- cost): the cost model's units only (benches/cost/mod.rs).
    let mode = |name: &str| std::env::args().skip(1).any(|a| a == name);
    if mode("cost") {
        runtime.block_on(cost::run());
    } else if mode("personal-data") {
        runtime.block_on(personal_data::run());
    } else if mode("notify") {
        // This build, then (with LEADBENCH_BASELINE_HANDLER) the baseline's binary, alternating
        // twice, so both see the same machine.
        let mut builds = vec![("this build", env!("CARGO_BIN_EXE_handler").to_string())];
        if let Ok(baseline) = std::env::var("LEADBENCH_BASELINE_HANDLER") {
            builds.push(("baseline", baseline));
        }
        let rounds = if builds.len() > 1 { 2 } else { 1 };
        for round in 1..=rounds {
            for (name, binary) in &builds {
                std::env::set_var("LEADBENCH_HANDLER", binary);
                println!("# {name} (round {round}, load average {})\n", loadavg());
                runtime.block_on(async {
                    intake().await;
                    notify_section().await;
                });
            }
        }
    } else {
        runtime.block_on(run());
    }
}

fn lead_payload(i: usize, run: &str) -> String {
    json!({
        "UserDetails": {"FirstName": "Jana", "LastName": "Novák", "Email": format!("jana{i}@contoso.example"), "Phone": "+420 601 234 567",
                        "Country": "CZ", "Company": format!("Contoso {run} {i}"), "Title": "CTO"},
        "LeadSource": "SPZA-PLT|contoso.contoso-analytics", "ActionCode": "PLT", "OfferTitle": "Contoso Analytics",
        "Description": "Campaigns: spring-launch"
    })
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Load {
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn p(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }
}

async fn measure<F, Fut>(count: usize, f: F) -> Load
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let mut latencies: Vec<Duration> = stream::iter(0..count)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = start.elapsed();
    latencies.sort();
    Load { count, elapsed, latencies }
}

struct Spawned {
    child: Child,
    port: u16,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary the spawned handlers run: this build's, or `LEADBENCH_HANDLER` (a baseline build
/// measured by the same harness in the same run).
fn handler_binary() -> String {
    std::env::var("LEADBENCH_HANDLER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_handler").to_string())
}

/// Starts the handler; returns it and the time from exec to accepting connections.
fn spawn(args: &[&str], env: &[(&str, String)], host_port: Option<u16>) -> (Spawned, Duration) {
    let port = host_port.unwrap_or_else(free_port);
    let mut cmd = Command::new(handler_binary());
    cmd.args(args).env_clear().env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if args.is_empty() {
        cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string());
    } else {
        cmd.args(["--port", &port.to_string()]);
    }
    let start = Instant::now();
    let spawned = Spawned { child: cmd.spawn().expect("spawn handler"), port };
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (spawned, start.elapsed());
        }
        assert!(start.elapsed() < Duration::from_secs(10), "handler did not start");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run() {
    let began = Instant::now();
    println!(
        "# leadbench ({} CPU(s), Azurite {}, concurrency {CONCURRENCY}; load average at start {})\n",
        num_cpus(),
        azurite_version(),
        loadavg()
    );
    intake().await;
    startup();
    notify_section().await;
    cut_section().await;
    poll_cost().await;
    println!("Load average at the end: {}; the whole run took {:.0} s.", loadavg(), began.elapsed().as_secs_f64());
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn azurite_version() -> String {
    std::env::var("LEADBENCH_AZURITE_VERSION").unwrap_or_else(|_| "?".into())
}

async fn intake() {
    let table = format!("Bench{}", uuid::Uuid::new_v4().simple());
    let direct = client(&table);
    direct.create_table().await.expect("create table");
    let env = [("AzureWebJobsStorage", connection_string()), ("LEADS_TABLE", table.clone()), ("LEADS_INGEST_KEY", "bench".into())];
    let (handler, _) = spawn(&["serve"], &env, None);
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().expect("http client");
    let url = format!("http://127.0.0.1:{}/api/LeadIngest?code=bench", handler.port);

    let raw_round = |run: String| {
        let direct = direct.clone();
        async move {
            measure(ROUND, |i| {
                let direct = direct.clone();
                let body = lead_payload(i, &run);
                async move {
                    // Exactly what LeadIngest does before its insert: parse, key, build the row.
                    let (lead, payload) = Lead::from_payload(body.as_bytes()).expect("payload");
                    let now = Utc::now();
                    let entity = lead.to_entity(&DedupeKey::new(&payload, now), now, &body);
                    direct.insert(&entity).await.expect("insert");
                }
            })
            .await
        }
    };
    // The default configuration: a webhook channel, so each stored lead wakes an immediate
    // LeadNotify run in the handler, which notifies while the load goes on (its own table).
    let hook = Receiver::start().await;
    let notify_table = format!("Bench{}", uuid::Uuid::new_v4().simple());
    let notify_env = [
        ("AzureWebJobsStorage", connection_string()),
        ("LEADS_TABLE", notify_table),
        ("LEADS_INGEST_KEY", "bench".into()),
        ("NOTIFY_WEBHOOK_URL", hook.url()),
        ("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
    ];
    let (notifying, _) = spawn(&["serve"], &notify_env, None);
    let notify_url = format!("http://127.0.0.1:{}/api/LeadIngest?code=bench", notifying.port);
    let handler_round = |url: String, run: String| {
        let http = http.clone();
        async move {
            measure(ROUND, |i| {
                let req = http.post(&url).body(lead_payload(i, &run));
                async move {
                    let resp = req.send().await.expect("post");
                    assert_eq!(resp.status(), 201);
                }
            })
            .await
        }
    };
    // Untimed: the notifier's backlog must not run into the next round.
    let drain = |n: usize| {
        let hook = hook.clone();
        async move { wait_for_hooks(&hook, n).await }
    };
    // Warm every path, then interleave rounds so drift hits all alike.
    raw_round("warm-raw".into()).await;
    handler_round(url.clone(), "warm-handler".into()).await;
    handler_round(notify_url.clone(), "warm-notify".into()).await;
    drain(ROUND).await;
    let (mut raw, mut via, mut notified) = (Vec::new(), Vec::new(), Vec::new());
    let mut during = 0;
    for r in 0..ROUNDS {
        raw.push(raw_round(format!("raw{r}")).await);
        via.push(handler_round(url.clone(), format!("handler{r}")).await);
        let before = hook.requests().len();
        notified.push(handler_round(notify_url.clone(), format!("notify{r}")).await);
        during += hook.requests().len() - before;
        drain(ROUND * (r + 2)).await;
    }
    let merge = |loads: Vec<Load>| {
        let count = loads.iter().map(|l| l.count).sum();
        let elapsed = loads.iter().map(|l| l.elapsed).sum();
        let mut latencies: Vec<Duration> = loads.into_iter().flat_map(|l| l.latencies).collect();
        latencies.sort();
        Load { count, elapsed, latencies }
    };
    let (raw, via, notified) = (merge(raw), merge(via), merge(notified));
    let rss_after = rss_kib(handler.child.id());
    let rss_notifying = rss_kib(notifying.child.id());
    println!("## Intake ({} leads each, {ROUNDS} interleaved rounds)\n", raw.count);
    println!("| path | leads/s | p50 | p99 |\n|---|---|---|---|");
    println!("| direct table insert (baseline) | {:.0} | {} | {} |", raw.rate(), ms(raw.p(0.5)), ms(raw.p(0.99)));
    println!("| POST through `handler serve` (no channel) | {:.0} | {} | {} |", via.rate(), ms(via.p(0.5)), ms(via.p(0.99)));
    println!(
        "| POST through `handler serve`, webhook channel, immediate runs | {:.0} | {} | {} |",
        notified.rate(),
        ms(notified.p(0.5)),
        ms(notified.p(0.99))
    );
    println!(
        "\nhandler/direct throughput: **{:.2}×** (target ≥ 0.8); p99 ratio: **{:.2}×** (target ≤ 2); handler RSS after load: {:.1} MiB.",
        via.rate() / raw.rate(),
        via.p(0.99).as_secs_f64() / raw.p(0.99).as_secs_f64(),
        rss_after as f64 / 1024.0
    );
    println!(
        "With the webhook channel: **{:.2}×** and **{:.2}×**; {during} of its {} leads were notified while their round ran; RSS after load {:.1} MiB.\n",
        notified.rate() / raw.rate(),
        notified.p(0.99).as_secs_f64() / raw.p(0.99).as_secs_f64(),
        notified.count,
        rss_notifying as f64 / 1024.0
    );
}

fn startup() {
    let env = [("AzureWebJobsStorage", connection_string()), ("LEADS_TABLE", "BenchStartup".to_string())];
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..20 {
        let (h, t) = spawn(&[], &env, None);
        times.push(t);
        std::thread::sleep(Duration::from_millis(500));
        rss.push(rss_kib(h.child.id()));
    }
    times.sort();
    rss.sort();
    println!("## Start-up (custom-handler mode, 20 starts)\n");
    println!("| measure | median | worst |\n|---|---|---|");
    println!("| exec → listening | {} | {} |", ms(percentile(&times, 0.5)), ms(*times.last().unwrap_or(&Duration::ZERO)));
    println!(
        "| idle RSS (0.5 s after start) | {:.1} MiB | {:.1} MiB |\n",
        rss[rss.len() / 2] as f64 / 1024.0,
        *rss.last().unwrap_or(&0) as f64 / 1024.0
    );
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Notify-latency leads: 40 leads over 10 customers, so the journey lookup has history.
const NOTIFY_LEADS: usize = 40;
/// Freshly written rows a sweep reads while new leads arrive (`LEADBENCH_SWEEP_BACKLOG`).
const SWEEP_BACKLOG: usize = 50_000;
const CUSTOMERS: usize = 10;

/// A lead of customer `i % CUSTOMERS` (repeat customers: the journey finds earlier leads).
fn repeat_customer_payload(i: usize, run: &str) -> String {
    json!({
        "UserDetails": {"FirstName": "Jana", "LastName": "Novák", "Email": format!("customer{}@contoso.example", i % CUSTOMERS),
                        "Phone": "+420 601 234 567", "Country": "CZ", "Company": format!("Contoso {run} {i}"), "Title": "CTO"},
        "LeadSource": "SPZA-PLT|contoso.contoso-analytics", "ActionCode": "PLT", "OfferTitle": "Contoso Analytics",
        "Description": "Campaigns: spring-launch"
    })
    .to_string()
}

fn settings_from(pairs: &[(&str, String)]) -> Settings {
    let env: std::collections::HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Settings::from_map(&env).expect("settings")
}

fn flag(on: bool) -> String {
    if on { "true" } else { "false" }.into()
}

/// Posts one lead; returns its row key and the moment the answer arrived.
async fn post_lead(http: &reqwest::Client, url: &str, body: String) -> (String, Instant) {
    let resp = http.post(url).body(body).send().await.expect("post");
    let answered = Instant::now();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.expect("json");
    (v["rowKey"].as_str().unwrap_or_default().to_string(), answered)
}

async fn wait_for_hooks(hook: &Receiver, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.requests().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn hook_row_keys(hook: &Receiver) -> Vec<(String, Instant)> {
    hook.requests()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            (v["data"]["rowKey"].as_str().unwrap_or_default().to_string(), r.at)
        })
        .collect()
}

/// Intake answered → webhook received, through `handler serve`.
/// `backlog`: rows written just before the leads arrive (a reindex, a backfill, a copy of old
/// Microsoft rows), with the timer ticking every second and sweeping on every tick, so a sweep
/// over them is in progress while the new leads come in.
async fn notify_latency(immediate: bool, journey: bool, backlog: usize) {
    let table = format!("Bench{}", uuid::Uuid::new_v4().simple());
    let hook = Receiver::start().await;
    let schedule = if immediate && backlog == 0 { "0 */1 * * * *" } else { "* * * * * *" };
    if backlog > 0 {
        fill_notified(&client(&table), backlog, 30).await;
    }
    let env = [
        ("AzureWebJobsStorage", connection_string()),
        ("NOTIFY_SWEEP_MINUTES", if backlog > 0 { "0".to_string() } else { "15".to_string() }),
        ("LEADS_TABLE", table),
        ("LEADS_INGEST_KEY", "bench".into()),
        ("NOTIFY_IMMEDIATE", flag(immediate)),
        ("NOTIFY_JOURNEY", flag(journey)),
        ("NOTIFY_SCHEDULE", schedule.into()),
        ("NOTIFY_WEBHOOK_URL", hook.url()),
        ("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
    ];
    let (handler, _) = spawn(&["serve"], &env, None);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/api/LeadIngest?code=bench", handler.port);
    // Warm-up lead: the first run creates the state and index tables and does the first sweep.
    post_lead(&http, &url, repeat_customer_payload(0, "warm")).await;
    wait_for_hooks(&hook, 1).await;
    let warm = hook.requests().len();
    let mut sent = Vec::new();
    for i in 0..NOTIFY_LEADS {
        sent.push(post_lead(&http, &url, repeat_customer_payload(i, "notify")).await);
        // Spread over the second so arrival phase against the tick varies.
        tokio::time::sleep(Duration::from_millis(137)).await;
    }
    wait_for_hooks(&hook, warm + sent.len()).await;
    let got = hook_row_keys(&hook);
    let mut lat: Vec<Duration> =
        sent.iter().filter_map(|(rk, t)| got.iter().find(|(g, _)| g == rk).map(|(_, at)| at.saturating_duration_since(*t))).collect();
    lat.sort();
    // Sanity check that the journey ran: notifications that list earlier leads of the customer.
    let with_history = hook.bodies().iter().filter(|b| b["data"]["history"].as_array().is_some_and(|h| !h.is_empty())).count();
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        match (immediate, backlog) {
            (true, 0) => "immediate run (default schedule `0 */1 * * * *`)".to_string(),
            (true, n) => format!("immediate run, a sweep over {n} freshly written rows in progress (`* * * * * *`, sweep every run)"),
            (false, _) => "timer alone (`* * * * * *`)".to_string(),
        },
        if journey { "on" } else { "off" },
        sent.len(),
        lat.len(),
        with_history,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO))
    );
}

/// Table transactions per notified lead, counted by an in-process notifier (the handler only
/// stores the leads): one lead per run, as immediate runs go when leads arrive apart, and
/// NOTIFY_LEADS leads in one run, as a timer tick after a burst.
async fn notify_transactions(journey: bool) -> String {
    let table = format!("Bench{}", uuid::Uuid::new_v4().simple());
    let hook = Receiver::start().await;
    let env = [
        ("AzureWebJobsStorage", connection_string()),
        ("LEADS_TABLE", table.clone()),
        ("LEADS_INGEST_KEY", "bench".into()),
        ("NOTIFY_IMMEDIATE", "false".into()),
        ("NOTIFY_SCHEDULE", "0 0 0 1 1 *".into()),
    ];
    let (handler, _) = spawn(&["serve"], &env, None);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/api/LeadIngest?code=bench", handler.port);
    let settings = settings_from(&[
        ("AzureWebJobsStorage", connection_string()),
        ("LEADS_TABLE", table.clone()),
        ("NOTIFY_JOURNEY", flag(journey)),
        ("NOTIFY_WEBHOOK_URL", hook.url()),
        ("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
    ]);
    let notifier = Notifier::new(&settings, client(&table)).expect("notifier");
    // Warm-up: the first run writes the cursors (and sweeps); one lead creates the index table.
    post_lead(&http, &url, repeat_customer_payload(0, "warm")).await;
    let first = notifier.run_once().await;
    assert_eq!(first.delivered, 1, "warm-up: {first}");
    let empty = notifier.run_once().await;
    let (mut single_tx, mut single_leads) = (0u64, 0u32);
    for i in 0..2 * CUSTOMERS {
        post_lead(&http, &url, repeat_customer_payload(i, "single")).await;
        let r = notifier.run_once().await;
        assert_eq!((r.delivered, r.errors), (1, 0), "{r}");
        single_tx += r.transactions;
        single_leads += r.delivered;
    }
    for i in 0..NOTIFY_LEADS {
        post_lead(&http, &url, repeat_customer_payload(i, "batch")).await;
    }
    let batch = notifier.run_once().await;
    assert_eq!((batch.delivered as usize, batch.errors), (NOTIFY_LEADS, 0), "{batch}");
    format!(
        "| {} | {} | {:.1} | {:.1} |",
        if journey { "on" } else { "off" },
        empty.transactions,
        single_tx as f64 / single_leads as f64,
        batch.transactions as f64 / batch.delivered as f64
    )
}

/// Fills a table with `count` leads spread over the past `days` days, already notified.
async fn fill_notified(table: &SharedTable, count: usize, days: u64) {
    table.create_table().await.expect("create");
    let today = Utc::now().date_naive();
    stream::iter(0..count)
        .map(|i| {
            let table = table.clone();
            async move {
                let date = today - Days::new(i as u64 % days + 2);
                let mut e = Entity::new();
                e.insert("PartitionKey".into(), partition_key_for(date).into());
                e.insert("RowKey".into(), format!("{i:08}").into());
                e.insert("LeadSource".into(), "SPZA-INS|contoso.contoso-analytics".into());
                e.insert("CustomerInfo".into(), r#"{"Company":"Old Co","Email":"old@contoso.example"}"#.into());
                e.insert("NotifyWebhookState".into(), "delivered".into());
                put_datetime(&mut e, "CreatedTime", date.and_hms_opt(9, 0, 0).unwrap_or_default().and_utc());
                table.insert(&e).await.expect("insert");
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    // Today's few leads, notified too.
    for i in 0..(count / 365).max(1) {
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), partition_key_for(today).into());
        e.insert("RowKey".into(), format!("today{i:05}").into());
        e.insert("NotifyWebhookState".into(), "delivered".into());
        table.insert(&e).await.expect("insert");
    }
}

struct Poll {
    transactions: u64,
    rows: u32,
    sweep_rows: u32,
    swept: bool,
    time: Duration,
}

async fn timed_poll(notifier: &Notifier) -> Poll {
    let t = Instant::now();
    let r = notifier.run_once().await;
    let time = t.elapsed();
    assert_eq!((r.errors, r.claimed), (0, 0), "{r}");
    Poll { transactions: r.transactions, rows: r.rows_read, sweep_rows: r.sweep_rows_read, swept: r.swept, time }
}

/// The median poll of `n` (by time; the counts are the same in every one).
async fn median_poll(notifier: &Notifier, n: usize) -> Poll {
    let mut polls = Vec::new();
    for _ in 0..n {
        polls.push(timed_poll(notifier).await);
    }
    polls.sort_by_key(|p| p.time);
    polls.swap_remove(n / 2)
}

fn poll_row(count: usize, what: &str, p: &Poll) {
    println!(
        "| {count} | {what} | {} | {} | {} + {} | {} |",
        if p.swept { "yes" } else { "no" },
        p.transactions,
        p.rows,
        p.sweep_rows,
        ms(p.time)
    );
}

async fn poll_cost() {
    println!("## Poll cost (stored leads all notified)\n");
    println!("| stored leads | poll | swept | table transactions | rows read (fast path + sweep) | poll time |\n|---|---|---|---|---|---|");
    let mut probes = Vec::new();
    for (count, days) in [(100usize, 100u64), (100_000, 365)] {
        let table_name = format!("Bench{}", uuid::Uuid::new_v4().simple());
        let table = client(&table_name);
        let fill_start = Instant::now();
        fill_notified(&table, count, days).await;
        let fill_time = fill_start.elapsed();
        // Past the last row's Timestamp (millisecond precision) for certain.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let filled_at = Utc::now();
        let base = [
            ("AzureWebJobsStorage", connection_string()),
            ("LEADS_TABLE", table_name.clone()),
            ("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/unused".into()),
            ("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ];
        // Default NOTIFY_SWEEP_MINUTES (15): the first run sweeps (no sweep cursor yet: it starts
        // 24 h back, before the fill), the next ones take the fast path only.
        let notifier = Notifier::new(&settings_from(&base), client(&table_name)).expect("notifier");
        let first = timed_poll(&notifier).await;
        let fast = median_poll(&notifier, 5).await;
        // NOTIFY_SWEEP_MINUTES=0: every run sweeps. Its first sweep starts where the one above
        // left the cursor: 5 minutes (the overlap) before that run, still before the fill.
        let mut every = base.to_vec();
        every.push(("NOTIFY_SWEEP_MINUTES", "0".into()));
        let sweeper = Notifier::new(&settings_from(&every), client(&table_name)).expect("notifier");
        let overlap = timed_poll(&sweeper).await;
        // Steady state: the cursor where a sweep more than 5 minutes after the fill leaves it
        // (past every row of the fill), set here instead of waiting those minutes out.
        let mut cursor = Entity::new();
        cursor.insert("PartitionKey".into(), "cursor".into());
        cursor.insert("RowKey".into(), "sweep".into());
        put_datetime(&mut cursor, "SweepFrom", filled_at);
        put_datetime(&mut cursor, "LastSweep", filled_at);
        table.with_table(&format!("{table_name}Notify")).upsert(&cursor).await.expect("sweep cursor");
        let steady = median_poll(&sweeper, 5).await;
        poll_row(count, "fast path only (median of 5)", &fast);
        poll_row(count, "first sweep, right after the fill (cursor 24 h back)", &first);
        poll_row(count, "next sweep within 5 min (cursor = last sweep − 5 min overlap)", &overlap);
        poll_row(count, "steady sweep, cursor past the fill (median of 5)", &steady);
        // What one query costs the server here, whatever it returns: an empty date partition.
        let empty = partition_key_for(Utc::now().date_naive() + Days::new(30));
        let probe = Instant::now();
        let found = table.query(&Query::partition(&empty), usize::MAX).await.expect("probe");
        probes.push(format!("{} at {count}", ms(probe.elapsed())));
        assert!(found.is_empty());
        eprintln!("poll cost: {count} leads filled in {:.1} s", fill_time.as_secs_f64());
    }
    println!("\nOne query of an empty date partition (Azurite's own cost per query): {} stored leads.\n", probes.join(", "));
}

/// One lead of the storage-cut stream: what the client saw.
struct Answer {
    status: u16,
    row_key: String,
    started: Instant,
    ended: Instant,
}

const CUT_LEADS: usize = 1000;
const CUT_CONCURRENCY: usize = 8;
/// The stream's pace: one lead every 4 ms (250 a second), so 1,000 leads take 4 s.
const CUT_PACE: Duration = Duration::from_millis(4);
const CUT_AFTER: Duration = Duration::from_millis(1000);
const CUT_FOR: Duration = Duration::from_secs(2);

/// A paced stream of leads through `handler serve` whose storage goes through a `FaultProxy`,
/// cut for 2 s in the middle.
async fn storage_cut(retry_seconds: &str) {
    let table = format!("Bench{}", uuid::Uuid::new_v4().simple());
    let proxy = FaultProxy::start(common::azurite_port()).await;
    let env = [
        ("AzureWebJobsStorage", common::azurite_connection_string(proxy.port)),
        ("LEADS_TABLE", table.clone()),
        ("LEADS_INGEST_KEY", "bench".into()),
        ("STORAGE_RETRY_SECONDS", retry_seconds.into()),
    ];
    let (handler, _) = spawn(&["serve"], &env, None);
    let http = reqwest::Client::builder().pool_max_idle_per_host(CUT_CONCURRENCY).build().expect("http client");
    let url = format!("http://127.0.0.1:{}/api/LeadIngest?code=bench", handler.port);
    for i in 0..CUT_CONCURRENCY {
        post_lead(&http, &url, lead_payload(i, "cut-warm")).await;
    }
    let start = Instant::now();
    let window = Arc::new(Mutex::new(None::<(Instant, Instant)>));
    let cutter = {
        let (proxy, window) = (proxy.clone(), window.clone());
        tokio::spawn(async move {
            tokio::time::sleep(CUT_AFTER).await;
            let cut_at = Instant::now();
            proxy.cut();
            tokio::time::sleep(CUT_FOR).await;
            proxy.restore();
            *window.lock().expect("window") = Some((cut_at, Instant::now()));
        })
    };
    let answers: Vec<Answer> = stream::iter(0..CUT_LEADS)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                tokio::time::sleep_until((start + CUT_PACE * i as u32).into()).await;
                let started = Instant::now();
                let (status, row_key) = match http.post(&url).body(lead_payload(i, &format!("cut{retry_seconds}"))).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let v: Value = resp.json().await.unwrap_or(Value::Null);
                        (status, v["rowKey"].as_str().unwrap_or_default().to_string())
                    }
                    Err(_) => (0, String::new()),
                };
                Answer { status, row_key, started, ended: Instant::now() }
            }
        })
        .buffer_unordered(CUT_CONCURRENCY)
        .collect()
        .await;
    let elapsed = start.elapsed();
    cutter.await.expect("cutter");
    let (cut_at, restored_at) = window.lock().expect("window").expect("the cut happened");
    let stored: std::collections::HashSet<String> = client(&table)
        .query(&Query::all().select(&["RowKey"]), usize::MAX)
        .await
        .expect("rows")
        .iter()
        .map(|r| r["RowKey"].as_str().unwrap_or_default().to_string())
        .collect();
    let ok = |a: &&Answer| (200..300).contains(&a.status);
    let refused = answers.iter().filter(|a| !ok(a)).count();
    let missing = answers.iter().filter(ok).filter(|a| !stored.contains(&a.row_key)).count();
    let mut all: Vec<Duration> = answers.iter().map(|a| a.ended - a.started).collect();
    all.sort();
    let mut during: Vec<Duration> =
        answers.iter().filter(|a| a.started < restored_at && a.ended > cut_at).map(|a| a.ended - a.started).collect();
    during.sort();
    println!(
        "| {retry_seconds} s | {} | {refused} | {missing} | {} | {} | {} | {} | {} | {:.1} s |",
        answers.len() - refused,
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        during.len(),
        ms(percentile(&during, 0.99)),
        ms(*during.last().unwrap_or(&Duration::ZERO)),
        elapsed.as_secs_f64()
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

async fn notify_section() {
    println!("## Notify latency (intake answered → webhook received)\n");
    println!("| LeadNotify run by | journey | leads | delivered | with history | p50 | p99 | worst |\n|---|---|---|---|---|---|---|---|");
    for immediate in [true, false] {
        for journey in [true, false] {
            notify_latency(immediate, journey, 0).await;
        }
    }
    notify_latency(true, true, SWEEP_BACKLOG).await;
    println!("\n## Table transactions per notified lead\n");
    println!("| journey | empty run | 1 lead per run | {NOTIFY_LEADS} leads per run |\n|---|---|---|---|");
    for journey in [true, false] {
        println!("{}", notify_transactions(journey).await);
    }
    println!();
}

async fn cut_section() {
    println!(
        "## Storage cut ({CUT_LEADS} leads at {} a second, at most {CUT_CONCURRENCY} in flight; storage cut for {} s after {} s)\n",
        1000 / CUT_PACE.as_millis(),
        CUT_FOR.as_secs(),
        CUT_AFTER.as_secs()
    );
    println!(
        "| STORAGE_RETRY_SECONDS | acknowledged (2xx) | refused (non-2xx) | acknowledged but missing | p50 | p99 | in flight during the cut | their p99 | their worst | stream took |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    storage_cut("10").await;
    storage_cut("0").await;
    println!();
}
