//! Triton's extensions beyond the Open Inference Protocol that its clients call, for both
//! transports (`crate::v2_extensions` over REST, `crate::grpc::oip` over gRPC): statistics, model
//! configuration, and the model repository, which is oxserve's model store.
//!
//! Repository load and unload are register and unregister by another name: they need the model
//! API switch and the management key, as TorchServe's register does.

use std::sync::Arc;

use oxserve_backend::{DType, Dim, TensorSpec};
use oxserve_core::config::{DeviceType, ModelOverrides};
use oxserve_core::stats::StatsSnapshot;
use oxserve_core::{EngineError, ModelVersion, RegisterRequest};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// Platform and backend a native model reports in its configuration: the graph is ONNX.
pub(crate) const CONFIG_PLATFORM: &str = "onnxruntime_onnx";

/// One model version's statistics.
#[derive(Debug)]
pub(crate) struct VersionStats {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) stats: StatsSnapshot,
}

/// Statistics of every ready version (`model` empty), of a model's ready versions (`version`
/// empty), or of one version.
pub(crate) fn statistics(
    state: &AppState,
    model: &str,
    version: &str,
) -> Result<Vec<VersionStats>, ApiError> {
    let versions = match (model, version) {
        ("", _) => state.registry.all_versions(),
        (model, "") => state.registry.versions(model)?,
        (model, version) => vec![state.registry.get(model, Some(version))?],
    };
    let ready: Vec<_> = versions.into_iter().filter(|v| v.not_serving_reason().is_none()).collect();
    if ready.is_empty() && !model.is_empty() {
        return Err(EngineError::Unavailable(format!("model {model} has no ready version")).into());
    }
    Ok(ready
        .iter()
        .map(|v| VersionStats {
            name: v.name().to_owned(),
            version: v.version().to_owned(),
            stats: v.metrics().stats().snapshot(),
        })
        .collect())
}

/// A tensor in a model configuration.
#[derive(Debug)]
pub(crate) struct ConfigTensor {
    pub(crate) name: String,
    /// Triton's `DataType` name (`TYPE_FP32`).
    pub(crate) data_type: &'static str,
    /// Its number in `model_config.proto`.
    pub(crate) data_type_number: i32,
    /// Without the batch dimension when the model batches; -1 for a dynamic one.
    pub(crate) dims: Vec<i64>,
}

/// A model's configuration as Triton's model configuration extension gives it, derived from the
/// signature and settings in force.
#[derive(Debug)]
pub(crate) struct ModelConfig {
    pub(crate) name: String,
    pub(crate) platform: &'static str,
    pub(crate) backend: &'static str,
    /// Largest batch the server forms; 0 for a model without a batch dimension.
    pub(crate) max_batch_size: i32,
    pub(crate) inputs: Vec<ConfigTensor>,
    pub(crate) outputs: Vec<ConfigTensor>,
    /// Preferred batch size and the longest wait for one, in microseconds, when requests batch.
    pub(crate) dynamic_batching: Option<(i32, u64)>,
    /// `KIND_CPU` or `KIND_GPU`, with its number.
    pub(crate) kind: (&'static str, i32),
    /// Workers.
    pub(crate) count: i32,
}

/// The configuration of `v`.
pub(crate) fn model_config(v: &ModelVersion) -> ModelConfig {
    let settings = v.settings();
    let batches = v.signature().is_batchable();
    let tensors = |specs: &[TensorSpec]| specs.iter().map(|s| config_tensor(s, batches)).collect();
    let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let batch_size = clamp(settings.batch_size.max(1));
    ModelConfig {
        name: v.name().to_owned(),
        platform: if v.is_hosted() { "" } else { CONFIG_PLATFORM },
        backend: v.engine(),
        max_batch_size: if batches { batch_size } else { 0 },
        inputs: tensors(&v.signature().inputs),
        outputs: tensors(&v.signature().outputs),
        dynamic_batching: (batches && batch_size > 1).then(|| {
            let micros = u64::try_from(settings.max_batch_delay.as_micros()).unwrap_or(u64::MAX);
            (batch_size, micros)
        }),
        kind: match settings.device_type {
            DeviceType::Cpu => ("KIND_CPU", 2),
            DeviceType::Gpu => ("KIND_GPU", 1),
        },
        count: clamp(settings.min_workers),
    }
}

fn config_tensor(spec: &TensorSpec, batches: bool) -> ConfigTensor {
    let (data_type, data_type_number) = triton_type(spec.dtype);
    let skip = usize::from(batches);
    ConfigTensor {
        name: spec.name.clone(),
        data_type,
        data_type_number,
        dims: spec
            .shape
            .iter()
            .skip(skip)
            .map(|d| match d {
                Dim::Fixed(n) => i64::try_from(*n).unwrap_or(i64::MAX),
                Dim::Dynamic => -1,
            })
            .collect(),
    }
}

/// Triton's `DataType` name and number for a datatype (`model_config.proto`).
fn triton_type(dtype: DType) -> (&'static str, i32) {
    match dtype {
        DType::Bool => ("TYPE_BOOL", 1),
        DType::U8 => ("TYPE_UINT8", 2),
        DType::U16 => ("TYPE_UINT16", 3),
        DType::U32 => ("TYPE_UINT32", 4),
        DType::U64 => ("TYPE_UINT64", 5),
        DType::I8 => ("TYPE_INT8", 6),
        DType::I16 => ("TYPE_INT16", 7),
        DType::I32 => ("TYPE_INT32", 8),
        DType::I64 => ("TYPE_INT64", 9),
        DType::F16 => ("TYPE_FP16", 10),
        DType::F32 => ("TYPE_FP32", 11),
        DType::F64 => ("TYPE_FP64", 12),
        DType::Bytes => ("TYPE_STRING", 13),
    }
}

/// One entry of the repository index.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) name: String,
    /// For a loaded version; a store entry never loaded has only a name.
    pub(crate) version: Option<String>,
    /// `READY` or `UNAVAILABLE`, for a loaded version.
    pub(crate) state: Option<&'static str>,
    pub(crate) reason: Option<String>,
}

