//! The HTTP router driven without a socket (`tower::ServiceExt::oneshot`): the many status and
//! body-shape cases of the TorchServe and OIP APIs, against a real registry serving the example
//! `tiny` model on tract. Tests where the socket is the point (limits, TLS, drain, gRPC) bind real
//! ports in `tests/it`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::EngineConfig;
use oxserve_core::{RegisterRequest, Registry};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Api, AppState, ServerConfig, router};

fn example_store() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/model-store")
}

async fn state(enable_model_api: bool) -> AppState {
    let engine = EngineConfig { model_store: example_store(), ..EngineConfig::default() };
    state_with(enable_model_api, engine).await
}

/// A registry over `engine`'s store with the example `tiny` model registered (one worker).
async fn state_with(enable_model_api: bool, engine: EngineConfig) -> AppState {
    let registry =
        Arc::new(Registry::new(engine, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let request = RegisterRequest {
        url: "tiny".into(),
        initial_workers: Some(1),
        synchronous: true,
        ..RegisterRequest::default()
    };
    registry.register(request).await.unwrap();
    let config = ServerConfig { enable_model_api, auth: None, ..ServerConfig::on_free_ports() };
    AppState {
        registry,
        config: Arc::new(config),
        keys: None,
        draining: Arc::default(),
        pii: Arc::default(),
        jobs: None,
    }
}

/// One request through the inference and management routes; the status and the JSON body.
async fn call(
    state: &AppState,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    send(state, &[Api::Inference, Api::Management], request).await
}

/// `request` through a router serving `apis`; the status and the JSON body (null if not JSON).
async fn send(state: &AppState, apis: &[Api], request: Request<Body>) -> (StatusCode, Value) {
    let response = router(apis, state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn row() -> Value {
    json!(vec![0.5_f32; 64])
}

#[tokio::test]
async fn torchserve_and_oip_answer_with_their_own_status_and_shape() {
    let s = state(false).await;
    let (status, body) = call(&s, Method::GET, "/ping", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "Healthy"})));

    let (status, body) = call(&s, Method::POST, "/predictions/tiny", Some(row())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(10), "{body}");

    // TorchServe's error shape on its paths, OIP's on OIP paths, for the same missing model.
    let (status, body) = call(&s, Method::POST, "/predictions/nope", Some(row())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        (body["code"].clone(), body["type"].clone()),
        (json!(404), json!("ModelNotFoundException"))
    );
    let (status, body) = call(&s, Method::GET, "/v2/models/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    // A row of the wrong width is the client's mistake on both protocols.
    let (status, _) = call(&s, Method::POST, "/predictions/tiny", Some(json!([1.0, 2.0]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let infer = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    let (status, body) = call(&s, Method::POST, "/v2/models/tiny/infer", Some(infer)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string(), "{body}");

    let (status, body) = call(&s, Method::GET, "/v2/models/tiny/ready", None).await;
    assert_eq!((status, body["ready"].clone()), (StatusCode::OK, json!(true)));
    let (status, body) = call(&s, Method::GET, "/no/such/path", None).await;
    assert_eq!(
        (status, body["type"].clone()),
        (StatusCode::NOT_FOUND, json!("ResourceNotFoundException"))
    );
    let (status, _) = call(&s, Method::DELETE, "/ping", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn management_rules_hold_whatever_the_transport_s_spelling() {
    let s = state(false).await;
    let (status, body) = call(&s, Method::GET, "/models/tiny", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["modelName"], "tiny");
    assert_eq!(body[0]["workers"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = call(&s, Method::GET, "/models", None).await;
    assert_eq!((status, body["models"][0]["modelName"].clone()), (StatusCode::OK, json!("tiny")));
    let (status, body) =
        call(&s, Method::PUT, "/models/tiny?min_worker=2&max_worker=1", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Register and unregister need the model API switched on.
    let (status, body) = call(&s, Method::DELETE, "/models/tiny", None).await;
    assert_eq!(
        (status, body["type"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!("MethodNotAllowedException"))
    );
    let (status, _) = call(&s, Method::POST, "/models?url=digits", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_trailing_slash_routes_as_without_and_unknown_oip_paths_answer_in_oip_shape() {
    let s = state(false).await;
    // TorchServe's collections call `/models/tiny/` and `/predictions/tiny/`.
    let (status, body) = call(&s, Method::GET, "/models/tiny/", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["modelName"], "tiny");
    let (status, _) = call(&s, Method::POST, "/predictions/tiny/", Some(row())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&s, Method::GET, "/ping/?x=1", None).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("Healthy")));
    // tritonclient decodes `{"error": ...}` for anything under /v2.
    let (status, body) = call(&s, Method::GET, "/v2/no/such/path", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
    let (_, body) = call(&s, Method::GET, "/no/such/path", None).await;
    assert_eq!(body["code"], 404);
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn register_without_url_is_a_bad_request_and_with_an_empty_one_not_found() {
    let s = state(true).await;
    let (status, body) = call(&s, Method::POST, "/models", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&s, Method::POST, "/models?url=", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "ModelNotFoundException");
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn query_values_torchserve_reads_as_not_given_take_the_defaults() {
    let s = state(true).await;
    // TorchServe's collections send empty, negative and unparsable values and expect defaults.
    for uri in [
        "/models?limit=",
        "/models?limit=-1",
        "/models?limit=0&next_page_token=-1",
        "/models?limit=500&next_page_token=x",
    ] {
        let (status, body) = call(&s, Method::GET, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["models"][0]["modelName"], "tiny", "{uri}: {body}");
    }
    let junk = "/models?url=digits&batch_size=dd&max_batch_delay=junk&response_timeout=&initial_workers=-1";
    let (status, body) = call(&s, Method::POST, &format!("{junk}&synchronous=true"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, described) = call(&s, Method::GET, "/models/digits", None).await;
    // The archive's model-config.yaml (batch 8, 10 ms, one worker) stands: nothing was given.
    assert_eq!(described[0]["batchSize"], 8, "{described}");
    assert_eq!(described[0]["maxBatchDelay"], 10, "{described}");
    assert_eq!(described[0]["minWorkers"], 1, "{described}");
    let (status, _) = call(&s, Method::DELETE, "/models/digits", None).await;
    assert_eq!(status, StatusCode::OK);
    // `synchronous` is Java's parseBoolean: anything but `true` is false.
    let (status, body) = call(&s, Method::POST, "/models?url=digits&synchronous=-1", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Scale: an unparsable count is not given (min 1); a negative one is refused.
    let (status, body) = call(&s, Method::PUT, "/models/tiny?min_worker=nan", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = call(&s, Method::PUT, "/models/tiny?min_worker=-1", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("min_worker"), "{body}");
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn register_honours_handler_runtime_and_startup_timeout_and_refuses_wrong_ones() {
    let s = state(true).await;
    let (status, body) =
        call(&s, Method::POST, "/models?url=digits&handler=invalidHandler", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("invalidHandler"), "{body}");
    let (status, body) = call(&s, Method::POST, "/models?url=digits&runtime=python4", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("python4"), "{body}");
    let (status, body) = call(&s, Method::POST, "/models?url=digits&startup_timeout=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("startupTimeout"), "{body}");
    assert_eq!(call(&s, Method::GET, "/models/digits", None).await.0, StatusCode::NOT_FOUND);
    // A handler that exists replaces the archive's, and describe says so.
    let uri = "/models?url=digits&handler=base_handler&runtime=native&startup_timeout=30";
    let (status, body) = call(&s, Method::POST, uri, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, described) = call(&s, Method::GET, "/models/digits", None).await;
    assert_eq!(described[0]["handler"], "base_handler", "{described}");
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_register_call_without_initial_workers_starts_none_unless_configured() {
    // A bare ONNX file: no model-config.yaml to say minWorkers.
    let store = tempfile::tempdir().unwrap();
    for file in ["tiny.onnx", "model-config.yaml", "MAR-INF/MANIFEST.json"] {
        let to = store.path().join("tiny").join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(example_store().join("tiny").join(file), to).unwrap();
    }
    std::fs::copy(example_store().join("tiny/tiny.onnx"), store.path().join("bare.onnx")).unwrap();
    let engine = EngineConfig {
        model_store: store.path().to_path_buf(),
        default_workers_per_model: 0,
        ..EngineConfig::default()
    };
    let s = state_with(true, engine).await;
    // Nothing to wait for: 200, whatever `synchronous` says, as TorchServe.
    let (status, body) =
        call(&s, Method::POST, "/models?url=bare.onnx&model_name=bare&synchronous=false", None)
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["status"].as_str().unwrap().contains("0 initial workers"), "{body}");
    let (_, described) = call(&s, Method::GET, "/models/bare", None).await;
    assert_eq!(described[0]["minWorkers"], 0, "{described}");
    let (status, _) = call(&s, Method::POST, "/predictions/bare", Some(row())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = call(&s, Method::PUT, "/models/bare?synchronous=true", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call(&s, Method::POST, "/predictions/bare", Some(row())).await;
    assert_eq!(status, StatusCode::OK);
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn kserve_v1_predicts_each_instance_and_answers_errors_as_its_sdk_reads_them() {
    let s = state(false).await;
    let (status, body) = call(&s, Method::GET, "/", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "alive"})));
    let (status, body) = call(&s, Method::GET, "/v1/models", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"models": ["tiny"]})));
    let (status, body) = call(&s, Method::GET, "/v1/models/tiny", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"name": "tiny", "ready": true})));

    // Each instance is one request to the handler; the answers come back in order.
    let a = vec![0.5_f32; 64];
    let b: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
    let (status, body) =
        call(&s, Method::POST, "/v1/models/tiny:predict", Some(json!({"instances": [a, b]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, one_a) = call(&s, Method::POST, "/predictions/tiny", Some(json!(a))).await;
    let (_, one_b) = call(&s, Method::POST, "/predictions/tiny", Some(json!(b))).await;
    // Batched together, so equal to rounding (the engine sums in another order for two rows).
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2, "{body}");
    for (got, alone) in predictions.iter().zip([one_a, one_b]) {
        let (got, alone) = (got.as_array().unwrap(), alone.as_array().unwrap());
        assert_eq!(got.len(), alone.len());
        for (g, w) in got.iter().zip(alone) {
            assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-5, "{g} vs {w}");
        }
    }
    let (status, body) =
        call(&s, Method::POST, "/v1/models/tiny:predict", Some(json!({"instances": []}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"predictions": []})));

    // Errors: `{"error": ...}` with KServe's status codes.
    for (uri, request, want) in [
        ("/v1/models/nope:predict", json!({"instances": [a]}), StatusCode::NOT_FOUND),
        ("/v1/models/tiny:predict", json!({"inputs": [a]}), StatusCode::BAD_REQUEST),
        ("/v1/models/tiny:predict", json!({"instances": [[1.0]]}), StatusCode::BAD_REQUEST),
        ("/v1/models/tiny:explain", json!({"instances": [a]}), StatusCode::NOT_IMPLEMENTED),
        ("/v1/models/tiny:train", json!({"instances": [a]}), StatusCode::NOT_FOUND),
        ("/v2/models/tiny/explain", json!({"inputs": []}), StatusCode::NOT_IMPLEMENTED),
        ("/v2/models/nope/explain", json!({"inputs": []}), StatusCode::NOT_FOUND),
    ] {
        let (status, body) = call(&s, Method::POST, uri, Some(request)).await;
        assert_eq!(status, want, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
    let (status, body) = call(&s, Method::GET, "/v1/models/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = call(&s, Method::GET, "/v1/no/such/path", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
    // Not ready: 503, which the SDK's is_model_ready reads as false; the management port answers
    // 200 with `ready` as TorchServe's.
    let (status, body) = call(&s, Method::GET, "/v1/models/tiny", None).await;
    assert_eq!((status, body["ready"].clone()), (StatusCode::OK, json!(true)));
    s.registry.get("tiny", None).unwrap().scale(0, 0);
    let request = Request::builder().uri("/v1/models/tiny").body(Body::empty()).unwrap();
    let (status, body) = send(&s, &[Api::Management], request).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"name": "tiny", "ready": false})));
    let (status, body) = call(&s, Method::GET, "/v1/models/tiny", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].is_string(), "{body}");
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

/// Triton's raw binary request: no JSON header, the body is the only input's bytes. Returns the
/// status, the answer's JSON part and its raw part (the answer of a raw request is raw too).
async fn raw_infer(state: &AppState, raw: Vec<u8>) -> (StatusCode, Value, Vec<u8>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v2/models/tiny/infer")
        .header("inference-header-content-length", "0")
        .header("content-type", "application/octet-stream")
        .body(Body::from(raw))
        .unwrap();
    let response = router(&[Api::Inference], state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let length = response
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let (json, raw) = bytes.split_at(length.unwrap_or(bytes.len()));
    (status, serde_json::from_slice(json).unwrap_or(Value::Null), raw.to_vec())
}

#[tokio::test]
async fn a_raw_binary_request_takes_datatype_and_shape_from_the_model() {
    let s = state(false).await;
    let rows = |n: usize| -> Vec<u8> { (0..64 * n).flat_map(|_| 0.5_f32.to_le_bytes()).collect() };
    let (status, body, raw) = raw_infer(&s, rows(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([1, 10]), "{body}");
    // Answered in raw bytes, as Triton answers a raw request.
    assert_eq!(body["outputs"][0]["parameters"]["binary_data_size"], json!(40), "{body}");
    let infer = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.5_f32; 64]}]});
    let (_, with_header) = call(&s, Method::POST, "/v2/models/tiny/infer", Some(infer)).await;
    let floats: Vec<f32> =
        raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let json: Vec<f32> = serde_json::from_value(with_header["outputs"][0]["data"].clone()).unwrap();
    assert_eq!(floats, json);
    // The dynamic batch dimension follows the byte count.
    let (status, body, _) = raw_infer(&s, rows(3)).await;
    assert_eq!((status, body["outputs"][0]["shape"].clone()), (StatusCode::OK, json!([3, 10])));
    // Bytes that are not whole rows of whole FP32 elements.
    for raw in [vec![0u8; 3], vec![0u8; 4 * 65]] {
        let (status, body, _) = raw_infer(&s, raw).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    tokio::task::spawn_blocking(move || s.registry.shutdown()).await.unwrap();
}

/// Whether an answer is the router's own: no route for the path, or none for the method.
fn unrouted(status: StatusCode, body: &Value) -> Option<&'static str> {
    let text = body.to_string();
    if status == StatusCode::NOT_FOUND && text.contains("Requested resource is not found") {
        Some("no route")
    } else if status == StatusCode::METHOD_NOT_ALLOWED
        && text.contains("Requested method is not allowed")
    {
        Some("method not allowed")
    } else {
        None
    }
}

/// `OPTIONS /` and `/api-description` describe exactly what each listener routes: every
/// documented operation reaches a handler, and every other method on a documented path is the
/// router's 405.
#[tokio::test]
async fn each_listener_describes_exactly_what_it_routes() {
    // The model API on: with it off, register and unregister answer 405 in the same words as the
    // router's own 405 (TorchServe's), and could not be told apart.
    let state = state(true).await;
    let listeners = [
        vec![Api::Inference],
        vec![Api::Management],
        vec![Api::Metrics],
        vec![Api::Inference, Api::Management, Api::Metrics],
    ];
    for apis in listeners {
        let request = |method: Method, uri: &str| {
            Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()
        };
        let (status, doc) = send(&state, &apis, request(Method::OPTIONS, "/")).await;
        assert_eq!(status, StatusCode::OK, "{apis:?}");
        assert_eq!(doc["openapi"], "3.0.1");
        let (status, same) = send(&state, &apis, request(Method::GET, "/api-description")).await;
        assert_eq!((status, &same), (StatusCode::OK, &doc));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/metrics") == apis.contains(&Api::Metrics), "{apis:?}");
        assert!(paths.contains_key("/models") == apis.contains(&Api::Management), "{apis:?}");
        for (path, item) in paths {
            if path == "/api-description" {
                continue;
            }
            let uri = path.replace("{model}", "tiny").replace("{version}", "1.0");
            for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS]
            {
                let documented = item.get(method.as_str().to_lowercase()).is_some();
                let (status, body) = send(&state, &apis, request(method.clone(), &uri)).await;
                let router_said = unrouted(status, &body);
                if documented {
                    assert_eq!(router_said, None, "{method} {uri} is documented: {status} {body}");
                } else {
                    assert_eq!(router_said, Some("method not allowed"), "{method} {uri}: {status}");
                }
            }
        }
    }
}
