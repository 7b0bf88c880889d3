//! Proto ↔ tensor: input tensors from typed `contents` or `raw_input_contents`, checked against
//! the model's declared inputs; output tensors to typed contents or raw bytes.
//!
//! Conversion rules match the HTTP front end: narrow types widen to the core types
//! (`TensorData`), any number converts to a float input, integers convert between widths with a
//! range check, and nothing converts to or from BOOL or BYTES. Raw data is little-endian,
//! row-major and unpadded; BOOL is one byte; each BYTES element is a 4-byte little-endian
//! length and its bytes.

use bytes::Bytes;
use inferd_core::tensor::{coerce, element_count};
use inferd_core::{DataType, Error, Tensor, TensorData, TensorSpec};

use crate::limits;
use crate::proto::model_infer_request::InferInputTensor;
use crate::proto::model_infer_response::InferOutputTensor;
use crate::proto::InferTensorContents;
use crate::status::printable;
use crate::GrpcConfig;

type Result<T> = std::result::Result<T, Error>;

/// Decodes one input tensor (`raw`: its entry in `raw_input_contents`, if the request used
/// them) and fits it to the model's declaration `spec`. Shape, limits and sizes are checked
/// before any buffer is allocated.
pub fn decode_input(
    mut input: InferInputTensor,
    raw: Option<&Bytes>,
    spec: &TensorSpec,
    config: &GrpcConfig,
) -> Result<Tensor> {
    let what = format!("input '{}'", printable(&input.name));
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        Error::bad_request(format!(
            "{what} has unknown datatype '{}'; use one of BOOL, UINT8, UINT16, UINT32, UINT64, \
             INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES",
            printable(&input.datatype)
        ))
    })?;
    let shape = input
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| {
            Error::bad_request(format!(
                "{what} has a negative dimension in its shape {:?}",
                input.shape
            ))
        })?;
    check_shape(&shape, spec, &what)?;
    let elements = element_count(&shape)?;
    limits::check_tensor(&shape, elements, config, &what)?;
    let data = match raw {
        Some(bytes) => {
            if input.contents.is_some() {
                return Err(Error::bad_request(format!(
                    "{what} sets contents while the request uses raw_input_contents; use one or the other"
                )));
            }
            decode_raw(bytes, datatype, elements, &what)?
        }
        None => decode_typed(input.contents.take(), datatype, elements, &what)?,
    };
    let data = coerce(data, spec.datatype, &what)?;
    Tensor::new(shape, data)
}

/// The shape must have the declared rank and match every fixed dimension.
pub fn check_shape(shape: &[usize], spec: &TensorSpec, what: &str) -> Result<()> {
    let fits = shape.len() == spec.shape.len()
        && shape
            .iter()
            .zip(&spec.shape)
            .all(|(&d, &s)| s < 0 || d as i64 == s);
    if fits {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "{what} has shape {shape:?} but the model expects {:?} (-1: any size)",
            spec.shape
        )))
    }
}

