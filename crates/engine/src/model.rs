//! One loaded model version: its engine model, handler, queue and workers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use oxserve_backend::{Backend, LoadedModel, ModelSource, Signature, Tensor};
use serde::Serialize;

use crate::archive::{UnpackedModel, unpack};
use crate::batcher::BatchPolicy;
use crate::config::{
    DeviceType, EngineConfig, ModelConfigFile, ModelOverrides, ModelSettings, device_plan,
};
use crate::error::{EngineError, Result};
use crate::handler::{Handler, HandlerContext, HandlerRegistry, Payload, Prediction};
use crate::metrics::{Metrics, ModelMetrics, Outcome, RequestTimings};
use crate::queue::{Job, JobOutput, JobQueue};
use crate::worker::{WorkerPool, WorkerStatus};

/// What a model version needs to load, besides the engine's defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadSpec {
    /// The archive, folder or model file to load.
    pub(crate) path: std::path::PathBuf,
    /// How the model was named by the client (`modelUrl` in describe).
    pub(crate) url: String,
    /// Registered name; `None` takes the manifest's.
    pub(crate) name: Option<String>,
    /// Settings from the register call; they win over the archive's.
    pub(crate) overrides: ModelOverrides,
    /// Whether it was named at startup (describe's `loadedAtStartup`).
    pub(crate) loaded_at_startup: bool,
}

/// A model version that is loaded and serving.
#[derive(Debug)]
pub struct ModelVersion {
    name: String,
    version: String,
    url: String,
    engine: &'static str,
    handler_name: String,
    /// Intra-op threads asked of the engine per session (`None`: its default).
    intra_op_threads: Option<usize>,
    /// Admission permits: a request holds one from before its body is read until it is answered,
    /// so a burst of clients cannot make the server hold more bodies than it could ever queue.
    admission: Admissions,
    loaded_at_startup: bool,
    model: Arc<dyn LoadedModel>,
    handler: Arc<dyn Handler>,
    settings: Mutex<ModelSettings>,
    queue: Arc<JobQueue>,
    pool: Mutex<WorkerPool>,
    metrics: Arc<ModelMetrics>,
    /// Keeps an extracted archive on disk for as long as the version is loaded.
    _files: UnpackedModel,
}

impl ModelVersion {
    /// Unpacks, loads and prepares a model version, without starting workers. Blocking.
    ///
    /// Errors name files relative to the model folder (or to where it was unpacked), never by
    /// their absolute path.
    pub(crate) fn load(
        spec: LoadSpec,
        config: &EngineConfig,
        backends: &[Arc<dyn Backend>],
        handlers: &HandlerRegistry,
        metrics: &Metrics,
    ) -> Result<Self> {
        // The folders messages name files relative to: the model store (as given and canonical)
        // and where archives are unpacked; then the model's own folder.
        let store = &config.model_store;
        let mut hidden = vec![
            store.clone(),
            std::fs::canonicalize(store).unwrap_or_else(|_| store.clone()),
            config.unpack_limits.staging_dir.clone().unwrap_or_else(std::env::temp_dir),
        ];
        let files = unpack(&spec.path, &config.unpack_limits)
            .map_err(|e| EngineError::from(e).relative_to(&paths(&hidden)))?;
        hidden.push(files.dir.clone());
        Self::load_unpacked(spec, files, hidden.clone(), config, backends, handlers, metrics)
            .map_err(|e| e.relative_to(&paths(&hidden)))
    }

