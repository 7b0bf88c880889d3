//! Request tensors: built from a model's metadata (given or random values) or read from a V2
//! JSON inference request, and encoded as V2 JSON data or little-endian raw bytes.

use serde_json::{json, Value};

use crate::error::{config, BenchError};

/// A datatype this generator can fill and encode. FP16, BF16 and BYTES tensors are not built
/// here; such models need `--body` with a protocol that sends it as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    F32,
    F64,
}

impl DataType {
    pub fn parse(name: &str) -> Result<DataType, BenchError> {
        Ok(match name {
            "BOOL" => DataType::Bool,
            "UINT8" => DataType::U8,
            "UINT16" => DataType::U16,
            "UINT32" => DataType::U32,
            "UINT64" => DataType::U64,
            "INT8" => DataType::I8,
            "INT16" => DataType::I16,
            "INT32" => DataType::I32,
            "INT64" => DataType::I64,
            "FP32" => DataType::F32,
            "FP64" => DataType::F64,
            other => {
                return Err(config(format!(
                    "datatype `{other}` cannot be generated or re-encoded here; give a --body the protocol sends as is"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
        }
    }

    fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }
}

/// An input as the model's metadata describes it (`-1` for a variable dimension).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// One request tensor. Values are held as `f64`, exact for every integer up to 2^53, which is
/// plenty for generated load.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
    pub values: Vec<f64>,
}

/// How to fill generated tensors.
#[derive(Debug)]
pub enum Fill<'a> {
    /// One row's values, repeated to fill the tensor.
    Given(&'a [f64]),
    /// Uniform in [0, 1) for floats, 0..10 for integers, either for BOOL.
    Random(&'a mut fastrand::Rng),
}

impl Tensor {
    /// A tensor for `spec` with `batch` rows: the first variable dimension becomes `batch`.
    pub fn generate(
        spec: &TensorSpec,
        batch: usize,
        fill: &mut Fill<'_>,
    ) -> Result<Tensor, BenchError> {
        let datatype = DataType::parse(&spec.datatype)?;
        let mut shape = spec.shape.clone();
        if shape.is_empty() {
            shape.push(1);
        }
        for (i, dim) in shape.iter_mut().enumerate() {
            if *dim < 0 {
                if i > 0 {
                    return Err(config(format!(
                        "input `{}` has the variable shape {:?}; give its request with --body",
                        spec.name, spec.shape
                    )));
                }
                *dim = batch as i64;
            }
        }
        let count: i64 = shape.iter().product();
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= 1 << 24)
            .ok_or_else(|| {
                config(format!(
                    "input `{}` has an unusable shape {:?}",
                    spec.name, shape
                ))
            })?;
        let values = match fill {
            Fill::Given(row) => {
                if row.is_empty() {
                    return Err(config("--values is empty"));
                }
                row.iter().copied().cycle().take(count).collect()
            }
            Fill::Random(rng) => (0..count)
                .map(|_| match datatype {
                    DataType::Bool => f64::from(u8::from(rng.bool())),
                    d if d.is_float() => rng.f64(),
                    _ => f64::from(rng.u8(0..10)),
                })
                .collect(),
        };
        Ok(Tensor {
            name: spec.name.clone(),
            datatype,
            shape,
            values,
        })
    }

    /// Reads the `inputs` of a V2 JSON inference request (flat or nested `data`).
    pub fn from_v2_request(body: &Value) -> Result<Vec<Tensor>, BenchError> {
        let inputs = body
            .get("inputs")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                config("--body is not a V2 inference request: it needs a non-empty `inputs` array")
            })?;
        inputs
            .iter()
            .map(|input| {
                let name = input
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| config("a --body input has no `name`"))?;
                let datatype = DataType::parse(
                    input
                        .get("datatype")
                        .and_then(Value::as_str)
                        .ok_or_else(|| config(format!("input `{name}` has no `datatype`")))?,
                )?;
                let shape: Vec<i64> = input
                    .get("shape")
                    .and_then(Value::as_array)
                    .and_then(|s| s.iter().map(Value::as_i64).collect())
                    .ok_or_else(|| config(format!("input `{name}` has no integer `shape`")))?;
                let mut values = Vec::new();
                flatten(
                    input
                        .get("data")
                        .ok_or_else(|| config(format!("input `{name}` has no `data`")))?,
                    &mut values,
                )
                .map_err(|e| config(format!("input `{name}`: {e}")))?;
                let expected: i64 = shape.iter().product();
                if expected != values.len() as i64 {
                    return Err(config(format!(
                        "input `{name}` has shape {shape:?} but {} values",
                        values.len()
                    )));
                }
                Ok(Tensor {
                    name: name.to_string(),
                    datatype,
                    shape,
                    values,
                })
            })
            .collect()
    }

