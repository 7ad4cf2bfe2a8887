//! Worker threads: each owns one engine session and runs the batches its model's queue hands out.
//!
//! Inference never runs on the async runtime. A worker is an OS thread named after its model, so it
//! shows in `top` and in panic messages. Scaling down asks the newest workers to stop: each finishes
//! the batch in hand and leaves the queue to the others, so no queued request is lost or failed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use oxserve_backend::{Device, LoadedModel, Session, Tensor};
use tracing::{error, info, warn};

use crate::config::worker_device;
use crate::error::{EngineError, Result};
use crate::metrics::ModelMetrics;
use crate::queue::{Job, JobOutput, JobQueue};

/// Life stage of a worker, as describe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerStatus {
    /// Creating its engine session.
    Starting = 0,
    /// Taking batches from the queue.
    Ready = 1,
    /// Asked to stop; finishing its current batch.
    Stopping = 2,
    /// Its session could not be created; it retries with a growing pause.
    Failed = 3,
    /// The thread has exited.
    Stopped = 4,
}

impl WorkerStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Starting,
            1 => Self::Ready,
            2 => Self::Stopping,
            3 => Self::Failed,
            _ => Self::Stopped,
        }
    }

    /// TorchServe's spelling in describe output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "STARTING",
            Self::Ready => "READY",
            Self::Stopping => "UNLOADING",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
        }
    }
}

/// State a worker thread shares with the pool that started it.
#[derive(Debug)]
struct Shared {
    /// Why the session could not be created, while the worker is [`WorkerStatus::Failed`].
    error: std::sync::Mutex<Option<String>>,
    status: AtomicU8,
    /// Set by the pool to ask the worker to exit after its current batch.
    stop: AtomicBool,
    /// The device the worker was assigned, replaced by the one its session really runs on.
    device: std::sync::Mutex<Device>,
}

impl Shared {
    fn set(&self, status: WorkerStatus) {
        self.status.store(status as u8, Ordering::Release);
    }

    fn get(&self) -> WorkerStatus {
        WorkerStatus::from_u8(self.status.load(Ordering::Acquire))
    }
}

/// A worker as the pool sees it.
#[derive(Debug)]
struct Worker {
    id: String,
    started_at: SystemTime,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A snapshot of one worker for describe.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Worker id, unique within the model version.
    pub id: String,
    /// When its thread started.
    pub started_at: SystemTime,
    /// Current status.
    pub status: WorkerStatus,
    /// Where its session runs (after any CPU fallback), or where it was assigned before that.
    pub device: Device,
}

/// The worker threads of one model version.
#[derive(Debug)]
pub(crate) struct WorkerPool {
    label: String,
    queue: Arc<JobQueue>,
    model: Arc<dyn LoadedModel>,
    metrics: Arc<ModelMetrics>,
    /// Devices assigned round-robin by worker number ([`worker_device`]).
    devices: Vec<Device>,
    /// Folders (model store, model folder, unpacking folder) that [`Self::failure`] names files
    /// relative to, since its text reaches clients.
    hidden: Vec<std::path::PathBuf>,
    workers: Vec<Worker>,
    next_id: usize,
}

impl WorkerPool {
    pub(crate) fn new(
        label: String,
        queue: Arc<JobQueue>,
        model: Arc<dyn LoadedModel>,
        metrics: Arc<ModelMetrics>,
        devices: Vec<Device>,
        hidden: Vec<std::path::PathBuf>,
    ) -> Self {
        Self { label, queue, model, metrics, devices, hidden, workers: Vec::new(), next_id: 0 }
    }

    /// Workers not asked to stop.
    pub(crate) fn active(&self) -> usize {
        self.workers.iter().filter(|w| !w.shared.stop.load(Ordering::Acquire)).count()
    }

