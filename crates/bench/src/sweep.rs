//! The `oxserve tune` configuration: TorchServe's auto_benchmark model YAML, plus our own keys, and
//! its expansion into cases.
//!
//! ```yaml
//! tiny:                      # model
//!   cpu_sweep:               # mode
//!     benchmark_engine: ab   # TorchServe keys: url, workers, batch_size, batch_delay, requests,
//!     url: tiny              # concurrency, input, processors, exec_env; a list sweeps that key
//!     workers: [1, 2]
//!     batch_size: [1, 4, 8]
//!     batch_delay: 5
//!     requests: 2000
//!     concurrency: 16
//!     input: examples/inputs/tiny.json
//!     processors: [cpu]
//!     sla_p99_ms: 100        # ours: the SLA, engines (oxserve started by tune), rates (open loop,
//!     engines: [tract]       # req/s), duration (s), warmup, content_type, protocol, model_name,
//!     rates: [500, 1000]     # version, max_in_flight, tie_tolerance
//! ```
//!
//! Every list is crossed with every other, in the order workers, batch size, batch delay,
//! concurrency, rate, engine, processor. Keys TorchServe's tool reads but that mean nothing here
//! (profiling switches, docker settings) are accepted and reported as ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

/// A scalar or a list of them, as auto_benchmark accepts for every swept key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One value.
    One(T),
    /// Several, swept.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn values(&self) -> Vec<T> {
        match self {
            Self::One(v) => vec![v.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// One `processors` entry: `cpu`, or `{gpus: all}` / `{gpus: N}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Processor {
    /// `cpu` (or `gpu`).
    Name(String),
    /// `{gpus: …}`.
    Gpus {
        /// `all` or a count.
        gpus: serde_yaml_ng::Value,
    },
}

impl Processor {
    fn label(&self) -> String {
        match self {
            Self::Name(n) => n.clone(),
            Self::Gpus { gpus } => match gpus {
                serde_yaml_ng::Value::String(s) => format!("gpus-{s}"),
                serde_yaml_ng::Value::Number(n) => format!("gpus-{n}"),
                _ => "gpus".into(),
            },
        }
    }
}

/// One mode of one model: the keys of an auto_benchmark model YAML and ours.
#[derive(Debug, Clone, Deserialize)]
pub struct ModeConfig {
    /// TorchServe: `ab` (the only engine; `locust` is refused).
    pub benchmark_engine: Option<String>,
    /// Model to register: a file or folder name in the server's model store.
    pub url: String,
    /// Workers per model.
    pub workers: Option<OneOrMany<usize>>,
    /// Batch size.
    pub batch_size: Option<OneOrMany<usize>>,
    /// Batch delay (ms).
    pub batch_delay: Option<OneOrMany<u64>>,
    /// Measured requests per case.
    pub requests: Option<u64>,
    /// Closed loop: virtual users; open loop: the in-flight cap.
    pub concurrency: Option<OneOrMany<usize>>,
    /// Request body file.
    pub input: PathBuf,
    /// `cpu` runs; GPU entries need a server with GPUs.
    pub processors: Option<Vec<Processor>>,
    /// TorchServe: `local` (docker is not driven by this tool).
    pub exec_env: Option<String>,
    /// Ours: P99 limit (ms) for the recommendation; `--sla-p99-ms` overrides it.
    pub sla_p99_ms: Option<f64>,
    /// Ours: engines to compare when tune starts oxserve (`tract`, `onnxruntime`).
    pub engines: Option<Vec<String>>,
    /// Ours: open-loop request rates (req/s); closed loop when absent.
    pub rates: Option<OneOrMany<f64>>,
    /// Ours: measure for this many seconds instead of `requests`.
    pub duration: Option<f64>,
    /// Ours: unmeasured requests first (default: a tenth of `requests`, as TorchServe's warmup).
    pub warmup: Option<u64>,
    /// Ours: request `Content-Type`.
    pub content_type: Option<String>,
    /// Ours: `torchserve` or `v2`.
    pub protocol: Option<String>,
    /// Ours: the name the model is registered under (default `benchmark`, as TorchServe's tool).
    pub model_name: Option<String>,
    /// Ours: open-loop in-flight cap when `concurrency` is not set.
    pub max_in_flight: Option<usize>,
    /// Ours: relative throughput difference counted as a tie (default 0.02).
    pub tie_tolerance: Option<f64>,
    /// Anything else; reported as ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// One configuration to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Folder name, like TorchServe's `<model>_<mode>_w<W>_b<B>`, plus the other swept keys.
    pub name: String,
    /// Model key of the YAML.
    pub model: String,
    /// Mode key of the YAML.
    pub mode: String,
    /// Model to register.
    pub url: String,
    /// Name it is registered under.
    pub model_name: String,
    /// Workers.
    pub workers: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Batch delay (ms).
    pub batch_delay: u64,
    /// Closed-loop users, or the open-loop in-flight cap.
    pub concurrency: usize,
    /// Open-loop rate (req/s).
    pub rate: Option<f64>,
    /// Engine (tune-started oxserve only).
    pub engine: Option<String>,
    /// Processor label.
    pub processor: String,
    /// Measured requests (when `duration` is not set).
    pub requests: u64,
    /// Measured seconds, instead of `requests`.
    pub duration: Option<f64>,
    /// Warmup requests.
    pub warmup: u64,
    /// Input file.
    pub input: PathBuf,
    /// Body type.
    pub content_type: String,
    /// `torchserve` or `v2`.
    pub protocol: String,
}

/// A parsed sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Cases in sweep order.
    pub cases: Vec<Case>,
    /// SLA from the file, when set.
    pub sla_p99_ms: Option<f64>,
    /// Tie tolerance for the choice.
    pub tie_tolerance: f64,
    /// Keys accepted but ignored, for a warning.
    pub ignored_keys: Vec<String>,
}

