//! KServe V1 and TF Serving REST, which share the `/v1/models` path space: model list and
//! status, TF Serving metadata, and `:predict` with `instances` (rows) or `inputs` (columnar),
//! by name, `/versions/{v}` or `/labels/{label}`.
//!
//! Where the two protocols answer the same path differently, one answer carries both:
//! `GET /v1/models/{m}` gives KServe's `name`/`ready` and TF Serving's `model_version_status`.
//! `instances` answers `predictions` with the model's prediction output per row (what
//! scikit-learn's `predict` returns, as KServe's sklearn server does); `inputs` answers `outputs`
//! with every output (the tensor itself for a one-output model, else an object by name).
//! Labels are the registry's (`ModelVersions::labels`, from each model's repository config).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use inferd_core::registry::LoadedModel;
use inferd_core::{DataType, Error, NamedTensor, Tensor, TensorData, TensorSpec};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{json, json_response, ApiError};
use crate::metrics::{self, Served};
use crate::nested::{self, Sink};
use crate::v2::{parse_version, printable};
use crate::{limits, tensors, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(list))
        .route("/v1/models/{model}", get(status).post(predict))
        .route("/v1/models/{model}/metadata", get(metadata))
        .route(
            "/v1/models/{model}/versions/{version}",
            get(status_version).post(predict_version),
        )
        .route(
            "/v1/models/{model}/versions/{version}/metadata",
            get(metadata_version),
        )
        .route(
            "/v1/models/{model}/labels/{label}",
            get(status_label).post(predict_label),
        )
        .route(
            "/v1/models/{model}/labels/{label}/metadata",
            get(metadata_label),
        )
}

type PathParams<T> = Result<Path<T>, PathRejection>;

fn path<T>(params: PathParams<T>) -> Result<T, ApiError> {
    params
        .map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
}

/// How a path picks the version.
enum Pick<'a> {
    Newest,
    Version(&'a str),
    Label(&'a str),
}

fn resolve(
    state: &AppState,
    model: &str,
    pick: Pick<'_>,
    headers: &HeaderMap,
) -> Result<Arc<LoadedModel>, ApiError> {
    match pick {
        Pick::Newest => state.resolve(model, None, headers),
        Pick::Version(v) => state.resolve(model, Some(parse_version(v)?), headers),
        Pick::Label(label) => {
            // An unknown model is a 404 about the model, not about the label.
            state.registry.resolve(model, None).map_err(ApiError)?;
            state.registry.resolve_label(model, label).map_err(ApiError)
        }
    }
}

/// Why a `:verb` path segment is refused.
#[derive(Debug)]
enum NotPredict {
    /// Another verb (`:classify`, `:explain`...).
    Verb(ApiError),
    /// No verb: a POST to a GET-only path.
    Missing,
}

impl IntoResponse for NotPredict {
    fn into_response(self) -> Response {
        match self {
            NotPredict::Verb(e) => e.into_response(),
            NotPredict::Missing => crate::error::method_not_allowed_with("GET"),
        }
    }
}

/// Splits `name:verb`; only `predict` is served.
fn predict_target(segment: &str) -> Result<&str, NotPredict> {
    match segment.rsplit_once(':') {
        Some((name, "predict")) if !name.is_empty() => Ok(name),
        Some((_, verb)) => Err(NotPredict::Verb(ApiError::bad_request(format!(
            "':{}' is not supported; inferd serves ':predict'",
            printable(verb)
        )))),
        None => Err(NotPredict::Missing),
    }
}

// --- model list and status ---------------------------------------------------------------

#[derive(Serialize)]
struct List {
    models: Vec<String>,
}

async fn list(State(state): State<AppState>) -> Response {
    json(&List {
        models: state.registry.snapshot().models.keys().cloned().collect(),
    })
}

#[derive(Serialize)]
struct VersionStatus {
    version: String,
    state: &'static str,
    status: StatusCode,
}

#[derive(Serialize)]
struct StatusCode {
    error_code: &'static str,
    error_message: &'static str,
}

#[derive(Serialize)]
struct Status<'a> {
    name: &'a str,
    ready: bool,
    model_version_status: Vec<VersionStatus>,
}

