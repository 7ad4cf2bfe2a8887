//! Dense, row-major tensors of the element types the Open Inference Protocol knows.

use half::f16;
use std::fmt;

/// Element type of a tensor. Names follow the Open Inference Protocol (`FP32`, `INT64`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `BOOL`
    Bool,
    /// `UINT8`
    U8,
    /// `UINT16`
    U16,
    /// `UINT32`
    U32,
    /// `UINT64`
    U64,
    /// `INT8`
    I8,
    /// `INT16`
    I16,
    /// `INT32`
    I32,
    /// `INT64`
    I64,
    /// `FP16`
    F16,
    /// `FP32`
    F32,
    /// `FP64`
    F64,
    /// `BYTES`: each element is a byte string (ONNX `string`).
    Bytes,
}

impl DType {
    /// Every dtype, for parsing and tests.
    pub const ALL: [Self; 13] = [
        Self::Bool,
        Self::U8,
        Self::U16,
        Self::U32,
        Self::U64,
        Self::I8,
        Self::I16,
        Self::I32,
        Self::I64,
        Self::F16,
        Self::F32,
        Self::F64,
        Self::Bytes,
    ];

    /// The Open Inference Protocol datatype name.
    pub fn oip_name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::U8 => "UINT8",
            Self::U16 => "UINT16",
            Self::U32 => "UINT32",
            Self::U64 => "UINT64",
            Self::I8 => "INT8",
            Self::I16 => "INT16",
            Self::I32 => "INT32",
            Self::I64 => "INT64",
            Self::F16 => "FP16",
            Self::F32 => "FP32",
            Self::F64 => "FP64",
            Self::Bytes => "BYTES",
        }
    }

    /// Parses an Open Inference Protocol datatype name.
    pub fn from_oip_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.oip_name() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.oip_name())
    }
}

/// Typed, flat, row-major element storage.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

