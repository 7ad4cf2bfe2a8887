//! Served throughput of the tiny model against calling the engine in-process.
//!
//! What it catches: overhead added by the HTTP layer, the queue and the worker hand-off. The figure
//! that matters is the ratio of served to in-process throughput measured in the same run, since these
//! machines are shared and absolute numbers move.
//!
//! Run with `cargo bench -p oxserve-server --bench serving` (add `-- --quick` for a short run).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use oxserve_backend::{Backend, Device, ModelSource, Tensor, TensorData};
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::{EngineConfig, ModelOverrides};
use oxserve_core::{RegisterRequest, Registry};
use oxserve_server::{Server, ServerConfig};

fn model_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/tiny.onnx")
}

fn row() -> Vec<f32> {
    (0..64).map(|i| (i as f32 * 0.37).sin()).collect()
}

/// Requests per second of `threads` threads each running batch-1 inference on their own session.
fn in_process(threads: usize, per_thread: usize) -> f64 {
    let model =
        TractBackend.load(&ModelSource { path: model_path(), ..ModelSource::default() }).unwrap();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let model = Arc::clone(&model);
            s.spawn(move || {
                let mut session = model.new_session(Device::Cpu).unwrap();
                for _ in 0..per_thread {
                    let t = Tensor::new(vec![1, 64], TensorData::F32(row())).unwrap();
                    std::hint::black_box(session.run(vec![t]).unwrap());
                }
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// Throughput and latency of `clients` keep-alive clients sending `total` requests to a server.
async fn served(
    workers: usize,
    batch_size: usize,
    delay_ms: u64,
    clients: usize,
    total: usize,
) -> common::Measured {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model_path(), dir.path().join("tiny.onnx")).unwrap();
    let engine = EngineConfig {
        model_store: dir.path().to_path_buf(),
        job_queue_size: 1000,
        ..EngineConfig::default()
    };
    let registry =
        Arc::new(Registry::new(engine, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let overrides = ModelOverrides {
        min_workers: Some(workers),
        batch_size: Some(batch_size),
        max_batch_delay: Some(delay_ms),
        ..ModelOverrides::default()
    };
    let request = RegisterRequest {
        url: "tiny.onnx".into(),
        model_name: Some("tiny".into()),
        overrides,
        synchronous: true,
        ..Default::default()
    };
    registry.register(request).await.unwrap();
    let config = ServerConfig { auth: None, ..ServerConfig::on_free_ports() };
    let server = Server::bind(config, Arc::clone(&registry)).await.unwrap();
    let url = format!("http://{}/predictions/tiny", server.inference_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));
    let body = serde_json::to_string(&row()).unwrap();
    let client = reqwest::Client::new();
    // Warm up connections and plans.
    for _ in 0..50 {
        client.post(&url).body(body.clone()).send().await.unwrap().bytes().await.unwrap();
    }
    let send = move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let r = client.post(&url).body(body).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    };
    let result = common::closed_loop(clients, total, send).await;
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
    result
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let base1 = in_process(1, 2000 * scale);
    let base2 = in_process(2, 2000 * scale);
    println!("in-process engine, batch 1: 1 thread {base1:.0} req/s, 2 threads {base2:.0} req/s");
    println!(
        "| workers | batch size | delay ms | clients | req/s | p50 ms | p99 ms | served / in-process (same threads) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (workers, batch, delay, clients) in
        [(1, 1, 0, 1), (1, 1, 0, 8), (2, 1, 0, 8), (1, 8, 2, 16), (2, 8, 2, 32)]
    {
        let r = runtime.block_on(served(workers, batch, delay, clients, 1000 * scale));
        let base = if workers == 1 { base1 } else { base2 };
        println!(
            "| {workers} | {batch} | {delay} | {clients} | {:.0} | {:.2} | {:.2} | {:.2} |",
            r.throughput,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.throughput / base
        );
    }
}
