//! Loading a model version: unpack, settle its settings, pick what runs it (an engine in the server,
//! or a worker runtime such as Python for a handler that runs in worker processes), load the model
//! on the first worker's device or prepare the runtime, build its queue and worker pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oxserve_backend::{Backend, BackendError, Device, ModelSource};
use oxserve_store::archive::{UnpackedModel, unpack};

use super::admission::Admissions;
use super::{ModelVersion, Runner};
use crate::batcher::BatchPolicy;
use crate::config::{EngineConfig, ModelConfigFile, ModelOverrides, device_plan};
use crate::error::{EngineError, Result};
use crate::executor::native::NativeExecutor;
use crate::executor::{Executor, JobQueue, Pool, WorkerPool};
use crate::handler::{HandlerContext, HandlerRegistry};
use crate::hosted::{HostedModel, Runtime};
use crate::metrics::{Metrics, ModelMetrics};

/// What loading draws on: engines (in order of preference), handlers, worker runtimes, metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loaders<'a> {
    pub(crate) backends: &'a [Arc<dyn Backend>],
    pub(crate) handlers: &'a HandlerRegistry,
    pub(crate) runtimes: &'a [Arc<dyn Runtime>],
    pub(crate) metrics: &'a Metrics,
}

/// What a model version needs to load, besides the engine's defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadSpec {
    /// The archive, folder or model file to load.
    pub(crate) path: PathBuf,
    /// How the model was named by the client (`modelUrl` in describe).
    pub(crate) url: String,
    /// Registered name; `None` takes the manifest's.
    pub(crate) name: Option<String>,
    /// Settings from the register call; they win over the archive's.
    pub(crate) overrides: ModelOverrides,
    /// Whether it was named at startup (describe's `loadedAtStartup`).
    pub(crate) loaded_at_startup: bool,
}

impl ModelVersion {
    /// Unpacks, loads and prepares a model version, without starting workers. Blocking.
    ///
    /// Errors name files relative to the model folder (or to where it was unpacked), never by
    /// their absolute path.
    pub(crate) fn load(
        spec: LoadSpec,
        config: &EngineConfig,
        loaders: Loaders<'_>,
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
        Self::load_unpacked(spec, files, hidden.clone(), config, loaders)
            .map_err(|e| e.relative_to(&paths(&hidden)))
    }

    /// [`Self::load`] once the model is unpacked; `hidden` goes to the workers, whose start-up
    /// errors also reach clients.
    fn load_unpacked(
        spec: LoadSpec,
        files: UnpackedModel,
        hidden: Vec<PathBuf>,
        config: &EngineConfig,
        loaders: Loaders<'_>,
    ) -> Result<Self> {
        let mut manifest = files.manifest.clone();
        if let Some(handler) = spec.overrides.handler.as_deref().filter(|h| !h.trim().is_empty()) {
            manifest.model.handler = Some(handler.trim().to_owned());
        }
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
        let settings = overrides
            .resolve(config, spec.loaded_at_startup)
            .map_err(EngineError::InvalidArgument)?;
        let devices = device_plan(settings.device_type, &settings.device_ids, config.number_of_gpu)
            .map_err(|e| EngineError::InvalidArgument(format!("model {name}: {e}")))?;
        let hosted = HostedModel {
            name: &name,
            version: &version,
            dir: &files.dir,
            manifest: &manifest,
            settings: &settings,
            metrics: loaders.metrics,
        };
        let metrics = Arc::new(loaders.metrics.for_model(&name, &version));
        let workers = Workers {
            label: format!("{name}_{version}"),
            model: name.clone(),
            capacity: settings.job_queue_size,
            policy: BatchPolicy {
                batch_size: settings.batch_size,
                max_batch_delay: settings.max_batch_delay,
            },
            metrics: Arc::clone(&metrics),
            devices: devices.clone(),
            hidden,
        };
        let chosen = match pick_runtime(loaders.runtimes, overrides.runtime.as_deref(), &hosted)? {
            Some(runtime) => {
                let executor = runtime.prepare(&hosted)?;
                tracing::info!(model = %name, version = %version, runtime = runtime.name(), "worker runtime chosen");
                let (queue, pool) = workers.build(executor);
                Chosen {
                    engine: runtime.name(),
                    handler_name: manifest.model.handler.clone().unwrap_or_default(),
                    intra_op_threads: None,
                    runner: Runner::Hosted { queue },
                    pool,
                }
            }
            None => {
                let wanted = overrides.engine.as_deref().unwrap_or(&config.default_engine);
                let backend = pick_backend(loaders.backends, wanted)?;
                let model_path = files.serialized_file().ok_or_else(|| {
                    EngineError::Load(format!(
                        "the archive of model {name} names no serialized model file"
                    ))
                })?;
                check_is_onnx(&model_path)?;
                let intra_threads = overrides.intra_op_threads.or(config.default_intra_op_threads);
                // Loaded on the first worker's device, so that a GPU that cannot be used (with
                // `gpu_fallback=error`) or an engine without GPUs fails the registration, not
                // just workers.
                let model = backend
                    .load(&ModelSource {
                        path: model_path,
                        intra_threads,
                        device: devices[0],
                        gpu_fallback: config.gpu_fallback,
                        tensorrt_fp16: overrides.tensorrt_fp16.unwrap_or(config.tensorrt_fp16),
                    })
                    .map_err(|e| match e {
                        // A model that does not load is the client's to fix (TorchServe's
                        // ModelLoadException, a 400 with the reason), not an internal error.
                        BackendError::Load { .. } => {
                            EngineError::Load(format!("model {name}: {e}"))
                        }
                        other => other.into(),
                    })?;
                tracing::info!(model = %name, version = %version, engine = backend.name(), asked = wanted, "engine chosen");
                let handler_name = manifest.model.handler.clone().unwrap_or_default();
                let handler = loaders.handlers.create(
                    Some(&handler_name),
                    &HandlerContext {
                        model_name: &name,
                        model_dir: &files.dir,
                        manifest: &manifest,
                        signature: model.signature(),
                        config: &model_config.handler_config,
                    },
                )?;
                let executor = Arc::new(NativeExecutor::new(Arc::clone(&model)));
                let (queue, pool) = workers.build(Arc::clone(&executor));
                Chosen {
                    engine: backend.name(),
                    handler_name: if handler_name.is_empty() {
                        "tensor".into()
                    } else {
                        handler_name
                    },
                    intra_op_threads: intra_threads,
                    runner: Runner::Native {
                        model,
                        handler,
                        queue,
                        executor,
                        stages: Default::default(),
                    },
                    pool,
                }
            }
        };
        Ok(Self {
            name,
            version,
            url: spec.url,
            engine: chosen.engine,
            handler_name: chosen.handler_name,
            intra_op_threads: chosen.intra_op_threads,
            admission: Admissions::new(
                overrides.max_concurrent_requests.filter(|n| *n > 0),
                settings.job_queue_size + settings.max_workers * settings.batch_size,
            ),
            loaded_at_startup: spec.loaded_at_startup,
            runner: chosen.runner,
            settings: Mutex::new(settings),
            pool: Mutex::new(chosen.pool),
            metrics,
            _files: files,
        })
    }
}

