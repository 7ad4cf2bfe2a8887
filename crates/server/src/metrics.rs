//! `GET /metrics` in the Prometheus text format, with TorchServe's frontend counters.
//!
//! `ts_inference_requests_total`, `ts_inference_latency_microseconds` and
//! `ts_queue_latency_microseconds` are cumulative sums labelled `{model_name, model_version,
//! hostname}`, as in TorchServe, so existing dashboards keep working. `?name[]=` keeps only the named
//! metrics.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

const FAMILIES: [(&str, &str); 3] = [
    ("ts_inference_requests_total", "Total number of inference requests."),
    ("ts_inference_latency_microseconds", "Cumulative inference duration in microseconds"),
    ("ts_queue_latency_microseconds", "Cumulative queue duration in microseconds"),
];

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Names selected by `name[]=a&name[]=b`; empty means all.
fn selected(query: Option<&str>) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "name[]" || *k == "name%5B%5D" || *k == "name")
        .map(|(_, v)| v.to_owned())
        .collect()
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `GET /metrics`
pub(crate) async fn metrics(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    let wanted = selected(query.as_deref());
    let host = escape(&hostname());
    let versions = state.registry.all_versions();
    let mut out = String::new();
    for (i, (name, help)) in FAMILIES.iter().enumerate() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for v in &versions {
            let stats = v.stats();
            let value = match i {
                0 => stats.requests.load(Ordering::Relaxed),
                1 => stats.latency_us.load(Ordering::Relaxed),
                _ => stats.queue_us.load(Ordering::Relaxed),
            };
            let _ = writeln!(
                out,
                "{name}{{model_name=\"{}\",model_version=\"{}\",hostname=\"{host}\"}} {value}",
                escape(v.name()),
                escape(v.version())
            );
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}
