//! TorchServe's management API (register, list, describe, scale, set-default, unregister) for both
//! transports: `crate::management` over HTTP and `crate::grpc::torchserve` over gRPC.

use std::time::Duration;

use axum::http::StatusCode;
use oxserve_core::config::ModelOverrides;
use oxserve_core::{EngineError, RegisterRequest, Registry};
use serde_json::{Value, json};

use crate::AppState;
use crate::describe::Description;
use crate::error::ApiError;

/// How long a synchronous scale call waits for its workers.
const SYNC_WAIT: Duration = Duration::from_secs(120);

/// A management call's answer: TorchServe's `{"status": message}` with its HTTP status, or a JSON
/// document (describe, list).
#[derive(Debug)]
pub(crate) enum Answer {
    Status(StatusCode, String),
    Document(Value),
}

/// A register call's arguments, whichever transport brought them.
#[derive(Debug, Default)]
pub(crate) struct Register {
    pub(crate) url: Option<String>,
    pub(crate) model_name: Option<String>,
    pub(crate) batch_size: Option<usize>,
    pub(crate) max_batch_delay: Option<u64>,
    pub(crate) response_timeout: Option<u64>,
    pub(crate) initial_workers: Option<usize>,
    /// Replaces the archive's handler.
    pub(crate) handler: Option<String>,
    /// `native` or a worker runtime (`python`; TorchServe's `python3` means the same).
    pub(crate) runtime: Option<String>,
    /// Seconds a worker process may take to start.
    pub(crate) startup_timeout: Option<u64>,
    pub(crate) synchronous: bool,
    /// Expected sha256 of a model fetched from a URL (an oxserve addition).
    pub(crate) sha256: Option<String>,
}

/// Refuses register and unregister (and Triton's load and unload) unless the server was started
/// with the model API on, saying how to turn it on.
pub(super) fn model_api_enabled(state: &AppState) -> Result<(), ApiError> {
    if state.config.enable_model_api {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException",
        "the model API is disabled: registering and unregistering models needs the server to start \
         with --enable-model-api (enable_model_api=true)",
    ))
}

/// [`model_api_enabled`] for TorchServe's management API, which answers with TorchServe's exact
/// body (its clients and tests compare all of it); the hint goes to the log instead.
fn torchserve_model_api_enabled(state: &AppState) -> Result<(), ApiError> {
    model_api_enabled(state).map_err(|e| {
        tracing::info!("{}", e.message);
        ApiError::method_not_allowed()
    })
}

pub(crate) async fn register(state: &AppState, args: Register) -> Result<Answer, ApiError> {
    torchserve_model_api_enabled(state)?;
    // As TorchServe: no `url` is a bad request; an empty one names no model in the store (404).
    let url = match args.url {
        None => return Err(ApiError::bad_request("parameter url is required")),
        Some(u) if u.trim().is_empty() => {
            return Err(EngineError::ModelNotFound(
                "no model in the store has an empty name".into(),
            )
            .into());
        }
        Some(u) => u,
    };
    let request = RegisterRequest {
        url,
        model_name: args.model_name.filter(|n| !n.is_empty()),
        overrides: ModelOverrides {
            batch_size: args.batch_size,
            max_batch_delay: args.max_batch_delay,
            response_timeout: args.response_timeout,
            startup_timeout: args.startup_timeout,
            handler: args.handler,
            runtime: args.runtime,
            ..ModelOverrides::default()
        },
        initial_workers: args.initial_workers,
        synchronous: args.synchronous,
        loaded_at_startup: false,
        sha256: args.sha256,
    };
    let version = state.registry.register(request).await?;
    let workers = version.settings().min_workers;
    // Nothing to wait for without workers: TorchServe answers 200 then, whatever `synchronous`.
    if !args.synchronous && workers > 0 {
        return Ok(processing());
    }
    let mut message = format!(
        "Model \"{}\" Version: {} registered with {workers} initial workers",
        version.name(),
        version.version(),
    );
    if workers == 0 {
        message.push_str(". Use scale workers API to add workers for the model.");
    }
    Ok(Answer::Status(StatusCode::OK, message))
}

/// One page of the model list, `{"models": [...], "nextPageToken"}`.
pub(crate) fn list(registry: &Registry, start: usize, limit: usize) -> Answer {
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
    Answer::Document(body)
}

/// The default version, the given one, or every version with `all`. With `customized`, a handler
/// on Python workers is asked for its own metadata (TorchServe's `describe_handle`), shown as
/// `customizedMetadata`; that needs a worker (503 without one).
pub(crate) async fn describe(
    state: &AppState,
    model: &str,
    version: Option<&str>,
    customized: bool,
) -> Result<Answer, ApiError> {
    let versions = match version {
        Some("all") => state.registry.versions(model)?,
        version => vec![state.registry.get(model, version)?],
    };
    let mut described = Vec::with_capacity(versions.len());
    for v in &versions {
        let mut description = Description::from(v.status());
        if customized && v.is_hosted() {
            description = description.with_customized(crate::hosted::describe(v).await?);
        }
        described.push(description);
    }
    let document = serde_json::to_value(described).map_err(ApiError::internal)?;
    Ok(Answer::Document(document))
}

/// Sets a version's worker range; `min` defaults to 1 and `max` to `min`, as TorchServe's.
pub(crate) async fn scale(
    state: &AppState,
    model: &str,
    version: Option<&str>,
    min: Option<usize>,
    max: Option<usize>,
    synchronous: bool,
) -> Result<Answer, ApiError> {
    let v = state.registry.get(model, version)?;
    let min = min.unwrap_or(1);
    let max = max.unwrap_or(min);
    if max < min {
        return Err(ApiError::bad_request("max_worker cannot be less than min_worker"));
    }
    v.scale(min, max);
    if !synchronous {
        return Ok(processing());
    }
    if !v.wait_ready(min, SYNC_WAIT).await {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            format!("workers of model {model} did not become ready; see the server log"),
        ));
    }
    Ok(Answer::Status(StatusCode::OK, format!("Workers scaled to {min} for model: {model}")))
}

pub(crate) fn set_default(
    state: &AppState,
    model: &str,
    version: &str,
) -> Result<Answer, ApiError> {
    state.registry.set_default(model, version)?;
    Ok(Answer::Status(
        StatusCode::OK,
        format!("Default version successfully updated for model \"{model}\" to \"{version}\""),
    ))
}

/// The given version, or the default one.
pub(crate) async fn unregister(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<Answer, ApiError> {
    torchserve_model_api_enabled(state)?;
    let removed = state.registry.unregister(model, version).await?;
    let message = match version {
        None => format!("Model \"{}\" unregistered", removed.name()),
        Some(_) => {
            format!("Model \"{}\" version {} unregistered", removed.name(), removed.version())
        }
    };
    Ok(Answer::Status(StatusCode::OK, message))
}

fn processing() -> Answer {
    Answer::Status(StatusCode::ACCEPTED, "Processing worker updates...".into())
}
