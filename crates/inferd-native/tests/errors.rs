//! Load-time refusals: unsupported features are named (tree and node included) when the model
//! loads, corrupt files give a clear `model_load` error, and no message shows a path.

use inferd_core::tensor::{NamedTensor, Tensor, TensorData};
use inferd_core::{ErrorKind, Model};
use serde_json::{json, Value};

fn seed(name: &str) -> Vec<u8> {
    let path = format!("{}/fuzz/corpus/load/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn xgb_doc() -> Value {
    serde_json::from_slice(&seed("xgb_binary.json")).unwrap()
}

fn xgb_error(doc: &Value) -> String {
    let err = inferd_native::load_xgboost_json(&serde_json::to_vec(doc).unwrap()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ModelLoad);
    assert!(
        err.message.starts_with("XGBoost model: "),
        "{}",
        err.message
    );
    err.message
}

fn lgb_text() -> String {
    String::from_utf8(seed("lgb_binary.txt")).unwrap()
}

fn lgb_error(text: &str) -> String {
    let err = inferd_native::load_lightgbm_text(text.as_bytes()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ModelLoad);
    assert!(
        err.message.starts_with("LightGBM model: "),
        "{}",
        err.message
    );
    err.message
}

fn assert_contains(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "{message:?} should mention {p:?}");
    }
}

#[test]
fn xgboost_unsupported_boosters_and_objectives() {
    let mut doc = xgb_doc();
    doc["learner"]["gradient_booster"]["name"] = json!("dart");
    assert_contains(&xgb_error(&doc), &["unsupported", "dart"]);

    let mut doc = xgb_doc();
    doc["learner"]["gradient_booster"] = json!({"name": "gblinear", "model": {"weights": [1.0]}});
    assert_contains(&xgb_error(&doc), &["unsupported", "gblinear"]);

    let mut doc = xgb_doc();
    doc["learner"]["objective"]["name"] = json!("rank:pairwise");
    assert_contains(
        &xgb_error(&doc),
        &["unsupported", "objective 'rank:pairwise'"],
    );

    let mut doc = xgb_doc();
    doc["learner"]["learner_model_param"]["num_target"] = json!("2");
    assert_contains(&xgb_error(&doc), &["multi-target"]);

    let mut doc = xgb_doc();
    doc["version"] = json!([0, 90, 0]);
    assert_contains(&xgb_error(&doc), &["file version", "1.0"]);
}

#[test]
fn xgboost_categorical_split_is_named() {
    let mut doc = xgb_doc();
    doc["learner"]["gradient_booster"]["model"]["trees"][1]["split_type"][0] = json!(1);
    assert_contains(&xgb_error(&doc), &["tree 1, node 0", "categorical"]);
}

