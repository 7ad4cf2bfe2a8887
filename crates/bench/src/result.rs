//! The result of one measurement, as written to `result.json` and read back by `tune` and the
//! report writers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::scrape::ServerCounts;
use crate::stats::{Latency, Quantile};
use crate::timeline::Window;

/// Everything one `bench` run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// When the measured phase started (RFC 3339, UTC).
    pub started_at: String,
    /// The URL requests went to.
    pub url: String,
    /// Model name.
    pub model: String,
    /// `torchserve` or `v2`.
    pub protocol: String,
    /// `closed` (fixed concurrency) or `open` (fixed request rate).
    pub mode: String,
    /// Virtual users in the closed loop; in the open loop, the cap on requests in flight.
    pub concurrency: usize,
    /// Target request rate of the open loop (req/s).
    pub target_rate: Option<f64>,
    /// Unmeasured requests sent first.
    pub warmup: u64,
    /// Measured requests sent.
    pub requests: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Requests that failed: a non-2xx status or no answer.
    pub failed: u64,
    /// Failures by HTTP status, with `transport` for requests that got no answer.
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the measured phase, first send to last answer (s).
    pub duration_s: f64,
    /// Answered requests per second (2xx and errors alike, as `ab` counts them).
    pub throughput_rps: f64,
    /// Client-side latency of every answered request (ms). In the open loop it runs from the
    /// *scheduled* send time, so a server (or client) falling behind shows up as latency.
    pub latency_ms: Latency,
    /// Latency distribution for charts.
    pub distribution: Vec<Quantile>,
    /// Per-stage server time from `Server-Timing` headers (ms), when the server sends them.
    pub server_timing: BTreeMap<String, Latency>,
    /// What the server's `/metrics` counted during the run, when a metrics URL was given.
    pub server_counts: Option<ServerCounts>,
    /// Whether the load generator kept up.
    pub generator: GeneratorHealth,
    /// Where it ran.
    pub machine: Machine,
    /// Throughput and latency window by window, to see how the run changed over time.
    #[serde(default)]
    pub timeline: Vec<Window>,
}

/// The load generator's own health: a saturated client measures itself, not the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorHealth {
    /// CPU time the generator process used during the measured phase (s).
    pub cpu_seconds: Option<f64>,
    /// That CPU time as cores kept busy on average.
    pub cores_busy: Option<f64>,
    /// Mean CPU use of the whole machine during the run (%).
    pub host_cpu_percent: Option<f64>,
    /// Mean memory use of the whole machine during the run (%).
    pub host_memory_percent: Option<f64>,
    /// Open loop: requests sent more than [`LATE_AFTER_MS`](crate::load::LATE_AFTER_MS) after their
    /// scheduled time (the generator, or the in-flight cap, fell behind the schedule).
    pub late_sends: u64,
    /// Open loop: the largest delay between a scheduled and an actual send (ms).
    pub max_lateness_ms: f64,
    /// Open loop: requests actually sent per second.
    pub achieved_send_rate: Option<f64>,
    /// Plain-language warnings when the generator may have limited the measurement.
    pub warnings: Vec<String>,
}

impl BenchResult {
    /// Failed requests as a percentage of requests sent.
    pub fn error_rate_percent(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.failed as f64 * 100.0 / self.requests as f64 }
    }

    /// A human-readable summary for the terminal.
    pub fn summary(&self) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "{} requests in {:.2} s ({} loop{}): {:.1} req/s, {} ok, {} failed\n\
             latency ms: mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
            self.requests,
            self.duration_s,
            self.mode,
            match self.target_rate {
                Some(r) => format!(", target {r} req/s"),
                None => format!(", concurrency {}", self.concurrency),
            },
            self.throughput_rps,
            self.ok,
            self.failed,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
        if !self.errors.is_empty() {
            let errors: Vec<String> =
                self.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            out += &format!("errors by status: {}\n", errors.join(", "));
        }
        if !self.server_timing.is_empty() {
            let stages: Vec<String> = self
                .server_timing
                .iter()
                .map(|(k, v)| format!("{k} {:.3}/{:.3}", v.mean, v.p99))
                .collect();
            out += &format!("server stages ms (mean/p99): {}\n", stages.join(", "));
        }
        if let Some(n) = self.server_counts.as_ref().and_then(ServerCounts::inference_requests) {
            out += &format!("server counted {n} inference requests\n");
        }
        let g = &self.generator;
        if let Some(rate) = g.achieved_send_rate {
            out += &format!(
                "sent {rate:.1} req/s, {} sends late, max lateness {:.2} ms\n",
                g.late_sends, g.max_lateness_ms
            );
        }
        if let (Some(cpu), Some(cores)) = (g.cpu_seconds, g.cores_busy) {
            out += &format!("load generator CPU: {cpu:.2} s ({cores:.2} cores busy)\n");
        }
        // A last window much shorter than the others holds too few requests to compare.
        let full: Vec<&Window> = self
            .timeline
            .iter()
            .filter(|w| self.timeline.first().is_some_and(|f| w.duration_s >= 0.5 * f.duration_s))
            .collect();
        if let [first, .., last] = full.as_slice() {
            out += &format!(
                "p99 by window of {:.0} s: first {:.3} ms, last {:.3} ms ({:.2}x)\n",
                first.duration_s,
                first.p99_ms,
                last.p99_ms,
                last.p99_ms / first.p99_ms.max(1e-9)
            );
        }
        for w in &g.warnings {
            out += &format!("warning: {w}\n");
        }
        out += &format!("machine: {}\n", self.machine.summary());
        out
    }
}