    /// Active workers that are taking batches.
    pub(crate) fn ready(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| {
                !w.shared.stop.load(Ordering::Acquire) && w.shared.get() == WorkerStatus::Ready
            })
            .count()
    }

    /// When every active worker has failed to start: the last reason. Requests would wait for
    /// nothing, so they are refused at once.
    pub(crate) fn failure(&self) -> Option<String> {
        let active: Vec<&Worker> =
            self.workers.iter().filter(|w| !w.shared.stop.load(Ordering::Acquire)).collect();
        if active.is_empty() || active.iter().any(|w| w.shared.get() != WorkerStatus::Failed) {
            return None;
        }
        let error = active.iter().find_map(|w| {
            w.shared.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
        })?;
        let hidden: Vec<&std::path::Path> =
            self.hidden.iter().map(std::path::PathBuf::as_path).collect();
        Some(crate::error::relative_message(error, &hidden))
    }

    pub(crate) fn infos(&self) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .map(|w| WorkerInfo {
                id: w.id.clone(),
                started_at: w.started_at,
                status: w.shared.get(),
                device: *w.shared.device.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            })
            .collect()
    }

    /// Starts or stops workers until `n` are active. Stopped workers are joined by a reaper thread so
    /// the caller never waits for a batch in flight.
    pub(crate) fn scale_to(&mut self, n: usize) {
        self.reap();
        while self.active() < n {
            self.spawn();
        }
        let mut excess = self.active().saturating_sub(n);
        for worker in self.workers.iter_mut().rev() {
            if excess == 0 {
                break;
            }
            if !worker.shared.stop.swap(true, Ordering::AcqRel) {
                worker.shared.set(WorkerStatus::Stopping);
                excess -= 1;
            }
        }
        self.queue.wake_all();
        self.reap();
    }

    /// Forgets workers asked to stop, joining them off this thread.
    fn reap(&mut self) {
        let (gone, kept): (Vec<Worker>, Vec<Worker>) = std::mem::take(&mut self.workers)
            .into_iter()
            .partition(|w| w.shared.stop.load(Ordering::Acquire));
        self.workers = kept;
        let threads: Vec<JoinHandle<()>> =
            gone.into_iter().filter_map(|mut w| w.thread.take()).collect();
        if !threads.is_empty() {
            let spawned = std::thread::Builder::new().name(format!("{}-reaper", self.label)).spawn(
                move || {
                    for t in threads {
                        let _ = t.join();
                    }
                },
            );
            if let Err(e) = spawned {
                warn!(error = %e, "could not start a thread to join stopped workers; they exit on their own");
            }
        }
    }

    fn spawn(&mut self) {
        let id = format!("W-{}-{}", self.label, self.next_id);
        let device = worker_device(&self.devices, self.next_id);
        self.next_id += 1;
        let shared = Arc::new(Shared {
            status: AtomicU8::new(WorkerStatus::Starting as u8),
            stop: AtomicBool::new(false),
            error: std::sync::Mutex::new(None),
            device: std::sync::Mutex::new(device),
        });
        let thread = {
            let (queue, model, shared, id) =
                (Arc::clone(&self.queue), Arc::clone(&self.model), Arc::clone(&shared), id.clone());
            let metrics = Arc::clone(&self.metrics);
            std::thread::Builder::new()
                .name(id.clone())
                .spawn(move || run_worker(&id, device, &queue, &*model, &shared, &metrics))
        };
        match thread {
            Ok(handle) => self.workers.push(Worker {
                id,
                started_at: SystemTime::now(),
                shared,
                thread: Some(handle),
            }),
            Err(e) => error!(worker = %id, error = %e, "could not start a worker thread"),
        }
    }

    /// Asks every worker to stop after draining the queue, and waits for them (blocking).
    pub(crate) fn shutdown(&mut self) {
        self.queue.close();
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        self.workers.clear();
    }
}

/// Longest pause between attempts to create a session that keeps failing.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

