//! `oxserve-bench` against a real oxserve (tract engine, the example models) on loopback port 0:
//! its counts agree with the server's own metrics, the CSV has TorchServe's columns, the open loop
//! keeps its rate, errors are counted by status, and a sweep drives the management API.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use oxserve_backend_tract::TractBackend;
use oxserve_bench::indicatif::ProgressBar;
use oxserve_bench::load::{self, Input, LoadConfig, Protocol, Stop};
use oxserve_bench::target::{Endpoints, Target};
use oxserve_bench::{ab_report, scrape, sweep, tune};
use oxserve_core::config::EngineConfig;
use oxserve_core::metrics::Metrics;
use oxserve_core::{RegisterRequest, Registry};
use oxserve_server::{Server, ServerConfig};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server with `tiny` loaded, on free loopback ports; stopped when the sender is dropped.
struct Running {
    inference: String,
    management: String,
    metrics: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve() -> Running {
    let engine = EngineConfig {
        model_store: repo().join("examples/model-store"),
        ..EngineConfig::default()
    };
    let registry = Arc::new(Registry::with_metrics(
        engine,
        vec![Arc::new(TractBackend)],
        oxserve_handlers::builtins(),
        Arc::new(Metrics::new("testhost".into(), None)),
    ));
    registry
        .register(RegisterRequest {
            url: "tiny".into(),
            model_name: Some("tiny".into()),
            synchronous: true,
            loaded_at_startup: true,
            ..RegisterRequest::default()
        })
        .await
        .unwrap();
    let config =
        ServerConfig { enable_model_api: true, auth: None, ..ServerConfig::on_free_ports() };
    let server = Server::bind(config, registry).await.unwrap();
    let running = |addr: SocketAddr| format!("http://{addr}");
    let (inference, management, metrics) = (
        running(server.inference_addr()),
        running(server.management_addr()),
        running(server.metrics_addr()),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running { inference, management, metrics, _stop: tx }
}

fn tiny_input() -> Input {
    let path = repo().join("examples/inputs/tiny.json");
    Input { name: "tiny.json".into(), body: std::fs::read(path).unwrap().into() }
}

fn config(server: &Running) -> LoadConfig {
    LoadConfig {
        url: server.inference.clone(),
        model: "tiny".into(),
        inputs: vec![tiny_input()],
        concurrency: 4,
        stop: Stop::Requests(300),
        metrics_url: Some(format!("{}/metrics", server.metrics)),
        ..LoadConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_agree_with_the_servers_metrics() {
    let server = serve().await;
    let config = LoadConfig { warmup: 20, ..config(&server) };
    let result = load::run(&config, &ProgressBar::hidden()).await.unwrap();
    assert_eq!((result.requests, result.ok, result.failed), (300, 300, 0), "{}", result.summary());
    assert_eq!(result.latency_ms.count, 300);
    assert!(result.errors.is_empty());
    assert!(result.throughput_rps > 0.0);
    // The server counted exactly the measured requests (the warmup happened before the first scrape)...
    let counts = result.server_counts.as_ref().unwrap();
    assert_eq!(counts.inference_requests(), Some(300.0));
    // ...and, read independently, warmup plus measured in all.
    let text =
        reqwest::get(format!("{}/metrics", server.metrics)).await.unwrap().text().await.unwrap();
    assert_eq!(scrape::parse(&text, "tiny", None).values["ts_inference_requests_total"], 320.0);
    // Every answer carried Server-Timing, so every stage has one sample per request.
    for stage in ["queue", "inference", "total"] {
        assert_eq!(result.server_timing[stage].count, 300, "{stage}");
    }
    assert!(result.server_timing["total"].mean <= result.latency_ms.mean);
    assert_eq!(result.mode, "closed");
    assert!(result.generator.cpu_seconds.is_some());
    assert!(!result.machine.arch.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ab_report.csv");
    let settings =
        ab_report::RunSettings { workers: Some(1), model: "tiny".into(), ..Default::default() };
    ab_report::write(&csv, &[ab_report::row(&result, &settings)]).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    // TorchServe's benchmark-ab.py columns, in its order.
    assert_eq!(
        lines.next().unwrap(),
        "Benchmark,TS failed requests,TS throughput,TS latency P50,TS latency P90,TS latency P99,\
         TS latency mean,TS error rate,Batch size,Batch delay,Workers,Model,Concurrency,Input,Requests,\
         Model_p50,Model_p90,Model_p99,Queue time p50,Queue time p90,Queue time p99,predict_mean,\
         handler_time_mean,waiting_time_mean,worker_thread_mean,cpu_percentage_mean,\
         memory_percentage_mean,gpu_percentage_mean,gpu_memory_percentage_mean,gpu_memory_used_mean"
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row.len(), 30);
    assert_eq!((row[0], row[1], row[10], row[12], row[14]), ("AB", "0", "1", "4", "300"));
    assert!(!row[15].is_empty(), "Model_p50 comes from Server-Timing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate() {
    let server = serve().await;
    let config = LoadConfig {
        rate: Some(200.0),
        max_in_flight: 64,
        stop: Stop::Duration(Duration::from_secs(2)),
        ..config(&server)
    };
    let result = load::run(&config, &ProgressBar::hidden()).await.unwrap();
    assert_eq!(result.mode, "open");
    // 200 req/s for 2 s is 400 scheduled sends, every one sent and answered.
    assert_eq!((result.requests, result.ok), (400, 400), "{}", result.summary());
    assert_eq!(result.server_counts.as_ref().unwrap().inference_requests(), Some(400.0));
    let achieved = result.generator.achieved_send_rate.unwrap();
    assert!(
        (180.0..=220.0).contains(&achieved),
        "sent {achieved} req/s against 200: {}",
        result.summary()
    );
    assert!(result.throughput_rps > 150.0, "{}", result.summary());
    // The timeline: a 2 s run in 1 s windows, by scheduled send time, so exactly 200 each.
    let windows: Vec<u64> = result.timeline.iter().map(|w| w.requests).collect();
    assert_eq!(windows, [200, 200], "{:?}", result.timeline);
    assert!(result.timeline.iter().all(|w| w.failed == 0 && w.p99_ms > 0.0));
    assert!(result.summary().contains("p99 by window of 1 s"), "{}", result.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_status() {
    let server = serve().await;
    let config =
        LoadConfig { model: "missing".into(), stop: Stop::Requests(20), ..config(&server) };
    let result = load::run(&config, &ProgressBar::hidden()).await.unwrap();
    assert_eq!((result.ok, result.failed), (0, 20));
    assert_eq!(result.errors.get("404"), Some(&20));
    assert!((result.error_rate_percent() - 100.0).abs() < 1e-9);

    // Nothing listens on a port that was just freed: no answer at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = LoadConfig {
        url: format!("http://127.0.0.1:{port}"),
        metrics_url: None,
        stop: Stop::Requests(5),
        concurrency: 1,
        ..config
    };
    let result = load::run(&config, &ProgressBar::hidden()).await.unwrap();
    assert_eq!(result.errors.get("transport"), Some(&5), "{:?}", result.errors);

    // Settings that cannot run are refused before any request.
    let bad = LoadConfig { concurrency: 0, ..config.clone() };
    assert!(
        load::run(&bad, &ProgressBar::hidden())
            .await
            .unwrap_err()
            .to_string()
            .contains("concurrency")
    );
    let bad = LoadConfig { rate: Some(-1.0), ..config };
    assert!(load::run(&bad, &ProgressBar::hidden()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_protocol_wraps_a_plain_input_and_http2_works() {
    let server = serve().await;
    let config = LoadConfig { protocol: Protocol::V2, stop: Stop::Requests(50), ..config(&server) };
    assert!(config.endpoint().ends_with("/v2/models/tiny/infer"));
    let result = load::run(&config, &ProgressBar::hidden()).await.unwrap();
    assert_eq!((result.ok, result.failed), (50, 0), "{:?}", result.errors);
    assert_eq!(result.protocol, "v2");
    let config = LoadConfig { http2: true, stop: Stop::Requests(50), ..config };
    let result = load::run(&config, &ProgressBar::hidden()).await.unwrap();
    assert_eq!((result.ok, result.failed), (50, 0), "{:?}", result.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_registers_measures_and_unregisters_through_the_management_api() {
    let server = serve().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("examples/inputs/tiny.json"), dir.path().join("tiny.json")).unwrap();
    let yaml = "tiny:\n  sweep:\n    url: tiny\n    batch_size: [1, 4]\n    batch_delay: 1\n    requests: 100\n    concurrency: 4\n    input: tiny.json\n    sla_p99_ms: 60000\n";
    let sweep = sweep::parse(yaml, dir.path()).unwrap();
    let out = dir.path().join("report");
    let options = tune::TuneOptions {
        target: Target::Running(Endpoints {
            inference: server.inference.clone(),
            management: server.management.clone(),
            metrics: Some(format!("{}/metrics", server.metrics)),
            ..Endpoints::default()
        }),
        label: "oxserve".into(),
        out_dir: out.clone(),
        sla_p99_ms: None,
        progress: false,
    };
    let run = tune::run(&sweep, &options).await.unwrap();
    assert_eq!(run.cases.len(), 2);
    for case in &run.cases {
        assert_eq!(case.result.ok, 100);
        assert_eq!(case.result.server_counts.as_ref().unwrap().inference_requests(), Some(100.0));
        // The engine comes from the server's describe answer: this server has only tract.
        assert_eq!(case.engine.as_deref(), Some("tract"));
    }
    assert_eq!(run.sla_p99_ms, 60000.0);
    assert!(run.choice.best.is_some() && run.choice.runner_up.is_some());
    // The server is as it was: the model registered for the sweep is gone.
    let status =
        reqwest::get(format!("{}/models/benchmark", server.management)).await.unwrap().status();
    assert_eq!(status, 404);
    for file in [
        "report.md",
        "results.json",
        "ab_report.csv",
        "throughput_vs_p99.svg",
        "latency.png",
        "oxserve_tiny_sweep_w1_b4/result.json",
        "oxserve_tiny_sweep_w1_b4/ab_report.csv",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let best = run.choice.best.as_ref().unwrap();
    assert!(report.contains(&format!("**{}**", best.name)), "{report}");
    assert!(report.contains("Runner-up"));
    assert!(
        report.contains("tiny_sweep_w1_b4") && report.contains(" | tract | 1 | 4 | 1 | "),
        "{report}"
    );

    // A model name already taken is refused with a reason, and the server is left alone.
    let taken = sweep::parse(
        &yaml.replace("input: tiny.json", "input: tiny.json\n    model_name: tiny"),
        dir.path(),
    )
    .unwrap();
    let err = tune::run(&taken, &options).await.unwrap_err();
    assert!(format!("{err:#}").contains("already registered"), "{err:#}");
    let status = reqwest::get(format!("{}/models/tiny", server.management)).await.unwrap().status();
    assert_eq!(status, 200);
}
