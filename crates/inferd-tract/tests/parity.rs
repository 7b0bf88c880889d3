//! Parity of the neural-network fixtures (`fixtures/nn/generate.py`) against scikit-learn and
//! onnxruntime: labels exactly, probabilities and every other float output within 1e-5.
//!
//! Reads `$INFERD_FIXTURES/nn`, or the committed `fixtures/nn` when unset. Each case in
//! `cases.json` names the runtime inferd serves it with: "tract" cases must run in tract;
//! "onnx" cases (ONNX-ML operators mixed with a network) must run in inferd-onnx, and tract
//! must refuse them at load, naming the operator it lacks.

use std::path::PathBuf;

use inferd_core::{DataType, Model, NamedTensor, Tensor, TensorData};
use inferd_tract::TractModel;
use serde_json::Value;

/// Absolute tolerance on probabilities: both sides compute in float32 from the same float32
/// weights, and only summation order differs (a few ulps of values ≤ 1).
const TOLERANCE: f64 = 1e-5;

fn fixtures() -> PathBuf {
    match std::env::var_os("INFERD_FIXTURES") {
        Some(dir) => PathBuf::from(dir).join("nn"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nn"),
    }
}

fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_f64().unwrap()).collect(),
            None => vec![x.as_f64().unwrap()],
        })
        .collect()
}

fn input(case: &str) -> NamedTensor {
    let input = read_json(fixtures().join(case).join("input.json"));
    let shape = input["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = floats(&input["data"]).iter().map(|&x| x as f32).collect();
    NamedTensor::new(
        input["input"].as_str().unwrap(),
        Tensor::new(shape, TensorData::F32(data)).unwrap(),
    )
}

/// Compares a model's answers with `expected.json`; returns the largest probability error.
fn check(case: &str, runtime: &str, model: &dyn Model) -> f64 {
    let expected = read_json(fixtures().join(case).join("expected.json"));
    let meta = model.metadata().clone();
    let outputs = model.infer(vec![input(case)]).unwrap();
    assert_eq!(outputs.len(), meta.outputs.len(), "{case} ({runtime})");
    let by_name = |name: &str| {
        outputs
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("{case} ({runtime}): no output {name}"))
    };
    let mut worst = 0.0f64;

    let label_out = expected["label_output"].as_str().unwrap();
    assert_eq!(
        meta.outputs[meta.prediction_output].name, label_out,
        "{case} ({runtime}): prediction output"
    );
    let labels: Vec<i64> = expected["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    match by_name(label_out).tensor.data() {
        TensorData::I64(got) => assert_eq!(got, &labels, "{case} ({runtime}): labels"),
        other => panic!("{case} ({runtime}): label output is {:?}", other.datatype()),
    }

    let proba_out = expected["probabilities_output"].as_str().unwrap();
    let p = meta
        .probabilities_output
        .unwrap_or_else(|| panic!("{case} ({runtime}): no probabilities output"));
    assert_eq!(meta.outputs[p].name, proba_out, "{case} ({runtime})");
    let got = by_name(proba_out).tensor.to_f64().unwrap();
    let want = floats(&expected["probabilities"]);
    assert_eq!(got.len(), want.len(), "{case} ({runtime})");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let err = (g - w).abs();
        worst = worst.max(err);
        assert!(
            err <= TOLERANCE,
            "{case} ({runtime}): probability {i}: {g} vs {w}"
        );
    }

    // Every graph output against onnxruntime, shapes included.
    for (name, want) in expected["outputs"].as_object().unwrap() {
        let got = &by_name(name).tensor;
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(got.shape(), shape, "{case} ({runtime}): shape of {name}");
        let values = floats(&want["data"]);
        for (g, w) in got.to_f64().unwrap().iter().zip(&values) {
            assert!(
                (g - w).abs() <= TOLERANCE,
                "{case} ({runtime}): {name}: {g} vs onnxruntime {w}"
            );
        }
    }
    worst
}

fn load(case: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(case).join("model.onnx")).unwrap()
}

