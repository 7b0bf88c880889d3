//! The Open Inference Protocol (KServe V2) over REST: server metadata, model metadata and
//! readiness, and infer, with and without `/versions/{v}`; JSON in `json`, the binary tensor
//! data extension in `binary`.

mod binary;
mod json;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use inferd_core::registry::LoadedModel;
use inferd_core::tensor::{element_count, raw};
use inferd_core::{DataType, Error, NamedTensor, Tensor, TensorSpec};

use crate::error::{json, json_response, ApiError};
use crate::metrics::{self, Served};
use crate::nested::{self, Sink};
use crate::{limits, tensors, AppState, HttpConfig};
pub use binary::HEADER_LENGTH;
use inferd_core::tensor::coerce;
use json::{InferRequest, InputTensor, OutputEntry, Parameters};

/// Extensions advertised in server metadata.
pub const EXTENSIONS: [&str; 1] = ["binary_tensor_data"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer_version),
        )
}

#[derive(serde::Serialize)]
struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    extensions: [&'static str; 1],
}

async fn server_metadata() -> Response {
    json(&ServerMetadata {
        name: "inferd",
        version: env!("CARGO_PKG_VERSION"),
        extensions: EXTENSIONS,
    })
}

/// A path's parameters, or a JSON 400 saying what is wrong with them.
type PathParams<T> = Result<Path<T>, PathRejection>;

fn path<T>(params: PathParams<T>) -> Result<T, ApiError> {
    params
        .map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
}

/// A version from a path: a positive integer.
pub fn parse_version(text: &str) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => {
            let shown: String = text.chars().filter(|c| !c.is_control()).take(32).collect();
            Err(ApiError::bad_request(format!(
                "model versions are positive integers, got '{shown}'"
            )))
        }
    }
}

fn resolve(
    state: &AppState,
    model: &str,
    version: Option<&str>,
    headers: &HeaderMap,
) -> Result<Arc<LoadedModel>, ApiError> {
    let version = version.map(parse_version).transpose()?;
    state.resolve(model, version, headers)
}

#[derive(serde::Serialize)]
struct TensorMetadata<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
}

impl<'a> From<&'a TensorSpec> for TensorMetadata<'a> {
    fn from(spec: &'a TensorSpec) -> Self {
        Self {
            name: &spec.name,
            datatype: spec.datatype.as_str(),
            shape: &spec.shape,
        }
    }
}

#[derive(serde::Serialize)]
struct ModelMetadata<'a> {
    name: &'a str,
    versions: Vec<String>,
    platform: &'a str,
    inputs: Vec<TensorMetadata<'a>>,
    outputs: Vec<TensorMetadata<'a>>,
}

/// Every loaded version of `name`, as strings.
pub fn versions_of(state: &AppState, name: &str) -> Vec<String> {
    let snapshot = state.registry.snapshot();
    snapshot
        .models
        .get(name)
        .map(|m| m.versions.keys().map(u64::to_string).collect())
        .unwrap_or_default()
}

fn metadata(state: &AppState, model: &str, version: Option<&str>) -> Result<Response, ApiError> {
    let loaded = resolve(state, model, version, &HeaderMap::new())?;
    let meta = loaded.model.metadata();
    Ok(json(&ModelMetadata {
        name: &loaded.name,
        versions: versions_of(state, &loaded.name),
        platform: &meta.platform,
        inputs: meta.inputs.iter().map(TensorMetadata::from).collect(),
        outputs: meta.outputs.iter().map(TensorMetadata::from).collect(),
    }))
}

async fn model_metadata(
    State(state): State<AppState>,
    p: PathParams<String>,
) -> Result<Response, ApiError> {
    metadata(&state, &path(p)?, None)
}

async fn model_metadata_version(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (model, version) = path(p)?;
    metadata(&state, &model, Some(&version))
}

#[derive(serde::Serialize)]
struct Ready<'a> {
    name: &'a str,
    ready: bool,
}

fn ready(state: &AppState, model: &str, version: Option<&str>) -> Result<Response, ApiError> {
    let loaded = resolve(state, model, version, &HeaderMap::new())?;
    Ok(json(&Ready {
        name: &loaded.name,
        ready: true,
    }))
}

async fn model_ready(
    State(state): State<AppState>,
    p: PathParams<String>,
) -> Result<Response, ApiError> {
    ready(&state, &path(p)?, None)
}

