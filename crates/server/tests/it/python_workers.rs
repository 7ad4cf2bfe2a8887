//! TorchServe's own Python workers driven by oxserve, over real HTTP on port 0: TorchServe's test
//! archives (tests/fixtures/torchserve, answers as its `ModelServerTest` expects them) and handlers
//! of ours for streaming, batching and faults (tests/fixtures/python). The worker comes from
//! `scripts/install-python-worker.sh` (CI runs it from scripts/test.sh); without it these tests
//! fail and say how to install it, unless `OXSERVE_SKIP_PYTHON_WORKER=1`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oxserve_backend_tract::TractBackend;
use oxserve_core::Registry;
use oxserve_core::config::{EngineConfig, ModelOverrides};
use oxserve_core::metric_log::{MetricLog, Rotation};
use oxserve_core::metrics::Metrics;
use oxserve_python::{PythonRuntime, PythonSettings};

use crate::common::{TestServer, copy_dir, open_server, repo, scrape};

/// The worker venv's interpreter, or `None` when the tests are to be skipped.
fn python() -> Option<PathBuf> {
    venv_python(".venv-python-worker", "TorchServe's worker", "scripts/install-python-worker.sh")
}

/// `<repo>/<venv>/bin/python`; when missing, `None` under `OXSERVE_SKIP_PYTHON_WORKER=1`, else a
/// failure that says how to install it.
fn venv_python(venv: &str, what: &str, script: &str) -> Option<PathBuf> {
    let python = repo().join(venv).join("bin/python");
    if python.exists() {
        return Some(python);
    }
    if std::env::var("OXSERVE_SKIP_PYTHON_WORKER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: OXSERVE_SKIP_PYTHON_WORKER=1 and {} is missing", python.display());
        return None;
    }
    panic!(
        "{} is missing: install {what} with `bash {script}` (or set OXSERVE_SKIP_PYTHON_WORKER=1 \
         to skip these tests)",
        python.display()
    );
}

/// A server whose store holds TorchServe's test archives and our handler folders, with the
/// Python runtime and metric logs in `<store>/logs`.
async fn server(python: PathBuf) -> TestServer {
    server_with(PythonSettings { python, ..PythonSettings::default() }).await
}

async fn server_with(settings: PythonSettings) -> TestServer {
    server_configured(settings, &[]).await
}

/// A server with config.properties-style settings for some models' version 1.0.
async fn server_configured(
    settings: PythonSettings,
    models: &[(&str, ModelOverrides)],
) -> TestServer {
    let store = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("tests/fixtures/torchserve"), store.path());
    copy_dir(&repo().join("tests/fixtures/python"), store.path());
    let mut engine =
        EngineConfig { model_store: store.path().to_path_buf(), ..EngineConfig::default() };
    for (name, overrides) in models {
        engine
            .models
            .entry((*name).to_owned())
            .or_default()
            .insert("1.0".into(), overrides.clone());
    }
    let runtime = PythonRuntime::new(settings);
    let log = MetricLog::open(&store.path().join("logs"), Rotation::default()).unwrap();
    let metrics = Metrics::new("testhost".into(), Some(Arc::new(log)));
    let registry = Registry::with_metrics(
        engine,
        vec![Arc::new(TractBackend)],
        oxserve_handlers::builtins(),
        Arc::new(metrics),
    )
    .with_runtime(Arc::new(runtime));
    let registry = Arc::new(registry);
    TestServer::serve(registry, store, open_server()).await
}

