//! The digest chart's cost (BENCHMARKS.md, "Digest chart"): drawing one PNG, in process, no
//! services. Run with `cargo bench --bench chartbench` (release profile).
//!
//! Times 200 renders of a daily digest's chart (24 hourly bars, 4 actions, 40 leads) and of a
//! monthly one (32 daily bars, 3 actions, 200 leads), after 5 unmeasured ones, one at a time on
//! one thread; and the whole digest message with its chart (40 leads). Peak memory is the
//! process's high-water mark (VmHWM) before the first render and after the last.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use marketplace_leads::chart::buckets::TimeBuckets;
use marketplace_leads::chart::count;
use marketplace_leads::chart::png::{render, Drawing};
use marketplace_leads::notify::digest_message::{DigestLine, DigestMessage, Period};

const RUNS: usize = 200;
const ACTIONS: [&str; 4] = ["Contact me", "Get it now", "Purchase", "Test drive"];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("a time").with_timezone(&Utc)
}

fn high_water_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn time(name: &str, mut f: impl FnMut() -> usize) {
    for _ in 0..5 {
        f();
    }
    let mut times = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        bytes = f();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{name}: p50 {}, p99 {}, max {} ({bytes} bytes of PNG)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[RUNS - 1])
    );
}

fn lines(start: DateTime<Utc>, n: usize, spread_minutes: i64, actions: usize) -> Vec<DigestLine> {
    (0..n)
        .map(|i| {
            let arrived = start + chrono::Duration::minutes((i as i64 * 7919) % spread_minutes + 1);
            DigestLine {
                received: Some(arrived),
                arrived: Some(arrived),
                company: format!("Company {i}"),
                name: "Jana Novák".into(),
                action: ACTIONS[i % actions].into(),
                offer: "Contoso Analytics".into(),
            }
        })
        .collect()
}

fn drawing_of(period: &Period, lines: &[DigestLine]) -> usize {
    let buckets = TimeBuckets::for_period(period.start, period.end);
    let counts =
        count(buckets.starts.clone(), lines.iter().map(|l| (buckets.bucket_of(l.arrived.unwrap_or(period.end)), l.action.clone())));
    let labels: Vec<String> = (0..buckets.starts.len()).map(|i| buckets.label(i)).collect();
    let d = Drawing {
        per_bucket: &counts.per_bucket,
        bucket_labels: &labels,
        tick_every: buckets.tick_every(),
        series: &counts.series,
        title: "bench",
    };
    render(&d).expect("a PNG").bytes.len()
}

fn main() {
    let day = Period { start: at("2026-11-21T08:00:00Z"), end: at("2026-11-22T08:00:00Z"), missed_ticks: 0, capped: false };
    let month = Period { start: at("2026-10-22T08:00:00Z"), ..day.clone() };
    let day_lines = lines(day.start, 40, 24 * 60 - 1, 4);
    let month_lines = lines(month.start, 200, 31 * 24 * 60 - 1, 3);
    let before = high_water_kib();
    time("daily digest chart (24 bars)", || drawing_of(&day, &day_lines));
    time("monthly digest chart (32 bars)", || drawing_of(&month, &month_lines));
    time("whole digest message with its chart (40 leads)", || DigestMessage::new(&day, &day_lines).chart.map(|c| c.png.len()).unwrap_or(0));
    println!("peak memory (VmHWM): {before} KiB before the first render, {} KiB after the last", high_water_kib());
}
