//! A real server on loopback port 0 with the tract engine and the repository's example models.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oxserve_backend::Backend;
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::EngineConfig;
use oxserve_core::metric_log::{MetricLog, Rotation};
use oxserve_core::metrics::Metrics;
use oxserve_core::{RegisterRequest, Registry};
use oxserve_server::{Server, ServerConfig};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("examples/inputs/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The example row of the `tiny` model (examples/inputs/expected.json), as f32.
pub fn tiny_row() -> Vec<f32> {
    expected()["tiny"]["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// A model store in a temp folder holding copies of the example models and test fixtures.
pub fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/model-store"), dir.path());
    for name in ["multi_io", "fixed_batch", "slow"] {
        std::fs::copy(
            repo().join(format!("tests/fixtures/models/{name}.onnx")),
            dir.path().join(format!("{name}.onnx")),
        )
        .unwrap();
    }
    std::fs::copy(
        repo().join("tests/fixtures/torch-model-archiver/tiny_ts.mar"),
        dir.path().join("tiny_ts.mar"),
    )
    .unwrap();
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub struct TestServer {
    pub inference: String,
    pub management: String,
    pub metrics: String,
    /// `http://` address of the gRPC inference listener (OIP and TorchServe inference).
    pub grpc_inference: String,
    /// `http://` address of the gRPC management listener.
    pub grpc_management: String,
    pub registry: Arc<Registry>,
    pub client: reqwest::Client,
    pub store: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct Options {
    pub engine: EngineConfig,
    pub server: ServerConfig,
    /// (name, url, overrides) loaded before serving.
    pub models: Vec<RegisterRequest>,
    /// Write metric logs into this folder.
    pub metric_log: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            server: open_server(),
            models: vec![model("tiny", "tiny"), model("digits", "digits")],
            metric_log: None,
        }
    }
}

/// Every listener on a free loopback port, no keys, the model API on: what the tests drive.
pub fn open_server() -> ServerConfig {
    ServerConfig { enable_model_api: true, auth: None, ..ServerConfig::on_free_ports() }
}

/// A registry over `engine.model_store` with these engines (first preferred), the built-in
/// handlers and metrics for host `testhost`.
pub fn registry(
    engine: EngineConfig,
    backends: Vec<Arc<dyn Backend>>,
    log: Option<Arc<MetricLog>>,
) -> Arc<Registry> {
    let metrics = Arc::new(Metrics::new("testhost".into(), log));
    Arc::new(Registry::with_metrics(engine, backends, oxserve_handlers::builtins(), metrics))
}

/// Makes `dir` (already holding `model_file`) a model folder: a TorchServe manifest naming
/// `handler`, and `config` as its model-config.yaml.
pub fn write_model_dir(dir: &Path, name: &str, model_file: &str, handler: &str, config: &str) {
    std::fs::create_dir_all(dir.join("MAR-INF")).unwrap();
    let manifest = serde_json::json!({
        "createdOn": "01/01/2025 00:00:00",
        "runtime": "python",
        "model": {
            "modelName": name,
            "serializedFile": model_file,
            "handler": handler,
            "modelVersion": "1.0",
            "configFile": "model-config.yaml"
        },
        "archiverVersion": "0.12.0"
    });
    std::fs::write(dir.join("MAR-INF/MANIFEST.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("model-config.yaml"), config).unwrap();
}

/// One stage's time in ms from a `Server-Timing` header (`queue;dur=…, …, total;dur=…`).
pub fn server_timing(header: &str, stage: &str) -> f64 {
    header
        .split(", ")
        .find_map(|s| s.strip_prefix(&format!("{stage};dur=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {stage} in Server-Timing: {header}"))
}

pub fn model(name: &str, url: &str) -> RegisterRequest {
    RegisterRequest {
        url: url.into(),
        model_name: Some(name.into()),
        synchronous: true,
        loaded_at_startup: true,
        ..RegisterRequest::default()
    }
}

impl TestServer {
    pub async fn start(options: Options) -> Self {
        let store = store();
        let engine = EngineConfig { model_store: store.path().to_path_buf(), ..options.engine };
        let log = options
            .metric_log
            .map(|dir| Arc::new(MetricLog::open(&dir, Rotation::default()).unwrap()));
        let registry = registry(engine, vec![Arc::new(TractBackend)], log);
        for request in options.models {
            registry.register(request).await.unwrap();
        }
        Self::serve(registry, store, options.server).await
    }

    /// Serves a registry the caller set up (its own engines, models or store); `store` is kept
    /// for as long as the server lives.
    pub async fn serve(
        registry: Arc<Registry>,
        store: tempfile::TempDir,
        config: ServerConfig,
    ) -> Self {
        let server = Server::bind(config, Arc::clone(&registry)).await.unwrap();
        let inference = format!("http://{}", server.inference_addr());
        let management = format!("http://{}", server.management_addr());
        let metrics = format!("http://{}", server.metrics_addr());
        let grpc_inference = format!("http://{}", server.grpc_inference_addr());
        let grpc_management = format!("http://{}", server.grpc_management_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            inference,
            management,
            metrics,
            grpc_inference,
            grpc_management,
            registry,
            client: reqwest::Client::new(),
            store,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn default() -> Self {
        Self::start(Options::default()).await
    }

    /// The default server with token authorization on, its keys made and written to
    /// `dir/key_file.json`; the server and the key file's contents.
    pub async fn with_keys(dir: &Path) -> (Self, serde_json::Value) {
        let key_file = dir.join("key_file.json");
        let mut options = Options::default();
        options.server.auth = Some(oxserve_server::AuthConfig {
            key_file: key_file.clone(),
            expiration: None,
            external: false,
        });
        let s = Self::start(options).await;
        let keys = serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
        (s, keys)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let registry = Arc::clone(&self.registry);
        tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
    }

    /// Sends a request; the answer's status and body (JSON, or the text as a JSON string).
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let r = self.client.request(method, url).body(body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    pub async fn post(
        &self,
        url: String,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, url, body).await
    }

    pub async fn get(&self, url: String) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, url, Vec::new()).await
    }

    pub async fn send(&self, method: reqwest::Method, url: String) -> (u16, serde_json::Value) {
        self.call(method, url, Vec::new()).await
    }
}

/// Asserts two JSON number lists (any nesting) are equal within `tol`.
pub fn assert_close(actual: &serde_json::Value, expected: &serde_json::Value, tol: f64) {
    fn flat(v: &serde_json::Value, out: &mut Vec<f64>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
            other => out.push(other.as_f64().unwrap_or_else(|| panic!("not a number: {other}"))),
        }
    }
    let (mut a, mut e) = (Vec::new(), Vec::new());
    flat(actual, &mut a);
    flat(expected, &mut e);
    assert_eq!(a.len(), e.len(), "{actual} vs {expected}");
    for (x, y) in a.iter().zip(&e) {
        assert!((x - y).abs() <= tol, "{x} != {y} (tolerance {tol}): {actual} vs {expected}");
    }
}

/// Parses `/metrics` and returns value by `name{label="v",…}` with labels sorted, for easy lookup.
pub async fn scrape(s: &TestServer) -> HashMap<String, f64> {
    let text =
        s.client.get(format!("{}/metrics", s.metrics)).send().await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).unwrap();
    let mut out = HashMap::new();
    for sample in parsed.samples {
        let mut labels: Vec<(String, String)> =
            sample.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.sort();
        let key = if labels.is_empty() {
            sample.metric.clone()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{}{{{}}}", sample.metric, inner.join(","))
        };
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                // Expose the +Inf bucket as the count.
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(key, value);
    }
    out
}

pub fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key).unwrap_or_else(|| {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        panic!("{key} not in /metrics: {keys:#?}")
    })
}

/// Taken by the tests that bound the growth of this process's resident memory, so that they do not
/// count each other's allocations: every test of this binary runs in one process.
#[allow(clippy::disallowed_types)] // held across `.await` for the whole measured test
pub static MEMORY_MEASURED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident set in KiB (`VmRSS`), where /proc has it.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
