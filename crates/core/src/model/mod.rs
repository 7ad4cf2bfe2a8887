//! One loaded model version: what it runs ([`load`]), who may enter ([`admission`]), the path a
//! request takes ([`request`]), and its live state for readiness, scaling and describe.
//!
//! A version runs either natively (an engine session in each worker thread, the handler in the
//! server) or hosted (each worker a process that runs the handler, see [`crate::hosted`]). Both
//! share admission, the queue's bounds, batching, the worker pool, scaling, metrics and describe;
//! only what a queued request carries differs ([`Runner`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use oxserve_backend::{LoadedModel, Signature, Tensor};
use oxserve_store::archive::UnpackedModel;

use crate::batcher::BatchPolicy;
use crate::config::ModelSettings;
use crate::executor::native::{NativeExecutor, Rows};
use crate::executor::{JobQueue, Pool, QueueView, StartError, WorkerInfo, WorkerStatus};
use crate::handler::Handler;
use crate::hosted::{HostedAnswer, HostedRequest};
use crate::metrics::ModelMetrics;

mod admission;
mod load;
mod request;

pub use admission::Ticket;
pub(crate) use load::{LoadSpec, Loaders};
pub use request::RequestOptions;

/// A model version that is loaded and serving.
#[derive(Debug)]
pub struct ModelVersion {
    name: String,
    version: String,
    url: String,
    /// The engine (native) or the worker runtime (hosted) running it.
    engine: &'static str,
    handler_name: String,
    /// Intra-op threads asked of the engine per session (`None`: its default).
    intra_op_threads: Option<usize>,
    /// Admission permits: a request holds one from before its body is read until it is answered,
    /// so a burst of clients cannot make the server hold more bodies than it could ever queue.
    admission: admission::Admissions,
    loaded_at_startup: bool,
    runner: Runner,
    settings: Mutex<ModelSettings>,
    pool: Mutex<Box<dyn Pool>>,
    metrics: Arc<ModelMetrics>,
    /// Keeps an extracted archive on disk for as long as the version is loaded.
    _files: UnpackedModel,
}

/// What a version's queued requests carry and what runs them.
#[derive(Debug)]
enum Runner {
    /// Tensors for an engine session in each worker thread; the handler runs in the server.
    Native {
        model: Arc<dyn LoadedModel>,
        handler: Arc<dyn Handler>,
        queue: Arc<JobQueue<Rows, Vec<Tensor>>>,
        /// Runs its batches; requests that can run inline go to it directly.
        executor: Arc<NativeExecutor>,
        /// Where the handler's preprocess and postprocess run.
        stages: [crate::placement::Placement; 2],
    },
    /// Raw requests for the handler in each worker process.
    Hosted { queue: Arc<JobQueue<HostedRequest, HostedAnswer>> },
}

/// A hosted model has no tensor signature: its handler takes whatever the client sends.
static NO_SIGNATURE: Signature = Signature { inputs: Vec::new(), outputs: Vec::new() };

/// A model version's state as describe shows it, in the core's terms; each API writes it in its
/// own wire format.
#[derive(Debug, Clone)]
pub struct VersionStatus {
    /// Registered name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// What it was registered from.
    pub url: String,
    /// The engine running it, or the worker runtime (`python`) when [`Self::hosted`].
    pub engine: &'static str,
    /// Whether its handler runs in worker processes.
    pub hosted: bool,
    /// The handler's name as the archive gave it (`tensor` when it named none).
    pub handler: String,
    /// Settings in force.
    pub settings: ModelSettings,
    /// Whether it was named at startup.
    pub loaded_at_startup: bool,
    /// Intra-op threads per worker session; `None` when the engine's default is used.
    pub intra_op_threads: Option<usize>,
    /// Its workers, oldest first.
    pub workers: Vec<WorkerInfo>,
    /// Requests waiting in its queue.
    pub pending: usize,
    /// Its queue's capacity.
    pub capacity: usize,
}

impl ModelVersion {
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

    /// Inputs and outputs; empty for a hosted model.
    pub fn signature(&self) -> &Signature {
        match &self.runner {
            Runner::Native { model, .. } => model.signature(),
            Runner::Hosted { .. } => &NO_SIGNATURE,
        }
    }

    /// Name of the engine running it (`python` and other worker runtimes for a hosted model).
    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// Whether its handler runs in worker processes ([`Ticket::forward`]) rather than in the
    /// server ([`Ticket::predict`], [`Ticket::infer`]).
    pub fn is_hosted(&self) -> bool {
        matches!(self.runner, Runner::Hosted { .. })
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
        self.queue().len()
    }

    /// The queue, whichever kind of request it holds.
    fn queue(&self) -> &dyn QueueView {
        match &self.runner {
            Runner::Native { queue, .. } => &**queue,
            Runner::Hosted { queue } => &**queue,
        }
    }

    fn pool(&self) -> MutexGuard<'_, Box<dyn Pool>> {
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
            return Some(format!("its workers cannot start: {}", error.message));
        }
        let ready = pool.ready();
        (ready < min).then(|| format!("{ready} of its minimum {min} workers are ready"))
    }

    /// Why the version cannot answer a request now, or `None` when it can: not ready, or ready
    /// with no worker at all (`minWorkers` 0). The Open Inference Protocol's model readiness.
    pub fn not_serving_reason(&self) -> Option<String> {
        self.not_ready_reason()
            .or_else(|| (self.ready_workers() == 0).then(|| "it has no workers".to_owned()))
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
        matches!(self.wait_started(n, timeout).await, Ok(true))
    }

    /// Waits until `n` workers are ready (`Ok(true)`), `timeout` passes (`Ok(false)`) or every
    /// worker has failed to start (the reason).
    pub(crate) async fn wait_started(
        &self,
        n: usize,
        timeout: Duration,
    ) -> std::result::Result<bool, StartError> {
        let until = Instant::now() + timeout;
        loop {
            {
                let pool = self.pool();
                if pool.ready() >= n {
                    return Ok(true);
                }
                if let Some(failure) = pool.failure() {
                    return Err(failure);
                }
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops taking requests, lets workers finish what is queued, and waits for them. Blocking.
    pub(crate) fn shutdown(&self) {
        self.pool().shutdown();
        self.metrics.remove();
    }

    /// The version's live state, for describe.
    pub fn status(&self) -> VersionStatus {
        let pending = self.queue().len();
        VersionStatus {
            name: self.name.clone(),
            version: self.version.clone(),
            url: self.url.clone(),
            engine: self.engine,
            hosted: self.is_hosted(),
            handler: self.handler_name.clone(),
            settings: self.settings(),
            loaded_at_startup: self.loaded_at_startup,
            intra_op_threads: self.intra_op_threads,
            workers: self.pool().infos(),
            pending,
            capacity: self.queue().capacity(),
        }
    }

    /// The batch policy in force.
    pub fn batch_policy(&self) -> BatchPolicy {
        self.queue().policy()
    }

    /// Workers that have failed to start and are retrying.
    pub fn failed_workers(&self) -> usize {
        self.pool().infos().iter().filter(|w| w.status == WorkerStatus::Failed).count()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
