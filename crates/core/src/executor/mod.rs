//! The request executor: a model version's bounded queue, its arrival-clock batches and the worker
//! threads that run them, for any kind of request.
//!
//! What a request carries and what runs it is an [`Executor`]'s business: [`native`] stacks tensors
//! into an in-process engine session; a worker-process executor sends raw requests to a process
//! and reads per-request answers back. Both share the rest: admission into a bounded queue
//! ([`JobQueue::submit`] refuses at once when full), the batch decision
//! ([`crate::batcher::poll_batch`]), dropping requests whose client left or whose deadline passed
//! before they run, workers that start, fail and retry with back-off, scaling, a caught panic
//! failing only its batch, and the per-request timings metrics and describe show.

use std::fmt;
use std::time::{Duration, Instant};

use oxserve_backend::Device;
use tokio::sync::oneshot;

use crate::batcher::Queued;
use crate::error::{EngineError, Result};

pub(crate) mod native;
mod pool;
mod queue;

pub(crate) use pool::{Pool, WorkerPool};
pub use pool::{WorkerInfo, WorkerStatus};
pub(crate) use queue::{JobQueue, QueueView};

/// Runs batches of one model version's requests. The pool calls it from worker threads, never from
/// the async runtime, so it may block.
pub trait Executor: Send + Sync + fmt::Debug + 'static {
    /// One request as it waits in the queue.
    type Input: Send + fmt::Debug + 'static;
    /// One request's answer.
    type Output: Send + fmt::Debug + 'static;
    /// What one worker keeps between batches: an engine session, a worker process.
    type Worker: Send + 'static;

    /// Starts one worker asked to run on `device`, returning it and the device it really runs on
    /// (after any fallback).
    ///
    /// # Errors
    /// Why the worker cannot start; the pool retries with a growing pause and shows the reason in
    /// readiness and in the answers to requests that find no worker.
    fn start(&self, device: Device) -> std::result::Result<(Self::Worker, Device), StartError>;

    /// Runs one batch (in arrival order) and answers every request in it, in the same order.
    /// After `until` nobody waits for any of its answers (every request's deadline has passed): an
    /// executor that can give up on a batch (kill a worker process) does so then, so the requests
    /// queued behind it get a worker while their clients still wait.
    fn run(
        &self,
        worker: &mut Self::Worker,
        batch: Vec<Self::Input>,
        until: Instant,
    ) -> Ran<Self::Output>;

    /// The process a worker runs in, when that is not the server (describe shows it).
    fn pid(&self, _worker: &Self::Worker) -> Option<u32> {
        None
    }
}

/// Why a worker could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    /// The HTTP status a registration that waited for the worker answers with: TorchServe's 507
    /// when loading ran out of memory, 500 for any other failure.
    pub status: u16,
    /// What went wrong; it reaches clients, so it names files relative to the model folder.
    pub message: String,
}

impl From<String> for StartError {
    fn from(message: String) -> Self {
        Self { status: 500, message }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What running one batch gave.
#[derive(Debug)]
pub struct Ran<O> {
    /// One answer per request, in the batch's order.
    pub answers: Vec<Result<O>>,
    /// Time spent running the batch, shown as each request's inference time.
    pub took: Duration,
    /// Whether the worker must be started afresh before its next batch (its state may be broken).
    pub restart: bool,
}

impl<O> Ran<O> {
    /// Every request of a batch of `n` answered with the same error.
    pub fn failed(
        n: usize,
        error: &dyn Fn() -> EngineError,
        took: Duration,
        restart: bool,
    ) -> Self {
        Self { answers: (0..n).map(|_| Err(error())).collect(), took, restart }
    }
}

/// One request waiting for a worker.
#[derive(Debug)]
pub(crate) struct Job<I, O> {
    pub(crate) input: I,
    /// When it was queued; the batch delay clock starts here.
    pub(crate) arrived: Instant,
    /// After this instant nobody waits for the answer any more.
    pub(crate) deadline: Instant,
    /// Where the answer goes. Closed when the client has gone.
    pub(crate) reply: oneshot::Sender<Result<Done<O>>>,
    /// The request's tracing span, entered by the worker so its log lines carry the request id.
    pub(crate) span: tracing::Span,
}

impl<I, O> Queued for Job<I, O> {
    fn arrived(&self) -> Instant {
        self.arrived
    }

    fn is_abandoned(&self, now: Instant) -> bool {
        self.reply.is_closed() || now >= self.deadline
    }
}

/// A request's answer from its worker, with where its time went.
#[derive(Debug)]
pub struct Done<O> {
    /// The executor's answer.
    pub output: O,
    /// Time from arrival until its batch started.
    pub queue_time: Duration,
    /// Time the worker spent on the batch this request ran in.
    pub inference_time: Duration,
    /// Requests in that batch.
    pub batch_size: usize,
}