fn version_status(state: &AppState, model: &str, pick: Pick<'_>) -> Result<Response, ApiError> {
    let all = matches!(pick, Pick::Newest);
    let loaded = resolve(state, model, pick, &HeaderMap::new())?;
    let versions: Vec<String> = if all {
        crate::v2::versions_of(state, &loaded.name)
            .into_iter()
            .rev()
            .collect()
    } else {
        vec![loaded.version.to_string()]
    };
    let ok = || StatusCode {
        error_code: "OK",
        error_message: "",
    };
    Ok(json(&Status {
        name: &loaded.name,
        ready: true,
        model_version_status: versions
            .into_iter()
            .map(|version| VersionStatus {
                version,
                state: "AVAILABLE",
                status: ok(),
            })
            .collect(),
    }))
}

async fn status(
    State(state): State<AppState>,
    p: PathParams<String>,
) -> Result<Response, ApiError> {
    let model = path(p)?;
    if model.contains(':') {
        return Err(ApiError::bad_request("':predict' takes POST"));
    }
    version_status(&state, &model, Pick::Newest)
}

async fn status_version(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (model, version) = path(p)?;
    version_status(&state, &model, Pick::Version(&version))
}

async fn status_label(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (model, label) = path(p)?;
    version_status(&state, &model, Pick::Label(&label))
}

// --- TF Serving metadata ------------------------------------------------------------------

#[derive(Serialize)]
struct TensorInfo {
    dtype: &'static str,
    tensor_shape: TensorShape,
    name: String,
}

#[derive(Serialize)]
struct TensorShape {
    dim: Vec<Dim>,
    unknown_rank: bool,
}

#[derive(Serialize)]
struct Dim {
    size: String,
    name: &'static str,
}

/// TensorFlow's name for a datatype.
fn tf_dtype(datatype: DataType) -> &'static str {
    use DataType::*;
    match datatype {
        Bool => "DT_BOOL",
        U8 => "DT_UINT8",
        U16 => "DT_UINT16",
        U32 => "DT_UINT32",
        U64 => "DT_UINT64",
        I8 => "DT_INT8",
        I16 => "DT_INT16",
        I32 => "DT_INT32",
        I64 => "DT_INT64",
        F16 => "DT_HALF",
        BF16 => "DT_BFLOAT16",
        F32 => "DT_FLOAT",
        F64 => "DT_DOUBLE",
        Bytes => "DT_STRING",
    }
}

fn tensor_infos(specs: &[TensorSpec]) -> BTreeMap<&str, TensorInfo> {
    specs
        .iter()
        .map(|s| {
            let dim = s
                .shape
                .iter()
                .map(|d| Dim {
                    size: d.to_string(),
                    name: "",
                })
                .collect();
            let info = TensorInfo {
                dtype: tf_dtype(s.datatype),
                tensor_shape: TensorShape {
                    dim,
                    unknown_rank: false,
                },
                name: format!("{}:0", s.name),
            };
            (s.name.as_str(), info)
        })
        .collect()
}

fn tf_metadata(state: &AppState, model: &str, pick: Pick<'_>) -> Result<Response, ApiError> {
    let loaded = resolve(state, model, pick, &HeaderMap::new())?;
    let meta = loaded.model.metadata();
    let signature = serde_json::json!({
        "inputs": tensor_infos(&meta.inputs),
        "outputs": tensor_infos(&meta.outputs),
        "method_name": "tensorflow/serving/predict",
    });
    Ok(json(&serde_json::json!({
        "model_spec": {"name": loaded.name, "signature_name": "", "version": loaded.version.to_string()},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
    })))
}

async fn metadata(
    State(state): State<AppState>,
    p: PathParams<String>,
) -> Result<Response, ApiError> {
    tf_metadata(&state, &path(p)?, Pick::Newest)
}

async fn metadata_version(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (model, version) = path(p)?;
    tf_metadata(&state, &model, Pick::Version(&version))
}

async fn metadata_label(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (model, label) = path(p)?;
    tf_metadata(&state, &model, Pick::Label(&label))
}

// --- :predict -----------------------------------------------------------------------------

