//! `./scripts/bench cost`: the units behind the cost model in BENCHMARKS.md ("Cost model").
//! Everything runs on loopback against the Azurite that `scripts/bench` starts; the handler is
//! the release binary driven as the Functions host drives it (custom-handler mode: the timer
//! envelope on `/LeadNotify`, proxied `POST /api/LeadIngest`), at the default log level.
//!
//! 1. LeadNotify run durations and table transactions: idle, one lead by each route (LeadIngest
//!    HTTP with its immediate run; a row written as Microsoft writes it, then a timer run), one
//!    channel (a signed webhook to a loopback receiver), journey on.
//! 2. Table transactions per intake, idle run, sweep, digest and retention run (in-process
//!    `Notifier`s and `ingest::ingest` on counting clients).
//! 3. Storage bytes per lead: the billed size of each entity a lead leaves behind.
//! 4. Log bytes at the default level: the handler's stderr, and the `Logs` lines it hands the
//!    host (which the host writes to Application Insights).
//! 5. Peak RSS (`VmHWM`) of the handler under an intake burst, a big sweep and a backlog run.
//!
//! Sizes: `LEADBENCH_COST_BURST` (default 2000 leads), `LEADBENCH_COST_SWEEP` (20000 rows),
//! `LEADBENCH_COST_BACKLOG` (1000 rows).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, DurationRound, Timelike, Utc};
use futures_util::stream::{self, StreamExt};
use marketplace_leads::clock::Clock;
use marketplace_leads::entity::{put_datetime, Entity};
use marketplace_leads::lead::partition_key_for;
use marketplace_leads::notify::{Notifier, Registry};
use marketplace_leads::store::{MemoryTable, Query, Table};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::leads::SECRET;
use crate::common::{connection_string, invoke_timer, kib_field, memory_cells, mib, spawn_handler, table_client as client, Mode, Receiver};
use crate::{ms, percentile, repeat_customer_payload, settings_from};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn stderr_len(h: &crate::common::Handler) -> u64 {
    std::fs::metadata(&h.stderr_path).map(|m| m.len()).unwrap_or(0)
}

