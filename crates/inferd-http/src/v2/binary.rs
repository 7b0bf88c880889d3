//! The binary tensor data extension (Triton): raw little-endian tensors after the JSON header,
//! sized by `binary_data_size`, with `Inference-Header-Content-Length` giving the JSON's length.
//!
//! Every length the client states is checked against the bytes actually present and against
//! what the declared shape and datatype need; a mismatch either way is a 400.

use half::{bf16, f16};
use inferd_core::{DataType, TensorData};

use crate::error::ApiError;

/// The header that separates the JSON part of a body from its binary part.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The binary part of a request, handed out to inputs in order.
pub struct Blobs<'a> {
    rest: &'a [u8],
}

impl<'a> Blobs<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next `size` bytes, claimed by `what`.
    pub fn take(&mut self, size: usize, what: &str) -> Result<&'a [u8], ApiError> {
        if size > self.rest.len() {
            return Err(ApiError::bad_request(format!(
                "{what} claims {size} bytes of binary data but only {} remain in the body \
                 (check binary_data_size and the Inference-Header-Content-Length header)",
                self.rest.len()
            )));
        }
        let (taken, rest) = self.rest.split_at(size);
        self.rest = rest;
        Ok(taken)
    }

    /// Refuses bytes no input claimed: a body whose sizes do not add up is malformed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "{} bytes of binary data after the JSON header are not claimed by any input",
                self.rest.len()
            )))
        }
    }
}

/// Decodes `elements` elements of `datatype` from raw bytes into the core type.
pub fn decode(
    bytes: &[u8],
    datatype: DataType,
    elements: usize,
    what: &str,
) -> Result<TensorData, ApiError> {
    let Some(size) = datatype.size() else {
        return decode_bytes(bytes, elements, what);
    };
    // `elements` is already capped, so this cannot overflow.
    let needed = elements * size;
    if bytes.len() != needed {
        return Err(ApiError::bad_request(format!(
            "{what} has {} bytes of binary data but {elements} {} elements need {needed}",
            bytes.len(),
            datatype.as_str()
        )));
    }
    fn le<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        bytes.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
    }
    use DataType::*;
    Ok(match datatype {
        Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        U8 => TensorData::I32(bytes.iter().map(|&b| i32::from(b)).collect()),
        I8 => TensorData::I32(bytes.iter().map(|&b| i32::from(b as i8)).collect()),
        U16 => TensorData::I32(
            le::<2>(bytes)
                .map(|a| i32::from(u16::from_le_bytes(a)))
                .collect(),
        ),
        I16 => TensorData::I32(
            le::<2>(bytes)
                .map(|a| i32::from(i16::from_le_bytes(a)))
                .collect(),
        ),
        I32 => TensorData::I32(le::<4>(bytes).map(i32::from_le_bytes).collect()),
        U32 => TensorData::I64(
            le::<4>(bytes)
                .map(|a| i64::from(u32::from_le_bytes(a)))
                .collect(),
        ),
        I64 => TensorData::I64(le::<8>(bytes).map(i64::from_le_bytes).collect()),
        U64 => {
            let values: Result<Vec<i64>, _> = le::<8>(bytes)
                .map(|a| i64::try_from(u64::from_le_bytes(a)))
                .collect();
            TensorData::I64(values.map_err(|_| {
                ApiError::bad_request(format!("{what} has a UINT64 value above {}", i64::MAX))
            })?)
        }
        F16 => TensorData::F32(
            le::<2>(bytes)
                .map(|a| f16::from_le_bytes(a).to_f32())
                .collect(),
        ),
        BF16 => TensorData::F32(
            le::<2>(bytes)
                .map(|a| bf16::from_le_bytes(a).to_f32())
                .collect(),
        ),
        F32 => TensorData::F32(le::<4>(bytes).map(f32::from_le_bytes).collect()),
        F64 => TensorData::F64(le::<8>(bytes).map(f64::from_le_bytes).collect()),
        Bytes => unreachable!("BYTES has no fixed size"),
    })
}

