//! The seed's API, exactly: `POST /predict` with `{"inputs": [...]}` answers
//! `{"prediction":[...]}` from the default model, like the Flask server it replaces.
//!
//! `inputs` is one row (`[5.1, 3.5, 1.4, 0.2]`) or a batch of rows; `"probabilities": true` adds
//! the class probabilities. This is the hot path: the body is parsed by a hand-written visitor
//! straight into one flat `Vec<f32>` and the answer is written without building a JSON tree.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use inferd_core::Error;
use serde::de::{self, DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};

use crate::error::{json_response, ApiError};
use crate::metrics::{self, Served};
use crate::nested::{Nested, Sink};
use crate::{limits, tensors, AppState};

pub async fn predict(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let timer = metrics::start(metrics::SEED);
    let mut served = None;
    let result = answer(&state, &headers, body, &mut served).await;
    metrics::finish(timer, &served, result)
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    served: &mut Served,
) -> Result<Response, ApiError> {
    let config = &state.config;
    let body = limits::read_body(headers, body, config.max_body_bytes).await?;
    let request = parse(&body, config.max_tensor_elements, config.max_json_depth)?;
    let options = tensors::options(state, headers, None)?;
    let loaded = state.resolve_default(headers)?;
    *served = Some(Arc::clone(&loaded));
    let (inputs, rows) =
        tensors::row_input(&loaded, &request.shape, request.values, state, "inputs")?;
    let meta = loaded.model.metadata();
    let probabilities = match (request.probabilities, meta.probabilities_output) {
        (false, _) => None,
        (true, Some(index)) => Some(index),
        (true, None) => {
            return Err(ApiError::bad_request(format!(
                "model '{}' gives no probabilities (it is not a classifier)",
                loaded.name
            )))
        }
    };
    let prediction_index = meta.prediction_output;
    let outputs = tensors::run(state, &loaded, inputs, options).await?;
    let prediction = outputs
        .get(prediction_index)
        .ok_or_else(|| ApiError(Error::internal("the model gave no prediction")))?;

    let mut buf = Vec::with_capacity(32 + 16 * rows);
    buf.extend_from_slice(br#"{"prediction":"#);
    tensors::write_per_row(&mut buf, &prediction.tensor);
    if let Some(index) = probabilities {
        let probabilities = outputs
            .get(index)
            .ok_or_else(|| ApiError(Error::internal("the model gave no probabilities")))?;
        buf.extend_from_slice(br#","probabilities":"#);
        let tensor = &probabilities.tensor;
        tensors::write_nested(&mut buf, tensor.data(), tensor.shape(), 0);
    }
    buf.push(b'}');
    Ok(json_response(buf))
}

/// A parsed `/predict` body.
#[derive(Debug)]
pub(crate) struct PredictRequest {
    /// `[features]` for one row, `[rows, features]` for a batch.
    pub shape: Vec<usize>,
    pub values: inferd_core::TensorData,
    pub probabilities: bool,
}

pub(crate) fn parse(
    body: &[u8],
    max_elements: usize,
    max_depth: usize,
) -> Result<PredictRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            r#"the body is empty; send JSON like {"inputs": [5.1, 3.5, 1.4, 0.2]}"#,
        ));
    }
    limits::check_json_depth(body, max_depth)?;
    let mut over_limit = false;
    let visitor = BodyVisitor {
        max_elements,
        max_depth,
        over_limit: &mut over_limit,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = visitor
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|()| r));
    parsed.map_err(|e| {
        if over_limit {
            ApiError(Error::too_large(e.to_string()))
        } else {
            ApiError::bad_request(format!("invalid /predict body: {e}"))
        }
    })
}

struct BodyVisitor<'a> {
    max_elements: usize,
    max_depth: usize,
    over_limit: &'a mut bool,
}

enum Key {
    Inputs,
    Probabilities,
    Other,
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "inputs" => Key::Inputs,
            "probabilities" => Key::Probabilities,
            _ => Key::Other,
        })
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> DeserializeSeed<'de> for BodyVisitor<'_> {
    type Value = PredictRequest;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<PredictRequest, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodyVisitor<'_> {
    type Value = PredictRequest;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a JSON object like {"inputs": [5.1, 3.5, 1.4, 0.2]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PredictRequest, A::Error> {
        let mut inputs = None;
        let mut probabilities = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Inputs => {
                    if inputs.is_some() {
                        return Err(A::Error::custom("duplicate field `inputs`"));
                    }
                    let sink = Sink::F32(Vec::with_capacity(16));
                    let mut nested = Nested::new(sink, "inputs", self.max_elements, self.max_depth);
                    if let Err(e) = map.next_value_seed(nested.seed()) {
                        *self.over_limit = nested.over_limit();
                        return Err(e);
                    }
                    inputs = Some((nested.shape(), nested.into_sink().into_data()));
                }
                Key::Probabilities => {
                    if probabilities.is_some() {
                        return Err(A::Error::custom("duplicate field `probabilities`"));
                    }
                    probabilities =
                        Some(map.next_value::<bool>().map_err(|_| {
                            A::Error::custom("`probabilities` must be true or false")
                        })?);
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (shape, values) = inputs.ok_or_else(|| {
            A::Error::custom(
                r#"missing field `inputs` (expected {"inputs": [5.1, 3.5, 1.4, 0.2]})"#,
            )
        })?;
        Ok(PredictRequest {
            shape,
            values,
            probabilities: probabilities.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_and_batches_parse_into_one_flat_buffer() {
        let r = parse(br#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#, 100, 8).unwrap();
        assert_eq!(r.shape, vec![4]);
        assert!(!r.probabilities);
        let r = parse(
            br#"{"probabilities": true, "inputs": [[1,2],[3,4]], "x": {"y": 1}}"#,
            100,
            8,
        )
        .unwrap();
        assert_eq!(r.shape, vec![2, 2]);
        assert_eq!(
            r.values,
            inferd_core::TensorData::F32(vec![1.0, 2.0, 3.0, 4.0])
        );
        assert!(r.probabilities);
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        for (body, needle) in [
            ("", "empty"),
            ("[1,2]", "JSON object"),
            ("{}", "missing field `inputs`"),
            (r#"{"inputs": [1, "a"]}"#, "found a string"),
            (r#"{"inputs": [1,2], "inputs": [3]}"#, "duplicate"),
            (r#"{"inputs": [1], "probabilities": 1}"#, "true or false"),
            (r#"{"inputs": [1]} x"#, "trailing"),
            ("{\"inputs\": [1", "EOF"),
        ] {
            let err = parse(body.as_bytes(), 100, 8).unwrap_err();
            assert!(err.0.message.contains(needle), "{body}: {}", err.0.message);
        }
    }
}