/// "… 12 table transactions" in a report line.
fn transactions_in(line: &str) -> u64 {
    line.split(" table transactions").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The billed size of one entity, by Microsoft's formula for Table storage: 4 bytes + 2 bytes
/// per character of PartitionKey and RowKey + for each property 8 bytes + 2 per character of
/// its name + its value (string: 4 + 2 per UTF-16 unit; DateTime, Int64, Double 8; Int32 4;
/// Boolean 1; Guid 16; Binary 4 + its bytes). `Timestamp` counts as a DateTime property.
pub fn entity_bytes(e: &Entity) -> u64 {
    let utf16 = |s: &str| s.encode_utf16().count() as u64;
    let mut size = 4;
    for (name, value) in e {
        if name.contains("@odata") || name.starts_with("odata.") {
            continue;
        }
        if name == "PartitionKey" || name == "RowKey" {
            size += 2 * utf16(value.as_str().unwrap_or_default());
            continue;
        }
        let kind = e.get(&format!("{name}@odata.type")).and_then(Value::as_str).unwrap_or_default();
        let value_size = match (kind, value) {
            ("Edm.DateTime" | "Edm.Int64" | "Edm.Double", _) => 8,
            ("Edm.Guid", _) => 16,
            ("Edm.Binary", Value::String(s)) => 4 + s.len() as u64 * 3 / 4,
            (_, Value::String(_)) if name == "Timestamp" => 8,
            (_, Value::String(s)) => 4 + 2 * utf16(s),
            (_, Value::Bool(_)) => 1,
            (_, Value::Number(n)) if n.is_i64() => 4,
            (_, Value::Number(_)) => 8,
            _ => 0,
        };
        size += 8 + 2 * utf16(name) + value_size;
    }
    size
}

/// A minimal SMTP sink on loopback for the digest (accepts every message, keeps nothing).
async fn smtp_sink() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = socket.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if data {
                        if line == "." {
                            data = false;
                            b"250 OK\r\n"
                        } else {
                            continue;
                        }
                    } else {
                        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                        match verb.as_str() {
                            "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        }
                    };
                    if w.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn handler_env(table: &str, hook: &Receiver) -> Vec<(&'static str, String)> {
    // The defaults otherwise: NOTIFY_IMMEDIATE and NOTIFY_JOURNEY on, the minute schedule (the
    // host's timer; here the benchmark is the host), RUST_LOG at its serving default (info).
    vec![
        ("AzureWebJobsStorage", connection_string()),
        ("LEADS_TABLE", table.to_string()),
        ("NOTIFY_WEBHOOK_URL", hook.url()),
        ("NOTIFY_WEBHOOK_SECRET", SECRET.into()),
    ]
}

async fn wait_hooks(hook: &Receiver, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while hook.requests().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(hook.requests().len() >= n, "only {} of {n} webhooks arrived", hook.requests().len());
}

struct Runs {
    times: Vec<Duration>,
    transactions: Vec<u64>,
    host_log_bytes: u64,
}

impl Runs {
    fn row(&self, what: &str, stderr_bytes: f64) -> String {
        let mut t = self.times.clone();
        t.sort();
        let tx = self.transactions.iter().sum::<u64>() as f64 / self.transactions.len().max(1) as f64;
        format!(
            "| {what} | {} | {} | {} | {tx:.1} | {stderr_bytes:.0} | {:.0} |",
            self.times.len(),
            ms(percentile(&t, 0.5)),
            ms(*t.last().unwrap_or(&Duration::ZERO)),
            self.host_log_bytes as f64 / self.times.len().max(1) as f64
        )
    }
}

/// `n` timer invocations as the host sends them; their durations, transactions and `Logs`.
async fn timer_runs(h: &crate::common::Handler, table: &str, n: usize, mut before_each: impl FnMut(usize) -> Option<Entity>) -> Runs {
    let mut runs = Runs { times: Vec::new(), transactions: Vec::new(), host_log_bytes: 0 };
    for i in 0..n {
        if let Some(e) = before_each(i) {
            client(table).insert(&e).await.expect("insert native row");
        }
        let t = Instant::now();
        let (status, reply) = invoke_timer(h).await;
        runs.times.push(t.elapsed());
        assert_eq!(status, 200, "{reply}");
        let logs: Vec<String> = reply["Logs"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(String::from)).collect();
        runs.transactions.push(logs.iter().map(|l| transactions_in(l)).sum());
        runs.host_log_bytes += logs.iter().map(|l| l.len() as u64).sum::<u64>();
    }
    runs
}

/// A row exactly as Microsoft's "Azure Table" destination writes it (as `insert_native`).
fn native_row(i: usize) -> Entity {
    let today = Utc::now().date_naive();
    let info = serde_json::json!({"FirstName": "Ana", "LastName": "Silva", "Email": format!("ana{}@northwind.example", i % 10),
        "Phone": "+351 21 000 0000", "Country": "PT", "Company": format!("Northwind {i}"), "Title": "Diretora de TI"});
    serde_json::from_value(serde_json::json!({
        "PartitionKey": partition_key_for(today), "RowKey": uuid::Uuid::new_v4().to_string(), "ActionCode": "INS",
        "CreatedTime": format!("{}T09:00:00.000Z", today), "CustomerInfo": info.to_string(), "Description": "",
        "LeadSource": "AzurePortal-Create|northwind.northwind-saas", "OfferDisplayName": "Northwind SaaS"
    }))
    .expect("entity")
}

pub async fn run() {
    let began = Instant::now();
    println!(
        "# leadbench cost ({} CPU(s), Azurite {}; load average at start {})\n",
        crate::num_cpus(),
        crate::azurite_version(),
        crate::loadavg()
    );
    let units = durations_logs_and_size().await;
    transactions().await;
    rss().await;
    println!("{units}");
    println!("Load average at the end: {}; the cost run took {:.0} s.", crate::loadavg(), began.elapsed().as_secs_f64());
}

/// Section 1, 3 and 4: one handler in custom-handler mode with the default settings.
async fn durations_logs_and_size() -> String {
    const IDLE: usize = 30;
    const LEADS: usize = 20;
    let table = format!("Cost{}", uuid::Uuid::new_v4().simple());
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &handler_env(&table, &hook)).await;
    let start_log = stderr_len(&h);
    let http = reqwest::Client::new();
    // Warm-up: the first run writes the cursors, creates the state table and sweeps; the first
    // lead creates the journey index table.
    let warm = timer_runs(&h, &table, 1, |_| None).await;
    let resp = http.post(h.url("/api/LeadIngest")).body(repeat_customer_payload(99, "warm")).send().await.expect("post");
    assert_eq!(resp.status(), 201);
    wait_hooks(&hook, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_warm = stderr_len(&h);

    // Idle runs (no sweep due: NOTIFY_SWEEP_MINUTES is 15).
    let idle = timer_runs(&h, &table, IDLE, |_| None).await;
    let idle_stderr = stderr_len(&h) - after_warm;

    // LeadIngest route: one lead at a time; each is notified by its immediate run.
    let before = stderr_len(&h);
    let mut intake = Vec::new();
    for i in 0..LEADS {
        let n = hook.requests().len();
        let t = Instant::now();
        let resp = http.post(h.url("/api/LeadIngest")).body(repeat_customer_payload(i, "cost")).send().await.expect("post");
        intake.push(t.elapsed());
        assert_eq!(resp.status(), 201);
        wait_hooks(&hook, n + 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let intake_stderr = stderr_len(&h) - before;
    let log = h.logs();
    let immediate_tx: Vec<u64> =
        log.lines().filter(|l| l.contains("LeadNotify run") && l.contains("1 delivered")).map(transactions_in).collect();
    intake.sort();

    // Microsoft-written rows: one row, then the timer run that notifies it.
    let before = stderr_len(&h);
    let hooks_before = hook.requests().len();
    let native = timer_runs(&h, &table, LEADS, |i| Some(native_row(i))).await;
    wait_hooks(&hook, hooks_before + LEADS).await;
    let native_stderr = stderr_len(&h) - before;

    // Storage bytes per lead: the rows and index entries both routes left.
    let store = client(&table);
    let rows = store.query(&marketplace_leads::store::Query::all(), usize::MAX).await.expect("rows");
    let ingested: Vec<u64> = rows.iter().filter(|r| r.contains_key("Parsed")).map(entity_bytes).collect();
    let natives: Vec<u64> = rows.iter().filter(|r| !r.contains_key("Parsed")).map(entity_bytes).collect();
    let index =
        store.with_table(&format!("{table}Customers")).query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap_or_default();
    let index_bytes: Vec<u64> = index.iter().map(entity_bytes).collect();
    let state =
        store.with_table(&format!("{table}Notify")).query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap_or_default();
    let state_bytes: u64 = state.iter().map(entity_bytes).sum();
    let avg = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let sample = rows.iter().find(|r| r.contains_key("Parsed")).cloned().unwrap_or_default();
    let columns: Vec<&String> = sample.keys().filter(|k| !k.contains("@odata") && !k.starts_with("odata.")).collect();

    println!("## Cost units: LeadNotify runs, intake, logs (custom-handler mode, default settings, webhook channel, journey on)\n");
    println!("| run | runs | p50 | worst | table transactions per run | handler log bytes per run (stderr, default level) | `Logs` bytes handed to the host per run |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", warm.row("first run (creates cursors, sweeps 24 h back)", (after_warm - start_log) as f64));
    println!("{}", idle.row("idle timer run (no lead, no sweep due)", idle_stderr as f64 / IDLE as f64));
    println!("{}", native.row("timer run notifying one Microsoft-written row", native_stderr as f64 / LEADS as f64));
    println!(
        "| LeadIngest (HTTP, proxied) answering 201; its immediate LeadNotify run notifies the lead | {LEADS} | {} | {} | {:.1} (immediate run; intake itself below) | {:.0} | 0 |",
        ms(percentile(&intake, 0.5)),
        ms(*intake.last().unwrap_or(&Duration::ZERO)),
        immediate_tx.iter().sum::<u64>() as f64 / immediate_tx.len().max(1) as f64,
        intake_stderr as f64 / LEADS as f64,
    );
    println!(
        "\nStart-up logs: {start_log} bytes once per instance start. Entity sizes (Table storage's billed size): a lead stored by \
         LeadIngest and notified {:.0} bytes, a Microsoft-written row after notification {:.0} bytes, a journey \
         index entry {:.0} bytes ({} entries for {} leads), the notifier's state rows {state_bytes} bytes in all (fixed).\n",
        avg(&ingested),
        avg(&natives),
        avg(&index_bytes),
        index.len(),
        rows.len(),
    );
    println!(
        "A notified LeadIngest row's {} columns: {}.\n",
        columns.len(),
        columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
    );
    let pid = h.child.id();
    format!("Handler process after section 1: VmRSS {}, VmHWM {}.\n", mib(kib_field(pid, "VmRSS:")), mib(kib_field(pid, "VmHWM:")))
}

/// Section 2: transactions counted on the notifier's and the intake's own clients.
async fn transactions() {
    println!("## Cost units: table transactions per job (in-process, counted by the storage client)\n");
    println!("| job | table transactions | time |\n|---|---|---|");
    let hook = Receiver::start().await;
    let table = format!("Cost{}", uuid::Uuid::new_v4().simple());
    let store = client(&table);
    store.create_table().await.expect("create");
    // Intake: one lead through LeadIngest's own code path.
    let (mut tx, n) = (0u64, 20);
    for i in 0..n {
        let before = store.transactions();
        marketplace_leads::ingest::ingest(&store, repeat_customer_payload(i, "tx").as_bytes(), None).await.expect("ingest");
        tx += store.transactions() - before;
    }
    println!("| intake: LeadIngest stores one lead (mean of {n}) | {:.1} | |", tx as f64 / n as f64);

    let base = [
        ("AzureWebJobsStorage", connection_string()),
        ("LEADS_TABLE", table.clone()),
        ("NOTIFY_WEBHOOK_URL", hook.url()),
        ("NOTIFY_WEBHOOK_SECRET", SECRET.into()),
    ];
    let notifier = Notifier::new(&settings_from(&base), client(&table)).expect("notifier");
    let first = notifier.run_once().await;
    assert_eq!(first.errors, 0, "{first}");
    let mut idle = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = notifier.run_once().await;
        idle.push((r.transactions, t.elapsed()));
    }
    idle.sort_by_key(|(_, t)| *t);
    println!("| idle run, fast path (webhook channel, journey on) | {} | {} |", idle[2].0, ms(idle[2].1));
    let mut sweeping = base.to_vec();
    sweeping.push(("NOTIFY_SWEEP_MINUTES", "0".into()));
    let sweeper = Notifier::new(&settings_from(&sweeping), client(&table)).expect("notifier");
    sweeper.run_once().await;
    // Past the overlap: the cursor where a sweep more than 5 minutes after the last write leaves it.
    let mut cursor = Entity::new();
    cursor.insert("PartitionKey".into(), "cursor".into());
    cursor.insert("RowKey".into(), "sweep".into());
    put_datetime(&mut cursor, "SweepFrom", Utc::now());
    put_datetime(&mut cursor, "LastSweep", Utc::now());
    store.with_table(&format!("{table}Notify")).upsert(&cursor).await.expect("cursor");
    let t = Instant::now();
    let r = sweeper.run_once().await;
    assert!(r.swept);
    println!(
        "| idle run with the safety-net sweep (every `NOTIFY_SWEEP_MINUTES`, 15 by default), nothing written since | {} | {} |",
        r.transactions,
        ms(t.elapsed())
    );

    // Digest: a daily schedule whose tick has just passed, sent at once, to a loopback SMTP sink.
    let smtp = smtp_sink().await;
    let tick = Utc::now().duration_trunc(chrono::Duration::seconds(1)).expect("trunc") + chrono::Duration::seconds(1);
    while Utc::now() <= tick {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let digest_env = [
        ("AzureWebJobsStorage", connection_string()),
        ("LEADS_TABLE", table.clone()),
        ("NOTIFY_DIGEST_TO", "digest@example.com".into()),
        ("NOTIFY_DIGEST_SCHEDULE", format!("{} {} {} * * *", tick.second(), tick.minute(), tick.hour())),
        ("NOTIFY_DIGEST_DELAY_SECONDS", "0".into()),
        ("NOTIFY_EMAIL_FROM", "Marketplace leads <leads@example.com>".into()),
        ("SMTP_HOST", "127.0.0.1".into()),
        ("SMTP_PORT", smtp.to_string()),
        ("SMTP_SECURITY", "none".into()),
    ];
    let digest = Notifier::new(&settings_from(&digest_env), client(&table)).expect("digest notifier");
    let t = Instant::now();
    let sent = digest.run_once().await;
    let sent_time = t.elapsed();
    assert_eq!((sent.digest.sent, sent.errors), (1, 0), "{sent}");
    let t = Instant::now();
    let after = digest.run_once().await;
    println!("| digest: the run that sends it ({} leads in the period, digest alone) | {} | {} |", n + 1, sent.transactions, ms(sent_time));
    println!("| digest: its share of every other run (nothing due) | {} | {} |", after.transactions, ms(t.elapsed()));

    // Retention: 100 leads written 400 days ago among the table's fresh ones; the daily run deletes
    // them. In process over the in-memory table with a moved clock (it counts a transaction per call
    // as the REST client does): Azurite cannot backdate a row's write time, and a row is kept the
    // full period after its write.
    let clock = Clock::manual(Utc::now() - chrono::Duration::days(400));
    let memory = MemoryTable::new(&table, clock.clone());
    let old = clock.now().date_naive();
    for i in 0..100 {
        let mut e = native_row(i);
        e.insert("PartitionKey".into(), partition_key_for(old).into());
        e.insert("CreatedTime".into(), format!("{old}T09:00:00.000Z").into());
        e.insert("NotifyWebhookState".into(), "delivered".into());
        memory.insert(&e).await.expect("old lead");
    }
    clock.set(Utc::now());
    for row in store.query(&Query::all(), usize::MAX).await.expect("fresh rows") {
        memory.insert(&row).await.expect("fresh row");
    }
    let rows = memory.rows().len();
    let mut kept = base.to_vec();
    kept.push(("LEADS_RETENTION_DAYS", "365".into()));
    let settings = settings_from(&kept);
    let channels = Registry::from_settings(&settings.channels, settings.notify.send_timeout).expect("channels");
    let retention = Notifier::with_parts(&settings, Arc::new(memory), channels, clock);
    let t = Instant::now();
    let due = retention.run_once().await;
    let due_time = t.elapsed();
    assert_eq!((due.retention_deleted, due.errors), (100, 0), "{due}");
    let t = Instant::now();
    let next = retention.run_once().await;
    println!(
        "| retention, the daily run ({rows} rows read, {} deleted with {} index entries; fast path included) | {} | {} |",
        due.retention_deleted,
        due.retention_index_deleted,
        due.transactions,
        ms(due_time)
    );
    println!("| retention: every other run of the day (fast path included) | {} | {} |", next.transactions, ms(t.elapsed()));
    println!();
}

/// Timer runs back to back until the receiver has `target` requests; how many runs it took.
async fn drain(h: &crate::common::Handler, hook: &Receiver, target: usize) -> usize {
    let mut runs = 0;
    while hook.requests().len() < target && runs < 200 {
        let (status, reply) = invoke_timer(h).await;
        assert_eq!(status, 200, "{reply}");
        runs += 1;
        // Sends finish inside the run; let the receiver record the last ones.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hook.requests().len() >= target, "only {} of {target} notified after {runs} runs", hook.requests().len());
    runs
}

/// Section 5: peak RSS of the handler under load.
async fn rss() {
    let burst = env_count("LEADBENCH_COST_BURST", 2000);
    let sweep = env_count("LEADBENCH_COST_SWEEP", 20_000);
    let backlog = env_count("LEADBENCH_COST_BACKLOG", 1000);
    println!("## Peak memory (VmHWM of the handler, custom-handler mode, default settings, webhook channel, journey on)\n");
    println!("| load | took | VmRSS after | VmHWM (peak) |\n|---|---|---|---|");
    let table = format!("Cost{}", uuid::Uuid::new_v4().simple());
    let hook = Receiver::start().await;
    let h = spawn_handler(Mode::Host, &handler_env(&table, &hook)).await;
    let pid = h.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("| idle, 0.5 s after start | | {} |", memory_cells(pid));

    // Intake burst: `burst` leads at concurrency 16, each waking the immediate run.
    let http = reqwest::Client::new();
    let url = h.url("/api/LeadIngest");
    let t = Instant::now();
    stream::iter(0..burst)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let resp = http.post(&url).body(repeat_customer_payload(i, "burst")).send().await.expect("post");
                assert_eq!(resp.status(), 201);
            }
        })
        .buffer_unordered(crate::CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    println!(
        "| intake burst: {burst} leads through LeadIngest at concurrency {}, all answered 201 ({} notified meanwhile by immediate runs) | {:.1} s | {} |",
        crate::CONCURRENCY,
        hook.requests().len(),
        t.elapsed().as_secs_f64(),
        memory_cells(pid)
    );
    // The rest: a run notifies at most 200 leads, so the host's next timer ticks take them
    // (invoked here back to back instead of a minute apart).
    let runs = drain(&h, &hook, burst).await;
    println!(
        "| … then {runs} timer runs back to back until all {burst} are notified | {:.1} s | {} |",
        t.elapsed().as_secs_f64(),
        memory_cells(pid)
    );
    drop(h);

    // Big sweep and backlog (a table of their own): a handler sweeping on every run over `sweep`
    // notified rows written since its cursor, then `backlog` Microsoft-written rows pending in
    // one timer run.
    let table = format!("Cost{}", uuid::Uuid::new_v4().simple());
    let store = client(&table);
    store.create_table().await.expect("create");
    let today = Utc::now().date_naive();
    let t = Instant::now();
    stream::iter(0..sweep)
        .map(|i| {
            let store = store.clone();
            async move {
                let date = today - Days::new(i as u64 % 365 + 2);
                let mut e = native_row(i);
                e.insert("PartitionKey".into(), partition_key_for(date).into());
                e.insert("NotifyWebhookState".into(), "delivered".into());
                store.insert(&e).await.expect("fill");
            }
        })
        .buffer_unordered(crate::CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    eprintln!("cost: {sweep} rows filled in {:.1} s", t.elapsed().as_secs_f64());
    let mut env = handler_env(&table, &hook);
    env.push(("NOTIFY_SWEEP_MINUTES", "0".into()));
    let h = spawn_handler(Mode::Host, &env).await;
    let pid = h.child.id();
    let t = Instant::now();
    let (status, reply) = invoke_timer(&h).await;
    assert_eq!(status, 200, "{reply}");
    println!(
        "| big sweep: one timer run whose sweep reads {} rows (all notified) | {:.1} s | {} |",
        reply["Logs"][0].as_str().and_then(|l| l.split(" and ").nth(1)).and_then(|s| s.split(' ').next()).unwrap_or("?"),
        t.elapsed().as_secs_f64(),
        memory_cells(pid)
    );
    let hooks_before = hook.requests().len();
    let t = Instant::now();
    stream::iter(0..backlog)
        .map(|i| {
            let store = store.clone();
            async move { store.insert(&native_row(i)).await.expect("backlog") }
        })
        .buffer_unordered(crate::CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let filled = t.elapsed();
    let t = Instant::now();
    let runs = drain(&h, &hook, hooks_before + backlog).await;
    let took = t.elapsed();
    println!(
        "| backlog: {backlog} Microsoft-written rows pending, notified by {runs} timer runs back to back (each sweeping; at most 200 leads a run) | {:.1} s (fill {:.1} s) | {} |",
        took.as_secs_f64(),
        filled.as_secs_f64(),
        memory_cells(pid)
    );
    drop(h);
    // Retention's daily run reads the whole table (every column) before it deletes: a handler
    // with LEADS_RETENTION_DAYS=3650 reads all the rows above and deletes none.
    let rows = sweep + backlog;
    let mut env = handler_env(&table, &hook);
    env.push(("LEADS_RETENTION_DAYS", "3650".into()));
    let h = spawn_handler(Mode::Host, &env).await;
    let pid = h.child.id();
    let t = Instant::now();
    let (status, reply) = invoke_timer(&h).await;
    assert_eq!(status, 200, "{reply}");
    println!(
        "| retention's daily run reading the whole table ({rows} rows, none old enough to delete) | {:.1} s | {} |",
        t.elapsed().as_secs_f64(),
        memory_cells(pid)
    );
    println!();
}
