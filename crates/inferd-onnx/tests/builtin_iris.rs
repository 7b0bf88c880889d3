//! The server's built-in model (`crates/inferd/assets/iris.onnx`, written by
//! `fixtures/generate.py`) loads, describes itself as the front ends expect, and answers the
//! seed's example request with class 0.

use inferd_core::{DataType, Model, NamedTensor, Tensor, TensorData};
use inferd_onnx::OnnxModel;

#[test]
fn builtin_iris_model_answers_the_seed_request() {
    let bytes = include_bytes!("../../inferd/assets/iris.onnx");
    let model = OnnxModel::load(bytes).unwrap();
    let meta = model.metadata();
    assert_eq!(meta.row_features(), Some(4));
    assert_eq!(meta.outputs[meta.prediction_output].datatype, DataType::I64);
    let probs = meta
        .probabilities_output
        .expect("a classifier has probabilities");
    assert_eq!(meta.outputs[probs].shape, vec![-1, 3]);
    // Small enough for the executor to run inline.
    assert!(
        model.cost_per_row_ns() < 20_000,
        "{}",
        model.cost_per_row_ns()
    );

    let x = Tensor::new(vec![1, 4], TensorData::F32(vec![5.1, 3.5, 1.4, 0.2])).unwrap();
    let out = model.infer(vec![NamedTensor::new("X", x)]).unwrap();
    assert_eq!(
        out[meta.prediction_output].tensor.data(),
        &TensorData::I64(vec![0])
    );
    let p = out[probs].tensor.to_f32().unwrap();
    assert!(
        (p.iter().sum::<f32>() - 1.0).abs() < 1e-5 && p[0] > 0.9,
        "{p:?}"
    );
}
