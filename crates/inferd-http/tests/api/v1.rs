use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn kserve_v1_list_and_status() {
    let models = get("/v1/models").await.json();
    assert_eq!(models["models"][0], "echo_bf16");
    assert!(models["models"]
        .as_array()
        .unwrap()
        .contains(&json!("iris")));
    let status = get("/v1/models/iris").await;
    assert_eq!(
        status.text(),
        r#"{"name":"iris","ready":true,"model_version_status":[{"version":"2","state":"AVAILABLE","status":{"error_code":"OK","error_message":""}},{"version":"1","state":"AVAILABLE","status":{"error_code":"OK","error_message":""}}]}"#
    );
    assert_eq!(get("/v1/models/nope").await.status, 404);
}

#[tokio::test]
async fn tf_serving_status_by_version_and_label() {
    let v1 = get("/v1/models/iris/versions/1").await.json();
    assert_eq!(
        v1["model_version_status"],
        json!([{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}])
    );
    let canary = get("/v1/models/iris/labels/canary").await.json();
    assert_eq!(canary["model_version_status"][0]["version"], "2");
    let answer = get("/v1/models/iris/labels/nightly").await;
    assert_eq!(answer.status, 404);
    assert!(answer.error().contains("has no label 'nightly'"));
    assert_eq!(get("/v1/models/nope/labels/stable").await.status, 404);
}

#[tokio::test]
async fn tf_serving_metadata() {
    let meta = get("/v1/models/iris/metadata").await.json();
    assert_eq!(
        meta["model_spec"],
        json!({"name": "iris", "signature_name": "", "version": "2"})
    );
    let signature = &meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(signature["inputs"]["float_input"]["dtype"], "DT_FLOAT");
    assert_eq!(
        signature["inputs"]["float_input"]["tensor_shape"]["dim"],
        json!([{"size": "-1", "name": ""}, {"size": "4", "name": ""}])
    );
    assert_eq!(signature["outputs"]["label"]["dtype"], "DT_INT64");
    assert_eq!(
        get("/v1/models/iris/versions/1/metadata").await.json()["model_spec"]["version"],
        "1"
    );
    assert_eq!(
        get("/v1/models/iris/labels/stable/metadata").await.json()["model_spec"]["version"],
        "1"
    );
}

#[tokio::test]
async fn predict_with_instances() {
    let body = r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]}"#;
    for path in [
        "/v1/models/iris:predict",
        "/v1/models/iris/versions/1:predict",
        "/v1/models/iris/labels/canary:predict",
    ] {
        let answer = post(path, body).await;
        assert_eq!(answer.text(), r#"{"predictions":[0,2]}"#, "{path}");
        let version = if path.contains("/1:") { "1" } else { "2" };
        assert_eq!(answer.headers["x-inferd-model-version"], version, "{path}");
    }
    let answer = post(
        "/v1/models/regressor:predict",
        r#"{"instances": [[1, 2, 3, 4]]}"#,
    )
    .await;
    assert_eq!(answer.text(), r#"{"predictions":[10.0]}"#);
}

#[tokio::test]
async fn predict_with_columnar_inputs() {
    let answer = post(
        "/v1/models/iris:predict",
        r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#,
    )
    .await;
    assert_eq!(
        answer.text(),
        r#"{"outputs":{"label":[0],"probabilities":[[0.75,0.125,0.125]]}}"#
    );
    let answer = post(
        "/v1/models/iris:predict",
        r#"{"inputs": {"float_input": [[5.1, 3.5, 1.4, 0.2]]}}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = post(
        "/v1/models/regressor:predict",
        r#"{"inputs": [[1, 2, 3, 4]]}"#,
    )
    .await;
    assert_eq!(answer.text(), r#"{"outputs":[[10.0]]}"#);
    let body =
        r#"{"inputs": {"in": [[1, 2]], "extra": [0.5]}, "signature_name": "serving_default"}"#;
    let answer = post("/v1/models/echo_int16:predict", body).await;
    assert_eq!(answer.text(), r#"{"outputs":{"out":[[1,2]],"out2":[0.5]}}"#);
}

#[tokio::test]
async fn predict_errors() {
    for (path, body, status, needle) in [
        ("/v1/models/iris:classify", "{}", 400, "not supported"),
        ("/v1/models/iris", "{}", 405, "method not allowed"),
        (
            "/v1/models/nope:predict",
            r#"{"instances": [[1]]}"#,
            404,
            "unknown model",
        ),
        (
            "/v1/models/iris/versions/9:predict",
            r#"{"instances": [[1,2,3,4]]}"#,
            404,
            "no version 9",
        ),
        (
            "/v1/models/iris/labels/x:predict",
            r#"{"instances": [[1,2,3,4]]}"#,
            404,
            "has no label 'x'",
        ),
        (
            "/v1/models/iris:predict",
            "{}",
            400,
            "missing \"instances\"",
        ),
        (
            "/v1/models/iris:predict",
            r#"{"instances": [[1,2,3,4]], "inputs": [[1,2,3,4]]}"#,
            400,
            "not both",
        ),
        (
            "/v1/models/iris:predict",
            r#"{"instances": [[1,2,3]]}"#,
            400,
            "4 features",
        ),
        (
            "/v1/models/iris:predict",
            r#"{"instances": [{"float_input": [1,2,3,4]}]}"#,
            400,
            "found an object",
        ),
        (
            "/v1/models/iris:predict",
            r#"{"inputs": {"bogus": [[1,2,3,4]]}}"#,
            400,
            "no input 'bogus'",
        ),
        (
            "/v1/models/echo_fp32:predict",
            r#"{"inputs": {"in": [[1]]}}"#,
            400,
            "lacks the model's input 'extra'",
        ),
        (
            "/v1/models/echo_fp32:predict",
            r#"{"inputs": [[1]]}"#,
            400,
            "has 2 inputs",
        ),
        (
            "/v1/models/iris:predict",
            r#"{"instances": [[1,2,3,4]], "signature_name": "x"}"#,
            400,
            "signature",
        ),
        ("/v1/models/iris:predict", "", 400, "empty"),
    ] {
        let answer = post(path, body).await;
        assert_eq!(answer.status, status, "{path} {body}: {}", answer.text());
        assert!(
            answer.error().contains(needle),
            "{path} {body}: {}",
            answer.text()
        );
    }
}
