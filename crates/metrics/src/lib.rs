//! Metrics: TorchServe's metric names (so existing dashboards keep working) and oxserve's own
//! histograms per stage, all in one Prometheus registry that `/metrics` renders, always on.
//!
//! TorchServe names and labels: `ts_inference_requests_total`, `ts_inference_latency_microseconds`,
//! `ts_queue_latency_microseconds` {model_name, model_version, hostname} (cumulative sums, as in
//! TorchServe); `Requests2XX/4XX/5XX`, `QueueTime`, `WorkerThreadTime` {Level, Hostname};
//! `WorkerLoadTime` {WorkerName, Level, Hostname}; `HandlerTime`, `PredictionTime` {ModelName, Level,
//! Hostname}; and the system gauges (see [`crate::system`]).
//!
//! Native metrics carry units in their names: `oxserve_request_duration_seconds{model, version, stage}`
//! (queue, preprocess, inference, postprocess, total), `oxserve_batch_size{model, version}`,
//! `oxserve_queue_depth`, `oxserve_busy_workers`, `oxserve_requests_in_flight` (admitted and not yet
//! answered: the per-pod concurrency an autoscaler targets) and
//! `oxserve_requests_total{model, version, outcome}`.
//!
//! Each model version binds its label values once at load ([`ModelMetrics`]), so recording on the
//! hot path is a few atomic adds with no lookups.

mod backend;
pub mod log;
pub mod stats;
pub mod system;
mod text;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

pub use backend::{Kind as WorkerMetricKind, MetricSpec, ModelMetricsConfig, WorkerMetric};
pub use text::{LabelOrder, java_double, render as render_families};

use backend::BackendMetrics;

use prometheus::{
    CounterVec, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry as PromRegistry,
};

use crate::log::{MetricLog, ModelLabels, RequestLines};
use crate::stats::ModelStats;

/// How a request ended, for `oxserve_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Refused as bad input (4xx other than overload).
    ClientError,
    /// Refused because the queue was full.
    Overloaded,
    /// No answer within the response timeout.
    Timeout,
    /// The client went away before the answer.
    Cancelled,
    /// A fault in the server or the engine.
    Error,
}

impl Outcome {
    const ALL: [Self; 6] = [
        Self::Ok,
        Self::ClientError,
        Self::Overloaded,
        Self::Timeout,
        Self::Cancelled,
        Self::Error,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ClientError => "client_error",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }
}

/// Stages of a request, for `oxserve_request_duration_seconds{stage}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting in the queue until its batch started.
    Queue,
    /// Handler preprocessing (decode, parse).
    Preprocess,
    /// The engine running the batch.
    Inference,
    /// Handler postprocessing (render the answer).
    Postprocess,
    /// Everything, from arrival at the model to the answer.
    Total,
}

impl Stage {
    const ALL: [Self; 5] =
        [Self::Queue, Self::Preprocess, Self::Inference, Self::Postprocess, Self::Total];

    fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Preprocess => "preprocess",
            Self::Inference => "inference",
            Self::Postprocess => "postprocess",
            Self::Total => "total",
        }
    }
}

/// Every metric family, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: PromRegistry,
    /// Each family's declared label order, for TorchServe's text format.
    label_order: Arc<LabelOrder>,
    hostname: String,
    log: Option<Arc<MetricLog>>,
    /// `Requests2XX/4XX/5XX` with their labels bound, and the host name the log lines share.
    status_counters: [IntCounter; 3],
    log_host: Arc<str>,
    ts_requests: IntCounterVec,
    ts_latency: CounterVec,
    ts_queue: CounterVec,
    queue_time: GaugeVec,
    worker_thread_time: GaugeVec,
    worker_load_time: GaugeVec,
    handler_time: GaugeVec,
    prediction_time: GaugeVec,
    system: [GaugeVec; 7],
    duration: HistogramVec,
    batch_size: HistogramVec,
    queue_depth: IntGaugeVec,
    busy_workers: IntGaugeVec,
    in_flight: IntGaugeVec,
    outcomes: IntCounterVec,
    /// What worker processes report (`[METRICS]` lines).
    backend: BackendMetrics,
}

fn ts_help(kind: &str, unit: &str) -> String {
    format!("Torchserve prometheus {kind} metric with unit: {unit}")
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    r: &PromRegistry,
    order: &RefCell<LabelOrder>,
    c: T,
) -> T {
    order.borrow_mut().add(&c);
    r.register(Box::new(c.clone())).expect("metric names are unique constants");
    c
}

