//! The batch-forming policy, as a pure function over a queue and a clock reading.
//!
//! A batch leaves when `batch_size` requests wait, or when the **oldest** waiting request has waited
//! `max_batch_delay` since it **arrived**. TorchServe starts that clock when a worker picks up the first
//! request (its issue #2478), so under light load every request pays the whole delay; starting it at
//! arrival bounds the wait a request can see to the delay plus the time no worker was free.
//!
//! Requests whose client has gone or whose deadline has passed are taken out before any batch is
//! formed, so they never reach the engine. Keeping the decision free of locks, channels and real time
//! lets the tests below drive it with a made-up clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How batches are formed for one model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most requests in one batch (at least 1).
    pub batch_size: usize,
    /// Longest time the oldest request waits for the batch to fill.
    pub max_batch_delay: Duration,
}

impl BatchPolicy {
    /// Whether a request that finds the queue empty leaves at once, alone, as [`poll_batch`]
    /// would send it.
    pub fn sends_lone_request_at_once(&self) -> bool {
        self.batch_size <= 1 || self.max_batch_delay.is_zero()
    }
}

/// Something waiting in a queue.
pub trait Queued {
    /// When it entered the queue.
    fn arrived(&self) -> Instant;
    /// Whether it should be dropped instead of run: its client went away or its deadline passed.
    fn is_abandoned(&self, now: Instant) -> bool;
}

/// What a free worker should do after polling the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll<T> {
    /// Run these requests as one batch, in this order.
    Ready(Vec<T>),
    /// Nothing is due yet; poll again at this instant or when a request arrives.
    WaitUntil(Instant),
    /// The queue is empty; poll again when a request arrives.
    Empty,
}

