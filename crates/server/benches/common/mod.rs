//! What the server benches share: a closed-loop measurement of throughput and latency.

use std::future::Future;
use std::time::{Duration, Instant};

/// Throughput and latency of one measurement.
pub struct Measured {
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// `clients` closed-loop clients, each sending its share of `total` requests one after another
/// (each request is `send()`, awaited); throughput and latency over all of them.
pub async fn closed_loop<S, F>(clients: usize, total: usize, send: S) -> Measured
where
    S: Fn() -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let per_client = total / clients;
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let send = send.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = Instant::now();
                    send().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("a client task panicked"));
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Measured {
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}