/// The model store's models and every loaded version (models registered from elsewhere too); with
/// `ready_only`, only versions that can answer now.
pub(crate) fn index(state: &AppState, ready_only: bool) -> Result<Vec<IndexEntry>, ApiError> {
    let loaded = state.registry.all_versions();
    let mut entries: Vec<IndexEntry> = loaded
        .iter()
        .map(|v| {
            let reason = v.not_serving_reason();
            IndexEntry {
                name: v.name().to_owned(),
                version: Some(v.version().to_owned()),
                state: Some(if reason.is_none() { "READY" } else { "UNAVAILABLE" }),
                reason,
            }
        })
        .filter(|e| !ready_only || e.state == Some("READY"))
        .collect();
    if !ready_only {
        let store = oxserve_store::listing::models(&state.registry.config().model_store)
            .map_err(ApiError::internal)?;
        for model in store {
            if !loaded.iter().any(|v| v.name() == model.name) {
                entries.push(IndexEntry {
                    name: model.name,
                    version: None,
                    state: None,
                    reason: None,
                });
            }
        }
    }
    entries.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(entries)
}

/// What a load call may change, from Triton's `config` parameter: a partial model configuration
/// in JSON. `max_batch_size`, `dynamic_batching.max_queue_delay_microseconds` and
/// `instance_group[0].count` are applied; other fields describe what the model file already says
/// (inputs, outputs, platform) and are not read, so a configuration fetched with the model
/// configuration call can be sent back changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LoadConfig {
    batch_size: Option<usize>,
    max_batch_delay_ms: Option<u64>,
    workers: Option<usize>,
}

/// Reads a load call's parameters, each key with its value when that is a string: `config` (a
/// partial configuration, [`parse_load_config`]); `file:` overrides are refused (the model comes
/// from the store), and so is any other key.
pub(crate) fn load_config<'a>(
    model: &str,
    parameters: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<LoadConfig, ApiError> {
    let mut config = LoadConfig::default();
    for (key, text) in parameters {
        let why = match (key, text) {
            ("config", Some(json)) => {
                config = parse_load_config(model, json)?;
                continue;
            }
            ("config", None) => {
                format!("failed to load '{model}': the config parameter must be a string")
            }
            (file, _) if file.starts_with("file:") => format!(
                "failed to load '{model}': model files cannot be sent with a load call; put the \
                 model in the model store"
            ),
            (other, _) => format!("unrecognized load parameter '{other}'"),
        };
        return Err(ApiError::bad_request(why));
    }
    Ok(config)
}

/// Checks an unload call's parameter names: only `unload_dependents` is taken (and has nothing to
/// do: oxserve has no ensembles, so nothing depends on a model).
pub(crate) fn check_unload_parameters<'a>(
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    match keys.into_iter().find(|k| *k != "unload_dependents") {
        Some(key) => Err(ApiError::bad_request(format!("unrecognized unload parameter '{key}'"))),
        None => Ok(()),
    }
}

