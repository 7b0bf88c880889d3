//! The same requests through every front end, answers compared: HTTP V2 JSON, HTTP V2 binary,
//! gRPC typed contents and gRPC raw contents, against one registry. Number conversion and load
//! shedding are rules of core's; a front end that answered differently would have grown its own.

// Only `start` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

use std::sync::{Arc, Condvar, Mutex};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, Registry};
use inferd_core::repository::config::BatchingConfig;
use inferd_core::tensor::raw;
use inferd_core::{DataType, Model, ModelMetadata, NamedTensor, Tensor, TensorData, TensorSpec};
use inferd_grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use inferd_grpc::proto::model_infer_request::InferInputTensor;
use inferd_grpc::proto::{InferTensorContents, ModelInferRequest};
use inferd_grpc::status::ERROR_TYPE_KEY;
use inferd_grpc::GrpcConfig;
use inferd_http::{AppState, HttpConfig};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Code;
use tower::ServiceExt;

type Client = GrpcInferenceServiceClient<Channel>;

/// Returns its one input, `x` of `datatype` with any length, as `y`.
struct Echo(ModelMetadata);

impl Echo {
    fn new(datatype: DataType) -> Self {
        Self(ModelMetadata {
            platform: "test".into(),
            inputs: vec![TensorSpec::new("x", datatype, vec![-1])],
            outputs: vec![TensorSpec::new("y", datatype, vec![-1])],
            prediction_output: 0,
            probabilities_output: None,
        })
    }
}

impl Model for Echo {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> inferd_core::Result<Vec<NamedTensor>> {
        let x = inputs.into_iter().next().unwrap().tensor;
        Ok(vec![NamedTensor::new("y", x)])
    }
}

