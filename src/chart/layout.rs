//! The chart's geometry: one stacked bar per bucket, grid lines at round values, ticks under
//! the axis, as plain numbers in user units. Pure code; what to write beside the shapes (classes
//! and tooltips for the inbox, attributes and a legend for the digest) is the caller's.

/// The drawing and the margins around the plot, in user units.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    /// Room left of the plot for the grid values.
    pub left: f64,
    pub right: f64,
    pub top: f64,
    /// Room under the baseline (tick labels, and anything the caller puts below them).
    pub bottom: f64,
}

/// One series' part of one bucket's bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub bucket: usize,
    pub series: usize,
    pub count: usize,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// A horizontal grid line and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct GridLine {
    pub y: f64,
    pub value: usize,
}

/// A labelled bucket under the axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub bucket: usize,
    pub x: f64,
    /// `middle`, or `end` for the newest bucket, so its label stays inside the drawing.
    pub anchor: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    pub plot_left: f64,
    pub plot_right: f64,
    pub baseline: f64,
    /// The tallest bar's count (at least 1).
    pub max: usize,
    pub segments: Vec<Segment>,
    pub grid: Vec<GridLine>,
    pub ticks: Vec<Tick>,
}

/// Lays out `per_bucket[b][s]` as stacked bars, series 0 at the bottom; a tick under every
/// `tick_every`-th bucket counted back from the newest, so the newest is always labelled.
pub fn layout(per_bucket: &[Vec<usize>], frame: &Frame, tick_every: usize) -> Geometry {
    let max = per_bucket.iter().map(|c| c.iter().sum::<usize>()).max().unwrap_or(0).max(1);
    let plot_width = frame.width - frame.left - frame.right;
    let plot_height = frame.height - frame.bottom - frame.top;
    let slot = plot_width / per_bucket.len().max(1) as f64;
    let scale = plot_height / max as f64;
    let baseline = frame.height - frame.bottom;

    let mut segments = Vec::new();
    for (i, counts) in per_bucket.iter().enumerate() {
        let mut y = baseline;
        for (s, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let h = *count as f64 * scale;
            y -= h;
            segments.push(Segment {
                bucket: i,
                series: s,
                count: *count,
                x: frame.left + i as f64 * slot + slot * 0.1,
                y,
                width: slot * 0.8,
                height: h,
            });
        }
    }
    // Four grid lines at round values.
    let step = (max as f64 / 4.0).ceil().max(1.0) as usize;
    let grid = (1..=4).map(|k| k * step).filter(|v| *v <= max).map(|v| GridLine { y: baseline - v as f64 * scale, value: v }).collect();
    let last = per_bucket.len().saturating_sub(1);
    let every = tick_every.max(1);
    let ticks = (0..per_bucket.len())
        .filter(|i| (last - i).is_multiple_of(every))
        .map(|i| Tick {
            bucket: i,
            x: frame.left + i as f64 * slot + if i == last { slot } else { slot / 2.0 },
            anchor: if i == last { "end" } else { "middle" },
        })
        .collect();
    Geometry { plot_left: frame.left, plot_right: frame.width - frame.right, baseline, max, segments, grid, ticks }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Frame = Frame { width: 600.0, height: 200.0, left: 30.0, right: 10.0, top: 10.0, bottom: 30.0 };

    #[test]
    fn bars_stack_from_the_baseline_and_the_tallest_fills_the_plot() {
        let g = layout(&[vec![2, 1], vec![0, 0], vec![0, 4]], &FRAME, 1);
        assert_eq!(g.max, 4);
        assert_eq!(g.segments.len(), 3, "no segment for a zero count");
        let (a, b, c) = (&g.segments[0], &g.segments[1], &g.segments[2]);
        assert_eq!((a.bucket, a.series, b.bucket, b.series, c.bucket, c.series), (0, 0, 0, 1, 2, 1));
        assert!((a.y + a.height - g.baseline).abs() < 1e-9, "series 0 stands on the baseline");
        assert!((b.y + b.height - a.y).abs() < 1e-9, "series 1 stands on series 0");
        assert!((c.y - FRAME.top).abs() < 1e-9, "the tallest bar reaches the top of the plot");
        assert!((a.height + b.height) / c.height - 3.0 / 4.0 < 1e-9);
        assert_eq!(g.grid.iter().map(|l| l.value).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn ticks_count_back_from_the_newest_bucket() {
        let g = layout(&vec![vec![0]; 10], &FRAME, 4);
        assert_eq!(g.ticks.iter().map(|t| t.bucket).collect::<Vec<_>>(), vec![1, 5, 9]);
        assert_eq!(g.ticks.last().map(|t| (t.anchor, t.x)), Some(("end", FRAME.width - FRAME.right)));
    }

    #[test]
    fn nothing_to_draw_still_lays_out() {
        let g = layout(&[], &FRAME, 1);
        assert!(g.segments.is_empty() && g.ticks.is_empty());
        assert_eq!(g.max, 1);
    }
}
