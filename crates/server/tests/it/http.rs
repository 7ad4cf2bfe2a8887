//! End-to-end tests of every HTTP endpoint against a real server on loopback port 0, with the tract
//! engine and real ONNX models.

#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use crate::common::{Options, TestServer, assert_close, expected, model};
use oxserve_core::config::{EngineConfig, ModelOverrides};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_match_the_reference_outputs() {
    let s = TestServer::default().await;
    let exp = expected();

    let (status, body) = s.get(format!("{}/ping", s.inference)).await;
    assert_eq!((status, body), (200, json!({"status": "Healthy"})));

    // One row, as a bare list and wrapped in {"data": …}.
    let row = exp["tiny"]["input"].to_string();
    let (status, body) = s.post(format!("{}/predictions/tiny", s.inference), row.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_close(&body, &exp["tiny"]["output"], 1e-5);
    let (_, body) = s
        .post(
            format!("{}/predictions/tiny/1.0", s.inference),
            json!({"data": exp["tiny"]["input"]}).to_string(),
        )
        .await;
    assert_close(&body, &exp["tiny"]["output"], 1e-5);

    // A batch answers one row per input row; instances answer as predictions.
    let (status, body) = s
        .post(format!("{}/predictions/tiny", s.inference), exp["tiny_batch"]["input"].to_string())
        .await;
    assert_eq!(status, 200);
    assert_close(&body, &exp["tiny_batch"]["output"], 1e-5);
    let (_, body) = s
        .post(
            format!("{}/predictions/tiny", s.inference),
            json!({"instances": exp["tiny_batch"]["input"]}).to_string(),
        )
        .await;
    assert_close(&body["predictions"], &exp["tiny_batch"]["output"], 1e-5);

    // The digits classifier: labels and probabilities for real test digits.
    for case in exp["digits"].as_array().unwrap() {
        let (status, body) =
            s.post(format!("{}/predictions/digits", s.inference), case["input"].to_string()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["label"], case["label"]);
        assert_close(&body["probabilities"], &case["probabilities"], 1e-4);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_parts_are_inputs() {
    let s = TestServer::default().await;
    let exp = expected();
    let form = reqwest::multipart::Form::new().part(
        "data",
        reqwest::multipart::Part::bytes(exp["tiny"]["input"].to_string().into_bytes())
            .file_name("tiny.json")
            .mime_str("application/json")
            .unwrap(),
    );
    let r = s
        .client
        .post(format!("{}/predictions/tiny", s.inference))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_close(&body, &exp["tiny"]["output"], 1e-5);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_split_back_correctly() {
    let mut options = Options::default();
    options.models = vec![oxserve_core::RegisterRequest {
        overrides: ModelOverrides {
            batch_size: Some(4),
            max_batch_delay: Some(200),
            ..Default::default()
        },
        ..model("tiny", "tiny")
    }];
    let s = TestServer::start(options).await;
    let exp = expected();
    let rows = exp["tiny_batch"]["input"].as_array().unwrap().clone();
    let outs = exp["tiny_batch"]["output"].as_array().unwrap().clone();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (client, url, row) = (
            s.client.clone(),
            format!("{}/predictions/tiny", s.inference),
            rows[i % 3].to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).body(row).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_close(&body, &outs[i % 3], 1e-5);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_inference_protocol_rest() {
    let mut options = Options::default();
    options.models.push(model("multi", "multi_io.onnx"));
    let s = TestServer::start(options).await;
    let exp = expected();
    let v2 = format!("{}/v2", s.inference);

    let (status, body) = s.get(v2.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "oxserve");
    assert_eq!(s.get(format!("{v2}/health/live")).await, (200, json!({"live": true})));
    assert_eq!(s.get(format!("{v2}/health/ready")).await, (200, json!({"ready": true})));
    assert_eq!(
        s.get(format!("{v2}/models/tiny/ready")).await,
        (200, json!({"name": "tiny", "ready": true}))
    );
    assert_eq!(s.get(format!("{v2}/models/tiny/versions/1.0/ready")).await.0, 200);

    let (status, meta) = s.get(format!("{v2}/models/digits")).await;
    assert_eq!(status, 200);
    assert_eq!(meta["inputs"], json!([{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]));
    assert_eq!(meta["outputs"][0], json!({"name": "label", "datatype": "INT64", "shape": [-1]}));
    assert_eq!(meta["versions"], json!(["1.0"]));
    assert_eq!(s.get(format!("{v2}/models/digits/versions/1.0")).await.1, meta);

    // Flat data with an explicit shape; outputs filtered by name.
    let case = &exp["digits"][0];
    let request = json!({
        "id": "req-1",
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": case["input"]}],
        "outputs": [{"name": "label"}]
    });
    let (status, body) = s.post(format!("{v2}/models/digits/infer"), request.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_name"], "digits");
    assert_eq!(body["model_version"], "1.0");
    assert_eq!(body["id"], "req-1");
    assert_eq!(
        body["outputs"],
        json!([{"name": "label", "datatype": "INT64", "shape": [1], "data": [case["label"]]}])
    );

    // Several inputs of different datatypes, nested data.
    let request = json!({"inputs": [
        {"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [[0.5, 0.5, 0.5, 0.5]]},
        {"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}
    ]});
    let (status, body) =
        s.post(format!("{v2}/models/multi/versions/1.0/infer"), request.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["outputs"][0],
        json!({"name": "sum", "datatype": "FP32", "shape": [1, 4], "data": [1.5, 2.5, 3.5, 4.5]})
    );
    assert_eq!(
        body["outputs"][1],
        json!({"name": "x2", "datatype": "INT64", "shape": [1, 4], "data": [2, 4, 6, 8]})
    );

    // Errors answer {"error": …} with the right status.
    let bad = [
        json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                          {"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
        json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]},
                          {"name": "y", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
        json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3]},
                          {"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
        json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]}),
        json!({"inputs": [{"name": "z", "shape": [1], "datatype": "INT64", "data": [1]}]}),
        json!({"inputs": "nope"}),
    ];
    for request in bad {
        let (status, body) = s.post(format!("{v2}/models/multi/infer"), request.to_string()).await;
        assert_eq!(status, 400, "{request} → {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, body) = s.post(format!("{v2}/models/nope/infer"), "{}").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    assert_eq!(s.get(format!("{v2}/models/tiny/versions/9.9")).await.0, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_use_torchserve_shapes_and_statuses() {
    let mut options = Options::default();
    options.server.max_request_size = 1000;
    options.server.enable_model_api = false;
    let s = TestServer::start(options).await;
    let predict = format!("{}/predictions/tiny", s.inference);

    let (status, body) = s.post(format!("{}/predictions/nope", s.inference), "[1]").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], 404);
    assert_eq!(body["type"], "ModelNotFoundException");
    assert_eq!(s.post(format!("{}/predictions/tiny/9.9", s.inference), "[1]").await.0, 404);

    for bad in ["not json", "[1, 2]", "[[1], [2, 3]]", "{\"instances\": 3}", ""] {
        let (status, body) = s.post(predict.clone(), bad).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_eq!(body["type"], "BadRequestException");
    }

    // Over the limit: with a Content-Length, and chunked without one.
    let (status, body) = s.post(predict.clone(), vec![b' '; 5000]).await;
    assert_eq!(status, 413, "{body}");
    let chunks =
        futures_util::stream::iter([vec![b' '; 600], vec![b' '; 600]].map(Ok::<_, std::io::Error>));
    let r = s
        .client
        .post(predict.clone())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // The model API is off: register and unregister answer 405; describe still works.
    let (status, body) = s.post(format!("{}/models?url=tiny", s.management), "").await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(s.send(Method::DELETE, format!("{}/models/tiny", s.management)).await.0, 405);
    assert_eq!(s.get(format!("{}/models/tiny", s.management)).await.0, 200);

    // Unknown paths and methods.
    let (status, body) = s.get(format!("{}/nowhere", s.inference)).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "ResourceNotFoundException");
    assert_eq!(s.get(predict).await.0, 405);
    // APIs stay on their own listeners.
    assert_eq!(s.get(format!("{}/models", s.inference)).await.0, 404);
    assert_eq!(s.get(format!("{}/ping", s.management)).await.0, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_503_at_once() {
    let mut options = Options::default();
    options.engine = EngineConfig { job_queue_size: 2, ..EngineConfig::default() };
    options.models = vec![model("slow", "slow.onnx")];
    let s = TestServer::start(options).await;
    // 4 rows take ~100 ms; 12 concurrent requests cannot all fit 1 running + 2 queued.
    let body = json!([[1.0], [1.0], [1.0], [1.0]]).to_string();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (client, url, body) =
            (s.client.clone(), format!("{}/predictions/slow", s.inference), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).body(body).send().await.unwrap();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    let mut overloaded = 0;
    for t in tasks {
        let (status, retry, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                overloaded += 1;
                assert_eq!(retry.as_deref(), Some("1"));
                assert_eq!(body["type"], "ServiceUnavailableException");
                assert!(body["message"].as_str().unwrap().contains("queue"), "{body}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(ok >= 1 && overloaded >= 1, "ok={ok} overloaded={overloaded}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_model() {
    let s = TestServer::default().await;
    let exp = expected();
    for _ in 0..3 {
        assert_eq!(
            s.post(format!("{}/predictions/tiny", s.inference), exp["tiny"]["input"].to_string())
                .await
                .0,
            200
        );
    }
    let text =
        s.client.get(format!("{}/metrics", s.metrics)).send().await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("ts_inference_requests_total{") && l.contains("model_name=\"tiny\"")
        })
        .unwrap_or_else(|| panic!("{text}"));
    // TorchServe's exact text (its Java client's): declared label order, a comma after each
    // label, values as Java prints doubles. TorchServe's own tests match these lines.
    assert_eq!(
        line,
        r#"ts_inference_requests_total{model_name="tiny",model_version="1.0",hostname="testhost",} 3.0"#
    );
    let requests = text.lines().find(|l| l.starts_with("Requests2XX{")).unwrap();
    assert!(
        requests.starts_with(r#"Requests2XX{Level="Host",Hostname="testhost",} "#),
        "{requests}"
    );
    assert!(requests.ends_with(".0"), "{requests}");
    assert!(text.contains("# TYPE ts_inference_requests_total counter\n"));
    let filtered = s
        .client
        .get(format!("{}/metrics?name[]=ts_queue_latency_microseconds", s.metrics))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("ts_queue_latency_microseconds{"));
    assert!(!filtered.contains("ts_inference_requests_total"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_without_a_batch_axis_run_one_request_at_a_time() {
    let mut options = Options::default();
    options.models = vec![oxserve_core::RegisterRequest {
        overrides: ModelOverrides {
            batch_size: Some(4),
            max_batch_delay: Some(50),
            ..Default::default()
        },
        ..model("fixed", "fixed_batch.onnx")
    }];
    let s = TestServer::start(options).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (client, url) = (s.client.clone(), format!("{}/predictions/fixed", s.inference));
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).body(json!([i, i, i, i]).to_string()).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let v = 3.0 * i as f64;
        assert_close(&body, &json!([v, v, v, v]), 1e-6);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_timeout_answers_504() {
    let mut options = Options::default();
    options.engine = EngineConfig {
        default_response_timeout: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    options.models = vec![model("slow", "slow.onnx")];
    let s = TestServer::start(options).await;
    // ~150 rows take several seconds on one worker; the answer must come at the 1 s timeout.
    let rows: Vec<Value> = (0..150).map(|_| json!([1.0])).collect();
    let (status, body) =
        s.post(format!("{}/predictions/slow", s.inference), Value::Array(rows).to_string()).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["type"], "RequestTimeoutException");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_shorten_its_deadline_but_not_lengthen_it() {
    let mut options = Options::default();
    options.engine = EngineConfig {
        default_response_timeout: Duration::from_secs(2),
        ..EngineConfig::default()
    };
    options.models = vec![model("slow", "slow.onnx")];
    let s = TestServer::start(options).await;
    let rows = Value::Array((0..150).map(|_| json!([1.0])).collect()).to_string();
    let url = format!("{}/predictions/slow", s.inference);
    // Shorter than the server's: honoured.
    let started = std::time::Instant::now();
    let r = s
        .client
        .post(url.clone())
        .header("x-request-timeout-ms", "100")
        .body(rows.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_millis(1900), "{:?}", started.elapsed());
    // Longer than the server's: the server's 2 s still holds.
    let r = s
        .client
        .post(url)
        .header("x-request-timeout-ms", "600000")
        .body(rows)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    // The Open Inference Protocol's `timeout` parameter, in microseconds.
    let body = json!({"parameters": {"timeout": 50_000},
                      "inputs": [{"name": "x", "shape": [150, 1], "datatype": "FP32", "data": vec![1.0; 150]}]});
    let (status, body) =
        s.post(format!("{}/v2/models/slow/infer", s.inference), body.to_string()).await;
    assert_eq!(status, 504, "{body}");
    assert!(body["error"].as_str().unwrap().contains("timed out"), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_model_concurrency_cap_refuses_at_once() {
    let mut options = Options::default();
    options.models = vec![oxserve_core::RegisterRequest {
        overrides: ModelOverrides { max_concurrent_requests: Some(2), ..Default::default() },
        ..model("slow", "slow.onnx")
    }];
    let s = TestServer::start(options).await;
    let body = json!([[1.0], [1.0], [1.0], [1.0], [1.0]]).to_string();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, body) =
                (s.client.clone(), format!("{}/predictions/slow", s.inference), body.clone());
            tokio::spawn(async move {
                let r = client.post(url).body(body).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (503, body) => {
                refused += 1;
                assert!(
                    body["message"].as_str().unwrap().contains("concurrent requests"),
                    "{body}"
                );
            }
            (status, body) => panic!("{status}: {body}"),
        }
    }
    assert!(ok >= 1 && refused >= 1 && ok + refused == 8, "ok={ok} refused={refused}");
    // The cap is released with each answer: the model serves again afterwards.
    assert_eq!(s.post(format!("{}/predictions/slow", s.inference), "[1.0]").await.0, 200);
    s.stop().await;
}
