//! The Open Inference Protocol (KServe V2) over REST, with Triton's binary tensor extension.
//!
//! Binary extension: a request whose JSON is followed by raw tensor bytes says how long its JSON
//! part is in `Inference-Header-Content-Length`; each input sent that way carries
//! `"parameters": {"binary_data_size": N}` instead of `data`, and takes the next N bytes, in input
//! order. Outputs come back raw when the output asks with `"parameters": {"binary_data": true}` or the
//! request with `"parameters": {"binary_data_output": true}`; the answer then has the same header and
//! layout. The byte layout is [`crate::tensor_bytes`]'s.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use oxserve_backend::json::{FlatJson, tensor_from_shaped};
use oxserve_backend::{Tensor, TensorSpec};
use oxserve_core::ModelVersion;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::body::read_limited;
use crate::error::ApiError;
use crate::hosted::Ask;
use crate::services::oip::{EXTENSIONS, Inputs, PLATFORM, raw_tensor, requested_outputs};
use crate::{AppState, ModelPath};

/// The header giving the length of the JSON part of a body followed by raw tensors.
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";

/// `GET /v2`
pub(crate) async fn server_metadata(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "name": state.config.server_name,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS
    }))
}

/// `GET /v2/health/live`
pub(crate) async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// `GET /v2/health/ready`: 200 when every model has its minimum workers ready, else 503.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let ready = crate::services::server_ready(&state);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": ready}))).into_response()
}

fn lookup(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<std::sync::Arc<ModelVersion>, ApiError> {
    crate::services::oip::model(&state.registry, model, version)
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
        "platform": PLATFORM,
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
    let reason = v.not_serving_reason();
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
pub(crate) struct InferRequest {
    id: Option<String>,
    /// Request parameters; `timeout` (microseconds, as Triton) shortens the deadline and
    /// `binary_data_output` asks for every output as raw bytes.
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
    /// Absent when the tensor comes as raw bytes after the JSON (`binary_data_size`).
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<FlatJson<'a>>,
}

/// `POST /v2/models/{m}[/versions/{v}]/infer`. A model on worker processes gets the request as
/// sent, as TorchServe hands it to its handler (whose `kservev2` envelope reads it).
pub(crate) async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    call(state, &path, Ask::Predict, &uri, headers, body).await.map_err(ApiError::v2)
}

/// `POST /v2/models/{m}[/versions/{v}]/explain`: the handler's explain path, for models on worker
/// processes (TorchServe's `kservev2` explain); built-in handlers have none (501).
pub(crate) async fn explain(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    call(state, &path, Ask::Explain, &uri, headers, body).await.map_err(ApiError::v2)
}

async fn call(
    state: AppState,
    path: &ModelPath,
    ask: Ask,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let version = lookup(&state, &path.model, path.version.as_deref())?;
    match (version.is_hosted(), ask) {
        (true, _) => crate::inference::run(state, version, ask, uri, headers, body).await,
        (false, Ask::Predict) => run_infer(state, version, headers, body).await,
        (false, Ask::Explain) => Err(crate::inference::no_explanations(&version)),
    }
}

/// A boolean parameter; absent is `false`, anything but a boolean is an error.
fn flag(parameters: Option<&Map<String, Value>>, key: &str) -> Result<bool, ApiError> {
    match parameters.and_then(|p| p.get(key)) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => {
            Err(ApiError::bad_request(format!("parameter {key} must be a boolean, got {other}")))
        }
    }
}

