//! JSON ⇄ tensor conversions: the built-in tensor handler's nested lists and the Open Inference
//! Protocol's flat `data`. They live with the tensor types because both the handlers and the server
//! speak them, and neither should depend on the other (nor on the serving core) for it.
//!
//! Parsing checks that nested lists are rectangular and that every element fits the model's dtype
//! (integers in range, booleans as booleans, `BYTES` as strings). Writing goes straight from the flat
//! buffer to the output through [`NestedJson`] / [`FlatJson`], without building a JSON tree, and
//! writes each float in its own precision (an `f32` prints as `0.1`, not `0.10000000149011612`).

use crate::{DType, Tensor, TensorData, element_count};
use half::f16;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;

/// The shape of a nested JSON list: the length at each depth, following first elements.
fn nested_shape(value: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut cursor = value;
    while let Value::Array(items) = cursor {
        shape.push(items.len());
        match items.first() {
            Some(first) => cursor = first,
            None => break,
        }
    }
    shape
}

/// Collects the leaves of a nested list, checking it is rectangular with the given shape.
fn leaves<'a>(value: &'a Value, shape: &[usize], out: &mut Vec<&'a Value>) -> Result<(), String> {
    match (shape.split_first(), value) {
        (None, Value::Array(_)) => {
            Err("the nested lists are deeper in some places than others".into())
        }
        (None, leaf) => {
            out.push(leaf);
            Ok(())
        }
        (Some((&n, rest)), Value::Array(items)) => {
            if items.len() != n {
                return Err(format!(
                    "ragged nested lists: found a list of {} where {n} was expected",
                    items.len()
                ));
            }
            items.iter().try_for_each(|item| leaves(item, rest, out))
        }
        (Some(_), _) => Err("the nested lists are deeper in some places than others".into()),
    }
}

/// Parses a nested JSON list into a tensor of `dtype`, taking the shape from the nesting.
///
/// # Errors
/// A ragged list, or an element that does not fit `dtype`.
pub fn tensor_from_nested(value: &Value, dtype: DType) -> Result<Tensor, String> {
    let shape = nested_shape(value);
    let mut items = Vec::new();
    leaves(value, &shape, &mut items)?;
    let data = elements(&items, dtype)?;
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Parses OIP `data` (flat, or nested in any way) given its declared shape.
///
/// # Errors
/// When the element count differs from the shape's, or an element does not fit `dtype`.
pub fn tensor_from_shaped(
    value: &Value,
    dtype: DType,
    shape: Vec<usize>,
) -> Result<Tensor, String> {
    let mut items = Vec::new();
    flatten_any(value, &mut items, 0)?;
    let expected = element_count(&shape).ok_or("shape is too large")?;
    if items.len() != expected {
        return Err(format!(
            "shape {shape:?} needs {expected} elements but data has {}",
            items.len()
        ));
    }
    let data = elements(&items, dtype)?;
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// How deeply OIP `data` may nest: Triton's limit, which its tests check by name. A tensor nests
/// once per dimension; deeper lists are refused while they are walked.
pub const MAX_DEPTH: usize = 100;

fn flatten_any<'a>(value: &'a Value, out: &mut Vec<&'a Value>, depth: usize) -> Result<(), String> {
    match value {
        Value::Array(_) if depth == MAX_DEPTH => {
            Err(format!("JSON nesting depth exceeds maximum allowed limit ({MAX_DEPTH})"))
        }
        Value::Array(items) => items.iter().try_for_each(|v| flatten_any(v, out, depth + 1)),
        leaf => {
            out.push(leaf);
            Ok(())
        }
    }
}

fn elements(items: &[&Value], dtype: DType) -> Result<TensorData, String> {
    fn each<T>(
        items: &[&Value],
        f: impl Fn(&Value) -> Option<T>,
        what: &str,
    ) -> Result<Vec<T>, String> {
        items
            .iter()
            .enumerate()
            .map(|(i, v)| f(v).ok_or_else(|| format!("element {i} ({v}) is not {what}")))
            .collect()
    }
    fn int<T: TryFrom<i64> + TryFrom<u64>>(v: &Value) -> Option<T> {
        let n = v.as_number()?;
        if let Some(i) = n.as_i64() {
            return T::try_from(i).ok();
        }
        if let Some(u) = n.as_u64() {
            return T::try_from(u).ok();
        }
        // 3.0 is accepted as the integer 3; 3.5 is not.
        let f = n.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| T::try_from(f as i64).ok()).flatten()
    }
    let float = |v: &Value| v.as_f64();
    Ok(match dtype {
        DType::Bool => TensorData::Bool(each(items, Value::as_bool, "a boolean")?),
        DType::U8 => TensorData::U8(each(items, int::<u8>, "a UINT8")?),
        DType::U16 => TensorData::U16(each(items, int::<u16>, "a UINT16")?),
        DType::U32 => TensorData::U32(each(items, int::<u32>, "a UINT32")?),
        DType::U64 => TensorData::U64(each(items, int::<u64>, "a UINT64")?),
        DType::I8 => TensorData::I8(each(items, int::<i8>, "an INT8")?),
        DType::I16 => TensorData::I16(each(items, int::<i16>, "an INT16")?),
        DType::I32 => TensorData::I32(each(items, int::<i32>, "an INT32")?),
        DType::I64 => TensorData::I64(each(items, int::<i64>, "an INT64")?),
        DType::F16 => TensorData::F16(each(items, |v| float(v).map(f16::from_f64), "a number")?),
        #[allow(clippy::cast_possible_truncation)]
        DType::F32 => TensorData::F32(each(items, |v| float(v).map(|f| f as f32), "a number")?),
        DType::F64 => TensorData::F64(each(items, float, "a number")?),
        DType::Bytes => TensorData::Bytes(each(
            items,
            |v| v.as_str().map(|s| s.as_bytes().to_vec()),
            "a string",
        )?),
    })
}

