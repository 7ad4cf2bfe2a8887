//! TorchServe's management API: register, list, describe, scale, set-default, unregister.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oxserve_engine::config::ModelOverrides;
use oxserve_engine::{Description, RegisterRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::{AppState, ModelPath};

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {}", e.body_text())))
}

fn model_api_enabled(state: &AppState) -> Result<(), ApiError> {
    if state.config.enable_model_api {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowedException",
            "the model API is disabled: registering and unregistering models needs the server to start \
             with --enable-model-api (enable_model_api=true)",
        ))
    }
}

fn status(code: StatusCode, message: String) -> Response {
    (code, Json(json!({"status": message}))).into_response()
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
    /// Expected sha256 of a model fetched from a URL (an oxserve addition).
    sha256: Option<String>,
}

/// `POST /models?url=…`
pub(crate) async fn register(
    State(state): State<AppState>,
    params: Result<Query<RegisterParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    model_api_enabled(&state)?;
    let p = query(params)?;
    let url = p.url.ok_or_else(|| ApiError::bad_request("parameter url is required"))?;
    // TorchServe's code (not its docs) defaults to a synchronous register.
    let synchronous = p.synchronous.unwrap_or(true);
    let request = RegisterRequest {
        url,
        model_name: p.model_name,
        overrides: ModelOverrides {
            batch_size: p.batch_size,
            max_batch_delay: p.max_batch_delay,
            response_timeout: p.response_timeout,
            ..ModelOverrides::default()
        },
        initial_workers: p.initial_workers,
        synchronous,
        loaded_at_startup: false,
        sha256: p.sha256,
    };
    let version = state.registry.register(request).await?;
    let workers = version.settings().min_workers;
    if synchronous {
        Ok(status(
            StatusCode::OK,
            format!(
                "Model \"{}\" Version: {} registered with {workers} initial workers",
                version.name(),
                version.version()
            ),
        ))
    } else {
        Ok(status(StatusCode::ACCEPTED, "Processing worker updates...".into()))
    }
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
) -> Result<Response, ApiError> {
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
    Ok(Json(model_page(&state.registry, start, limit)).into_response())
}

/// One page of TorchServe's model list, `{"models": [...], "nextPageToken"}`, for HTTP and gRPC.
pub(crate) fn model_page(registry: &oxserve_engine::Registry, start: usize, limit: usize) -> Value {
    let all = registry.list();
    let page: Vec<_> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|v| json!({"modelName": v.name(), "modelUrl": v.url()}))
        .collect();
    let mut body = json!({"models": page});
    if start + limit < all.len() {
        body["nextPageToken"] = json!((start + limit).to_string());
    }
    body
}

/// `GET /models/{m}[/{v}]`: the default version, the given one, or every version with `all`.
pub(crate) async fn describe(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    let versions = match path.version.as_deref() {
        Some("all") => state.registry.versions(&path.model)?,
        version => vec![state.registry.get(&path.model, version)?],
    };
    Ok(Json(versions.iter().map(|v| v.describe()).collect::<Vec<Description>>()).into_response())
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
) -> Result<Response, ApiError> {
    scale_version(&state, &path.model, path.version.as_deref(), query(params)?).await
}

async fn scale_version(
    state: &AppState,
    model: &str,
    version: Option<&str>,
    p: ScaleParams,
) -> Result<Response, ApiError> {
    let v = state.registry.get(model, version)?;
    let min = p.min_worker.unwrap_or(1);
    let max = p.max_worker.unwrap_or(min);
    if max < min {
        return Err(ApiError::bad_request("max_worker cannot be less than min_worker"));
    }
    v.scale(min, max);
    if p.synchronous.unwrap_or(false) {
        if !v.wait_ready(min, std::time::Duration::from_secs(120)).await {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                format!("workers of model {model} did not become ready; see the server log"),
            ));
        }
        Ok(status(StatusCode::OK, format!("Workers scaled to {min} for model: {model}")))
    } else {
        Ok(status(StatusCode::ACCEPTED, "Processing worker updates...".into()))
    }
}

/// `DELETE /models/{m}[/{v}]`: the given version, or the default one.
pub(crate) async fn unregister(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    model_api_enabled(&state)?;
    let removed = state.registry.unregister(&path.model, path.version.as_deref()).await?;
    let message = match path.version {
        None => format!("Model \"{}\" unregistered", removed.name()),
        Some(_) => {
            format!("Model \"{}\" version {} unregistered", removed.name(), removed.version())
        }
    };
    Ok(status(StatusCode::OK, message))
}

/// `PUT /models/{m}/{v}/set-default`
pub(crate) async fn set_default(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.registry.set_default(&model, &version)?;
    Ok(status(
        StatusCode::OK,
        format!("Default version successfully updated for model \"{model}\" to \"{version}\""),
    ))
}
