//! Cost of recording one request's metrics on the hot path.
//!
//! What it catches: metrics becoming expensive relative to serving a request (label lookups, locks or
//! allocations creeping into `ModelMetrics::record`). Compare the figure with the per-request cost in
//! `docs/serving.md` (the serving bench), measured on the same machine.
//!
//! Run with `cargo bench -p oxserve-core --bench metrics`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxserve_metrics::log::{MetricLog, Rotation};
use oxserve_metrics::{Metrics, Outcome, RequestTimings};

fn per_call(metrics: &Metrics, n: u32) -> Duration {
    let model = metrics.for_model("tiny", "1.0");
    let timings = RequestTimings {
        queue: Duration::from_micros(120),
        preprocess: Duration::from_micros(30),
        inference: Duration::from_micros(900),
        postprocess: Duration::from_micros(20),
        total: Duration::from_micros(1100),
    };
    for _ in 0..1000 {
        model.record(Outcome::Ok, Some(&timings), Some("warmup"));
    }
    let start = Instant::now();
    for _ in 0..n {
        model.record(Outcome::Ok, Some(&timings), Some("3f2b6c1e-9d1a-4c55-8a43-0c7d2b1f9e10"));
    }
    start.elapsed() / n
}

fn main() {
    let n = 200_000;
    let prometheus_only = per_call(&Metrics::new("bench".into(), None), n);
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(MetricLog::open(dir.path(), Rotation::default()).unwrap());
    let with_logs = per_call(&Metrics::new("bench".into(), Some(log)), n);
    println!(
        "metrics per request: Prometheus only {prometheus_only:?}, with TorchServe metric log lines {with_logs:?}"
    );
}
