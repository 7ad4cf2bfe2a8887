//! Conversions between oxserve tensors and tract tensors.

use oxserve_backend::{BackendError, DType, Tensor, TensorData};
use tract_onnx::prelude::{DatumType, IntoTensor, Tensor as TractTensor, tract_ndarray};

/// The tract datum type for an oxserve dtype.
pub(crate) fn datum_type(dtype: DType) -> DatumType {
    match dtype {
        DType::Bool => DatumType::Bool,
        DType::U8 => DatumType::U8,
        DType::U16 => DatumType::U16,
        DType::U32 => DatumType::U32,
        DType::U64 => DatumType::U64,
        DType::I8 => DatumType::I8,
        DType::I16 => DatumType::I16,
        DType::I32 => DatumType::I32,
        DType::I64 => DatumType::I64,
        DType::F16 => DatumType::F16,
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::Bytes => DatumType::String,
    }
}

fn array<T>(shape: &[usize], data: Vec<T>) -> Result<TractTensor, BackendError>
where
    tract_ndarray::ArrayD<T>: IntoTensor,
{
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), data)
        .map(IntoTensor::into_tensor)
        .map_err(|e| BackendError::Inference(Box::new(e)))
}

/// Moves an oxserve tensor into tract without copying numeric data.
pub(crate) fn to_tract(tensor: Tensor) -> Result<TractTensor, BackendError> {
    let (shape, data) = tensor.into_parts();
    match data {
        TensorData::Bool(v) => array(&shape, v),
        TensorData::U8(v) => array(&shape, v),
        TensorData::U16(v) => array(&shape, v),
        TensorData::U32(v) => array(&shape, v),
        TensorData::U64(v) => array(&shape, v),
        TensorData::I8(v) => array(&shape, v),
        TensorData::I16(v) => array(&shape, v),
        TensorData::I32(v) => array(&shape, v),
        TensorData::I64(v) => array(&shape, v),
        TensorData::F16(v) => array(&shape, v),
        TensorData::F32(v) => array(&shape, v),
        TensorData::F64(v) => array(&shape, v),
        TensorData::Bytes(v) => {
            let strings = v.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect();
            array(&shape, strings)
        }
    }
}

fn elements<T: tract_onnx::prelude::Datum + Clone>(
    t: &TractTensor,
) -> Result<Vec<T>, BackendError> {
    let view = t.to_plain_array_view::<T>().map_err(|e| BackendError::Output(format!("{e:#}")))?;
    Ok(view.iter().cloned().collect())
}

/// Copies a tract output into an oxserve tensor of the dtype the model declares. tract may compute an
/// output in another type internally (an `int64` label can come out as a symbolic-dimension `TDim`),
/// so it is cast to the declared type first.
pub(crate) fn from_tract(t: &TractTensor, declared: DType) -> Result<Tensor, BackendError> {
    let wanted = datum_type(declared);
    let cast;
    let t = if t.datum_type() == wanted {
        t
    } else {
        cast = t.cast_to_dt(wanted).map_err(|e| {
            BackendError::Output(format!(
                "cannot convert {:?} output to {declared}: {e:#}",
                t.datum_type()
            ))
        })?;
        &*cast
    };
    let data = match t.datum_type() {
        DatumType::Bool => TensorData::Bool(elements(t)?),
        DatumType::U8 => TensorData::U8(elements(t)?),
        DatumType::U16 => TensorData::U16(elements(t)?),
        DatumType::U32 => TensorData::U32(elements(t)?),
        DatumType::U64 => TensorData::U64(elements(t)?),
        DatumType::I8 => TensorData::I8(elements(t)?),
        DatumType::I16 => TensorData::I16(elements(t)?),
        DatumType::I32 => TensorData::I32(elements(t)?),
        DatumType::I64 => TensorData::I64(elements(t)?),
        DatumType::F16 => TensorData::F16(elements(t)?),
        DatumType::F32 => TensorData::F32(elements(t)?),
        DatumType::F64 => TensorData::F64(elements(t)?),
        DatumType::String => {
            TensorData::Bytes(elements::<String>(t)?.into_iter().map(String::into_bytes).collect())
        }
        other => {
            return Err(BackendError::Output(format!(
                "output type {other:?} has no Open Inference Protocol equivalent"
            )));
        }
    };
    Tensor::new(t.shape().to_vec(), data)
}