/// Triton's raw binary request (`Inference-Header-Content-Length: 0`): the body is the bytes of
/// the model's only input, its datatype the model's and its shape deduced from the byte count
/// (at most one dynamic dimension). A BYTES input takes the whole body as its one element, so its
/// shape must be `[1]`. Returns the request and the raw bytes its input reads. Refusals are worded
/// as Triton words them.
fn raw_request(
    v: &ModelVersion,
    raw: bytes::Bytes,
) -> Result<(InferRequest, bytes::Bytes), ApiError> {
    let signature = v.signature();
    let [spec] = signature.inputs.as_slice() else {
        return Err(ApiError::bad_request(format!(
            "Raw request must only have 1 input (found 1) to be deduced but got {} inputs in '{}' \
             model configuration: send the JSON header ({HEADER_LENGTH}) to name them",
            signature.inputs.len(),
            v.name()
        )));
    };
    let dims: Vec<i64> = spec.shape.iter().map(|d| d.as_i64()).collect();
    let (shape, raw) = if spec.dtype == oxserve_backend::DType::Bytes {
        if dims.iter().any(|&d| d != 1) {
            return Err(ApiError::bad_request(format!(
                "For BYTE datatype raw input '{}', the model must have input shape [1] (it has \
                 {dims:?}): the whole body is the one element",
                spec.name
            )));
        }
        let length = u32::try_from(raw.len())
            .map_err(|_| ApiError::bad_request("a BYTES element is at most 4 GiB"))?;
        let mut prefixed = Vec::with_capacity(raw.len() + 4);
        prefixed.extend_from_slice(&length.to_le_bytes());
        prefixed.extend_from_slice(&raw);
        (dims, bytes::Bytes::from(prefixed))
    } else {
        (deduced_shape(spec, &dims, &raw)?, raw)
    };
    let size = raw.len();
    let request = InferRequest {
        id: None,
        parameters: None,
        inputs: vec![InferInput {
            name: spec.name.clone(),
            shape,
            datatype: spec.dtype.oip_name().to_owned(),
            data: None,
            parameters: Some([("binary_data_size".to_owned(), json!(size))].into_iter().collect()),
        }],
        outputs: None,
    };
    Ok((request, raw))
}

/// The shape of a fixed-size input whose bytes are `raw`: its one dynamic dimension filled in.
fn deduced_shape(spec: &TensorSpec, dims: &[i64], raw: &[u8]) -> Result<Vec<i64>, ApiError> {
    let count = crate::tensor_bytes::element_count(spec.dtype, raw).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{} bytes are not a whole number of {} elements",
            raw.len(),
            spec.dtype.oip_name()
        ))
    })?;
    let fixed: i64 = dims.iter().filter(|d| **d >= 0).product();
    let elements = i64::try_from(count).unwrap_or(i64::MAX);
    match dims.iter().filter(|d| **d < 0).count() {
        0 => Ok(dims.to_vec()),
        1 if fixed > 0 && elements % fixed == 0 => {
            Ok(dims.iter().map(|&d| if d < 0 { elements / fixed } else { d }).collect())
        }
        1 => Err(ApiError::bad_request(format!(
            "{count} elements do not fill input `{}` of shape {dims:?}",
            spec.name
        ))),
        _ => Err(ApiError::bad_request(format!(
            "The shape of the raw input '{}' can not be deduced because there are more than one \
             variable-sized dimension (its shape is {dims:?}): send the JSON header",
            spec.name
        ))),
    }
}

/// Splits a body into its JSON part and the raw tensor bytes after it.
pub(crate) fn split_binary(
    headers: &HeaderMap,
    bytes: &bytes::Bytes,
) -> Result<(bytes::Bytes, bytes::Bytes), ApiError> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok((bytes.clone(), bytes::Bytes::new()));
    };
    let length =
        value.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| {
            ApiError::bad_request(format!("{HEADER_LENGTH} must be a byte count"))
        })?;
    if length > bytes.len() {
        return Err(ApiError::bad_request(format!(
            "{HEADER_LENGTH} is {length} but the body has only {} bytes",
            bytes.len()
        )));
    }
    Ok((bytes.slice(..length), bytes.slice(length..)))
}

