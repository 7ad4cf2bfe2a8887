//! tract and ONNX Runtime behind real servers on port 0: the same requests give the same answers on
//! every example and fixture model and on a real image classifier (through the `image_classifier`
//! handler), and GPU requests on a machine without a usable GPU run on the CPU (describe says so) or
//! fail the registration, as `gpu_fallback` says.
//!
//! ONNX Runtime comes from `bash scripts/install-onnxruntime.sh` (found automatically). Without it
//! these tests fail, unless `OXSERVE_SKIP_ORT=1` is set, in which case they print a notice and pass.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::{TestServer, copy_dir, repo, write_model_dir};
use oxserve_backend::{Backend, GpuFallback};
use oxserve_backend_tract::TractBackend;
use oxserve_core::RegisterRequest;
use oxserve_core::config::EngineConfig;
use serde_json::{Value, json};

/// ONNX Runtime, or `None` (after a notice) when it is missing and `OXSERVE_SKIP_ORT=1`.
fn ort() -> Option<Arc<dyn Backend>> {
    oxserve_backend_ort::testing::backend_or_skip().map(|b| Arc::new(b) as Arc<dyn Backend>)
}

/// A model store with every example and fixture model, and the vision classifier as `photos`.
fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/model-store"), dir.path());
    for name in ["multi_io", "fixed_batch", "slow", "fp16_add"] {
        let from = repo().join(format!("tests/fixtures/models/{name}.onnx"));
        std::fs::copy(from, dir.path().join(format!("{name}.onnx"))).unwrap();
    }
    let photos = dir.path().join("photos");
    copy_dir(&repo().join("tests/fixtures/handlers/vision/classifier"), &photos);
    std::fs::remove_dir_all(photos.join("photos")).unwrap();
    // The fixture's preprocessing, with batching so that concurrent photos run as one batch.
    let config = std::fs::read_to_string(photos.join("model-config.yaml")).unwrap();
    let config = format!("batchSize: 4\nmaxBatchDelay: 20\n{config}");
    write_model_dir(&photos, "photos", "model.onnx", "image_classifier", &config);
    dir
}

/// A server on loopback port 0 offering exactly `backends`, with `models` (names in `store`)
/// registered under their names without `.onnx`.
async fn serve(
    store: tempfile::TempDir,
    backends: Vec<Arc<dyn Backend>>,
    engine: EngineConfig,
    models: &[&str],
) -> TestServer {
    let engine = EngineConfig { model_store: store.path().to_path_buf(), ..engine };
    let registry = crate::common::registry(engine, backends, None);
    for url in models {
        let request = RegisterRequest {
            url: (*url).to_owned(),
            model_name: Some(url.trim_end_matches(".onnx").to_owned()),
            synchronous: true,
            ..RegisterRequest::default()
        };
        registry.register(request).await.unwrap();
    }
    TestServer::serve(registry, store, crate::common::open_server()).await
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let top = u32::try_from(state >> 40).unwrap();
            f64::from(top) / f64::from(1u32 << 23) - 1.0
        })
        .collect()
}

/// An OIP infer body for the inputs the model's metadata declares: `rows` rows where the batch axis
/// is dynamic, deterministic data of the declared datatype.
fn request_for(metadata: &Value, rows: usize, seed: u64) -> Value {
    let inputs: Vec<Value> = metadata["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let shape: Vec<usize> = input["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| usize::try_from(d.as_i64().unwrap()).unwrap_or(rows))
                .collect();
            let n: usize = shape.iter().product();
            let raw = values(n, seed * 31 + i as u64);
            let data: Vec<Value> = match input["datatype"].as_str().unwrap() {
                "INT64" => raw.iter().map(|v| json!((v * 100.0).round() as i64)).collect(),
                // Halves of small integers are exact in FP16, so both engines see the same input.
                "FP16" => raw.iter().map(|v| json!((v * 64.0).round() / 8.0)).collect(),
                _ => raw.iter().map(|v| json!(v)).collect(),
            };
            json!({"name": input["name"], "shape": shape, "datatype": input["datatype"], "data": data})
        })
        .collect();
    json!({ "inputs": inputs })
}

