//! Tensors as raw bytes: the layout shared by OIP gRPC's `raw_input_contents`/`raw_output_contents`
//! and the REST binary tensor extension. Elements are row-major and little-endian, BOOL is one byte
//! (0 or 1), and each BYTES element is a 4-byte little-endian length followed by its bytes.
//!
//! Raw bytes avoid the number formatting and parsing that dominate JSON's cost for large tensors:
//! encoding is a copy, decoding is a bounds-checked copy.

use half::f16;
use oxserve_backend::{DType, TensorData};

/// Bytes one element takes, `None` for BYTES (variable length).
pub(crate) fn element_size(dtype: DType) -> Option<usize> {
    Some(match dtype {
        DType::Bool | DType::U8 | DType::I8 => 1,
        DType::U16 | DType::I16 | DType::F16 => 2,
        DType::U32 | DType::I32 | DType::F32 => 4,
        DType::U64 | DType::I64 | DType::F64 => 8,
        DType::Bytes => return None,
    })
}

/// How many elements of `dtype` `raw` holds, `None` when it is not a whole number of them (a
/// fixed-size element cut short, or a BYTES length prefix that runs past the end).
pub(crate) fn element_count(dtype: DType, raw: &[u8]) -> Option<usize> {
    if let Some(size) = element_size(dtype) {
        return raw.len().is_multiple_of(size).then_some(raw.len() / size);
    }
    let (mut rest, mut count) = (raw, 0usize);
    while !rest.is_empty() {
        let (prefix, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*prefix)).ok()?;
        rest = tail.get(len..)?;
        count += 1;
    }
    Some(count)
}

