//! Throughput and latency over time, in windows of equal length, so a long run shows how it
//! changed: a soak's last minute against its first, a server that slows as it warms or leaks.
//!
//! Requests count in the window of their send time (the scheduled time in the open loop). At most
//! [`MAX_WINDOWS`] windows are kept: when a run outgrows them, neighbours merge and the window
//! doubles, so memory stays bounded however long the run is.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Windows kept before neighbours merge.
const MAX_WINDOWS: usize = 120;

/// One window of a run, as written to `result.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Start of the window, from the start of the measured phase (s).
    pub start_s: f64,
    /// Its length (s); the last window ends with the run.
    pub duration_s: f64,
    /// Requests sent in the window.
    pub requests: u64,
    /// Those that failed (a non-2xx status or no answer).
    pub failed: u64,
    /// Requests sent in the window per second.
    pub throughput_rps: f64,
    /// Median latency of the window's answered requests (ms).
    pub p50_ms: f64,
    /// 99th percentile latency of the window's answered requests (ms).
    pub p99_ms: f64,
}

/// Counts of one window.
#[derive(Debug)]
struct Counts {
    /// Microseconds at 2 significant digits (1% is plenty for a trend), growing to the largest
    /// value seen.
    latency: Histogram<u64>,
    requests: u64,
    failed: u64,
}

impl Counts {
    fn new() -> Self {
        Self {
            latency: Histogram::new(2).expect("2 significant digits are valid"),
            requests: 0,
            failed: 0,
        }
    }

    fn add(&mut self, other: &Self) {
        // An auto-resizing histogram takes any value the other one holds.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.failed += other.failed;
    }
}

/// The windows of one run, filled as answers come in.
#[derive(Debug)]
pub(crate) struct Timeline {
    window: Duration,
    windows: Vec<Counts>,
}

impl Timeline {
    /// A timeline of `window`-long windows (at least 1 ms).
    pub(crate) fn new(window: Duration) -> Self {
        Self { window: window.max(Duration::from_millis(1)), windows: Vec::new() }
    }

    /// The window for a run of `length`: 60 windows, none shorter than a second.
    pub(crate) fn window_for(length: Option<Duration>) -> Duration {
        length.map_or(Duration::from_secs(1), |d| (d / 60).max(Duration::from_secs(1)))
    }

    /// Records a request sent `at` after the start; `latency_us` is `None` when it got no answer.
    pub(crate) fn record(&mut self, at: Duration, latency_us: Option<u64>, ok: bool) {
        let mut index = self.index(at);
        while index >= MAX_WINDOWS {
            self.coarsen();
            index = self.index(at);
        }
        if self.windows.len() <= index {
            self.windows.resize_with(index + 1, Counts::new);
        }
        let counts = &mut self.windows[index];
        counts.requests += 1;
        if !ok {
            counts.failed += 1;
        }
        if let Some(us) = latency_us {
            // `record` grows the histogram to fit (`saturating_record` would clamp instead).
            let us = us.max(1);
            if counts.latency.record(us).is_err() {
                counts.latency.saturating_record(us);
            }
        }
    }

    fn index(&self, at: Duration) -> usize {
        usize::try_from(at.as_nanos() / self.window.as_nanos()).unwrap_or(usize::MAX)
    }

    /// Doubles the window, merging neighbours.
    fn coarsen(&mut self) {
        let old = std::mem::take(&mut self.windows);
        let mut pairs = old.into_iter();
        while let Some(mut first) = pairs.next() {
            if let Some(second) = pairs.next() {
                first.add(&second);
            }
            self.windows.push(first);
        }
        self.window = self.window.saturating_mul(2);
    }

    /// The windows, the last one cut at `end`: when the last request was due to be sent.
    pub(crate) fn windows(&self, end: Duration) -> Vec<Window> {
        let window = self.window.as_secs_f64();
        let end = end.as_secs_f64().max(window * self.windows.len().saturating_sub(1) as f64);
        self.windows
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let start_s = window * i as f64;
                let duration_s = window.min(end - start_s).max(1e-3);
                let quantile = |q: f64| {
                    if c.latency.is_empty() {
                        0.0
                    } else {
                        c.latency.value_at_quantile(q) as f64 / 1e3
                    }
                };
                Window {
                    start_s,
                    duration_s,
                    requests: c.requests,
                    failed: c.failed,
                    throughput_rps: c.requests as f64 / duration_s,
                    p50_ms: quantile(0.5),
                    p99_ms: quantile(0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_land_in_the_window_of_their_send_time() {
        let mut t = Timeline::new(Duration::from_secs(1));
        for i in 0..100 {
            t.record(ms(i * 10), Some(1_000), true); // 1 ms during the first second
        }
        for i in 0..50 {
            t.record(ms(1_000 + i * 20), Some(10_000), i % 10 != 0); // 10 ms, 5 failed
        }
        let w = t.windows(ms(2_000));
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].requests, w[0].failed), (100, 0));
        assert_eq!((w[1].requests, w[1].failed), (50, 5));
        assert!((w[0].throughput_rps - 100.0).abs() < 1e-9);
        assert!((w[0].p99_ms - 1.0).abs() < 0.02, "{}", w[0].p99_ms);
        assert!((w[1].p50_ms - 10.0).abs() < 0.2, "{}", w[1].p50_ms);
    }

    #[test]
    fn a_long_run_merges_neighbours_and_keeps_every_request() {
        let mut t = Timeline::new(ms(10));
        for i in 0..10_000u64 {
            t.record(ms(i), Some(i + 1), true);
        }
        let w = t.windows(ms(10_000));
        assert!(w.len() <= MAX_WINDOWS, "{}", w.len());
        assert_eq!(w.iter().map(|w| w.requests).sum::<u64>(), 10_000);
        // The window doubled from 10 ms until 10 s fit: 160 ms.
        assert!((w[0].duration_s - 0.16).abs() < 1e-9, "{}", w[0].duration_s);
        // Latencies grow with time, so the windows' medians do too.
        assert!(w.windows(2).all(|p| p[0].p50_ms <= p[1].p50_ms));
    }

    #[test]
    fn the_last_window_ends_with_the_run() {
        let mut t = Timeline::new(Duration::from_secs(10));
        t.record(ms(1), Some(5), true);
        t.record(ms(12_000), None, false);
        let w = t.windows(ms(15_000));
        assert_eq!(w.len(), 2);
        assert!((w[1].duration_s - 5.0).abs() < 1e-9);
        assert_eq!((w[1].requests, w[1].failed, w[1].p99_ms), (1, 1, 0.0));
    }

    #[test]
    fn runs_of_known_length_get_sixty_windows_of_at_least_a_second() {
        assert_eq!(Timeline::window_for(Some(Duration::from_secs(600))), Duration::from_secs(10));
        assert_eq!(Timeline::window_for(Some(Duration::from_secs(10))), Duration::from_secs(1));
        assert_eq!(Timeline::window_for(None), Duration::from_secs(1));
    }
}
