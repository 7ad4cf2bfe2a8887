//! A model version's bounded FIFO queue, shared by its worker threads.
//!
//! Requests are admitted from async handlers with [`JobQueue::submit`], which never blocks: a full
//! queue is refused at once with [`EngineError::Overloaded`]. Workers block in
//! [`JobQueue::next_batch`] on a condition variable; the decision of when a batch leaves is
//! [`crate::batcher::poll_batch`]. The mutex is held only to push, pop or decide, never while a batch
//! runs, so a std mutex is right here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use oxserve_backend::Tensor;
use tokio::sync::oneshot;

use crate::batcher::{BatchPolicy, Poll, Queued, poll_batch};
use crate::error::{EngineError, Result};

/// One request waiting for a worker.
#[derive(Debug)]
pub(crate) struct Job {
    /// Model inputs in signature order; each has this request's rows as its first dimension.
    pub(crate) inputs: Vec<Tensor>,
    /// Rows this request contributes to a batch.
    pub(crate) rows: usize,
    /// When it was queued; the batch delay clock starts here.
    pub(crate) arrived: Instant,
    /// After this instant nobody waits for the answer any more.
    pub(crate) deadline: Instant,
    /// Where the answer goes. Closed when the client has gone.
    pub(crate) reply: oneshot::Sender<Result<JobOutput>>,
    /// The request's tracing span, entered by the worker so its log lines carry the request id.
    pub(crate) span: tracing::Span,
}

impl Queued for Job {
    fn arrived(&self) -> Instant {
        self.arrived
    }

    fn is_abandoned(&self, now: Instant) -> bool {
        self.reply.is_closed() || now >= self.deadline
    }
}

/// What a worker sends back for one request.
#[derive(Debug)]
pub struct JobOutput {
    /// Outputs in signature order, with this request's rows.
    pub outputs: Vec<Tensor>,
    /// Time from arrival until its batch started.
    pub queue_time: Duration,
    /// Time the engine spent on the batch this request ran in.
    pub inference_time: Duration,
    /// Requests in that batch.
    pub batch_size: usize,
}

#[derive(Debug, Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Set when the model is being unloaded: no new jobs, workers drain what is queued and exit.
    closed: bool,
}

/// The queue of one model version.
#[derive(Debug)]
pub(crate) struct JobQueue {
    model: String,
    capacity: usize,
    policy: BatchPolicy,
    state: Mutex<State>,
    /// Signalled on every new job, on close and when a worker is asked to stop.
    wakeup: Condvar,
}