/// Appends `data`'s raw encoding to `out`.
pub(crate) fn encode_into(data: &TensorData, out: &mut Vec<u8>) {
    macro_rules! le {
        ($v:expr) => {{
            out.reserve(std::mem::size_of_val($v.as_slice()));
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::U8(v) => out.extend_from_slice(v),
        TensorData::I8(v) => out.extend(v.iter().map(|x| x.to_le_bytes()[0])),
        TensorData::U16(v) => le!(v),
        TensorData::U32(v) => le!(v),
        TensorData::U64(v) => le!(v),
        TensorData::I16(v) => le!(v),
        TensorData::I32(v) => le!(v),
        TensorData::I64(v) => le!(v),
        TensorData::F16(v) => le!(v),
        TensorData::F32(v) => le!(v),
        TensorData::F64(v) => le!(v),
        TensorData::Bytes(v) => {
            for item in v {
                // An element over 4 GiB cannot be framed; max_response_size stops far earlier.
                let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(item);
            }
        }
    }
}

/// `data`'s raw encoding.
pub(crate) fn encode(data: &TensorData) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(data, &mut out);
    out
}

/// Decodes `count` elements of `dtype` from exactly `bytes`.
///
/// # Errors
/// When the byte count does not fit `count` elements, a BOOL byte is not 0 or 1, or a BYTES element's
/// length runs past the end.
pub(crate) fn decode(dtype: DType, count: usize, bytes: &[u8]) -> Result<TensorData, String> {
    if let Some(size) = element_size(dtype) {
        let expected = count.checked_mul(size).ok_or("the shape is too large")?;
        if bytes.len() != expected {
            return Err(format!(
                "{count} {dtype} elements take {expected} bytes, but {} bytes were sent",
                bytes.len()
            ));
        }
    }
    macro_rules! le {
        ($t:ty, $n:literal) => {
            bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n])))
                .collect()
        };
    }
    Ok(match dtype {
        DType::Bool => TensorData::Bool(
            bytes
                .iter()
                .map(|&b| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    other => Err(format!("a BOOL element must be 0 or 1, got {other}")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::U8 => TensorData::U8(bytes.to_vec()),
        DType::I8 => TensorData::I8(le!(i8, 1)),
        DType::U16 => TensorData::U16(le!(u16, 2)),
        DType::U32 => TensorData::U32(le!(u32, 4)),
        DType::U64 => TensorData::U64(le!(u64, 8)),
        DType::I16 => TensorData::I16(le!(i16, 2)),
        DType::I32 => TensorData::I32(le!(i32, 4)),
        DType::I64 => TensorData::I64(le!(i64, 8)),
        DType::F16 => TensorData::F16(le!(f16, 2)),
        DType::F32 => TensorData::F32(le!(f32, 4)),
        DType::F64 => TensorData::F64(le!(f64, 8)),
        DType::Bytes => TensorData::Bytes(decode_bytes(count, bytes)?),
    })
}

fn decode_bytes(count: usize, mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    // Each element needs at least its 4-byte length, which bounds the allocation by the input.
    let mut items = Vec::with_capacity(count.min(bytes.len() / 4));
    for i in 0..count {
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(format!("BYTES element {i} has no 4-byte length: the data ends early"));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(format!(
                "BYTES element {i} says it has {len} bytes but only {} remain",
                rest.len()
            ));
        }
        items.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    if !bytes.is_empty() {
        return Err(format!(
            "{} bytes are left over after the {count} BYTES elements the shape holds",
            bytes.len()
        ));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips() {
        let samples = [
            TensorData::Bool(vec![true, false, true]),
            TensorData::U8(vec![0, 7, 255]),
            TensorData::I8(vec![-128, 0, 127]),
            TensorData::U16(vec![1, 65535, 3]),
            TensorData::I16(vec![-3, 0, 300]),
            TensorData::U32(vec![1, u32::MAX, 9]),
            TensorData::I32(vec![-1, i32::MIN, 5]),
            TensorData::U64(vec![u64::MAX, 0, 2]),
            TensorData::I64(vec![i64::MIN, 4, -4]),
            TensorData::F16(vec![f16::from_f32(0.5), f16::from_f32(-2.0), f16::from_f32(1e4)]),
            TensorData::F32(vec![1.5, -0.25, f32::MAX]),
            TensorData::F64(vec![1e300, -0.1, 0.0]),
            TensorData::Bytes(vec![b"ab".to_vec(), Vec::new(), b"xyz".to_vec()]),
        ];
        for data in samples {
            let bytes = encode(&data);
            assert_eq!(decode(data.dtype(), 3, &bytes).unwrap(), data);
        }
    }

    #[test]
    fn little_endian_and_length_prefixed() {
        assert_eq!(encode(&TensorData::F32(vec![1.0])), 1.0f32.to_le_bytes());
        assert_eq!(encode(&TensorData::Bytes(vec![b"hi".to_vec()])), [2, 0, 0, 0, b'h', b'i']);
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(decode(DType::F32, 2, &[0; 7]).unwrap_err().contains("8 bytes"));
        assert!(decode(DType::Bool, 1, &[2]).is_err());
        assert!(decode(DType::Bytes, 1, &[5, 0, 0, 0, b'a']).unwrap_err().contains("remain"));
        assert!(decode(DType::Bytes, 2, &[0, 0, 0, 0]).unwrap_err().contains("ends early"));
        assert!(decode(DType::Bytes, 1, &[0, 0, 0, 0, 9]).unwrap_err().contains("left over"));
        assert!(decode(DType::I64, usize::MAX, &[]).is_err());
    }

    #[test]
    fn elements_are_counted_from_the_bytes() {
        assert_eq!(element_count(DType::F32, &[0; 8]), Some(2));
        assert_eq!(element_count(DType::F32, &[0; 7]), None);
        let two = encode(&TensorData::Bytes(vec![b"ab".to_vec(), Vec::new()]));
        assert_eq!(element_count(DType::Bytes, &two), Some(2));
        assert_eq!(element_count(DType::Bytes, &two[..two.len() - 1]), None);
        assert_eq!(element_count(DType::Bytes, &[]), Some(0));
    }
}