/// Asserts two OIP answers are equal: names, datatypes and shapes exactly, integers exactly, floats
/// within `abs + rel * |x|`. Returns the largest float difference.
fn assert_same(model: &str, tract: &Value, ort: &Value, abs: f64, rel: f64) -> f64 {
    let (t, o) = (tract["outputs"].as_array().unwrap(), ort["outputs"].as_array().unwrap());
    assert_eq!(t.len(), o.len(), "{model}: output count");
    let mut worst = 0.0f64;
    for (a, b) in t.iter().zip(o) {
        for key in ["name", "datatype", "shape"] {
            assert_eq!(a[key], b[key], "{model}: output {key}");
        }
        let (x, y) = (a["data"].as_array().unwrap(), b["data"].as_array().unwrap());
        assert_eq!(x.len(), y.len(), "{model}: output length");
        for (p, q) in x.iter().zip(y) {
            if p.is_i64() || p.is_u64() {
                assert_eq!(p, q, "{model}: integer output {}", a["name"]);
                continue;
            }
            let (p, q) = (p.as_f64().unwrap(), q.as_f64().unwrap());
            let diff = (p - q).abs();
            worst = worst.max(diff);
            assert!(
                diff <= abs + rel * p.abs(),
                "{model} {}: tract {p}, ONNX Runtime {q}",
                a["name"]
            );
        }
    }
    worst
}

/// Every example and fixture model (TorchServe-style folders and bare `.onnx` files).
const MODELS: &[&str] =
    &["tiny", "digits", "multi_io.onnx", "fixed_batch.onnx", "slow.onnx", "fp16_add.onnx"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_model_answers_the_same_on_both_engines() {
    let Some(ort) = ort() else { return };
    let tract = serve(store(), vec![Arc::new(TractBackend)], EngineConfig::default(), MODELS).await;
    let onnx = serve(store(), vec![ort], EngineConfig::default(), MODELS).await;
    for url in MODELS {
        let model = url.trim_end_matches(".onnx");
        let (status, metadata) = tract
            .call(reqwest::Method::GET, format!("{}/v2/models/{model}", tract.inference), vec![])
            .await;
        assert_eq!(status, 200, "{metadata}");
        let (_, other) = onnx
            .call(reqwest::Method::GET, format!("{}/v2/models/{model}", onnx.inference), vec![])
            .await;
        assert_eq!(metadata["inputs"], other["inputs"], "{model}: same signature");
        assert_eq!(metadata["outputs"], other["outputs"], "{model}: same signature");
        let dynamic = metadata["inputs"][0]["shape"][0].as_i64() == Some(-1);
        // Several concurrent requests, so that batched runs are compared too.
        let requests: Vec<Value> = (0..4)
            .map(|seed| {
                request_for(&metadata, if dynamic { 1 + seed as usize % 3 } else { 1 }, seed)
            })
            .collect();
        let ask = |served: &TestServer, body: &Value| {
            let url = format!("{}/v2/models/{model}/infer", served.inference);
            let request = served.client.post(url).body(body.to_string()).send();
            async move {
                let r = request.await.unwrap();
                assert_eq!(r.status(), 200, "{model}");
                r.json::<Value>().await.unwrap()
            }
        };
        let from_tract =
            futures_util::future::join_all(requests.iter().map(|b| ask(&tract, b))).await;
        let from_ort = futures_util::future::join_all(requests.iter().map(|b| ask(&onnx, b))).await;
        let mut worst = 0.0f64;
        for (t, o) in from_tract.iter().zip(&from_ort) {
            worst = worst.max(assert_same(model, t, o, 1e-4, 1e-4));
        }
        eprintln!("{model}: largest |tract - ONNX Runtime| = {worst:e}");
    }
    tract.stop().await;
    onnx.stop().await;
}

/// The classifier's answers for each photo, `{label: probability}`, asked concurrently.
async fn classify(
    served: &TestServer,
    photos: &[(String, Vec<u8>)],
) -> Vec<serde_json::Map<String, Value>> {
    let url = format!("{}/predictions/photos", served.inference);
    let asks = photos.iter().map(|(name, bytes)| {
        let request =
            served.client.post(&url).header("content-type", "image/jpeg").body(bytes.clone());
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200, "{name}");
            r.json::<Value>().await.unwrap().as_object().unwrap().clone()
        }
    });
    futures_util::future::join_all(asks).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_classifier_answers_the_same_on_both_engines() {
    let Some(ort) = ort() else { return };
    let dir = repo().join("tests/fixtures/handlers/vision/classifier");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut photos: Vec<(String, Vec<u8>)> = expected
        .as_object()
        .unwrap()
        .keys()
        .map(|f| (f.clone(), std::fs::read(dir.join("photos").join(f)).unwrap()))
        .collect();
    photos.sort();
    let tract =
        serve(store(), vec![Arc::new(TractBackend)], EngineConfig::default(), &["photos"]).await;
    let onnx = serve(store(), vec![ort], EngineConfig::default(), &["photos"]).await;
    let (from_tract, from_ort) = (classify(&tract, &photos).await, classify(&onnx, &photos).await);
    for (((file, _), t), o) in photos.iter().zip(&from_tract).zip(&from_ort) {
        let top = |m: &serde_json::Map<String, Value>| {
            m.iter()
                .max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).unwrap())
                .unwrap()
                .0
                .clone()
        };
        assert_eq!(top(t), expected[file].as_str().unwrap(), "{file}: tract {t:?}");
        assert_eq!(top(o), top(t), "{file}: ONNX Runtime {o:?}");
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            o.keys().collect::<Vec<_>>(),
            "{file}: same top 5"
        );
        for (label, p) in t {
            let (p, q) = (p.as_f64().unwrap(), o[label].as_f64().unwrap());
            assert!((p - q).abs() <= 1e-4, "{file} {label}: tract {p}, ONNX Runtime {q}");
        }
    }
    eprintln!("{} photos: same labels and probabilities within 1e-4 on both engines", photos.len());
    tract.stop().await;
    onnx.stop().await;
}

