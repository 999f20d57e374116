//! Leads per time bucket, stacked by action: the counting and the geometry that the inbox's
//! chart page and the digest e-mail's picture share. It sits below both (`inbox` → `notify` →
//! `chart` → `lead`, `text`) and imports neither, so `notify` can draw the inbox's chart without
//! importing the inbox.
//!
//! - [`count`]: leads in, [`Counts`] out (per bucket, per series; series most frequent first).
//! - [`buckets`]: a period's time buckets, per hour or per day.
//! - [`layout`]: pure geometry: stacked bars, grid lines and ticks in user units.
//! - [`png`]: the digest's picture: a self-contained SVG (colours as attributes), rasterised
//!   to PNG in process with an embedded font.

pub mod buckets;
pub mod layout;
pub mod png;

use std::collections::HashMap;

/// The series colours, in order; series past the last share it. The inbox's stylesheet
/// (`src/inbox/style.css`, `.series0` …) carries the same colours for its classes.
pub const PALETTE: [&str; 6] = ["#0f6cbd", "#e8a317", "#3a9d23", "#b10e1c", "#7a4bb7", "#888888"];

/// The colour of series `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i.min(PALETTE.len() - 1)]
}

/// What a chart draws: for each bucket (in order), the count of each series.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts<K> {
    pub buckets: Vec<K>,
    /// Series keys (action codes, or labels), most frequent first, then by key.
    pub series: Vec<String>,
    /// `per_bucket[b][s]`: items of series `s` in bucket `b`.
    pub per_bucket: Vec<Vec<usize>>,
}

impl<K> Counts<K> {
    pub fn total(&self) -> usize {
        self.per_bucket.iter().flatten().sum()
    }

    /// Items per series, in the order of [`Counts::series`].
    pub fn series_totals(&self) -> Vec<usize> {
        (0..self.series.len()).map(|s| self.per_bucket.iter().map(|b| b[s]).sum()).collect()
    }

    /// Items per bucket.
    pub fn bucket_totals(&self) -> Vec<usize> {
        self.per_bucket.iter().map(|b| b.iter().sum()).collect()
    }
}

/// Counts `items` (bucket, series) into `buckets`; an item whose bucket is not listed is left
/// out (the caller decides whether to clamp first).
pub fn count<K: Ord + Clone>(buckets: Vec<K>, items: impl IntoIterator<Item = (K, String)>) -> Counts<K> {
    let index: std::collections::BTreeMap<K, usize> = buckets.iter().cloned().enumerate().map(|(i, k)| (k, i)).collect();
    let mut per_key: Vec<HashMap<String, usize>> = vec![HashMap::new(); buckets.len()];
    let mut totals: HashMap<String, usize> = HashMap::new();
    for (bucket, series) in items {
        let Some(&b) = index.get(&bucket) else { continue };
        *per_key[b].entry(series.clone()).or_default() += 1;
        *totals.entry(series).or_default() += 1;
    }
    let mut series: Vec<String> = totals.keys().cloned().collect();
    series.sort_by(|a, b| totals[b].cmp(&totals[a]).then_with(|| a.cmp(b)));
    let per_bucket = per_key.iter().map(|m| series.iter().map(|s| m.get(s).copied().unwrap_or(0)).collect()).collect();
    Counts { buckets, series, per_bucket }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_order_series_by_frequency_and_leave_out_unknown_buckets() {
        let items = [(1, "b"), (1, "a"), (2, "b"), (9, "a"), (2, "c")].map(|(k, s)| (k, s.to_string()));
        let c = count(vec![1, 2, 3], items);
        assert_eq!(c.series, vec!["b", "a", "c"], "most frequent first, then by key");
        assert_eq!(c.per_bucket, vec![vec![1, 1, 0], vec![1, 0, 1], vec![0, 0, 0]]);
        assert_eq!((c.total(), c.series_totals(), c.bucket_totals()), (4, vec![2, 1, 1], vec![2, 2, 0]));
    }
}
