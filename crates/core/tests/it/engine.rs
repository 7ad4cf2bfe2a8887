//! The serving core with the real tract engine: batching, scaling and cancellation.
//!
//! The backend is tract wrapped in a decorator that counts the rows each session runs, so a test can
//! tell which requests reached the engine.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxserve_backend::{
    Backend, BackendError, Device, LoadedModel, ModelSource, Session, Signature, Tensor, TensorData,
};
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::{EngineConfig, ModelOverrides};
use oxserve_core::{EngineError, ModelVersion, RegisterRequest, Registry, RequestOptions};

#[derive(Debug, Default)]
struct Counting {
    rows: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
    /// The name of the thread each run ran on.
    threads: Arc<Mutex<Vec<String>>>,
    /// Sessions cannot be created (a model whose workers keep failing).
    broken_sessions: bool,
    /// Sessions of the model in the file of this name answer an input they ran before from
    /// memory (tract's own answer, kept), so a run costs a microsecond or two whatever the build
    /// profile or the machine's load.
    memo: Option<&'static str>,
}

#[derive(Debug)]
struct CountingModel {
    inner: Arc<dyn LoadedModel>,
    rows: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<String>>>,
    broken_sessions: bool,
    memo: bool,
}

struct CountingSession {
    inner: Box<dyn Session>,
    rows: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<String>>>,
    /// The last input run and tract's answer to it, when the backend memoises.
    memo: Option<Option<(Vec<Tensor>, Vec<Tensor>)>>,
}

impl Backend for Counting {
    fn name(&self) -> &'static str {
        "tract"
    }
    fn load(&self, source: &ModelSource) -> Result<Arc<dyn LoadedModel>, BackendError> {
        Ok(Arc::new(CountingModel {
            inner: TractBackend.load(source)?,
            rows: Arc::clone(&self.rows),
            runs: Arc::clone(&self.runs),
            threads: Arc::clone(&self.threads),
            broken_sessions: self.broken_sessions,
            memo: self.memo.is_some_and(|name| source.path.ends_with(name)),
        }))
    }
}

impl LoadedModel for CountingModel {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn new_session(&self, device: Device) -> Result<Box<dyn Session>, BackendError> {
        if self.broken_sessions {
            return Err(BackendError::Inference("the device is gone".into()));
        }
        Ok(Box::new(CountingSession {
            inner: self.inner.new_session(device)?,
            rows: Arc::clone(&self.rows),
            runs: Arc::clone(&self.runs),
            threads: Arc::clone(&self.threads),
            memo: self.memo.then_some(None),
        }))
    }
}

