//! What the gRPC tests share: fake models implementing `inferd_core::Model`, and a server on
//! port 0 with a connected tonic client.

use std::sync::Arc;
use std::time::Duration;

use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, Registry};
use inferd_core::{
    DataType, Error, Model, ModelMetadata, NamedTensor, Tensor, TensorData, TensorSpec,
};
use inferd_grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use inferd_grpc::{GrpcConfig, GrpcState};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A deterministic 3-class classifier over 4 features: the label is the index of the largest
/// of the first three features (reversed in version 2), the probabilities are one-hot.
pub struct Classifier {
    meta: ModelMetadata,
    version: u64,
}

impl Classifier {
    pub fn new(version: u64) -> Self {
        let meta = ModelMetadata {
            platform: "test".into(),
            inputs: vec![TensorSpec::new("features", DataType::F32, vec![-1, 4])],
            outputs: vec![
                TensorSpec::new("label", DataType::I64, vec![-1]),
                TensorSpec::new("probabilities", DataType::F32, vec![-1, 3]),
            ],
            prediction_output: 0,
            probabilities_output: Some(1),
        };
        Self { meta, version }
    }
}

impl Model for Classifier {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> inferd_core::Result<Vec<NamedTensor>> {
        let x = inputs[0].tensor.to_f32()?;
        let rows = inputs[0].tensor.rows();
        let mut labels = Vec::with_capacity(rows);
        let mut probabilities = Vec::with_capacity(rows * 3);
        for row in x.chunks(4) {
            let mut best = 0;
            for k in 1..3 {
                if row[k] > row[best] {
                    best = k;
                }
            }
            let label = if self.version == 2 { 2 - best } else { best };
            labels.push(label as i64);
            probabilities.extend((0..3).map(|k| if k == label { 1.0f32 } else { 0.0 }));
        }
        Ok(vec![
            NamedTensor::new("label", Tensor::new(vec![rows], TensorData::I64(labels))?),
            NamedTensor::new(
                "probabilities",
                Tensor::new(vec![rows, 3], TensorData::F32(probabilities))?,
            ),
        ])
    }
}

/// Strings in, their lengths and upper-cased copies out; outputs declared UINT32 and BYTES.
pub struct Strings(ModelMetadata);

impl Strings {
    pub fn new() -> Self {
        Self(ModelMetadata {
            platform: "test".into(),
            inputs: vec![TensorSpec::new("text", DataType::Bytes, vec![-1])],
            outputs: vec![
                TensorSpec::new("length", DataType::U32, vec![-1]),
                TensorSpec::new("upper", DataType::Bytes, vec![-1]),
            ],
            prediction_output: 0,
            probabilities_output: None,
        })
    }
}

impl Model for Strings {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> inferd_core::Result<Vec<NamedTensor>> {
        let TensorData::Bytes(texts) = inputs[0].tensor.data() else {
            return Err(Error::bad_request("text must be BYTES"));
        };
        let n = texts.len();
        let lengths = texts.iter().map(|t| t.len() as i64).collect();
        let upper = texts.iter().map(|t| t.to_ascii_uppercase()).collect();
        Ok(vec![
            NamedTensor::new("length", Tensor::new(vec![n], TensorData::I64(lengths))?),
            NamedTensor::new("upper", Tensor::new(vec![n], TensorData::Bytes(upper))?),
        ])
    }
}

/// Takes a while, on an inference thread: for deadlines.
pub struct Slow(ModelMetadata);

impl Model for Slow {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> inferd_core::Result<Vec<NamedTensor>> {
        std::thread::sleep(Duration::from_millis(1500));
        Ok(inputs)
    }

    fn cost_per_row_ns(&self) -> u64 {
        u64::MAX / 2
    }
}

/// Panics on every call: a bug in a runtime.
pub struct Panics(pub ModelMetadata);

impl Model for Panics {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, _: Vec<NamedTensor>) -> inferd_core::Result<Vec<NamedTensor>> {
        panic!("a runtime bug")
    }

    fn cost_per_row_ns(&self) -> u64 {
        1 // inline, on the async worker
    }
}

pub struct Server {
    pub client: GrpcInferenceServiceClient<Channel>,
    pub channel: Channel,
    pub registry: Registry,
    _stop: oneshot::Sender<()>,
}

pub async fn start(config: GrpcConfig) -> Server {
    let registry = Registry::new();
    registry.insert(LoadedModel::new(
        "classifier",
        1,
        Arc::new(Classifier::new(1)),
    ));
    registry.insert(LoadedModel::new(
        "classifier",
        2,
        Arc::new(Classifier::new(2)),
    ));
    registry.insert(LoadedModel::new("strings", 1, Arc::new(Strings::new())));
    let echo = ModelMetadata {
        platform: "test".into(),
        inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1])],
        outputs: vec![TensorSpec::new("x", DataType::F32, vec![-1])],
        prediction_output: 0,
        probabilities_output: None,
    };
    registry.insert(LoadedModel::new("slow", 1, Arc::new(Slow(echo.clone()))));
    registry.insert(LoadedModel::new("panics", 1, Arc::new(Panics(echo))));
    registry.set_ready(true);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let state = GrpcState::new(registry.clone(), Executor::new(2, 16));
    tokio::spawn(async move {
        inferd_grpc::serve(state, &config, listener, async {
            let _ = stopped.await;
        })
        .await;
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = GrpcInferenceServiceClient::new(channel.clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    Server {
        client,
        channel,
        registry,
        _stop: stop,
    }
}