#[test]
fn xgboost_inconsistent_files() {
    let mut doc = xgb_doc();
    doc["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"][0] = json!(999);
    assert_contains(&xgb_error(&doc), &["tree 0, node 0", "999"]);

    let mut doc = xgb_doc();
    doc["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = json!(50);
    assert_contains(&xgb_error(&doc), &["feature 50"]);

    let mut doc = xgb_doc();
    doc["learner"]["gradient_booster"]["model"]["trees"][0]["default_left"]
        .as_array_mut()
        .unwrap()
        .pop();
    assert_contains(&xgb_error(&doc), &["tree 0", "lengths"]);

    let mut doc = xgb_doc();
    doc["learner"]["gradient_booster"]["model"]["tree_info"][0] = json!(7);
    assert_contains(&xgb_error(&doc), &["tree 0", "class 7"]);

    let mut doc = xgb_doc();
    doc["learner"]["learner_model_param"]["base_score"] = json!("[1.5E0]");
    assert_contains(&xgb_error(&doc), &["base_score"]);

    let mut doc = xgb_doc();
    doc["learner"]["learner_model_param"]["num_class"] = json!("100000000");
    doc["learner"]["objective"]["name"] = json!("multi:softprob");
    assert_contains(&xgb_error(&doc), &["classes"]);

    for bad in [
        &b""[..],
        b"{",
        b"[]",
        b"\xff\xfe",
        b"{\"learner\": 1, \"version\": [2]}",
    ] {
        let err = inferd_native::load_xgboost_json(bad).unwrap_err();
        assert_contains(&err.message, &["malformed"]);
    }
}

#[test]
fn lightgbm_unsupported_features() {
    let text = lgb_text();
    assert_contains(
        &lgb_error(&text.replacen("version=v4", "version=v1", 1)),
        &["file version 'v1'"],
    );
    assert_contains(
        &lgb_error(&text.replacen("objective=binary sigmoid:1", "objective=custom", 1)),
        &["unsupported", "objective 'custom'"],
    );
    let custom = text.replacen("objective=binary sigmoid:1\n", "", 1);
    assert_contains(&lgb_error(&custom), &["unsupported", "custom objective"]);
    let linear = text.replacen("is_linear=0", "is_linear=1", 1);
    assert_contains(&lgb_error(&linear), &["tree 0", "linear"]);
}

#[test]
fn lightgbm_bad_categorical_split_is_named() {
    let text = lgb_text();
    // Tree 1's first decision type gets the categorical bit, with no category sets to use.
    let at = text.find("Tree=1").unwrap();
    let dt = at + text[at..].find("decision_type=").unwrap() + "decision_type=".len();
    let end = dt + text[dt..].find(' ').unwrap();
    let first: u32 = text[dt..end].parse().unwrap();
    let damaged = format!("{}{}{}", &text[..dt], first | 1, &text[end..]);
    assert_contains(&lgb_error(&damaged), &["tree 1, node 0", "category set"]);
}

#[test]
fn lightgbm_truncated_and_corrupt_files() {
    let text = lgb_text();
    let cut = text.find("end of trees").unwrap();
    assert_contains(&lgb_error(&text[..cut]), &["truncated"]);
    assert_contains(
        &lgb_error("{\"learner\": {}}"),
        &["not a LightGBM text model"],
    );
    assert_contains(
        &lgb_error(&text.replacen("left_child=", "left_child=5 ", 1)),
        &["left_child"],
    );
    assert_contains(
        &lgb_error(&text.replacen("num_tree_per_iteration=1", "num_tree_per_iteration=0", 1)),
        &["num_tree_per_iteration 0"],
    );
    assert_contains(
        &lgb_error(&text.replacen(
            "max_feature_idx=2",
            "max_feature_idx=9223372036854775807",
            1,
        )),
        &["max_feature_idx"],
    );
    let err = inferd_native::load_lightgbm_text(b"tree\n\xff\n").unwrap_err();
    assert_contains(&err.message, &["UTF-8"]);
}

#[test]
fn windows_line_endings_load() {
    let text = lgb_text().replace('\n', "\r\n");
    inferd_native::load_lightgbm_text(text.as_bytes()).unwrap();
}

#[test]
fn requests_that_do_not_fit_are_bad_requests() {
    let model = inferd_native::load_lightgbm_text(lgb_text().as_bytes()).unwrap();
    let input = |name: &str, shape: Vec<usize>| {
        let n = shape.iter().product();
        NamedTensor::new(
            name,
            Tensor::new(shape, TensorData::F32(vec![0.0; n])).unwrap(),
        )
    };
    for inputs in [
        vec![],
        vec![input("x", vec![1, 3])],
        vec![input("input", vec![1, 4])],
        vec![input("input", vec![3])],
        vec![input("input", vec![1, 3]), input("input", vec![1, 3])],
    ] {
        let err = model.infer(inputs).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest, "{}", err.message);
    }
    let out = model.infer(vec![input("input", vec![0, 3])]).unwrap();
    assert_eq!(out[1].tensor.shape(), &[0, 2]);
    // Other numeric types are accepted and narrowed to f32, like the declared FP32.
    let f64_input = Tensor::new(vec![1, 3], TensorData::F64(vec![1.0, 2.0, 3.0])).unwrap();
    model
        .infer(vec![NamedTensor::new("input", f64_input)])
        .unwrap();
}

#[test]
fn metadata_declares_the_outputs() {
    let clf = inferd_native::load_xgboost_json(&seed("xgb_multiclass.json")).unwrap();
    let m = clf.metadata();
    assert_eq!(m.platform, "xgboost");
    assert_eq!(m.row_features(), Some(3));
    let names: Vec<_> = m
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o.shape.clone()))
        .collect();
    assert_eq!(names, [("label", vec![-1]), ("probabilities", vec![-1, 3])]);
    assert_eq!((m.prediction_output, m.probabilities_output), (0, Some(1)));

    let reg = inferd_native::load_lightgbm_text(&seed("lgb_regressor.txt")).unwrap();
    let m = reg.metadata();
    assert_eq!(m.platform, "lightgbm");
    assert_eq!(m.outputs.len(), 1);
    assert_eq!(
        (m.outputs[0].name.as_str(), m.probabilities_output),
        ("variable", None)
    );

    let bin = inferd_native::load_lightgbm_text(&seed("lgb_binary.txt")).unwrap();
    assert_eq!(bin.metadata().outputs[1].shape, vec![-1, 2]);
}

#[test]
fn sniffing_tells_the_formats_apart() {
    assert!(inferd_native::looks_like_xgboost_json(&seed(
        "xgb_binary.json"
    )));
    assert!(!inferd_native::looks_like_xgboost_json(
        b"{\"instances\": [[1, 2]]}"
    ));
    assert!(!inferd_native::looks_like_xgboost_json(&seed(
        "lgb_binary.txt"
    )));
    assert!(inferd_native::looks_like_lightgbm_text(&seed(
        "lgb_binary.txt"
    )));
    assert!(!inferd_native::looks_like_lightgbm_text(&seed(
        "xgb_binary.json"
    )));
    for name in ["xgb_multiclass.json", "lgb_multiclass.txt"] {
        let model = inferd_native::load_native(&seed(name)).unwrap();
        assert_eq!(model.metadata().outputs[1].shape, vec![-1, 3], "{name}");
    }
    let err = inferd_native::load_native(b"{\"instances\": []}").unwrap_err();
    assert_eq!(err.kind, ErrorKind::ModelLoad);
}
