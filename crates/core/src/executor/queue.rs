//! A model version's bounded FIFO queue, shared by its worker threads, for any kind of request.
//!
//! Requests are admitted from async handlers with [`JobQueue::submit`], which never blocks: a full
//! queue is refused at once with [`EngineError::Overloaded`]. Workers block in
//! [`JobQueue::next_batch`] on a condition variable; the decision of when a batch leaves is
//! [`crate::batcher::poll_batch`]. The mutex is held only to push, pop or decide, never while a batch
//! runs, so a std mutex is right here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::batcher::{BatchPolicy, Poll, poll_batch};
use crate::error::{EngineError, Result};

use super::Job;

#[derive(Debug)]
struct State<I, O> {
    jobs: VecDeque<Job<I, O>>,
    /// Set when the model is being unloaded: no new jobs, workers drain what is queued and exit.
    closed: bool,
    /// Workers waiting on the condition variable: a new job wakes one only when there is one
    /// (a notify costs a system call even when nobody waits).
    waiting: usize,
}

/// A queue seen without its request type: what describe and metrics need.
pub(crate) trait QueueView: Send + Sync + std::fmt::Debug {
    /// Requests waiting (not yet picked up by a worker).
    fn len(&self) -> usize;
    /// Most requests it holds.
    fn capacity(&self) -> usize;
    /// When its batches leave.
    fn policy(&self) -> BatchPolicy;
}

impl<I: Send + std::fmt::Debug, O: Send + std::fmt::Debug> QueueView for JobQueue<I, O> {
    fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn policy(&self) -> BatchPolicy {
        self.policy
    }
}

/// The queue of one model version.
#[derive(Debug)]
pub(crate) struct JobQueue<I, O> {
    model: String,
    capacity: usize,
    policy: BatchPolicy,
    state: Mutex<State<I, O>>,
    /// Signalled on every new job, on close and when a worker is asked to stop.
    wakeup: Condvar,
}

impl<I, O> JobQueue<I, O> {
    pub(crate) fn new(model: String, capacity: usize, policy: BatchPolicy) -> Self {
        let state = State { jobs: VecDeque::new(), closed: false, waiting: 0 };
        Self { model, capacity, policy, state: Mutex::new(state), wakeup: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State<I, O>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a job, or refuses it at once when the queue is full or closed.
    pub(crate) fn submit(&self, job: Job<I, O>) -> Result<()> {
        let mut state = self.lock();
        if state.closed {
            return Err(EngineError::Unavailable(format!(
                "model {} is being unloaded",
                self.model
            )));
        }
        if state.jobs.len() >= self.capacity {
            // Requests whose client has gone keep their places until a worker reaches them; a
            // full queue drops them first, so abandoned requests (an HTTP/2 rapid reset, clients
            // that time out) cannot keep live ones out.
            state.jobs.retain(|j| !j.reply.is_closed());
        }
        if state.jobs.len() >= self.capacity {
            return Err(EngineError::Overloaded {
                model: self.model.clone(),
                capacity: self.capacity,
            });
        }
        state.jobs.push_back(job);
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.wakeup.notify_one();
        }
        Ok(())
    }

    /// Blocks until a batch is due, and returns it. `None` when `stop` is set, or when the queue is
    /// closed and empty: the calling worker should exit.
    pub(crate) fn next_batch(&self, stop: &AtomicBool) -> Option<Vec<Job<I, O>>> {
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
                    if !state.jobs.is_empty() && state.waiting > 0 {
                        self.wakeup.notify_one();
                    }
                    return Some(batch);
                }
                Poll::WaitUntil(due) => {
                    let wait = due.saturating_duration_since(now);
                    state.waiting += 1;
                    state = self
                        .wakeup
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    state.waiting -= 1;
                }
                Poll::Empty if state.closed => return None,
                Poll::Empty => {
                    state.waiting += 1;
                    state = self.wakeup.wait(state).unwrap_or_else(PoisonError::into_inner);
                    state.waiting -= 1;
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
fn answer_abandoned<I, O>(job: Job<I, O>, now: Instant) {
    if !job.reply.is_closed() {
        let waited = now.saturating_duration_since(job.arrived);
        // The receiver may be dropped concurrently; nobody is left to tell then.
        let _ = job.reply.send(Err(EngineError::Timeout(waited)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;
    use crate::executor::Done;

    type TestJob = Job<u32, ()>;

    fn job(deadline: Duration) -> (TestJob, oneshot::Receiver<Result<Done<()>>>) {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        (
            Job {
                input: 0,
                arrived: now,
                deadline: now + deadline,
                reply: tx,
                span: tracing::Span::none(),
            },
            rx,
        )
    }

    fn queue(capacity: usize, batch_size: usize) -> JobQueue<u32, ()> {
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
    fn a_full_queue_makes_room_by_dropping_abandoned_jobs() {
        let q = queue(2, 1);
        let (a, ra) = job(Duration::from_secs(5));
        let (b, _rb) = job(Duration::from_secs(5));
        let (c, _rc) = job(Duration::from_secs(5));
        q.submit(a).unwrap();
        q.submit(b).unwrap();
        drop(ra);
        q.submit(c).unwrap();
        assert_eq!(q.len(), 2);
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