/// What a request sends: a datatype and its values, each front end encoding them its own way.
#[derive(Clone, Copy, Debug)]
enum Sent {
    Fp64(&'static [f64]),
    Int64(&'static [i64]),
    Uint64(&'static [u64]),
}

impl Sent {
    fn datatype(self) -> &'static str {
        match self {
            Sent::Fp64(_) => "FP64",
            Sent::Int64(_) => "INT64",
            Sent::Uint64(_) => "UINT64",
        }
    }

    fn len(self) -> usize {
        match self {
            Sent::Fp64(v) => v.len(),
            Sent::Int64(v) => v.len(),
            Sent::Uint64(v) => v.len(),
        }
    }

    fn json(self) -> Value {
        match self {
            Sent::Fp64(v) => json!(v),
            Sent::Int64(v) => json!(v),
            Sent::Uint64(v) => json!(v),
        }
    }

    fn raw(self) -> Vec<u8> {
        match self {
            Sent::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Sent::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Sent::Uint64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    fn contents(self) -> InferTensorContents {
        let mut c = InferTensorContents::default();
        match self {
            Sent::Fp64(v) => c.fp64_contents = v.to_vec(),
            Sent::Int64(v) => c.int64_contents = v.to_vec(),
            Sent::Uint64(v) => c.uint64_contents = v.to_vec(),
        }
        c
    }
}

/// An answer, the same whichever front end gave it: the output as numbers, or the error's
/// `error_type` and message.
#[derive(Debug, PartialEq)]
enum Answer {
    Values(Vec<f64>),
    Refused { error_type: String, message: String },
}

/// The HTTP status and gRPC code the error table gives an `error_type`, checked on every answer.
fn codes(error_type: &str) -> (u16, Code) {
    match error_type {
        "bad_request" => (400, Code::InvalidArgument),
        "overloaded" => (503, Code::Unavailable),
        other => panic!("unexpected error_type {other}"),
    }
}

async fn http(state: &AppState, model: &str, sent: Sent, binary: bool) -> Answer {
    let mut input = json!({"name": "x", "shape": [sent.len()], "datatype": sent.datatype()});
    let mut request = Request::post(format!("/v2/models/{model}/infer"));
    let body = if binary {
        let raw = sent.raw();
        input["parameters"] = json!({"binary_data_size": raw.len()});
        let header = json!({"inputs": [input], "parameters": {"binary_data_output": true}});
        let header = header.to_string();
        request = request.header("inference-header-content-length", header.len());
        [header.into_bytes(), raw].concat()
    } else {
        input["data"] = sent.json();
        json!({"inputs": [input]}).to_string().into_bytes()
    };
    let response = inferd_http::app(state.clone())
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let header_length = response
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let (header, blob) = bytes.split_at(header_length.unwrap_or(bytes.len()));
    let body: Value = serde_json::from_slice(header).unwrap();
    if status == 200 {
        let output = &body["outputs"][0];
        if header_length.is_none() {
            let data = output["data"].as_array().unwrap();
            return Answer::Values(data.iter().map(|v| v.as_f64().unwrap()).collect());
        }
        let datatype = DataType::parse(output["datatype"].as_str().unwrap()).unwrap();
        let data = raw::decode(blob, datatype, sent.len(), "y").unwrap();
        let tensor = Tensor::new(vec![sent.len()], data).unwrap();
        return Answer::Values(tensor.to_f64().unwrap().into_owned());
    }
    let error_type = body["error_type"].as_str().unwrap().to_owned();
    assert_eq!(status, codes(&error_type).0, "{body}");
    assert_eq!(retry_after, error_type == "overloaded", "{body}");
    Answer::Refused {
        error_type,
        message: body["error"].as_str().unwrap().to_owned(),
    }
}

async fn grpc(mut client: Client, model: &str, sent: Sent, raw: bool) -> Answer {
    let mut input = InferInputTensor {
        name: "x".into(),
        datatype: sent.datatype().into(),
        shape: vec![sent.len() as i64],
        ..Default::default()
    };
    let mut request = ModelInferRequest {
        model_name: model.into(),
        ..Default::default()
    };
    if raw {
        request.raw_input_contents = vec![sent.raw().into()];
    } else {
        input.contents = Some(sent.contents());
    }
    request.inputs = vec![input];
    match client.model_infer(request).await {
        Ok(response) => {
            let response = response.into_inner();
            let output = &response.outputs[0];
            let datatype = DataType::parse(&output.datatype).unwrap();
            let data = match (response.raw_output_contents.first(), &output.contents) {
                (Some(bytes), _) => raw::decode(bytes, datatype, sent.len(), "y").unwrap(),
                (None, Some(c)) if datatype == DataType::F32 => {
                    TensorData::F32(c.fp32_contents.clone())
                }
                (None, Some(c)) => TensorData::I32(c.int_contents.clone()),
                (None, None) => panic!("an answer without data"),
            };
            let tensor = Tensor::new(vec![sent.len()], data).unwrap();
            Answer::Values(tensor.to_f64().unwrap().into_owned())
        }
        Err(status) => {
            let error_type = status.metadata().get(ERROR_TYPE_KEY).unwrap();
            let error_type = error_type.to_str().unwrap().to_owned();
            assert_eq!(status.code(), codes(&error_type).1, "{status:?}");
            Answer::Refused {
                error_type,
                message: status.message().to_owned(),
            }
        }
    }
}

/// Every front end's answer to `sent`, labelled; JSON only where JSON can carry the values.
async fn every_front_end(
    server: &common::Server,
    state: &AppState,
    model: &str,
    sent: Sent,
) -> Vec<(&'static str, Answer)> {
    let json_can = !matches!(sent, Sent::Fp64(v) if v.iter().any(|x| !x.is_finite()));
    let mut answers = Vec::new();
    if json_can {
        answers.push(("http json", http(state, model, sent, false).await));
    }
    answers.push(("http binary", http(state, model, sent, true).await));
    let client = || server.client.clone();
    answers.push(("grpc typed", grpc(client(), model, sent, false).await));
    answers.push(("grpc raw", grpc(client(), model, sent, true).await));
    answers
}

fn http_state(registry: &Registry) -> AppState {
    AppState::new(
        registry.clone(),
        Executor::new(1, 16),
        HttpConfig::default(),
    )
}

#[tokio::test]
async fn numbers_that_do_not_fit_are_refused_alike_everywhere() {
    let server = common::start(GrpcConfig::default()).await;
    for datatype in [DataType::F32, DataType::I32] {
        let name = format!("echo_{}", datatype.as_str().to_lowercase());
        let model = LoadedModel::new(name, 1, Arc::new(Echo::new(datatype)));
        server.registry.insert(model);
    }
    let state = http_state(&server.registry);

    const FP32_MAX: f64 = f32::MAX as f64;
    // Model, what is sent, and the values answered or the end of the message refusing them.
    type Expected = Result<Vec<f64>, &'static str>;
    let cases: [(&str, Sent, Expected); 8] = [
        (
            "echo_fp32",
            Sent::Fp64(&[1.0, 1e39]),
            Err("has 1e39 at element 1, out of range for FP32"),
        ),
        (
            "echo_fp32",
            Sent::Fp64(&[-3.5e38, 0.0]),
            Err("has -3.5e38 at element 0, out of range for FP32"),
        ),
        (
            "echo_fp32",
            Sent::Fp64(&[f64::MAX]),
            Err("has 1.7976931348623157e308 at element 0, out of range for FP32"),
        ),
        // FP32's own limits pass, and so does what rounds to them.
        (
            "echo_fp32",
            Sent::Fp64(&[FP32_MAX, -FP32_MAX, 0.5]),
            Ok(vec![FP32_MAX, -FP32_MAX, 0.5]),
        ),
        // Infinities the client sent are carried (binary and gRPC only: JSON has none).
        (
            "echo_fp32",
            Sent::Fp64(&[f64::INFINITY, 2.0]),
            Ok(vec![f64::INFINITY, 2.0]),
        ),
        (
            "echo_int32",
            Sent::Int64(&[7, 1 << 40]),
            Err("has 1099511627776 at element 1, out of range for INT32"),
        ),
        (
            "echo_int32",
            Sent::Uint64(&[0, u64::MAX]),
            Err("has 18446744073709551615 at element 1, out of range for UINT64"),
        ),
        (
            "echo_fp32",
            Sent::Int64(&[i64::MAX, -1]),
            Ok(vec![f64::from(i64::MAX as f32), -1.0]),
        ),
    ];
    for (model, sent, expected) in cases {
        for (front_end, answer) in every_front_end(&server, &state, model, sent).await {
            let case = format!("{model} {sent:?} over {front_end}");
            match (&expected, answer) {
                (Ok(values), Answer::Values(got)) if front_end != "http json" => {
                    assert_eq!(&got, values, "{case}")
                }
                // JSON answers FP32 as its shortest decimal, which reads back as a nearby FP64.
                (Ok(values), Answer::Values(got)) => {
                    assert_eq!(got.len(), values.len(), "{case}");
                    for (g, v) in got.iter().zip(values) {
                        assert!((g - v).abs() <= v.abs() * 1e-7, "{case}: {got:?}");
                    }
                }
                (
                    Err(text),
                    Answer::Refused {
                        error_type,
                        message,
                    },
                ) => {
                    assert_eq!(error_type, "bad_request", "{case}");
                    // The JSON parser names the array it reads (`input 'x' data`) where the
                    // others name the tensor; the rest is core's text, word for word.
                    let message = message.replacen("input 'x' data", "input 'x'", 1);
                    assert_eq!(message, format!("input 'x' {text}"), "{case}");
                }
                (expected, answer) => panic!("{case}: expected {expected:?}, got {answer:?}"),
            }
        }
    }
}

/// Holds every call until opened, and says when a call has started, so a test can fill a
/// queue without timing anything.
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    entered: mpsc::UnboundedSender<()>,
}

impl Gate {
    fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<()>) {
        let (entered, calls) = mpsc::unbounded_channel();
        let gate = Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
            entered,
        };
        (Arc::new(gate), calls)
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let _ = self.entered.send(());
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

struct Gated(Echo, Arc<Gate>);

impl Model for Gated {
    fn metadata(&self) -> &ModelMetadata {
        self.0.metadata()
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> inferd_core::Result<Vec<NamedTensor>> {
        self.1.pass();
        self.0.infer(inputs)
    }

    fn cost_per_row_ns(&self) -> u64 {
        u64::MAX / 2 // never inline: always through the batching queue
    }
}

/// `future`'s output; a test that would otherwise hang fails after 10 s instead, naming what it
/// waited for.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    let limit = std::time::Duration::from_secs(10);
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("still waiting for {what} after 10 s"))
}

#[tokio::test]
async fn a_full_batching_queue_is_unavailable_on_grpc_and_503_on_http() {
    let server = common::start(GrpcConfig::default()).await;
    let (gate, mut entered) = Gate::new();
    // One inference thread, batches of one row and a queue of one request: one call
    // computing and one queued fill it.
    let executor = Executor::new(1, 16);
    let batching = BatchingConfig {
        max_batch_size: 1,
        max_queue_delay_ms: 0.0,
        max_queue_size: 1,
    };
    let gated = Gated(Echo::new(DataType::F32), Arc::clone(&gate));
    let model = LoadedModel::new("gated", 1, Arc::new(gated)).with_batching(&batching, &executor);
    assert!(model.is_batched());
    server.registry.insert(model);
    let loaded = server.registry.resolve("gated", Some(1)).unwrap();
    let state = http_state(&server.registry);
    let sent = Sent::Fp64(&[1.0]);
    let computing = tokio::spawn(grpc(server.client.clone(), "gated", sent, false));
    within("the first call to start", entered.recv()).await;
    let queued = tokio::spawn(grpc(server.client.clone(), "gated", sent, false));
    within("the second call to fill the queue", async {
        while loaded.admit(&executor).is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // `grpc` and `http` check each refusal's codes against the table: UNAVAILABLE, and 503
    // with Retry-After.
    let over_grpc = within(
        "the gRPC refusal",
        grpc(server.client.clone(), "gated", sent, false),
    )
    .await;
    let over_http = within("the HTTP refusal", http(&state, "gated", sent, false)).await;
    for answer in [over_grpc, over_http] {
        match answer {
            Answer::Refused {
                error_type,
                message,
            } => {
                assert_eq!(error_type, "overloaded");
                assert!(message.contains("queue is full"), "{message}");
            }
            other => panic!("a call past a full queue was answered: {other:?}"),
        }
    }

    gate.open();
    assert_eq!(computing.await.unwrap(), Answer::Values(vec![1.0]));
    assert_eq!(queued.await.unwrap(), Answer::Values(vec![1.0]));
}
