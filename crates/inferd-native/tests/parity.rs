//! Parity with the training libraries: every case written by `fixtures/native/generate.py` is
//! loaded from the library's own file and must reproduce the library's own predictions.
//!
//! Fixtures come from `$INFERD_FIXTURES/native` (CI regenerates them with current library
//! versions) or, unset, the committed `fixtures/native`. Every case named in `CASES` must be
//! there and must run: a missing case fails, nothing is skipped.
//!
//! Tolerances:
//! - Labels: exact.
//! - LightGBM: 1e-5 relative. LightGBM sums leaves and applies sigmoid/softmax in f64, as
//!   inferd does; the only difference left is the f32 narrowing of inferd's outputs (~6e-8).
//! - XGBoost: 1e-5 relative plus 2e-6 absolute. XGBoost accumulates margins in f32 (its
//!   prediction buffer is `float`), so each tree added costs up to half an f32 ulp of the
//!   running margin, and its sigmoid runs in f32 too; `1 - p` for a `p` near 1 then carries an
//!   absolute f32 error of ~1e-7 that is large relative to a small `1 - p`. inferd sums in f64,
//!   which is closer to the exact sum than XGBoost's own answer, hence the absolute allowance.

use std::path::PathBuf;

use inferd_core::tensor::{NamedTensor, Tensor, TensorData};
use inferd_core::Model;
use serde_json::Value;

/// Every case the generator writes; the test fails if any is missing.
const CASES: &[&str] = &[
    "xgb_binary_breast_cancer",
    "xgb_multiclass_iris",
    "xgb_regressor_diabetes",
    "xgb_poisson_diabetes",
    "xgb_rf_regressor_diabetes",
    "xgb_softmax_wine",
    "xgb_logistic_diabetes",
    "xgb_early_stopping_breast_cancer",
    "lgb_binary_breast_cancer",
    "lgb_multiclass_wine",
    "lgb_multiclass_iris",
    "lgb_regressor_diabetes",
    "lgb_zero_as_missing_diabetes",
    "lgb_rf_diabetes",
    "lgb_poisson_diabetes",
    "lgb_categorical_diabetes",
    "lgb_sqrt_diabetes",
    "lgb_ova_iris",
];

