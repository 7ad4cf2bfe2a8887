//! TorchServe's management API over HTTP: query strings in, [`services::management`] answers out
//! as JSON with their status codes.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::services::management::{self as service, Answer};
use crate::{AppState, ModelPath};

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {}", e.body_text())))
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Self::Status(code, message) => (code, Json(json!({"status": message}))).into_response(),
            Self::Document(value) => Json(value).into_response(),
        }
    }
}

/// Query parameters of `POST /models`. Unknown parameters are ignored, as TorchServe does.
#[derive(Debug, Deserialize)]
pub(crate) struct RegisterParams {
    url: Option<String>,
    model_name: Option<String>,
    batch_size: Option<usize>,
    max_batch_delay: Option<u64>,
    initial_workers: Option<usize>,
    synchronous: Option<bool>,
    response_timeout: Option<u64>,
    sha256: Option<String>,
}

/// `POST /models?url=…`
pub(crate) async fn register(
    State(state): State<AppState>,
    params: Result<Query<RegisterParams>, QueryRejection>,
) -> Result<Answer, ApiError> {
    let p = query(params)?;
    service::register(
        &state,
        service::Register {
            url: p.url,
            model_name: p.model_name,
            batch_size: p.batch_size,
            max_batch_delay: p.max_batch_delay,
            response_timeout: p.response_timeout,
            initial_workers: p.initial_workers,
            // TorchServe's code (not its docs) defaults to a synchronous register.
            synchronous: p.synchronous.unwrap_or(true),
            sha256: p.sha256,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    limit: Option<usize>,
    next_page_token: Option<String>,
}

/// `GET /models?limit=&next_page_token=`
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Answer, ApiError> {
    let p = query(params)?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 {
        return Err(ApiError::bad_request("limit must be at least 1"));
    }
    let start = match p.next_page_token.as_deref() {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid next_page_token `{t}`")))?,
    };
    Ok(service::list(&state.registry, start, limit))
}

/// `GET /models/{m}[/{v}][?customized=true]`
pub(crate) async fn describe(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    Query(params): Query<DescribeParams>,
) -> Result<Answer, ApiError> {
    let customized = params.customized.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("true"));
    service::describe(&state, &path.model, path.version.as_deref(), customized).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct DescribeParams {
    customized: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScaleParams {
    min_worker: Option<usize>,
    max_worker: Option<usize>,
    synchronous: Option<bool>,
}

/// `PUT /models/{m}[/{v}]?min_worker=&max_worker=&synchronous=`
pub(crate) async fn scale(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    params: Result<Query<ScaleParams>, QueryRejection>,
) -> Result<Answer, ApiError> {
    let p = query(params)?;
    let synchronous = p.synchronous.unwrap_or(false);
    service::scale(
        &state,
        &path.model,
        path.version.as_deref(),
        p.min_worker,
        p.max_worker,
        synchronous,
    )
    .await
}

/// `DELETE /models/{m}[/{v}]`
pub(crate) async fn unregister(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Answer, ApiError> {
    service::unregister(&state, &path.model, path.version.as_deref()).await
}

/// `PUT /models/{m}/{v}/set-default`
pub(crate) async fn set_default(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Answer, ApiError> {
    service::set_default(&state, &model, &version)
}
