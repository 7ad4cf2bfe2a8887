//! Where CPU work of a request runs: on the async thread that holds the request, or elsewhere (the
//! blocking pool for handler stages, a worker thread for the engine).
//!
//! Decoding a small JSON tensor, writing a small answer or running a tiny model takes
//! microseconds, less than the trip to another thread and back (two thread wake-ups); decoding and
//! resizing an image or running a real model takes milliseconds, which would stall every
//! connection sharing the async thread. So each such piece of work keeps a running average of what
//! it costs, and runs inline only while that average is small and its input is small too. It runs
//! elsewhere until it has been measured, and work that turns slow goes back there from its next
//! call on, so the most an inline call can stall an async thread is one call that was unlike those
//! before it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};

/// Stages averaging less than this run inline.
const INLINE_BELOW: Duration = Duration::from_micros(30);
/// Inputs larger than this always go to the blocking pool, whatever the stage's average.
const INLINE_MAX_BYTES: usize = 64 * 1024;
/// Not measured yet.
const UNMEASURED: u64 = u64::MAX;

/// One stage's measured cost and the choice it implies.
#[derive(Debug)]
pub(crate) struct Placement {
    /// Exponential moving average of the stage's duration, in nanoseconds.
    average_ns: AtomicU64,
}

impl Default for Placement {
    fn default() -> Self {
        Self { average_ns: AtomicU64::new(UNMEASURED) }
    }
}

impl Placement {
    /// Whether a call with `bytes` of input should run inline.
    pub(crate) fn cheap(&self, bytes: usize) -> bool {
        bytes <= INLINE_MAX_BYTES && self.average_ns.load(Ordering::Relaxed) < nanos(INLINE_BELOW)
    }

    /// Counts a call that took `took` into the average.
    pub(crate) fn record(&self, took: Duration) {
        // A call is timed by the wall clock, so on a busy machine a cheap one now and then
        // measures the time its thread was preempted (milliseconds). Capping each sample at a few
        // times the line keeps one such call from sending the work off for dozens of calls, while
        // work that is really slow still crosses the line by its second call.
        let sample = nanos(took).min(6 * nanos(INLINE_BELOW));
        // Each call weighs an eighth.
        let _ = self.average_ns.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == UNMEASURED { sample } else { old - old / 8 + sample / 8 })
        });
    }

    /// Runs `f`, whose input is `bytes` long, where its measured cost says, and measures it.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        bytes: usize,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.cheap(bytes) {
            let started = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(panicked()));
            self.record(started.elapsed());
            return result;
        }
        let timed = move || {
            let started = Instant::now();
            let result = f();
            (result, started.elapsed())
        };
        let (result, took) = tokio::task::spawn_blocking(timed).await.map_err(|_| panicked())?;
        self.record(took);
        result
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

fn panicked() -> EngineError {
    EngineError::Internal("the handler panicked".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_and_slow_stages_go_to_the_pool_cheap_small_ones_run_inline() {
        let p = Placement::default();
        assert!(!p.cheap(10), "an unmeasured stage is not trusted inline");
        p.record(Duration::from_micros(2));
        assert!(p.cheap(10));
        assert!(!p.cheap(INLINE_MAX_BYTES + 1), "a large input never runs inline");
        // One slow call (or one preempted cheap call) does not move it off; two in a row do.
        p.record(Duration::from_millis(5));
        assert!(p.cheap(10), "a single outlier is absorbed");
        p.record(Duration::from_millis(5));
        assert!(!p.cheap(10), "work that is really slow goes off by its second call");
        for _ in 0..40 {
            p.record(Duration::from_micros(2));
        }
        assert!(p.cheap(10), "cheap calls bring it back");
    }
}
