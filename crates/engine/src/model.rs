//! One loaded model version: its engine model, handler, queue and workers.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use oxserve_backend::{Backend, LoadedModel, ModelSource, Signature, Tensor};
use serde::Serialize;

use crate::archive::{UnpackedModel, unpack};
use crate::batcher::BatchPolicy;
use crate::config::{DeviceType, EngineConfig, ModelConfigFile, ModelOverrides, ModelSettings};
use crate::error::{EngineError, Result};
use crate::handler::{Handler, HandlerContext, HandlerRegistry, Payload, Prediction};
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

/// Running totals that TorchServe's `ts_*` counters report.
#[derive(Debug, Default)]
pub struct ModelStats {
    /// Requests answered successfully.
    pub requests: AtomicU64,
    /// Sum of end-to-end latencies of those requests, in microseconds.
    pub latency_us: AtomicU64,
    /// Sum of their queue times, in microseconds.
    pub queue_us: AtomicU64,
}

/// A model version that is loaded and serving.
#[derive(Debug)]
pub struct ModelVersion {
    name: String,
    version: String,
    url: String,
    engine: &'static str,
    handler_name: String,
    loaded_at_startup: bool,
    model: Arc<dyn LoadedModel>,
    handler: Arc<dyn Handler>,
    settings: Mutex<ModelSettings>,
    queue: Arc<JobQueue>,
    pool: Mutex<WorkerPool>,
    stats: ModelStats,
    /// Keeps an extracted archive on disk for as long as the version is loaded.
    _files: UnpackedModel,
}

impl ModelVersion {
    /// Unpacks, loads and prepares a model version, without starting workers. Blocking.
    pub(crate) fn load(
        spec: LoadSpec,
        config: &EngineConfig,
        backend: &dyn Backend,
        handlers: &HandlerRegistry,
    ) -> Result<Self> {
        let files = unpack(&spec.path, &config.unpack_limits)?;
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
        if settings.device_type == DeviceType::Gpu {
            return Err(EngineError::Load(format!(
                "model {name} asks for deviceType gpu, but the {} engine runs on the CPU only",
                backend.name()
            )));
        }
        let model_path = files.serialized_file().ok_or_else(|| {
            EngineError::Load(format!("the archive of model {name} names no serialized model file"))
        })?;
        check_is_onnx(&model_path)?;
        let model = backend.load(&ModelSource { path: model_path, intra_threads: None })?;
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
        let pool = WorkerPool::new(label, Arc::clone(&queue), Arc::clone(&model));
        Ok(Self {
            name,
            version,
            url: spec.url,
            engine: backend.name(),
            handler_name: if handler_name.is_empty() { "tensor".into() } else { handler_name },
            loaded_at_startup: spec.loaded_at_startup,
            model,
            handler,
            settings: Mutex::new(settings),
            queue,
            pool: Mutex::new(pool),
            stats: ModelStats::default(),
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

    /// Running totals.
    pub fn stats(&self) -> &ModelStats {
        &self.stats
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
        let min = lock(&self.settings).min_workers;
        self.ready_workers() >= min
    }

    /// Sets the worker range and starts or stops workers to reach `min_workers`.
    pub fn scale(&self, min_workers: usize, max_workers: usize) {
        {
            let mut settings = lock(&self.settings);
            settings.min_workers = min_workers;
            settings.max_workers = max_workers.max(min_workers);
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
    }

    /// Runs already-built input tensors through the queue, checking them against the signature.
    ///
    /// `timeout` can shorten the model's response timeout, never lengthen it.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for tensors that do not fit, [`EngineError::Overloaded`] when the
    /// queue is full, [`EngineError::Timeout`] when no answer came in time.
    pub async fn infer(&self, inputs: Vec<Tensor>, timeout: Option<Duration>) -> Result<JobOutput> {
        let rows = self.check_inputs(&inputs)?;
        let arrived = Instant::now();
        let limit = {
            let settings = lock(&self.settings);
            timeout.map_or(settings.response_timeout, |t| t.min(settings.response_timeout))
        };
        let deadline = arrived + limit;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue.submit(Job { inputs, rows, arrived, deadline, reply })?;
        let output = match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => {
                return Err(EngineError::Internal("the worker dropped the request".into()));
            }
            Err(_) => return Err(EngineError::Timeout(limit)),
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.latency_us.fetch_add(micros(arrived.elapsed()), Ordering::Relaxed);
        self.stats.queue_us.fetch_add(micros(output.queue_time), Ordering::Relaxed);
        Ok(output)
    }

    /// Serves one TorchServe-style prediction: handler preprocess, queue, handler postprocess.
    /// Handler work runs on the blocking pool, off the async runtime.
    ///
    /// # Errors
    /// As [`Self::infer`], plus handler errors.
    pub async fn predict(
        &self,
        payload: Payload,
        timeout: Option<Duration>,
    ) -> Result<(Prediction, JobOutput)> {
        let handler = Arc::clone(&self.handler);
        let prepared = offload(move || handler.preprocess(&payload)).await?;
        let mut output = self.infer(prepared.inputs, timeout).await?;
        let handler = Arc::clone(&self.handler);
        let outputs = std::mem::take(&mut output.outputs);
        let context = prepared.context;
        let prediction = offload(move || handler.postprocess(outputs, context)).await?;
        Ok((prediction, output))
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
                    gpu: false,
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

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
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
    pub gpu: bool,
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