    /// [`Self::load`] once the model is unpacked; `hidden` goes to the workers, whose start-up
    /// errors also reach clients.
    fn load_unpacked(
        spec: LoadSpec,
        files: UnpackedModel,
        hidden: Vec<PathBuf>,
        config: &EngineConfig,
        backends: &[Arc<dyn Backend>],
        handlers: &HandlerRegistry,
        metrics: &Metrics,
    ) -> Result<Self> {
        let manifest = files.manifest.clone();
        let name = spec.name.clone().unwrap_or_else(|| manifest.model.model_name.clone());
        let version = manifest.model.model_version.clone().unwrap_or_else(|| "1.0".to_owned());
        let model_config = match files.config_file() {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    EngineError::Load(format!("cannot read {}: {e}", path.display()))
                })?;
                ModelConfigFile::parse(&text).map_err(EngineError::Load)?
            }
            None => ModelConfigFile::default(),
        };
        let mut overrides = config
            .models
            .get(&name)
            .and_then(|versions| versions.get(&version))
            .cloned()
            .unwrap_or_default();
        overrides.merge(&model_config.overrides);
        overrides.merge(&spec.overrides);
        let settings = overrides.resolve(config).map_err(EngineError::InvalidArgument)?;
        let wanted = overrides.engine.as_deref().unwrap_or(&config.default_engine);
        let backend = pick_backend(backends, wanted)?;
        let devices = device_plan(settings.device_type, &settings.device_ids, config.number_of_gpu)
            .map_err(|e| EngineError::InvalidArgument(format!("model {name}: {e}")))?;
        let model_path = files.serialized_file().ok_or_else(|| {
            EngineError::Load(format!("the archive of model {name} names no serialized model file"))
        })?;
        check_is_onnx(&model_path)?;
        let intra_threads = overrides.intra_op_threads.or(config.default_intra_op_threads);
        // Loaded on the first worker's device, so that a GPU that cannot be used (with
        // `gpu_fallback=error`) or an engine without GPUs fails the registration, not just workers.
        let model = backend
            .load(&ModelSource {
                path: model_path,
                intra_threads,
                device: devices[0],
                gpu_fallback: config.gpu_fallback,
                tensorrt_fp16: overrides.tensorrt_fp16.unwrap_or(config.tensorrt_fp16),
            })
            .map_err(|e| match e {
                // A model that does not load is the client's to fix (TorchServe's ModelLoadException,
                // a 400 with the reason), not an internal error.
                oxserve_backend::BackendError::Load { .. } => {
                    EngineError::Load(format!("model {name}: {e}"))
                }
                other => other.into(),
            })?;
        tracing::info!(model = %name, version = %version, engine = backend.name(), asked = wanted, "engine chosen");
        let handler_name = manifest.model.handler.clone().unwrap_or_default();
        let handler = handlers.create(
            Some(&handler_name),
            &HandlerContext {
                model_name: &name,
                model_dir: &files.dir,
                manifest: &manifest,
                signature: model.signature(),
                config: &model_config.handler_config,
            },
        )?;
        let label = format!("{name}_{version}");
        let policy = BatchPolicy {
            batch_size: settings.batch_size,
            max_batch_delay: settings.max_batch_delay,
        };
        let queue = Arc::new(JobQueue::new(name.clone(), settings.job_queue_size, policy));
        let metrics = Arc::new(metrics.for_model(&name, &version));
        let pool = WorkerPool::new(
            label,
            Arc::clone(&queue),
            Arc::clone(&model),
            Arc::clone(&metrics),
            devices,
            hidden,
        );
        Ok(Self {
            name,
            version,
            url: spec.url,
            engine: backend.name(),
            handler_name: if handler_name.is_empty() { "tensor".into() } else { handler_name },
            loaded_at_startup: spec.loaded_at_startup,
            intra_op_threads: intra_threads,
            admission: Admissions::new(
                overrides.max_concurrent_requests.filter(|n| *n > 0),
                settings.job_queue_size + settings.max_workers * settings.batch_size,
            ),
            model,
            handler,
            settings: Mutex::new(settings),
            queue,
            pool: Mutex::new(pool),
            metrics,
            _files: files,
        })
    }

    /// Registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What the model was registered from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Inputs and outputs.
    pub fn signature(&self) -> &Signature {
        self.model.signature()
    }

    /// Name of the engine running it.
    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// Current settings.
    pub fn settings(&self) -> ModelSettings {
        lock(&self.settings).clone()
    }

    /// This version's metrics.
    pub fn metrics(&self) -> &ModelMetrics {
        &self.metrics
    }

    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    fn pool(&self) -> MutexGuard<'_, WorkerPool> {
        lock(&self.pool)
    }

    /// Ready workers.
    pub fn ready_workers(&self) -> usize {
        self.pool().ready()
    }

    /// Whether at least `minWorkers` workers are ready (TorchServe's health rule).
    pub fn is_ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    /// Why the version is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        let min = lock(&self.settings).min_workers;
        let pool = self.pool();
        if let Some(error) = pool.failure() {
            return Some(format!("its workers cannot start: {error}"));
        }
        let ready = pool.ready();
        (ready < min).then(|| format!("{ready} of its minimum {min} workers are ready"))
    }

    /// Sets the worker range and starts or stops workers to reach `min_workers`.
    pub fn scale(&self, min_workers: usize, max_workers: usize) {
        {
            let mut settings = lock(&self.settings);
            settings.min_workers = min_workers;
            settings.max_workers = max_workers.max(min_workers);
            self.admission
                .fit(settings.job_queue_size + settings.max_workers * settings.batch_size);
        }
        self.pool().scale_to(min_workers);
    }

    /// Waits until `n` workers are ready or `timeout` passes; `true` when they are.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.ready_workers() >= n {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops taking requests, lets workers finish what is queued, and waits for them. Blocking.
    pub(crate) fn shutdown(&self) {
        self.pool().shutdown();
        self.metrics.remove();
    }

    /// Runs already-built input tensors through the queue, checking them against the signature.
    ///
    /// `options.timeout` can shorten the model's response timeout, never lengthen it.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for tensors that do not fit, [`EngineError::Overloaded`] when the
    /// queue is full, [`EngineError::Timeout`] when no answer came in time.
    pub async fn infer(&self, inputs: Vec<Tensor>, options: &RequestOptions) -> Result<JobOutput> {
        let admission = self.admit(options)?;
        self.infer_admitted(admission, inputs, options).await
    }

    /// As [`Self::infer`], for a request admitted with [`Self::admit`] before its body was read.
    ///
    /// # Errors
    /// As [`Self::infer`].
    pub async fn infer_admitted(
        &self,
        admission: Admission,
        inputs: Vec<Tensor>,
        options: &RequestOptions,
    ) -> Result<JobOutput> {
        let mut record = Recorder::new(&self.metrics, options.request_id.as_deref());
        let result = self.submit(inputs, options).await;
        drop(admission);
        match &result {
            Ok(output) => record.answered(RequestTimings {
                queue: output.queue_time,
                inference: output.inference_time,
                total: record.started.elapsed(),
                ..RequestTimings::default()
            }),
            Err(e) => record.failed(e),
        }
        result
    }

    /// How many of its requests may be in flight at once now: `maxConcurrentRequests`, or what
    /// the queue and the workers' batches hold.
    pub fn concurrency_limit(&self) -> usize {
        self.admission.limit.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes a place among the model's requests in flight, or refuses at once: with
    /// [`EngineError::TooManyRequests`] past `maxConcurrentRequests`, else with
    /// [`EngineError::Overloaded`] past what the queue and the workers' batches can hold. Servers
    /// call it before reading a request body, so a refused request costs no body read, and the
    /// bodies held at once stay within that bound whatever the number of clients.
    ///
    /// # Errors
    /// As above; the refusal is counted in the model's metrics.
    pub fn admit(&self, options: &RequestOptions) -> Result<Admission> {
        self.admission.take().map_err(|limit| {
            let e = if self.admission.user_limit {
                EngineError::TooManyRequests { model: self.name.clone(), limit }
            } else {
                EngineError::Overloaded {
                    model: self.name.clone(),
                    capacity: lock(&self.settings).job_queue_size,
                }
            };
            Recorder::new(&self.metrics, options.request_id.as_deref()).failed(&e);
            e
        })
    }

    async fn submit(&self, inputs: Vec<Tensor>, options: &RequestOptions) -> Result<JobOutput> {
        let rows = self.check_inputs(&inputs)?;
        {
            let pool = self.pool();
            if pool.active() == 0 {
                return Err(EngineError::Unavailable(format!(
                    "model {} has no workers; scale it up with PUT /models/{}?min_worker=1",
                    self.name, self.name
                )));
            }
            if let Some(error) = pool.failure() {
                return Err(EngineError::Unavailable(format!(
                    "model {} cannot run: {error}",
                    self.name
                )));
            }
        }
        let arrived = Instant::now();
        let limit = {
            let settings = lock(&self.settings);
            options.timeout.map_or(settings.response_timeout, |t| t.min(settings.response_timeout))
        };
        let deadline = arrived + limit;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        self.queue.submit(Job { inputs, rows, arrived, deadline, reply, span })?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EngineError::Internal("the worker dropped the request".into())),
            Err(_) => Err(EngineError::Timeout(limit)),
        }
    }

    /// Serves one TorchServe-style prediction: handler preprocess, queue, handler postprocess.
    /// Handler work runs on the blocking pool, off the async runtime.
    ///
    /// # Errors
    /// As [`Self::infer`], plus handler errors.
    pub async fn predict(
        &self,
        payload: Payload,
        options: &RequestOptions,
    ) -> Result<(Prediction, RequestTimings)> {
        let admission = self.admit(options)?;
        self.predict_admitted(admission, payload, options).await
    }

    /// As [`Self::predict`], for a request admitted with [`Self::admit`] before its body was read.
    ///
    /// # Errors
    /// As [`Self::predict`].
    pub async fn predict_admitted(
        &self,
        admission: Admission,
        payload: Payload,
        options: &RequestOptions,
    ) -> Result<(Prediction, RequestTimings)> {
        let mut record = Recorder::new(&self.metrics, options.request_id.as_deref());
        let result = self.run_handler(payload, options).await;
        drop(admission);
        match &result {
            Ok((_, timings)) => record.answered(*timings),
            Err(e) => record.failed(e),
        }
        result
    }

    async fn run_handler(
        &self,
        payload: Payload,
        options: &RequestOptions,
    ) -> Result<(Prediction, RequestTimings)> {
        let started = Instant::now();
        let handler = Arc::clone(&self.handler);
        let prepared = offload(move || handler.preprocess(&payload)).await?;
        let preprocess = started.elapsed();
        let mut output = self.submit(prepared.inputs, options).await?;
        let handler = Arc::clone(&self.handler);
        let outputs = std::mem::take(&mut output.outputs);
        let context = prepared.context;
        let post_started = Instant::now();
        let prediction = offload(move || handler.postprocess(outputs, context)).await?;
        let timings = RequestTimings {
            queue: output.queue_time,
            preprocess,
            inference: output.inference_time,
            postprocess: post_started.elapsed(),
            total: started.elapsed(),
        };
        Ok((prediction, timings))
    }

    /// Checks inputs against the signature and returns the number of rows they carry.
    fn check_inputs(&self, inputs: &[Tensor]) -> Result<usize> {
        let specs = &self.signature().inputs;
        if inputs.len() != specs.len() {
            return Err(EngineError::InvalidInput(format!(
                "the model takes {} inputs, got {}",
                specs.len(),
                inputs.len()
            )));
        }
        let mut rows = None;
        for (spec, t) in specs.iter().zip(inputs) {
            if t.dtype() != spec.dtype {
                return Err(EngineError::InvalidInput(format!(
                    "input `{}` must be {}, got {}",
                    spec.name,
                    spec.dtype,
                    t.dtype()
                )));
            }
            spec.check_shape(t.shape())
                .map_err(|e| EngineError::InvalidInput(format!("input `{}`: {e}", spec.name)))?;
            let r = t.rows();
            if *rows.get_or_insert(r) != r {
                return Err(EngineError::InvalidInput(
                    "inputs disagree on the batch dimension".into(),
                ));
            }
        }
        Ok(rows.unwrap_or(1))
    }

    /// Describe output in TorchServe's shape.
    pub fn describe(&self) -> Description {
        let settings = self.settings();
        let pid = std::process::id();
        let memory = resident_memory_bytes();
        let pending = self.queue.len();
        Description {
            model_name: self.name.clone(),
            model_version: self.version.clone(),
            model_url: self.url.clone(),
            engine: self.engine,
            runtime: "oxserve",
            handler: self.handler_name.clone(),
            min_workers: settings.min_workers,
            max_workers: settings.max_workers,
            batch_size: settings.batch_size,
            max_batch_delay: millis(settings.max_batch_delay),
            response_timeout: settings.response_timeout.as_secs(),
            device_type: match settings.device_type {
                DeviceType::Cpu => "cpu",
                DeviceType::Gpu => "gpu",
            },
            loaded_at_startup: self.loaded_at_startup,
            intra_op_threads: self.intra_op_threads,
            workers: self
                .pool()
                .infos()
                .into_iter()
                .map(|w| WorkerDescription {
                    id: w.id,
                    start_time: chrono::DateTime::<chrono::Utc>::from(w.started_at)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    status: w.status.as_str(),
                    memory_usage: memory,
                    pid,
                    gpu: w.device.is_gpu(),
                    device: w.device.to_string(),
                    gpu_usage: "N/A",
                })
                .collect(),
            job_queue_status: JobQueueStatus {
                remaining_capacity: self.queue.capacity().saturating_sub(pending),
                pending_requests: pending,
            },
        }
    }

    /// The batch policy in force.
    pub fn batch_policy(&self) -> BatchPolicy {
        self.queue.policy()
    }

    /// Workers that have failed to start and are retrying.
    pub fn failed_workers(&self) -> usize {
        self.pool().infos().iter().filter(|w| w.status == WorkerStatus::Failed).count()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-request options.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// A deadline shorter than the model's response timeout (a longer one is ignored).
    pub timeout: Option<Duration>,
    /// The request id, for metric log lines.
    pub request_id: Option<String>,
}