async fn predict(
    State(state): State<AppState>,
    p: PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let segment = path(p)?;
    let model = match predict_target(&segment) {
        Ok(model) => model,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    timed_answer(&state, model, Pick::Newest, &headers, body).await
}

async fn predict_version(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (model, segment) = path(p)?;
    let version = match predict_target(&segment) {
        Ok(version) => version,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    timed_answer(&state, &model, Pick::Version(version), &headers, body).await
}

async fn predict_label(
    State(state): State<AppState>,
    p: PathParams<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (model, segment) = path(p)?;
    let label = match predict_target(&segment) {
        Ok(label) => label,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    timed_answer(&state, &model, Pick::Label(label), &headers, body).await
}

#[derive(Deserialize)]
struct PredictRequest<'a> {
    #[serde(default, borrow)]
    instances: Option<&'a RawValue>,
    #[serde(default, borrow)]
    inputs: Option<&'a RawValue>,
    #[serde(default)]
    signature_name: Option<String>,
}

async fn timed_answer(
    state: &AppState,
    model: &str,
    pick: Pick<'_>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let timer = metrics::start(metrics::V1);
    let mut served = None;
    let result = answer(state, model, pick, headers, body, &mut served).await;
    Ok(metrics::finish(timer, &served, result))
}

async fn answer(
    state: &AppState,
    model: &str,
    pick: Pick<'_>,
    headers: &HeaderMap,
    body: Body,
    served: &mut Served,
) -> Result<Response, ApiError> {
    let config = &state.config;
    let body = limits::read_body(headers, body, config.max_body_bytes).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            r#"the body is empty; send {"instances": [[...], ...]} or {"inputs": ...}"#,
        ));
    }
    limits::check_json_depth(&body, config.max_json_depth)?;
    limits::require_object(&body, r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))?;
    let request: PredictRequest = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("invalid :predict body: {e}")))?;
    if let Some(name) = request.signature_name.as_deref() {
        if !name.is_empty() && name != "serving_default" {
            return Err(ApiError::bad_request(format!(
                "signature '{}' is unknown; models have one signature, 'serving_default'",
                printable(name)
            )));
        }
    }
    let options = tensors::options(state, headers, None)?;
    let loaded = resolve(state, model, pick, headers)?;
    *served = Some(Arc::clone(&loaded));
    match (request.instances, request.inputs) {
        (Some(instances), None) => {
            let inputs = columns(state, &loaded, instances, "instances")?;
            let outputs = tensors::run(state, &loaded, inputs, options).await?;
            let index = loaded.model.metadata().prediction_output;
            let prediction = outputs
                .get(index)
                .ok_or_else(|| ApiError(Error::internal("the model gave no prediction")))?;
            let mut buf = Vec::with_capacity(64);
            buf.extend_from_slice(br#"{"predictions":"#);
            tensors::write_per_row(&mut buf, &prediction.tensor);
            buf.push(b'}');
            Ok(json_response(buf))
        }
        (None, Some(inputs)) => {
            let inputs = columns(state, &loaded, inputs, "inputs")?;
            let outputs = tensors::run(state, &loaded, inputs, options).await?;
            let specs = &loaded.model.metadata().outputs;
            let mut buf = Vec::with_capacity(64);
            buf.extend_from_slice(br#"{"outputs":"#);
            if let [only] = outputs.as_slice() {
                write_tensor(&mut buf, &only.tensor);
            } else {
                buf.push(b'{');
                for (i, output) in outputs.iter().enumerate().take(specs.len().max(1)) {
                    if i > 0 {
                        buf.push(b',');
                    }
                    tensors::write_str(&mut buf, &output.name);
                    buf.push(b':');
                    write_tensor(&mut buf, &output.tensor);
                }
                buf.push(b'}');
            }
            buf.push(b'}');
            Ok(json_response(buf))
        }
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give either \"instances\" or \"inputs\", not both",
        )),
        (None, None) => Err(ApiError::bad_request(
            r#"missing "instances" (rows) or "inputs" (columns), e.g. {"instances": [[5.1, 3.5, 1.4, 0.2]]}"#,
        )),
    }
}

fn write_tensor(buf: &mut Vec<u8>, tensor: &Tensor) {
    tensors::write_nested(buf, tensor.data(), tensor.shape(), 0);
}