fn run_worker(
    id: &str,
    device: Device,
    queue: &JobQueue,
    model: &dyn LoadedModel,
    shared: &Shared,
    metrics: &ModelMetrics,
) {
    let mut pause = Duration::from_millis(250);
    let mut session: Option<Box<dyn Session>> = None;
    let batchable = model.signature().is_batchable();
    while !shared.stop.load(Ordering::Acquire) {
        let Some(active) = session.as_mut() else {
            let loading = Instant::now();
            match model.new_session(device) {
                Ok(s) => {
                    let runs_on = s.device();
                    *shared.device.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        runs_on;
                    session = Some(s);
                    shared.set(WorkerStatus::Ready);
                    metrics.worker_loaded(id, loading.elapsed());
                    if runs_on == device {
                        info!(worker = id, device = %runs_on, "worker ready");
                    } else {
                        warn!(worker = id, asked = %device, device = %runs_on, "worker ready on a fallback device");
                    }
                    pause = Duration::from_millis(250);
                }
                Err(e) => {
                    *shared.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(e.to_string());
                    shared.set(WorkerStatus::Failed);
                    error!(worker = id, error = %e, retry_in = ?pause, "worker could not create its session");
                    if !wait_before_retry(queue, shared, pause) {
                        break;
                    }
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
            continue;
        };
        let Some(batch) = queue.next_batch(&shared.stop) else { break };
        metrics.busy().inc();
        metrics.record_batch(batch.len());
        let healthy = run_batch(active.as_mut(), batch, batchable);
        metrics.busy().dec();
        if !healthy {
            // The engine panicked; its state may be inconsistent, so start from a fresh session.
            session = None;
            shared.set(WorkerStatus::Starting);
        }
    }
    shared.set(WorkerStatus::Stopped);
    info!(worker = id, "worker stopped");
}

/// Sleeps `pause` in short steps; `false` when the worker should give up instead (asked to stop, or
/// the model is unloading and there is no session to drain its queue with).
fn wait_before_retry(queue: &JobQueue, shared: &Shared, pause: Duration) -> bool {
    let until = Instant::now() + pause;
    while Instant::now() < until {
        if shared.stop.load(Ordering::Acquire) || queue.is_closed() {
            return false;
        }
        std::thread::sleep(
            Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())),
        );
    }
    true
}

/// Runs one batch and answers every request in it. Returns `false` when the engine panicked.
fn run_batch(session: &mut dyn Session, jobs: Vec<Job>, batchable: bool) -> bool {
    let started = Instant::now();
    // The client may have gone between batch forming and now; such requests never reach the engine.
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    let mut healthy = true;
    for group in groups(jobs, batchable) {
        healthy &= run_group(session, group, started);
    }
    healthy
}

/// Splits a batch into groups that can be stacked: jobs whose inputs share trailing dimensions, in
/// the order each shape first appears. Requests padded to different widths (text buckets) that
/// arrive interleaved still run as one group per width, not one run per change of width. Models
/// without a dynamic batch axis run one request at a time.
fn groups(jobs: Vec<Job>, batchable: bool) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        let same = batchable
            .then(|| groups.iter_mut().find(|g| g.first().is_some_and(|f| same_row_shape(f, &job))))
            .flatten();
        match same {
            Some(group) => group.push(job),
            None => groups.push(vec![job]),
        }
    }
    groups
}

fn same_row_shape(a: &Job, b: &Job) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs
            .iter()
            .zip(&b.inputs)
            .all(|(x, y)| x.dtype() == y.dtype() && x.shape().get(1..) == y.shape().get(1..))
}

