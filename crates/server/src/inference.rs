//! TorchServe's inference API: `/ping`, `/predictions/{model}[/{version}]` and
//! `/explanations/{model}[/{version}]` (for handlers that run in worker processes, which explain).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use oxserve_core::ModelVersion;
use serde_json::json;

use crate::body::{payload, read_limited};
use crate::error::ApiError;
use crate::hosted::Ask;
use crate::{AppState, ModelPath};

/// `GET /ping`: healthy only when every model has its minimum workers ready.
pub(crate) async fn ping(State(state): State<AppState>) -> Response {
    if crate::services::server_ready(&state) {
        (StatusCode::OK, Json(json!({"status": "Healthy"}))).into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"status": "Unhealthy"}))).into_response()
    }
}

/// `POST /predictions/{model}[/{version}]`
pub(crate) async fn predict(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let version = state.registry.get(&path.model, path.version.as_deref())?;
    run(state, version, Ask::Predict, &uri, headers, body).await
}

/// `POST /explanations/{model}[/{version}]`: the handler's `explain` path; only handlers that run
/// in worker processes have one.
pub(crate) async fn explain(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let version = state.registry.get(&path.model, path.version.as_deref())?;
    run(state, version, Ask::Explain, &uri, headers, body).await
}

/// KServe's and OIP's answer to an explanation asked of a built-in handler (501; TorchServe's
/// `/explanations` answers 400, in [`run`]).
pub(crate) fn no_explanations(version: &ModelVersion) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplementedException",
        format!("model {} runs a built-in handler, which has no explanations", version.name()),
    )
}

/// One request to `version`'s handler: a model the server runs answers with its handler's
/// prediction, one on worker processes with its handler's own answer (KServe v1 hands those here
/// too: their handler's envelope reads the body).
pub(crate) async fn run(
    state: AppState,
    version: Arc<ModelVersion>,
    ask: Ask,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if ask == Ask::Explain && !version.is_hosted() {
        return Err(ApiError::bad_request(format!(
            "model {} runs a built-in handler, which has no explanations",
            version.name()
        )));
    }
    let options = crate::observe::options(&headers);
    let id = options.request_id.clone().unwrap_or_default();
    // Admitted before the body is read: a refused request costs no read, and the bodies held at
    // once stay within what the model can queue.
    let ticket = version.admit(options)?;
    let bytes = read_limited(&headers, body, &state.config).await?;
    let payload = payload(&headers, bytes).await?;
    if version.is_hosted() {
        let request = crate::hosted::request(id, &headers, uri, payload, ask)?;
        return crate::hosted::answer(ticket, request).await;
    }
    let (prediction, timings) = ticket.predict(payload).await?;
    if prediction.body.len() > state.config.max_response_size {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            format!(
                "the response of {} bytes is larger than max_response_size ({} bytes)",
                prediction.body.len(),
                state.config.max_response_size
            ),
        ));
    }
    let mut response = prediction.body.into_response();
    if let Ok(v) = HeaderValue::from_str(&prediction.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response.headers_mut().insert("server-timing", crate::observe::server_timing(&timings));
    Ok(response)
}