/// The `/metrics` series of `family` for `model`, once a worker has reported it (its output is
/// read apart from its answers, so the series may come just after the answer).
async fn series_named(
    s: &TestServer,
    family: &str,
    model: &str,
) -> std::collections::HashMap<String, f64> {
    let wanted = format!("ModelName=\"{model}\"");
    for _ in 0..1000 {
        let found: std::collections::HashMap<String, f64> = scrape(s)
            .await
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{family}{{")) && k.contains(&wanted))
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {family} series for {model} in /metrics");
}

async fn register(s: &TestServer, query: &str) -> (u16, serde_json::Value) {
    s.post(format!("{}/models?{query}&synchronous=true", s.management), Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torchserve_test_archives_answer_as_torchserve_does() {
    let Some(python) = python() else { return };
    let s = server(python).await;

    // noop: a module with handle(); text/plain "OK".
    assert_eq!(register(&s, "url=noop.mar").await.0, 200);
    let r =
        s.client.post(format!("{}/predictions/noop", s.inference)).body("x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "OK");
    let (status, describe) = s.get(format!("{}/models/noop", s.management)).await;
    assert_eq!(status, 200);
    assert_eq!(describe[0]["runtime"], "python", "{describe}");
    // The handler's own metrics (context.metrics.add_time) reach model_metrics.log.
    let log = s.store.path().join("logs/model_metrics.log");
    let mut logged = String::new();
    for _ in 0..1000 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("PreprocessTime.") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(logged.contains("PreprocessTime."), "{logged}");
    // TorchServe's HandlerTime from the worker is a series; the handler's undeclared
    // PreprocessTime is not (no model_metrics_auto_detect).
    // The worker's other output is model_log.log's, in TorchServe's layout.
    let log = s.store.path().join("logs/model_log.log");
    for _ in 0..1000 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("Torch worker started.") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = logged
        .lines()
        .find(|l| l.contains("Torch worker started."))
        .unwrap_or_else(|| panic!("{logged}"));
    assert!(
        started.contains(" [INFO ] W-") && started.contains("-noop-stdout MODEL_LOG - "),
        "{started}"
    );
    let series = series_named(&s, "HandlerTime", "noop").await;
    assert!(series.keys().any(|k| k.contains("Level=\"Model\"")), "{series:?}");
    assert!(!scrape(&s).await.keys().any(|k| k.starts_with("PreprocessTime")));

    // describe ?customized=true: the handler's describe_handle, as JSON.
    assert_eq!(register(&s, "url=noop-customized.mar").await.0, 200);
    let (status, describe) =
        s.get(format!("{}/models/noop-customized?customized=true", s.management)).await;
    assert_eq!(status, 200, "{describe}");
    assert_eq!(describe[0]["customizedMetadata"], serde_json::json!({"data1": "1", "data2": "2"}));
    let (_, plain) = s.get(format!("{}/models/noop-customized", s.management)).await;
    assert!(plain[0].get("customizedMetadata").is_none(), "{plain}");

    // A `module:function` entry point.
    assert_eq!(register(&s, "url=noop_entrypntfunc.mar").await.0, 200);
    let (status, body) =
        s.post(format!("{}/predictions/noop_entrypntfunc", s.inference), "x").await;
    assert_eq!((status, body), (200, serde_json::json!("OK")));

    // echo: a form field reaches the handler as `data`, and so does a query parameter.
    assert_eq!(register(&s, "url=echo.mar").await.0, 200);
    let r = s
        .client
        .post(format!("{}/predictions/echo", s.inference))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("data=hello+world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello world");
    let form = reqwest::multipart::Form::new().text("data", "from a form");
    let r = s
        .client
        .post(format!("{}/predictions/echo", s.inference))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "from a form");
    let (status, body) = s.post(format!("{}/predictions/echo?data=queried", s.inference), "").await;
    assert_eq!((status, body), (200, serde_json::json!("queried")));

    // error_batch: the handler sets 507 on its request; the batch itself succeeded.
    assert_eq!(register(&s, "url=error_batch.mar&model_name=err_batch").await.0, 200);
    let r = s
        .client
        .post(format!("{}/predictions/err_batch", s.inference))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("data=invalid_output")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507);
    assert_eq!(r.text().await.unwrap(), "Invalid response");

    // PredictionException with its own code, and MemoryError while predicting.
    assert_eq!(register(&s, "url=pred-custom-return-code.mar").await.0, 200);
    let (status, body) =
        s.post(format!("{}/predictions/pred-custom-return-code", s.inference), "x").await;
    assert_eq!(status, 599, "{body}");
    assert_eq!(body["code"], 599);
    assert_eq!(body["message"], "Some Prediction Error");
    assert_eq!(register(&s, "url=prediction-memory-error.mar&model_name=pred-err").await.0, 200);
    let (status, body) = s.post(format!("{}/predictions/pred-err", s.inference), "x").await;
    assert_eq!(status, 507, "{body}");

    // Headers and content type the handler set.
    assert_eq!(register(&s, "url=respheader-test.mar&model_name=respheader").await.0, 200);
    let r = s
        .client
        .post(format!("{}/predictions/respheader", s.inference))
        .header("content-type", "application/json")
        .body(r#"{"data": "test"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["dummy"], "1");
    assert_eq!(r.headers()["content-type"], "text/plain");

    // A handler that fails to load fails its registration: 507 for MemoryError, 500 otherwise,
    // and the model is not kept.
    let (status, body) = register(&s, "url=loading-memory-error.mar&model_name=memory_error").await;
    assert_eq!(status, 507, "{body}");
    let (status, body) = register(&s, "url=init-error.mar").await;
    assert_eq!(status, 500, "{body}");
    assert!(body["message"].as_str().unwrap().contains("failed to load"), "{body}");
    assert_eq!(s.get(format!("{}/models/init-error", s.management)).await.0, 404);
    assert_eq!(s.get(format!("{}/ping", s.inference)).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermediate_answers_are_streamed_as_they_come() {
    use futures_util::StreamExt;
    let Some(python) = python() else { return };
    let s = server(python).await;
    assert_eq!(register(&s, "url=stream").await.0, 200);
    let folder = s.store.path().join("stream");
    let r = s
        .client
        .post(format!("{}/predictions/stream", s.inference))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut received = String::new();
    // Each part arrives before the handler is allowed to write the next one.
    for n in 1..=4 {
        let want = if n < 4 { format!("part {n};") } else { "part 4.".to_owned() };
        while !received.ends_with(&want) {
            let chunk = tokio::time::timeout(Duration::from_secs(60), body.next())
                .await
                .expect("the part arrives")
                .expect("the stream goes on")
                .unwrap();
            received.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        std::fs::write(folder.join(format!("go-{}", n + 1)), "").unwrap();
    }
    assert_eq!(received, "part 1;part 2;part 3;part 4.");
    assert!(body.next().await.is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_reach_the_handler_as_one_batch() {
    let Some(python) = python() else { return };
    let s = server(python).await;
    assert_eq!(register(&s, "url=batch_len").await.0, 200);
    let url = format!("{}/predictions/batch_len", s.inference);
    let calls = (0..4).map(|_| s.post(url.clone(), "x"));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!((status, body), (200, serde_json::json!({"batch": 4})));
    }
    s.stop().await;
}

/// Waits for the handler's hang.pid and returns the pid in it.
async fn hung_worker(folder: &std::path::Path) -> i32 {
    let path = folder.join("hang.pid");
    for _ in 0..6000 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let _ = std::fs::remove_file(&path);
            return text.trim().parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the handler never hung");
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_hung_worker_fails_its_batch_and_comes_back_and_unregister_leaves_nothing() {
    let Some(python) = python() else { return };
    let s = server(python).await;
    assert_eq!(register(&s, "url=faults").await.0, 200);
    let folder = s.store.path().join("faults");
    let url = format!("{}/predictions/faults", s.inference);
    assert_eq!(s.post(url.clone(), "ok").await, (200, serde_json::json!("ok")));
    // Header names reach the handler as HTTP/1.1 clients write them, and url_path as TorchServe
    // sets it (empty on /predictions/{m}).
    let r = s.client.post(url.clone()).header("content-type", "text/plain").body("headers");
    let answer: serde_json::Value = r.send().await.unwrap().json().await.unwrap();
    assert_eq!(answer, serde_json::json!({"Content-Type": "text/plain", "url_path": ""}));

    // A handler that floods its output (and writes one 32 MB line) is still answered; its output
    // is read line by line, long lines cut, never held whole.
    assert_eq!(s.post(url.clone(), "flood").await, (200, serde_json::json!("ok")));

    // SIGKILL mid-batch: that request fails with 507 (TorchServe's code for a killed worker), the
    // worker is started again, and the next request is answered.
    let hung = tokio::spawn({
        let (client, url) = (s.client.clone(), url.clone());
        async move { client.post(url).body("hang").send().await.unwrap().status().as_u16() }
    });
    let pid = hung_worker(&folder).await;
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert_eq!(hung.await.unwrap(), 507);
    assert_eq!(s.post(url.clone(), "ok").await, (200, serde_json::json!("ok")));

    // A hung handler whose client gives up (its deadline, here shortened by the request header):
    // that client gets 504, the worker is killed and replaced, and the request queued behind it
    // is answered by the new worker instead of timing out too.
    let hung = tokio::spawn({
        let (client, url) = (s.client.clone(), url.clone());
        async move {
            let r = client.post(url).header("x-request-timeout-ms", "1000").body("hang");
            r.send().await.unwrap().status().as_u16()
        }
    });
    let pid = hung_worker(&folder).await;
    let (status, body) = s.post(url.clone(), "ok").await;
    assert_eq!((status, body), (200, serde_json::json!("ok")));
    assert_eq!(hung.await.unwrap(), 504);
    assert!(!alive(pid), "the hung worker {pid} is still running");

    // Unregistering stops the worker and leaves no socket behind.
    let (_, describe) = s.get(format!("{}/models/faults", s.management)).await;
    let pids: Vec<i32> = describe[0]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .map(|p| i32::try_from(p).unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "{describe}");
    let (status, _) = s
        .send(reqwest::Method::DELETE, format!("{}/models/faults?synchronous=true", s.management))
        .await;
    assert_eq!(status, 200);
    for _ in 0..500 {
        if !alive(pids[0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(pids[0]), "worker {} outlived its model", pids[0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_client_that_stops_reading_does_not_hold_the_worker() {
    use tokio::io::AsyncWriteExt;
    let Some(python) = python() else { return };
    let s = server(python).await;
    assert_eq!(register(&s, "url=stream").await.0, 200);
    let folder = s.store.path().join("stream");
    // A client that asks for 64 MiB of parts and then reads nothing.
    let address = s.inference.trim_start_matches("http://");
    let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /predictions/stream HTTP/1.1\r\nhost: {address}\r\nx-request-timeout-ms: 3000\r\n\
         content-length: 3\r\n\r\nbig"
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    // The one worker gives up on it at its deadline and answers the next request.
    for n in 2..=4 {
        std::fs::write(folder.join(format!("go-{n}")), "").unwrap();
    }
    let r = s
        .client
        .post(format!("{}/predictions/stream", s.inference))
        .timeout(Duration::from_secs(60))
        .body("x")
        .send()
        .await
        .expect("answered while the stalled client is still connected");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "part 1;part 2;part 3;part 4.");
    drop(stalled);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_stream_predictions_sends_each_part_as_a_message() {
    use oxserve_server::grpc::proto::torchserve::inference::PredictionsRequest;
    use oxserve_server::grpc::proto::torchserve::inference::inference_ap_is_service_client::InferenceApIsServiceClient;
    let Some(python) = python() else { return };
    let s = server(python).await;
    assert_eq!(register(&s, "url=stream").await.0, 200);
    assert_eq!(register(&s, "url=pred-custom-return-code.mar").await.0, 200);
    let folder = s.store.path().join("stream");
    let channel = tonic::transport::Endpoint::from_shared(s.grpc_inference.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = InferenceApIsServiceClient::new(channel);
    let request = |model: &str| PredictionsRequest {
        model_name: model.into(),
        input: [("data".to_owned(), bytes::Bytes::from_static(b"x"))].into_iter().collect(),
        ..Default::default()
    };
    let mut stream = client.stream_predictions(request("stream")).await.unwrap().into_inner();
    for n in 1..=4 {
        let part = stream.message().await.unwrap().expect("a message per part");
        let want = if n < 4 { format!("part {n};") } else { "part 4.".to_owned() };
        assert_eq!(String::from_utf8_lossy(&part.prediction), want);
        std::fs::write(folder.join(format!("go-{}", n + 1)), "").unwrap();
    }
    assert!(stream.message().await.unwrap().is_none());
    // The handler's own code 599 is the call's error; its words are the message.
    let err = client.predictions(request("pred-custom-return-code")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);
    assert!(err.message().contains("Some Prediction Error"), "{err:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_handler_packed_without_weights_serves() {
    use oxserve_store::archive::{PackOptions, pack};
    let Some(python) = python() else { return };
    let s = server(python).await;
    // As `oxserve archive --model-name packed --handler batch_handler.py` (no --serialized-file).
    let opts = PackOptions {
        serialized_file: None,
        handler: Some(
            repo().join("tests/fixtures/python/batch_len/batch_handler.py").display().to_string(),
        ),
        export_path: s.store.path().to_path_buf(),
        ..PackOptions::new("packed", "unused")
    };
    pack(&opts).unwrap();
    assert_eq!(register(&s, "url=packed.mar").await.0, 200);
    let (status, body) = s.post(format!("{}/predictions/packed", s.inference), "x").await;
    assert_eq!((status, body), (200, serde_json::json!({"batch": 1})));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirements_are_installed_at_load_only_when_asked() {
    let Some(python) = python() else { return };
    // Off (the default): the handler's `import tsv` fails, so does the registration.
    let s = server(python.clone()).await;
    let (status, body) = register(&s, "url=custom_python_dep.mar").await;
    assert_eq!(status, 500, "{body}");
    s.stop().await;
    // install_py_dep_per_model=true: pip installs `tsv` from PyPI into the model folder first.
    let s = server_with(PythonSettings {
        python: python.clone(),
        install_dependencies: true,
        ..PythonSettings::default()
    })
    .await;
    let (status, body) = register(&s, "url=custom_python_dep.mar").await;
    assert_eq!(status, 200, "{body}");
    s.stop().await;

    // useVenv: the model gets a venv of its own (TorchServe's setup_model_venv.py), the
    // requirements go into it, and its interpreter runs the worker.
    let use_venv = ModelOverrides { use_venv: Some(true), ..ModelOverrides::default() };
    let s = server_configured(
        PythonSettings { python, install_dependencies: true, ..PythonSettings::default() },
        &[("custom_python_dep", use_venv)],
    )
    .await;
    let (status, body) = register(&s, "url=custom_python_dep.mar&initial_workers=1").await;
    assert_eq!(status, 200, "{body}");
    let (_, describe) = s.get(format!("{}/models/custom_python_dep", s.management)).await;
    assert_eq!(describe[0]["useVenv"], true, "{describe}");
    let pid = describe[0]["workers"][0]["pid"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let interpreter = PathBuf::from(
        String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap()).into_owned(),
    );
    let venv = interpreter.parent().unwrap().parent().unwrap().to_path_buf();
    assert_eq!(venv.file_name().unwrap(), "venv", "{}", interpreter.display());
    let installed = glob_site_packages(&venv);
    assert!(installed.iter().any(|p| p.starts_with("tsv")), "{installed:?}");
    s.stop().await;
}

/// Names in a venv's site-packages.
fn glob_site_packages(venv: &std::path::Path) -> Vec<String> {
    let lib = venv.join("lib");
    let mut names = Vec::new();
    for python in std::fs::read_dir(&lib).unwrap().flatten() {
        if let Ok(entries) = std::fs::read_dir(python.path().join("site-packages")) {
            names.extend(entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
        }
    }
    names
}

/// What `tests/fixtures/pytorch/run_handler.py` prints: the handler run in a plain Python process.
fn plain_python(
    python: &std::path::Path,
    dir: &std::path::Path,
    handler: &str,
    input: &[&str],
) -> serde_json::Value {
    let output = std::process::Command::new(python)
        .arg(repo().join("tests/fixtures/pytorch/run_handler.py"))
        .arg(dir)
        .args([handler, dir.file_name().unwrap().to_str().unwrap()])
        .args(input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The PyTorch venv's interpreter (torch, numpy), or `None` when the tests are to be skipped.
fn torch_python() -> Option<PathBuf> {
    venv_python(
        ".venv-python-torch",
        "Debian's CPU PyTorch and the worker",
        "scripts/install-python-torch.sh",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oip_infer_and_explain_reach_the_handler_through_torchserve_s_kservev2_envelope() {
    let Some(python) = torch_python() else { return };
    let s = server_with(PythonSettings {
        python,
        envelope: Some("kservev2".to_owned()),
        ..PythonSettings::default()
    })
    .await;
    assert_eq!(register(&s, "url=sums&batch_size=1&initial_workers=1").await.0, 200);
    let request = serde_json::json!({
        "id": "r1",
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]},
            {"name": "b", "shape": [3], "datatype": "FP32", "data": [0.5, 0.5, 1.0]}
        ]
    })
    .to_string();
    for call in ["infer", "explain"] {
        let url = format!("{}/v2/models/sums/{call}", s.inference);
        let (status, body) = s.post(url, request.clone()).await;
        assert_eq!(status, 200, "{call}: {body}");
        assert_eq!(body["id"], "r1", "{body}");
        assert_eq!(body["model_name"], "sums", "{body}");
        let outputs = body["outputs"].as_array().unwrap();
        let names: Vec<&str> = outputs.iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b"], "{body}");
        assert_eq!(outputs[0]["data"], serde_json::json!([10]), "{body}");
        assert_eq!(outputs[1]["data"], serde_json::json!([2.0]), "{body}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytorch_models_answer_as_their_handler_does_in_plain_python() {
    let Some(python) = torch_python() else { return };
    let s = server(python.clone()).await;
    copy_dir(&repo().join("tests/fixtures/pytorch"), s.store.path());
    let photos = repo().join("tests/fixtures/handlers/vision/classifier/photos");
    let photo = std::fs::read_dir(&photos).unwrap().next().unwrap().unwrap().path();

    // A TorchScript CNN through TorchServe's default image_classifier, unchanged.
    assert_eq!(register(&s, "url=cnn").await.0, 200);
    let r = s
        .client
        .post(format!("{}/predictions/cnn", s.inference))
        .header("content-type", "image/png")
        .body(std::fs::read(&photo).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served: serde_json::Value = r.json().await.unwrap();
    let dir = s.store.path().join("cnn");
    let plain =
        plain_python(&python, &dir, "image_classifier", &["--bytes", photo.to_str().unwrap()]);
    assert_eq!(served.as_object().unwrap().len(), 5, "{served}");
    assert_eq!(served, plain);

    // An eager model (model.py + state_dict) through a custom BaseHandler subclass.
    assert_eq!(register(&s, "url=mlp").await.0, 200);
    let r = s
        .client
        .post(format!("{}/predictions/mlp", s.inference))
        .header("content-type", "application/json")
        .body("[1, 2, 3, 4]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served: serde_json::Value = r.json().await.unwrap();
    let dir = s.store.path().join("mlp");
    let plain = plain_python(&python, &dir, "mlp_handler.py", &["--json", "[1, 2, 3, 4]"]);
    assert_eq!(served, plain);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kserve_v1_reaches_the_handler_through_torchserve_s_kserve_envelope() {
    let Some(python) = python() else { return };
    let s = server_with(PythonSettings {
        python,
        envelope: Some("kserve".to_owned()),
        ..PythonSettings::default()
    })
    .await;
    // One request per batch: the envelope reads only the first request of a batch.
    assert_eq!(register(&s, "url=batch_len&batch_size=1").await.0, 200);
    // The envelope hands the handler the instances, and wraps its answers as predictions.
    let request = serde_json::json!({"instances": [1, 2, 3]});
    let (status, body) =
        s.post(format!("{}/v1/models/batch_len:predict", s.inference), request.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"predictions": [{"batch": 3}, {"batch": 3}, {"batch": 3}]})
    );
    let (status, body) = s.get(format!("{}/v1/models/batch_len", s.inference)).await;
    assert_eq!((status, body), (200, serde_json::json!({"name": "batch_len", "ready": true})));
    s.stop().await;
}