impl Session for CountingSession {
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let thread = std::thread::current().name().unwrap_or_default().to_owned();
        self.threads.lock().unwrap().push(thread);
        if let TensorData::F32(v) = inputs[0].data() {
            assert!(v.first() != Some(&-1.0), "poisoned input: the engine crashes on it");
        }
        self.rows.fetch_add(inputs[0].rows(), Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        let Some(memo) = &mut self.memo else { return self.inner.run(inputs) };
        if let Some((seen, answer)) = memo.as_ref()
            && *seen == inputs
        {
            return Ok(answer.clone());
        }
        let answer = self.inner.run(inputs.clone())?;
        *memo = Some((inputs, answer.clone()));
        Ok(answer)
    }
    fn device(&self) -> Device {
        self.inner.device()
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

async fn load(
    path: &str,
    overrides: ModelOverrides,
    queue: usize,
) -> (Arc<Registry>, Arc<ModelVersion>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let backend = Counting::default();
    let (rows, runs) = (Arc::clone(&backend.rows), Arc::clone(&backend.runs));
    let config = EngineConfig { job_queue_size: queue, ..EngineConfig::default() };
    let registry = Arc::new(Registry::new(config, Arc::new(backend), oxserve_handlers::builtins()));
    let request = RegisterRequest {
        model_name: Some("m".into()),
        overrides,
        synchronous: true,
        ..Default::default()
    };
    let version = registry.register_path(fixture(path), request).await.unwrap();
    (registry, version, rows, runs)
}

fn rows_of(n: usize, value: f32, width: usize) -> Vec<Tensor> {
    vec![Tensor::new(vec![n, width], TensorData::F32(vec![value; n * width])).unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_form_one_batch() {
    let overrides =
        ModelOverrides { batch_size: Some(4), max_batch_delay: Some(5_000), ..Default::default() };
    let (registry, v, rows, runs) = load("examples/models/tiny.onnx", overrides, 100).await;
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let v = Arc::clone(&v);
            tokio::spawn(async move {
                v.infer(rows_of(1, i as f32, 64), &RequestOptions::default()).await
            })
        })
        .collect();
    for t in tasks {
        let out = t.await.unwrap().unwrap();
        assert_eq!(out.batch_size, 4);
        assert_eq!(out.output[0].shape(), &[1, 10]);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(rows.load(Ordering::SeqCst), 4);
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_one_never_waits_for_the_delay() {
    let overrides =
        ModelOverrides { batch_size: Some(1), max_batch_delay: Some(60_000), ..Default::default() };
    let (registry, v, _, _) = load("examples/models/tiny.onnx", overrides, 100).await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        v.infer(rows_of(1, 0.5, 64), &RequestOptions::default()),
    )
    .await
    .expect("a batch of one must not wait for max_batch_delay")
    .unwrap();
    assert_eq!(out.batch_size, 1);
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_while_requests_wait_loses_nothing() {
    let overrides =
        ModelOverrides { min_workers: Some(1), batch_size: Some(1), ..Default::default() };
    let (registry, v, rows, _) = load("tests/fixtures/models/slow.onnx", overrides, 64).await;
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(
                async move { v.infer(rows_of(1, 1.0, 1), &RequestOptions::default()).await },
            )
        })
        .collect();
    for n in [3, 1, 2, 0, 2] {
        tokio::time::sleep(Duration::from_millis(40)).await;
        v.scale(n, n);
    }
    for t in tasks {
        let out = t.await.unwrap().unwrap();
        assert_eq!(out.output[0].shape(), &[1, 1]);
    }
    assert_eq!(rows.load(Ordering::SeqCst), 24);
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_never_reach_the_engine() {
    let overrides = ModelOverrides { batch_size: Some(1), ..Default::default() };
    let (registry, v, rows, _) = load("tests/fixtures/models/slow.onnx", overrides, 64).await;
    // Occupy the only worker for a while.
    let busy = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.infer(rows_of(8, 1.0, 1), &RequestOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A client that goes away while queued…
    let gone = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.infer(rows_of(3, 1.0, 1), &RequestOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    gone.abort();
    // …and one whose own deadline is shorter than the queue wait.
    let hurried = v
        .infer(
            rows_of(5, 1.0, 1),
            &RequestOptions { timeout: Some(Duration::from_millis(10)), request_id: None },
        )
        .await;
    assert!(matches!(hurried, Err(EngineError::Timeout(_))), "{hurried:?}");
    busy.await.unwrap().unwrap();
    let last = v.infer(rows_of(1, 1.0, 1), &RequestOptions::default()).await.unwrap();
    assert_eq!(last.output[0].shape(), &[1, 1]);
    assert_eq!(rows.load(Ordering::SeqCst), 8 + 1, "only the busy and the last request ran");
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_inputs_are_refused_before_queueing() {
    let (registry, v, rows, _) =
        load("examples/models/tiny.onnx", ModelOverrides::default(), 100).await;
    let wrong_width = v.infer(rows_of(1, 0.0, 63), &RequestOptions::default()).await;
    assert!(matches!(wrong_width, Err(EngineError::InvalidInput(_))));
    let wrong_type = v
        .infer(
            vec![Tensor::new(vec![1, 64], TensorData::I64(vec![0; 64])).unwrap()],
            &RequestOptions::default(),
        )
        .await;
    assert!(matches!(wrong_type, Err(EngineError::InvalidInput(_))));
    assert!(matches!(
        v.infer(vec![], &RequestOptions::default()).await,
        Err(EngineError::InvalidInput(_))
    ));
    assert_eq!(rows.load(Ordering::SeqCst), 0);
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_cannot_load_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"this is not a protobuf").unwrap();
    let registry = Arc::new(Registry::new(
        EngineConfig::default(),
        Arc::new(TractBackend),
        oxserve_handlers::builtins(),
    ));
    let err = registry.register_path(bad, RegisterRequest::default()).await.unwrap_err();
    assert!(matches!(&err, EngineError::Load(m) if m.contains("bad.onnx")), "{err:?}");
    assert!(registry.list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_batch_fails_only_that_batch() {
    let overrides = ModelOverrides { batch_size: Some(1), ..Default::default() };
    let (registry, v, _, _) = load("tests/fixtures/models/slow.onnx", overrides, 64).await;
    let opts = RequestOptions::default();
    // A long request holds the worker while a poisoned one and ten good ones queue behind it.
    let busy = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.infer(rows_of(4, 1.0, 1), &RequestOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let poisoned = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.infer(rows_of(1, -1.0, 1), &RequestOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let good: Vec<_> = (0..10)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(
                async move { v.infer(rows_of(1, 1.0, 1), &RequestOptions::default()).await },
            )
        })
        .collect();
    busy.await.unwrap().unwrap();
    let err = poisoned.await.unwrap().unwrap_err();
    assert!(matches!(err, EngineError::Internal(_)), "{err:?}");
    for g in good {
        g.await.unwrap().unwrap();
    }
    // The worker came back with a fresh session and keeps serving.
    assert_eq!(v.infer(rows_of(1, 1.0, 1), &opts).await.unwrap().output[0].shape(), &[1, 1]);
    assert!(v.is_ready());
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_workers_cannot_start_answers_unavailable_at_once() {
    let backend = Counting { broken_sessions: true, ..Counting::default() };
    let config = EngineConfig::default();
    let registry = Arc::new(Registry::new(config, Arc::new(backend), oxserve_handlers::builtins()));
    let request =
        RegisterRequest { model_name: Some("m".into()), synchronous: false, ..Default::default() };
    let v = registry.register_path(fixture("examples/models/tiny.onnx"), request).await.unwrap();
    // Wait for the first failed attempt.
    for _ in 0..200 {
        if v.failed_workers() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let err = v.infer(rows_of(1, 0.5, 64), &RequestOptions::default()).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Unavailable(m) if m.contains("the device is gone")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after the response timeout"
    );
    let reason = v.not_ready_reason().unwrap();
    assert!(reason.contains("the device is gone"), "{reason}");
    assert!(!registry.is_healthy());
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_scaled_to_zero_refuses_new_requests() {
    let (registry, v, _, _) =
        load("examples/models/tiny.onnx", ModelOverrides::default(), 100).await;
    v.scale(0, 0);
    let err = v.infer(rows_of(1, 0.5, 64), &RequestOptions::default()).await.unwrap_err();
    assert!(matches!(&err, EngineError::Unavailable(m) if m.contains("no workers")), "{err:?}");
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tract_refuses_a_gpu_model_with_a_clear_error() {
    use oxserve_core::config::DeviceType;
    let registry = Arc::new(Registry::new(
        EngineConfig::default(),
        Arc::new(TractBackend),
        oxserve_handlers::builtins(),
    ));
    // Even with the default CPU fallback: asking tract for a GPU is a mistake, not a missing GPU.
    for ids in [None, Some(vec![1])] {
        let request = RegisterRequest {
            model_name: Some("m".into()),
            overrides: ModelOverrides {
                device_type: Some(DeviceType::Gpu),
                device_ids: ids.clone(),
                ..Default::default()
            },
            synchronous: true,
            ..Default::default()
        };
        let err = registry
            .register_path(fixture("examples/models/tiny.onnx"), request)
            .await
            .expect_err("tract has no GPU");
        let text = err.to_string();
        let asked = format!("gpu:{}", ids.map_or(0, |v| v[0]));
        assert!(text.contains("CPU only") && text.contains(&asked), "{text}");
        assert!(text.contains("engine: onnxruntime"), "{text}");
    }
    // deviceIds beyond a known number_of_gpu are refused before the engine is asked.
    let config = EngineConfig { number_of_gpu: 2, ..EngineConfig::default() };
    let registry =
        Arc::new(Registry::new(config, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let request = RegisterRequest {
        model_name: Some("m".into()),
        overrides: ModelOverrides {
            device_type: Some(DeviceType::Gpu),
            device_ids: Some(vec![0, 3]),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = registry.register_path(fixture("examples/models/tiny.onnx"), request).await;
    let text = err.expect_err("GPU 3 of 2").to_string();
    assert!(text.contains("GPU 3") && text.contains("number_of_gpu is 2"), "{text}");
    // A CPU model's workers say where they run.
    let request =
        RegisterRequest { model_name: Some("c".into()), synchronous: true, ..Default::default() };
    let v = registry.register_path(fixture("examples/models/tiny.onnx"), request).await.unwrap();
    let workers = v.status().workers;
    assert_eq!(workers.len(), 1);
    assert_eq!(
        (workers[0].device.to_string().as_str(), workers[0].device.is_gpu()),
        ("cpu", false)
    );
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_holds_its_place_until_it_is_used_or_dropped() {
    let overrides = ModelOverrides { max_concurrent_requests: Some(1), ..Default::default() };
    let (registry, v, _, _) = load("examples/models/tiny.onnx", overrides, 100).await;
    let held = v.admit(RequestOptions::default()).unwrap();
    let refused = v.admit(RequestOptions::default()).unwrap_err();
    assert!(matches!(refused, EngineError::TooManyRequests { limit: 1, .. }), "{refused}");
    drop(held);
    let mut ticket = v.admit(RequestOptions::default()).unwrap();
    // A deadline only stated in the body can shorten the request's, never lengthen it.
    ticket.shorten_timeout(Duration::from_secs(3600));
    ticket.shorten_timeout(Duration::from_secs(5));
    let out = ticket.infer(rows_of(1, 0.5, 64)).await.unwrap();
    assert_eq!(out.output[0].shape(), &[1, 10]);
    // Used up: the place is free again.
    assert!(v.admit(RequestOptions::default()).is_ok());
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

/// Where each of `n` requests, sent one after another, ran: `true` on a worker thread.
async fn on_workers(
    v: &Arc<ModelVersion>,
    threads: &Mutex<Vec<String>>,
    n: usize,
    width: usize,
) -> Vec<bool> {
    for _ in 0..n {
        v.infer(rows_of(1, 1.0, width), &RequestOptions::default()).await.unwrap();
    }
    let threads = std::mem::take(&mut *threads.lock().unwrap());
    threads.iter().map(|t| t.starts_with("W-")).collect()
}

/// Sends requests one after another until three in a row ran inline (on the calling thread);
/// returns where each ran. The choice rests on measured times, which a loaded test machine
/// inflates now and then, hence the generous bound.
async fn until_inline(v: &Arc<ModelVersion>, threads: &Mutex<Vec<String>>) -> Vec<bool> {
    let mut ran = Vec::new();
    while ran.len() < 2000 && !ran.ends_with(&[false, false, false]) {
        ran.extend(on_workers(v, threads, 1, 64).await);
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microsecond_model_runs_alone_requests_inline_a_slow_one_never() {
    // Memoised: tiny.onnx takes 5 µs optimised but 60 µs in a debug build, which sits either side
    // of the line; an answer from memory is a microsecond model on any machine.
    let backend = Counting { memo: Some("tiny.onnx"), ..Counting::default() };
    let threads = Arc::clone(&backend.threads);
    let registry = Arc::new(Registry::new(
        EngineConfig::default(),
        Arc::new(backend),
        oxserve_handlers::builtins(),
    ));
    let register = |path: &str, name: &str| {
        let request = RegisterRequest {
            model_name: Some(name.into()),
            overrides: ModelOverrides { batch_size: Some(1), ..Default::default() },
            synchronous: true,
            ..Default::default()
        };
        registry.register_path(fixture(path), request)
    };
    let tiny = register("examples/models/tiny.onnx", "tiny").await.unwrap();
    // The first run is measured on the worker; once known to take microseconds, requests that
    // find the queue empty run on the calling thread.
    let ran = until_inline(&tiny, &threads).await;
    assert!(ran[0], "an unmeasured model runs on its worker");
    assert!(ran.ends_with(&[false, false, false]), "{} requests, none inline", ran.len());

    // A panic in an inline run costs that request only: the worker makes the session afresh.
    let poisoned = vec![Tensor::new(vec![1, 64], TensorData::F32(vec![-1.0; 64])).unwrap()];
    let err = tiny.infer(poisoned, &RequestOptions::default()).await.unwrap_err();
    assert!(matches!(err, EngineError::Internal(_)), "{err:?}");
    threads.lock().unwrap().clear();
    let ran = until_inline(&tiny, &threads).await;
    assert!(ran[0], "the next request goes to the worker, which repairs the session");
    assert!(ran.ends_with(&[false, false, false]), "{} requests, none inline", ran.len());
    assert!(tiny.is_ready());

    // A model measured in milliseconds always runs on its workers.
    let slow = register("tests/fixtures/models/slow.onnx", "slow").await.unwrap();
    let ran = on_workers(&slow, &threads, 3, 1).await;
    assert_eq!(ran, [true, true, true]);
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}
