//! The inbox's chart page: the shared geometry ([`crate::chart::layout`]) as the strings and
//! colour classes the template draws as SVG (no script, no inline style: colours come from
//! classes in the stylesheet), with tooltips, a legend and the table of numbers. Pure code.

use chrono::NaiveDate;

use super::data::ChartData;
use crate::chart::layout::{self, Frame};
use crate::chart::PALETTE;
use crate::lead::action_label;

/// Drawing area, in SVG user units.
const FRAME: Frame = Frame { width: 900.0, height: 260.0, left: 40.0, right: 4.0, top: 10.0, bottom: 24.0 };
/// A date under every this many days, counted back from today.
const TICK_EVERY_DAYS: usize = 14;

/// One coloured segment of a day's bar.
pub struct Segment {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub class: String,
    /// The tooltip: "2026-12-01: 3 × Contact me".
    pub label: String,
}

/// A horizontal grid line with its value.
pub struct GridLine {
    pub y: String,
    pub label: usize,
}

/// A date shown under the axis.
pub struct Tick {
    pub x: String,
    pub label: String,
    /// `middle`, or `end` for the newest day, so its label stays inside the drawing.
    pub anchor: &'static str,
}

pub struct LegendEntry {
    pub class: String,
    pub label: String,
}

/// One row of the table beside the chart.
pub struct TableRow {
    pub day: String,
    pub counts: Vec<usize>,
    pub total: usize,
}

/// Everything the chart page draws.
pub struct Chart {
    pub width: String,
    pub height: String,
    pub plot_left: String,
    pub plot_right: String,
    pub baseline: String,
    pub segments: Vec<Segment>,
    pub grid: Vec<GridLine>,
    pub ticks: Vec<Tick>,
    pub legend: Vec<LegendEntry>,
    /// Column heads of the table: the action labels.
    pub columns: Vec<String>,
    /// Days with at least one lead, newest first (a table of 90 mostly empty rows helps nobody).
    pub rows: Vec<TableRow>,
    pub total: usize,
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

fn label_of(action: &str) -> String {
    if action.is_empty() {
        "No action".into()
    } else {
        crate::text::one_line(action_label(action))
    }
}

/// The stylesheet's colour class of series `i` (`.series0` …, one per [`PALETTE`] colour).
fn class_of(i: usize) -> String {
    format!("series{}", i.min(PALETTE.len() - 1))
}

pub fn layout(data: &ChartData) -> Chart {
    let c = &data.counts;
    let days: &[NaiveDate] = &c.buckets;
    let g = layout::layout(&c.per_bucket, &FRAME, TICK_EVERY_DAYS);
    let segments = g
        .segments
        .iter()
        .map(|s| Segment {
            x: n(s.x),
            y: n(s.y),
            width: n(s.width),
            height: n(s.height),
            class: class_of(s.series),
            label: format!("{}: {} × {}", days[s.bucket], s.count, label_of(&c.series[s.series])),
        })
        .collect();
    let grid = g.grid.iter().map(|l| GridLine { y: n(l.y), label: l.value }).collect();
    let ticks = g.ticks.iter().map(|t| Tick { x: n(t.x), label: days[t.bucket].format("%b %d").to_string(), anchor: t.anchor }).collect();
    let legend = c.series.iter().enumerate().map(|(i, a)| LegendEntry { class: class_of(i), label: label_of(a) }).collect();
    let rows: Vec<TableRow> = days
        .iter()
        .zip(&c.per_bucket)
        .rev()
        .filter(|(_, c)| c.iter().any(|v| *v > 0))
        .map(|(d, c)| TableRow { day: d.to_string(), counts: c.clone(), total: c.iter().sum() })
        .collect();
    Chart {
        width: n(FRAME.width),
        height: n(FRAME.height),
        plot_left: n(g.plot_left),
        plot_right: n(g.plot_right),
        baseline: n(g.baseline),
        segments,
        grid,
        ticks,
        legend,
        columns: c.series.iter().map(|a| label_of(a)).collect(),
        total: rows.iter().map(|r| r.total).sum(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_and_the_table_holds_the_same_numbers() {
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let items = [(d1, "PLT"), (d1, "PLT"), (d1, "INS")].map(|(d, a)| (d, a.to_string()));
        let data = ChartData { counts: crate::chart::count(vec![d1, d2], items), offers: vec![] };
        let chart = layout(&data);
        assert_eq!(chart.segments.len(), 2, "one segment per action with leads");
        assert_eq!(chart.rows.len(), 1, "empty days are left out of the table");
        assert_eq!(chart.rows[0].counts, vec![2, 1]);
        assert_eq!(chart.total, 3);
        assert_eq!(chart.columns, vec!["Contact me", "Get it now"]);
        assert!(chart.segments[0].label.contains("2 × Contact me"));
    }

    #[test]
    fn the_stylesheet_colours_each_series_as_the_digest_does() {
        let css = include_str!("style.css");
        for (i, colour) in PALETTE.iter().enumerate() {
            assert!(css.contains(&format!(".series{i} {{ fill: {colour}; background: {colour}; }}")), "series{i}: {colour}");
        }
    }
}
