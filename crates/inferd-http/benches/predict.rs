//! In-process cost of one request through `app()`: routing, middleware, body read, parsing,
//! the model call (a trivial fake, so the number is the front end's own) and the answer.
//! Run: `cargo bench -p inferd-http --bench predict`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, Registry};
use inferd_core::{
    DataType, Model, ModelMetadata, NamedTensor, Result, Tensor, TensorData, TensorSpec,
};
use inferd_http::{app, AppState, HttpConfig};
use tower::ServiceExt;

struct Fake(ModelMetadata);

impl Model for Fake {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let rows = inputs[0].tensor.rows();
        Ok(vec![NamedTensor::new(
            "label",
            Tensor::new(vec![rows], TensorData::I64(vec![0; rows]))?,
        )])
    }

    fn cost_per_row_ns(&self) -> u64 {
        1_000
    }
}

fn state() -> AppState {
    let registry = Registry::new();
    let meta = ModelMetadata {
        platform: "fake".into(),
        inputs: vec![TensorSpec::new("float_input", DataType::F32, vec![-1, 4])],
        outputs: vec![TensorSpec::new("label", DataType::I64, vec![-1])],
        prediction_output: 0,
        probabilities_output: None,
    };
    registry.insert(LoadedModel::new("iris", 1, Arc::new(Fake(meta))));
    registry.set_ready(true);
    AppState::new(registry, Executor::new(1, 16), HttpConfig::default())
}

async fn measure(name: &str, path: &str, body: &'static str) {
    let router = app(state());
    let mut times = Vec::with_capacity(100_000);
    for i in 0..110_000 {
        let request = Request::post(path).body(Body::from(body)).unwrap();
        let start = Instant::now();
        let response = router.clone().oneshot(request).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let elapsed = start.elapsed();
        assert!(bytes.len() > 10);
        if i >= 10_000 {
            times.push(elapsed);
        }
    }
    times.sort_unstable();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name:<28} mean {:>6.2} µs  p50 {:>6.2} µs  p99 {:>6.2} µs",
        mean.as_secs_f64() * 1e6,
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    measure(
        "/predict one row",
        "/predict",
        r#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#,
    )
    .await;
    measure(
        "/predict 8 rows",
        "/predict",
        r#"{"inputs": [[5.1,3.5,1.4,0.2],[4.9,3.0,1.4,0.2],[4.7,3.2,1.3,0.2],[4.6,3.1,1.5,0.2],[5.0,3.6,1.4,0.2],[5.4,3.9,1.7,0.4],[4.6,3.4,1.4,0.3],[5.0,3.4,1.5,0.2]]}"#,
    )
    .await;
    measure(
        "V2 infer one row (JSON)",
        "/v2/models/iris/infer",
        r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#,
    )
    .await;
    measure(
        "V1 :predict one row",
        "/v1/models/iris:predict",
        r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#,
    )
    .await;
}