/// TorchServe keys that have no meaning for this tool but appear in its YAMLs.
const IGNORED: [&str; 8] = [
    "backend_profiling",
    "handler_profiling",
    "dockerhub",
    "docker_runtime",
    "gpus",
    "config_properties",
    "generate_graphs",
    "inference_model_url",
];

/// Reads and expands a sweep file. Relative input paths are taken from the current folder, or
/// from the file's folder when they are not found there.
///
/// # Errors
/// Unreadable or invalid YAML, empty lists, values out of range, or settings this tool cannot run.
pub fn load(path: &Path) -> anyhow::Result<Sweep> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).with_context(|| format!("in {}", path.display()))
}

/// Parses sweep YAML; see [`load`].
///
/// # Errors
/// As [`load`].
pub fn parse(text: &str, base: &Path) -> anyhow::Result<Sweep> {
    let models: BTreeMap<String, BTreeMap<String, ModeConfig>> = serde_yaml_ng::from_str(text)
        .context("not an auto_benchmark model YAML ({model: {mode: {...}}})")?;
    ensure!(!models.is_empty(), "the file names no model");
    let mut sweep = Sweep {
        cases: Vec::new(),
        sla_p99_ms: None,
        tie_tolerance: 0.02,
        ignored_keys: Vec::new(),
    };
    for (model, modes) in &models {
        ensure!(!modes.is_empty(), "model {model} has no mode");
        for (mode, cfg) in modes {
            expand(model, mode, cfg, base, &mut sweep)
                .with_context(|| format!("in {model}.{mode}"))?;
        }
    }
    Ok(sweep)
}

fn list<T: Clone>(v: &Option<OneOrMany<T>>, default: T, key: &str) -> anyhow::Result<Vec<T>> {
    let values = v.as_ref().map_or_else(|| vec![default], OneOrMany::values);
    ensure!(!values.is_empty(), "{key} is an empty list");
    Ok(values)
}