/// Records how a request ended; a request dropped before it ended (the client went away) counts as
/// cancelled.
struct Recorder<'a> {
    metrics: &'a ModelMetrics,
    request_id: Option<&'a str>,
    started: Instant,
    done: bool,
}

impl<'a> Recorder<'a> {
    fn new(metrics: &'a ModelMetrics, request_id: Option<&'a str>) -> Self {
        Self { metrics, request_id, started: Instant::now(), done: false }
    }

    fn answered(&mut self, timings: RequestTimings) {
        self.done = true;
        self.metrics.record(Outcome::Ok, Some(&timings), self.request_id);
    }

    fn failed(&mut self, err: &EngineError) {
        self.done = true;
        self.metrics.record(Outcome::of(err), None, self.request_id);
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.record(Outcome::Cancelled, None, self.request_id);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs CPU work on tokio's blocking pool.
async fn offload<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(format!("handler task failed: {e}")))?
}

/// The engine a model asked for: `auto` takes the first (preferred) one; `onnxruntime` is also
/// accepted as the ONNX Runtime engine's short name `ort`.
fn pick_backend<'a>(backends: &'a [Arc<dyn Backend>], wanted: &str) -> Result<&'a dyn Backend> {
    let wanted = wanted.trim().to_ascii_lowercase();
    let found = if wanted == "auto" {
        backends.first()
    } else {
        backends
            .iter()
            .find(|b| b.name() == wanted || (wanted == "onnxruntime" && b.name() == "ort"))
    };
    found.map(|b| &**b).ok_or_else(|| {
        let available: Vec<&str> = backends.iter().map(|b| b.name()).collect();
        EngineError::Load(format!(
            "engine `{wanted}` is not available in this server (available: {}); for ONNX Runtime run \
             scripts/install-onnxruntime.sh or set onnxruntime_lib",
            available.join(", ")
        ))
    })
}

