//! Conversions between oxserve tensors and ONNX Runtime values.
//!
//! Numeric data moves into ONNX Runtime without an extra copy in Rust; outputs are copied out once,
//! because they live in memory owned by the session run and must outlive it.

use std::fmt::Debug;

use ort::session::SessionInputValue;
use ort::value::{DynValue, PrimitiveTensorElementType, Shape, Tensor as OrtTensor, ValueType};
use oxserve_backend::{BackendError, DType, Tensor, TensorData, TensorSpec};

use crate::signature::element_type;

/// Builds the ONNX Runtime value for one input, checking its dtype against the declared one.
pub(crate) fn to_ort(
    tensor: Tensor,
    spec: &TensorSpec,
) -> Result<SessionInputValue<'static>, BackendError> {
    let invalid = |reason: String| BackendError::InvalidInput { name: spec.name.clone(), reason };
    if tensor.dtype() != spec.dtype {
        return Err(invalid(format!("expected {}, got {}", spec.dtype, tensor.dtype())));
    }
    let (shape, data) = tensor.into_parts();
    let value = match data {
        TensorData::Bool(v) => owned(shape, v),
        TensorData::U8(v) => owned(shape, v),
        TensorData::U16(v) => owned(shape, v),
        TensorData::U32(v) => owned(shape, v),
        TensorData::U64(v) => owned(shape, v),
        TensorData::I8(v) => owned(shape, v),
        TensorData::I16(v) => owned(shape, v),
        TensorData::I32(v) => owned(shape, v),
        TensorData::I64(v) => owned(shape, v),
        TensorData::F16(v) => owned(shape, v),
        TensorData::F32(v) => owned(shape, v),
        TensorData::F64(v) => owned(shape, v),
        TensorData::Bytes(v) => {
            // ONNX Runtime strings are NUL-terminated C strings and `ort` takes them as UTF-8 text, so
            // refuse bytes that would be changed on the way in rather than alter them silently.
            let strings = v
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b)
                        .map_err(|_| invalid(format!("element {i} is not UTF-8 text")))
                        .and_then(|s| {
                            if s.contains('\0') {
                                Err(invalid(format!("element {i} contains a NUL byte")))
                            } else {
                                Ok(s)
                            }
                        })
                })
                .collect::<Result<Vec<String>, _>>()?;
            OrtTensor::from_string_array((shape, strings.as_slice())).map(OrtTensor::into_dyn)
        }
    };
    value.map(Into::into).map_err(|e| invalid(e.to_string()))
}

fn owned<T: PrimitiveTensorElementType + Debug + Clone + 'static>(
    shape: Vec<usize>,
    data: Vec<T>,
) -> ort::Result<DynValue> {
    OrtTensor::from_array((shape, data)).map(OrtTensor::into_dyn)
}

/// Copies one output into an oxserve tensor, checking that ONNX Runtime produced the declared type.
pub(crate) fn from_ort(value: &DynValue, spec: &TensorSpec) -> Result<Tensor, BackendError> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(BackendError::Output(format!(
            "output `{}` is a {:?}, not a tensor",
            spec.name,
            value.dtype()
        )));
    };
    if *ty != element_type(spec.dtype) {
        return Err(BackendError::Output(format!(
            "output `{}` came back as {ty:?} but the model declares {}",
            spec.name, spec.dtype
        )));
    }
    let fail = |e: ort::Error| BackendError::Output(format!("output `{}`: {e}", spec.name));
    let (shape, data) = match spec.dtype {
        DType::Bool => copy(value, TensorData::Bool),
        DType::U8 => copy(value, TensorData::U8),
        DType::U16 => copy(value, TensorData::U16),
        DType::U32 => copy(value, TensorData::U32),
        DType::U64 => copy(value, TensorData::U64),
        DType::I8 => copy(value, TensorData::I8),
        DType::I16 => copy(value, TensorData::I16),
        DType::I32 => copy(value, TensorData::I32),
        DType::I64 => copy(value, TensorData::I64),
        DType::F16 => copy(value, TensorData::F16),
        DType::F32 => copy(value, TensorData::F32),
        DType::F64 => copy(value, TensorData::F64),
        DType::Bytes => value.try_extract_strings().map(|(shape, strings)| {
            (
                shape.clone(),
                TensorData::Bytes(strings.into_iter().map(String::into_bytes).collect()),
            )
        }),
    }
    .map_err(fail)?;
    let dims =
        shape.iter().map(|&d| usize::try_from(d)).collect::<Result<Vec<usize>, _>>().map_err(
            |_| BackendError::Output(format!("output `{}` has shape {shape:?}", spec.name)),
        )?;
    Tensor::new(dims, data)
}

fn copy<T: PrimitiveTensorElementType + Clone>(
    value: &DynValue,
    wrap: fn(Vec<T>) -> TensorData,
) -> ort::Result<(Shape, TensorData)> {
    value.try_extract_tensor::<T>().map(|(shape, data)| (shape.clone(), wrap(data.to_vec())))
}
