//! The tensor type every runtime and front end exchanges: a shape and a typed, row-major buffer,
//! and the one set of rules for what a request's numbers may be converted into.

pub mod raw;

use std::fmt;

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

    /// The integers an integer datatype admits once widened to its core type: its own range,
    /// except UINT64, whose values above `i64::MAX` the core's `I64` cannot hold. `None` for
    /// the other datatypes.
    pub const fn int_range(self) -> Option<(i64, i64)> {
        use DataType::*;
        Some(match self {
            U8 => (0, u8::MAX as i64),
            U16 => (0, u16::MAX as i64),
            U32 => (0, u32::MAX as i64),
            U64 => (0, i64::MAX),
            I8 => (i8::MIN as i64, i8::MAX as i64),
            I16 => (i16::MIN as i64, i16::MAX as i64),
            I32 => (i32::MIN as i64, i32::MAX as i64),
            I64 => (i64::MIN, i64::MAX),
            _ => return None,
        })
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
/// to keep: any number to a float, integers between integer widths. Every narrowing is checked:
/// an integer outside the target's range, or a finite FP64 beyond FP32's, is a 400 naming the
/// value and its position, never a wrap or a silent infinity. Floats are not truncated into
/// integers, and booleans and strings convert to nothing. Every front end fits request tensors
/// to a model's declared inputs with this one rule. `what` names the tensor in error messages.
pub fn coerce(data: TensorData, target: DataType, what: &str) -> Result<TensorData> {
    let target = target.core_type();
    if data.datatype() == target {
        return Ok(data);
    }
    Ok(match (data, target) {
        (TensorData::F64(v), DataType::F32) => TensorData::F32(
            v.into_iter()
                .enumerate()
                .map(|(i, x)| {
                    f32_from_f64(x).ok_or_else(|| {
                        Error::bad_request(format!("{what} {}", float_unfit(x, i, DataType::F32)))
                    })
                })
                .collect::<Result<_>>()?,
        ),
        // Integers round into floats (above 2^24 for FP32, 2^53 for FP64) as every client
        // library rounds them, but never overflow: i64::MAX is far inside FP32's range.
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
        (TensorData::I64(v), DataType::I32) => {
            check_ints(&v, DataType::I32, what)?;
            // In range: checked just above.
            TensorData::I32(v.into_iter().map(|x| x as i32).collect())
        }
        (data, target) => {
            return Err(Error::bad_request(format!(
                "{what} must be {}, got {}",
                target.as_str(),
                data.datatype().as_str()
            )))
        }
    })
}

/// A request's number as FP32: rounded to the nearest FP32, as IEEE 754 rounds, except that a
/// finite value beyond FP32's range is `None` (refused) rather than an infinity the client
/// never sent. NaN and infinities stay what they are: binary data may carry them on purpose.
pub fn f32_from_f64(x: f64) -> Option<f32> {
    let y = x as f32;
    (y.is_finite() || !x.is_finite()).then_some(y)
}

/// Checks integers given for `datatype` against [`DataType::int_range`]; the first one outside
/// it is a 400 naming its value and position.
pub fn check_ints<T: Copy + Into<i128>>(
    values: &[T],
    datatype: DataType,
    what: &str,
) -> Result<()> {
    let Some((min, max)) = datatype.int_range() else {
        return Ok(());
    };
    let range = i128::from(min)..=i128::from(max);
    match values.iter().position(|&v| !range.contains(&v.into())) {
        None => Ok(()),
        Some(i) => Err(Error::bad_request(format!(
            "{what} {}",
            int_unfit(values[i].into(), i, datatype)
        ))),
    }
}

/// What every front end says of an integer that does not fit its datatype, after the tensor's
/// name: `has 256 at element 3, out of range for UINT8`.
pub fn int_unfit(value: i128, index: usize, datatype: DataType) -> String {
    unfit(value, index, datatype)
}

/// The same for a float (too large for FP32, or an integer-valued JSON number beyond an integer
/// type), in exponent form: `1e39`, not 40 digits.
pub fn float_unfit(value: f64, index: usize, datatype: DataType) -> String {
    unfit(format_args!("{value:e}"), index, datatype)
}

fn unfit(value: impl fmt::Display, index: usize, datatype: DataType) -> String {
    format!(
        "has {value} at element {index}, out of range for {}",
        datatype.as_str()
    )
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

    fn f32s(v: Vec<f64>) -> Result<TensorData> {
        coerce(TensorData::F64(v), DataType::F32, "input 'x'")
    }

    #[test]
    fn fp64_beyond_fp32_is_refused_with_its_position() {
        let err = f32s(vec![1.0, 2.0, 1e39]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::BadRequest);
        assert_eq!(
            err.message,
            "input 'x' has 1e39 at element 2, out of range for FP32"
        );
        assert!(f32s(vec![-3.5e38]).is_err());
        assert!(f32s(vec![f64::MAX]).is_err());
        // FP32's largest value, and a double just above it that still rounds down to it.
        let max = f64::from(f32::MAX);
        assert_eq!(
            f32s(vec![max, max * (1.0 + 1e-9), -max]).unwrap(),
            TensorData::F32(vec![f32::MAX, f32::MAX, f32::MIN])
        );
        // Below FP32's precision a value rounds, as it always has; it does not overflow.
        assert_eq!(f32s(vec![1e-50]).unwrap(), TensorData::F32(vec![0.0]));
    }

    #[test]
    fn non_finite_values_are_carried_not_refused() {
        let TensorData::F32(v) = f32s(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY]).unwrap()
        else {
            unreachable!()
        };
        assert!(v[0].is_nan() && v[1] == f32::INFINITY && v[2] == f32::NEG_INFINITY);
    }

    #[test]
    fn integer_narrowing_is_checked_and_widening_is_not_needed() {
        let err = coerce(
            TensorData::I64(vec![0, 1 << 40]),
            DataType::I32,
            "input 'x'",
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "input 'x' has 1099511627776 at element 1, out of range for INT32"
        );
        // Integers into floats round but cannot overflow.
        assert_eq!(
            coerce(
                TensorData::I64(vec![i64::MIN, i64::MAX]),
                DataType::F32,
                "x"
            )
            .unwrap(),
            TensorData::F32(vec![i64::MIN as f32, i64::MAX as f32])
        );
        assert_eq!(
            coerce(TensorData::I32(vec![i32::MIN]), DataType::I64, "x").unwrap(),
            TensorData::I64(vec![i32::MIN.into()])
        );
        assert!(coerce(TensorData::F64(vec![1.0]), DataType::I64, "x").is_err());
        assert!(coerce(TensorData::Bool(vec![true]), DataType::F32, "x").is_err());
    }

    #[test]
    fn integer_ranges_are_those_of_the_core_type() {
        assert_eq!(DataType::U8.int_range(), Some((0, 255)));
        assert_eq!(DataType::I16.int_range(), Some((-32768, 32767)));
        assert_eq!(DataType::U64.int_range(), Some((0, i64::MAX)));
        assert_eq!(DataType::F32.int_range(), None);
        assert!(check_ints(&[0u32, 255], DataType::U8, "x").is_ok());
        let err = check_ints(&[0u32, 256], DataType::U8, "input 'x'").unwrap_err();
        assert_eq!(
            err.message,
            "input 'x' has 256 at element 1, out of range for UINT8"
        );
        assert!(check_ints(&[u64::MAX], DataType::U64, "x").is_err());
        assert!(check_ints(&[-129i32], DataType::I8, "x").is_err());
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
