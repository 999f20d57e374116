//! The benchmark behind BENCHMARKS.md. Run with `./scripts/bench` (it starts Azurite and passes
//! its port in LEADBENCH_AZURITE_PORT). Everything is measured in one run on one machine, each
//! figure next to its baseline, because these machines are noisy.
//!
//! 1. Intake: leads through `handler serve` vs the same inserts done directly with the storage
//!    client, same concurrency, interleaved rounds.
//! 2. Start-up: exec to listening, and idle RSS.
//! 3. Notify latency: intake to webhook delivery at a one-second schedule.
//! 4. Poll cost: table transactions per poll with 100 vs 100 000 stored, notified leads.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use futures_util::stream::{self, StreamExt};
use marketplace_leads::lead::{partition_key_for, DedupeKey, Lead};
use marketplace_leads::notify::Notifier;
use marketplace_leads::settings::Settings;
use marketplace_leads::store::{put_datetime, Entity, StorageAccount, TableClient};
use serde_json::{json, Value};

const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONCURRENCY: usize = 16;
const ROUND: usize = 1000;
const ROUNDS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

fn connection_string() -> String {
    let port: u16 = std::env::var("LEADBENCH_AZURITE_PORT").ok().and_then(|p| p.parse().ok()).expect("run ./scripts/bench");
    format!("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
}

fn client(table: &str) -> TableClient {
    TableClient::new(StorageAccount::from_connection_string(&connection_string()).expect("connection string"), table)
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Starts the handler; returns it and the time from exec to accepting connections.
fn spawn(args: &[&str], env: &[(&str, String)], host_port: Option<u16>) -> (Spawned, Duration) {
    let port = host_port.unwrap_or_else(free_port);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
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
    println!("# leadbench ({} CPU(s), Azurite {}, concurrency {CONCURRENCY})\n", num_cpus(), azurite_version());
    intake().await;
    startup();
    notify_latency().await;
    poll_cost().await;
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
    let handler_round = |run: String| {
        let http = http.clone();
        let url = url.clone();
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
    // Warm both paths, then interleave rounds so drift hits both alike.
    raw_round("warm-raw".into()).await;
    handler_round("warm-handler".into()).await;
    let (mut raw, mut via) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        raw.push(raw_round(format!("raw{r}")).await);
        via.push(handler_round(format!("handler{r}")).await);
    }
    let merge = |loads: Vec<Load>| {
        let count = loads.iter().map(|l| l.count).sum();
        let elapsed = loads.iter().map(|l| l.elapsed).sum();
        let mut latencies: Vec<Duration> = loads.into_iter().flat_map(|l| l.latencies).collect();
        latencies.sort();
        Load { count, elapsed, latencies }
    };
    let (raw, via) = (merge(raw), merge(via));
    let rss_after = rss_kib(handler.child.id());
    println!("## Intake ({} leads each, {ROUNDS} interleaved rounds)\n", raw.count);
    println!("| path | leads/s | p50 | p99 |\n|---|---|---|---|");
    println!("| direct table insert (baseline) | {:.0} | {} | {} |", raw.rate(), ms(raw.p(0.5)), ms(raw.p(0.99)));
    println!("| POST through `handler serve` | {:.0} | {} | {} |", via.rate(), ms(via.p(0.5)), ms(via.p(0.99)));
    println!(
        "\nhandler/direct throughput: **{:.2}×** (target ≥ 0.8); p99 ratio: **{:.2}×** (target ≤ 2); handler RSS after load: {:.1} MiB\n",
        via.rate() / raw.rate(),
        via.p(0.99).as_secs_f64() / raw.p(0.99).as_secs_f64(),
        rss_after as f64 / 1024.0
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

async fn notify_latency() {
    let table = format!("Bench{}", uuid::Uuid::new_v4().simple());
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got = arrivals.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let got = got.clone();
        async move {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let rk = v["data"]["rowKey"].as_str().unwrap_or_default().to_string();
            got.lock().expect("lock").push((rk, Instant::now()));
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let env = [
        ("AzureWebJobsStorage", connection_string()),
        ("LEADS_TABLE", table),
        ("LEADS_INGEST_KEY", "bench".into()),
        ("NOTIFY_SCHEDULE", "* * * * * *".into()),
        ("NOTIFY_WEBHOOK_URL", hook_url),
        ("NOTIFY_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
    ];
    let (handler, _) = spawn(&["serve"], &env, None);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/api/LeadIngest?code=bench", handler.port);
    let mut sent = Vec::new();
    for i in 0..40 {
        let resp = http.post(&url).body(lead_payload(i, "notify")).send().await.expect("post");
        let stored_at = Instant::now();
        let v: Value = resp.json().await.expect("json");
        sent.push((v["rowKey"].as_str().unwrap_or_default().to_string(), stored_at));
        // Spread over the second so arrival phase against the tick varies.
        tokio::time::sleep(Duration::from_millis(137)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().expect("lock").len() < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = arrivals.lock().expect("lock").clone();
    let mut lat: Vec<Duration> =
        sent.iter().filter_map(|(rk, t)| got.iter().find(|(g, _)| g == rk).map(|(_, at)| at.saturating_duration_since(*t))).collect();
    lat.sort();
    println!("## Notify latency (intake answered → webhook received, schedule every second)\n");
    println!("| leads | delivered | p50 | p99 | worst |\n|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} |\n",
        sent.len(),
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO))
    );
}

/// Fills a table with `count` leads spread over the past `days` days, already notified.
async fn fill_notified(table: &TableClient, count: usize, days: u64) {
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
                e.insert("CustomerInfo".into(), r#"{"Company":"Old Co"}"#.into());
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

async fn poll_cost() {
    println!("## Poll cost (stored leads all notified; a poll reads yesterday, today and tomorrow)\n");
    println!("| stored leads | spread over | table transactions per poll | rows read | poll time |\n|---|---|---|---|---|");
    for (count, days) in [(100usize, 100u64), (100_000, 365)] {
        let table_name = format!("Bench{}", uuid::Uuid::new_v4().simple());
        let table = client(&table_name);
        fill_notified(&table, count, days).await;
        let env: std::collections::HashMap<String, String> = [
            ("AzureWebJobsStorage", connection_string()),
            ("LEADS_TABLE", table_name.clone()),
            ("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/unused".into()),
            ("NOTIFY_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let settings = Settings::from_map(&env).expect("settings");
        let notifier = Notifier::new(&settings, client(&table_name)).expect("notifier");
        notifier.run_once().await.expect("first poll"); // writes the cursor once
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let t = Instant::now();
            let report = notifier.run_once().await.expect("poll");
            times.push(t.elapsed());
            last = Some(report);
        }
        times.sort();
        let report = last.unwrap_or_default();
        println!("| {count} | {days} days | {} | {} | {} |", report.transactions, report.rows_read, ms(percentile(&times, 0.5)));
    }
    println!();
}
