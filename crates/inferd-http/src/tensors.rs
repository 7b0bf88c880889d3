//! What the protocols share between parsing and answering: converting parsed data to the type a
//! model declares, building the row input of row-oriented APIs, running a model on the executor,
//! and writing tensor values as JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use inferd_core::registry::{InferOptions, LoadedModel};
use inferd_core::tensor::coerce;
use inferd_core::{Error, NamedTensor, Tensor, TensorData};

use crate::error::ApiError;
use crate::limits;
use crate::AppState;

/// Builds the input of a model that takes rows of features, from a parsed flat (`[n]`, one row)
/// or nested (`[rows, n]`) array: what `/predict`, KServe V1 and TF Serving `instances` send.
/// Returns the input and the row count.
pub fn row_input(
    loaded: &LoadedModel,
    shape: &[usize],
    data: TensorData,
    state: &AppState,
    what: &str,
) -> Result<(Vec<NamedTensor>, usize), ApiError> {
    let meta = loaded.model.metadata();
    let (Some(features), [spec]) = (meta.row_features(), meta.inputs.as_slice()) else {
        return Err(ApiError::bad_request(format!(
            "model '{}' does not take rows of features; use the V2 API (/v2/models/{}/infer)",
            loaded.name, loaded.name
        )));
    };
    let (rows, width) = match shape {
        [] => {
            return Err(ApiError::bad_request(format!(
                "{what} must be a list of numbers or a list of rows"
            )))
        }
        [n] => (1, *n),
        [rows, n] => (*rows, *n),
        _ => {
            return Err(ApiError::bad_request(format!(
                "{what} must be one row or a list of rows, not nested deeper"
            )))
        }
    };
    if rows == 0 || width == 0 {
        return Err(ApiError::bad_request(format!("{what} is empty")));
    }
    if width != features {
        return Err(ApiError::bad_request(format!(
            "each row must have {features} features (model '{}'), got {width}",
            loaded.name
        )));
    }
    limits::check_rows(rows, &state.config)?;
    let data = coerce(data, spec.datatype, what)?;
    let tensor = Tensor::new(vec![rows, features], data).map_err(ApiError)?;
    Ok((vec![NamedTensor::new(spec.name.clone(), tensor)], rows))
}

/// Header by which a client sets its own deadline, in milliseconds.
pub const TIMEOUT_HEADER: &str = "x-inferd-timeout-ms";

/// The request's deadline: from `timeout` (already read from the protocol's own field, such as
/// V2's `timeout` parameter), else the `x-inferd-timeout-ms` header, else the configured default.
pub fn options(
    state: &AppState,
    headers: &HeaderMap,
    timeout: Option<Duration>,
) -> Result<InferOptions, ApiError> {
    let from_header = match headers.get(TIMEOUT_HEADER) {
        None => None,
        Some(value) => {
            let ms = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("{TIMEOUT_HEADER} must be a positive integer"))
                })?;
            Some(Duration::from_millis(ms))
        }
    };
    Ok(
        match timeout.or(from_header).or(state.config.default_timeout) {
            Some(timeout) => InferOptions::timeout(timeout),
            None => InferOptions::default(),
        },
    )
}

/// Runs `loaded` through [`LoadedModel::infer_with`] (which decides inline, inference threads
/// or batching, and keeps the deadline) and checks that it answered with every declared output.
pub async fn run(
    state: &AppState,
    loaded: &Arc<LoadedModel>,
    inputs: Vec<NamedTensor>,
    options: InferOptions,
) -> Result<Vec<NamedTensor>, ApiError> {
    let outputs = loaded
        .infer_with(&state.executor, inputs, options)
        .await
        .map_err(ApiError)?;
    if outputs.len() < loaded.model.metadata().outputs.len() {
        return Err(ApiError(Error::internal(format!(
            "model '{}' returned fewer outputs than it declares",
            loaded.name
        ))));
    }
    Ok(outputs)
}

/// Writes element `i` of `data` as a JSON value. Non-finite floats become `null` (JSON has no
/// NaN or infinity); bytes become a string, invalid UTF-8 replaced.
fn write_element(buf: &mut Vec<u8>, data: &TensorData, i: usize) {
    // Writing to a Vec cannot fail.
    let _ = match data {
        TensorData::Bool(v) => serde_json::to_writer(&mut *buf, &v[i]),
        TensorData::I64(v) => serde_json::to_writer(&mut *buf, &v[i]),
        TensorData::I32(v) => serde_json::to_writer(&mut *buf, &v[i]),
        TensorData::F32(v) => serde_json::to_writer(&mut *buf, &v[i]),
        TensorData::F64(v) => serde_json::to_writer(&mut *buf, &v[i]),
        TensorData::Bytes(v) => serde_json::to_writer(&mut *buf, &String::from_utf8_lossy(&v[i])),
    };
}

/// Writes `data[start..end]` as a flat JSON array.
pub fn write_flat(buf: &mut Vec<u8>, data: &TensorData, start: usize, end: usize) {
    buf.push(b'[');
    for i in start..end {
        if i > start {
            buf.push(b',');
        }
        write_element(buf, data, i);
    }
    buf.push(b']');
}

/// Writes the elements from `start` as nested JSON arrays of `shape` (a scalar for `[]`).
pub fn write_nested(buf: &mut Vec<u8>, data: &TensorData, shape: &[usize], start: usize) {
    match shape {
        [] => write_element(buf, data, start),
        [n] => write_flat(buf, data, start, start + n),
        [n, rest @ ..] => {
            let stride: usize = rest.iter().product();
            buf.push(b'[');
            for i in 0..*n {
                if i > 0 {
                    buf.push(b',');
                }
                write_nested(buf, data, rest, start + i * stride);
            }
            buf.push(b']');
        }
    }
}

/// Writes one value per row: the way scikit-learn's `predict` answers, so `[n]` and `[n, 1]`
/// both give a flat list, and wider outputs a list of rows.
pub fn write_per_row(buf: &mut Vec<u8>, tensor: &Tensor) {
    match tensor.shape() {
        [n] | [n, 1] => write_flat(buf, tensor.data(), 0, *n),
        shape => write_nested(buf, tensor.data(), shape, 0),
    }
}

/// Appends a JSON string (quoted and escaped).
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *buf, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferd_core::DataType;

    #[test]
    fn nested_writing_follows_the_shape() {
        let data = TensorData::I64(vec![1, 2, 3, 4, 5, 6]);
        let mut buf = Vec::new();
        write_nested(&mut buf, &data, &[2, 3], 0);
        assert_eq!(buf, b"[[1,2,3],[4,5,6]]");
        let mut buf = Vec::new();
        write_nested(&mut buf, &TensorData::F32(vec![f32::NAN, 0.5]), &[2], 0);
        assert_eq!(buf, b"[null,0.5]");
    }

    #[test]
    fn coercion_widens_but_never_truncates() {
        let to_f32 = coerce(TensorData::I64(vec![1, 2]), DataType::F32, "x").unwrap();
        assert_eq!(to_f32, TensorData::F32(vec![1.0, 2.0]));
        assert!(coerce(TensorData::F32(vec![1.5]), DataType::I64, "x").is_err());
        assert!(coerce(TensorData::I64(vec![i64::MAX]), DataType::I32, "x").is_err());
        assert!(coerce(TensorData::Bytes(vec![]), DataType::F32, "x").is_err());
        assert_eq!(
            coerce(TensorData::F32(vec![1.0]), DataType::F16, "x").unwrap(),
            TensorData::F32(vec![1.0])
        );
    }
}
