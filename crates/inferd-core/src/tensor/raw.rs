//! The raw tensor codec every front end shares: the binary tensor data extension over HTTP and
//! `raw_input_contents` / `raw_output_contents` over gRPC. Little-endian, row-major, unpadded;
//! BOOL is one byte; each BYTES element is a 4-byte little-endian length and its bytes.
//!
//! Decoding checks every length against the bytes present and every value against what the
//! core type can hold (UINT64 above `i64::MAX`), with the same words for every protocol.

use half::{bf16, f16};

use super::{check_ints, DataType, TensorData};
use crate::error::{Error, Result};

/// Decodes `elements` elements of `datatype` from `bytes` into the core type. `what` names the
/// tensor in error messages.
pub fn decode(bytes: &[u8], datatype: DataType, elements: usize, what: &str) -> Result<TensorData> {
    use DataType::*;
    let Some(size) = datatype.size() else {
        return decode_bytes(bytes, elements, what).map(TensorData::Bytes);
    };
    let needed = elements
        .checked_mul(size)
        .ok_or_else(|| Error::too_large(format!("{what} is larger than can be addressed")))?;
    if bytes.len() != needed {
        return Err(Error::bad_request(format!(
            "{what} has {} bytes of raw data but {elements} {} elements need {needed} bytes",
            bytes.len(),
            datatype.as_str()
        )));
    }
    Ok(match datatype {
        Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        U8 => TensorData::I32(bytes.iter().map(|&b| i32::from(b)).collect()),
        I8 => TensorData::I32(bytes.iter().map(|&b| i32::from(b as i8)).collect()),
        U16 => TensorData::I32(le(bytes, |b| i32::from(u16::from_le_bytes(b)))),
        I16 => TensorData::I32(le(bytes, |b| i32::from(i16::from_le_bytes(b)))),
        I32 => TensorData::I32(le(bytes, i32::from_le_bytes)),
        U32 => TensorData::I64(le(bytes, |b| i64::from(u32::from_le_bytes(b)))),
        I64 => TensorData::I64(le(bytes, i64::from_le_bytes)),
        U64 => {
            let values = le(bytes, u64::from_le_bytes);
            check_ints(&values, U64, what)?;
            // In range: checked just above.
            TensorData::I64(values.into_iter().map(|v| v as i64).collect())
        }
        F16 => TensorData::F32(le(bytes, |b| f16::from_le_bytes(b).to_f32())),
        BF16 => TensorData::F32(le(bytes, |b| bf16::from_le_bytes(b).to_f32())),
        F32 => TensorData::F32(le(bytes, f32::from_le_bytes)),
        F64 => TensorData::F64(le(bytes, f64::from_le_bytes)),
        Bytes => unreachable!("BYTES has no fixed size"),
    })
}

/// Fixed-width little-endian elements; the caller has checked the length is a multiple of `N`.
fn le<const N: usize, T>(bytes: &[u8], convert: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut array = [0u8; N];
            array.copy_from_slice(chunk);
            convert(array)
        })
        .collect()
}

fn decode_bytes(mut rest: &[u8], elements: usize, what: &str) -> Result<Vec<Vec<u8>>> {
    // Each element takes at least 4 bytes, so this capacity is bounded by the body's size too.
    let mut out = Vec::with_capacity(elements.min(rest.len() / 4));
    while !rest.is_empty() {
        if out.len() == elements {
            return Err(Error::bad_request(format!(
                "{what} has more BYTES elements in its raw data than its shape holds ({elements})"
            )));
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(Error::bad_request(format!(
                "{what} raw data ends inside a BYTES length prefix"
            )));
        };
        // A u32 always fits a usize on the 32- and 64-bit targets inferd builds for.
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err(Error::bad_request(format!(
                "{what} has a BYTES element of {len} bytes but only {} remain",
                tail.len()
            )));
        }
        let (element, tail) = tail.split_at(len);
        out.push(element.to_vec());
        rest = tail;
    }
    if out.len() != elements {
        return Err(Error::bad_request(format!(
            "{what} raw data holds {} BYTES elements but its shape needs {elements}",
            out.len()
        )));
    }
    Ok(out)
}

