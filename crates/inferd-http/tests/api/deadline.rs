use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::common::*;

fn slow_infer(parameters: serde_json::Value) -> String {
    json!({"parameters": parameters,
           "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]})
    .to_string()
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_504() {
    let by_header = Request::post("/v1/models/slow:predict")
        .header("x-inferd-timeout-ms", "20")
        .body(Body::from(r#"{"instances": [[1, 2, 3, 4]]}"#))
        .unwrap();
    let answer = send(by_header).await;
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert_eq!(answer.json()["error_type"], "deadline_exceeded");

    let by_parameter = post(
        "/v2/models/slow/infer",
        slow_infer(json!({"timeout": 20_000})),
    )
    .await;
    assert_eq!(by_parameter.status, 504, "{}", by_parameter.text());

    let mut state = state();
    let mut config = config();
    config.default_timeout = Some(std::time::Duration::from_millis(20));
    state.config = std::sync::Arc::new(config);
    let by_default = Request::post("/v2/models/slow/infer")
        .body(Body::from(slow_infer(json!({}))))
        .unwrap();
    assert_eq!(send_to(state, by_default).await.status, 504);
}

#[tokio::test]
async fn a_generous_deadline_lets_the_request_finish() {
    let answer = post(
        "/v2/models/slow/infer",
        slow_infer(json!({"timeout": 10_000_000})),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[tokio::test]
async fn malformed_deadlines_get_400() {
    let answer = post(
        "/v2/models/slow/infer",
        slow_infer(json!({"timeout": "soon"})),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("timeout"));
    let request = Request::post("/predict")
        .header("x-inferd-timeout-ms", "0")
        .body(Body::from(r#"{"inputs": [1, 2, 3, 4]}"#))
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("x-inferd-timeout-ms"));
}
