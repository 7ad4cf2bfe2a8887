//! `oxserve serve`: loads models and serves TorchServe's APIs and the Open Inference Protocol.

use oxserve_python::{PythonRuntime, PythonSettings};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use oxserve_backend::Backend;
use oxserve_backend_ort::{OrtBackend, OrtConfig};
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::{EngineConfig, ModelOverrides};
use oxserve_core::metric_log::MetricLog;
use oxserve_core::metrics::Metrics;
use oxserve_core::system::hostname;
use oxserve_core::{RegisterRequest, Registry};
use oxserve_server::Server;
use tracing::info;

use crate::settings::{Layers, StartupModel};

/// Flags of `oxserve serve`. Each flag overrides the same key of `config.properties`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Folder holding model archives (.mar, .tar.gz), model folders or .onnx files (`model_store`).
    #[arg(long)]
    model_store: Option<PathBuf>,

    /// Models to load at startup: `all`, or archive names, optionally `name=archive`, separated by
    /// commas or spaces (`load_models`).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    models: Vec<String>,

    /// TorchServe-style config.properties; also taken from TS_CONFIG_FILE, then ./config.properties.
    #[arg(long, env = "TS_CONFIG_FILE")]
    ts_config: Option<PathBuf>,

    /// Inference API address, e.g. http://127.0.0.1:8080 (`inference_address`).
    #[arg(long)]
    inference_address: Option<String>,

    /// Management API address (`management_address`).
    #[arg(long)]
    management_address: Option<String>,

    /// Metrics API address (`metrics_address`).
    #[arg(long)]
    metrics_address: Option<String>,

    /// gRPC inference port: Open Inference Protocol and TorchServe inference services
    /// (`grpc_inference_port`, default 7070; 0 picks a free port).
    #[arg(long)]
    grpc_inference_port: Option<u16>,

    /// gRPC management port: TorchServe's management service (`grpc_management_port`, default 7071).
    #[arg(long)]
    grpc_management_port: Option<u16>,

    /// Host (and optionally port) the gRPC inference services listen on (`grpc_inference_address`,
    /// default 127.0.0.1).
    #[arg(long)]
    grpc_inference_address: Option<String>,

    /// Host (and optionally port) the gRPC management service listens on
    /// (`grpc_management_address`, default 127.0.0.1).
    #[arg(long)]
    grpc_management_address: Option<String>,

    /// Allow registering and unregistering models through the management API (`enable_model_api`).
    /// Off by default: only models named at startup load.
    #[arg(long)]
    enable_model_api: bool,

    /// Turn token authorization off (`disable_token_authorization`); by default every API but health
    /// checks and metrics needs a key from the key file.
    #[arg(long)]
    disable_token_auth: bool,

    /// Where the keys are written (`key_file`; default ./key_file.json, mode 0600, deleted at exit).
    #[arg(long)]
    key_file: Option<PathBuf>,

    /// Read the keys from this file instead of making them (`external_key_file`): TorchServe's
    /// key_file.json format, e.g. a mounted Kubernetes Secret shared by every replica. oxserve never
    /// writes or deletes it, and re-reads it when it changes.
    #[arg(long)]
    external_key_file: Option<PathBuf>,

    /// Engine for models that do not name one in model-config.yaml (`default_engine`): `auto` uses
    /// ONNX Runtime when its library is found (faster: 1.5–12x on CPU), else the embedded tract engine.
    #[arg(long, value_parser = ["auto", "tract", "onnxruntime"])]
    engine: Option<String>,

    /// The ONNX Runtime shared library (`onnxruntime_lib`; else ORT_DYLIB_PATH, else .venv-ort from
    /// scripts/install-onnxruntime.sh, else the python3 `onnxruntime` package).
    #[arg(long)]
    onnxruntime_lib: Option<PathBuf>,

    /// Seconds accepted requests may take to finish after SIGTERM or Ctrl-C (`drain_timeout`, default 30).
    #[arg(long)]
    drain_timeout: Option<u64>,

    /// The name Open Inference Protocol server metadata gives (`server_name`, default `oxserve`).
    #[arg(long)]
    server_name: Option<String>,

    /// Folder for the records of Comprehend PII jobs (`job_store`, default `jobs`): jobs started
    /// through the API resume from it after a restart.
    #[arg(long)]
    job_store: Option<PathBuf>,

    /// Folder for ts_metrics.log, model_metrics.log and access_log.log (`log_location`; default `logs`).
    #[arg(long, env = "LOG_LOCATION")]
    log_dir: Option<PathBuf>,

    /// Accepted for TorchServe compatibility; oxserve always runs in the foreground.
    #[arg(long, hide = true)]
    foreground: bool,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::logging::init();
    // Handler decoding and preprocessing run on the blocking pool and are CPU-bound: more than a few
    // threads per core only add memory and context switches, and tokio's default of 512 let an
    // overload burst start hundreds of threads (seen in the soak run). Work beyond waits its turn.
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("oxserve-io")
        .max_blocking_threads((4 * cores).max(8))
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

