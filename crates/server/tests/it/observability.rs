//! Metrics, metric logs, request ids and timing headers, checked with known traffic against a real
//! server; `/metrics` is read with a Prometheus text-format parser.

#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{Options, TestServer, expected, get, model, scrape};
use oxserve_core::config::EngineConfig;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_and_histograms_follow_known_traffic() {
    let mut options = Options::default();
    options.engine = EngineConfig { job_queue_size: 1, ..EngineConfig::default() };
    options.models = vec![model("tiny", "tiny"), model("slow", "slow.onnx")];
    let s = TestServer::start(options).await;
    let exp = expected();
    let tiny = format!("{}/predictions/tiny", s.inference);
    for _ in 0..3 {
        assert_eq!(s.post(tiny.clone(), exp["tiny"]["input"].to_string()).await.0, 200);
    }
    assert_eq!(s.post(tiny.clone(), "[1, 2]").await.0, 400);
    for _ in 0..2 {
        assert_eq!(s.post(format!("{}/predictions/nope", s.inference), "[1]").await.0, 404);
    }
    // Fill the slow model's queue of one: some requests are refused.
    let body = json!([[1.0], [1.0], [1.0], [1.0]]).to_string();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, body) =
                (s.client.clone(), format!("{}/predictions/slow", s.inference), body.clone());
            tokio::spawn(async move {
                client.post(url).body(body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let slow_ok = statuses.iter().filter(|s| **s == 200).count() as f64;
    let overloaded = statuses.iter().filter(|s| **s == 503).count() as f64;
    assert!(overloaded >= 1.0 && slow_ok + overloaded == 8.0, "{statuses:?}");

    let m = scrape(&s).await;
    let ts = |name: &str, model: &str| {
        get(
            &m,
            &format!(
                "{name}{{hostname=\"testhost\",model_name=\"{model}\",model_version=\"1.0\"}}"
            ),
        )
    };
    assert_eq!(ts("ts_inference_requests_total", "tiny"), 3.0);
    assert_eq!(ts("ts_inference_requests_total", "slow"), slow_ok);
    assert!(ts("ts_inference_latency_microseconds", "tiny") > 0.0);
    assert!(ts("ts_queue_latency_microseconds", "tiny") >= 0.0);
    let outcome = |model: &str, o: &str| {
        get(
            &m,
            &format!("oxserve_requests_total{{model=\"{model}\",outcome=\"{o}\",version=\"1.0\"}}"),
        )
    };
    assert_eq!(outcome("tiny", "ok"), 3.0);
    assert_eq!(outcome("tiny", "client_error"), 1.0);
    assert_eq!(outcome("slow", "ok"), slow_ok);
    assert_eq!(outcome("slow", "overloaded"), overloaded);
    assert_eq!(outcome("tiny", "timeout"), 0.0);
    let stage = |model: &str, stage: &str| {
        get(
            &m,
            &format!(
                "oxserve_request_duration_seconds{{model=\"{model}\",stage=\"{stage}\",version=\"1.0\"}}"
            ),
        )
    };
    for st in ["queue", "preprocess", "inference", "postprocess", "total"] {
        assert_eq!(stage("tiny", st), 3.0, "stage {st}");
    }
    assert!(get(&m, "oxserve_batch_size{model=\"tiny\",version=\"1.0\"}") >= 1.0);
    assert_eq!(get(&m, "oxserve_queue_depth{model=\"tiny\",version=\"1.0\"}"), 0.0);
    assert_eq!(get(&m, "oxserve_busy_workers{model=\"tiny\",version=\"1.0\"}"), 0.0);
    assert_eq!(get(&m, "oxserve_requests_in_flight{model=\"tiny\",version=\"1.0\"}"), 0.0);
    // Frontend status classes: 3 + slow_ok successes, 1 + 2 client errors, the overloads as 5xx.
    assert_eq!(get(&m, "Requests2XX{Hostname=\"testhost\",Level=\"Host\"}"), 3.0 + slow_ok);
    assert_eq!(get(&m, "Requests4XX{Hostname=\"testhost\",Level=\"Host\"}"), 3.0);
    assert_eq!(get(&m, "Requests5XX{Hostname=\"testhost\",Level=\"Host\"}"), overloaded);
    for gauge in
        ["CPUUtilization", "MemoryUsed", "MemoryAvailable", "MemoryUtilization", "DiskUtilization"]
    {
        let v = get(&m, &format!("{gauge}{{Hostname=\"testhost\",Level=\"Host\"}}"));
        assert!(v >= 0.0, "{gauge} = {v}");
    }
    assert!(get(&m, "MemoryUsed{Hostname=\"testhost\",Level=\"Host\"}") > 0.0);
    for gauge in ["QueueTime", "WorkerThreadTime"] {
        get(&m, &format!("{gauge}{{Hostname=\"testhost\",Level=\"Host\"}}"));
    }
    get(&m, "HandlerTime{Hostname=\"testhost\",Level=\"Model\",ModelName=\"tiny\"}");
    get(&m, "PredictionTime{Hostname=\"testhost\",Level=\"Model\",ModelName=\"tiny\"}");
    get(&m, "WorkerLoadTime{Hostname=\"testhost\",Level=\"Host\",WorkerName=\"W-tiny_1.0-0\"}");

    // Unloading a model removes its series.
    s.registry.unregister("tiny", None).await.unwrap();
    let m = scrape(&s).await;
    assert!(!m.keys().any(|k| k.contains("model=\"tiny\"") || k.contains("model_name=\"tiny\"")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_stage_timings_come_back_in_headers() {
    let s = TestServer::default().await;
    let exp = expected();
    let r = s
        .client
        .post(format!("{}/predictions/tiny", s.inference))
        .header("x-request-id", "my-id-42")
        .body(exp["tiny"]["input"].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-id-42");
    let timing = r.headers()["server-timing"].to_str().unwrap().to_owned();
    let stages: HashMap<&str, f64> = timing
        .split(", ")
        .map(|part| {
            let (name, dur) = part.split_once(";dur=").unwrap();
            (name, dur.parse::<f64>().unwrap())
        })
        .collect();
    for st in ["queue", "preprocess", "inference", "postprocess", "total"] {
        assert!(stages[st] >= 0.0, "{timing}");
    }
    assert!(stages["total"] >= stages["inference"], "{timing}");

    // Generated when absent, on every answer, errors included.
    let r = s.client.get(format!("{}/models/nope", s.management)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": exp["tiny"]["input"]}]});
    let r = s
        .client
        .post(format!("{}/v2/models/tiny/infer", s.inference))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["server-timing"].to_str().unwrap().contains("inference;dur="));
    s.stop().await;
}

/// TorchServe's benchmark takes `line.split("|")[0].split(":")[3]` from each metric log line.
fn torchserve_scrape(line: &str) -> Option<f64> {
    line.split('|').next()?.split(':').nth(3)?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_logs_parse_like_torchserve_s_benchmark() {
    let logs = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.metric_log = Some(logs.path().to_path_buf());
    let s = TestServer::start(options).await;
    let exp = expected();
    for _ in 0..4 {
        assert_eq!(
            s.post(format!("{}/predictions/tiny", s.inference), exp["tiny"]["input"].to_string())
                .await
                .0,
            200
        );
    }
    s.registry.refresh_gauges(true);
    let read = |name: &str| std::fs::read_to_string(logs.path().join(name)).unwrap_or_default();
    let mut waited = 0;
    while (read("model_metrics.log").lines().count() < 8
        || !read("ts_metrics.log").contains("CPUUtilization"))
        && waited < 100
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    let model_log = read("model_metrics.log");
    let predictions: Vec<f64> = model_log
        .lines()
        .filter(|l| l.contains("PredictionTime.ms:"))
        .map(|l| torchserve_scrape(l).unwrap())
        .collect();
    assert_eq!(predictions.len(), 4, "{model_log}");
    assert!(model_log.lines().filter(|l| l.contains("HandlerTime.ms:")).count() == 4);
    assert!(model_log.contains("|#ModelName:tiny,Level:Model|#hostname:testhost,requestID:"));

    let ts_log = read("ts_metrics.log");
    for name in [
        "QueueTime.Milliseconds",
        "WorkerThreadTime.Milliseconds",
        "Requests2XX.Count",
        "CPUUtilization.Percent",
        "MemoryUsed.Megabytes",
        "DiskAvailable.Gigabytes",
    ] {
        let line = ts_log
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{ts_log}"));
        assert!(torchserve_scrape(line).is_some(), "{line}");
    }
    let access = read("access_log.log");
    assert!(
        access.lines().any(|l| l.contains("\"POST /predictions/tiny HTTP/1.1\" 200")),
        "{access}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_live_queue_counts() {
    let mut options = Options::default();
    options.models = vec![model("slow", "slow.onnx")];
    let s = TestServer::start(options).await;
    let rows: Vec<Value> = (0..40).map(|_| json!([1.0])).collect();
    let body = Value::Array(rows).to_string();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (client, url, body) =
                (s.client.clone(), format!("{}/predictions/slow", s.inference), body.clone());
            tokio::spawn(async move {
                client.post(url).body(body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut seen_pending = 0;
    for _ in 0..100 {
        let (_, d) = s.get(format!("{}/models/slow", s.management)).await;
        let pending = d[0]["jobQueueStatus"]["pendingRequests"].as_u64().unwrap();
        let remaining = d[0]["jobQueueStatus"]["remainingCapacity"].as_u64().unwrap();
        assert_eq!(pending + remaining, 100);
        seen_pending = seen_pending.max(pending);
        if seen_pending > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen_pending > 0, "the queue never showed waiting requests");
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (_, d) = s.get(format!("{}/models/slow", s.management)).await;
    assert_eq!(d[0]["jobQueueStatus"]["pendingRequests"], 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_hangs_up_while_queued_never_reaches_the_engine() {
    use tokio::io::AsyncWriteExt;
    let mut options = Options::default();
    options.models = vec![model("slow", "slow.onnx")];
    let s = TestServer::start(options).await;
    let url = format!("{}/predictions/slow", s.inference);
    // A long request occupies the only worker.
    let busy_rows = Value::Array((0..40).map(|_| json!([1.0])).collect()).to_string();
    let busy = {
        let (client, url) = (s.client.clone(), url.clone());
        tokio::spawn(async move {
            client.post(url).body(busy_rows).send().await.unwrap().status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A raw client sends a request, then hangs up while it waits in the queue.
    let addr = s.inference.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = "[[2.0], [2.0], [2.0]]";
    let request = format!(
        "POST /predictions/slow HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(socket);
    assert_eq!(busy.await.unwrap(), 200);
    // One more request after the queue drained.
    assert_eq!(s.post(url, "[1.0]").await.0, 200);
    let m = scrape(&s).await;
    assert_eq!(
        get(&m, "oxserve_requests_total{model=\"slow\",outcome=\"cancelled\",version=\"1.0\"}"),
        1.0
    );
    assert_eq!(
        get(&m, "oxserve_requests_total{model=\"slow\",outcome=\"ok\",version=\"1.0\"}"),
        2.0
    );
    // Two batches ran: the busy request and the last one; the abandoned request never did.
    assert_eq!(get(&m, "oxserve_batch_size{model=\"slow\",version=\"1.0\"}"), 2.0);
    s.stop().await;
}
