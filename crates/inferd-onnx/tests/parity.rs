//! Parity with the training library (scikit-learn, XGBoost, LightGBM) and onnxruntime on
//! every fixture case written by
//! `fixtures/generate.py` (read from `$INFERD_FIXTURES`, or the committed `fixtures/`).
//! Every case listed in `onnx_cases.json` must load and run: a missing or unreadable case
//! fails the test rather than being skipped.

use std::path::{Path, PathBuf};

use inferd_core::{Model, NamedTensor, Tensor, TensorData};
use inferd_onnx::OnnxModel;
use serde_json::Value;

/// Probabilities and values, against both references: relative 1e-5, plus an absolute floor
/// of 1e-6 because outputs are float32 (as in ONNX-ML) and a probability near 0 derived as
/// `1 - p` keeps only float32's absolute precision (~6e-8 near 1), not a relative one.
/// (onnxruntime sums trees in float32 where inferd uses f64; on these fixtures the two still
/// agree within 1e-6 relative, so one bound serves both.)
const REL: f64 = 1e-5;
const ABS: f64 = 1e-6;

fn fixtures() -> PathBuf {
    match std::env::var_os("INFERD_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Flattens nested JSON arrays of numbers (null = NaN).
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(numbers).collect(),
        Value::Null => vec![f64::NAN],
        v => vec![v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))],
    }
}

/// Labels as strings, whatever their JSON or tensor type, for exact comparison.
fn json_labels(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().flat_map(json_labels).collect(),
        Value::String(s) => vec![s.clone()],
        v => vec![v.to_string()],
    }
}

fn tensor_labels(t: &Tensor) -> Vec<String> {
    match t.data() {
        TensorData::I64(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::I32(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::Bytes(v) => v
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
        other => panic!("labels of type {:?}", other.datatype()),
    }
}

fn close(got: &[f64], want: &[f64], rel: f64, abs: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} values where {} were expected",
            got.len(),
            want.len()
        ));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let both_nan = g.is_nan() && w.is_nan();
        // Written so that a NaN error (one side NaN) counts as a failure.
        let within = err <= rel * w.abs() + abs;
        if !within && !both_nan {
            return Err(format!("value {i}: got {g}, want {w} (error {err:e})"));
        }
    }
    Ok(())
}

fn run_case(dir: &Path) -> Result<(), String> {
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| format!("model.onnx: {e}"))?;
    let model = OnnxModel::load(&bytes).map_err(|e| format!("load: {e}"))?;
    let input = read_json(&dir.join("input.json"));
    let expected = read_json(&dir.join("expected.json"));
    let shape: Vec<usize> = input["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let rows: Vec<f32> = numbers(&input["rows"])
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let x = Tensor::new(shape, TensorData::F32(rows)).map_err(|e| e.to_string())?;
    let name = input["input"].as_str().unwrap().to_string();
    let outputs = model
        .infer(vec![NamedTensor::new(name, x)])
        .map_err(|e| format!("infer: {e}"))?;
    let meta = model.metadata();
    let out = |i: usize| &outputs[i].tensor;
    let floats = |t: &Tensor| {
        t.to_f64()
            .map(|c| c.into_owned())
            .map_err(|e| e.to_string())
    };

    let sk = &expected["sklearn"];
    if expected["kind"] == "graph" {
        // Hand-built operator graphs: onnxruntime is the only reference.
    } else if expected["kind"] == "classifier" {
        let labels = tensor_labels(out(meta.prediction_output));
        if labels != json_labels(&sk["label"]) {
            return Err(format!(
                "labels differ from scikit-learn:\n got {labels:?}\nwant {:?}",
                json_labels(&sk["label"])
            ));
        }
        let p = meta.probabilities_output.ok_or("no probabilities output")?;
        close(&floats(out(p))?, &numbers(&sk["probabilities"]), REL, ABS)
            .map_err(|e| format!("probabilities vs the training library: {e}"))?;
    } else {
        close(
            &floats(out(meta.prediction_output))?,
            &numbers(&sk["value"]),
            REL,
            ABS,
        )
        .map_err(|e| format!("values vs the training library: {e}"))?;
    }

    // Every output against onnxruntime, by name.
    for (i, nt) in outputs.iter().enumerate() {
        let want = &expected["onnxruntime"][&nt.name];
        if want.is_null() {
            return Err(format!(
                "expected.json has no onnxruntime output '{}'",
                nt.name
            ));
        }
        if matches!(
            nt.tensor.data(),
            TensorData::I64(_) | TensorData::I32(_) | TensorData::Bytes(_)
        ) {
            if tensor_labels(&nt.tensor) != json_labels(want) {
                return Err(format!("output {i} '{}' differs from onnxruntime", nt.name));
            }
        } else {
            close(&floats(&nt.tensor)?, &numbers(want), REL, ABS)
                .map_err(|e| format!("output '{}' vs onnxruntime: {e}", nt.name))?;
        }
    }
    Ok(())
}

#[test]
fn every_fixture_case_matches_sklearn_and_onnxruntime() {
    let root = fixtures();
    let manifest = read_json(&root.join("onnx_cases.json"));
    let cases = manifest["cases"]
        .as_array()
        .expect("onnx_cases.json lists cases");
    assert!(!cases.is_empty(), "no fixture cases");
    let mut failures = Vec::new();
    for case in cases {
        let case = case.as_str().expect("case names are strings");
        if let Err(e) = run_case(&root.join(case)) {
            failures.push(format!("{case}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
