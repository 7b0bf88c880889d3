use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn server_metadata_advertises_binary_tensor_data() {
    let answer = get("/v2").await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["name"], "inferd");
    assert_eq!(body["extensions"], json!(["binary_tensor_data"]));
}

#[tokio::test]
async fn model_metadata_with_and_without_version() {
    let expected = r#"{"name":"iris","versions":["1","2"],"platform":"fake","inputs":[{"name":"float_input","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"label","datatype":"INT64","shape":[-1]},{"name":"probabilities","datatype":"FP32","shape":[-1,3]}]}"#;
    assert_eq!(get("/v2/models/iris").await.text(), expected);
    assert_eq!(get("/v2/models/iris/versions/1").await.text(), expected);
    assert_eq!(get("/v2/models/nope").await.status, 404);
    assert_eq!(get("/v2/models/iris/versions/3").await.status, 404);
    let answer = get("/v2/models/iris/versions/x").await;
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("positive integers"));
    assert_eq!(get("/v2/models/iris/versions/0").await.status, 400);
}

#[tokio::test]
async fn model_readiness() {
    assert_eq!(
        get("/v2/models/iris/ready").await.text(),
        r#"{"name":"iris","ready":true}"#
    );
    assert_eq!(get("/v2/models/iris/versions/2/ready").await.status, 200);
    assert_eq!(get("/v2/models/iris/versions/9/ready").await.status, 404);
    assert_eq!(get("/v2/models/nope/ready").await.status, 404);
}

fn iris_request(data: serde_json::Value) -> String {
    json!({"id": "42", "inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": data}]})
        .to_string()
}

#[tokio::test]
async fn infer_with_flat_or_nested_data_echoes_the_id() {
    let expected = r#"{"model_name":"iris","model_version":"2","id":"42","outputs":[{"name":"label","datatype":"INT64","shape":[2],"data":[0,2]},{"name":"probabilities","datatype":"FP32","shape":[2,3],"data":[0.75,0.125,0.125,0.125,0.125,0.75]}]}"#;
    let flat = iris_request(json!([5.1, 3.5, 1.4, 0.2, 7.7, 3.0, 6.1, 2.3]));
    let answer = post("/v2/models/iris/infer", flat.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), expected);
    let nested = iris_request(json!([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]));
    assert_eq!(post("/v2/models/iris/infer", nested).await.text(), expected);
    let v1 = post("/v2/models/iris/versions/1/infer", flat).await;
    assert_eq!(v1.json()["model_version"], "1");
    assert_eq!(v1.headers["x-inferd-model-version"], "1");
}

#[tokio::test]
async fn requested_outputs_filter_the_answer() {
    let body = json!({
        "inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 6, 4]}],
        "outputs": [{"name": "probabilities"}]
    });
    let answer = post("/v2/models/iris/infer", body.to_string()).await;
    assert_eq!(
        answer.text(),
        r#"{"model_name":"iris","model_version":"2","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,3],"data":[0.125,0.125,0.75]}]}"#
    );
}

#[tokio::test]
async fn every_json_datatype_round_trips_through_an_echo_model() {
    let cases = [
        ("BOOL", json!([true, false])),
        ("UINT8", json!([0, 255])),
        ("UINT16", json!([0, 65535])),
        ("UINT32", json!([0, 4294967295u64])),
        ("UINT64", json!([0, 9223372036854775807u64])),
        ("INT8", json!([-128, 127])),
        ("INT16", json!([-32768, 32767])),
        ("INT32", json!([-2147483648i64, 2147483647])),
        (
            "INT64",
            json!([-9223372036854775808i64, 9223372036854775807i64]),
        ),
        ("FP32", json!([1.5, -0.25])),
        ("FP64", json!([1e300, -0.5])),
        ("BYTES", json!(["héllo", ""])),
    ];
    for (datatype, data) in cases {
        let model = format!("echo_{}", datatype.to_lowercase());
        let body = json!({"inputs": [
            {"name": "in", "shape": [1, 2], "datatype": datatype, "data": data},
            {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}
        ], "outputs": [{"name": "out"}]});
        let answer = post(&format!("/v2/models/{model}/infer"), body.to_string()).await;
        assert_eq!(answer.status, 200, "{datatype}: {}", answer.text());
        let out = &answer.json()["outputs"][0];
        assert_eq!(out["datatype"], datatype);
        assert_eq!(out["shape"], json!([1, 2]));
        assert_eq!(out["data"], data, "{datatype}");
    }
    for datatype in ["FP16", "BF16"] {
        let model = format!("echo_{}", datatype.to_lowercase());
        let body = json!({"inputs": [
            {"name": "in", "shape": [1, 1], "datatype": datatype, "data": [1.0]},
            {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}
        ]});
        let answer = post(&format!("/v2/models/{model}/infer"), body.to_string()).await;
        assert_eq!(answer.status, 400);
        assert!(answer.error().contains("binary"), "{}", answer.text());
    }
}