/// Applies `$body` to the inner vector of any [`TensorData`] variant, binding it to `$v`.
macro_rules! each_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::F16($v) => $body,
            TensorData::F32($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// Like [`each_variant`], but rebuilds the same variant from the body's vector.
macro_rules! map_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::U8($v) => TensorData::U8($body),
            TensorData::U16($v) => TensorData::U16($body),
            TensorData::U32($v) => TensorData::U32($body),
            TensorData::U64($v) => TensorData::U64($body),
            TensorData::I8($v) => TensorData::I8($body),
            TensorData::I16($v) => TensorData::I16($body),
            TensorData::I32($v) => TensorData::I32($body),
            TensorData::I64($v) => TensorData::I64($body),
            TensorData::F16($v) => TensorData::F16($body),
            TensorData::F32($v) => TensorData::F32($body),
            TensorData::F64($v) => TensorData::F64($body),
            TensorData::Bytes($v) => TensorData::Bytes($body),
        }
    };
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Self::Bool(_) => DType::Bool,
            Self::U8(_) => DType::U8,
            Self::U16(_) => DType::U16,
            Self::U32(_) => DType::U32,
            Self::U64(_) => DType::U64,
            Self::I8(_) => DType::I8,
            Self::I16(_) => DType::I16,
            Self::I32(_) => DType::I32,
            Self::I64(_) => DType::I64,
            Self::F16(_) => DType::F16,
            Self::F32(_) => DType::F32,
            Self::F64(_) => DType::F64,
            Self::Bytes(_) => DType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each_variant!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty vector of the given type with room for `capacity` elements.
    pub fn with_capacity(dtype: DType, capacity: usize) -> Self {
        match dtype {
            DType::Bool => Self::Bool(Vec::with_capacity(capacity)),
            DType::U8 => Self::U8(Vec::with_capacity(capacity)),
            DType::U16 => Self::U16(Vec::with_capacity(capacity)),
            DType::U32 => Self::U32(Vec::with_capacity(capacity)),
            DType::U64 => Self::U64(Vec::with_capacity(capacity)),
            DType::I8 => Self::I8(Vec::with_capacity(capacity)),
            DType::I16 => Self::I16(Vec::with_capacity(capacity)),
            DType::I32 => Self::I32(Vec::with_capacity(capacity)),
            DType::I64 => Self::I64(Vec::with_capacity(capacity)),
            DType::F16 => Self::F16(Vec::with_capacity(capacity)),
            DType::F32 => Self::F32(Vec::with_capacity(capacity)),
            DType::F64 => Self::F64(Vec::with_capacity(capacity)),
            DType::Bytes => Self::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// Appends `other`'s elements; `false` (and nothing appended) when the dtypes differ.
    fn extend_from(&mut self, other: &Self) -> bool {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => a.extend_from_slice(b),
            (Self::U8(a), Self::U8(b)) => a.extend_from_slice(b),
            (Self::U16(a), Self::U16(b)) => a.extend_from_slice(b),
            (Self::U32(a), Self::U32(b)) => a.extend_from_slice(b),
            (Self::U64(a), Self::U64(b)) => a.extend_from_slice(b),
            (Self::I8(a), Self::I8(b)) => a.extend_from_slice(b),
            (Self::I16(a), Self::I16(b)) => a.extend_from_slice(b),
            (Self::I32(a), Self::I32(b)) => a.extend_from_slice(b),
            (Self::I64(a), Self::I64(b)) => a.extend_from_slice(b),
            (Self::F16(a), Self::F16(b)) => a.extend_from_slice(b),
            (Self::F32(a), Self::F32(b)) => a.extend_from_slice(b),
            (Self::F64(a), Self::F64(b)) => a.extend_from_slice(b),
            (Self::Bytes(a), Self::Bytes(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// The elements in `range`, as a new vector of the same type.
    fn slice(&self, range: std::ops::Range<usize>) -> Self {
        map_variant!(self, v => v[range].to_vec())
    }
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that the element count matches the shape.
    ///
    /// # Errors
    /// When `data.len()` is not the product of `shape`.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self, crate::BackendError> {
        let expected = element_count(&shape);
        if expected != Some(data.len()) {
            return Err(crate::BackendError::Output(format!(
                "shape {shape:?} needs {} elements, got {}",
                expected.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The elements, flat and row-major.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Splits the tensor into its shape and elements.
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }

    /// Size of the first dimension (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Stacks tensors along dimension 0. All must share dtype and the trailing dimensions.
    ///
    /// # Errors
    /// When the list is empty, or dtypes or trailing dimensions differ.
    pub fn concat_rows(parts: &[&Self]) -> Result<Self, crate::BackendError> {
        let first = parts.first().ok_or_else(|| mismatch("nothing to concatenate"))?;
        if first.shape.is_empty() {
            return Err(mismatch("cannot concatenate scalars"));
        }
        let tail = &first.shape[1..];
        let total: usize = parts.iter().map(|t| t.data.len()).sum();
        let mut data = TensorData::with_capacity(first.dtype(), total);
        let mut rows = 0;
        for part in parts {
            if part.shape.get(1..) != Some(tail) {
                return Err(mismatch(format!(
                    "cannot stack shape {:?} onto shape {:?}",
                    part.shape, first.shape
                )));
            }
            if !data.extend_from(&part.data) {
                return Err(mismatch(format!(
                    "cannot stack {} onto {}",
                    part.dtype(),
                    first.dtype()
                )));
            }
            rows += part.shape[0];
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Ok(Self { shape, data })
    }

    /// Splits along dimension 0 into consecutive pieces of `counts[i]` rows.
    ///
    /// # Errors
    /// When the counts do not add up to the number of rows.
    pub fn split_rows(&self, counts: &[usize]) -> Result<Vec<Self>, crate::BackendError> {
        let rows = self.shape.first().copied().ok_or_else(|| mismatch("cannot split a scalar"))?;
        if counts.iter().sum::<usize>() != rows {
            return Err(mismatch(format!(
                "output has {rows} rows but the batch had {}",
                counts.iter().sum::<usize>()
            )));
        }
        let row_len = self.data.len().checked_div(rows).unwrap_or(0);
        let mut start = 0;
        let mut pieces = Vec::with_capacity(counts.len());
        for &n in counts {
            let mut shape = self.shape.clone();
            shape[0] = n;
            let data = self.data.slice(start * row_len..(start + n) * row_len);
            pieces.push(Self { shape, data });
            start += n;
        }
        Ok(pieces)
    }
}

fn mismatch(reason: impl Into<String>) -> crate::BackendError {
    crate::BackendError::Output(reason.into())
}

/// Product of the dimensions, or `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor::new(shape, TensorData::F32(data)).unwrap()
    }

    #[test]
    fn new_checks_element_count() {
        assert!(Tensor::new(vec![2, 3], TensorData::F32(vec![0.0; 5])).is_err());
        assert!(Tensor::new(vec![usize::MAX, 3], TensorData::F32(vec![])).is_err());
        assert!(Tensor::new(vec![], TensorData::I64(vec![7])).is_ok());
    }

    #[test]
    fn concat_then_split_round_trips() {
        let a = f32s(vec![1, 2], vec![1.0, 2.0]);
        let b = f32s(vec![2, 2], vec![3.0, 4.0, 5.0, 6.0]);
        let stacked = Tensor::concat_rows(&[&a, &b]).unwrap();
        assert_eq!(stacked.shape(), &[3, 2]);
        let parts = stacked.split_rows(&[1, 2]).unwrap();
        assert_eq!(parts, vec![a, b]);
    }

    #[test]
    fn concat_refuses_mismatches() {
        let a = f32s(vec![1, 2], vec![1.0, 2.0]);
        let b = f32s(vec![1, 3], vec![1.0, 2.0, 3.0]);
        assert!(Tensor::concat_rows(&[&a, &b]).is_err());
        let c = Tensor::new(vec![1, 2], TensorData::I64(vec![1, 2])).unwrap();
        assert!(Tensor::concat_rows(&[&a, &c]).is_err());
        assert!(Tensor::concat_rows(&[]).is_err());
    }

    #[test]
    fn split_refuses_wrong_counts() {
        let a = f32s(vec![2, 1], vec![1.0, 2.0]);
        assert!(a.split_rows(&[1]).is_err());
        assert!(a.split_rows(&[1, 1, 1]).is_err());
    }

    #[test]
    fn oip_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_oip_name(d.oip_name()), Some(d));
        }
        assert_eq!(DType::from_oip_name("FLOAT"), None);
    }
}
