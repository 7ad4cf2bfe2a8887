//! Metrics that model code reports from its worker processes: the `[METRICS]` lines TorchServe's
//! Python workers print (`HandlerTime` and `PredictionTime` from the default handlers, and a
//! handler's own through `context.metrics`), read as TorchServe's frontend reads them and kept in
//! the server's one Prometheus registry.
//!
//! Which lines become series is TorchServe's rule: the metrics `metrics_config` declares under
//! `model_metrics` (TorchServe's default file declares only `HandlerTime` and `PredictionTime`),
//! and any other only when `model_metrics_auto_detect` is on. Labels are the line's dimensions by
//! name plus `Hostname`, as TorchServe adds it. A line that does not fit (unparsable, a name or
//! label Prometheus refuses, dimensions other than declared) is skipped with one warning per
//! metric name, never an error the request sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};
use serde::Deserialize;

use super::text::LabelOrder;

/// Most metric families handlers may add by auto-detection; beyond it new names are skipped, so a
/// handler that puts an id in a metric name cannot grow the registry without bound.
const MAX_DETECTED: usize = 256;

/// Prometheus type of a worker metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Added up (`inc(value)`).
    Counter,
    /// Set to the last value.
    Gauge,
    /// Observed into Prometheus' default buckets.
    Histogram,
}

impl Kind {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "COUNTER" => Some(Self::Counter),
            "GAUGE" => Some(Self::Gauge),
            "HISTOGRAM" => Some(Self::Histogram),
            _ => None,
        }
    }
}

/// One declared metric of `metrics_config`'s `model_metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MetricSpec {
    /// Metric name, as the handler reports it.
    pub name: String,
    /// Unit, for the help text.
    #[serde(default)]
    pub unit: String,
    /// Dimension names, in order; `Hostname` is added.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Filled from the section the spec is listed in.
    #[serde(skip, default = "gauge")]
    pub kind: Kind,
}

const fn gauge() -> Kind {
    Kind::Gauge
}

/// Which worker metrics become Prometheus series (`metrics_config`, `model_metrics_auto_detect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMetricsConfig {
    /// Declared metrics besides `HandlerTime` and `PredictionTime`, which are always kept.
    pub declared: Vec<MetricSpec>,
    /// Register any other metric a worker reports, typed by its line (`#type:`; gauge if none).
    pub auto_detect: bool,
}

impl ModelMetricsConfig {
    /// The `model_metrics` section of a TorchServe `metrics.yaml` (its `ts_metrics` section names
    /// the frontend's own metrics, which oxserve always serves, and is not read).
    ///
    /// # Errors
    /// When the text is not YAML of that shape.
    pub fn from_yaml(text: &str) -> Result<Vec<MetricSpec>, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            model_metrics: Option<Sections>,
        }
        #[derive(Deserialize)]
        struct Sections {
            #[serde(default)]
            counter: Option<Vec<MetricSpec>>,
            #[serde(default)]
            gauge: Option<Vec<MetricSpec>>,
            #[serde(default)]
            histogram: Option<Vec<MetricSpec>>,
        }
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let Some(sections) = file.model_metrics else { return Ok(Vec::new()) };
        let mut specs = Vec::new();
        for (kind, list) in [
            (Kind::Counter, sections.counter),
            (Kind::Gauge, sections.gauge),
            (Kind::Histogram, sections.histogram),
        ] {
            specs.extend(list.unwrap_or_default().into_iter().map(|s| MetricSpec { kind, ..s }));
        }
        Ok(specs)
    }
}

/// A parsed `[METRICS]` line: `Name.Unit:value|#Dim:v,Dim2:v2[|#type:T]|#hostname:h,epoch[,ids]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerMetric<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Unit.
    pub unit: &'a str,
    /// Value.
    pub value: f64,
    /// Dimensions, in the order written.
    pub dims: Vec<(&'a str, &'a str)>,
    /// `#type:`, when the line has one.
    pub kind: Option<Kind>,
    /// `#hostname:`.
    pub host: &'a str,
}

impl<'a> WorkerMetric<'a> {
    /// Parses the text after `[METRICS]`; `None` when it is not a metric line.
    pub fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim();
        let (head, rest) = text.split_once(":")?;
        let (name, unit) = head.split_once('.')?;
        let word = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ' ')
        };
        if !word(name) || !word(unit) {
            return None;
        }
        let mut parts = rest.split("|#");
        let value = parts.next()?.trim().parse::<f64>().ok()?;
        let dims = parts
            .next()?
            .split(',')
            .filter_map(|d| d.split_once(':'))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        let mut kind = None;
        let mut host = None;
        for part in parts {
            if let Some(t) = part.strip_prefix("type:") {
                kind = Some(Kind::parse(t)?);
            } else if let Some(h) = part.strip_prefix("hostname:") {
                host = h.split(',').next();
            }
        }
        Some(Self { name: name.trim(), unit: unit.trim(), value, dims, kind, host: host? })
    }
}