#[test]
fn every_case_matches_the_references() {
    let cases = read_json(fixtures().join("cases.json"));
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 3, "fixtures list too few cases");
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let runtime = case["runtime"].as_str().unwrap();
        let bytes = load(name);
        match runtime {
            "tract" => {
                let model = TractModel::load(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: tract refused it: {e}"));
                let worst = check(name, "tract", &model);
                eprintln!(
                    "{name}: tract ok, max |Δp| {worst:.1e}, cost/row {} ns",
                    model.cost_per_row_ns()
                );
                // The server tries inferd-onnx first: where it runs the graph, it must agree.
                match inferd_onnx::OnnxModel::load(&bytes) {
                    Ok(model) => {
                        let worst = check(name, "inferd-onnx", &model);
                        eprintln!("{name}: inferd-onnx ok too, max |Δp| {worst:.1e}");
                    }
                    Err(e) => eprintln!("{name}: inferd-onnx refuses it: {e}"),
                }
            }
            "onnx" => {
                let model = inferd_onnx::OnnxModel::load(&bytes)
                    .unwrap_or_else(|e| panic!("{name}: inferd-onnx refused it: {e}"));
                let worst = check(name, "inferd-onnx", &model);
                eprintln!("{name}: inferd-onnx ok, max |Δp| {worst:.1e}");
                let err = TractModel::load(&bytes).unwrap_err();
                assert_eq!(err.kind, inferd_core::ErrorKind::ModelLoad);
                eprintln!("{name}: tract refuses it at load: {err}");
            }
            other => panic!("{name}: unknown runtime {other}"),
        }
    }
}

#[test]
fn any_batch_size_runs() {
    let model = TractModel::load(&load("digits_cnn")).unwrap();
    let meta = model.metadata();
    assert_eq!(meta.inputs[0].shape, vec![-1, 1, 8, 8]);
    assert_eq!(meta.inputs[0].datatype, DataType::F32);
    let all = input("digits_cnn");
    let (shape, data) = all.tensor.into_parts();
    let TensorData::F32(data) = data else {
        unreachable!()
    };
    for n in [1usize, 2, 7, shape[0]] {
        let t = Tensor::new(vec![n, 1, 8, 8], TensorData::F32(data[..n * 64].to_vec())).unwrap();
        let out = model.infer(vec![NamedTensor::new("image", t)]).unwrap();
        assert_eq!(out[meta.prediction_output].tensor.shape(), [n]);
        assert_eq!(
            out[meta.probabilities_output.unwrap()].tensor.shape(),
            [n, 10]
        );
    }
}

#[test]
fn float64_and_integer_requests_are_converted() {
    let model = TractModel::load(&load("digits_cnn")).unwrap();
    let ones = Tensor::new(vec![1, 1, 8, 8], TensorData::I64(vec![1; 64])).unwrap();
    let a = model.infer(vec![NamedTensor::new("image", ones)]).unwrap();
    let ones = Tensor::new(vec![1, 1, 8, 8], TensorData::F64(vec![1.0; 64])).unwrap();
    let b = model.infer(vec![NamedTensor::new("image", ones)]).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_requests_are_bad_requests() {
    let model = TractModel::load(&load("digits_cnn")).unwrap();
    let wrong = Tensor::new(vec![1, 1, 8, 7], TensorData::F32(vec![0.0; 56])).unwrap();
    let err = model
        .infer(vec![NamedTensor::new("image", wrong)])
        .unwrap_err();
    assert_eq!(err.kind, inferd_core::ErrorKind::BadRequest);
    assert!(err.message.contains("dimension 3 must be 8"), "{err}");
}

#[test]
fn corrupt_and_truncated_files_are_load_errors() {
    let bytes = load("digits_cnn");
    for bad in [
        &bytes[..bytes.len() / 2],
        &b"not an onnx model"[..],
        &[][..],
    ] {
        match TractModel::load(bad) {
            Ok(_) => panic!("a corrupt file loaded"),
            Err(e) => assert_eq!(e.kind, inferd_core::ErrorKind::ModelLoad, "{e}"),
        }
    }
}

#[test]
fn an_empty_batch_answers_empty_outputs() {
    let model = TractModel::load(&load("digits_cnn")).unwrap();
    let empty = Tensor::new(vec![0, 1, 8, 8], TensorData::F32(vec![])).unwrap();
    let out = model.infer(vec![NamedTensor::new("image", empty)]).unwrap();
    assert_eq!(out[0].tensor.shape(), [0]);
    assert_eq!(out[1].tensor.shape(), [0, 10]);
}
