//! Per-model-version running totals in the shape of Triton's statistics extension: how many
//! requests succeeded and failed and the nanoseconds each stage took in all, how many times the
//! engine ran and at which batch sizes. Triton's clients (`get_inference_statistics`, perf_analyzer)
//! read these; Prometheus histograms carry the same times for dashboards.
//!
//! Counts and sums are atomics updated on the request path; the per-batch-size table takes a lock
//! once per engine run, not per request.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::RequestTimings;

/// Batch sizes tracked one by one; larger ones share the last entry's count. Bounded so a model
/// fed every batch size cannot grow the table without end.
const MAX_BATCH_SIZES: usize = 1024;

/// A count and the total time of what it counts.
#[derive(Debug, Default)]
struct Counted {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Counted {
    fn add(&self, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns.fetch_add(nanos(took), Ordering::Relaxed);
    }

    fn read(&self) -> Duration64 {
        Duration64 {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

/// A count and total nanoseconds, read out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Duration64 {
    /// How many.
    pub count: u64,
    /// Their total time, in nanoseconds.
    pub ns: u64,
}

/// Running totals of one model version.
#[derive(Debug, Default)]
pub struct ModelStats {
    success: Counted,
    fail: Counted,
    queue: Counted,
    compute_input: Counted,
    compute_infer: Counted,
    compute_output: Counted,
    /// Rows answered (a request of four rows is four inferences, as Triton counts them).
    inference_count: AtomicU64,
    /// Engine runs (one per batch).
    execution_count: AtomicU64,
    /// Milliseconds since the Unix epoch of the last answered request; 0 before the first.
    last_inference_ms: AtomicU64,
    /// Engine runs by batch size: how many and their engine time.
    batches: Mutex<BTreeMap<usize, Duration64>>,
}

/// What [`ModelStats`] holds, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Milliseconds since the Unix epoch of the last answered request; 0 before the first.
    pub last_inference_ms: u64,
    /// Rows answered.
    pub inference_count: u64,
    /// Engine runs.
    pub execution_count: u64,
    /// Answered requests and their time from arrival to answer.
    pub success: Duration64,
    /// Failed, timed-out, refused-after-admission and cancelled requests and their time.
    pub fail: Duration64,
    /// Time answered requests waited in the queue.
    pub queue: Duration64,
    /// Handler preprocessing (decoding the request into tensors).
    pub compute_input: Duration64,
    /// Engine time.
    pub compute_infer: Duration64,
    /// Handler postprocessing (encoding the answer).
    pub compute_output: Duration64,
    /// Engine runs by batch size, smallest first.
    pub batches: Vec<(usize, Duration64)>,
}

impl ModelStats {
    /// Counts an answered request of `rows` rows.
    pub fn answered(&self, t: &RequestTimings, rows: usize) {
        self.success.add(t.total);
        self.queue.add(t.queue);
        self.compute_input.add(t.preprocess);
        self.compute_infer.add(t.inference);
        self.compute_output.add(t.postprocess);
        self.inference_count.fetch_add(rows as u64, Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_inference_ms
            .store(u64::try_from(now.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a request that ended without an answer after `took`.
    pub fn failed(&self, took: Duration) {
        self.fail.add(took);
    }

    /// Counts one engine run of `size` requests that took `took`.
    pub fn executed(&self, size: usize, took: Duration) {
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        let mut batches = self.batches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let size = if batches.len() >= MAX_BATCH_SIZES && !batches.contains_key(&size) {
            batches.keys().next_back().copied().unwrap_or(size)
        } else {
            size
        };
        let entry = batches.entry(size).or_default();
        entry.count += 1;
        entry.ns = entry.ns.saturating_add(nanos(took));
    }

    /// The totals now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            last_inference_ms: self.last_inference_ms.load(Ordering::Relaxed),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            success: self.success.read(),
            fail: self.fail.read(),
            queue: self.queue.read(),
            compute_input: self.compute_input.read(),
            compute_infer: self.compute_infer.read(),
            compute_output: self.compute_output.read(),
            batches: self
                .batches
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(size, d)| (*size, *d))
                .collect(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_per_stage_and_per_batch_size() {
        let stats = ModelStats::default();
        let ms = Duration::from_millis;
        let t = RequestTimings {
            queue: ms(1),
            preprocess: ms(2),
            inference: ms(3),
            postprocess: ms(4),
            total: ms(10),
        };
        stats.answered(&t, 1);
        stats.answered(&t, 3);
        stats.failed(ms(5));
        stats.executed(2, ms(3));
        stats.executed(1, ms(1));
        stats.executed(2, ms(3));
        let s = stats.snapshot();
        assert_eq!(s.inference_count, 4);
        assert_eq!(s.execution_count, 3);
        assert_eq!(s.success, Duration64 { count: 2, ns: 20_000_000 });
        assert_eq!(s.fail, Duration64 { count: 1, ns: 5_000_000 });
        assert_eq!(s.compute_output, Duration64 { count: 2, ns: 8_000_000 });
        assert_eq!(
            s.batches,
            [
                (1, Duration64 { count: 1, ns: 1_000_000 }),
                (2, Duration64 { count: 2, ns: 6_000_000 })
            ]
        );
        assert!(s.last_inference_ms > 1_700_000_000_000);
    }

    #[test]
    fn the_batch_size_table_is_bounded() {
        let stats = ModelStats::default();
        for size in 1..=MAX_BATCH_SIZES + 10 {
            stats.executed(size, Duration::from_micros(1));
        }
        let s = stats.snapshot();
        assert_eq!(s.batches.len(), MAX_BATCH_SIZES);
        assert_eq!(s.batches.last().map(|b| b.1.count), Some(11));
    }
}