/// Decides, for a free worker at time `now`, whether a batch leaves.
///
/// Abandoned entries are moved from anywhere in the queue into `dropped` (in queue order) so the
/// caller can answer or count them; the order of the rest is kept.
pub fn poll_batch<T: Queued>(
    queue: &mut VecDeque<T>,
    policy: &BatchPolicy,
    now: Instant,
    dropped: &mut Vec<T>,
) -> Poll<T> {
    if queue.iter().any(|item| item.is_abandoned(now)) {
        let mut kept = VecDeque::with_capacity(queue.len());
        for item in queue.drain(..) {
            if item.is_abandoned(now) { dropped.push(item) } else { kept.push_back(item) }
        }
        *queue = kept;
    }
    let Some(oldest) = queue.front() else {
        return Poll::Empty;
    };
    let batch_size = policy.batch_size.max(1);
    let due = oldest.arrived() + policy.max_batch_delay;
    if queue.len() >= batch_size || now >= due {
        let n = queue.len().min(batch_size);
        Poll::Ready(queue.drain(..n).collect())
    } else {
        Poll::WaitUntil(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Item {
        id: usize,
        arrived: Instant,
        cancelled: bool,
    }

    impl Queued for Item {
        fn arrived(&self) -> Instant {
            self.arrived
        }
        fn is_abandoned(&self, _now: Instant) -> bool {
            self.cancelled
        }
    }

    fn item(id: usize, arrived: Instant) -> Item {
        Item { id, arrived, cancelled: false }
    }

    fn policy(batch_size: usize, delay_ms: u64) -> BatchPolicy {
        BatchPolicy { batch_size, max_batch_delay: Duration::from_millis(delay_ms) }
    }

    #[test]
    fn batch_size_one_never_waits() {
        let t0 = Instant::now();
        let mut q = VecDeque::from([item(0, t0)]);
        let got = poll_batch(&mut q, &policy(1, 100), t0, &mut Vec::new());
        assert_eq!(got, Poll::Ready(vec![item(0, t0)]));
    }

    #[test]
    fn a_lone_request_leaves_at_once_exactly_when_the_policy_says_so() {
        let t0 = Instant::now();
        for p in [policy(1, 100), policy(4, 0), policy(4, 10)] {
            let mut q = VecDeque::from([item(0, t0)]);
            let sent = matches!(poll_batch(&mut q, &p, t0, &mut Vec::new()), Poll::Ready(_));
            assert_eq!(sent, p.sends_lone_request_at_once(), "{p:?}");
        }
    }

    #[test]
    fn waits_until_the_oldest_arrival_plus_delay() {
        let t0 = Instant::now();
        let mut q = VecDeque::from([item(0, t0), item(1, t0 + Duration::from_millis(30))]);
        let p = policy(4, 100);
        let later = t0 + Duration::from_millis(40);
        assert_eq!(
            poll_batch(&mut q, &p, later, &mut Vec::new()),
            Poll::WaitUntil(t0 + p.max_batch_delay)
        );
        let due = t0 + p.max_batch_delay;
        match poll_batch(&mut q, &p, due, &mut Vec::new()) {
            Poll::Ready(batch) => {
                assert_eq!(batch.iter().map(|i| i.id).collect::<Vec<_>>(), [0, 1])
            }
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn a_full_batch_leaves_at_once_and_the_rest_stays() {
        let t0 = Instant::now();
        let mut q: VecDeque<Item> = (0..5).map(|i| item(i, t0)).collect();
        match poll_batch(&mut q, &policy(4, 100), t0, &mut Vec::new()) {
            Poll::Ready(batch) => assert_eq!(batch.len(), 4),
            other => panic!("expected a batch, got {other:?}"),
        }
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn abandoned_requests_are_dropped_before_batching() {
        let t0 = Instant::now();
        let mut q = VecDeque::from([
            Item { id: 0, arrived: t0, cancelled: true },
            item(1, t0),
            Item { id: 2, arrived: t0, cancelled: true },
        ]);
        let mut dropped = Vec::new();
        let got = poll_batch(&mut q, &policy(1, 0), t0, &mut dropped);
        assert_eq!(got, Poll::Ready(vec![item(1, t0)]));
        assert_eq!(dropped.iter().map(|i| i.id).collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn empty_queue_is_empty() {
        let mut q: VecDeque<Item> = VecDeque::new();
        assert_eq!(
            poll_batch(&mut q, &policy(4, 10), Instant::now(), &mut Vec::new()),
            Poll::Empty
        );
    }

    /// One simulated run: requests arrive at the given millisecond offsets (some cancelled), and one
    /// always-free worker polls at every arrival and at every instant the policy asks it to.
    fn simulate(
        arrivals: &[(u64, bool)],
        p: BatchPolicy,
    ) -> (Vec<(Instant, Vec<Item>)>, Vec<Item>) {
        let t0 = Instant::now();
        let mut events: Vec<(Instant, Item)> = arrivals
            .iter()
            .enumerate()
            .map(|(id, &(ms, cancelled))| {
                let at = t0 + Duration::from_millis(ms);
                (at, Item { id, arrived: at, cancelled })
            })
            .collect();
        events.sort_by_key(|(at, item)| (*at, item.id));
        let mut queue = VecDeque::new();
        let mut batches = Vec::new();
        let mut dropped = Vec::new();
        let mut next_event = 0;
        let mut now = t0;
        loop {
            while next_event < events.len() && events[next_event].0 <= now {
                queue.push_back(events[next_event].1.clone());
                next_event += 1;
            }
            match poll_batch(&mut queue, &p, now, &mut dropped) {
                Poll::Ready(batch) => batches.push((now, batch)),
                Poll::WaitUntil(at) => {
                    now = events.get(next_event).map_or(at, |(e, _)| (*e).min(at));
                }
                Poll::Empty => match events.get(next_event) {
                    Some((at, _)) => now = *at,
                    None => break,
                },
            }
        }
        (batches, dropped)
    }

    proptest! {
        #[test]
        fn batches_keep_every_request_once_in_order_within_size_and_delay(
            arrivals in proptest::collection::vec((0u64..500, proptest::bool::weighted(0.1)), 0..60),
            batch_size in 1usize..9,
            delay_ms in 0u64..120,
        ) {
            let p = policy(batch_size, delay_ms);
            let (batches, dropped) = simulate(&arrivals, p);

            // Nothing lost or duplicated: every live request ran exactly once, every cancelled one never.
            let ran: Vec<usize> = batches.iter().flat_map(|(_, b)| b.iter().map(|i| i.id)).collect();
            let mut sorted = ran.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), ran.len());
            let live = arrivals.iter().filter(|(_, c)| !c).count();
            prop_assert_eq!(ran.len(), live);
            prop_assert!(dropped.iter().all(|i| i.cancelled));
            prop_assert!(batches.iter().all(|(_, b)| b.iter().all(|i| !i.cancelled)));

            // FIFO: requests run in arrival order.
            let order: Vec<(Instant, usize)> =
                batches.iter().flat_map(|(_, b)| b.iter().map(|i| (i.arrived, i.id))).collect();
            prop_assert!(order.windows(2).all(|w| w[0] <= w[1]));

            for (at, batch) in &batches {
                // Never more than batch_size, never empty.
                prop_assert!(!batch.is_empty() && batch.len() <= batch_size);
                // With a free worker, no request is held past its arrival plus the delay.
                for i in batch {
                    prop_assert!(*at <= i.arrived + p.max_batch_delay);
                }
                // A batch smaller than batch_size only leaves when its oldest request is due.
                if batch.len() < batch_size {
                    prop_assert!(*at >= batch[0].arrived + p.max_batch_delay);
                }
            }
        }
    }
}