/// Writes a tensor (or rows of one) as nested JSON lists following its shape.
#[derive(Debug, Clone, Copy)]
pub struct NestedJson<'a> {
    shape: &'a [usize],
    data: &'a TensorData,
    offset: usize,
}

impl<'a> NestedJson<'a> {
    /// The whole tensor.
    pub fn new(tensor: &'a Tensor) -> Self {
        Self { shape: tensor.shape(), data: tensor.data(), offset: 0 }
    }

    /// One row of the first dimension, without that dimension: row `i` of a `[n, 10]` tensor is a
    /// list of 10.
    pub fn row(tensor: &'a Tensor, i: usize) -> Self {
        let shape = tensor.shape().get(1..).unwrap_or(&[]);
        let row_len = element_count(shape).unwrap_or(0);
        Self { shape, data: tensor.data(), offset: i * row_len }
    }
}

impl Serialize for NestedJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some((&n, rest)) = self.shape.split_first() else {
            return Element { data: self.data, index: self.offset }.serialize(serializer);
        };
        let stride = element_count(rest).unwrap_or(0);
        let mut seq = serializer.serialize_seq(Some(n))?;
        for i in 0..n {
            seq.serialize_element(&Self {
                shape: rest,
                data: self.data,
                offset: self.offset + i * stride,
            })?;
        }
        seq.end()
    }
}

/// Writes a tensor's elements as one flat JSON list (OIP's row-major `data`).
#[derive(Debug, Clone, Copy)]
pub struct FlatJson<'a>(pub &'a TensorData);

impl Serialize for FlatJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for index in 0..self.0.len() {
            seq.serialize_element(&Element { data: self.0, index })?;
        }
        seq.end()
    }
}

struct Element<'a> {
    data: &'a TensorData,
    index: usize,
}

