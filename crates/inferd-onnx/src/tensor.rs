//! Turning ONNX `TensorProto`s (initializers, attribute tensors) into inferd tensors, and the
//! small shape helpers every operator shares.

use crate::error::{fail, OpResult};
use crate::proto::{data_type as dt, TensorProto};
use inferd_core::{DataType, Tensor, TensorData};

/// The inferd type an ONNX element type is computed in (narrow types are widened).
pub fn datatype_of(elem_type: i32) -> Option<DataType> {
    Some(match elem_type {
        dt::FLOAT | dt::FLOAT16 => DataType::F32,
        dt::DOUBLE => DataType::F64,
        dt::INT64 | dt::UINT32 | dt::UINT64 => DataType::I64,
        dt::INT32 | dt::INT16 | dt::INT8 | dt::UINT16 | dt::UINT8 => DataType::I32,
        dt::BOOL => DataType::Bool,
        dt::STRING => DataType::Bytes,
        _ => return None,
    })
}

/// Element count from ONNX dims, refusing negative or overflowing shapes from the file.
fn shape_of(dims: &[i64]) -> OpResult<(Vec<usize>, usize)> {
    let mut shape = Vec::with_capacity(dims.len());
    let mut n = 1usize;
    for &d in dims {
        let Ok(d) = usize::try_from(d) else {
            fail!("tensor has a negative dimension {d}")
        };
        n = match n.checked_mul(d) {
            Some(n) => n,
            None => fail!("tensor shape {dims:?} is too large"),
        };
        shape.push(d);
    }
    Ok((shape, n))
}

/// Little-endian fixed-size elements from `raw_data`, checking the length first.
fn raw<const N: usize, T>(raw: &[u8], n: usize, f: impl Fn([u8; N]) -> T) -> OpResult<Vec<T>> {
    if raw.len() != n.saturating_mul(N) {
        fail!(
            "tensor raw data holds {} bytes where {n} elements of {N} bytes were expected",
            raw.len()
        );
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact gives N bytes")))
        .collect())
}

