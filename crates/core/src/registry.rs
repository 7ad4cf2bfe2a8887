//! The model registry: names → versions → loaded models, and the operations of the management API.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use oxserve_backend::Backend;
use tracing::{info, warn};

use crate::config::{EngineConfig, ModelOverrides};
use crate::error::{EngineError, Result};
use crate::handler::HandlerRegistry;
use crate::hosted::Runtime;
use crate::metrics::Metrics;
use crate::model::{LoadSpec, Loaders, ModelVersion};
use crate::system::{SystemSampler, hostname};
use oxserve_store::remote;

/// A register call.
#[derive(Debug, Clone, Default)]
pub struct RegisterRequest {
    /// A file or folder name inside the model store (`url=` of TorchServe's register call).
    pub url: String,
    /// Name to register under; the manifest's when `None`.
    pub model_name: Option<String>,
    /// Settings that win over the archive's `model-config.yaml`.
    pub overrides: ModelOverrides,
    /// Workers to start; else `minWorkers` from the settings.
    pub initial_workers: Option<usize>,
    /// Wait for the workers to be ready before returning.
    pub synchronous: bool,
    /// Whether this load is part of server startup.
    pub loaded_at_startup: bool,
    /// Expected sha256 (hex) of a model fetched from a URL.
    pub sha256: Option<String>,
}

/// Every version of one model name.
#[derive(Debug)]
struct Entry {
    default_version: String,
    versions: BTreeMap<String, Arc<ModelVersion>>,
}

/// All models the server knows.
#[derive(Debug)]
pub struct Registry {
    config: EngineConfig,
    /// Engines in order of preference; `auto` picks the first.
    backends: Vec<Arc<dyn Backend>>,
    handlers: HandlerRegistry,
    /// Worker runtimes for handlers that run in worker processes (Python).
    runtimes: Vec<Arc<dyn Runtime>>,
    models: RwLock<BTreeMap<String, Entry>>,
    metrics: Arc<Metrics>,
    /// Host usage for the system gauges; sampled on scrape and by the periodic metric log.
    system: Mutex<SystemSampler>,
}

/// How long a synchronous register or scale call waits for workers.
const SYNC_WAIT: Duration = Duration::from_secs(120);

impl Registry {
    /// An empty registry loading models with `backend`, with metrics but no metric log files.
    pub fn new(config: EngineConfig, backend: Arc<dyn Backend>, handlers: HandlerRegistry) -> Self {
        Self::with_metrics(
            config,
            vec![backend],
            handlers,
            Arc::new(Metrics::new(hostname(), None)),
        )
    }

    /// With several engines (in order of preference for `auto`), recording into `metrics`.
    pub fn with_metrics(
        config: EngineConfig,
        backends: Vec<Arc<dyn Backend>>,
        handlers: HandlerRegistry,
        metrics: Arc<Metrics>,
    ) -> Self {
        let system = Mutex::new(SystemSampler::new(&config.model_store));
        Self {
            config,
            backends,
            handlers,
            runtimes: Vec::new(),
            models: RwLock::new(BTreeMap::new()),
            metrics,
            system,
        }
    }

    /// Adds a worker runtime: models whose handler it claims, or whose settings name it, run in
    /// its worker processes.
    #[must_use]
    pub fn with_runtime(mut self, runtime: Arc<dyn Runtime>) -> Self {
        self.runtimes.push(runtime);
        self
    }

    /// The metrics every model records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Brings the gauges that are read rather than counted up to date: queue depths, requests in
    /// flight and host usage.
    /// With `log_system`, host usage is also written to `ts_metrics.log`.
    pub fn refresh_gauges(&self, log_system: bool) {
        for v in self.all_versions() {
            v.metrics().set_load(v.queue_depth(), v.in_flight());
        }
        let values = self.system.lock().unwrap_or_else(PoisonError::into_inner).sample();
        self.metrics.set_system(&values, log_system);
    }