fn check_is_onnx(path: &Path) -> Result<()> {
    let is_onnx = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if is_onnx {
        Ok(())
    } else {
        Err(EngineError::Load(format!(
            "{} is not an ONNX model; oxserve serves .onnx files (export TorchScript or eager models with torch.onnx.export)",
            path.file_name()
                .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
        )))
    }
}

fn paths(dirs: &[PathBuf]) -> Vec<&Path> {
    dirs.iter().map(PathBuf::as_path).collect()
}

/// Resident memory of this process, from `/proc/self/statm` (0 where that is not available).
fn resident_memory_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    pages * 4096
}

/// `GET /models/{name}` entry, in TorchServe's field names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Description {
    pub model_name: String,
    pub model_version: String,
    pub model_url: String,
    pub engine: &'static str,
    pub runtime: &'static str,
    pub handler: String,
    pub min_workers: usize,
    pub max_workers: usize,
    pub batch_size: usize,
    pub max_batch_delay: u64,
    pub response_timeout: u64,
    pub device_type: &'static str,
    pub loaded_at_startup: bool,
    /// Intra-op threads per worker session; absent when the engine's default (one) is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intra_op_threads: Option<usize>,
    pub workers: Vec<WorkerDescription>,
    pub job_queue_status: JobQueueStatus,
}