fn fixtures() -> PathBuf {
    match std::env::var_os("INFERD_FIXTURES") {
        Some(dir) => PathBuf::from(dir).join("native"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/native"),
    }
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Tolerance {
    rel: f64,
    abs: f64,
}

/// Returns the worst relative and the worst absolute difference, for the log.
fn check_close(case: &str, what: &str, got: &[f32], want: &[f64], tol: &Tolerance) -> (f64, f64) {
    assert_eq!(got.len(), want.len(), "{case}: {what} count");
    let (mut worst_rel, mut worst_abs): (f64, f64) = (0.0, 0.0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let bound = tol.rel * w.abs() + tol.abs;
        assert!(
            err <= bound,
            "{case}: {what}[{i}] = {g}, library says {w} (|diff| {err:e})"
        );
        worst_rel = worst_rel.max(err / w.abs().max(1e-300));
        worst_abs = worst_abs.max(err);
    }
    (worst_rel, worst_abs)
}

/// Cases that exist for one feature of the format must really contain it, or a change in the
/// library's defaults could leave that feature untested without anyone noticing.
fn assert_exercises(case: &str, model: &[u8]) {
    let text = String::from_utf8_lossy(model);
    let lines = || text.lines();
    let ok = match case {
        "lgb_categorical_diabetes" => {
            lines().any(|l| l.starts_with("num_cat=") && l != "num_cat=0")
        }
        "lgb_zero_as_missing_diabetes" => lines()
            .filter_map(|l| l.strip_prefix("decision_type="))
            .flat_map(|l| l.split(' ').map(|d| d.parse::<u32>().unwrap()))
            .any(|d| (d >> 2) & 3 == 1),
        "lgb_rf_diabetes" => lines().any(|l| l == "average_output"),
        "lgb_sqrt_diabetes" => lines().any(|l| l == "objective=regression sqrt"),
        "lgb_ova_iris" => lines().any(|l| l.starts_with("objective=multiclassova")),
        "xgb_early_stopping_breast_cancer" => text.contains("\"best_iteration\""),
        "xgb_rf_regressor_diabetes" => !text.contains("\"num_parallel_tree\":\"1\""),
        _ => true,
    };
    assert!(
        ok,
        "{case}: the model does not contain what the case is meant to test"
    );
}

fn run_case(case: &str) {
    let dir = fixtures().join(case);
    let (model, tol) = if dir.join("model.json").exists() {
        let bytes = std::fs::read(dir.join("model.json")).unwrap();
        assert!(
            inferd_native::looks_like_xgboost_json(&bytes),
            "{case}: sniff"
        );
        assert_exercises(case, &bytes);
        let model =
            inferd_native::load_xgboost_json(&bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
        (
            model,
            Tolerance {
                rel: 1e-5,
                abs: 2e-6,
            },
        )
    } else {
        let bytes = std::fs::read(dir.join("model.txt"))
            .unwrap_or_else(|e| panic!("{case}: no model.json or model.txt ({e})"));
        assert!(
            inferd_native::looks_like_lightgbm_text(&bytes),
            "{case}: sniff"
        );
        assert_exercises(case, &bytes);
        let model =
            inferd_native::load_lightgbm_text(&bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
        (
            model,
            Tolerance {
                rel: 1e-5,
                abs: 0.0,
            },
        )
    };
    let input = read_json(&dir.join("input.json"));
    let expected = read_json(&dir.join("expected.json"));
    let n_features = input["n_features"].as_u64().unwrap() as usize;
    assert_eq!(model.metadata().row_features(), Some(n_features), "{case}");
    let rows: Vec<f32> = input["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32))
        })
        .collect();
    let n_rows = rows.len() / n_features;
    let tensor = Tensor::new(vec![n_rows, n_features], TensorData::F32(rows)).unwrap();
    let outputs = model
        .infer(vec![NamedTensor::new("input", tensor)])
        .unwrap();
    let meta = model.metadata();
    assert_eq!(outputs.len(), meta.outputs.len(), "{case}");
    for (o, spec) in outputs.iter().zip(&meta.outputs) {
        assert_eq!(o.name, spec.name, "{case}");
        assert_eq!(o.tensor.datatype(), spec.datatype, "{case}");
    }
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|x| match x.as_array() {
                Some(row) => row.iter().map(|y| y.as_f64().unwrap()).collect(),
                None => vec![x.as_f64().unwrap()],
            })
            .collect()
    };
    let (rel, abs) = if let Some(labels) = expected.get("labels") {
        let want: Vec<i64> = labels
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let TensorData::I64(got) = outputs[meta.prediction_output].tensor.data() else {
            panic!("{case}: labels are not INT64")
        };
        assert_eq!(got, &want, "{case}: labels");
        let probs = &outputs[meta.probabilities_output.expect("classifier")].tensor;
        let TensorData::F32(got) = probs.data() else {
            panic!("{case}: probabilities not FP32")
        };
        let want = floats(&expected["probabilities"]);
        assert_eq!(probs.shape(), &[n_rows, want.len() / n_rows], "{case}");
        check_close(case, "probabilities", got, &want, &tol)
    } else {
        let TensorData::F32(got) = outputs[meta.prediction_output].tensor.data() else {
            panic!("{case}: values are not FP32")
        };
        check_close(case, "values", got, &floats(&expected["values"]), &tol)
    };
    eprintln!("{case}: {n_rows} rows, worst difference {rel:.1e} relative, {abs:.1e} absolute");
}

#[test]
fn every_case_is_present() {
    let listed = read_json(&fixtures().join("cases.json"));
    let listed: Vec<&str> = listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for case in CASES {
        assert!(listed.contains(case), "case {case} missing from cases.json");
    }
    for case in &listed {
        assert!(
            CASES.contains(case),
            "case {case} is generated but not tested: add it to CASES"
        );
    }
}

#[test]
fn native_models_match_their_libraries() {
    for case in CASES {
        run_case(case);
    }
}