/// The model's inputs from `instances` or `inputs`: one list for a one-input model, or an object
/// of lists by input name.
fn columns(
    state: &AppState,
    loaded: &LoadedModel,
    raw: &RawValue,
    what: &str,
) -> Result<Vec<NamedTensor>, ApiError> {
    let specs = &loaded.model.metadata().inputs;
    let text = raw.get().trim_start();
    if text.starts_with('[') {
        let [spec] = specs.as_slice() else {
            return Err(ApiError::bad_request(format!(
                "model '{}' has {} inputs; give \"inputs\" as an object by input name",
                loaded.name,
                specs.len()
            )));
        };
        let (shape, data) = parse_list(state, text, spec.datatype, what)?;
        if loaded.model.metadata().row_features().is_some() {
            return Ok(tensors::row_input(loaded, &shape, data, state, what)?.0);
        }
        return Ok(vec![NamedTensor::new(
            spec.name.clone(),
            tensor_for(state, spec, shape, data, what)?,
        )]);
    }
    if what == "instances" {
        return Err(ApiError::bad_request(
            "\"instances\" must be a list of rows; for inputs by name use the columnar \"inputs\" form",
        ));
    }
    let by_name: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(|_| {
        ApiError::bad_request("\"inputs\" must be a list, or an object of lists by input name")
    })?;
    for name in by_name.keys() {
        if !specs.iter().any(|s| &s.name == name) {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "model '{}' has no input '{}'; its inputs are: {}",
                loaded.name,
                printable(name),
                names.join(", ")
            )));
        }
    }
    specs
        .iter()
        .map(|spec| {
            let raw = by_name.get(&spec.name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "\"inputs\" lacks the model's input '{}'",
                    spec.name
                ))
            })?;
            let label = format!("input '{}'", spec.name);
            let (shape, data) = parse_list(state, raw.get(), spec.datatype, &label)?;
            Ok(NamedTensor::new(
                spec.name.clone(),
                tensor_for(state, spec, shape, data, &label)?,
            ))
        })
        .collect()
}

fn parse_list(
    state: &AppState,
    text: &str,
    datatype: DataType,
    what: &str,
) -> Result<(Vec<usize>, TensorData), ApiError> {
    let config = &state.config;
    // Half floats arrive as JSON numbers here (TF Serving has no binary form): parse as FP32.
    let parse_as = match datatype {
        DataType::F16 | DataType::BF16 => DataType::F32,
        other => other,
    };
    let sink = Sink::for_datatype(parse_as, 0).map_err(ApiError::bad_request)?;
    let (shape, sink) = nested::parse(
        text,
        sink,
        what,
        config.max_tensor_elements,
        config.max_json_depth,
    )
    .map_err(|(message, over)| {
        if over {
            ApiError(Error::too_large(message))
        } else {
            ApiError::bad_request(message)
        }
    })?;
    Ok((shape, sink.into_data()))
}

fn tensor_for(
    state: &AppState,
    spec: &TensorSpec,
    shape: Vec<usize>,
    data: TensorData,
    what: &str,
) -> Result<Tensor, ApiError> {
    let fits = shape.len() == spec.shape.len()
        && shape
            .iter()
            .zip(&spec.shape)
            .all(|(&d, &s)| s < 0 || d as i64 == s);
    if !fits {
        return Err(ApiError::bad_request(format!(
            "{what} has shape {shape:?} but the model expects {:?} (-1: any size)",
            spec.shape
        )));
    }
    if shape.contains(&0) {
        return Err(ApiError::bad_request(format!(
            "{what} is empty (shape {shape:?})"
        )));
    }
    if let Some(&rows) = shape.first() {
        limits::check_rows(rows, &state.config)?;
    }
    let data = inferd_core::tensor::coerce(data, spec.datatype, what)?;
    Tensor::new(shape, data).map_err(ApiError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_predict_is_a_verb() {
        assert_eq!(predict_target("iris:predict").unwrap(), "iris");
        assert_eq!(predict_target("a:b:predict").unwrap(), "a:b");
        assert!(predict_target("iris:classify").is_err());
        assert!(predict_target(":predict").is_err());
        assert_eq!(
            predict_target("iris").unwrap_err().into_response().status(),
            405
        );
    }
}
