//! Reads a model's declared inputs and outputs from an ONNX Runtime session.
//!
//! ONNX Runtime has already parsed the graph and left initializers out of the inputs, so the session's
//! own description is the signature: no second parse of the file is needed.

use ort::session::Session;
use ort::value::{Outlet, TensorElementType, ValueType};
use oxserve_backend::{DType, Dim, Signature, TensorSpec};

/// The signature the session reports. Non-tensor inputs or outputs (sequences, maps, such as
/// scikit-learn's ZipMap) and element types the Open Inference Protocol lacks are refused.
pub(crate) fn from_session(session: &Session) -> Result<Signature, String> {
    let inputs = session.inputs().iter().map(spec).collect::<Result<Vec<_>, _>>()?;
    let outputs = session.outputs().iter().map(spec).collect::<Result<Vec<_>, _>>()?;
    if inputs.is_empty() {
        return Err("the model declares no inputs".into());
    }
    Ok(Signature { inputs, outputs })
}

fn spec(outlet: &Outlet) -> Result<TensorSpec, String> {
    let name = outlet.name();
    let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
        return Err(format!(
            "`{name}` is a {:?}, not a tensor; only tensor inputs and outputs are served",
            outlet.dtype()
        ));
    };
    let dtype = dtype(*ty)
        .ok_or_else(|| format!("`{name}` has an element type ({ty:?}) that cannot be served"))?;
    // ONNX Runtime reports symbolic and unknown dimensions as -1.
    let shape =
        shape.iter().map(|&d| usize::try_from(d).map_or(Dim::Dynamic, Dim::Fixed)).collect();
    Ok(TensorSpec { name: name.to_owned(), dtype, shape })
}

/// The oxserve dtype of an ONNX Runtime element type, `None` for types with no protocol equivalent
/// (bfloat16, complex, float8, 4-bit and 2-bit integers).
pub(crate) fn dtype(ty: TensorElementType) -> Option<DType> {
    Some(match ty {
        TensorElementType::Bool => DType::Bool,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Uint16 => DType::U16,
        TensorElementType::Uint32 => DType::U32,
        TensorElementType::Uint64 => DType::U64,
        TensorElementType::Int8 => DType::I8,
        TensorElementType::Int16 => DType::I16,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Float16 => DType::F16,
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::String => DType::Bytes,
        _ => return None,
    })
}

/// The ONNX Runtime element type of an oxserve dtype.
pub(crate) fn element_type(dtype: DType) -> TensorElementType {
    match dtype {
        DType::Bool => TensorElementType::Bool,
        DType::U8 => TensorElementType::Uint8,
        DType::U16 => TensorElementType::Uint16,
        DType::U32 => TensorElementType::Uint32,
        DType::U64 => TensorElementType::Uint64,
        DType::I8 => TensorElementType::Int8,
        DType::I16 => TensorElementType::Int16,
        DType::I32 => TensorElementType::Int32,
        DType::I64 => TensorElementType::Int64,
        DType::F16 => TensorElementType::Float16,
        DType::F32 => TensorElementType::Float32,
        DType::F64 => TensorElementType::Float64,
        DType::Bytes => TensorElementType::String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_round_trip() {
        for d in DType::ALL {
            assert_eq!(dtype(element_type(d)), Some(d));
        }
        assert_eq!(dtype(TensorElementType::Bfloat16), None);
    }
}