impl JobQueue {
    pub(crate) fn new(model: String, capacity: usize, policy: BatchPolicy) -> Self {
        Self { model, capacity, policy, state: Mutex::default(), wakeup: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn policy(&self) -> BatchPolicy {
        self.policy
    }

    /// Requests waiting (not yet picked up by a worker).
    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Queues a job, or refuses it at once when the queue is full or closed.
    pub(crate) fn submit(&self, job: Job) -> Result<()> {
        let mut state = self.lock();
        if state.closed {
            return Err(EngineError::Unavailable(format!(
                "model {} is being unloaded",
                self.model
            )));
        }
        if state.jobs.len() >= self.capacity {
            return Err(EngineError::Overloaded {
                model: self.model.clone(),
                capacity: self.capacity,
            });
        }
        state.jobs.push_back(job);
        drop(state);
        self.wakeup.notify_one();
        Ok(())
    }

    /// Blocks until a batch is due, and returns it. `None` when `stop` is set, or when the queue is
    /// closed and empty: the calling worker should exit.
    pub(crate) fn next_batch(&self, stop: &AtomicBool) -> Option<Vec<Job>> {
        let mut state = self.lock();
        loop {
            if stop.load(Ordering::Acquire) {
                return None;
            }
            let now = Instant::now();
            let mut dropped = Vec::new();
            let poll = poll_batch(&mut state.jobs, &self.policy, now, &mut dropped);
            for job in dropped {
                answer_abandoned(job, now);
            }
            match poll {
                Poll::Ready(batch) => {
                    // Another worker may be able to take the next batch right away.
                    if !state.jobs.is_empty() {
                        self.wakeup.notify_one();
                    }
                    return Some(batch);
                }
                Poll::WaitUntil(due) => {
                    let wait = due.saturating_duration_since(now);
                    state = self
                        .wakeup
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Poll::Empty if state.closed => return None,
                Poll::Empty => {
                    state = self.wakeup.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Wakes every waiting worker so that those asked to stop notice.
    pub(crate) fn wake_all(&self) {
        self.wakeup.notify_all();
    }

    /// Whether [`Self::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Refuses new jobs; workers finish what is queued, then exit.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wakeup.notify_all();
    }
}

/// A job dropped before running: the client is gone (nothing to send) or its deadline passed.
fn answer_abandoned(job: Job, now: Instant) {
    if !job.reply.is_closed() {
        let waited = now.saturating_duration_since(job.arrived);
        // The receiver may be dropped concurrently; nobody is left to tell then.
        let _ = job.reply.send(Err(EngineError::Timeout(waited)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxserve_backend::TensorData;
    use std::sync::Arc;

    fn job(deadline: Duration) -> (Job, oneshot::Receiver<Result<JobOutput>>) {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let t = Tensor::new(vec![1, 1], TensorData::F32(vec![0.0])).unwrap();
        (
            Job {
                inputs: vec![t],
                rows: 1,
                arrived: now,
                deadline: now + deadline,
                reply: tx,
                span: tracing::Span::none(),
            },
            rx,
        )
    }

    fn queue(capacity: usize, batch_size: usize) -> JobQueue {
        JobQueue::new(
            "m".into(),
            capacity,
            BatchPolicy { batch_size, max_batch_delay: Duration::from_millis(10) },
        )
    }

    #[test]
    fn full_queue_refuses_at_once() {
        let q = queue(2, 1);
        let (a, _ra) = job(Duration::from_secs(5));
        let (b, _rb) = job(Duration::from_secs(5));
        let (c, _rc) = job(Duration::from_secs(5));
        q.submit(a).unwrap();
        q.submit(b).unwrap();
        assert!(matches!(q.submit(c), Err(EngineError::Overloaded { capacity: 2, .. })));
    }

    #[test]
    fn cancelled_jobs_never_come_out() {
        let q = queue(4, 1);
        let (a, ra) = job(Duration::from_secs(5));
        let (b, _rb) = job(Duration::from_secs(5));
        q.submit(a).unwrap();
        q.submit(b).unwrap();
        drop(ra);
        let batch = q.next_batch(&AtomicBool::new(false)).unwrap();
        assert_eq!(batch.len(), 1);
        assert!(!batch[0].reply.is_closed());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn expired_jobs_are_answered_with_a_timeout() {
        let q = queue(4, 1);
        let (a, mut ra) = job(Duration::ZERO);
        q.submit(a).unwrap();
        q.close();
        assert!(q.next_batch(&AtomicBool::new(false)).is_none());
        assert!(matches!(ra.try_recv(), Ok(Err(EngineError::Timeout(_)))));
    }

    #[test]
    fn closed_queue_drains_then_ends_and_refuses_new_jobs() {
        let q = queue(4, 8);
        let (a, _ra) = job(Duration::from_secs(5));
        q.submit(a).unwrap();
        q.close();
        let (b, _rb) = job(Duration::from_secs(5));
        assert!(matches!(q.submit(b), Err(EngineError::Unavailable(_))));
        assert_eq!(q.next_batch(&AtomicBool::new(false)).map(|b| b.len()), Some(1));
        assert!(q.next_batch(&AtomicBool::new(false)).is_none());
    }

    #[test]
    fn stop_flag_wakes_a_waiting_worker() {
        let q = Arc::new(queue(4, 1));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (q, stop) = (Arc::clone(&q), Arc::clone(&stop));
            std::thread::spawn(move || q.next_batch(&stop).is_none())
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Release);
        q.wake_all();
        assert!(worker.join().unwrap());
    }
}