/// BYTES: each element a 4-byte little-endian length, then that many bytes.
fn decode_bytes(mut bytes: &[u8], elements: usize, what: &str) -> Result<TensorData, ApiError> {
    let mut out = Vec::with_capacity(elements);
    while !bytes.is_empty() {
        if out.len() == elements {
            return Err(ApiError::bad_request(format!(
                "{what} has more BYTES elements in its binary data than its shape holds ({elements})"
            )));
        }
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(ApiError::bad_request(format!(
                "{what} binary data ends inside a BYTES length prefix"
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(ApiError::bad_request(format!(
                "{what} has a BYTES element of {len} bytes but only {} remain",
                rest.len()
            )));
        }
        let (element, rest) = rest.split_at(len);
        out.push(element.to_vec());
        bytes = rest;
    }
    if out.len() != elements {
        return Err(ApiError::bad_request(format!(
            "{what} binary data holds {} BYTES elements but its shape needs {elements}",
            out.len()
        )));
    }
    Ok(TensorData::Bytes(out))
}

/// Appends `data` in binary form as `datatype` (the declared output type: narrower integers and
/// half floats are narrowed here, as the model declared they fit).
pub fn encode(buf: &mut Vec<u8>, data: &TensorData, datatype: DataType) {
    use DataType as D;
    match data {
        TensorData::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::Bytes(v) => {
            for element in v {
                buf.extend_from_slice(&(element.len() as u32).to_le_bytes());
                buf.extend_from_slice(element);
            }
        }
        TensorData::I32(v) => match datatype {
            D::U8 | D::I8 => buf.extend(v.iter().map(|&x| x as u8)),
            D::U16 | D::I16 => v
                .iter()
                .for_each(|&x| buf.extend_from_slice(&(x as u16).to_le_bytes())),
            _ => v
                .iter()
                .for_each(|&x| buf.extend_from_slice(&x.to_le_bytes())),
        },
        TensorData::I64(v) => match datatype {
            D::U32 => v
                .iter()
                .for_each(|&x| buf.extend_from_slice(&(x as u32).to_le_bytes())),
            _ => v
                .iter()
                .for_each(|&x| buf.extend_from_slice(&x.to_le_bytes())),
        },
        TensorData::F32(v) => match datatype {
            D::F16 => v
                .iter()
                .for_each(|&x| buf.extend_from_slice(&f16::from_f32(x).to_le_bytes())),
            D::BF16 => v
                .iter()
                .for_each(|&x| buf.extend_from_slice(&bf16::from_f32(x).to_le_bytes())),
            _ => v
                .iter()
                .for_each(|&x| buf.extend_from_slice(&x.to_le_bytes())),
        },
        TensorData::F64(v) => v
            .iter()
            .for_each(|&x| buf.extend_from_slice(&x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_type_round_trips() {
        for (datatype, data) in [
            (DataType::Bool, TensorData::Bool(vec![true, false])),
            (DataType::U8, TensorData::I32(vec![0, 255])),
            (DataType::I8, TensorData::I32(vec![-128, 127])),
            (DataType::U16, TensorData::I32(vec![0, 65535])),
            (DataType::I16, TensorData::I32(vec![-32768, 32767])),
            (DataType::I32, TensorData::I32(vec![i32::MIN, i32::MAX])),
            (DataType::U32, TensorData::I64(vec![0, u32::MAX.into()])),
            (DataType::I64, TensorData::I64(vec![i64::MIN, i64::MAX])),
            (DataType::U64, TensorData::I64(vec![0, i64::MAX])),
            (DataType::F16, TensorData::F32(vec![1.5, -2.0])),
            (DataType::BF16, TensorData::F32(vec![1.5, -2.0])),
            (DataType::F32, TensorData::F32(vec![1.25, f32::MAX])),
            (DataType::F64, TensorData::F64(vec![1e300, -0.5])),
            (
                DataType::Bytes,
                TensorData::Bytes(vec![b"ab".to_vec(), vec![]]),
            ),
        ] {
            let mut buf = Vec::new();
            encode(&mut buf, &data, datatype);
            assert_eq!(
                decode(&buf, datatype, 2, "x").unwrap(),
                data,
                "{datatype:?}"
            );
        }
    }

    #[test]
    fn lying_lengths_are_refused() {
        assert!(decode(&[0; 7], DataType::F32, 2, "x").is_err());
        assert!(decode(&[0; 9], DataType::F32, 2, "x").is_err());
        assert!(decode(&[5, 0, 0, 0, b'a'], DataType::Bytes, 1, "x").is_err());
        assert!(decode(&[1, 0, 0], DataType::Bytes, 1, "x").is_err());
        assert!(decode(&[0, 0, 0, 0, 0, 0, 0, 0], DataType::Bytes, 1, "x").is_err());
        assert!(decode(&[0xff; 8], DataType::U64, 1, "x").is_err());
        let mut blobs = Blobs::new(&[1, 2, 3]);
        assert!(blobs.take(4, "x").is_err());
        assert_eq!(blobs.take(2, "x").unwrap(), &[1, 2]);
        assert!(blobs.finish().is_err());
    }
}