async fn model_ready_version(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (model, version) = path(p)?;
    ready(&state, &model, Some(&version))
}

async fn infer(
    State(state): State<AppState>,
    p: PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let model = path(p)?;
    timed_answer(&state, &model, None, &headers, body).await
}

async fn infer_version(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (model, version) = path(p)?;
    timed_answer(&state, &model, Some(&version), &headers, body).await
}

async fn timed_answer(
    state: &AppState,
    model: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let timer = metrics::start(metrics::V2);
    let mut served = None;
    let result = answer(state, model, version, headers, body, &mut served).await;
    Ok(metrics::finish(timer, &served, result))
}

async fn answer(
    state: &AppState,
    model: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    served: &mut Served,
) -> Result<Response, ApiError> {
    let config = &state.config;
    let body = limits::read_body(headers, body, config.max_body_bytes).await?;
    let (request, blobs) = parse_envelope(headers, &body, config)?;
    json::check_supported(&request.parameters, "the request").map_err(ApiError::bad_request)?;

    let options = tensors::options(state, headers, timeout_parameter(&request.parameters)?)?;
    let loaded = resolve(state, model, version, headers)?;
    *served = Some(Arc::clone(&loaded));
    let inputs = build_inputs(state, &loaded, request.inputs, binary::Blobs::new(blobs))?;
    let requested = requested_outputs(&loaded, request.outputs, &request.parameters)?;
    let outputs = tensors::run(state, &loaded, inputs, options).await?;
    respond(&loaded, request.id.as_deref(), &requested, &outputs)
}

/// The request's JSON envelope (inputs' data still raw) and the binary part of the body.
fn parse_envelope<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    config: &HttpConfig,
) -> Result<(InferRequest<'a>, &'a [u8]), ApiError> {
    let (header, blobs) = split_body(headers, body)?;
    if header.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the body is empty; send an inference request (see /docs)",
        ));
    }
    limits::check_json_depth(header, config.max_json_depth)?;
    limits::require_object(
        header,
        r#"{"inputs": [{"name": ..., "shape": ..., "datatype": ..., "data": ...}]}"#,
    )?;
    let header = std::str::from_utf8(header)
        .map_err(|_| ApiError::bad_request("the JSON part of the body is not valid UTF-8"))?;
    let request: InferRequest = serde_json::from_str(header)
        .map_err(|e| ApiError::bad_request(format!("invalid inference request: {e}")))?;
    Ok((request, blobs))
}

/// Decodes an infer request's body into tensors without a model to check them against: the
/// whole JSON and binary-framing path, for the fuzz targets.
pub fn decode_request(
    headers: &HeaderMap,
    body: &[u8],
    config: &HttpConfig,
) -> Result<Vec<Tensor>, ApiError> {
    let (request, blobs) = parse_envelope(headers, body, config)?;
    let mut blobs = binary::Blobs::new(blobs);
    let tensors = request
        .inputs
        .iter()
        .map(|input| build_tensor(config, input, "input", None, &mut blobs))
        .collect::<Result<Vec<_>, _>>()?;
    blobs.finish()?;
    Ok(tensors)
}

