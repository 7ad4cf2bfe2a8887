//! Worker threads: each owns one [`Executor`] worker (an engine session, a worker process) and runs
//! the batches its model's queue hands out.
//!
//! Inference never runs on the async runtime. A worker is an OS thread named after its model, so it
//! shows in `top` and in panic messages. Scaling down asks the newest workers to stop: each finishes
//! the batch in hand and leaves the queue to the others, so no queued request is lost or failed.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use oxserve_backend::Device;
use tracing::{error, info, warn};

use super::{Done, Executor, Job, JobQueue, Ran, StartError};
use crate::config::worker_device;
use crate::error::EngineError;
use crate::metrics::ModelMetrics;

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
    error: std::sync::Mutex<Option<StartError>>,
    status: AtomicU8,
    /// Set by the pool to ask the worker to exit after its current batch.
    stop: AtomicBool,
    /// The device the worker was assigned, replaced by the one its session really runs on.
    device: std::sync::Mutex<Device>,
    /// The process running its batches when that is not the server (0: the server).
    pid: AtomicU32,
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
    /// The worker process running its batches; `None` when that is the server itself.
    pub pid: Option<u32>,
}

/// The worker threads of one model version.
#[derive(Debug)]
pub(crate) struct WorkerPool<E: Executor + ?Sized> {
    label: String,
    queue: Arc<JobQueue<E::Input, E::Output>>,
    executor: Arc<E>,
    metrics: Arc<ModelMetrics>,
    /// Devices assigned round-robin by worker number ([`worker_device`]).
    devices: Vec<Device>,
    /// Folders (model store, model folder, unpacking folder) that [`Self::failure`] names files
    /// relative to, since its text reaches clients.
    hidden: Vec<std::path::PathBuf>,
    workers: Vec<Worker>,
    next_id: usize,
}

impl<E: Executor + ?Sized> WorkerPool<E> {
    pub(crate) fn new(
        label: String,
        queue: Arc<JobQueue<E::Input, E::Output>>,
        executor: Arc<E>,
        metrics: Arc<ModelMetrics>,
        devices: Vec<Device>,
        hidden: Vec<std::path::PathBuf>,
    ) -> Self {
        Self { label, queue, executor, metrics, devices, hidden, workers: Vec::new(), next_id: 0 }
    }

    /// The queue its workers take batches from.
    #[cfg(test)]
    pub(crate) fn queue(&self) -> &Arc<JobQueue<E::Input, E::Output>> {
        &self.queue
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
            pid: AtomicU32::new(0),
        });
        let thread = {
            let (queue, executor, shared, id) = (
                Arc::clone(&self.queue),
                Arc::clone(&self.executor),
                Arc::clone(&shared),
                id.clone(),
            );
            let metrics = Arc::clone(&self.metrics);
            std::thread::Builder::new()
                .name(id.clone())
                .spawn(move || run_worker(&id, device, &queue, &*executor, &shared, &metrics))
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
}

/// A worker pool seen without its request type: what readiness, scaling and describe need.
pub(crate) trait Pool: Send + fmt::Debug {
    /// Workers not asked to stop.
    fn active(&self) -> usize;
    /// Active workers that are taking batches.
    fn ready(&self) -> usize;
    /// When every active worker has failed to start: the last reason.
    fn failure(&self) -> Option<StartError>;
    /// Each worker's state, oldest first.
    fn infos(&self) -> Vec<WorkerInfo>;
    /// Starts or stops workers until `n` are active. Stopped workers are joined by a reaper
    /// thread, so the caller never waits for a batch in flight.
    fn scale_to(&mut self, n: usize);
    /// Stops every worker after the queue drains, and waits for them (blocking).
    fn shutdown(&mut self);
}

impl<E: Executor + ?Sized> Pool for WorkerPool<E> {
    fn active(&self) -> usize {
        self.workers.iter().filter(|w| !w.shared.stop.load(Ordering::Acquire)).count()
    }

    fn ready(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| {
                !w.shared.stop.load(Ordering::Acquire) && w.shared.get() == WorkerStatus::Ready
            })
            .count()
    }

    fn failure(&self) -> Option<StartError> {
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
        Some(StartError {
            status: error.status,
            message: crate::error::relative_message(error.message, &hidden),
        })
    }

    fn infos(&self) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .map(|w| WorkerInfo {
                id: w.id.clone(),
                started_at: w.started_at,
                status: w.shared.get(),
                device: *w.shared.device.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                pid: Some(w.shared.pid.load(Ordering::Acquire)).filter(|p| *p != 0),
            })
            .collect()
    }

    fn scale_to(&mut self, n: usize) {
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

    fn shutdown(&mut self) {
        self.queue.close();
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        self.workers.clear();
    }
}

/// Pauses, in seconds, before the next start of a worker that keeps failing (TorchServe's
/// Fibonacci back-off, capped at its 55 s step): the first restart after a failure is at once, so a
/// worker that dies once (a killed process, a panic) is back without delay; each further failure
/// with no batch answered in between waits the next step. A batch answered resets it.
const BACK_OFF_SECS: [u64; 11] = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55];

