//! Proto ↔ tensor: input tensors from typed `contents` or `raw_input_contents`, checked against
//! the model's declared inputs; output tensors to typed contents or raw bytes.
//!
//! The rules are core's, shared with the HTTP front end: narrow types widen to the core types
//! (`TensorData`) with a range check (`check_ints`), numbers fit the declared type by `coerce`,
//! and raw contents go through core's raw codec (`inferd_core::tensor::raw`). Only the proto's
//! own fields are mapped here.

use bytes::Bytes;
use inferd_core::tensor::{check_ints, coerce, element_count, raw};
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
            raw::decode(bytes, datatype, elements, &what)?
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
            check_ints(&int_contents, datatype, what)?;
            TensorData::I32(int_contents)
        }
        I64 => {
            count(int64_contents.len())?;
            TensorData::I64(int64_contents)
        }
        U8 | U16 => {
            count(uint_contents.len())?;
            check_ints(&uint_contents, datatype, what)?;
            // At most 65535: checked just above.
            TensorData::I32(uint_contents.into_iter().map(|v| v as i32).collect())
        }
        U32 => {
            count(uint_contents.len())?;
            TensorData::I64(uint_contents.into_iter().map(i64::from).collect())
        }
        U64 => {
            count(uint64_contents.len())?;
            check_ints(&uint64_contents, datatype, what)?;
            // At most i64::MAX: checked just above.
            TensorData::I64(uint64_contents.into_iter().map(|v| v as i64).collect())
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
    let mut out = Vec::new();
    raw::encode(&mut out, data, datatype)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
