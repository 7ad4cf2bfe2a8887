//! Latency summaries taken from HDR histograms, and the per-stage server timings read from
//! `Server-Timing` headers.
//!
//! Every latency is recorded in microseconds in an HDR histogram (3 significant digits), so
//! percentiles stay exact to 0.1% at any rate without keeping every sample.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The longest latency a histogram tracks: one hour, in microseconds. Longer values are clamped.
const MAX_US: u64 = 3_600_000_000;

/// A histogram of microseconds from 1 µs to one hour at 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Summary of one latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples in the distribution.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile: the value tuning compares against the SLA.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
    /// Standard deviation.
    pub stdev: f64,
}

impl Latency {
    /// Summarises a histogram of microseconds.
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Self {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1e3,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            stdev: h.stdev() / 1e3,
        }
    }
}

/// One point of a latency distribution: the latency (ms) below which `quantile` of requests fall.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// In 0..=1.
    pub quantile: f64,
    /// Milliseconds.
    pub ms: f64,
}

/// The quantiles kept for latency-distribution charts: dense in the tail, where SLAs live.
const CHART_QUANTILES: [f64; 14] =
    [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 1.0];

/// The distribution at [`CHART_QUANTILES`], those the sample count can resolve.
pub(crate) fn distribution(h: &Histogram<u64>) -> Vec<Quantile> {
    if h.is_empty() {
        return Vec::new();
    }
    let n = h.len() as f64;
    CHART_QUANTILES
        .iter()
        .filter(|q| **q == 1.0 || (1.0 - **q) * n >= 1.0)
        .map(|q| Quantile { quantile: *q, ms: h.value_at_quantile(*q) as f64 / 1e3 })
        .collect()
}

/// Per-stage server timings collected from `Server-Timing` response headers (microseconds).
#[derive(Debug, Default)]
pub(crate) struct StageHistograms {
    stages: BTreeMap<String, Histogram<u64>>,
}

impl StageHistograms {
    /// Records every `name;dur=ms` entry of one `Server-Timing` header value. Entries without a
    /// duration, and malformed ones, are skipped: the header is advisory.
    pub(crate) fn record_header(&mut self, value: &str) {
        for (name, ms) in parse_server_timing(value) {
            let us = (ms * 1e3).round().max(1.0) as u64;
            self.stages.entry(name).or_insert_with(new_histogram).saturating_record(us);
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (name, h) in &other.stages {
            let mine = self.stages.entry(name.clone()).or_insert_with(new_histogram);
            // Same bounds on both sides, so adding cannot fail; a failure would only drop samples.
            let _ = mine.add(h);
        }
    }

    /// Summaries per stage; empty when the server sent no `Server-Timing` headers.
    pub(crate) fn summaries(&self) -> BTreeMap<String, Latency> {
        self.stages.iter().map(|(k, h)| (k.clone(), Latency::from_histogram(h))).collect()
    }
}

/// Parses `queue;dur=0.120, inference;dur=1.2` into `[("queue", 0.12), ("inference", 1.2)]`.
pub fn parse_server_timing(value: &str) -> Vec<(String, f64)> {
    value
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let name = parts.next().filter(|n| !n.is_empty())?;
            let dur = parts.find_map(|p| p.strip_prefix("dur="))?.trim_matches('"');
            let ms: f64 = dur.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
            Some((name.to_owned(), ms))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_header_is_parsed_leniently() {
        let parsed = parse_server_timing(
            "queue;dur=0.120, inference;desc=\"x\";dur=1.5, bogus, total;dur=x",
        );
        assert_eq!(parsed, vec![("queue".into(), 0.12), ("inference".into(), 1.5)]);
    }

    #[test]
    fn summary_of_known_values() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.5, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        let d = distribution(&h);
        assert_eq!(d.first().unwrap().quantile, 0.0);
        assert_eq!(d.last().unwrap().quantile, 1.0);
        // 1000 samples cannot resolve the 99.99th percentile.
        assert!(d.iter().all(|q| q.quantile <= 0.999 || q.quantile == 1.0));
    }
}
