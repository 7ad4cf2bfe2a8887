//! TorchServe's management API over HTTP: query strings in, [`services::management`] answers out
//! as JSON with their status codes.

use std::str::FromStr;

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

/// A number as TorchServe's query parsing reads it: empty, negative or unparsable values count as
/// not given (its `getIntParameter` falls back to the default), and its clients rely on that.
fn number<T: FromStr>(value: Option<&str>) -> Option<T> {
    value.and_then(|v| v.trim().parse().ok())
}

/// A flag as TorchServe reads it (`Boolean.parseBoolean`): `true` in any case is true, any other
/// given value false, absent the default.
fn flag(value: Option<&str>, default: bool) -> bool {
    value.map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

/// Query parameters of `POST /models`, as given. Unknown parameters are ignored, as TorchServe
/// does.
#[derive(Debug, Deserialize)]
pub(crate) struct RegisterParams {
    url: Option<String>,
    model_name: Option<String>,
    handler: Option<String>,
    runtime: Option<String>,
    batch_size: Option<String>,
    max_batch_delay: Option<String>,
    initial_workers: Option<String>,
    synchronous: Option<String>,
    response_timeout: Option<String>,
    startup_timeout: Option<String>,
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
            handler: p.handler.filter(|h| !h.trim().is_empty()),
            runtime: p.runtime.filter(|r| !r.trim().is_empty()),
            batch_size: number(p.batch_size.as_deref()),
            max_batch_delay: number(p.max_batch_delay.as_deref()),
            response_timeout: number(p.response_timeout.as_deref()),
            // 0, which TorchServe would time out at once, stays 0: the settings refuse it.
            startup_timeout: number(p.startup_timeout.as_deref()),
            initial_workers: number(p.initial_workers.as_deref()),
            // TorchServe's code (not its docs) defaults to a synchronous register.
            synchronous: flag(p.synchronous.as_deref(), true),
            sha256: p.sha256,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    limit: Option<String>,
    next_page_token: Option<String>,
}

/// `GET /models?limit=&next_page_token=`: as TorchServe, a limit outside 1–100 is 100 and a
/// token that is not a position is the start.
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Answer, ApiError> {
    let p = query(params)?;
    let limit = number(p.limit.as_deref()).filter(|l| (1..=100).contains(l)).unwrap_or(100);
    let start = number(p.next_page_token.as_deref()).unwrap_or(0);
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
    min_worker: Option<String>,
    max_worker: Option<String>,
    synchronous: Option<String>,
}

/// A worker count: unparsable is not given, as TorchServe reads it, but a negative count (which
/// TorchServe fails on) is a clear 400.
fn workers(name: &str, value: Option<&str>) -> Result<Option<usize>, ApiError> {
    match number::<i64>(value) {
        Some(n) if n < 0 => {
            Err(ApiError::bad_request(format!("{name} cannot be negative, got {n}")))
        }
        n => Ok(n.and_then(|n| usize::try_from(n).ok())),
    }
}

/// `PUT /models/{m}[/{v}]?min_worker=&max_worker=&synchronous=`
pub(crate) async fn scale(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    params: Result<Query<ScaleParams>, QueryRejection>,
) -> Result<Answer, ApiError> {
    let p = query(params)?;
    service::scale(
        &state,
        &path.model,
        path.version.as_deref(),
        workers("min_worker", p.min_worker.as_deref())?,
        workers("max_worker", p.max_worker.as_deref())?,
        flag(p.synchronous.as_deref(), false),
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