/// Splits a body into its JSON header and the binary data after it.
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(length) = headers.get(HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let length = length
        .to_str()
        .ok()
        .and_then(|l| l.trim().parse::<usize>().ok())
        .ok_or_else(|| ApiError::bad_request("Inference-Header-Content-Length is not a number"))?;
    if length == 0 {
        return Err(ApiError::bad_request(
            "Inference-Header-Content-Length is 0, which leaves no JSON header",
        ));
    }
    if length > body.len() {
        return Err(ApiError::bad_request(format!(
            "Inference-Header-Content-Length is {length} but the body has only {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(length))
}

/// Validates each request input against the model's declared inputs and returns them in the
/// model's order.
fn build_inputs(
    state: &AppState,
    loaded: &LoadedModel,
    inputs: Vec<InputTensor<'_>>,
    mut blobs: binary::Blobs<'_>,
) -> Result<Vec<NamedTensor>, ApiError> {
    let specs = &loaded.model.metadata().inputs;
    if inputs.is_empty() {
        return Err(ApiError::bad_request("the request has no inputs"));
    }
    let mut slots: Vec<Option<NamedTensor>> = vec![None; specs.len().max(inputs.len())];
    let mut rows = 1;
    for (position, input) in inputs.into_iter().enumerate() {
        let what = format!("input '{}'", printable(&input.name));
        // A model that declares no inputs takes what it is given, in request order.
        let (slot, spec) = if specs.is_empty() {
            (position, None)
        } else {
            let index = specs
                .iter()
                .position(|s| s.name == input.name)
                .ok_or_else(|| {
                    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                    ApiError::bad_request(format!(
                        "model '{}' has no {what}; its inputs are: {}",
                        loaded.name,
                        names.join(", ")
                    ))
                })?;
            (index, Some(&specs[index]))
        };
        if slots[slot].is_some() {
            return Err(ApiError::bad_request(format!("{what} is given twice")));
        }
        let tensor = build_tensor(&state.config, &input, &what, spec, &mut blobs)?;
        if let Some(first) = tensor.shape().first() {
            rows = rows.max(*first);
        }
        slots[slot] = Some(NamedTensor::new(input.name, tensor));
    }
    blobs.finish()?;
    limits::check_rows(rows, &state.config)?;
    let mut ordered = Vec::with_capacity(slots.len());
    for (index, slot) in slots.into_iter().enumerate() {
        match slot {
            Some(tensor) => ordered.push(tensor),
            None if specs.is_empty() => {}
            None => {
                return Err(ApiError::bad_request(format!(
                    "model '{}' needs input '{}', which the request does not give",
                    loaded.name, specs[index].name
                )))
            }
        }
    }
    Ok(ordered)
}

fn build_tensor(
    config: &HttpConfig,
    input: &InputTensor<'_>,
    what: &str,
    spec: Option<&TensorSpec>,
    blobs: &mut binary::Blobs<'_>,
) -> Result<Tensor, ApiError> {
    json::check_supported(&input.parameters, what).map_err(ApiError::bad_request)?;
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{what} has unknown datatype '{}'; expected one of BOOL, UINT8, UINT16, UINT32, \
             UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES",
            printable(&input.datatype)
        ))
    })?;
    let shape = input
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{what} has a negative dimension in its shape {:?}",
                input.shape
            ))
        })?;
    let elements = element_count(&shape).map_err(ApiError)?;
    limits::check_elements(what, elements, config)?;
    if elements == 0 {
        return Err(ApiError::bad_request(format!(
            "{what} is empty (shape {shape:?})"
        )));
    }

    let data = match (binary_size(&input.parameters, what)?, input.data) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "{what} has both JSON data and binary_data_size; give one"
            )))
        }
        (None, None) => return Err(ApiError::bad_request(format!("{what} has no data"))),
        (Some(size), None) => raw::decode(blobs.take(size, what)?, datatype, elements, what)?,
        (None, Some(raw)) => {
            let sink = Sink::for_datatype(datatype, elements)
                .map_err(|m| ApiError::bad_request(format!("{what}: {m}")))?;
            let label = format!("{what} data");
            // Capped at the shape's element count: more data than the shape holds is a
            // mismatch, found without parsing (or allocating for) the rest.
            let (_, sink) = nested::parse(raw.get(), sink, &label, elements, config.max_json_depth)
                .map_err(|(message, over)| {
                    if over {
                        ApiError::bad_request(format!(
                            "{what} has more data than its shape {shape:?} holds ({elements} elements)"
                        ))
                    } else {
                        ApiError::bad_request(message)
                    }
                })?;
            if sink.len() != elements {
                return Err(ApiError::bad_request(format!(
                    "{what} has shape {shape:?} ({elements} elements) but its data has {}",
                    sink.len()
                )));
            }
            sink.into_data()
        }
    };
    let data = match spec {
        Some(spec) => {
            check_shape(&shape, spec, what)?;
            coerce(data, spec.datatype, what)?
        }
        None => data,
    };
    Tensor::new(shape, data).map_err(ApiError)
}

/// Triton's `timeout` request parameter: the request's deadline in microseconds.
fn timeout_parameter(parameters: &Parameters) -> Result<Option<Duration>, ApiError> {
    match parameters.get("timeout") {
        None => Ok(None),
        Some(p) => p
            .as_u64()
            .filter(|&us| us > 0)
            .map(|us| Some(Duration::from_micros(us)))
            .ok_or_else(|| {
                ApiError::bad_request("the timeout parameter must be a positive integer (µs)")
            }),
    }
}