/// Copies the `tiny` example as `name` with a model-config.yaml of `config`, into the live store.
fn add_tiny(served_store: &Path, name: &str, config: &str) {
    let dir = served_store.join(name);
    copy_dir(&repo().join("examples/model-store/tiny"), &dir);
    let manifest = std::fs::read_to_string(dir.join("MAR-INF/MANIFEST.json"))
        .unwrap()
        .replace("\"modelName\": \"tiny\"", &format!("\"modelName\": \"{name}\""));
    std::fs::write(dir.join("MAR-INF/MANIFEST.json"), manifest).unwrap();
    std::fs::write(dir.join("model-config.yaml"), config).unwrap();
}

fn store_of(served: &TestServer) -> PathBuf {
    served.registry.config().model_store.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_model_without_a_usable_gpu_falls_back_or_fails_as_configured() {
    let Some(ort) = ort() else { return };
    let gpu_config = "minWorkers: 3\ndeviceType: gpu\ndeviceIds: [0, 1]\n";
    let row: Vec<f64> = values(64, 5);
    let body =
        json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]});

    // gpu_fallback=error: registration fails with the reason, unless a GPU is really usable here.
    let strict = EngineConfig { gpu_fallback: GpuFallback::Error, ..EngineConfig::default() };
    let served = serve(store(), vec![Arc::clone(&ort)], strict, &[]).await;
    add_tiny(&store_of(&served), "tiny_gpu", gpu_config);
    let (status, answer) = served
        .call(reqwest::Method::POST, format!("{}/models?url=tiny_gpu", served.management), vec![])
        .await;
    let gpu_usable = status == 200;
    eprintln!("gpu_fallback=error: {status} {answer}");
    if !gpu_usable {
        assert_eq!(status, 400, "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains("gpu:0") && message.contains("gpu_fallback=error"), "{answer}");
        assert_eq!(answer["code"], 400, "{answer}");
    }
    served.stop().await;

    // The default: the workers run on the CPU, and describe says where each one really runs.
    let served = serve(store(), vec![Arc::clone(&ort)], EngineConfig::default(), &[]).await;
    add_tiny(&store_of(&served), "tiny_gpu", gpu_config);
    let (status, answer) = served
        .call(reqwest::Method::POST, format!("{}/models?url=tiny_gpu", served.management), vec![])
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, described) = served
        .call(reqwest::Method::GET, format!("{}/models/tiny_gpu", served.management), vec![])
        .await;
    assert_eq!(status, 200, "{described}");
    let model = &described[0];
    assert_eq!(model["deviceType"], "gpu", "{model}");
    let workers = model["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3, "{model}");
    for (k, worker) in workers.iter().enumerate() {
        assert_eq!(worker["status"], "READY", "{worker}");
        if gpu_usable {
            // Round-robin over deviceIds [0, 1].
            assert_eq!(worker["device"], format!("gpu:{}", [0, 1][k % 2]), "{worker}");
            assert_eq!(worker["gpu"], true, "{worker}");
        } else {
            assert_eq!(worker["device"], "cpu", "{worker}");
            assert_eq!(worker["gpu"], false, "{worker}");
        }
    }
    let (status, answer) = served
        .call(
            reqwest::Method::POST,
            format!("{}/v2/models/tiny_gpu/infer", served.inference),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["shape"], json!([1, 10]), "{answer}");
    served.stop().await;

    // tract has no GPU: a clear load error whatever the fallback.
    let served = serve(store(), vec![Arc::new(TractBackend)], EngineConfig::default(), &[]).await;
    add_tiny(&store_of(&served), "tiny_gpu", gpu_config);
    let (status, answer) = served
        .call(reqwest::Method::POST, format!("{}/models?url=tiny_gpu", served.management), vec![])
        .await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("CPU only") && message.contains("engine: onnxruntime"), "{answer}");
    served.stop().await;
}