/// Appends `data` in raw form as `datatype`, the type an output is declared as. Narrower integer
/// types are range-checked on the way: a model that declares UINT8 and answers 300 is our fault
/// (500), never a wrapped 44.
pub fn encode(buf: &mut Vec<u8>, data: &TensorData, datatype: DataType) -> Result<()> {
    use DataType as D;
    fn put<T: Copy, const N: usize>(buf: &mut Vec<u8>, v: &[T], f: impl Fn(T) -> [u8; N]) {
        buf.reserve(v.len() * N);
        for &x in v {
            buf.extend_from_slice(&f(x));
        }
    }
    fn narrow<T: TryFrom<i64>>(v: impl Iterator<Item = i64>, datatype: DataType) -> Result<Vec<T>> {
        v.map(T::try_from)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                Error::internal(format!(
                    "the model gave an output value out of range for {}",
                    datatype.as_str()
                ))
            })
    }
    let wide = |v: &[i32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
    match (datatype, data) {
        (D::Bool, TensorData::Bool(v)) => buf.extend(v.iter().map(|&b| u8::from(b))),
        (D::U8, TensorData::I32(v)) => buf.extend(narrow::<u8>(wide(v).into_iter(), datatype)?),
        (D::I8, TensorData::I32(v)) => put(
            buf,
            &narrow::<i8>(wide(v).into_iter(), datatype)?,
            i8::to_le_bytes,
        ),
        (D::U16, TensorData::I32(v)) => put(
            buf,
            &narrow::<u16>(wide(v).into_iter(), datatype)?,
            u16::to_le_bytes,
        ),
        (D::I16, TensorData::I32(v)) => put(
            buf,
            &narrow::<i16>(wide(v).into_iter(), datatype)?,
            i16::to_le_bytes,
        ),
        (D::I32, TensorData::I32(v)) => put(buf, v, i32::to_le_bytes),
        (D::U32, TensorData::I64(v)) => put(
            buf,
            &narrow::<u32>(v.iter().copied(), datatype)?,
            u32::to_le_bytes,
        ),
        (D::I64, TensorData::I64(v)) => put(buf, v, i64::to_le_bytes),
        (D::U64, TensorData::I64(v)) => put(
            buf,
            &narrow::<u64>(v.iter().copied(), datatype)?,
            u64::to_le_bytes,
        ),
        (D::F16, TensorData::F32(v)) => put(buf, v, |x| f16::from_f32(x).to_le_bytes()),
        (D::BF16, TensorData::F32(v)) => put(buf, v, |x| bf16::from_f32(x).to_le_bytes()),
        (D::F32, TensorData::F32(v)) => put(buf, v, f32::to_le_bytes),
        (D::F64, TensorData::F64(v)) => put(buf, v, f64::to_le_bytes),
        (D::Bytes, TensorData::Bytes(v)) => {
            buf.reserve(v.iter().map(|b| b.len() + 4).sum());
            for element in v {
                let len = u32::try_from(element.len())
                    .map_err(|_| Error::internal("the model gave a BYTES element over 4 GiB"))?;
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(element);
            }
        }
        (datatype, data) => {
            return Err(Error::internal(format!(
                "the model gave {} data for a {} output",
                data.datatype().as_str(),
                datatype.as_str()
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn every_datatype_round_trips() {
        use DataType::*;
        let cases: Vec<(DataType, TensorData)> = vec![
            (Bool, TensorData::Bool(vec![true, false, true])),
            (U8, TensorData::I32(vec![0, 7, 255])),
            (I8, TensorData::I32(vec![-128, 0, 127])),
            (U16, TensorData::I32(vec![0, 7, 65535])),
            (I16, TensorData::I32(vec![-32768, 0, 32767])),
            (I32, TensorData::I32(vec![i32::MIN, 0, i32::MAX])),
            (U32, TensorData::I64(vec![0, 7, u32::MAX.into()])),
            (I64, TensorData::I64(vec![i64::MIN, 0, i64::MAX])),
            (U64, TensorData::I64(vec![0, 7, i64::MAX])),
            (F16, TensorData::F32(vec![0.5, -2.0, 1024.0])),
            (BF16, TensorData::F32(vec![0.5, -2.0, 1024.0])),
            (F32, TensorData::F32(vec![0.1, -2.5, f32::MAX])),
            (F64, TensorData::F64(vec![0.1, -2.5, f64::MAX])),
            (
                Bytes,
                TensorData::Bytes(vec![b"a".to_vec(), vec![], b"xyz".to_vec()]),
            ),
        ];
        for (datatype, data) in cases {
            let mut raw = Vec::new();
            encode(&mut raw, &data, datatype).unwrap();
            if let Some(size) = datatype.size() {
                assert_eq!(raw.len(), 3 * size, "{datatype:?}");
            }
            assert_eq!(
                decode(&raw, datatype, 3, "x").unwrap(),
                data,
                "{datatype:?}"
            );
        }
    }

    #[test]
    fn lying_lengths_are_refused() {
        let err = decode(&[0; 7], DataType::F32, 2, "input 'x'").unwrap_err();
        assert!(err.message.contains("need 8 bytes"), "{err}");
        assert!(decode(&[0; 9], DataType::F32, 2, "x").is_err());
        let huge = decode(&[], DataType::F64, usize::MAX, "x").unwrap_err();
        assert_eq!(huge.kind, ErrorKind::PayloadTooLarge);
        let cases: [(&[u8], usize); 6] = [
            (b"\x01\0\0", 1),               // truncated length
            (b"\x05\0\0\0abc", 1),          // truncated element
            (b"\x01\0\0\0a\x01\0\0\0b", 1), // more elements than the shape
            (b"\x01\0\0\0a", 2),            // fewer
            (b"\xff\xff\xff\xff", 1),       // a length far past the end
            (&[0; 8], 1),                   // two empty elements for one
        ];
        for (raw, elements) in cases {
            let err = decode(raw, DataType::Bytes, elements, "input 'x'").unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequest, "{raw:?}");
        }
        assert_eq!(
            decode(b"", DataType::Bytes, 0, "x").unwrap(),
            TensorData::Bytes(vec![])
        );
    }

    #[test]
    fn uint64_beyond_the_core_type_is_refused_by_position() {
        let raw = [7u64.to_le_bytes(), u64::MAX.to_le_bytes()].concat();
        let err = decode(&raw, DataType::U64, 2, "input 'x'").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert_eq!(
            err.message,
            "input 'x' has 18446744073709551615 at element 1, out of range for UINT64"
        );
    }

    #[test]
    fn any_bit_pattern_is_a_float() {
        let raw = [f64::NAN, f64::INFINITY, -0.0]
            .map(f64::to_le_bytes)
            .concat();
        let TensorData::F64(v) = decode(&raw, DataType::F64, 3, "x").unwrap() else {
            unreachable!()
        };
        assert!(v[0].is_nan() && v[1] == f64::INFINITY && v[2] == 0.0);
    }

    #[test]
    fn outputs_that_do_not_fit_their_declared_type_are_our_fault() {
        for (data, datatype) in [
            (TensorData::I32(vec![1, 300]), DataType::U8),
            (TensorData::I32(vec![-1]), DataType::U16),
            (TensorData::I64(vec![1 << 40]), DataType::U32),
            (TensorData::I64(vec![-1]), DataType::U64),
            (TensorData::F32(vec![1.0]), DataType::I64),
        ] {
            let err = encode(&mut Vec::new(), &data, datatype).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Internal, "{datatype:?}");
        }
    }
}