fn run_group(session: &mut dyn Session, mut group: Vec<Job>, batch_started: Instant) -> bool {
    let counts: Vec<usize> = group.iter().map(|j| j.rows).collect();
    let inputs = if group.len() == 1 {
        std::mem::take(&mut group[0].inputs)
    } else {
        match stack(&group) {
            Ok(inputs) => inputs,
            Err(e) => {
                reply_all(group, &|| EngineError::Internal(e.to_string()));
                return true;
            }
        }
    };
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| session.run(inputs)));
    let inference_time = started.elapsed();
    let outputs = match result {
        Ok(Ok(outputs)) => outputs,
        Ok(Err(e)) => {
            let message = e.to_string();
            let invalid = matches!(e, oxserve_backend::BackendError::InvalidInput { .. });
            reply_all(group, &|| {
                if invalid {
                    EngineError::InvalidInput(message.clone())
                } else {
                    EngineError::Internal(message.clone())
                }
            });
            return true;
        }
        Err(_) => {
            error!("the engine panicked while running a batch; the worker starts a fresh session");
            reply_all(group, &|| {
                EngineError::Internal("the engine panicked while running this request".into())
            });
            return false;
        }
    };
    let per_job = match split(outputs, &counts) {
        Ok(parts) => parts,
        Err(e) => {
            reply_all(group, &|| EngineError::Internal(e.to_string()));
            return true;
        }
    };
    let batch_size = group.len();
    for (job, outputs) in group.into_iter().zip(per_job) {
        let output = JobOutput {
            outputs,
            queue_time: batch_started.saturating_duration_since(job.arrived),
            inference_time,
            batch_size,
        };
        let _ = job.reply.send(Ok(output));
    }
    true
}

fn stack(group: &[Job]) -> Result<Vec<Tensor>> {
    let n_inputs = group[0].inputs.len();
    (0..n_inputs)
        .map(|i| {
            let parts: Vec<&Tensor> = group.iter().map(|j| &j.inputs[i]).collect();
            Tensor::concat_rows(&parts).map_err(EngineError::from)
        })
        .collect()
}

/// Splits every output by rows into one output list per job. A single job takes its outputs whole,
/// which also serves models whose outputs have no batch axis.
fn split(outputs: Vec<Tensor>, counts: &[usize]) -> Result<Vec<Vec<Tensor>>> {
    if counts.len() == 1 {
        return Ok(vec![outputs]);
    }
    let mut per_job: Vec<Vec<Tensor>> =
        counts.iter().map(|_| Vec::with_capacity(outputs.len())).collect();
    for output in &outputs {
        for (slot, piece) in per_job.iter_mut().zip(output.split_rows(counts)?) {
            slot.push(piece);
        }
    }
    Ok(per_job)
}

fn reply_all(group: Vec<Job>, error: &dyn Fn() -> EngineError) {
    for job in group {
        job.span.in_scope(|| warn!(error = %error(), "batch failed"));
        let _ = job.reply.send(Err(error()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use oxserve_backend::{Tensor, TensorData};
    use tokio::sync::oneshot;

    use super::*;

    /// A one-row job whose single input is `width` wide, tagged by its first value.
    fn job(width: usize, tag: f32) -> Job {
        let (reply, _) = oneshot::channel();
        let now = Instant::now();
        let mut data = vec![0.0; width];
        data[0] = tag;
        Job {
            inputs: vec![Tensor::new(vec![1, width], TensorData::F32(data)).expect("valid")],
            rows: 1,
            arrived: now,
            deadline: now + Duration::from_secs(5),
            reply,
            span: tracing::Span::none(),
        }
    }

    fn tags(groups: &[Vec<Job>]) -> Vec<Vec<f32>> {
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|j| match j.inputs[0].data() {
                        TensorData::F32(v) => v[0],
                        _ => unreachable!("f32 test jobs"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn interleaved_widths_form_one_group_per_width_in_arrival_order() {
        let jobs = vec![job(16, 1.0), job(32, 2.0), job(16, 3.0), job(32, 4.0), job(16, 5.0)];
        let groups = groups(jobs, true);
        assert_eq!(tags(&groups), [vec![1.0, 3.0, 5.0], vec![2.0, 4.0]]);
    }

    #[test]
    fn a_model_without_a_batch_axis_runs_each_job_alone() {
        let groups = groups(vec![job(16, 1.0), job(16, 2.0)], false);
        assert_eq!(tags(&groups), [vec![1.0], vec![2.0]]);
    }
}
