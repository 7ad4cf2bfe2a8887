//! The HTTP router driven without a socket (`tower::ServiceExt::oneshot`): the many status and
//! body-shape cases of the TorchServe and OIP APIs, against a real registry serving the example
//! `tiny` model on tract. Tests where the socket is the point (limits, TLS, drain, gRPC) bind real
//! ports in `tests/it`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::EngineConfig;
use oxserve_core::{RegisterRequest, Registry};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Api, AppState, ServerConfig, router};

async fn state(enable_model_api: bool) -> AppState {
    let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/model-store");
    let engine = EngineConfig { model_store: store, ..EngineConfig::default() };
    let registry =
        Arc::new(Registry::new(engine, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let request =
        RegisterRequest { url: "tiny".into(), synchronous: true, ..RegisterRequest::default() };
    registry.register(request).await.unwrap();
    let config = ServerConfig { enable_model_api, auth: None, ..ServerConfig::on_free_ports() };
    AppState { registry, config: Arc::new(config), keys: None, draining: Arc::default() }
}

/// One request through the inference and management routes; the status and the JSON body.
async fn call(
    state: &AppState,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let app = router(&[Api::Inference, Api::Management], state.clone());
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
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
    let (status, _) = call(&s, Method::GET, "/models?limit=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
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
