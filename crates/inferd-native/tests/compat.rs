//! Older spellings of the formats: a current file rewritten the way earlier library versions
//! wrote it must load and predict the same.
//!
//! XGBoost before 3.1 wrote `base_score` as one number (`"6.27E-1"`); some 1.x versions wrote
//! `default_left` as booleans; `split_type` (1.3+), the `categories*` arrays and
//! `iteration_indptr` (2.0+) are absent from older files. LightGBM v3 files differ from v4
//! only in their version line for what inferd reads.

use inferd_core::tensor::{NamedTensor, Tensor, TensorData};
use inferd_core::Model;
use serde_json::{json, Value};

fn seed(name: &str) -> Vec<u8> {
    let path = format!("{}/fuzz/corpus/load/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Outputs for a fixed set of rows (with NaN), as raw data for comparison.
fn outputs(model: &dyn Model) -> Vec<TensorData> {
    let n = model.metadata().row_features().unwrap();
    let rows: Vec<f32> = (0..8 * n)
        .map(|i| {
            if i % 5 == 0 {
                f32::NAN
            } else {
                (i % 9) as f32 * 0.7
            }
        })
        .collect();
    let input = Tensor::new(vec![8, n], TensorData::F32(rows)).unwrap();
    let out = model.infer(vec![NamedTensor::new("input", input)]).unwrap();
    out.into_iter().map(|o| o.tensor.into_parts().1).collect()
}

/// Rewrites a current XGBoost document the way XGBoost 1.x wrote it.
fn as_old_xgboost(doc: &mut Value) {
    doc["version"] = json!([1, 7, 6]);
    let param = &mut doc["learner"]["learner_model_param"];
    let base = param["base_score"]
        .as_str()
        .unwrap()
        .trim_matches(['[', ']'])
        .to_string();
    assert!(!base.contains(','), "one base score expected in this seed");
    param["base_score"] = json!(base);
    let model = &mut doc["learner"]["gradient_booster"]["model"];
    model.as_object_mut().unwrap().remove("iteration_indptr");
    for tree in model["trees"].as_array_mut().unwrap() {
        let tree = tree.as_object_mut().unwrap();
        for key in [
            "split_type",
            "categories",
            "categories_nodes",
            "categories_segments",
            "categories_sizes",
        ] {
            tree.remove(key);
        }
        let flags: Vec<bool> = tree["default_left"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64() == Some(1))
            .collect();
        tree.insert("default_left".into(), json!(flags));
    }
}

#[test]
fn xgboost_1x_files_predict_the_same() {
    for name in ["xgb_binary.json", "xgb_regressor.json"] {
        let bytes = seed(name);
        let current = inferd_native::load_xgboost_json(&bytes).unwrap();
        let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
        as_old_xgboost(&mut doc);
        let old = inferd_native::load_xgboost_json(&serde_json::to_vec(&doc).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outputs(&old), outputs(&current), "{name}");
    }
}

#[test]
fn xgboost_scalar_base_score_applies_to_every_class() {
    let bytes = seed("xgb_multiclass.json");
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    // Softmax ignores a shift common to all classes, so one scalar and its per-class
    // spelling must agree.
    doc["learner"]["learner_model_param"]["base_score"] = json!("5E-1");
    let scalar = inferd_native::load_xgboost_json(&serde_json::to_vec(&doc).unwrap()).unwrap();
    doc["learner"]["learner_model_param"]["base_score"] = json!("[5E-1,5E-1,5E-1]");
    let vector = inferd_native::load_xgboost_json(&serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_eq!(outputs(&scalar), outputs(&vector));
}

#[test]
fn lightgbm_v3_files_load() {
    let text = String::from_utf8(seed("lgb_multiclass.txt")).unwrap();
    let current = inferd_native::load_lightgbm_text(text.as_bytes()).unwrap();
    let v3 = text.replacen("version=v4", "version=v3", 1);
    let old = inferd_native::load_lightgbm_text(v3.as_bytes()).unwrap();
    assert_eq!(outputs(&old), outputs(&current));
}