#[derive(Debug)]
enum Family {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
    /// Could not be registered, or the lines do not fit: skipped (warned once).
    Refused,
}

#[derive(Debug)]
struct Entry {
    family: Family,
    /// Label names: the dimensions, then `Hostname`.
    labels: Vec<String>,
    warned: bool,
}

/// The worker metrics of one server.
#[derive(Debug, Clone)]
pub(super) struct BackendMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    auto_detect: bool,
    state: Mutex<State>,
}

/// The families by name, their label orders, and how many were auto-detected.
#[derive(Debug)]
struct State {
    families: HashMap<String, Entry>,
    order: LabelOrder,
    detected: usize,
}

impl BackendMetrics {
    /// Worker metrics in `registry`: `handler_time` and `prediction_time` are the families the
    /// server already keeps for native handlers.
    pub(super) fn new(
        registry: Registry,
        config: &ModelMetricsConfig,
        builtin: [(&str, GaugeVec); 2],
    ) -> Self {
        let labels = || ["ModelName", "Level", "Hostname"].map(str::to_owned).to_vec();
        let mut families: HashMap<String, Entry> = builtin
            .into_iter()
            .map(|(n, g)| {
                (n.to_owned(), Entry { family: Family::Gauge(g), labels: labels(), warned: false })
            })
            .collect();
        let mut order = LabelOrder::default();
        for spec in &config.declared {
            if families.contains_key(&spec.name) {
                continue;
            }
            let mut labels = spec.dimensions.clone();
            labels.push("Hostname".to_owned());
            let entry = register(&registry, &mut order, &spec.name, &spec.unit, spec.kind, labels);
            families.insert(spec.name.clone(), entry);
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                auto_detect: config.auto_detect,
                state: Mutex::new(State { families, order, detected: 0 }),
            }),
        }
    }

    /// Label orders of the families registered here, for the text format.
    pub(super) fn extend_order(&self, order: &mut LabelOrder) {
        order.extend(&self.inner.state.lock().unwrap_or_else(PoisonError::into_inner).order);
    }

    /// Records one worker metric line (the text after `[METRICS]`).
    pub(super) fn record(&self, text: &str) {
        let Some(metric) = WorkerMetric::parse(text) else {
            tracing::debug!(line = text, "a worker's metric line does not parse; skipped");
            return;
        };
        let inner = &*self.inner;
        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        let State { families, order, detected } = &mut *state;
        if !families.contains_key(metric.name) {
            if !inner.auto_detect || *detected >= MAX_DETECTED {
                return;
            }
            *detected += 1;
            let mut labels: Vec<String> =
                metric.dims.iter().map(|(k, _)| (*k).to_owned()).collect();
            labels.push("Hostname".to_owned());
            let kind = metric.kind.unwrap_or(Kind::Gauge);
            let entry = register(&inner.registry, order, metric.name, metric.unit, kind, labels);
            families.insert(metric.name.to_owned(), entry);
        }
        let Some(entry) = families.get_mut(metric.name) else { return };
        let values: Option<Vec<&str>> = entry
            .labels
            .iter()
            .map(|l| {
                if l == "Hostname" {
                    Some(metric.host)
                } else {
                    metric.dims.iter().find(|(k, _)| k == l).map(|(_, v)| *v)
                }
            })
            .collect();
        let fits = values.filter(|_| metric.dims.len() + 1 == entry.labels.len());
        match (&entry.family, fits) {
            (Family::Counter(c), Some(v)) if metric.value >= 0.0 => {
                c.with_label_values(&v).inc_by(metric.value)
            }
            (Family::Gauge(g), Some(v)) => g.with_label_values(&v).set(metric.value),
            (Family::Histogram(h), Some(v)) => h.with_label_values(&v).observe(metric.value),
            (Family::Refused, _) => {}
            _ => {
                if !entry.warned {
                    entry.warned = true;
                    tracing::warn!(
                        metric = metric.name,
                        labels = ?entry.labels,
                        line = text,
                        "a worker's metric does not fit its family (other dimensions, or a negative count); such lines are skipped"
                    );
                }
            }
        }
    }
}