async fn run_infer(
    state: AppState,
    v: std::sync::Arc<ModelVersion>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = std::time::Instant::now();
    let options = crate::observe::options(&headers);
    // Admitted before the body is read, as on the TorchServe path.
    let mut ticket = v.admit(options)?;
    let bytes = read_limited(&headers, body, &state.config).await?;
    let (json_part, binary) = split_binary(&headers, &bytes)?;
    // A raw request (no JSON header) is answered in raw bytes too, as Triton does: its sender
    // reads the outputs after `Inference-Header-Content-Length`.
    let raw = json_part.is_empty() && headers.contains_key(HEADER_LENGTH);
    let (request, binary): (InferRequest, _) = if raw {
        raw_request(&v, binary)?
    } else {
        let request = serde_json::from_slice(&json_part);
        (
            request
                .map_err(|e| ApiError::bad_request(format!("invalid inference request: {e}")))?,
            binary,
        )
    };
    let inputs = tensors(&v, request.inputs, &binary)?;
    let all_binary = raw || flag(request.parameters.as_ref(), "binary_data_output")?;
    let wanted = match request.outputs.as_deref() {
        None => None,
        Some(requested) => {
            let mut wanted = Vec::with_capacity(requested.len());
            for r in requested {
                let binary = match r.parameters.as_ref().and_then(|p| p.get("binary_data")) {
                    None => all_binary,
                    Some(_) => flag(r.parameters.as_ref(), "binary_data")?,
                };
                wanted.push((r.name.as_str(), binary));
            }
            Some(requested_outputs(&v, wanted)?)
        }
    };
    if let Some(value) = request.parameters.as_ref().and_then(|p| p.get("timeout")) {
        let us = value.as_u64().ok_or_else(|| {
            ApiError::bad_request(format!("parameter timeout must be microseconds, got {value}"))
        })?;
        ticket.shorten_timeout(std::time::Duration::from_micros(us));
    }
    let output = ticket.infer(inputs).await?;
    let timings = oxserve_core::metrics::RequestTimings {
        queue: output.queue_time,
        inference: output.inference_time,
        total: received.elapsed(),
        ..Default::default()
    };
    let signature = v.signature();
    let mut raw = Vec::new();
    let mut outputs = Vec::new();
    for (spec, t) in signature.outputs.iter().zip(&output.output) {
        let binary = match &wanted {
            None => all_binary,
            Some(w) => match w.get(spec.name.as_str()) {
                None => continue,
                Some(binary) => *binary,
            },
        };
        let (parameters, data) = if binary {
            let before = raw.len();
            crate::tensor_bytes::encode_into(t.data(), &mut raw);
            (Some(json!({"binary_data_size": raw.len() - before})), None)
        } else {
            (None, Some(FlatJson(t.data())))
        };
        outputs.push(OutputTensor {
            name: &spec.name,
            datatype: t.dtype().oip_name(),
            shape: t.shape(),
            parameters,
            data,
        });
    }
    let response =
        InferResponse { model_name: v.name(), model_version: v.version(), id: request.id, outputs };
    let mut body = serde_json::to_vec(&response).map_err(ApiError::internal)?;
    let json_length = body.len();
    body.extend_from_slice(&raw);
    if body.len() > state.config.max_response_size {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            format!(
                "the response of {} bytes is larger than max_response_size ({} bytes)",
                body.len(),
                state.config.max_response_size
            ),
        ));
    }
    let content_type = if raw.is_empty() { "application/json" } else { "application/octet-stream" };
    let mut response = ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response();
    if !raw.is_empty() {
        response.headers_mut().insert(HEADER_LENGTH, HeaderValue::from(json_length));
    }
    response.headers_mut().insert("server-timing", crate::observe::server_timing(&timings));
    Ok(response)
}

/// Builds the model's inputs in signature order from the request's named tensors, taking the raw
/// ones from `binary` in input order.
fn tensors(
    v: &ModelVersion,
    inputs: Vec<InferInput>,
    binary: &bytes::Bytes,
) -> Result<Vec<Tensor>, ApiError> {
    let mut slots = Inputs::new(v);
    let mut offset = 0usize;
    for input in inputs {
        let (i, dtype, shape) = slots.check(&input.name, &input.datatype, &input.shape)?;
        let size = match input.parameters.as_ref().and_then(|p| p.get("binary_data_size")) {
            None => None,
            Some(n) => Some(n.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input `{}`: binary_data_size must be a byte count, got {n}",
                    input.name
                ))
            })?),
        };
        let tensor = match (size, &input.data) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "input `{}` has both data and binary_data_size",
                    input.name
                )));
            }
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "input `{}` has neither data nor binary_data_size",
                    input.name
                )));
            }
            (None, Some(data)) => tensor_from_shaped(data, dtype, shape)
                .map_err(|e| ApiError::bad_request(format!("input `{}`: {e}", input.name)))?,
            (Some(size), None) => {
                let end = offset.checked_add(size).filter(|end| *end <= binary.len()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "input `{}`: binary_data_size {size} runs past the {} bytes after the JSON",
                        input.name,
                        binary.len()
                    ))
                })?;
                let tensor = raw_tensor(&input.name, dtype, shape, &binary[offset..end])?;
                offset = end;
                tensor
            }
        };
        slots.put(i, &input.name, tensor)?;
    }
    if offset != binary.len() {
        return Err(ApiError::bad_request(format!(
            "{} bytes after the JSON belong to no input (binary_data_size adds up to {offset})",
            binary.len() - offset
        )));
    }
    slots.finish()
}
