//! Reads a model's declared inputs and outputs from its ONNX graph.

use oxserve_backend::{DType, Dim, Signature, TensorSpec};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{ModelProto, ValueInfoProto};

/// The signature declared by the graph. Graph inputs that are also initializers (older exporters list
/// weights as inputs) are not model inputs and are left out.
pub(crate) fn from_proto(proto: &ModelProto) -> Result<Signature, String> {
    let graph = proto.graph.as_ref().ok_or("the file holds no ONNX graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
        .map(spec)
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph.output.iter().map(spec).collect::<Result<Vec<_>, _>>()?;
    if inputs.is_empty() {
        return Err("the model declares no inputs".into());
    }
    Ok(Signature { inputs, outputs })
}

fn spec(value: &ValueInfoProto) -> Result<TensorSpec, String> {
    let Some(TypeValue::TensorType(tensor)) = value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!(
            "`{}` is not a tensor; only tensor inputs and outputs are served",
            value.name
        ));
    };
    let dtype = dtype(tensor.elem_type).ok_or_else(|| {
        format!("`{}` has an unsupported element type ({})", value.name, tensor.elem_type)
    })?;
    let shape = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(DimValue::DimValue(n)) if n >= 0 => {
                        usize::try_from(n).map_or(Dim::Dynamic, Dim::Fixed)
                    }
                    _ => Dim::Dynamic,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TensorSpec { name: value.name.clone(), dtype, shape })
}

fn dtype(elem_type: i32) -> Option<DType> {
    Some(match DataType::try_from(elem_type).ok()? {
        DataType::Float => DType::F32,
        DataType::Uint8 => DType::U8,
        DataType::Int8 => DType::I8,
        DataType::Uint16 => DType::U16,
        DataType::Int16 => DType::I16,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::String => DType::Bytes,
        DataType::Bool => DType::Bool,
        DataType::Float16 => DType::F16,
        DataType::Double => DType::F64,
        DataType::Uint32 => DType::U32,
        DataType::Uint64 => DType::U64,
        _ => return None,
    })
}