/// One worker in describe output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct WorkerDescription {
    pub id: String,
    pub start_time: String,
    pub status: &'static str,
    /// Resident memory of the server process: workers are threads, so they share it.
    pub memory_usage: u64,
    pub pid: u32,
    /// Whether the worker's session runs on a GPU (after any fallback to the CPU).
    pub gpu: bool,
    /// Where the worker's session runs: `cpu` or `gpu:N`; before its session exists, where it was
    /// assigned to run.
    pub device: String,
    pub gpu_usage: &'static str,
}

/// Live queue counts in describe output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct JobQueueStatus {
    pub remaining_capacity: usize,
    pub pending_requests: usize,
}

/// A request's place among its model's requests in flight; released on drop.
#[derive(Debug)]
pub struct Admission {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The permits behind [`ModelVersion::admit`].
#[derive(Debug)]
struct Admissions {
    permits: Arc<tokio::sync::Semaphore>,
    /// Permits issued in all; grows when the model is scaled up.
    limit: std::sync::atomic::AtomicUsize,
    /// Whether the limit is the user's `maxConcurrentRequests` (fixed) rather than derived.
    user_limit: bool,
}

impl Admissions {
    fn new(user: Option<usize>, derived: usize) -> Self {
        let limit = user.unwrap_or(derived).max(1);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            limit: limit.into(),
            user_limit: user.is_some(),
        }
    }

    /// Raises a derived limit to `derived` (scaling up adds room; scaling down keeps it, the queue
    /// still bounds what waits).
    fn fit(&self, derived: usize) {
        if self.user_limit {
            return;
        }
        let before = self.limit.fetch_max(derived, std::sync::atomic::Ordering::AcqRel);
        if derived > before {
            self.permits.add_permits(derived - before);
        }
    }

    fn take(&self) -> std::result::Result<Admission, usize> {
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .map(|permit| Admission { _permit: permit })
            .map_err(|_| self.limit.load(std::sync::atomic::Ordering::Acquire))
    }
}