/// Rows per second of one session running `batch`-row inputs back to back for about `seconds`.
fn in_process_rows_per_s(backend: &dyn Backend, path: &Path, batch: usize, seconds: f64) -> f64 {
    use oxserve_backend::{Device, ModelSource};
    let source =
        ModelSource { path: path.to_path_buf(), intra_threads: Some(1), ..ModelSource::default() };
    let model = backend.load(&source).unwrap();
    let mut session = model.new_session(Device::Cpu).unwrap();
    let input = bench_input(model.signature(), batch);
    session.run(input.clone()).unwrap();
    let started = std::time::Instant::now();
    let mut runs = 0usize;
    while runs < 3 || started.elapsed().as_secs_f64() < seconds {
        std::hint::black_box(session.run(input.clone()).unwrap());
        runs += 1;
    }
    (runs * batch) as f64 / started.elapsed().as_secs_f64()
}

/// Deterministic FP32 input of `rows` rows for a model with one FP32 input.
fn bench_input(
    signature: &oxserve_backend::Signature,
    rows: usize,
) -> Vec<oxserve_backend::Tensor> {
    use oxserve_backend::{Dim, Tensor, TensorData};
    let spec = &signature.inputs[0];
    let mut shape: Vec<usize> =
        spec.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
    shape[0] = rows;
    let n: usize = shape.iter().product();
    let data = values(n, 3).into_iter().map(|v| v as f32).collect();
    vec![Tensor::new(shape, TensorData::F32(data)).unwrap()]
}

