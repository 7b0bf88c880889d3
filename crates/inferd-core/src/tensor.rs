//! The tensor type every runtime and front end exchanges: a shape and a typed, row-major buffer.

use crate::error::{Error, Result};

/// Element types, named as the Open Inference Protocol names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    BF16,
    F32,
    F64,
    Bytes,
}

impl DataType {
    /// The protocol's name (`FP32`, `INT64`, `BYTES`...).
    pub const fn as_str(self) -> &'static str {
        use DataType::*;
        match self {
            Bool => "BOOL",
            U8 => "UINT8",
            U16 => "UINT16",
            U32 => "UINT32",
            U64 => "UINT64",
            I8 => "INT8",
            I16 => "INT16",
            I32 => "INT32",
            I64 => "INT64",
            F16 => "FP16",
            BF16 => "BF16",
            F32 => "FP32",
            F64 => "FP64",
            Bytes => "BYTES",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        use DataType::*;
        Some(match name {
            "BOOL" => Bool,
            "UINT8" => U8,
            "UINT16" => U16,
            "UINT32" => U32,
            "UINT64" => U64,
            "INT8" => I8,
            "INT16" => I16,
            "INT32" => I32,
            "INT64" => I64,
            "FP16" => F16,
            "BF16" => BF16,
            "FP32" => F32,
            "FP64" => F64,
            "BYTES" => Bytes,
            _ => return None,
        })
    }

    /// The [`TensorData`] variant this type is held in: narrow integers and half floats are
    /// widened on the way in, as [`TensorData`] explains.
    pub const fn core_type(self) -> DataType {
        use DataType::*;
        match self {
            Bool => Bool,
            U8 | U16 | I8 | I16 | I32 => I32,
            U32 | U64 | I64 => I64,
            F16 | BF16 | F32 => F32,
            F64 => F64,
            Bytes => Bytes,
        }
    }

    /// Bytes per element on the wire; `None` for variable-length BYTES.
    pub const fn size(self) -> Option<usize> {
        use DataType::*;
        match self {
            Bool | U8 | I8 => Some(1),
            U16 | I16 | F16 | BF16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            Bytes => None,
        }
    }
}

/// A typed buffer. Narrow integer and half-precision types are widened on the way in: models
/// compute in these few types, and the front ends narrow again on the way out where asked.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::I64(_) => DataType::I64,
            TensorData::I32(_) => DataType::I32,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }
}

/// A shaped tensor. The invariant `shape.iter().product() == data.len()` is checked by
/// [`Tensor::new`], the only constructor, so every consumer can index without re-checking.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self> {
        let expected = element_count(&shape)?;
        if expected != data.len() {
            return Err(Error::bad_request(format!(
                "shape {shape:?} needs {expected} elements but {} were given",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }

    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// Rows along the first axis (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// The elements as `f32`, converting from any numeric type. Runtimes that compute in `f32`
    /// (ONNX-ML tree ensembles) call this once per request.
    pub fn to_f32(&self) -> Result<std::borrow::Cow<'_, [f32]>> {
        use std::borrow::Cow;
        Ok(match &self.data {
            TensorData::F32(v) => Cow::Borrowed(v.as_slice()),
            TensorData::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            TensorData::I64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            TensorData::I32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            TensorData::Bool(v) => Cow::Owned(v.iter().map(|&x| x as u8 as f32).collect()),
            TensorData::Bytes(_) => {
                return Err(Error::bad_request("expected a numeric tensor, got BYTES"))
            }
        })
    }

    /// The elements as `f64`, converting from any numeric type.
    pub fn to_f64(&self) -> Result<std::borrow::Cow<'_, [f64]>> {
        use std::borrow::Cow;
        Ok(match &self.data {
            TensorData::F64(v) => Cow::Borrowed(v.as_slice()),
            TensorData::F32(v) => Cow::Owned(v.iter().map(|&x| x as f64).collect()),
            TensorData::I64(v) => Cow::Owned(v.iter().map(|&x| x as f64).collect()),
            TensorData::I32(v) => Cow::Owned(v.iter().map(|&x| x as f64).collect()),
            TensorData::Bool(v) => Cow::Owned(v.iter().map(|&x| x as u8 as f64).collect()),
            TensorData::Bytes(_) => {
                return Err(Error::bad_request("expected a numeric tensor, got BYTES"))
            }
        })
    }
}

/// Converts `data` to the core type of `target` where that loses nothing a client would expect
/// to keep: any number to a float, integers between integer widths (range-checked). Floats are
/// not truncated into integers, and booleans and strings convert to nothing. Every front end
/// fits request tensors to a model's declared inputs with this one rule. `what` names the
/// tensor in error messages.
pub fn coerce(data: TensorData, target: DataType, what: &str) -> Result<TensorData> {
    let target = target.core_type();
    if data.datatype() == target {
        return Ok(data);
    }
    Ok(match (data, target) {
        (TensorData::F64(v), DataType::F32) => {
            TensorData::F32(v.into_iter().map(|x| x as f32).collect())
        }
        (TensorData::I64(v), DataType::F32) => {
            TensorData::F32(v.into_iter().map(|x| x as f32).collect())
        }
        (TensorData::I32(v), DataType::F32) => {
            TensorData::F32(v.into_iter().map(|x| x as f32).collect())
        }
        (TensorData::F32(v), DataType::F64) => {
            TensorData::F64(v.into_iter().map(f64::from).collect())
        }
        (TensorData::I64(v), DataType::F64) => {
            TensorData::F64(v.into_iter().map(|x| x as f64).collect())
        }
        (TensorData::I32(v), DataType::F64) => {
            TensorData::F64(v.into_iter().map(f64::from).collect())
        }
        (TensorData::I32(v), DataType::I64) => {
            TensorData::I64(v.into_iter().map(i64::from).collect())
        }
        (TensorData::I64(v), DataType::I32) => TensorData::I32(
            v.into_iter()
                .map(i32::try_from)
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    Error::bad_request(format!("{what} has a value out of range for INT32"))
                })?,
        ),
        (data, target) => {
            return Err(Error::bad_request(format!(
                "{what} must be {}, got {}",
                target.as_str(),
                data.datatype().as_str()
            )))
        }
    })
}

/// Product of the dimensions, refusing overflow: shapes come from requests.
pub fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::too_large(format!(
                "shape {shape:?} has more elements than can be addressed"
            ))
        })
}

/// A tensor with the name of the model input or output it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Self {
        Self {
            name: name.into(),
            tensor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_must_match_data() {
        assert!(Tensor::new(vec![2, 2], TensorData::F32(vec![1.0; 4])).is_ok());
        let err = Tensor::new(vec![2, 3], TensorData::F32(vec![1.0; 4])).unwrap_err();
        assert!(err.message.contains("needs 6 elements"), "{err}");
    }

    #[test]
    fn overflowing_shape_is_refused() {
        let err = element_count(&[usize::MAX, 2]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::PayloadTooLarge);
    }

    #[test]
    fn datatype_names_round_trip() {
        for name in [
            "BOOL", "UINT8", "INT64", "FP16", "BF16", "FP32", "FP64", "BYTES",
        ] {
            assert_eq!(DataType::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(DataType::parse("FLOAT"), None);
    }
}
