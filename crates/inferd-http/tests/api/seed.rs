use axum::body::Body;
use axum::http::Request;

use crate::common::*;

#[tokio::test]
async fn the_seeds_curl_gets_the_seeds_answer() {
    let answer = post("/predict", r#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), r#"{"prediction":[0]}"#);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.headers["x-inferd-model-version"], "2");
}

#[tokio::test]
async fn any_content_type_is_accepted_like_flasks_force_true() {
    let request = Request::post("/predict")
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"inputs": [6.0, 3.0, 4.8, 1.8]}"#))
        .unwrap();
    assert_eq!(send(request).await.text(), r#"{"prediction":[1]}"#);
}

#[tokio::test]
async fn a_batch_gets_one_prediction_per_row_and_probabilities_on_request() {
    let answer = post(
        "/predict",
        r#"{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.0, 3.0, 4.8, 1.8], [7.7, 3.0, 6.1, 2.3]], "probabilities": true}"#,
    )
    .await;
    assert_eq!(
        answer.text(),
        r#"{"prediction":[0,1,2],"probabilities":[[0.75,0.125,0.125],[0.125,0.75,0.125],[0.125,0.125,0.75]]}"#
    );
}

#[tokio::test]
async fn a_regressor_answers_floats_from_the_inference_threads() {
    let state = state();
    let mut snapshot = (*state.registry.snapshot()).clone();
    snapshot.default_model = Some("regressor".into());
    state.registry.publish(snapshot);
    let request = |body: &'static str| Request::post("/predict").body(Body::from(body)).unwrap();
    let answer = send_to(
        state.clone(),
        request(r#"{"inputs": [[1, 2, 3, 4.5], [0, 0, 0, 0.25]]}"#),
    )
    .await;
    assert_eq!(answer.text(), r#"{"prediction":[10.5,0.25]}"#);
    let answer = send_to(
        state,
        request(r#"{"inputs": [1, 2, 3, 4], "probabilities": true}"#),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.error().contains("gives no probabilities"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_reason() {
    for (body, needle) in [
        ("not json", "invalid /predict body"),
        ("", "empty"),
        ("{}", "missing field `inputs`"),
        (r#"{"inputs": [1, 2, 3]}"#, "4 features"),
        (r#"{"inputs": [[1, 2, 3, 4], [1, 2, 3]]}"#, "ragged"),
        (r#"{"inputs": [1, 2, null, 4]}"#, "found null"),
        (r#"{"inputs": [1, 2, "3", 4]}"#, "found a string"),
        (r#"{"inputs": [1, 2, true, 4]}"#, "found a boolean"),
        (r#"{"inputs": []}"#, "empty"),
        (r#"{"inputs": [[]]}"#, "empty"),
        (r#"{"inputs": [[[1, 2, 3, 4]]]}"#, "not nested deeper"),
        (r#"{"inputs": 5}"#, "list of numbers"),
        (r#"{"inputs": [1, 2, 3, 1e999]}"#, "number out of range"),
    ] {
        let answer = post("/predict", body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        assert!(answer.error().contains(needle), "{body}: {}", answer.text());
        assert_eq!(answer.json()["error_type"], "bad_request");
    }
    let deep = format!(
        r#"{{"inputs": {}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let answer = post("/predict", deep).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.error().contains("nested deeper"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn limits_give_413() {
    let big = format!(r#"{{"inputs": [{}]}}"#, vec!["1.0"; 30_000].join(","));
    let answer = post("/predict", big).await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    let many = format!(r#"{{"inputs": [{}]}}"#, vec!["1"; 10_001].join(","));
    assert_eq!(post("/predict", many).await.status, 413);
    let rows = format!(r#"{{"inputs": [{}]}}"#, vec!["[1,2,3,4]"; 1_001].join(","));
    let answer = post("/predict", rows).await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert!(answer.error().contains("rows"));
}
