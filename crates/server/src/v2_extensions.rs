//! Triton's statistics, model configuration and model repository extensions over REST, in the JSON
//! Triton writes (`crate::services::triton` holds what they do). Errors are `{"error": ...}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::services::triton::{self, ConfigTensor, IndexEntry, VersionStats};

/// `GET /v2/models/stats`
pub(crate) async fn all_stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    stats_of(&state, "", "")
}

/// `GET /v2/models/{model}/stats`
pub(crate) async fn model_stats(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    stats_of(&state, &model, "")
}

/// `GET /v2/models/{model}/versions/{version}/stats`
pub(crate) async fn version_stats(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    stats_of(&state, &model, &version)
}

fn stats_of(state: &AppState, model: &str, version: &str) -> Result<Json<Value>, ApiError> {
    let stats = triton::statistics(state, model, version).map_err(ApiError::v2)?;
    Ok(Json(json!({"model_stats": stats.iter().map(stats_json).collect::<Vec<_>>()})))
}

fn stats_json(v: &VersionStats) -> Value {
    let d = |d: oxserve_core::stats::Duration64| json!({"count": d.count, "ns": d.ns});
    let s = &v.stats;
    // Executions at one size share their engine time; handler stages are timed per request, so
    // they are reported per model, not per batch size (count 0 here).
    let none = json!({"count": 0, "ns": 0});
    let batches: Vec<Value> = s
        .batches
        .iter()
        .map(|(size, infer)| {
            json!({
                "batch_size": size,
                "compute_input": none,
                "compute_infer": d(*infer),
                "compute_output": none,
            })
        })
        .collect();
    json!({
        "name": v.name,
        "version": v.version,
        "last_inference": s.last_inference_ms,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": d(s.success),
            "fail": d(s.fail),
            "queue": d(s.queue),
            "compute_input": d(s.compute_input),
            "compute_infer": d(s.compute_infer),
            "compute_output": d(s.compute_output),
            "cache_hit": none,
            "cache_miss": none,
        },
        "response_stats": {},
        "batch_stats": batches,
        "memory_usage": [],
    })
}

/// `GET /v2/models/{model}/config`
pub(crate) async fn model_config(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    config_of(&state, &model, None)
}

/// `GET /v2/models/{model}/versions/{version}/config`
pub(crate) async fn version_config(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    config_of(&state, &model, Some(&version))
}

fn config_of(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let v = crate::services::oip::model(&state.registry, model, version)?;
    let c = triton::model_config(&v);
    let tensor = |t: &ConfigTensor, input: bool| {
        let mut out = json!({
            "name": t.name,
            "data_type": t.data_type,
            "dims": t.dims,
            "is_shape_tensor": false,
        });
        if input {
            out["format"] = json!("FORMAT_NONE");
            out["allow_ragged_batch"] = json!(false);
            out["optional"] = json!(false);
        } else {
            out["label_filename"] = json!("");
        }
        out
    };
    let mut config = json!({
        "name": c.name,
        "platform": c.platform,
        "backend": c.backend,
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": c.max_batch_size,
        "input": c.inputs.iter().map(|t| tensor(t, true)).collect::<Vec<_>>(),
        "output": c.outputs.iter().map(|t| tensor(t, false)).collect::<Vec<_>>(),
        "instance_group": [{"name": c.name, "kind": c.kind.0, "count": c.count, "gpus": []}],
        "parameters": {},
    });
    if let Some((preferred, delay)) = c.dynamic_batching {
        config["dynamic_batching"] = json!({
            "preferred_batch_size": [preferred],
            "max_queue_delay_microseconds": delay,
            "preserve_ordering": false,
        });
    }
    Ok(Json(config))
}

/// A repository call's body: empty, or a JSON object.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object").v2()),
        Err(e) => Err(ApiError::bad_request(format!("the body is not JSON: {e}")).v2()),
    }
}

/// The body of a repository index call, read as a type rather than a tree: a `ready` that is not a
/// boolean is refused at its first byte, however deeply it nests.
#[derive(serde::Deserialize)]
struct Index {
    ready: Option<Ready>,
}

struct Ready(bool);

impl<'de> serde::Deserialize<'de> for Ready {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <bool as serde::Deserialize>::deserialize(d)
            .map(Self)
            .map_err(|_| serde::de::Error::custom("Invalid value for 'ready': expected a boolean"))
    }
}

/// `POST /v2/repository/index` with an optional `{"ready": bool}`.
pub(crate) async fn index(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ready = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        let index: Index = serde_json::from_slice(&body).map_err(|e| {
            let message =
                if e.is_data() { e.to_string() } else { format!("the body is not JSON: {e}") };
            ApiError::bad_request(message).v2()
        })?;
        index.ready.is_some_and(|r| r.0)
    };
    let entries = triton::index(&state, ready).map_err(ApiError::v2)?;
    Ok(Json(Value::Array(entries.iter().map(index_json).collect())))
}

fn index_json(e: &IndexEntry) -> Value {
    let mut out = json!({"name": e.name});
    if let Some(version) = &e.version {
        out["version"] = json!(version);
    }
    if let Some(state) = e.state {
        out["state"] = json!(state);
    }
    if let Some(reason) = &e.reason {
        out["reason"] = json!(reason);
    }
    out
}

/// `POST /v2/repository/models/{model}/load` with optional `{"parameters": {"config": "<json>"}}`.
/// 200 with an empty body once the model is ready.
pub(crate) async fn load(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<(), ApiError> {
    let parameters = parameters(&body)?;
    let texts = parameters.iter().map(|(key, value)| (key.as_str(), value.as_str()));
    let config = triton::load_config(&model, texts).map_err(ApiError::v2)?;
    triton::load(&state, &model, config).await.map_err(ApiError::v2)
}

/// `POST /v2/repository/models/{model}/unload` with optional `{"parameters":
/// {"unload_dependents": false}}`.
pub(crate) async fn unload(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<(), ApiError> {
    let parameters = parameters(&body)?;
    triton::check_unload_parameters(parameters.keys().map(String::as_str)).map_err(ApiError::v2)?;
    triton::unload(&state, &model).await.map_err(ApiError::v2)
}

fn parameters(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match body_object(body)?.remove("parameters") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(ApiError::bad_request("parameters must be a JSON object").v2()),
    }
}