fn binary_size(parameters: &Parameters, what: &str) -> Result<Option<usize>, ApiError> {
    match parameters.get("binary_data_size") {
        None => Ok(None),
        Some(p) => p
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what}: binary_data_size must be a non-negative integer"
                ))
            }),
    }
}

/// The shape must have the declared rank and match every fixed dimension.
fn check_shape(shape: &[usize], spec: &TensorSpec, what: &str) -> Result<(), ApiError> {
    let fits = shape.len() == spec.shape.len()
        && shape
            .iter()
            .zip(&spec.shape)
            .all(|(&d, &s)| s < 0 || d as i64 == s);
    if fits {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} has shape {shape:?} but the model expects {:?} (-1: any size)",
            spec.shape
        )))
    }
}

/// One output the client asked for (or every output), and whether it goes back binary.
struct Requested {
    index: usize,
    binary: bool,
}

fn requested_outputs(
    loaded: &LoadedModel,
    outputs: Option<Vec<json::RequestedOutput>>,
    parameters: &Parameters,
) -> Result<Vec<Requested>, ApiError> {
    let all_binary = match parameters.get("binary_data_output") {
        None => false,
        Some(p) => p
            .as_bool()
            .ok_or_else(|| ApiError::bad_request("binary_data_output must be true or false"))?,
    };
    let specs = &loaded.model.metadata().outputs;
    let Some(outputs) = outputs else {
        return Ok((0..specs.len())
            .map(|index| Requested {
                index,
                binary: all_binary,
            })
            .collect());
    };
    let mut requested = Vec::with_capacity(outputs.len());
    for output in outputs {
        let what = format!("output '{}'", printable(&output.name));
        json::check_supported(&output.parameters, &what).map_err(ApiError::bad_request)?;
        let index = specs
            .iter()
            .position(|s| s.name == output.name)
            .ok_or_else(|| {
                let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                ApiError::bad_request(format!(
                    "model '{}' has no {what}; its outputs are: {}",
                    loaded.name,
                    names.join(", ")
                ))
            })?;
        if requested.iter().any(|r: &Requested| r.index == index) {
            return Err(ApiError::bad_request(format!("{what} is requested twice")));
        }
        let binary = match output.parameters.get("binary_data") {
            None => all_binary,
            Some(p) => p.as_bool().ok_or_else(|| {
                ApiError::bad_request(format!("{what}: binary_data must be true or false"))
            })?,
        };
        requested.push(Requested { index, binary });
    }
    Ok(requested)
}

fn respond(
    loaded: &LoadedModel,
    id: Option<&str>,
    requested: &[Requested],
    outputs: &[NamedTensor],
) -> Result<Response, ApiError> {
    let specs = &loaded.model.metadata().outputs;
    let mut blobs = Vec::new();
    let mut entries = Vec::with_capacity(requested.len());
    for r in requested {
        let spec = &specs[r.index];
        let output = outputs
            .iter()
            .find(|o| o.name == spec.name)
            .or_else(|| outputs.get(r.index))
            .ok_or_else(|| ApiError(Error::internal("the model did not give a declared output")))?;
        let data = output.tensor.data();
        // The declared type when the data is in its core type; half floats only travel binary.
        let mut datatype = if spec.datatype.core_type() == data.datatype() {
            spec.datatype
        } else {
            data.datatype()
        };
        let binary_size = if r.binary {
            let start = blobs.len();
            raw::encode(&mut blobs, data, datatype)?;
            Some(blobs.len() - start)
        } else {
            if matches!(datatype, DataType::F16 | DataType::BF16) {
                datatype = DataType::F32;
            }
            None
        };
        entries.push(OutputEntry {
            name: &spec.name,
            datatype,
            tensor: &output.tensor,
            binary_size,
        });
    }
    let mut buf = Vec::with_capacity(128 + blobs.len());
    json::write_response(&mut buf, &loaded.name, loaded.version, id, &entries);
    if blobs.is_empty() && entries.iter().all(|e| e.binary_size.is_none()) {
        return Ok(json_response(buf));
    }
    let header_length = buf.len();
    buf.extend_from_slice(&blobs);
    let mut response = buf.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(header_length));
    Ok(response)
}

/// A client's name, safe to echo: no control characters, at most 64 characters.
pub fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(64).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}