/// What runs a version: its engine or worker runtime, the handler it reports, and its workers.
struct Chosen {
    engine: &'static str,
    handler_name: String,
    intra_op_threads: Option<usize>,
    runner: Runner,
    pool: Box<dyn Pool>,
}

/// The queue of requests an executor runs.
type QueueOf<E> = Arc<JobQueue<<E as Executor>::Input, <E as Executor>::Output>>;

/// What a version's queue and worker pool are made of, whatever executor runs its batches.
struct Workers {
    label: String,
    model: String,
    capacity: usize,
    policy: BatchPolicy,
    metrics: Arc<ModelMetrics>,
    devices: Vec<Device>,
    hidden: Vec<PathBuf>,
}

impl Workers {
    /// The queue and the (not yet started) pool of workers running `executor`.
    fn build<E: Executor + ?Sized>(self, executor: Arc<E>) -> (QueueOf<E>, Box<dyn Pool>) {
        let queue = Arc::new(JobQueue::new(self.model, self.capacity, self.policy));
        let pool = WorkerPool::new(
            self.label,
            Arc::clone(&queue),
            executor,
            self.metrics,
            self.devices,
            self.hidden,
        );
        (queue, Box::new(pool))
    }
}

/// The worker runtime that runs a model, or `None` for the server itself (`native`): the one the
/// settings name, else the first that claims the model's handler.
fn pick_runtime<'a>(
    runtimes: &'a [Arc<dyn Runtime>],
    wanted: Option<&str>,
    model: &HostedModel<'_>,
) -> Result<Option<&'a dyn Runtime>> {
    // TorchServe's archiver says `python3` as often as `python`: one runtime.
    let wanted = wanted.map(|w| match w.trim().to_ascii_lowercase() {
        w if w == "python3" => "python".to_owned(),
        w => w,
    });
    match wanted {
        Some(w) if w == "native" => Ok(None),
        Some(w) => runtimes.iter().find(|r| r.name() == w).map(|r| Some(&**r)).ok_or_else(|| {
            let mut available = vec!["native"];
            available.extend(runtimes.iter().map(|r| r.name()));
            EngineError::InvalidArgument(format!(
                "runtime `{w}` is not available in this server (available: {})",
                available.join(", ")
            ))
        }),
        None => Ok(runtimes.iter().find(|r| r.claims(model)).map(|r| &**r)),
    }
}

/// The engine a model asked for: `auto` takes the first (preferred) one; ONNX Runtime is
/// `onnxruntime` (the name flags, settings and describe use) or its short name `ort`.
fn pick_backend<'a>(backends: &'a [Arc<dyn Backend>], wanted: &str) -> Result<&'a dyn Backend> {
    let wanted = wanted.trim().to_ascii_lowercase();
    let found = if wanted == "auto" {
        backends.first()
    } else {
        backends
            .iter()
            .find(|b| b.name() == wanted || (wanted == "ort" && b.name() == "onnxruntime"))
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