/// Bucket bounds in seconds from 100 µs to 60 s, dense where model latencies usually fall.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// TorchServe's system gauges and their units, in the order [`Metrics::set_system`] takes values.
pub const SYSTEM_GAUGES: [(&str, &str); 7] = [
    ("CPUUtilization", "Percent"),
    ("MemoryUsed", "Megabytes"),
    ("MemoryAvailable", "Megabytes"),
    ("MemoryUtilization", "Percent"),
    ("DiskUsage", "Gigabytes"),
    ("DiskAvailable", "Gigabytes"),
    ("DiskUtilization", "Percent"),
];

const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

impl Metrics {
    /// A fresh registry with every family, labelled with `hostname`; metric log lines go to `log`.
    pub fn new(hostname: String, log: Option<Arc<MetricLog>>) -> Self {
        let r = PromRegistry::new();
        let order = RefCell::new(LabelOrder::default());
        let model_labels = &["model_name", "model_version", "hostname"];
        let host_labels = &["Level", "Hostname"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                &order,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let fcounter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                &order,
                CounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, unit: &str, labels: &[&str]| {
            register(
                &r,
                &order,
                GaugeVec::new(Opts::new(name, ts_help("gauge", unit)), labels)
                    .expect("valid metric"),
            )
        };
        let native = &["model", "version"];
        let handler_time = gauge("HandlerTime", "ms", &["ModelName", "Level", "Hostname"]);
        let prediction_time = gauge("PredictionTime", "ms", &["ModelName", "Level", "Hostname"]);
        let status_classes = ["Requests2XX", "Requests4XX", "Requests5XX"]
            .map(|n| counter(n, &ts_help("counter", "Count"), host_labels));
        Self {
            ts_requests: counter("ts_inference_requests_total", "Total number of inference requests.", model_labels),
            ts_latency: fcounter(
                "ts_inference_latency_microseconds",
                "Cumulative inference duration in microseconds",
                model_labels,
            ),
            ts_queue: fcounter("ts_queue_latency_microseconds", "Cumulative queue duration in microseconds", model_labels),
            status_counters: status_classes.map(|c| c.with_label_values(&["Host", &hostname])),
            queue_time: gauge("QueueTime", "Milliseconds", host_labels),
            worker_thread_time: gauge("WorkerThreadTime", "Milliseconds", host_labels),
            worker_load_time: gauge("WorkerLoadTime", "Milliseconds", &["WorkerName", "Level", "Hostname"]),
            system: SYSTEM_GAUGES.map(|(name, unit)| gauge(name, unit, host_labels)),
            duration: register(
                &r,
                &order,
                HistogramVec::new(
                    HistogramOpts::new(
                        "oxserve_request_duration_seconds",
                        "Time requests spent in each stage: queue, preprocess, inference, postprocess, total.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["model", "version", "stage"],
                )
                .expect("valid metric"),
            ),
            batch_size: register(
                &r,
                &order,
                HistogramVec::new(
                    HistogramOpts::new("oxserve_batch_size", "Requests per batch run by the engine.")
                        .buckets(BATCH_BUCKETS.to_vec()),
                    native,
                )
                .expect("valid metric"),
            ),
            queue_depth: register(
                &r,
                &order,
                IntGaugeVec::new(Opts::new("oxserve_queue_depth", "Requests waiting in the model's queue."), native)
                    .expect("valid metric"),
            ),
            busy_workers: register(
                &r,
                &order,
                IntGaugeVec::new(Opts::new("oxserve_busy_workers", "Workers running a batch now."), native)
                    .expect("valid metric"),
            ),
            in_flight: register(
                &r,
                &order,
                IntGaugeVec::new(
                    Opts::new(
                        "oxserve_requests_in_flight",
                        "Requests admitted and not yet answered (queued, being read or running).",
                    ),
                    native,
                )
                .expect("valid metric"),
            ),
            outcomes: register(
                &r,
                &order,
                IntCounterVec::new(
                    Opts::new("oxserve_requests_total", "Inference requests by how they ended."),
                    &["model", "version", "outcome"],
                )
                .expect("valid metric"),
            ),
            backend: BackendMetrics::new(r.clone(), &ModelMetricsConfig::default(), [
                ("HandlerTime", handler_time.clone()),
                ("PredictionTime", prediction_time.clone()),
            ]),
            handler_time,
            prediction_time,
            registry: r,
            label_order: Arc::new(order.into_inner()),
            log_host: Arc::from(hostname.as_str()),
            hostname,
            log,
        }
    }

    /// Which metrics of worker processes become series besides `HandlerTime` and
    /// `PredictionTime` (TorchServe's `metrics_config` and `model_metrics_auto_detect`).
    #[must_use]
    pub fn with_model_metrics(mut self, config: &ModelMetricsConfig) -> Self {
        self.backend = BackendMetrics::new(
            self.registry.clone(),
            config,
            [
                ("HandlerTime", self.handler_time.clone()),
                ("PredictionTime", self.prediction_time.clone()),
            ],
        );
        self
    }

    /// A metric line a worker process printed (the text after its `[METRICS]` marker): into
    /// `model_metrics.log` when metric logs are written, and into Prometheus when declared or
    /// detected.
    pub fn worker_line(&self, text: &str) {
        if let Some(log) = &self.log {
            log.worker(text);
        }
        self.backend.record(text);
    }

    /// The hostname label value.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The metric log, when metric logs are written.
    pub fn log(&self) -> Option<&Arc<MetricLog>> {
        self.log.as_ref()
    }

    /// Counts one HTTP answer in `Requests2XX/4XX/5XX` (other classes are not counted).
    pub fn record_status(&self, status: u16) {
        let class = match status {
            200..=299 => 0,
            400..=499 => 1,
            500..=599 => 2,
            _ => return,
        };
        self.status_counters[class].inc();
        if let Some(log) = &self.log {
            let name = ["Requests2XX", "Requests4XX", "Requests5XX"][class];
            log.host_count(name, &self.log_host);
        }
    }

    /// Binds a model version's label values (done once per version at load).
    pub fn for_model(&self, name: &str, version: &str) -> ModelMetrics {
        let host = self.hostname.as_str();
        ModelMetrics {
            labels: Arc::new(ModelLabels {
                name: name.to_owned(),
                version: version.to_owned(),
                host: host.to_owned(),
            }),
            ts_requests: self.ts_requests.with_label_values(&[name, version, host]),
            ts_latency: self.ts_latency.with_label_values(&[name, version, host]),
            ts_queue: self.ts_queue.with_label_values(&[name, version, host]),
            queue_time: self.queue_time.with_label_values(&["Host", host]),
            worker_thread_time: self.worker_thread_time.with_label_values(&["Host", host]),
            handler_time: self.handler_time.with_label_values(&[name, "Model", host]),
            prediction_time: self.prediction_time.with_label_values(&[name, "Model", host]),
            stages: Stage::ALL
                .map(|s| self.duration.with_label_values(&[name, version, s.as_str()])),
            batch_size: self.batch_size.with_label_values(&[name, version]),
            queue_depth: self.queue_depth.with_label_values(&[name, version]),
            busy_workers: self.busy_workers.with_label_values(&[name, version]),
            in_flight: self.in_flight.with_label_values(&[name, version]),
            outcomes: Outcome::ALL
                .map(|o| self.outcomes.with_label_values(&[name, version, o.as_str()])),
            stats: ModelStats::default(),
            all: self.clone(),
        }
    }

    /// Renders every family in the Prometheus text format; `names` keeps only those families.
    pub fn render(&self, names: &[String]) -> String {
        let mut order = (*self.label_order).clone();
        self.backend.extend_order(&mut order);
        text::render(&self.registry.gather(), &order, names)
    }

    /// Sets the system gauges, and logs them to `ts_metrics.log` when `log_lines` is set.
    pub fn set_system(&self, values: &[f64; 7], log_lines: bool) {
        for ((gauge, (name, unit)), value) in self.system.iter().zip(SYSTEM_GAUGES).zip(values) {
            gauge.with_label_values(&["Host", &self.hostname]).set(*value);
            if log_lines && let Some(log) = &self.log {
                log.frontend(name, unit, *value, &[("Level", "Host")], &self.hostname);
            }
        }
    }
}

/// One model version's metrics, with label values bound.
#[derive(Debug)]
pub struct ModelMetrics {
    /// Its model's name and version and the host, shared with its log lines.
    labels: Arc<ModelLabels>,
    ts_requests: IntCounter,
    ts_latency: prometheus::Counter,
    ts_queue: prometheus::Counter,
    queue_time: prometheus::Gauge,
    worker_thread_time: prometheus::Gauge,
    handler_time: prometheus::Gauge,
    prediction_time: prometheus::Gauge,
    stages: [Histogram; 5],
    batch_size: Histogram,
    queue_depth: IntGauge,
    busy_workers: IntGauge,
    in_flight: IntGauge,
    outcomes: [IntCounter; 6],
    /// Triton-style running totals (the statistics extension).
    stats: ModelStats,
    /// The families themselves (cheap handles), for log lines, worker load times and removing this
    /// version's series at unload.
    all: Metrics,
}

/// Timings of one answered request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestTimings {
    /// Time in the queue.
    pub queue: Duration,
    /// Handler preprocessing.
    pub preprocess: Duration,
    /// Engine time of the batch.
    pub inference: Duration,
    /// Handler postprocessing.
    pub postprocess: Duration,
    /// Everything.
    pub total: Duration,
}

impl ModelMetrics {
    /// Records a request that ended in `outcome`; `timings` for answered ones. This is the whole
    /// per-request metrics cost on the hot path.
    pub fn record(
        &self,
        outcome: Outcome,
        timings: Option<&RequestTimings>,
        request_id: Option<&str>,
    ) {
        let index = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(5);
        self.outcomes[index].inc();
        let Some(t) = timings else { return };
        for (stage, d) in
            Stage::ALL.iter().zip([t.queue, t.preprocess, t.inference, t.postprocess, t.total])
        {
            if d > Duration::ZERO || *stage != Stage::Preprocess && *stage != Stage::Postprocess {
                self.stages[*stage as usize].observe(d.as_secs_f64());
            }
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        self.ts_requests.inc();
        self.ts_latency.inc_by(us(t.total));
        self.ts_queue.inc_by(us(t.queue));
        let queue_ms = t.queue.as_secs_f64() * 1e3;
        let worker_ms = t.inference.as_secs_f64() * 1e3;
        let handler_ms = (t.preprocess + t.inference + t.postprocess).as_secs_f64() * 1e3;
        self.queue_time.set(queue_ms);
        self.worker_thread_time.set(worker_ms);
        self.handler_time.set(handler_ms);
        self.prediction_time.set(worker_ms);
        if let Some(log) = &self.all.log {
            log.request(RequestLines {
                labels: Arc::clone(&self.labels),
                request_id: request_id.map(str::to_owned),
                total: t.total,
                queue: t.queue,
                inference: t.inference,
                handler: t.preprocess + t.inference + t.postprocess,
            });
        }
    }

    pub fn worker_loaded(&self, worker: &str, took: Duration) {
        let ms = took.as_secs_f64() * 1e3;
        self.all.worker_load_time.with_label_values(&[worker, "Host", &self.all.hostname]).set(ms);
        if let Some(log) = &self.all.log {
            let dims = [("WorkerName", worker), ("Level", "Host")];
            log.frontend("WorkerLoadTime", "Milliseconds", ms, &dims, &self.all.hostname);
        }
    }

    /// Counts one engine run of `size` requests that took `took`.
    pub fn record_batch(&self, size: usize, took: Duration) {
        #[allow(clippy::cast_precision_loss)]
        self.batch_size.observe(size as f64);
        self.stats.executed(size, took);
    }

    /// The running totals of Triton's statistics extension.
    pub fn stats(&self) -> &ModelStats {
        &self.stats
    }

    /// Sets the gauges that are read at scrape time rather than counted: queue depth and requests
    /// in flight.
    pub fn set_load(&self, queued: usize, in_flight: usize) {
        self.queue_depth.set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.in_flight.set(i64::try_from(in_flight).unwrap_or(i64::MAX));
    }

    pub fn busy(&self) -> &IntGauge {
        &self.busy_workers
    }

    /// Removes this version's series (on unload) so they stop being reported.
    pub fn remove(&self) {
        let host = self.all.hostname.as_str();
        let (n, v) = (self.labels.name.as_str(), self.labels.version.as_str());
        let all = &self.all;
        let _ = all.ts_requests.remove_label_values(&[n, v, host]);
        let _ = all.ts_latency.remove_label_values(&[n, v, host]);
        let _ = all.ts_queue.remove_label_values(&[n, v, host]);
        for s in Stage::ALL {
            let _ = all.duration.remove_label_values(&[n, v, s.as_str()]);
        }
        for o in Outcome::ALL {
            let _ = all.outcomes.remove_label_values(&[n, v, o.as_str()]);
        }
        let _ = all.batch_size.remove_label_values(&[n, v]);
        let _ = all.queue_depth.remove_label_values(&[n, v]);
        let _ = all.busy_workers.remove_label_values(&[n, v]);
        let _ = all.in_flight.remove_label_values(&[n, v]);
    }
}
