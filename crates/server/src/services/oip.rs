//! The Open Inference Protocol's model, for both transports: REST (`crate::v2`, with Triton's binary
//! extension) and gRPC (`crate::grpc::oip`) parse their requests' named tensors through [`Inputs`]
//! and [`requested_outputs`] into the signature's order; the serving core then checks the tensors
//! against the signature, once, whichever protocol brought them.

use std::collections::HashMap;
use std::sync::Arc;

use oxserve_backend::{DType, Tensor};
use oxserve_core::{EngineError, ModelVersion, Registry, RequestOptions};

use crate::error::ApiError;

/// The protocol extensions this server supports, as `GET /v2` and gRPC ServerMetadata list them.
pub(crate) const EXTENSIONS: &[&str] =
    &["model_repository", "model_configuration", "binary_tensor_data", "statistics"];

/// The platform name models report: every model oxserve serves runs an ONNX graph.
pub(crate) const PLATFORM: &str = "onnx_onnxv1";

/// The model version an OIP request names (no version: the default one). Not found is said in
/// Triton's words ("Request for unknown model", "failed to get model version from specified
/// version string"), which its clients' examples and tests look for.
pub(crate) fn model(
    registry: &Registry,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ModelVersion>, ApiError> {
    registry.get(name, version).map_err(|e| {
        let message = match &e {
            EngineError::ModelNotFound(_) => {
                Some(format!("Request for unknown model: '{name}' is not found"))
            }
            EngineError::VersionNotFound { version, .. } => Some(format!(
                "Request for unknown model: failed to get model version from specified version \
                 string '{version}': '{name}' has no such version"
            )),
            _ => None,
        };
        let mut api = ApiError::from(e);
        if let Some(message) = message {
            api.message = message;
        }
        api.v2()
    })
}

/// Shortens a request's deadline to `micros` (the OIP `timeout` parameter); never lengthens it.
pub(crate) fn shorten(options: &mut RequestOptions, micros: u64) {
    let asked = std::time::Duration::from_micros(micros);
    options.timeout = Some(options.timeout.map_or(asked, |t| t.min(asked)));
}

/// A tensor from raw bytes (binary extension and gRPC `raw_input_contents`).
pub(crate) fn raw_tensor(
    name: &str,
    dtype: DType,
    shape: Vec<usize>,
    bytes: &[u8],
) -> Result<Tensor, ApiError> {
    let count = oxserve_backend::element_count(&shape)
        .ok_or_else(|| ApiError::bad_request(format!("input `{name}`: the shape is too large")))?;
    let data = crate::tensor_bytes::decode(dtype, count, bytes)
        .map_err(|e| ApiError::bad_request(format!("input `{name}`: {e}")))?;
    Tensor::new(shape, data).map_err(|e| ApiError::bad_request(format!("input `{name}`: {e}")))
}

/// Refuses a shape whose element count or byte size does not fit a signed 64-bit count (the
/// protocol's), before anything is allocated for it; the words are Triton's.
fn check_size(name: &str, dtype: DType, shape: &[usize]) -> Result<(), ApiError> {
    let limit = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
        .filter(|&n| n <= limit)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "input `{name}`: shape {shape:?} causes total element count to exceed maximum \
                 size of {limit}"
            ))
        })?;
    let Some(size) = crate::tensor_bytes::element_size(dtype) else { return Ok(()) };
    match u64::try_from(size).ok().and_then(|size| count.checked_mul(size)) {
        Some(bytes) if bytes <= limit => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "byte size overflow for input `{name}`: {count} elements of {size} bytes"
        ))),
    }
}

/// A model's inputs being gathered from a request's named tensors, in signature order. REST and
/// gRPC share it, so both read names, datatypes and shapes the same way.
pub(crate) struct Inputs<'a> {
    v: &'a ModelVersion,
    slots: Vec<Option<Tensor>>,
}

impl<'a> Inputs<'a> {
    pub(crate) fn new(v: &'a ModelVersion) -> Self {
        Self { v, slots: vec![None; v.signature().inputs.len()] }
    }

    /// A named input's slot in the signature, its datatype and its shape, as the request states
    /// them. Whether they fit the model is the core's check, done once for every protocol.
    pub(crate) fn check(
        &self,
        name: &str,
        datatype: &str,
        shape: &[i64],
    ) -> Result<(usize, DType, Vec<usize>), ApiError> {
        let specs = &self.v.signature().inputs;
        let (i, _) = self.v.signature().input(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown input `{name}`; the model takes {}",
                specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let dtype = DType::from_oip_name(datatype).ok_or_else(|| {
            ApiError::bad_request(format!("input `{name}`: unknown datatype `{datatype}`"))
        })?;
        let shape =
            shape.iter().map(|&d| usize::try_from(d)).collect::<Result<Vec<usize>, _>>().map_err(
                |_| {
                    ApiError::bad_request(format!(
                        "input `{name}`: shape {shape:?} has a negative dimension"
                    ))
                },
            )?;
        check_size(name, dtype, &shape)?;
        Ok((i, dtype, shape))
    }

    /// Puts a checked input in its slot.
    pub(crate) fn put(&mut self, index: usize, name: &str, tensor: Tensor) -> Result<(), ApiError> {
        if self.slots[index].replace(tensor).is_some() {
            return Err(ApiError::bad_request(format!("input `{name}` is given twice")));
        }
        Ok(())
    }

    /// Every input, in signature order; an error names the first one missing.
    pub(crate) fn finish(self) -> Result<Vec<Tensor>, ApiError> {
        self.slots
            .into_iter()
            .zip(&self.v.signature().inputs)
            .map(|(slot, spec)| {
                slot.ok_or_else(|| {
                    ApiError::bad_request(format!("input `{}` is missing", spec.name))
                })
            })
            .collect()
    }
}

/// The outputs a request names, with a per-output value (the binary flag on REST), after checking
/// that the model has them.
pub(crate) fn requested_outputs<'a, T>(
    v: &ModelVersion,
    requested: impl IntoIterator<Item = (&'a str, T)>,
) -> Result<HashMap<&'a str, T>, ApiError> {
    let mut names = HashMap::new();
    for (name, value) in requested {
        if !v.signature().outputs.iter().any(|s| s.name == name) {
            return Err(ApiError::bad_request(format!("unknown output `{name}`")));
        }
        // Triton refuses a name asked twice rather than guess which options win (and says so
        // in these words).
        if names.insert(name, value).is_some() {
            return Err(ApiError::bad_request(format!(
                "output '{name}' already exists in request: each output may be asked for once"
            )));
        }
    }
    Ok(names)
}
