//! The inbox's benchmark (BENCHMARKS.md, "Lead inbox"). Run with `./scripts/bench-inbox`, which
//! starts Azurite and passes its port in TEST_AZURITE_TABLE_PORT, as `scripts/test` does.
//!
//! Fills a table with 100 000 leads over the past year (about 270 a day), starts the real
//! `handler serve` on loopback, and times the list page (default filter: the last 30 days) and
//! the chart (90 days) over HTTP, one request at a time: the first request, then p50 and p99 of
//! the next ones (closed days held by then), and the server's peak memory. Table transactions
//! per page, and the reads alone with and without held days (the baseline), are measured by
//! running the same page reads in process over a counting Table client.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use common::{connection_string, free_port, kib_field, mib, table_client};
use futures_util::stream::{self, StreamExt};
use marketplace_leads::clock::Clock;
use marketplace_leads::entity::{put_datetime, Entity};
use marketplace_leads::inbox::data::{chart_data, day_reader, list_page, ListFilter};
use marketplace_leads::lead::partition_key_for;
use marketplace_leads::store::SharedTable;

const LEADS: usize = 100_000;
const DAYS: u64 = 365;
const REQUESTS: usize = 60;
const FILL_CONCURRENCY: usize = 16;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn fill(table: &SharedTable) {
    table.create_table().await.expect("create");
    let today = Utc::now().date_naive();
    let actions = ["INS", "PLT", "PLT", "Create", "StartTestDrive"];
    let offers = ["Contoso Analytics", "Contoso Backup", "Northwind SaaS"];
    stream::iter(0..LEADS)
        .map(|i| {
            let table = table.clone();
            async move {
                let date = today - Days::new(i as u64 % DAYS);
                let mut e = Entity::new();
                e.insert("PartitionKey".into(), partition_key_for(date).into());
                e.insert("RowKey".into(), format!("{i:08}").into());
                e.insert("ActionCode".into(), actions[i % actions.len()].into());
                e.insert("OfferDisplayName".into(), offers[i % offers.len()].into());
                e.insert("LeadSource".into(), format!("SPZA-{}|contoso.offer{}", actions[i % actions.len()], i % offers.len()).into());
                let info = format!(
                    r#"{{"FirstName":"Jana","LastName":"Novak","Email":"c{}@contoso.example","Company":"Company {}"}}"#,
                    i % 20_000,
                    i % 5_000
                );
                e.insert("CustomerInfo".into(), info.into());
                e.insert("NotifyWebhookState".into(), "delivered".into());
                put_datetime(&mut e, "CreatedTime", date.and_hms_opt(9, 0, 0).unwrap_or_default().and_utc());
                table.insert(&e).await.expect("insert");
            }
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn timed(http: &reqwest::Client, url: &str) -> (Duration, Duration) {
    // One warm-up request, then REQUESTS one after another.
    assert_eq!(http.get(url).send().await.expect("request").status(), 200);
    let mut times = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let resp = http.get(url).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.expect("body");
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

async fn once(http: &reqwest::Client, url: &str) -> Duration {
    let t = Instant::now();
    let resp = http.get(url).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.expect("body");
    t.elapsed()
}

async fn elapsed<T>(work: impl std::future::Future<Output = T>) -> Duration {
    let t = Instant::now();
    work.await;
    t.elapsed()
}

async fn run() {
    let table_name = format!("Inbox{}", uuid::Uuid::new_v4().simple());
    let table = table_client(&table_name);
    let began = Instant::now();
    fill(&table).await;
    let filled = began.elapsed();

    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_handler"))
        .args(["serve", "--port", &port.to_string()])
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("AzureWebJobsStorage", connection_string())
        .env("LEADS_TABLE", &table_name)
        .env("LEADS_INGEST_KEY", "bench")
        // No channel and no timer work: the pages alone are measured.
        .env("NOTIFY_SCHEDULE", "0 0 0 1 1 *")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn handler");
    let _handler = Killed(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "handler did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let http = reqwest::Client::new();
    let list_url = format!("http://127.0.0.1:{port}/api/Inbox");
    let chart_url = format!("http://127.0.0.1:{port}/api/Inbox/chart");
    // The very first pages, with nothing held yet.
    let first_list = once(&http, &list_url).await;
    let first_chart = once(&http, &chart_url).await;
    let list = timed(&http, &list_url).await;
    let chart = timed(&http, &chart_url).await;
    let peak_rss = mib(kib_field(_handler.0.id(), "VmHWM:"));

    // Transactions per page and the reads alone, in process over a counting client: "cold" with a
    // new reader for every page (every day read: what each page cost before closed days were
    // held, the baseline of this run), "warm" with one reader kept between pages, as serve does.
    let today = Utc::now().date_naive();
    let counted = table_client(&table_name);
    let filter = ListFilter::default_for(today);
    let fresh = || day_reader(&counted, Clock::System);
    let kept = fresh();
    let count = |reads: u64| counted.transactions() - reads;
    let before = counted.transactions();
    let page = list_page(&fresh(), &filter).await.expect("list");
    let list_cold_tx = count(before);
    let before = counted.transactions();
    chart_data(&fresh(), today, None).await.expect("chart");
    let chart_cold_tx = count(before);
    list_page(&kept, &filter).await.expect("list");
    chart_data(&kept, today, None).await.expect("chart");
    let before = counted.transactions();
    list_page(&kept, &filter).await.expect("list");
    let list_warm_tx = count(before);
    let before = counted.transactions();
    chart_data(&kept, today, None).await.expect("chart");
    let chart_warm_tx = count(before);
    let (mut list_cold, mut chart_cold, mut list_warm, mut chart_warm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        list_cold.push(elapsed(list_page(&fresh(), &filter)).await);
        chart_cold.push(elapsed(chart_data(&fresh(), today, None)).await);
        list_warm.push(elapsed(list_page(&kept, &filter)).await);
        chart_warm.push(elapsed(chart_data(&kept, today, None)).await);
    }
    for v in [&mut list_cold, &mut chart_cold, &mut list_warm, &mut chart_warm] {
        v.sort();
    }
    let p50 = |v: &[Duration]| ms(percentile(v, 0.5));

    println!("## Lead inbox ({LEADS} leads over {DAYS} days, `handler serve` on loopback, {REQUESTS} sequential requests each)\n");
    println!("| page | first request after start | p50 | p99 | rows in range |\n|---|---|---|---|---|");
    println!("| list (default: last 30 days, first page of 50) | {} | {} | {} | {} |", ms(first_list), ms(list.0), ms(list.1), page.total);
    println!(
        "| chart (90 days, all offers) | {} | {} | {} | about {} |",
        ms(first_chart),
        ms(chart.0),
        ms(chart.1),
        LEADS * 90 / DAYS as usize
    );
    println!("\nPeak resident memory of `handler serve` after these requests: {peak_rss}.\n");
    println!("The same page reads in process (p50 of 10), and table transactions per page:\n");
    println!("| page | every day read (baseline: before closed days were held) | closed days held | transactions, every day read | transactions, closed days held |\n|---|---|---|---|---|");
    println!("| list | {} | {} | {list_cold_tx} | {list_warm_tx} |", p50(&list_cold), p50(&list_warm));
    println!("| chart | {} | {} | {chart_cold_tx} | {chart_warm_tx} |", p50(&chart_cold), p50(&chart_warm));
    println!("\nFilling the table took {:.0} s.", filled.as_secs_f64());
}