fn register(
    registry: &Registry,
    order: &mut LabelOrder,
    name: &str,
    unit: &str,
    kind: Kind,
    labels: Vec<String>,
) -> Entry {
    let names: Vec<&str> = labels.iter().map(String::as_str).collect();
    let kind_name = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    let help = super::ts_help(kind_name, unit);
    let made = match kind {
        Kind::Counter => CounterVec::new(Opts::new(name, help), &names).map(Family::Counter),
        Kind::Gauge => GaugeVec::new(Opts::new(name, help), &names).map(Family::Gauge),
        Kind::Histogram => {
            HistogramVec::new(HistogramOpts::new(name, help), &names).map(Family::Histogram)
        }
    };
    let registered = made.and_then(|family| {
        let collector: Box<dyn prometheus::core::Collector> = match &family {
            Family::Counter(c) => Box::new(c.clone()),
            Family::Gauge(g) => Box::new(g.clone()),
            Family::Histogram(h) => Box::new(h.clone()),
            Family::Refused => unreachable!("only made families are registered"),
        };
        order.add(collector.as_ref());
        registry.register(collector).map(|()| family)
    });
    let family = registered.unwrap_or_else(|e| {
        tracing::warn!(metric = name, error = %e, "a worker metric cannot be kept in Prometheus; its lines are skipped");
        Family::Refused
    });
    Entry { family, labels, warned: false }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_parse_as_torchserve_writes_them() {
        let m = WorkerMetric::parse(
            "HandlerTime.ms:12.5|#ModelName:mnist,Level:Model|#type:GAUGE|#hostname:vm,1700000000,req-1",
        )
        .unwrap();
        assert_eq!((m.name, m.unit, m.value, m.host), ("HandlerTime", "ms", 12.5, "vm"));
        assert_eq!(m.dims, [("ModelName", "mnist"), ("Level", "Model")]);
        assert_eq!(m.kind, Some(Kind::Gauge));
        // Workers before 0.8 write no type.
        let m = WorkerMetric::parse("Loops.Count:3|#ModelName:m|#hostname:vm,1700000000").unwrap();
        assert_eq!((m.kind, m.value), (None, 3.0));
        for bad in [
            "",
            "no metric",
            "A.B:x|#|#hostname:h,1",
            "A.B:1|#D:v",
            "A.B:1|#|#type:SUMMARY|#hostname:h,1",
        ] {
            assert!(WorkerMetric::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn declared_and_detected_metrics_become_series_others_do_not() {
        let yaml = "dimensions:\n  - &m \"ModelName\"\nmodel_metrics:\n  counter:\n    - name: Loops\n      unit: Count\n      dimensions: [*m]\n";
        let declared = ModelMetricsConfig::from_yaml(yaml).unwrap();
        assert_eq!(declared[0].kind, Kind::Counter);
        assert_eq!(declared[0].dimensions, ["ModelName"]);
        let registry = Registry::new();
        let handler =
            GaugeVec::new(Opts::new("HandlerTime", "h"), &["ModelName", "Level", "Hostname"])
                .unwrap();
        let prediction =
            GaugeVec::new(Opts::new("PredictionTime", "p"), &["ModelName", "Level", "Hostname"])
                .unwrap();
        let config = ModelMetricsConfig { declared, auto_detect: false };
        let m = BackendMetrics::new(
            registry.clone(),
            &config,
            [("HandlerTime", handler.clone()), ("PredictionTime", prediction)],
        );
        m.record("Loops.Count:2|#ModelName:m|#type:COUNTER|#hostname:vm,1");
        m.record("Loops.Count:3|#ModelName:m|#type:COUNTER|#hostname:vm,1");
        m.record("HandlerTime.ms:7|#ModelName:m,Level:Model|#type:GAUGE|#hostname:vm,1");
        m.record("Other.Count:1|#ModelName:m|#type:COUNTER|#hostname:vm,1");
        // Wrong dimensions: skipped, not a panic.
        m.record("Loops.Count:1|#Model:m|#type:COUNTER|#hostname:vm,1");
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
        assert_eq!(names, ["Loops"]);
        let loops = &registry.gather()[0];
        assert_eq!(loops.get_metric()[0].get_counter().get_value(), 5.0);
        assert_eq!(handler.with_label_values(&["m", "Model", "vm"]).get(), 7.0);

        let detect = BackendMetrics::new(
            Registry::new(),
            &ModelMetricsConfig { declared: Vec::new(), auto_detect: true },
            [
                ("HandlerTime", GaugeVec::new(Opts::new("HandlerTime", "h"), &["a"]).unwrap()),
                (
                    "PredictionTime",
                    GaugeVec::new(Opts::new("PredictionTime", "p"), &["a"]).unwrap(),
                ),
            ],
        );
        detect.record("Sizes.B:4|#ModelName:m|#type:HISTOGRAM|#hostname:vm,1");
        detect.record("bad name.B:4|#ModelName:m|#type:GAUGE|#hostname:vm,1");
        let families = detect.inner.registry.gather();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].get_metric()[0].get_histogram().get_sample_count(), 1);
    }
}