impl Serialize for Element<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.index;
        match self.data {
            TensorData::Bool(v) => s.serialize_bool(v[i]),
            TensorData::U8(v) => s.serialize_u8(v[i]),
            TensorData::U16(v) => s.serialize_u16(v[i]),
            TensorData::U32(v) => s.serialize_u32(v[i]),
            TensorData::U64(v) => s.serialize_u64(v[i]),
            TensorData::I8(v) => s.serialize_i8(v[i]),
            TensorData::I16(v) => s.serialize_i16(v[i]),
            TensorData::I32(v) => s.serialize_i32(v[i]),
            TensorData::I64(v) => s.serialize_i64(v[i]),
            TensorData::F16(v) => s.serialize_f32(v[i].to_f32()),
            TensorData::F32(v) => s.serialize_f32(v[i]),
            TensorData::F64(v) => s.serialize_f64(v[i]),
            TensorData::Bytes(v) => s.serialize_str(&String::from_utf8_lossy(&v[i])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_lists_keep_their_shape() {
        let t = tensor_from_nested(&json!([[1, 2, 3], [4, 5, 6]]), DType::F32).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(
            serde_json::to_string(&NestedJson::new(&t)).unwrap(),
            "[[1.0,2.0,3.0],[4.0,5.0,6.0]]"
        );
        assert_eq!(serde_json::to_string(&NestedJson::row(&t, 1)).unwrap(), "[4.0,5.0,6.0]");
        assert_eq!(
            serde_json::to_string(&FlatJson(t.data())).unwrap(),
            "[1.0,2.0,3.0,4.0,5.0,6.0]"
        );
    }

    #[test]
    fn floats_print_in_their_own_precision() {
        let t = tensor_from_nested(&json!([0.1]), DType::F32).unwrap();
        assert_eq!(serde_json::to_string(&NestedJson::new(&t)).unwrap(), "[0.1]");
    }

    #[test]
    fn ragged_and_mistyped_input_is_refused() {
        assert!(tensor_from_nested(&json!([[1, 2], [3]]), DType::F32).is_err());
        assert!(tensor_from_nested(&json!([[1, 2], 3]), DType::F32).is_err());
        assert!(tensor_from_nested(&json!([1, [2]]), DType::F32).is_err());
        assert!(tensor_from_nested(&json!(["a"]), DType::F32).is_err());
        assert!(tensor_from_nested(&json!([300]), DType::U8).is_err());
        assert!(tensor_from_nested(&json!([-1]), DType::U32).is_err());
        assert!(tensor_from_nested(&json!([1.5]), DType::I64).is_err());
        assert!(tensor_from_nested(&json!([1]), DType::Bool).is_err());
    }

    #[test]
    fn every_dtype_parses_and_prints() {
        let cases = [
            (DType::Bool, json!([true, false]), "[true,false]"),
            (DType::U8, json!([0, 255]), "[0,255]"),
            (DType::I8, json!([-128, 127]), "[-128,127]"),
            (DType::I64, json!([3.0, -4]), "[3,-4]"),
            (DType::U64, json!([18446744073709551615u64]), "[18446744073709551615]"),
            (DType::F16, json!([0.5, 2]), "[0.5,2.0]"),
            (DType::F64, json!([0.1]), "[0.1]"),
            (DType::Bytes, json!(["héllo"]), "[\"héllo\"]"),
        ];
        for (dtype, input, printed) in cases {
            let t = tensor_from_nested(&input, dtype).unwrap();
            assert_eq!(t.dtype(), dtype);
            assert_eq!(serde_json::to_string(&NestedJson::new(&t)).unwrap(), printed, "{dtype}");
        }
    }

    #[test]
    fn shaped_data_may_be_flat_or_nested() {
        let flat = tensor_from_shaped(&json!([1, 2, 3, 4]), DType::I32, vec![2, 2]).unwrap();
        let nested = tensor_from_shaped(&json!([[1, 2], [3, 4]]), DType::I32, vec![2, 2]).unwrap();
        assert_eq!(flat, nested);
        assert!(tensor_from_shaped(&json!([1, 2, 3]), DType::I32, vec![2, 2]).is_err());
    }

    #[test]
    fn data_nested_past_the_limit_is_refused() {
        let nested = |depth: usize| {
            let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            serde_json::from_str::<Value>(&text).unwrap()
        };
        assert!(tensor_from_shaped(&nested(MAX_DEPTH), DType::I64, vec![1]).is_ok());
        let e = tensor_from_shaped(&nested(MAX_DEPTH + 1), DType::I64, vec![1]).unwrap_err();
        assert!(e.contains("exceeds maximum allowed limit (100)"), "{e}");
    }

    #[test]
    fn scalars_are_rank_zero() {
        let t = tensor_from_nested(&json!(7), DType::I64).unwrap();
        assert_eq!(t.shape(), &[] as &[usize]);
        assert_eq!(serde_json::to_string(&NestedJson::new(&t)).unwrap(), "7");
    }
}