fn decode_raw(bytes: &[u8], datatype: DataType, elements: usize, what: &str) -> Result<TensorData> {
    use DataType::*;
    if let Some(size) = datatype.size() {
        let expected = elements
            .checked_mul(size)
            .ok_or_else(|| Error::too_large(format!("{what} is larger than can be addressed")))?;
        if bytes.len() != expected {
            return Err(Error::bad_request(format!(
                "{what} needs {expected} bytes of raw {} data ({elements} elements) but its \
                 raw_input_contents entry has {}",
                datatype.as_str(),
                bytes.len()
            )));
        }
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
        U64 => TensorData::I64(
            le(bytes, u64::from_le_bytes)
                .into_iter()
                .map(|v| i64::try_from(v).map_err(|_| out_of_range(what, "UINT64")))
                .collect::<Result<_>>()?,
        ),
        F16 => TensorData::F32(le(bytes, |b| half::f16::from_le_bytes(b).to_f32())),
        BF16 => TensorData::F32(le(bytes, |b| half::bf16::from_le_bytes(b).to_f32())),
        F32 => TensorData::F32(le(bytes, f32::from_le_bytes)),
        F64 => TensorData::F64(le(bytes, f64::from_le_bytes)),
        Bytes => TensorData::Bytes(decode_raw_bytes(bytes, elements, what)?),
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

fn decode_raw_bytes(mut rest: &[u8], elements: usize, what: &str) -> Result<Vec<Vec<u8>>> {
    let malformed = || {
        Error::bad_request(format!(
            "{what}: raw BYTES data must be {elements} elements, each a 4-byte little-endian \
             length followed by that many bytes"
        ))
    };
    // Each element takes at least 4 bytes, so this capacity is bounded by the message size.
    let mut out = Vec::with_capacity(elements.min(rest.len() / 4));
    while !rest.is_empty() {
        if out.len() == elements || rest.len() < 4 {
            return Err(malformed());
        }
        let (prefix, tail) = rest.split_at(4);
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if tail.len() < len {
            return Err(malformed());
        }
        let (element, tail) = tail.split_at(len);
        out.push(element.to_vec());
        rest = tail;
    }
    if out.len() != elements {
        return Err(malformed());
    }
    Ok(out)
}

fn decode_typed(
    contents: Option<InferTensorContents>,
    datatype: DataType,
    elements: usize,
    what: &str,
) -> Result<TensorData> {
    use DataType::*;
    let contents = match contents {
        Some(c) => c,
        None if elements == 0 => InferTensorContents::default(),
        None => {
            return Err(Error::bad_request(format!(
                "{what} has no data: set its contents or the request's raw_input_contents"
            )))
        }
    };
    let field = contents_field(datatype);
    let given = given_fields(&contents);
    if let Some(other) = given.iter().find(|&&f| f != field) {
        return Err(Error::bad_request(format!(
            "{what} is {} and takes its data in {field}, but {other} was set",
            datatype.as_str()
        )));
    }
    let count = |len: usize| {
        if len == elements {
            Ok(())
        } else {
            Err(Error::bad_request(format!(
                "{what} has {elements} elements by its shape but {field} holds {len}"
            )))
        }
    };
    let InferTensorContents {
        bool_contents,
        int_contents,
        int64_contents,
        uint_contents,
        uint64_contents,
        fp32_contents,
        fp64_contents,
        bytes_contents,
    } = contents;
    Ok(match datatype {
        Bool => {
            count(bool_contents.len())?;
            TensorData::Bool(bool_contents)
        }
        I8 | I16 | I32 => {
            count(int_contents.len())?;
            let (lo, hi) = match datatype {
                I8 => (i32::from(i8::MIN), i32::from(i8::MAX)),
                I16 => (i32::from(i16::MIN), i32::from(i16::MAX)),
                _ => (i32::MIN, i32::MAX),
            };
            if int_contents.iter().any(|v| !(lo..=hi).contains(v)) {
                return Err(out_of_range(what, datatype.as_str()));
            }
            TensorData::I32(int_contents)
        }
        I64 => {
            count(int64_contents.len())?;
            TensorData::I64(int64_contents)
        }
        U8 | U16 => {
            count(uint_contents.len())?;
            let hi = if datatype == U8 {
                u32::from(u8::MAX)
            } else {
                u32::from(u16::MAX)
            };
            if uint_contents.iter().any(|&v| v > hi) {
                return Err(out_of_range(what, datatype.as_str()));
            }
            TensorData::I32(uint_contents.into_iter().map(|v| v as i32).collect())
        }
        U32 => {
            count(uint_contents.len())?;
            TensorData::I64(uint_contents.into_iter().map(i64::from).collect())
        }
        U64 => {
            count(uint64_contents.len())?;
            TensorData::I64(
                uint64_contents
                    .into_iter()
                    .map(|v| i64::try_from(v).map_err(|_| out_of_range(what, "UINT64")))
                    .collect::<Result<_>>()?,
            )
        }
        F16 | BF16 => {
            return Err(Error::bad_request(format!(
                "{what} is {}, which travels only in raw_input_contents",
                datatype.as_str()
            )))
        }
        F32 => {
            count(fp32_contents.len())?;
            TensorData::F32(fp32_contents)
        }
        F64 => {
            count(fp64_contents.len())?;
            TensorData::F64(fp64_contents)
        }
        Bytes => {
            count(bytes_contents.len())?;
            TensorData::Bytes(bytes_contents.into_iter().map(Vec::from).collect())
        }
    })
}

/// The `InferTensorContents` field a datatype's typed data travels in.
fn contents_field(datatype: DataType) -> &'static str {
    use DataType::*;
    match datatype {
        Bool => "bool_contents",
        I8 | I16 | I32 => "int_contents",
        I64 => "int64_contents",
        U8 | U16 | U32 => "uint_contents",
        U64 => "uint64_contents",
        F32 => "fp32_contents",
        F64 => "fp64_contents",
        Bytes => "bytes_contents",
        F16 | BF16 => "raw_input_contents",
    }
}

fn given_fields(c: &InferTensorContents) -> Vec<&'static str> {
    [
        (!c.bool_contents.is_empty(), "bool_contents"),
        (!c.int_contents.is_empty(), "int_contents"),
        (!c.int64_contents.is_empty(), "int64_contents"),
        (!c.uint_contents.is_empty(), "uint_contents"),
        (!c.uint64_contents.is_empty(), "uint64_contents"),
        (!c.fp32_contents.is_empty(), "fp32_contents"),
        (!c.fp64_contents.is_empty(), "fp64_contents"),
        (!c.bytes_contents.is_empty(), "bytes_contents"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

fn out_of_range(what: &str, datatype: &str) -> Error {
    Error::bad_request(format!("{what} has a value out of range for {datatype}"))
}

/// The datatype an output is reported as: the declared one when the data is in its core type
/// (so a model declaring UINT8 answers UINT8), else the data's own. Half floats only travel
/// raw, so typed answers give them as FP32.
pub fn output_datatype(spec: Option<&TensorSpec>, data: &TensorData, raw: bool) -> DataType {
    let declared = spec
        .map(|s| s.datatype)
        .filter(|&d| d.core_type() == data.datatype());
    match declared.unwrap_or(data.datatype()) {
        DataType::F16 | DataType::BF16 if !raw => DataType::F32,
        datatype => datatype,
    }
}

/// Encodes one output. With `raw`, the data goes in the returned bytes (for
/// `raw_output_contents`) and the tensor has no contents.
pub fn encode_output(
    name: &str,
    datatype: DataType,
    tensor: Tensor,
    raw: bool,
) -> Result<(InferOutputTensor, Option<Bytes>)> {
    let (shape, data) = tensor.into_parts();
    let mut out = InferOutputTensor {
        name: name.to_owned(),
        datatype: datatype.as_str().to_owned(),
        shape: shape.iter().map(|&d| d as i64).collect(),
        ..Default::default()
    };
    if raw {
        return Ok((out, Some(encode_raw(datatype, &data)?)));
    }
    out.contents = Some(encode_typed(datatype, data)?);
    Ok((out, None))
}

fn narrow<T: TryFrom<i64>>(v: impl IntoIterator<Item = i64>, datatype: DataType) -> Result<Vec<T>> {
    v.into_iter()
        .map(|x| T::try_from(x))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            Error::internal(format!(
                "the model gave an output value out of range for {}",
                datatype.as_str()
            ))
        })
}

fn mismatch(datatype: DataType, data: &TensorData) -> Error {
    Error::internal(format!(
        "the model gave {} data for a {} output",
        data.datatype().as_str(),
        datatype.as_str()
    ))
}

fn encode_typed(datatype: DataType, data: TensorData) -> Result<InferTensorContents> {
    use DataType as D;
    let mut c = InferTensorContents::default();
    match (datatype, data) {
        (D::Bool, TensorData::Bool(v)) => c.bool_contents = v,
        (D::I8 | D::I16 | D::I32, TensorData::I32(v)) => c.int_contents = v,
        (D::U8 | D::U16, TensorData::I32(v)) => {
            c.uint_contents = narrow(v.into_iter().map(i64::from), datatype)?
        }
        (D::U32, TensorData::I64(v)) => c.uint_contents = narrow(v, datatype)?,
        (D::I64, TensorData::I64(v)) => c.int64_contents = v,
        (D::U64, TensorData::I64(v)) => c.uint64_contents = narrow(v, datatype)?,
        (D::F32, TensorData::F32(v)) => c.fp32_contents = v,
        (D::F64, TensorData::F64(v)) => c.fp64_contents = v,
        (D::Bytes, TensorData::Bytes(v)) => {
            c.bytes_contents = v.into_iter().map(Bytes::from).collect()
        }
        (datatype, data) => return Err(mismatch(datatype, &data)),
    }
    Ok(c)
}

fn encode_raw(datatype: DataType, data: &TensorData) -> Result<Bytes> {
    use DataType as D;
    fn put<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        let mut out = Vec::with_capacity(v.len() * N);
        for &x in v {
            out.extend_from_slice(&f(x));
        }
        out
    }
    let bytes = match (datatype, data) {
        (D::Bool, TensorData::Bool(v)) => v.iter().map(|&b| u8::from(b)).collect(),
        (D::U8, TensorData::I32(v)) => narrow::<u8>(v.iter().map(|&x| i64::from(x)), datatype)?,
        (D::I8, TensorData::I32(v)) => put(
            &narrow::<i8>(v.iter().map(|&x| i64::from(x)), datatype)?,
            i8::to_le_bytes,
        ),
        (D::U16, TensorData::I32(v)) => put(
            &narrow::<u16>(v.iter().map(|&x| i64::from(x)), datatype)?,
            u16::to_le_bytes,
        ),
        (D::I16, TensorData::I32(v)) => put(
            &narrow::<i16>(v.iter().map(|&x| i64::from(x)), datatype)?,
            i16::to_le_bytes,
        ),
        (D::I32, TensorData::I32(v)) => put(v, i32::to_le_bytes),
        (D::U32, TensorData::I64(v)) => put(
            &narrow::<u32>(v.iter().copied(), datatype)?,
            u32::to_le_bytes,
        ),
        (D::I64, TensorData::I64(v)) => put(v, i64::to_le_bytes),
        (D::U64, TensorData::I64(v)) => put(
            &narrow::<u64>(v.iter().copied(), datatype)?,
            u64::to_le_bytes,
        ),
        (D::F16, TensorData::F32(v)) => put(v, |x| half::f16::from_f32(x).to_le_bytes()),
        (D::BF16, TensorData::F32(v)) => put(v, |x| half::bf16::from_f32(x).to_le_bytes()),
        (D::F32, TensorData::F32(v)) => put(v, f32::to_le_bytes),
        (D::F64, TensorData::F64(v)) => put(v, f64::to_le_bytes),
        (D::Bytes, TensorData::Bytes(v)) => {
            let mut out = Vec::with_capacity(v.iter().map(|b| b.len() + 4).sum());
            for element in v {
                let len = u32::try_from(element.len())
                    .map_err(|_| Error::internal("the model gave a BYTES element over 4 GiB"))?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(element);
            }
            out
        }
        (datatype, data) => return Err(mismatch(datatype, data)),
    };
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