/// The pause before a restart after `failures` consecutive failures.
fn back_off(failures: usize) -> Duration {
    Duration::from_secs(BACK_OFF_SECS[failures.min(BACK_OFF_SECS.len() - 1)])
}

fn run_worker<E: Executor + ?Sized>(
    id: &str,
    device: Device,
    queue: &JobQueue<E::Input, E::Output>,
    executor: &E,
    shared: &Shared,
    metrics: &ModelMetrics,
) {
    // Failed starts and broken batches since the last batch answered.
    let mut failures = 0_usize;
    let mut worker: Option<E::Worker> = None;
    while !shared.stop.load(Ordering::Acquire) {
        let Some(active) = worker.as_mut() else {
            let loading = Instant::now();
            match catch_unwind(AssertUnwindSafe(|| executor.start(device))) {
                Ok(Ok((started, runs_on))) => {
                    *shared.device.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        runs_on;
                    shared.pid.store(executor.pid(&started).unwrap_or(0), Ordering::Release);
                    worker = Some(started);
                    shared.set(WorkerStatus::Ready);
                    metrics.worker_loaded(id, loading.elapsed());
                    if runs_on == device {
                        info!(worker = id, device = %runs_on, "worker ready");
                    } else {
                        warn!(worker = id, asked = %device, device = %runs_on, "worker ready on a fallback device");
                    }
                }
                failed => {
                    let e = match failed {
                        Ok(Err(e)) => e,
                        _ => StartError::from("the worker panicked while starting".to_owned()),
                    };
                    *shared.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(e.clone());
                    shared.set(WorkerStatus::Failed);
                    let pause = back_off(failures);
                    failures += 1;
                    error!(worker = id, error = %e, retry_in = ?pause, "worker could not start");
                    if !wait_before_retry(queue, shared, pause) {
                        break;
                    }
                }
            }
            continue;
        };
        let Some(batch) = queue.next_batch(&shared.stop) else { break };
        metrics.busy().inc();
        let healthy = run_batch(executor, active, batch, metrics);
        metrics.busy().dec();
        if healthy {
            failures = 0;
        } else {
            // The worker's state may be broken (a panic, a dead process): start afresh.
            worker = None;
            shared.pid.store(0, Ordering::Release);
            shared.set(WorkerStatus::Starting);
            let pause = back_off(failures);
            failures += 1;
            if !pause.is_zero() {
                warn!(worker = id, failures, retry_in = ?pause, "worker broke again before answering a batch; restarting after a pause");
                if !wait_before_retry(queue, shared, pause) {
                    break;
                }
            }
        }
    }
    shared.set(WorkerStatus::Stopped);
    info!(worker = id, "worker stopped");
}

