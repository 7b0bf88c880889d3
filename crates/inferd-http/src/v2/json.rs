//! The Open Inference Protocol's JSON: the infer request envelope (inputs' `data` kept raw until
//! the datatype is known), parameters, and the infer response writer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::tensors::{write_flat, write_str};
use inferd_core::{DataType, Tensor};

/// A parameter value: the protocol allows a string, a number or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

impl Param {
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Param::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Param::UInt(v) => Some(*v),
            Param::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
}

struct ParamVisitor;

impl Visitor<'_> for ParamVisitor {
    type Value = Param;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a parameter value (a string, a number or a boolean)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Param, E> {
        Ok(Param::Str(v.to_owned()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Param, E> {
        Ok(Param::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Param, E> {
        Ok(Param::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Param, E> {
        Ok(Param::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Param, E> {
        Ok(Param::Bool(v))
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Param, D::Error> {
        d.deserialize_any(ParamVisitor)
    }
}

pub type Parameters = BTreeMap<String, Param>;

/// Some clients send `"parameters": null` for "none"; read it as an empty map.
fn nullable<'de, D: de::Deserializer<'de>>(d: D) -> Result<Parameters, D::Error> {
    Ok(Option::<Parameters>::deserialize(d)?.unwrap_or_default())
}

/// Parameters that would change the answer in ways inferd does not implement: refused rather
/// than silently ignored.
pub const UNSUPPORTED: [&str; 3] = [
    "shared_memory_region",
    "shared_memory_byte_size",
    "classification",
];

pub fn check_supported(parameters: &Parameters, what: &str) -> Result<(), String> {
    match UNSUPPORTED.iter().find(|p| parameters.contains_key(**p)) {
        Some(p) => Err(format!(
            "{what}: parameter '{p}' is not supported by inferd"
        )),
        None => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
pub struct InferRequest<'a> {
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "nullable")]
    pub parameters: Parameters,
    #[serde(borrow)]
    pub inputs: Vec<InputTensor<'a>>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize)]
pub struct InputTensor<'a> {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default, deserialize_with = "nullable")]
    pub parameters: Parameters,
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub parameters: Parameters,
}

/// One output as it goes back: data inline as JSON, or only its size when it travels binary.
pub struct OutputEntry<'a> {
    pub name: &'a str,
    pub datatype: DataType,
    pub tensor: &'a Tensor,
    /// `Some(size)` when the data follows the JSON header in binary form.
    pub binary_size: Option<usize>,
}

/// Writes the infer response's JSON.
pub fn write_response(
    buf: &mut Vec<u8>,
    model_name: &str,
    model_version: u64,
    id: Option<&str>,
    outputs: &[OutputEntry<'_>],
) {
    buf.extend_from_slice(br#"{"model_name":"#);
    write_str(buf, model_name);
    buf.extend_from_slice(br#","model_version":""#);
    buf.extend_from_slice(model_version.to_string().as_bytes());
    buf.push(b'"');
    if let Some(id) = id {
        buf.extend_from_slice(br#","id":"#);
        write_str(buf, id);
    }
    buf.extend_from_slice(br#","outputs":["#);
    for (i, output) in outputs.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(br#"{"name":"#);
        write_str(buf, output.name);
        buf.extend_from_slice(br#","datatype":"#);
        write_str(buf, output.datatype.as_str());
        buf.extend_from_slice(br#","shape":"#);
        let _ = serde_json::to_writer(&mut *buf, output.tensor.shape());
        match output.binary_size {
            Some(size) => {
                buf.extend_from_slice(br#","parameters":{"binary_data_size":"#);
                buf.extend_from_slice(size.to_string().as_bytes());
                buf.extend_from_slice(b"}}");
            }
            None => {
                buf.extend_from_slice(br#","data":"#);
                let data = output.tensor.data();
                write_flat(buf, data, 0, data.len());
                buf.push(b'}');
            }
        }
    }
    buf.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_keeps_data_raw_and_reads_parameters() {
        let json = r#"{"id": "42", "parameters": {"a": 1, "b": "x", "c": true, "d": -1.5},
            "inputs": [{"data": [[1, 2]], "name": "x", "shape": [1, 2], "datatype": "FP32"}],
            "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}"#;
        let request: InferRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.id.as_deref(), Some("42"));
        assert_eq!(request.parameters["a"], Param::UInt(1));
        assert_eq!(request.parameters["d"], Param::Float(-1.5));
        assert_eq!(request.inputs[0].data.unwrap().get(), "[[1, 2]]");
        let outputs = request.outputs.unwrap();
        assert_eq!(outputs[0].parameters["binary_data"].as_bool(), Some(true));
        let nulls = r#"{"id": null, "parameters": null, "outputs": null,
            "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "parameters": null, "data": [1]}]}"#;
        let request: InferRequest = serde_json::from_str(nulls).unwrap();
        assert!(request.parameters.is_empty() && request.inputs[0].parameters.is_empty());
        let nested = r#"{"inputs": [], "parameters": {"a": [1]}}"#;
        assert!(serde_json::from_str::<InferRequest>(nested).is_err());
    }
}