fn expand(
    model: &str,
    mode: &str,
    cfg: &ModeConfig,
    base: &Path,
    sweep: &mut Sweep,
) -> anyhow::Result<()> {
    if let Some(engine) = cfg.benchmark_engine.as_deref()
        && engine != "ab"
    {
        bail!("benchmark_engine {engine:?} is not supported: oxserve's load generator replaces ab");
    }
    if let Some(env) = cfg.exec_env.as_deref()
        && env != "local"
    {
        bail!("exec_env {env:?} is not supported: run the server yourself and pass --url");
    }
    for key in cfg.other.keys() {
        let label = format!("{model}.{mode}.{key}");
        if !IGNORED.contains(&key.as_str()) {
            bail!("unknown key {key:?}");
        }
        sweep.ignored_keys.push(label);
    }
    if let Some(sla) = cfg.sla_p99_ms {
        ensure!(sla > 0.0 && sla.is_finite(), "sla_p99_ms must be positive");
        sweep.sla_p99_ms = Some(sla);
    }
    if let Some(t) = cfg.tie_tolerance {
        ensure!((0.0..1.0).contains(&t), "tie_tolerance must be in [0, 1)");
        sweep.tie_tolerance = t;
    }
    let workers = list(&cfg.workers, 1, "workers")?;
    let batch_sizes = list(&cfg.batch_size, 1, "batch_size")?;
    let delays = list(&cfg.batch_delay, 100, "batch_delay")?;
    let rates: Vec<Option<f64>> = match &cfg.rates {
        Some(r) => r.values().into_iter().map(Some).collect(),
        None => vec![None],
    };
    ensure!(!rates.is_empty(), "rates is an empty list");
    let default_concurrency =
        if cfg.rates.is_some() { cfg.max_in_flight.unwrap_or(1024) } else { 10 };
    let concurrencies = list(&cfg.concurrency, default_concurrency, "concurrency")?;
    let engines: Vec<Option<String>> = match &cfg.engines {
        Some(e) if e.is_empty() => bail!("engines is an empty list"),
        Some(e) => e.iter().cloned().map(Some).collect(),
        None => vec![None],
    };
    let processors = cfg.processors.clone().unwrap_or_else(|| vec![Processor::Name("cpu".into())]);
    ensure!(!processors.is_empty(), "processors is an empty list");
    ensure!(workers.iter().all(|w| *w >= 1), "workers must be at least 1");
    ensure!(batch_sizes.iter().all(|b| *b >= 1), "batch_size must be at least 1");
    ensure!(concurrencies.iter().all(|c| *c >= 1), "concurrency must be at least 1");
    ensure!(rates.iter().flatten().all(|r| *r > 0.0 && r.is_finite()), "rates must be positive");
    let requests = cfg.requests.unwrap_or(1000);
    ensure!(requests >= 1, "requests must be at least 1");
    if let Some(d) = cfg.duration {
        ensure!(
            std::time::Duration::try_from_secs_f64(d).is_ok_and(|d| !d.is_zero()),
            "duration must be a positive number of seconds, got {d}"
        );
    }
    let protocol = cfg.protocol.clone().unwrap_or_else(|| "torchserve".into());
    protocol.parse::<crate::load::Protocol>()?;
    let input = if cfg.input.is_relative() && !cfg.input.exists() && base.join(&cfg.input).exists()
    {
        base.join(&cfg.input)
    } else {
        cfg.input.clone()
    };
    ensure!(input.is_file(), "input {} is not a file", cfg.input.display());
    let swept = |n: usize| n > 1;
    for w in &workers {
        for b in &batch_sizes {
            for d in &delays {
                for c in &concurrencies {
                    for r in &rates {
                        for e in &engines {
                            for p in &processors {
                                let mut name = format!("{model}_{mode}_w{w}_b{b}");
                                if swept(delays.len()) {
                                    name += &format!("_d{d}");
                                }
                                if swept(concurrencies.len()) {
                                    name += &format!("_c{c}");
                                }
                                if let Some(r) = r {
                                    name += &format!("_r{r}");
                                }
                                if let Some(e) = e.as_ref().filter(|_| swept(engines.len())) {
                                    name += &format!("_{e}");
                                }
                                if swept(processors.len()) {
                                    name += &format!("_{}", p.label());
                                }
                                sweep.cases.push(Case {
                                    name,
                                    model: model.into(),
                                    mode: mode.into(),
                                    url: cfg.url.clone(),
                                    model_name: cfg
                                        .model_name
                                        .clone()
                                        .unwrap_or_else(|| "benchmark".into()),
                                    workers: *w,
                                    batch_size: *b,
                                    batch_delay: *d,
                                    concurrency: *c,
                                    rate: *r,
                                    engine: e.clone(),
                                    processor: p.label(),
                                    requests,
                                    duration: cfg.duration,
                                    warmup: cfg.warmup.unwrap_or(requests / 10),
                                    input: input.clone(),
                                    content_type: cfg
                                        .content_type
                                        .clone()
                                        .unwrap_or_else(|| "application/json".into()),
                                    protocol: protocol.clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.json"), "[1, 2]").unwrap();
        dir
    }

    #[test]
    fn torchserve_auto_benchmark_yaml_is_expanded() {
        let dir = input_dir();
        let yaml = r#"
resnet:
  eager_mode:
    benchmark_engine: "ab"
    url: resnet.mar
    workers: [1, 2]
    batch_delay: 100
    batch_size: [1, 2, 4]
    input: in.json
    requests: 1000
    concurrency: 10
    backend_profiling: False
    exec_env: "local"
    processors:
        - "cpu"
"#;
        let sweep = parse(yaml, dir.path()).unwrap();
        assert_eq!(sweep.cases.len(), 6);
        assert_eq!(sweep.cases[0].name, "resnet_eager_mode_w1_b1");
        assert_eq!(sweep.cases[5].name, "resnet_eager_mode_w2_b4");
        assert_eq!(sweep.cases[3].warmup, 100);
        assert_eq!(sweep.cases[0].input, dir.path().join("in.json"));
        assert_eq!(sweep.ignored_keys, ["resnet.eager_mode.backend_profiling"]);
        assert_eq!(sweep.sla_p99_ms, None);
    }

    #[test]
    fn our_keys_add_dimensions() {
        let dir = input_dir();
        let yaml = r#"
tiny:
  open:
    url: tiny
    input: in.json
    batch_size: 4
    batch_delay: [1, 5]
    rates: [100, 200.5]
    engines: [tract, onnxruntime]
    duration: 3
    sla_p99_ms: 50
    processors: [cpu, {gpus: all}]
"#;
        let sweep = parse(yaml, dir.path()).unwrap();
        assert_eq!(sweep.cases.len(), 16);
        assert_eq!(sweep.sla_p99_ms, Some(50.0));
        let last = sweep.cases.last().unwrap();
        assert_eq!(last.name, "tiny_open_w1_b4_d5_r200.5_onnxruntime_gpus-all");
        assert_eq!(last.concurrency, 1024);
        assert_eq!(last.duration, Some(3.0));
    }

    #[test]
    fn bad_sweeps_are_refused_with_a_reason() {
        let dir = input_dir();
        let err = |yaml: &str| format!("{:#}", parse(yaml, dir.path()).unwrap_err());
        assert!(
            err("m: {x: {url: a, input: in.json, workers: []}}")
                .contains("workers is an empty list")
        );
        assert!(err("m: {x: {url: a, input: in.json, batch_size: 0}}").contains("batch_size"));
        assert!(err("m: {x: {url: a, input: missing.json}}").contains("not a file"));
        assert!(
            err("m: {x: {url: a, input: in.json, benchmark_engine: locust}}").contains("locust")
        );
        assert!(err("m: {x: {url: a, input: in.json, wokers: 2}}").contains("unknown key"));
        assert!(
            err("m: {x: {url: a, input: in.json, protocol: grpc}}").contains("unknown protocol")
        );
        assert!(err("[1, 2]").contains("auto_benchmark"));
    }
}