/// Parses the `config` load parameter.
fn parse_load_config(model: &str, json: &str) -> Result<LoadConfig, ApiError> {
    let bad = |why: String| ApiError::bad_request(format!("failed to load '{model}': {why}"));
    let value: Value =
        serde_json::from_str(json).map_err(|e| bad(format!("the config is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("the config must be a JSON object".into()));
    }
    // Protobuf's JSON reading takes integers as numbers or as strings ("16").
    let number = |v: &Value, field: &str| -> Result<Option<u64>, ApiError> {
        let parsed = match v {
            Value::Null => return Ok(None),
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed.map(Some).ok_or_else(|| bad(format!("{field} must be a whole number ≥ 0, got {v}")))
    };
    let size = |n: Option<u64>| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let batch_size = size(number(&value["max_batch_size"], "max_batch_size")?).map(|n| n.max(1));
    let delay = number(
        &value["dynamic_batching"]["max_queue_delay_microseconds"],
        "dynamic_batching.max_queue_delay_microseconds",
    )?;
    let workers = size(number(&value["instance_group"][0]["count"], "instance_group[0].count")?);
    Ok(LoadConfig {
        batch_size,
        // oxserve's batch delay is in milliseconds: round up, so a short wait is not none.
        max_batch_delay_ms: delay.map(|us| us.div_ceil(1000)),
        workers,
    })
}

/// Loads the store's model `name` (reloads it when loaded), with its ready workers started before
/// this returns.
pub(crate) async fn load(state: &AppState, name: &str, config: LoadConfig) -> Result<(), ApiError> {
    super::management::model_api_enabled(state)?;
    let failed =
        |e: ApiError| ApiError { message: format!("failed to load '{name}': {}", e.message), ..e };
    let store = oxserve_store::listing::models(&state.registry.config().model_store)
        .map_err(ApiError::internal)?;
    let entry = store.into_iter().find(|e| e.name == name).ok_or_else(|| {
        failed(
            EngineError::ModelNotFound(format!("no model named {name} in the model store")).into(),
        )
    })?;
    // Triton loads a loaded model again (its files may have changed).
    unload_all(state, name).await?;
    let request = RegisterRequest {
        url: entry.file,
        model_name: Some(name.to_owned()),
        overrides: ModelOverrides {
            batch_size: config.batch_size,
            max_batch_delay: config.max_batch_delay_ms,
            ..ModelOverrides::default()
        },
        initial_workers: Some(config.workers.unwrap_or(1)),
        synchronous: true,
        loaded_at_startup: false,
        sha256: None,
    };
    let version = state.registry.register(request).await.map_err(|e| failed(e.into()))?;
    if let Some(reason) = version.not_serving_reason() {
        return Err(failed(EngineError::Unavailable(reason).into()));
    }
    Ok(())
}

/// Unloads every version of `name`; a model not loaded is no error, as in Triton.
pub(crate) async fn unload(state: &AppState, name: &str) -> Result<(), ApiError> {
    super::management::model_api_enabled(state)?;
    unload_all(state, name).await
}

async fn unload_all(state: &AppState, name: &str) -> Result<(), ApiError> {
    let versions: Vec<Arc<ModelVersion>> = state.registry.versions(name).unwrap_or_default();
    for v in versions {
        match state.registry.unregister(name, Some(v.version())).await {
            Ok(_) | Err(EngineError::ModelNotFound(_) | EngineError::VersionNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_config_sets_batching_and_workers() {
        let config = parse_load_config(
            "m",
            r#"{"max_batch_size": "16", "dynamic_batching": {"max_queue_delay_microseconds": 1500},
                "instance_group": [{"count": 2, "kind": "KIND_CPU"}], "input": []}"#,
        )
        .unwrap();
        let want =
            LoadConfig { batch_size: Some(16), max_batch_delay_ms: Some(2), workers: Some(2) };
        assert_eq!(config, want);
        assert_eq!(parse_load_config("m", "{}").unwrap(), LoadConfig::default());
    }

    #[test]
    fn a_config_that_cannot_be_read_says_the_load_failed() {
        for bad in [r#""max_batch_size": 16"#, "[]", r#"{"max_batch_size": -1}"#] {
            let err = parse_load_config("simple", bad).unwrap_err();
            assert!(err.message.starts_with("failed to load 'simple'"), "{}", err.message);
            assert_eq!(err.status, 400);
        }
    }

    #[test]
    fn datatypes_have_triton_s_names_and_numbers() {
        assert_eq!(triton_type(DType::F32), ("TYPE_FP32", 11));
        assert_eq!(triton_type(DType::Bytes), ("TYPE_STRING", 13));
        assert_eq!(triton_type(DType::I64), ("TYPE_INT64", 9));
    }
}
