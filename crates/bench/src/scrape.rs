//! Reads a server's Prometheus `/metrics` before and after a measurement, so a run reports what the
//! server itself counted: how many inference requests it answered, their cumulative latency and
//! queue time (TorchServe's `ts_*` counters, which oxserve exposes under the same names), and its
//! HTTP status classes. The bench cross-checks its own counts against these.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Counter values read from one scrape, for one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Sum of every sample of each relevant metric, keyed by metric name (and outcome for
    /// `oxserve_requests_total`, as `oxserve_requests_total{outcome="ok"}`).
    pub values: BTreeMap<String, f64>,
}

/// The metrics the bench reads; other series are ignored.
const MODEL_COUNTERS: [&str; 3] = [
    "ts_inference_requests_total",
    "ts_inference_latency_microseconds",
    "ts_queue_latency_microseconds",
];
const STATUS_COUNTERS: [&str; 3] = ["Requests2XX", "Requests4XX", "Requests5XX"];

/// Scrapes `metrics_url` (the full URL of the metrics endpoint) for `model` (and `version`, when
/// given).
///
/// # Errors
/// The endpoint cannot be reached, answers an error, or the text is not Prometheus text.
pub async fn scrape(
    client: &reqwest::Client,
    metrics_url: &str,
    model: &str,
    version: Option<&str>,
) -> anyhow::Result<Counters> {
    let response = client
        .get(metrics_url)
        .send()
        .await
        .with_context(|| format!("cannot reach {metrics_url}"))?
        .error_for_status()
        .with_context(|| format!("{metrics_url} answered an error"))?;
    let text = response.text().await.context("reading the metrics")?;
    Ok(parse(&text, model, version))
}

/// Extracts the counters for `model` from Prometheus text.
pub fn parse(text: &str, model: &str, version: Option<&str>) -> Counters {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else { return Counters::default() };
    let mut values = BTreeMap::new();
    for sample in &scrape.samples {
        let (prometheus_parse::Value::Counter(value)
        | prometheus_parse::Value::Gauge(value)
        | prometheus_parse::Value::Untyped(value)) = sample.value
        else {
            continue;
        };
        let name = sample.metric.as_str();
        let for_model = |model_key: &str, version_key: &str| {
            sample.labels.get(model_key) == Some(model)
                && version.is_none_or(|v| sample.labels.get(version_key) == Some(v))
        };
        let key = if (MODEL_COUNTERS.contains(&name) && for_model("model_name", "model_version"))
            || STATUS_COUNTERS.contains(&name)
        {
            name.to_owned()
        } else if name == "oxserve_requests_total" && for_model("model", "version") {
            format!("{name}{{outcome=\"{}\"}}", sample.labels.get("outcome").unwrap_or("unknown"))
        } else {
            continue;
        };
        *values.entry(key).or_insert(0.0) += value;
    }
    Counters { values }
}

/// What the server counted during a measurement: `after - before` per counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerCounts {
    /// Counter increases, keyed as in [`Counters`].
    pub delta: BTreeMap<String, f64>,
}

impl ServerCounts {
    /// The difference of two scrapes.
    pub fn between(before: &Counters, after: &Counters) -> Self {
        let delta = after
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v - before.values.get(k).copied().unwrap_or(0.0)))
            .collect();
        Self { delta }
    }

    /// Inference requests the server answered (`ts_inference_requests_total`).
    pub fn inference_requests(&self) -> Option<f64> {
        self.delta.get("ts_inference_requests_total").copied()
    }

    /// Mean server-side latency per answered request in ms, from TorchServe's cumulative counters.
    pub fn mean_latency_ms(&self) -> Option<f64> {
        self.per_request("ts_inference_latency_microseconds")
    }

    /// Mean queue time per answered request in ms.
    pub fn mean_queue_ms(&self) -> Option<f64> {
        self.per_request("ts_queue_latency_microseconds")
    }

    fn per_request(&self, key: &str) -> Option<f64> {
        let n = self.inference_requests().filter(|n| *n > 0.0)?;
        self.delta.get(key).map(|us| us / n / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE ts_inference_requests_total counter
ts_inference_requests_total{hostname="h",model_name="tiny",model_version="1.0"} 12
ts_inference_requests_total{hostname="h",model_name="digits",model_version="1.0"} 5
# TYPE ts_inference_latency_microseconds counter
ts_inference_latency_microseconds{hostname="h",model_name="tiny",model_version="1.0"} 24000
# TYPE Requests2XX counter
Requests2XX{Hostname="h",Level="Host"} 30
# TYPE oxserve_requests_total counter
oxserve_requests_total{model="tiny",version="1.0",outcome="ok"} 12
oxserve_requests_total{model="tiny",version="1.0",outcome="overloaded"} 2
"#;

    #[test]
    fn counters_for_one_model_and_their_delta() {
        let after = parse(TEXT, "tiny", None);
        assert_eq!(after.values["ts_inference_requests_total"], 12.0);
        assert_eq!(after.values["Requests2XX"], 30.0);
        assert_eq!(after.values["oxserve_requests_total{outcome=\"overloaded\"}"], 2.0);
        assert!(
            !parse(TEXT, "tiny", Some("2.0")).values.contains_key("ts_inference_requests_total")
        );
        let mut before = after.clone();
        before.values.insert("ts_inference_requests_total".into(), 2.0);
        before.values.insert("ts_inference_latency_microseconds".into(), 4000.0);
        let counts = ServerCounts::between(&before, &after);
        assert_eq!(counts.inference_requests(), Some(10.0));
        assert_eq!(counts.mean_latency_ms(), Some(2.0));
    }

    /// What TorchServe 0.12 itself serves with `metrics_mode=prometheus`: label lists that end in a
    /// comma, and `model_version="default"` whatever version the archive declares.
    #[test]
    fn torchserve_s_own_text() {
        let text = r#"# HELP ts_inference_requests_total Torchserve prometheus counter metric with unit: Count
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{model_name="tiny",model_version="default",hostname="vm",} 3.0
# HELP Requests2XX Torchserve prometheus counter metric with unit: Count
# TYPE Requests2XX counter
Requests2XX{Level="Host",Hostname="vm",} 5.0
# HELP ts_inference_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds
# TYPE ts_inference_latency_microseconds counter
ts_inference_latency_microseconds{model_name="tiny",model_version="default",hostname="vm",} 15347.203000000001
# HELP HandlerTime Torchserve prometheus gauge metric with unit: ms
# TYPE HandlerTime gauge
HandlerTime{ModelName="tiny",Level="Model",Hostname="vm",} 0.19
"#;
        let counters = parse(text, "tiny", None);
        assert_eq!(counters.values["ts_inference_requests_total"], 3.0);
        assert_eq!(counters.values["Requests2XX"], 5.0);
        assert!((counters.values["ts_inference_latency_microseconds"] - 15347.2).abs() < 0.01);
        assert_eq!(counters.values.len(), 3, "{counters:?}");
    }
}