    /// The V2 JSON form `{"name", "shape", "datatype", "data"}` with flat data.
    pub fn to_v2_json(&self) -> Value {
        json!({
            "name": self.name,
            "shape": self.shape,
            "datatype": self.datatype.name(),
            "data": self.json_values(&self.values),
        })
    }

    /// Values as JSON numbers (integers for integer types) or booleans.
    pub fn json_values(&self, values: &[f64]) -> Value {
        Value::Array(values.iter().map(|&v| self.json_value(v)).collect())
    }

    fn json_value(&self, v: f64) -> Value {
        match self.datatype {
            DataType::Bool => Value::Bool(v != 0.0),
            d if d.is_float() => json!(v),
            _ => json!(v as i64),
        }
    }

    /// Rows of the tensor (first dimension) as nested JSON arrays of one level, for the seed's
    /// and V1's row formats.
    pub fn rows(&self) -> Vec<Value> {
        let rows = self.shape.first().copied().unwrap_or(1).max(1) as usize;
        let width = self.values.len() / rows;
        self.values
            .chunks(width.max(1))
            .map(|row| self.json_values(row))
            .collect()
    }

    /// Little-endian, row-major raw bytes, as the binary extension and gRPC raw contents carry.
    pub fn to_raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.values.len() * 8);
        for &v in &self.values {
            match self.datatype {
                DataType::Bool => out.push(u8::from(v != 0.0)),
                DataType::U8 => out.push(v as u8),
                DataType::U16 => out.extend_from_slice(&(v as u16).to_le_bytes()),
                DataType::U32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
                DataType::U64 => out.extend_from_slice(&(v as u64).to_le_bytes()),
                DataType::I8 => out.extend_from_slice(&(v as i8).to_le_bytes()),
                DataType::I16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
                DataType::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
                DataType::I64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
                DataType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
                DataType::F64 => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
        out
    }
}

/// Appends the leaves of a (possibly nested) JSON array of numbers or booleans.
fn flatten(value: &Value, out: &mut Vec<f64>) -> Result<(), String> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|item| flatten(item, out)),
        Value::Number(n) => n
            .as_f64()
            .map(|v| out.push(v))
            .ok_or_else(|| format!("`{n}` is not a number")),
        Value::Bool(b) => {
            out.push(f64::from(u8::from(*b)));
            Ok(())
        }
        other => Err(format!("data holds `{other}`, not numbers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: Vec<i64>, datatype: &str) -> TensorSpec {
        TensorSpec {
            name: "input0".into(),
            datatype: datatype.into(),
            shape,
        }
    }

    #[test]
    fn generates_batches_from_metadata() {
        let row = [5.1, 3.5, 1.4, 0.2];
        let t = Tensor::generate(&spec(vec![-1, 4], "FP32"), 2, &mut Fill::Given(&row)).unwrap();
        assert_eq!(t.shape, vec![2, 4]);
        assert_eq!(&t.values[4..], &row);
        assert_eq!(t.to_raw().len(), 32);
        assert_eq!(t.rows().len(), 2);
        let mut rng = fastrand::Rng::with_seed(1);
        let t =
            Tensor::generate(&spec(vec![-1, 3], "INT64"), 1, &mut Fill::Random(&mut rng)).unwrap();
        assert!(t.values.iter().all(|v| v.fract() == 0.0 && *v < 10.0));
        assert!(Tensor::generate(&spec(vec![1, -1], "FP32"), 1, &mut Fill::Given(&row)).is_err());
        assert!(Tensor::generate(&spec(vec![1], "BYTES"), 1, &mut Fill::Given(&row)).is_err());
    }

    #[test]
    fn reads_nested_v2_requests() {
        let body = json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]}]});
        let t = &Tensor::from_v2_request(&body).unwrap()[0];
        assert_eq!(t.values, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(t.to_v2_json()["data"], json!([1.0, 2.0, 3.0, 4.0]));
        let bad =
            json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]});
        assert!(Tensor::from_v2_request(&bad).is_err());
        assert!(Tensor::from_v2_request(&json!({"inputs": "no"})).is_err());
    }
}