#[tokio::test]
async fn named_inputs_are_matched_and_checked() {
    let input =
        |name: &str| json!({"name": name, "shape": [1, 1], "datatype": "FP32", "data": [1]});
    let extra = json!({"name": "extra", "shape": [1], "datatype": "FP32", "data": [2]});
    // Order in the request does not matter.
    let body = json!({"inputs": [extra.clone(), input("in")]});
    let answer = post("/v2/models/echo_fp32/infer", body.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    for (inputs, needle) in [
        (json!([input("in")]), "needs input 'extra'"),
        (
            json!([input("in"), extra.clone(), input("bogus")]),
            "has no input 'bogus'; its inputs are: in, extra",
        ),
        (
            json!([input("in"), input("in"), extra.clone()]),
            "given twice",
        ),
        (json!([]), "no inputs"),
    ] {
        let answer = post(
            "/v2/models/echo_fp32/infer",
            json!({"inputs": inputs}).to_string(),
        )
        .await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(answer.error().contains(needle), "{}", answer.text());
    }
}

#[tokio::test]
async fn model_errors_keep_their_status_and_retry_after() {
    let body = json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]});
    let answer = post("/v2/models/failing/infer", body.to_string()).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(answer.json()["error_type"], "overloaded");
}

#[tokio::test]
async fn the_regressor_runs_on_the_inference_threads() {
    let body = json!({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 0, 0, 0, 0.5]}]});
    let answer = post("/v2/models/regressor/infer", body.to_string()).await;
    assert_eq!(
        answer.text(),
        r#"{"model_name":"regressor","model_version":"1","outputs":[{"name":"variable","datatype":"FP64","shape":[2,1],"data":[10.0,0.5]}]}"#
    );
}

#[tokio::test]
async fn oversized_tensors_are_refused_before_allocating() {
    let body = json!({"inputs": [{"name": "float_input", "shape": [1000000000, 4], "datatype": "FP32", "data": [1]}]});
    let answer = post("/v2/models/iris/infer", body.to_string()).await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    let request = Request::post("/v2/models/iris/infer")
        .header("content-length", "999999999")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(request).await.status, 413);
}

#[tokio::test]
async fn a_sticky_traffic_split_keeps_each_client_on_one_version() {
    let state = state();
    let mut snapshot = (*state.registry.snapshot()).clone();
    let split = inferd_core::routing::TrafficSplit::new(
        &[(1, 50), (2, 50)],
        &[1, 2],
        Some("x-user".into()),
    );
    snapshot.models.get_mut("iris").unwrap().split = split.map(std::sync::Arc::new);
    state.registry.publish(snapshot);
    let body = iris_request(json!([5.1, 3.5, 1.4, 0.2, 7.7, 3.0, 6.1, 2.3]));
    let mut seen = std::collections::BTreeSet::new();
    for user in 0..20 {
        let mut versions = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let request = Request::post("/v2/models/iris/infer")
                .header("x-user", format!("user-{user}"))
                .body(Body::from(body.clone()))
                .unwrap();
            let answer = send_to(state.clone(), request).await;
            versions.insert(answer.json()["model_version"].as_str().unwrap().to_owned());
        }
        assert_eq!(versions.len(), 1, "user-{user} moved between versions");
        seen.extend(versions);
    }
    assert_eq!(seen.len(), 2, "both versions get traffic");
}

#[tokio::test]
async fn a_panicking_model_gives_500_and_the_server_keeps_serving() {
    let state = state();
    let body = json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]});
    let request = Request::post("/v2/models/panicking/infer")
        .body(Body::from(body.to_string()))
        .unwrap();
    let answer = send_to(state.clone(), request).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()["error"], "internal error");
    let request = Request::post("/predict")
        .body(Body::from(r#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#))
        .unwrap();
    assert_eq!(send_to(state, request).await.status, 200);
}
