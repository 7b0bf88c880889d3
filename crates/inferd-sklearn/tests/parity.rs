//! Parity with scikit-learn: every fixture `fixtures/sklearn/generate.py` wrote, for every
//! scikit-learn release it was run under, must load and give the same labels exactly and the
//! same probabilities and values within 1e-5.
//!
//! Reads `$INFERD_FIXTURES/sklearn` when set (CI regenerates fixtures there), else the
//! committed `fixtures/sklearn`.

use std::path::PathBuf;

use inferd_core::{DataType, NamedTensor, Tensor, TensorData};
use serde_json::Value;

fn fixtures() -> PathBuf {
    match std::env::var_os("INFERD_FIXTURES") {
        Some(dir) => PathBuf::from(dir).join("sklearn"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sklearn"),
    }
}

/// The release directories (`1.3.2`, `1.9.1`...) under the fixtures.
fn releases() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/sklearn exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("cases.json").is_file())
        .collect();
    out.sort();
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

#[test]
fn at_least_two_releases() {
    let releases = releases();
    assert!(
        releases.len() >= 2,
        "fixtures for two scikit-learn releases expected: {releases:?}"
    );
}

#[test]
fn every_fixture_matches_scikit_learn() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for release in releases() {
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(release.join("cases.json")).unwrap()).unwrap();
        for case in manifest["cases"].as_array().unwrap() {
            let name = format!(
                "{}/{}",
                release.file_name().unwrap().to_string_lossy(),
                case["name"]
            );
            if let Err(e) = check_case(&release, case) {
                failures.push(format!("{name}: {e}"));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 20, "only {checked} cases");
    eprintln!("{checked} scikit-learn cases match");
}

fn check_case(release: &std::path::Path, case: &Value) -> Result<(), String> {
    let bytes =
        std::fs::read(release.join(case["file"].as_str().unwrap())).map_err(|e| e.to_string())?;
    let model = inferd_sklearn::load(&bytes).map_err(|e| e.to_string())?;
    let rows = case["input"].as_array().unwrap();
    let n_features = rows[0].as_array().unwrap().len();
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32))
        })
        .collect();
    let meta = model.metadata();
    if meta.row_features() != Some(n_features) {
        return Err(format!(
            "metadata says {:?} features, data has {n_features}",
            meta.row_features()
        ));
    }
    let input = Tensor::new(vec![rows.len(), n_features], TensorData::F32(flat)).unwrap();
    let out = model
        .infer(vec![NamedTensor::new("input", input)])
        .map_err(|e| e.to_string())?;

    if let Some(labels) = case.get("labels") {
        let expected = labels.as_array().unwrap();
        let got: Vec<Value> = match out[0].tensor.data() {
            TensorData::I64(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::Bytes(v) => v
                .iter()
                .map(|b| Value::from(String::from_utf8_lossy(b).into_owned()))
                .collect(),
            other => return Err(format!("label tensor of type {:?}", other.datatype())),
        };
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            if g != e {
                return Err(format!("row {i}: label {g}, scikit-learn says {e}"));
            }
        }
        let TensorData::F32(probs) = out[1].tensor.data() else {
            return Err("probabilities not FP32".into());
        };
        let expected: Vec<f64> = case["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        if probs.len() != expected.len() {
            return Err(format!(
                "{} probabilities, scikit-learn has {}",
                probs.len(),
                expected.len()
            ));
        }
        for (i, (&g, &e)) in probs.iter().zip(&expected).enumerate() {
            if !close(g as f64, e) {
                return Err(format!("probability {i}: {g}, scikit-learn says {e}"));
            }
        }
    } else {
        if out[0].tensor.datatype() != DataType::F64 {
            return Err("values not FP64".into());
        }
        let got = out[0].tensor.to_f64().unwrap();
        let expected: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| match v.as_array() {
                Some(row) => row.iter().map(|x| x.as_f64().unwrap()).collect(),
                None => vec![v.as_f64().unwrap()],
            })
            .collect();
        if got.len() != expected.len() {
            return Err(format!(
                "{} values, scikit-learn has {}",
                got.len(),
                expected.len()
            ));
        }
        for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
            if !close(g, e) {
                return Err(format!("value {i}: {g}, scikit-learn says {e}"));
            }
        }
    }
    Ok(())
}
