//! The Open Inference Protocol (KServe V2) over REST.

use std::collections::HashSet;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use oxserve_backend::{DType, Tensor, TensorSpec};
use oxserve_engine::ModelVersion;
use oxserve_engine::codec::{FlatJson, tensor_from_shaped};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::body::read_limited;
use crate::error::ApiError;
use crate::{AppState, ModelPath};

/// `GET /v2`
pub(crate) async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "oxserve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": []
    }))
}

/// `GET /v2/health/live`
pub(crate) async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// `GET /v2/health/ready`: 200 when every model has its minimum workers ready, else 503.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let ready =
        !state.draining.load(std::sync::atomic::Ordering::Acquire) && state.registry.is_healthy();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": ready}))).into_response()
}

fn lookup(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<std::sync::Arc<ModelVersion>, ApiError> {
    state.registry.get(model, version).map_err(|e| ApiError::from(e).v2())
}

#[derive(Serialize)]
struct TensorMetadata<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: Vec<i64>,
}

fn tensor_metadata(spec: &TensorSpec) -> TensorMetadata<'_> {
    TensorMetadata {
        name: &spec.name,
        datatype: spec.dtype.oip_name(),
        shape: spec.shape.iter().map(|d| d.as_i64()).collect(),
    }
}

fn metadata(state: &AppState, model: &str, version: Option<&str>) -> Result<Response, ApiError> {
    let v = lookup(state, model, version)?;
    let versions: Vec<String> = state
        .registry
        .versions(model)
        .map_err(|e| ApiError::from(e).v2())?
        .iter()
        .map(|v| v.version().to_owned())
        .collect();
    let signature = v.signature();
    Ok(Json(json!({
        "name": v.name(),
        "versions": versions,
        "platform": "onnx_onnxv1",
        "inputs": signature.inputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
        "outputs": signature.outputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /v2/models/{m}[/versions/{v}]`
pub(crate) async fn model_metadata(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    metadata(&state, &path.model, path.version.as_deref())
}

fn model_ready_response(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<Response, ApiError> {
    let v = lookup(state, model, version)?;
    let reason = v
        .not_ready_reason()
        .or_else(|| (v.ready_workers() == 0).then(|| "it has no workers".to_owned()));
    let body = match &reason {
        None => json!({"name": v.name(), "ready": true}),
        Some(reason) => json!({"name": v.name(), "ready": false, "reason": reason}),
    };
    let status = if reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(body)).into_response())
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`: 200 when the model has a ready worker, else 503.
pub(crate) async fn model_ready(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    model_ready_response(&state, &path.model, path.version.as_deref())
}

#[derive(Deserialize)]
struct InferRequest {
    id: Option<String>,
    /// Request parameters; `timeout` (microseconds, as Triton) shortens the deadline.
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<InferInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<OutputTensor<'a>>,
}

#[derive(Serialize)]
struct OutputTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    data: FlatJson<'a>,
}

/// `POST /v2/models/{m}[/versions/{v}]/infer`
pub(crate) async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    run_infer(state, &path.model, path.version.as_deref(), headers, body)
        .await
        .map_err(ApiError::v2)
}

async fn run_infer(
    state: AppState,
    model: &str,
    version: Option<&str>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = std::time::Instant::now();
    let v = state.registry.get(model, version)?;
    let bytes = read_limited(&headers, body, state.config.max_request_size).await?;
    let request: InferRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid inference request: {e}")))?;
    let inputs = tensors(&v, request.inputs)?;
    let wanted = requested_outputs(&v, request.outputs.as_deref())?;
    let mut options = crate::observe::options(&headers);
    if let Some(us) =
        request.parameters.as_ref().and_then(|p| p.get("timeout")).and_then(Value::as_u64)
    {
        let asked = std::time::Duration::from_micros(us);
        options.timeout = Some(options.timeout.map_or(asked, |t| t.min(asked)));
    }
    let output = v.infer(inputs, &options).await?;
    let timings = oxserve_engine::metrics::RequestTimings {
        queue: output.queue_time,
        inference: output.inference_time,
        total: received.elapsed(),
        ..Default::default()
    };
    let signature = v.signature();
    let outputs = signature
        .outputs
        .iter()
        .zip(&output.outputs)
        .filter(|(spec, _)| wanted.as_ref().is_none_or(|w| w.contains(spec.name.as_str())))
        .map(|(spec, t)| OutputTensor {
            name: &spec.name,
            datatype: t.dtype().oip_name(),
            shape: t.shape(),
            data: FlatJson(t.data()),
        })
        .collect();
    let response =
        InferResponse { model_name: v.name(), model_version: v.version(), id: request.id, outputs };
    let body = serde_json::to_vec(&response)
        .map_err(|e| ApiError::from(oxserve_engine::EngineError::Internal(e.to_string())))?;
    let mut response =
        ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
    response.headers_mut().insert("server-timing", crate::observe::server_timing(&timings));
    Ok(response)
}

/// Builds the model's inputs in signature order from the request's named tensors.
fn tensors(v: &ModelVersion, inputs: Vec<InferInput>) -> Result<Vec<Tensor>, ApiError> {
    let specs = &v.signature().inputs;
    let mut slots: Vec<Option<Tensor>> = vec![None; specs.len()];
    for input in inputs {
        let (i, spec) = v.signature().input(&input.name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown input `{}`; the model takes {}",
                input.name,
                specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let dtype = DType::from_oip_name(&input.datatype).ok_or_else(|| {
            ApiError::bad_request(format!(
                "input `{}`: unknown datatype `{}`",
                input.name, input.datatype
            ))
        })?;
        if dtype != spec.dtype {
            return Err(ApiError::bad_request(format!(
                "input `{}` has datatype {dtype} but the model expects {}",
                input.name, spec.dtype
            )));
        }
        let shape = input
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "input `{}`: shape {:?} has a negative dimension",
                    input.name, input.shape
                ))
            })?;
        spec.check_shape(&shape)
            .map_err(|e| ApiError::bad_request(format!("input `{}`: {e}", input.name)))?;
        let tensor = tensor_from_shaped(&input.data, dtype, shape)
            .map_err(|e| ApiError::bad_request(format!("input `{}`: {e}", input.name)))?;
        if slots[i].replace(tensor).is_some() {
            return Err(ApiError::bad_request(format!("input `{}` is given twice", input.name)));
        }
    }
    slots
        .into_iter()
        .zip(specs)
        .map(|(slot, spec)| {
            slot.ok_or_else(|| ApiError::bad_request(format!("input `{}` is missing", spec.name)))
        })
        .collect()
}

fn requested_outputs<'a>(
    v: &ModelVersion,
    requested: Option<&'a [RequestedOutput]>,
) -> Result<Option<HashSet<&'a str>>, ApiError> {
    let Some(requested) = requested else { return Ok(None) };
    let mut names = HashSet::new();
    for r in requested {
        if !v.signature().outputs.iter().any(|s| s.name == r.name) {
            return Err(ApiError::bad_request(format!("unknown output `{}`", r.name)));
        }
        names.insert(r.name.as_str());
    }
    Ok(Some(names))
}
