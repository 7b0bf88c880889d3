//! Tensors across the boundary: inferd's [`Tensor`] to tract's and back, and the element
//! types the two share.

use inferd_core::{DataType, Tensor, TensorData, TensorSpec};
use tract_onnx::prelude::{Datum, DatumType, Tensor as TractTensor};

use crate::error::TractError;

/// inferd's name for a tract element type, for those this runtime serves.
pub(crate) fn datatype(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::F32 => DataType::F32,
        DatumType::F64 => DataType::F64,
        // tract computes integers that may feed shapes as symbolic dimensions; they leave the
        // graph as plain integers.
        DatumType::I64 | DatumType::TDim => DataType::I64,
        DatumType::I32 => DataType::I32,
        DatumType::Bool => DataType::Bool,
        _ => return None,
    })
}

/// Checks a request tensor against a declared input and builds the tract tensor of the
/// declared element type (numbers convert freely, integers only from whole numbers).
pub(crate) fn to_tract(spec: &TensorSpec, t: Tensor) -> Result<TractTensor, TractError> {
    let bad = |m: String| TractError::Input(format!("input '{}': {m}", spec.name));
    let mut shape = t.shape().to_vec();
    // A single row given as a vector for a [N, C] input is common enough to accept.
    if spec.shape.len() == 2 && shape.len() == 1 {
        shape.insert(0, 1);
    }
    if spec.shape.len() != shape.len() {
        return Err(bad(format!(
            "expected {} dimensions {:?}, got shape {:?}",
            spec.shape.len(),
            spec.shape,
            t.shape()
        )));
    }
    for (i, (&want, &got)) in spec.shape.iter().zip(&shape).enumerate() {
        if want >= 0 && want as usize != got {
            return Err(bad(format!("dimension {i} must be {want}, got {got}")));
        }
    }
    let built = match (spec.datatype, t.data()) {
        (DataType::F32, _) => {
            let v = t.to_f32().map_err(|e| bad(e.message))?;
            TractTensor::from_shape(&shape, &v)
        }
        (DataType::F64, _) => {
            let v = t.to_f64().map_err(|e| bad(e.message))?;
            TractTensor::from_shape(&shape, &v)
        }
        (DataType::I64, TensorData::I64(v)) => TractTensor::from_shape(&shape, v),
        (DataType::I32, TensorData::I32(v)) => TractTensor::from_shape(&shape, v),
        (DataType::Bool, TensorData::Bool(v)) => TractTensor::from_shape(&shape, v),
        (DataType::I64 | DataType::I32, _) => {
            let v = t.to_f64().map_err(|e| bad(e.message))?;
            if v.iter().any(|x| x.fract() != 0.0) {
                return Err(bad(format!(
                    "expected integers for {}",
                    spec.datatype.as_str()
                )));
            }
            if spec.datatype == DataType::I64 {
                let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
                TractTensor::from_shape(&shape, &v)
            } else {
                let v: Vec<i32> = v.iter().map(|&x| x as i32).collect();
                TractTensor::from_shape(&shape, &v)
            }
        }
        (want, _) => {
            return Err(bad(format!(
                "cannot convert {} to {}",
                t.datatype().as_str(),
                want.as_str()
            )))
        }
    };
    built.map_err(|e| bad(crate::error::chain(&e)))
}

/// An inferd tensor holding a tract output.
pub(crate) fn from_tract(name: &str, t: &TractTensor) -> Result<Tensor, TractError> {
    let failed = |m: String| TractError::Run(format!("output '{name}': {m}"));
    let data = match t.datum_type() {
        DatumType::F32 => TensorData::F32(values(t).map_err(failed)?),
        DatumType::F64 => TensorData::F64(values(t).map_err(failed)?),
        DatumType::I64 => TensorData::I64(values(t).map_err(failed)?),
        DatumType::I32 => TensorData::I32(values(t).map_err(failed)?),
        DatumType::Bool => TensorData::Bool(values(t).map_err(failed)?),
        DatumType::TDim => {
            let ints = t
                .cast_to::<i64>()
                .map_err(|e| failed(crate::error::chain(&e)))?;
            TensorData::I64(values(&ints).map_err(failed)?)
        }
        other => return Err(failed(format!("element type {other:?} is not served"))),
    };
    Tensor::new(t.shape().to_vec(), data).map_err(|e| failed(e.message))
}

/// A tensor's elements, copied out of tract's storage.
fn values<D: Datum + Clone>(t: &TractTensor) -> Result<Vec<D>, String> {
    let read = || -> tract_onnx::prelude::TractResult<Vec<D>> {
        Ok(t.try_as_plain_ram()?.as_slice::<D>()?.to_vec())
    };
    read().map_err(|e| crate::error::chain(&e))
}