/// Sleeps `pause` in short steps; `false` when the worker should give up instead (asked to stop, or
/// the model is unloading and there is no worker to drain its queue with).
fn wait_before_retry<I, O>(queue: &JobQueue<I, O>, shared: &Shared, pause: Duration) -> bool {
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

/// Runs one batch and answers every request in it. Returns `false` when the worker must restart.
fn run_batch<E: Executor + ?Sized>(
    executor: &E,
    worker: &mut E::Worker,
    jobs: Vec<Job<E::Input, E::Output>>,
    metrics: &ModelMetrics,
) -> bool {
    let started = Instant::now();
    // The client may have gone between batch forming and now; such requests never run.
    let jobs: Vec<_> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    if jobs.is_empty() {
        return true;
    }
    let n = jobs.len();
    let (inputs, waiting): (Vec<E::Input>, Vec<_>) =
        jobs.into_iter().map(|j| (j.input, (j.arrived, j.reply, j.span, j.deadline))).unzip();
    let until = waiting.iter().map(|w| w.3).max().unwrap_or(started);
    let ran = match catch_unwind(AssertUnwindSafe(|| executor.run(worker, inputs, until))) {
        Ok(ran) if ran.answers.len() == n => ran,
        Ok(ran) => {
            error!(
                asked = n,
                answered = ran.answers.len(),
                "a worker answered a batch with the wrong count"
            );
            Ran::failed(
                n,
                &|| EngineError::Internal("the worker lost this request".into()),
                ran.took,
                true,
            )
        }
        Err(_) => {
            error!("the worker panicked while running a batch; it starts afresh");
            let error =
                || EngineError::Internal("the worker panicked while running this request".into());
            Ran::failed(n, &error, started.elapsed(), true)
        }
    };
    metrics.record_batch(n, ran.took);
    for ((arrived, reply, span, _), answer) in waiting.into_iter().zip(ran.answers) {
        let answer = answer.map(|output| Done {
            output,
            queue_time: started.saturating_duration_since(arrived),
            inference_time: ran.took,
            batch_size: n,
        });
        if let Err(e) = &answer {
            span.in_scope(|| warn!(error = %e, "batch failed"));
        }
        let _ = reply.send(answer);
    }
    !ran.restart
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::oneshot;

    use super::*;
    use crate::batcher::BatchPolicy;
    use crate::error::Result;
    use crate::metrics::Metrics;

    /// An executor of text, to show that the queue and the pool carry any payload: it answers each
    /// request with its text and the size of its batch, and panics when asked to.
    #[derive(Debug, Default)]
    struct Echo {
        started: AtomicUsize,
    }

    impl Executor for Echo {
        type Input = String;
        type Output = (String, usize);
        type Worker = ();

        fn start(&self, device: Device) -> std::result::Result<((), Device), StartError> {
            self.started.fetch_add(1, Ordering::SeqCst);
            Ok(((), device))
        }

        fn run(
            &self,
            _worker: &mut (),
            batch: Vec<String>,
            _until: Instant,
        ) -> Ran<(String, usize)> {
            assert!(!batch.iter().any(|s| s == "panic"), "asked to panic");
            let n = batch.len();
            let answers = batch.into_iter().map(|s| Ok((s, n))).collect();
            Ran { answers, took: Duration::from_millis(1), restart: false }
        }
    }

    type Reply = oneshot::Receiver<Result<Done<(String, usize)>>>;

    fn pool(batch_size: usize, delay: Duration) -> (WorkerPool<Echo>, Arc<Echo>) {
        let policy = BatchPolicy { batch_size, max_batch_delay: delay };
        let queue = Arc::new(JobQueue::new("echo".into(), 16, policy));
        let echo = Arc::new(Echo::default());
        let metrics = Arc::new(Metrics::new("test".into(), None).for_model("echo", "1"));
        let pool = WorkerPool::new(
            "echo_1".into(),
            queue,
            Arc::clone(&echo),
            metrics,
            vec![Device::Cpu],
            Vec::new(),
        );
        (pool, echo)
    }

    fn submit(pool: &WorkerPool<Echo>, text: &str) -> Reply {
        let (reply, answer) = oneshot::channel();
        let now = Instant::now();
        let job = Job {
            input: text.to_owned(),
            arrived: now,
            deadline: now + Duration::from_secs(30),
            reply,
            span: tracing::Span::none(),
        };
        pool.queue().submit(job).expect("room in the queue");
        answer
    }

    #[test]
    fn requests_of_any_payload_share_the_batcher_and_the_workers() {
        let (mut pool, _) = pool(4, Duration::from_secs(30));
        let answers: Vec<Reply> = ["a", "b", "c", "d"].iter().map(|t| submit(&pool, t)).collect();
        pool.scale_to(1);
        for (answer, text) in answers.into_iter().zip(["a", "b", "c", "d"]) {
            let done = answer.blocking_recv().expect("answered").expect("ran");
            assert_eq!(done.output, (text.to_owned(), 4));
            assert_eq!(done.batch_size, 4);
            assert_eq!(done.inference_time, Duration::from_millis(1));
        }
        pool.shutdown();
    }

    #[test]
    fn a_panic_fails_only_its_batch_and_the_worker_starts_afresh() {
        let (mut pool, echo) = pool(1, Duration::ZERO);
        pool.scale_to(1);
        let failed = submit(&pool, "panic").blocking_recv().expect("answered");
        assert!(matches!(failed, Err(EngineError::Internal(_))), "{failed:?}");
        let done = submit(&pool, "next").blocking_recv().expect("answered").expect("ran");
        assert_eq!(done.output.0, "next");
        assert_eq!(echo.started.load(Ordering::SeqCst), 2);
        pool.shutdown();
    }

    #[test]
    fn a_worker_that_keeps_breaking_is_restarted_after_torchserve_s_pauses() {
        let steps: Vec<u64> = (0..13).map(|n| back_off(n).as_secs()).collect();
        assert_eq!(steps, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 55, 55]);
        let (mut pool, echo) = pool(1, Duration::ZERO);
        pool.scale_to(1);
        assert!(submit(&pool, "panic").blocking_recv().expect("answered").is_err());
        // The second failure in a row: the next start waits the first step (1 s) at least.
        assert!(submit(&pool, "panic").blocking_recv().expect("answered").is_err());
        let broke = Instant::now();
        let done = submit(&pool, "next").blocking_recv().expect("answered").expect("ran");
        assert_eq!(done.output.0, "next");
        assert!(broke.elapsed() >= Duration::from_secs(1), "restarted after {:?}", broke.elapsed());
        assert_eq!(echo.started.load(Ordering::SeqCst), 3);
        pool.shutdown();
    }

    #[test]
    fn requests_whose_client_left_are_not_run() {
        let (mut pool, _) = pool(2, Duration::from_secs(30));
        drop(submit(&pool, "gone"));
        let kept = submit(&pool, "kept");
        let other = submit(&pool, "other");
        pool.scale_to(1);
        let done = kept.blocking_recv().expect("answered").expect("ran");
        // The abandoned request left the queue before the batch formed: the batch is the two others.
        assert_eq!(done.output, ("kept".to_owned(), 2));
        assert!(other.blocking_recv().expect("answered").is_ok());
        pool.shutdown();
    }
}