/// Rows per second served: `clients` concurrent keep-alive clients each sending one-row OIP
/// requests (binary tensor extension in and out, so that JSON number formatting is not measured)
/// for about `seconds`, to a model batching up to `batch` rows.
async fn served_rows_per_s(
    backend: Arc<dyn Backend>,
    path: &Path,
    batch: usize,
    clients: usize,
    seconds: f64,
) -> f64 {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(path, dir.join("model.onnx")).unwrap();
    let config =
        format!("minWorkers: 1\nbatchSize: {batch}\nmaxBatchDelay: 5\nintraOpThreads: 1\n");
    write_model_dir(&dir, "m", "model.onnx", "tensor", &config);
    let served = serve(store, vec![backend], EngineConfig::default(), &["m"]).await;
    let signature = served.registry.get("m", None).unwrap().signature().clone();
    let input = bench_input(&signature, 1).remove(0);
    let oxserve_backend::TensorData::F32(data) = input.data() else { unreachable!() };
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "inputs": [{"name": signature.inputs[0].name, "shape": input.shape(), "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}],
        "parameters": {"binary_data_output": true}
    });
    let mut body = serde_json::to_vec(&header).unwrap();
    let header_length = body.len();
    body.extend_from_slice(&raw);
    let body = bytes::Bytes::from(body);
    let url = format!("{}/v2/models/m/infer", served.inference);
    let send = move |client: reqwest::Client| {
        let (url, body) = (url.clone(), body.clone());
        async move {
            let r = client
                .post(url)
                .header("inference-header-content-length", header_length)
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    };
    // Warm-up: every client once.
    futures_util::future::join_all((0..clients).map(|_| send(served.client.clone()))).await;
    let started = std::time::Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, done, send) = (served.client.clone(), Arc::clone(&done), send.clone());
            tokio::spawn(async move {
                while started.elapsed().as_secs_f64() < seconds {
                    send(client.clone()).await;
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate =
        done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    served.stop().await;
    rate
}

/// In-process against served throughput on both engines at batch 1, 4 and 8, for the example models
/// and EfficientNet-Lite0 when `../shared/models` (or `OXSERVE_SHARED_MODELS`) has it. Prints the
/// Markdown table of docs/engines.md. Run with
/// `cargo test --release -p oxserve-server --test it -- engines::bench_engines --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_engines() {
    let Some(ort) = ort() else { return };
    let shared = std::env::var_os("OXSERVE_SHARED_MODELS")
        .map_or_else(|| repo().join("../shared/models"), PathBuf::from);
    let mut models = vec![
        ("tiny MLP", repo().join("examples/models/tiny.onnx"), 1.5),
        ("digits MLP", repo().join("examples/models/digits_mlp.onnx"), 1.5),
    ];
    let cnn = shared.join("efficientnet_lite0.onnx");
    if cnn.is_file() {
        models.push(("EfficientNet-Lite0", cnn, 6.0));
    } else {
        eprintln!("no {}: the CNN rows are skipped", cnn.display());
    }
    let engines: Vec<(&str, Arc<dyn Backend>)> =
        vec![("tract", Arc::new(TractBackend)), ("ONNX Runtime", ort)];
    println!(
        "| model | engine | batch | clients | in-process rows/s | served rows/s | served / in-process |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, path, seconds) in &models {
        for (engine, backend) in &engines {
            let mut best = (0.0f64, 0.0f64);
            for batch in [1usize, 4, 8] {
                let clients = 2 * batch;
                let inner = {
                    let (backend, path) = (Arc::clone(backend), path.clone());
                    let seconds = *seconds;
                    tokio::task::spawn_blocking(move || {
                        in_process_rows_per_s(&*backend, &path, batch, seconds)
                    })
                    .await
                    .unwrap()
                };
                let served =
                    served_rows_per_s(Arc::clone(backend), path, batch, clients, *seconds).await;
                best = (best.0.max(inner), best.1.max(served));
                println!(
                    "| {name} | {engine} | {batch} | {clients} | {inner:.0} | {served:.0} | {:.2} |",
                    served / inner
                );
            }
            println!(
                "| {name} | {engine} | best | | {:.0} | {:.0} | **{:.2}** |",
                best.0,
                best.1,
                best.1 / best.0
            );
        }
    }
}