/// IEEE half to single precision (exact: every half is a float).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal half: normalise into a float exponent.
            let shift = frac.leading_zeros() - 21;
            let frac = (frac << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (frac << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// Checks that a typed field holds exactly `n` values.
fn exact<T>(v: Vec<T>, n: usize, what: &str) -> OpResult<Vec<T>> {
    if v.len() != n {
        fail!(
            "tensor holds {} {what} values where its shape needs {n}",
            v.len()
        );
    }
    Ok(v)
}

pub fn from_proto(t: &TensorProto) -> OpResult<Tensor> {
    if t.data_location == 1 {
        fail!(
            "tensor '{}' keeps its data in an external file, which is not supported",
            t.name
        );
    }
    let (shape, n) = shape_of(&t.dims)?;
    let has_raw = !t.raw_data.is_empty() || n == 0;
    let r = &t.raw_data;
    let data = match t.data_type {
        dt::FLOAT if has_raw && t.float_data.is_empty() => {
            TensorData::F32(raw(r, n, f32::from_le_bytes)?)
        }
        dt::FLOAT => TensorData::F32(exact(t.float_data.clone(), n, "float")?),
        dt::DOUBLE if has_raw && t.double_data.is_empty() => {
            TensorData::F64(raw(r, n, f64::from_le_bytes)?)
        }
        dt::DOUBLE => TensorData::F64(exact(t.double_data.clone(), n, "double")?),
        dt::FLOAT16 if has_raw && t.int32_data.is_empty() => {
            TensorData::F32(raw(r, n, |b| f16_to_f32(u16::from_le_bytes(b)))?)
        }
        dt::FLOAT16 => TensorData::F32(
            exact(t.int32_data.clone(), n, "float16")?
                .into_iter()
                .map(|v| f16_to_f32(v as u16))
                .collect(),
        ),
        dt::INT64 if has_raw && t.int64_data.is_empty() => {
            TensorData::I64(raw(r, n, i64::from_le_bytes)?)
        }
        dt::INT64 => TensorData::I64(exact(t.int64_data.clone(), n, "int64")?),
        dt::UINT64 | dt::UINT32 => {
            let v: Vec<u64> = if has_raw && t.uint64_data.is_empty() {
                if t.data_type == dt::UINT64 {
                    raw(r, n, u64::from_le_bytes)?
                } else {
                    raw(r, n, |b| u32::from_le_bytes(b) as u64)?
                }
            } else {
                exact(t.uint64_data.clone(), n, "unsigned")?
            };
            let mut out = Vec::with_capacity(v.len());
            for x in v {
                match i64::try_from(x) {
                    Ok(x) => out.push(x),
                    Err(_) => fail!("unsigned value {x} does not fit in int64"),
                }
            }
            TensorData::I64(out)
        }
        dt::INT32 if has_raw && t.int32_data.is_empty() => {
            TensorData::I32(raw(r, n, i32::from_le_bytes)?)
        }
        dt::INT16 if has_raw && t.int32_data.is_empty() => {
            TensorData::I32(raw(r, n, |b| i16::from_le_bytes(b) as i32)?)
        }
        dt::UINT16 if has_raw && t.int32_data.is_empty() => {
            TensorData::I32(raw(r, n, |b| u16::from_le_bytes(b) as i32)?)
        }
        dt::INT8 if has_raw && t.int32_data.is_empty() => {
            TensorData::I32(raw(r, n, |b: [u8; 1]| b[0] as i8 as i32)?)
        }
        dt::UINT8 if has_raw && t.int32_data.is_empty() => {
            TensorData::I32(raw(r, n, |b: [u8; 1]| b[0] as i32)?)
        }
        dt::INT32 | dt::INT16 | dt::UINT16 | dt::INT8 | dt::UINT8 => {
            TensorData::I32(exact(t.int32_data.clone(), n, "integer")?)
        }
        dt::BOOL if has_raw && t.int32_data.is_empty() => {
            TensorData::Bool(raw(r, n, |b: [u8; 1]| b[0] != 0)?)
        }
        dt::BOOL => TensorData::Bool(
            exact(t.int32_data.clone(), n, "bool")?
                .into_iter()
                .map(|v| v != 0)
                .collect(),
        ),
        dt::STRING => TensorData::Bytes(exact(t.string_data.clone(), n, "string")?),
        other => fail!("tensor '{}' has unsupported element type {other}", t.name),
    };
    Ok(Tensor::new(shape, data)?)
}

/// Views a tensor as a matrix: `[N, C]` as is, `[C]` as one row, higher ranks flattened
/// after the first axis (as the ONNX-ML operators read their `X`).
pub fn as_matrix(t: &Tensor) -> (usize, usize) {
    match t.shape() {
        [] => (1, 1),
        [c] => (1, *c),
        [n, rest @ ..] => (*n, rest.iter().product()),
    }
}

/// The tensor's elements as f32, or the operator's error.
pub fn f32s(t: &Tensor) -> OpResult<std::borrow::Cow<'_, [f32]>> {
    Ok(t.to_f32()?)
}

pub fn f64s(t: &Tensor) -> OpResult<std::borrow::Cow<'_, [f64]>> {
    Ok(t.to_f64()?)
}

/// The elements as i64 (integer and bool tensors; floats are refused, not truncated).
pub fn i64s(t: &Tensor) -> OpResult<Vec<i64>> {
    Ok(match t.data() {
        TensorData::I64(v) => v.clone(),
        TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as i64).collect(),
        other => fail!(
            "expected an integer tensor, got {}",
            other.datatype().as_str()
        ),
    })
}

pub fn f32_tensor(shape: Vec<usize>, data: Vec<f32>) -> OpResult<Tensor> {
    Ok(Tensor::new(shape, TensorData::F32(data))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_decode_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn raw_data_length_is_checked() {
        let t = TensorProto {
            dims: vec![3],
            data_type: dt::FLOAT,
            raw_data: vec![0; 8],
            ..Default::default()
        };
        assert!(from_proto(&t).unwrap_err().0.contains("8 bytes"));
        let t = TensorProto {
            dims: vec![-1],
            data_type: dt::FLOAT,
            ..Default::default()
        };
        assert!(from_proto(&t).is_err());
        let t = TensorProto {
            dims: vec![i64::MAX, 4],
            data_type: dt::FLOAT,
            ..Default::default()
        };
        assert!(from_proto(&t).is_err());
    }
}
