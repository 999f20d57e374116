//! The chart's geometry: leads per day, stacked by action, as plain numbers and rectangles the
//! template draws as SVG (no script, no inline style: colours come from classes in the stylesheet).
//! Pure code.

use chrono::NaiveDate;

use super::data::ChartData;
use crate::lead::action_label;

/// Drawing area, in SVG user units.
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;
/// Colour classes in the stylesheet (`.series0` …): actions past this share the last one.
const SERIES_CLASSES: usize = 6;

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

pub fn layout(data: &ChartData) -> Chart {
    let per_day: Vec<(NaiveDate, Vec<usize>)> = data
        .days
        .iter()
        .map(|d| {
            let counts = data.counts.get(d);
            (*d, data.actions.iter().map(|a| counts.and_then(|c| c.get(a)).copied().unwrap_or(0)).collect())
        })
        .collect();
    let max = per_day.iter().map(|(_, c)| c.iter().sum::<usize>()).max().unwrap_or(0).max(1);
    let plot_width = WIDTH - LEFT - 4.0;
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = plot_width / per_day.len().max(1) as f64;
    let scale = plot_height / max as f64;
    let baseline = HEIGHT - BOTTOM;
    let class_of = |i: usize| format!("series{}", i.min(SERIES_CLASSES - 1));

    let mut segments = Vec::new();
    for (i, (day, counts)) in per_day.iter().enumerate() {
        let mut y = baseline;
        for (a, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let h = *count as f64 * scale;
            y -= h;
            segments.push(Segment {
                x: n(LEFT + i as f64 * slot + slot * 0.1),
                y: n(y),
                width: n(slot * 0.8),
                height: n(h),
                class: class_of(a),
                label: format!("{day}: {count} × {}", label_of(&data.actions[a])),
            });
        }
    }
    // Four grid lines at round values.
    let step = (max as f64 / 4.0).ceil().max(1.0) as usize;
    let grid = (1..=4).map(|k| k * step).filter(|v| *v <= max).map(|v| GridLine { y: n(baseline - v as f64 * scale), label: v }).collect();
    // A date under every fourteenth day, starting from the newest so today is labelled.
    let last = per_day.len().saturating_sub(1);
    let ticks = per_day
        .iter()
        .enumerate()
        .filter(|(i, _)| (last - i).is_multiple_of(14))
        .map(|(i, (d, _))| Tick {
            x: n(LEFT + i as f64 * slot + if i == last { slot } else { slot / 2.0 }),
            label: d.format("%b %d").to_string(),
            anchor: if i == last { "end" } else { "middle" },
        })
        .collect();
    let legend = data.actions.iter().enumerate().map(|(i, a)| LegendEntry { class: class_of(i), label: label_of(a) }).collect();
    let rows: Vec<TableRow> = per_day
        .iter()
        .rev()
        .filter(|(_, c)| c.iter().any(|v| *v > 0))
        .map(|(d, c)| TableRow { day: d.to_string(), counts: c.clone(), total: c.iter().sum() })
        .collect();
    Chart {
        width: n(WIDTH),
        height: n(HEIGHT),
        plot_left: n(LEFT),
        plot_right: n(WIDTH - 4.0),
        baseline: n(baseline),
        segments,
        grid,
        ticks,
        legend,
        columns: data.actions.iter().map(|a| label_of(a)).collect(),
        total: rows.iter().map(|r| r.total).sum(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn bars_stack_and_the_table_holds_the_same_numbers() {
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let mut counts = BTreeMap::new();
        counts.insert(d1, HashMap::from([("PLT".to_string(), 2), ("INS".to_string(), 1)]));
        counts.insert(d2, HashMap::new());
        let data = ChartData { days: vec![d1, d2], actions: vec!["PLT".into(), "INS".into()], counts, offers: vec![] };
        let chart = layout(&data);
        assert_eq!(chart.segments.len(), 2, "one segment per action with leads");
        assert_eq!(chart.rows.len(), 1, "empty days are left out of the table");
        assert_eq!(chart.rows[0].counts, vec![2, 1]);
        assert_eq!(chart.total, 3);
        assert_eq!(chart.columns, vec!["Contact me", "Get it now"]);
        assert!(chart.segments[0].label.contains("2 × Contact me"));
    }
}