fn layers(args: &ServeArgs) -> anyhow::Result<Layers> {
    let mut layers = Layers::default();
    let config_file = args.ts_config.clone().or_else(|| {
        let local = PathBuf::from("config.properties");
        local.exists().then_some(local)
    });
    if let Some(path) = &config_file {
        layers.read_file(path)?;
        info!(path = %path.display(), "read config.properties");
    }
    if let Some(store) = &args.model_store {
        layers.set("model_store", store.to_string_lossy());
    }
    if !args.models.is_empty() {
        layers.set("load_models", args.models.join(","));
    }
    for (key, value) in [
        ("inference_address", &args.inference_address),
        ("management_address", &args.management_address),
        ("metrics_address", &args.metrics_address),
        ("grpc_inference_address", &args.grpc_inference_address),
        ("grpc_management_address", &args.grpc_management_address),
    ] {
        if let Some(v) = value {
            layers.set(key, v.clone());
        }
    }
    for (key, port) in [
        ("grpc_inference_port", args.grpc_inference_port),
        ("grpc_management_port", args.grpc_management_port),
    ] {
        if let Some(port) = port {
            layers.set(key, port.to_string());
        }
    }
    if args.enable_model_api {
        layers.set("enable_model_api", "true");
    }
    if args.disable_token_auth {
        layers.set("disable_token_authorization", "true");
    }
    if let Some(file) = &args.key_file {
        layers.set("key_file", file.to_string_lossy());
    }
    if let Some(file) = &args.external_key_file {
        layers.set("external_key_file", file.to_string_lossy());
    }
    if let Some(engine) = &args.engine {
        layers.set("default_engine", engine.clone());
    }
    if let Some(lib) = &args.onnxruntime_lib {
        layers.set("onnxruntime_lib", lib.to_string_lossy());
    }
    if let Some(secs) = args.drain_timeout {
        layers.set("drain_timeout", secs.to_string());
    }
    if let Some(folder) = &args.job_store {
        layers.set("job_store", folder.to_string_lossy().into_owned());
    }
    if let Some(name) = &args.server_name {
        layers.set("server_name", name.clone());
    }
    if let Some(dir) = &args.log_dir {
        layers.set("log_location", dir.to_string_lossy());
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    layers.apply_env(&env)?;
    Ok(layers)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = layers(&args)?.resolve()?;
    info!(server = ?settings.server, engine = ?settings.engine, "effective configuration");
    let store = settings.engine.model_store.clone();
    let log = MetricLog::open(&settings.log_dir, settings.log_rotation).with_context(|| {
        format!("cannot open the metric logs in {}", settings.log_dir.display())
    })?;
    info!(dir = %log.dir().display(), "writing ts_metrics.log, model_metrics.log and access_log.log");
    let metrics = Arc::new(
        Metrics::new(hostname(), Some(Arc::new(log))).with_model_metrics(&settings.model_metrics),
    );
    let registry = registry(
        settings.engine.clone(),
        settings.onnxruntime_lib.clone(),
        settings.python.clone(),
        metrics,
    )?;
    let sampler = tokio::spawn(log_system_metrics(Arc::clone(&registry), settings.metric_interval));
    load_startup_models(&registry, &store, &settings.load_models).await?;
    let server = Server::bind(settings.server.clone(), Arc::clone(&registry)).await?;
    let shutdown = oxserve_server::shutdown_signal()?;
    info!(
        inference = %server.inference_addr(),
        management = %server.management_addr(),
        metrics = %server.metrics_addr(),
        grpc_inference = %server.grpc_inference_addr(),
        grpc_management = %server.grpc_management_addr(),
        "Model server started"
    );
    // Scripts (TorchServe's benchmark among them) wait for this line on stdout; the HTTP addresses
    // come first, in this order, so readers of the earlier line keep working.
    let [inference, management, metrics, grpc_inference, grpc_management] = server.urls();
    println!(
        "Model server started. Inference API: {inference}, management API: {management}, metrics API: {metrics}, gRPC inference API: {grpc_inference}, gRPC management API: {grpc_management}"
    );
    server.run(shutdown).await?;
    sampler.abort();
    info!("shutting down: finishing queued requests");
    tokio::task::spawn_blocking(move || registry.shutdown()).await?;
    info!("stopped");
    Ok(())
}

/// The registry models run on, as `serve` and `job --model` load them: the engines (in
/// `default_engine`'s order), the built-in handlers and TorchServe's Python workers.
pub(crate) fn registry(
    engine: EngineConfig,
    onnxruntime_lib: Option<PathBuf>,
    python: PythonSettings,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Registry>> {
    let backends = backends(&engine.default_engine, onnxruntime_lib)?;
    Ok(Arc::new(
        Registry::with_metrics(engine, backends, oxserve_handlers::builtins(), metrics)
            .with_runtime(Arc::new(PythonRuntime::new(python))),
    ))
}

/// The engines this server offers, preferred first. ONNX Runtime is offered when its library loads;
/// when it was asked for explicitly and does not load, startup stops with the reason.
fn backends(
    default_engine: &str,
    library: Option<PathBuf>,
) -> anyhow::Result<Vec<Arc<dyn Backend>>> {
    let tract: Arc<dyn Backend> = Arc::new(TractBackend);
    if default_engine == "tract" {
        return Ok(vec![tract]);
    }
    match OrtBackend::new(OrtConfig { library, ..OrtConfig::default() }) {
        Ok(ort) => {
            info!(library = %ort.library().display(), "ONNX Runtime found: models use it unless they ask for tract");
            Ok(vec![Arc::new(ort), tract])
        }
        Err(e) if default_engine == "onnxruntime" => {
            Err(anyhow::Error::new(e).context("ONNX Runtime was asked for"))
        }
        Err(e) => {
            info!(reason = %e, "ONNX Runtime not available: models run on the embedded tract engine");
            Ok(vec![tract])
        }
    }
}

/// Expands the startup list and registers each model; any failure stops startup with its reason.
async fn load_startup_models(
    registry: &Arc<Registry>,
    store: &Path,
    models: &[StartupModel],
) -> anyhow::Result<()> {
    let mut wanted = Vec::new();
    for m in models {
        match m {
            StartupModel::All => {
                let entries = oxserve_store::listing::models(store)
                    .with_context(|| format!("cannot list the model store {}", store.display()))?;
                wanted.extend(
                    entries.into_iter().map(|e| (None, e.file, ModelOverrides::default(), false)),
                );
            }
            StartupModel::One { name, url } => {
                wanted.push((name.clone(), url.clone(), ModelOverrides::default(), false));
            }
            StartupModel::Snapshot { name, url, overrides, default } => {
                wanted.push((Some(name.clone()), url.clone(), (**overrides).clone(), *default));
            }
        }
    }
    for (name, url, overrides, default) in wanted {
        // Startup models come from the operator's own command line: a path outside the store is allowed.
        let path =
            if Path::new(&url).is_absolute() { PathBuf::from(&url) } else { store.join(&url) };
        let request = RegisterRequest {
            url: url.clone(),
            model_name: name,
            overrides,
            synchronous: true,
            loaded_at_startup: true,
            ..RegisterRequest::default()
        };
        let version = registry
            .register_path(path, request)
            .await
            .with_context(|| format!("cannot load startup model `{url}`"))?;
        if default {
            registry.set_default(version.name(), version.version())?;
        }
    }
    Ok(())
}

/// Writes host metrics to ts_metrics.log every `interval`, as TorchServe's metric collector does.
async fn log_system_metrics(registry: Arc<Registry>, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let registry = Arc::clone(&registry);
        let _ = tokio::task::spawn_blocking(move || registry.refresh_gauges(true)).await;
    }
}
