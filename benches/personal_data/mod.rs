//! `./scripts/bench personal-data`: the jobs that read the whole lead table (retention's daily
//! run, `leads forget`, `leads reindex`, `leads export`) at `LEADBENCH_PD_LEADS` leads (default
//! 100 000) of about 2 KB each: wall time and peak RSS (`VmHWM`, sampled every 10 ms until the
//! process exits) of the release `handler`. With `LEADBENCH_BASELINE_HANDLER` set to another
//! build's binary, the same commands run with it against the same table, in the same run.
//!
//! `LEADBENCH_PD_ONLY=<word>` runs only the jobs whose name holds it.
//!
//! Every row is written just before, so retention reads them all and deletes none (a row is
//! kept the full period after its write, and Azurite cannot backdate `Timestamp`): the figure is
//! the cost of the read, which is what grows with the table. `forget` asks for an address no row
//! holds, for the same reason.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use marketplace_leads::entity::{put_datetime, Entity};

use crate::common::{connection_string, table_client as client};

/// Environment variables of a spawned handler.
type Env = Vec<(&'static str, String)>;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Runs `handler args…` to its end: wall time, peak RSS in MiB, whether it succeeded.
fn measured(binary: &str, args: &[&str], env: &[(&str, String)]) -> (Duration, f64, bool) {
    let mut cmd = Command::new(binary);
    cmd.args(args).env_clear().env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let Ok(mut child) = cmd.spawn() else { return (Duration::ZERO, 0.0, false) };
    let mut peak = 0;
    let ok = loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break false,
        }
    };
    (start.elapsed(), peak as f64 / 1024.0, ok)
}

async fn fill(table: &str, count: usize) {
    let store = client(table);
    store.create_table().await.expect("create");
    let description = "Interested in the analytics offer for our regional teams; please call after 10:00. ".repeat(18);
    stream::iter(0..count)
        .map(|i| {
            let (store, description) = (store.clone(), description.clone());
            async move {
                let mut e = Entity::new();
                e.insert("PartitionKey".into(), format!("{}:2F{}:2F2026", 1 + i % 12, 1 + i % 28).into());
                e.insert("RowKey".into(), format!("{i:08}").into());
                e.insert("LeadSource".into(), "SPZA-INS|contoso.contoso-analytics".into());
                e.insert("Email".into(), format!("customer{i}@contoso.example").into());
                e.insert("FirstName".into(), "Jana".into());
                e.insert("Company".into(), "Contoso".into());
                e.insert("Description".into(), description.into());
                e.insert("NotifyWebhookState".into(), "delivered".into());
                put_datetime(&mut e, "CreatedTime", chrono::Utc::now() - chrono::Duration::days(400));
                store.insert(&e).await.expect("insert");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

pub async fn run() {
    let leads = env_count("LEADBENCH_PD_LEADS", 100_000);
    let table = format!("Bench{}", uuid::Uuid::new_v4().simple());
    let began = Instant::now();
    fill(&table, leads).await;
    println!("## Jobs over the whole table ({leads} leads of about 2 KB; filled in {:.0} s)\n", began.elapsed().as_secs_f64());
    println!("| job | build | time | peak RSS | ok |\n|---|---|---|---|---|");
    let export_path = std::env::temp_dir().join(format!("{table}.csv"));
    let export = export_path.display().to_string();
    let env: Env = vec![("AzureWebJobsStorage", connection_string()), ("LEADS_TABLE", table.clone())];
    let mut retention = env.clone();
    retention.push(("LEADS_RETENTION_DAYS", "30".into()));
    let jobs: Vec<(&str, Vec<&str>, &Env)> = vec![
        ("retention's daily run (`handler notify`, LEADS_RETENTION_DAYS=30)", vec!["notify"], &retention),
        ("`leads forget` (an address no row holds)", vec!["leads", "forget", "nobody@nowhere.example", "--yes"], &env),
        ("`leads reindex`", vec!["leads", "reindex"], &env),
        ("`leads export --format csv`", vec!["leads", "export", "--format", "csv", "--output", &export], &env),
    ];
    let mut builds = vec![("this", env!("CARGO_BIN_EXE_handler").to_string())];
    if let Ok(baseline) = std::env::var("LEADBENCH_BASELINE_HANDLER") {
        builds.push(("baseline", baseline));
    }
    let state = client(&format!("{table}Notify"));
    // `LEADBENCH_PD_ONLY=<word>`: only the jobs whose name holds it (e.g. `retention`).
    let only = std::env::var("LEADBENCH_PD_ONLY").unwrap_or_default();
    for (job, args, env) in jobs.iter().filter(|(job, _, _)| job.contains(&only)) {
        for (build, binary) in &builds {
            // Retention runs once a day per table: forget the last run, so each build's is a real one.
            let _ = state.remove("cursor", "retention").await;
            let (time, mib, ok) = measured(binary, args, env);
            println!("| {job} | {build} | {:.1} s | {mib:.0} MiB | {} |", time.as_secs_f64(), if ok { "yes" } else { "no" });
        }
    }
    let _ = std::fs::remove_file(export_path);
    println!();
}