    /// The engine configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.models.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.models.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves a register `url` to a path inside the model store.
    ///
    /// # Errors
    /// Remote URLs (no allow-list is configured), absolute paths, `..`, and names not in the store.
    pub fn resolve_url(&self, url: &str) -> Result<PathBuf> {
        if url.is_empty() {
            return Err(EngineError::InvalidArgument("parameter url is required".into()));
        }
        if url.contains("://") {
            // Only reached for URLs `register` did not download: refuse with the allow-list's reason.
            self.config.allowed_urls.check(url)?;
            return Err(EngineError::InvalidArgument(format!(
                "`{url}` is a URL; it is fetched only by a register call"
            )));
        }
        let relative = Path::new(url);
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(EngineError::InvalidArgument(format!(
                "url must be a file or folder name inside the model store, got `{url}`"
            )));
        }
        let path = self.config.model_store.join(relative);
        if !path.exists() {
            return Err(EngineError::ModelNotFound(format!("`{url}` is not in the model store")));
        }
        Ok(path)
    }

    /// Loads a model version and starts its workers.
    ///
    /// # Errors
    /// Bad url, archive or model; [`EngineError::Conflict`] when the name and version exist.
    /// Errors name files relative to the model store, never by their absolute path.
    pub async fn register(self: &Arc<Self>, request: RegisterRequest) -> Result<Arc<ModelVersion>> {
        self.register_request(request).await.map_err(|e| {
            let store = &self.config.model_store;
            let canonical = std::fs::canonicalize(store).unwrap_or_else(|_| store.clone());
            e.relative_to(&[store, &canonical])
        })
    }

    async fn register_request(
        self: &Arc<Self>,
        request: RegisterRequest,
    ) -> Result<Arc<ModelVersion>> {
        if !request.url.contains("://") {
            let path = self.resolve_url(&request.url)?;
            return self.register_path(path, request).await;
        }
        let path = remote::download(
            &request.url,
            &self.config.allowed_urls,
            &self.config.model_store,
            &self.config.download_limits,
            request.sha256.as_deref(),
        )
        .await?;
        let registered = self.register_path(path.clone(), request).await;
        if registered.is_err() {
            // A download that does not load would block the next attempt with "already exists".
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(file = %path.display(), "cannot remove a downloaded model that failed to load: {e}");
            }
        }
        registered
    }

    /// As [`Self::register`], for a path already resolved (startup models may live anywhere).
    ///
    /// # Errors
    /// As [`Self::register`].
    pub async fn register_path(
        self: &Arc<Self>,
        path: PathBuf,
        request: RegisterRequest,
    ) -> Result<Arc<ModelVersion>> {
        if let Some(name) = &request.model_name {
            validate_name(name)?;
        }
        let spec = LoadSpec {
            path,
            url: request.url.clone(),
            name: request.model_name.clone(),
            overrides: request.overrides.clone(),
            loaded_at_startup: request.loaded_at_startup,
        };
        let this = Arc::clone(self);
        let version = tokio::task::spawn_blocking(move || {
            let loaders = Loaders {
                backends: &this.backends,
                handlers: &this.handlers,
                runtimes: &this.runtimes,
                metrics: &this.metrics,
            };
            ModelVersion::load(spec, &this.config, loaders)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("model loading task failed: {e}")))??;
        validate_name(version.name())?;
        let version = Arc::new(version);
        {
            let mut models = self.write();
            let entry = models.entry(version.name().to_owned()).or_insert_with(|| Entry {
                default_version: version.version().to_owned(),
                versions: BTreeMap::new(),
            });
            if entry.versions.contains_key(version.version()) {
                return Err(EngineError::Conflict(format!(
                    "model version {} for model {} is already registered",
                    version.version(),
                    version.name()
                )));
            }
            entry.versions.insert(version.version().to_owned(), Arc::clone(&version));
        }
        let settings = version.settings();
        let workers = request.initial_workers.unwrap_or(settings.min_workers);
        version.scale(workers, settings.max_workers.max(workers));
        info!(
            model = version.name(),
            version = version.version(),
            engine = version.engine(),
            workers,
            batch_size = settings.batch_size,
            max_batch_delay_ms = settings.max_batch_delay.as_millis(),
            "model registered"
        );
        if request.synchronous {
            match version.wait_started(workers, SYNC_WAIT).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(model = version.name(), "workers not ready within {SYNC_WAIT:?}")
                }
                // A hosted handler loads in its worker, so a handler that cannot load fails the
                // registration as TorchServe's does (500, or 507 when out of memory), and the
                // model is not kept.
                Err(failure) if version.is_hosted() => {
                    self.remove_failed(&version).await;
                    return Err(EngineError::Handler {
                        status: failure.status,
                        message: format!(
                            "model {} failed to load: {}",
                            version.name(),
                            failure.message
                        ),
                    });
                }
                Err(failure) => {
                    warn!(model = version.name(), error = %failure, "workers cannot start");
                }
            }
        }
        Ok(version)
    }

    /// A model version, or the default version when `version` is `None`.
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`] / [`EngineError::VersionNotFound`].
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<ModelVersion>> {
        let models = self.read();
        let entry = models.get(name).ok_or_else(|| EngineError::ModelNotFound(name.to_owned()))?;
        let v = version.unwrap_or(&entry.default_version);
        entry.versions.get(v).cloned().ok_or_else(|| EngineError::VersionNotFound {
            name: name.to_owned(),
            version: v.to_owned(),
        })
    }

    /// Every version of a model, default first.
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`].
    pub fn versions(&self, name: &str) -> Result<Vec<Arc<ModelVersion>>> {
        let models = self.read();
        let entry = models.get(name).ok_or_else(|| EngineError::ModelNotFound(name.to_owned()))?;
        let mut all: Vec<Arc<ModelVersion>> = entry.versions.values().cloned().collect();
        all.sort_by_key(|v| v.version() != entry.default_version);
        Ok(all)
    }

    /// Every model's default version, by name.
    pub fn list(&self) -> Vec<Arc<ModelVersion>> {
        self.read().values().filter_map(|e| e.versions.get(&e.default_version).cloned()).collect()
    }

    /// Every loaded version of every model.
    pub fn all_versions(&self) -> Vec<Arc<ModelVersion>> {
        self.read().values().flat_map(|e| e.versions.values().cloned()).collect()
    }

    /// Makes `version` the default of `name`.
    ///
    /// # Errors
    /// Unknown model or version.
    pub fn set_default(&self, name: &str, version: &str) -> Result<()> {
        let mut models = self.write();
        let entry =
            models.get_mut(name).ok_or_else(|| EngineError::ModelNotFound(name.to_owned()))?;
        if !entry.versions.contains_key(version) {
            return Err(EngineError::VersionNotFound {
                name: name.to_owned(),
                version: version.to_owned(),
            });
        }
        version.clone_into(&mut entry.default_version);
        Ok(())
    }

    /// Unloads a version (the default when `None`); queued requests are served first.
    ///
    /// # Errors
    /// Unknown model or version, or removing the default while other versions remain.
    pub async fn unregister(&self, name: &str, version: Option<&str>) -> Result<Arc<ModelVersion>> {
        let removed = {
            let mut models = self.write();
            let entry =
                models.get_mut(name).ok_or_else(|| EngineError::ModelNotFound(name.to_owned()))?;
            let v = version.unwrap_or(&entry.default_version).to_owned();
            if !entry.versions.contains_key(&v) {
                return Err(EngineError::VersionNotFound { name: name.to_owned(), version: v });
            }
            if v == entry.default_version && entry.versions.len() > 1 {
                return Err(EngineError::InvalidArgument(format!(
                    "cannot remove the default version {v} of model {name} while other versions are \
                     loaded; set another default first"
                )));
            }
            let removed = entry.versions.remove(&v).expect("presence checked above");
            if entry.versions.is_empty() {
                models.remove(name);
            }
            removed
        };
        let version = Arc::clone(&removed);
        tokio::task::spawn_blocking(move || version.shutdown())
            .await
            .map_err(|e| EngineError::Internal(format!("unload task failed: {e}")))?;
        info!(model = removed.name(), version = removed.version(), "model unregistered");
        Ok(removed)
    }

    /// Takes a version whose workers could not start out of the registry again and unloads it.
    async fn remove_failed(&self, version: &Arc<ModelVersion>) {
        {
            let mut models = self.write();
            if let Some(entry) = models.get_mut(version.name()) {
                if entry.versions.get(version.version()).is_some_and(|v| Arc::ptr_eq(v, version)) {
                    entry.versions.remove(version.version());
                }
                if let Some(first) = entry.versions.keys().next() {
                    if !entry.versions.contains_key(&entry.default_version) {
                        entry.default_version = first.clone();
                    }
                } else {
                    models.remove(version.name());
                }
            }
        }
        let unload = Arc::clone(version);
        if let Err(e) = tokio::task::spawn_blocking(move || unload.shutdown()).await {
            warn!(model = version.name(), error = %e, "unloading a model that failed to start failed");
        }
    }

    /// Whether every model has its minimum workers ready (TorchServe's `/ping` rule).
    pub fn is_healthy(&self) -> bool {
        self.all_versions().iter().all(|v| v.is_ready())
    }

    /// Unloads everything, serving what is queued first. Blocking.
    pub fn shutdown(&self) {
        let all: Vec<Arc<ModelVersion>> = std::mem::take(&mut *self.write())
            .into_values()
            .flat_map(|e| e.versions.into_values())
            .collect();
        for v in all {
            v.shutdown();
        }
    }
}

/// torch-model-archiver's model name rule, which also keeps separators out of names used in paths.
fn validate_name(name: &str) -> Result<()> {
    oxserve_store::archive::validate_model_name(name)
        .map_err(|_| EngineError::InvalidArgument(format!("invalid model name `{name}`: start with a letter or digit, then use letters, digits, `_`, `-` and `.`")))
}
