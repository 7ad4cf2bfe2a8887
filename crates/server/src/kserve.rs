//! KServe's v1 protocol on the inference port, as KServe users' clients call it (its Python SDK's
//! `InferenceRESTClient`, KServe's TorchServe runtime): `GET /` (liveness), `GET /v1/models`,
//! `GET /v1/models/{m}` (readiness), `POST /v1/models/{m}:predict` and `:explain`. Errors are
//! `{"error": ...}`, which the SDK reads.
//!
//! A model on worker processes gets the body as TorchServe's frontend passes it (its handler's
//! `kserve` envelope unwraps `instances` and wraps `predictions`). A model run by the server is
//! unwrapped here: each instance is one request to its handler (a JSON tensor, `{"data": base64}`
//! for an image), all run through the model's queue so that they batch, and the answers come back
//! in order as `predictions`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use oxserve_core::handler::{Part, Payload, Prediction};
use oxserve_core::{ModelVersion, RequestOptions};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::hosted::Ask;

/// `GET /`: KServe's liveness (`{"status": "alive"}`), which its SDK's `is_server_live` reads.
pub(crate) async fn live() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// `GET /v1/models`: the names of the models served.
pub(crate) async fn list(State(state): State<AppState>) -> Json<Value> {
    let names: Vec<String> = state.registry.list().iter().map(|v| v.name().to_owned()).collect();
    Json(json!({"models": names}))
}

/// `GET /v1/models/{m}`: 200 `{"name", "ready": true}` when the model can answer, 503 with the
/// reason when not (KServe's `ModelNotReady`), 404 when unknown.
pub(crate) async fn ready(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let v = lookup(&state, &model)?;
    match v.not_serving_reason() {
        None => Ok(Json(json!({"name": v.name(), "ready": true}))),
        Some(reason) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!("Model with name {} is not ready: {reason}", v.name()),
        )
        .v2()),
    }
}

/// `GET /v1/models/{m}` on the management port, as TorchServe answers it there: 200 with whether
/// the model can answer (KServe's TorchServe runtime asks there).
pub(crate) async fn management_ready(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let v = state.registry.get(&model, None)?;
    Ok(Json(json!({"name": v.name(), "ready": v.not_serving_reason().is_none()})))
}

/// `POST /v1/models/{m}:predict` and `:explain` (the verb is part of the path's last segment).
pub(crate) async fn call(
    State(state): State<AppState>,
    Path(target): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (model, ask) = match target.rsplit_once(':') {
        Some((model, "predict")) => (model, Ask::Predict),
        Some((model, "explain")) => (model, Ask::Explain),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!(
                    "no such KServe v1 call: /v1/models/{target}; the calls are \
                     /v1/models/{{name}}:predict and :explain"
                ),
            )
            .v2());
        }
    };
    let version = lookup(&state, model)?;
    let answer = if version.is_hosted() {
        crate::inference::run(state, version, ask, &uri, headers, body).await
    } else {
        instances(state, version, ask, headers, body).await
    };
    answer.map_err(ApiError::v2)
}

fn lookup(state: &AppState, model: &str) -> Result<Arc<ModelVersion>, ApiError> {
    state.registry.get(model, None).map_err(|e| ApiError::from(e).v2())
}

#[derive(Deserialize)]
struct Instances {
    instances: Vec<Value>,
}

/// A model the server runs: each instance through its handler, answered as `predictions`.
async fn instances(
    state: AppState,
    version: Arc<ModelVersion>,
    ask: Ask,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if ask == Ask::Explain {
        return Err(crate::inference::no_explanations(&version));
    }
    let options = crate::observe::options(&headers);
    let bytes = read_limited(&headers, body, &state.config).await?;
    let Instances { instances } = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "a KServe v1 request is a JSON object {{\"instances\": [...]}}: {e}"
        ))
    })?;
    // As many at once as the model's workers can batch; the rest wait their turn here, not in
    // its queue, so a long list is not refused as an overload.
    let settings = version.settings();
    let at_once = (settings.batch_size * settings.max_workers).max(1);
    let predictions: Vec<Value> = stream::iter(instances)
        .map(|instance| instance_prediction(&version, instance, &options))
        .buffered(at_once)
        .try_collect()
        .await?;
    Ok(Json(json!({"predictions": predictions})).into_response())
}

/// One instance through the model's handler, as if it were the body of its own JSON request.
async fn instance_prediction(
    version: &Arc<ModelVersion>,
    instance: Value,
    options: &RequestOptions,
) -> Result<Value, ApiError> {
    let body = serde_json::to_vec(&instance).map_err(ApiError::internal)?;
    let payload = Payload {
        parts: vec![Part {
            name: "body".to_owned(),
            content_type: Some("application/json".to_owned()),
            body: Bytes::from(body),
        }],
    };
    let (prediction, _) = version.admit(options.clone())?.predict(payload).await?;
    prediction_value(prediction)
}

/// A handler's answer as a JSON value: JSON as it is, text as a string.
fn prediction_value(prediction: Prediction) -> Result<Value, ApiError> {
    if let Ok(value) = serde_json::from_slice(&prediction.body) {
        return Ok(value);
    }
    match String::from_utf8(prediction.body.to_vec()) {
        Ok(text) => Ok(Value::String(text)),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            format!(
                "the handler answered {} bytes of {}, which a KServe v1 answer cannot carry; use \
                 /predictions for binary answers",
                prediction.body.len(),
                prediction.content_type
            ),
        )),
    }
}
