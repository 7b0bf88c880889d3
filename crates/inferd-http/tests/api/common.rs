//! Fake models and request helpers shared by the API tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response};
use http_body_util::BodyExt;
use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, Registry};
use inferd_core::{
    DataType, Error, Model, ModelMetadata, NamedTensor, Result, Tensor, TensorData, TensorSpec,
};
use inferd_http::{app, AppState, HttpConfig};
use tower::ServiceExt;

/// A deterministic iris-like classifier over 4 features: label and probabilities.
pub struct Classifier(ModelMetadata);

impl Classifier {
    pub fn new() -> Self {
        Self(ModelMetadata {
            platform: "fake".into(),
            inputs: vec![TensorSpec::new("float_input", DataType::F32, vec![-1, 4])],
            outputs: vec![
                TensorSpec::new("label", DataType::I64, vec![-1]),
                TensorSpec::new("probabilities", DataType::F32, vec![-1, 3]),
            ],
            prediction_output: 0,
            probabilities_output: Some(1),
        })
    }
}

impl Model for Classifier {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let x = inputs[0].tensor.to_f32()?;
        let rows = x.len() / 4;
        let mut labels = Vec::with_capacity(rows);
        let mut probabilities = Vec::with_capacity(rows * 3);
        for row in x.chunks(4) {
            let label = if row[2] < 2.5 {
                0
            } else if row[2] < 5.0 {
                1
            } else {
                2
            };
            labels.push(label);
            for class in 0..3 {
                probabilities.push(if class == label { 0.75 } else { 0.125 });
            }
        }
        Ok(vec![
            NamedTensor::new("label", Tensor::new(vec![rows], TensorData::I64(labels))?),
            NamedTensor::new(
                "probabilities",
                Tensor::new(vec![rows, 3], TensorData::F32(probabilities))?,
            ),
        ])
    }

    fn cost_per_row_ns(&self) -> u64 {
        100
    }
}

/// A regressor over 4 features: the sum of the features, as `[rows, 1]` like skl2onnx gives.
/// Costly enough to run on the inference threads.
pub struct Regressor(ModelMetadata);

impl Regressor {
    pub fn new() -> Self {
        Self(ModelMetadata {
            platform: "fake".into(),
            inputs: vec![TensorSpec::new("x", DataType::F64, vec![-1, 4])],
            outputs: vec![TensorSpec::new("variable", DataType::F64, vec![-1, 1])],
            prediction_output: 0,
            probabilities_output: None,
        })
    }
}

impl Model for Regressor {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let x = inputs[0].tensor.to_f64()?;
        let sums: Vec<f64> = x.chunks(4).map(|r| r.iter().sum()).collect();
        Ok(vec![NamedTensor::new(
            "variable",
            Tensor::new(vec![sums.len(), 1], TensorData::F64(sums))?,
        )])
    }

    fn cost_per_row_ns(&self) -> u64 {
        1_000_000
    }
}

/// Returns its inputs as outputs named `out` / `out2`: one input `in` of `datatype` with any
/// shape, and a second, optional-by-name FP32 input `extra`, for datatype and naming tests.
pub struct Echo(ModelMetadata);

impl Echo {
    pub fn new(datatype: DataType) -> Self {
        Self(ModelMetadata {
            platform: "echo".into(),
            inputs: vec![
                TensorSpec::new("in", datatype, vec![-1, -1]),
                TensorSpec::new("extra", DataType::F32, vec![-1]),
            ],
            outputs: vec![
                TensorSpec::new("out", datatype, vec![-1, -1]),
                TensorSpec::new("out2", DataType::F32, vec![-1]),
            ],
            prediction_output: 0,
            probabilities_output: None,
        })
    }
}

impl Model for Echo {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        if inputs.len() != 2 || inputs[0].name != "in" || inputs[1].name != "extra" {
            return Err(Error::internal("inputs not in declared order"));
        }
        let mut inputs = inputs.into_iter();
        let first = inputs.next().unwrap().tensor;
        let second = inputs.next().unwrap().tensor;
        Ok(vec![
            NamedTensor::new("out", first),
            NamedTensor::new("out2", second),
        ])
    }
}

/// The regressor, but taking 300 ms per call: for deadlines.
pub struct Slow(Regressor);

impl Model for Slow {
    fn metadata(&self) -> &ModelMetadata {
        self.0.metadata()
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.0.infer(inputs)
    }

    fn cost_per_row_ns(&self) -> u64 {
        300_000_000
    }
}

/// A model whose every call panics: the server must answer 500 and keep serving.
pub struct Panicking(ModelMetadata);

impl Model for Panicking {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        panic!("a bug in a runtime")
    }

    fn cost_per_row_ns(&self) -> u64 {
        1
    }
}

/// A model that always fails, to check error mapping.
pub struct Failing(ModelMetadata);

impl Model for Failing {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        Err(Error::new(inferd_core::ErrorKind::Overloaded, "too busy"))
    }
}

pub fn echo_name(datatype: DataType) -> String {
    format!("echo_{}", datatype.as_str().to_lowercase())
}

pub const ALL_TYPES: [DataType; 14] = [
    DataType::Bool,
    DataType::U8,
    DataType::U16,
    DataType::U32,
    DataType::U64,
    DataType::I8,
    DataType::I16,
    DataType::I32,
    DataType::I64,
    DataType::F16,
    DataType::BF16,
    DataType::F32,
    DataType::F64,
    DataType::Bytes,
];

/// A registry with `iris` (versions 1 and 2, labelled stable and canary; the default), `regressor`, `slow`, `failing`, `panicking` and one echo
/// model per datatype; ready.
pub fn registry() -> Registry {
    let registry = Registry::new();
    let add = |name: &str, version: u64, model: Arc<dyn Model>| {
        registry.insert(LoadedModel::new(name, version, model));
    };
    add("iris", 1, Arc::new(Classifier::new()));
    add("iris", 2, Arc::new(Classifier::new()));
    add("regressor", 1, Arc::new(Regressor::new()));
    add("slow", 1, Arc::new(Slow(Regressor::new())));
    let mut meta = Regressor::new().0;
    meta.platform = "failing".into();
    add("failing", 1, Arc::new(Failing(meta.clone())));
    add("panicking", 1, Arc::new(Panicking(meta)));
    for datatype in ALL_TYPES {
        add(&echo_name(datatype), 1, Arc::new(Echo::new(datatype)));
    }
    let mut snapshot = (*registry.snapshot()).clone();
    if let Some(iris) = snapshot.models.get_mut("iris") {
        iris.labels = BTreeMap::from([("stable".to_owned(), 1), ("canary".to_owned(), 2)]);
    }
    registry.publish(snapshot);
    registry.set_ready(true);
    registry
}

pub fn config() -> HttpConfig {
    HttpConfig {
        max_body_bytes: 64 * 1024,
        max_json_depth: 16,
        max_tensor_elements: 10_000,
        max_rows: 1_000,
        default_timeout: None,
    }
}

pub fn state() -> AppState {
    AppState::new(registry(), Executor::new(2, 16), config())
}

/// A response, its body read whole.
pub struct Answer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error` message of an error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error: {}", self.text()))
            .into()
    }
}

pub async fn send_to(state: AppState, request: Request<Body>) -> Answer {
    let response: Response<Body> = app(state).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn send(request: Request<Body>) -> Answer {
    send_to(state(), request).await
}

pub async fn get(path: &str) -> Answer {
    send(Request::get(path).body(Body::empty()).unwrap()).await
}

pub async fn post(path: &str, body: impl Into<Body>) -> Answer {
    send(
        Request::post(path)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap(),
    )
    .await
}
