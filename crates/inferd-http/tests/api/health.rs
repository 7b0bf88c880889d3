use axum::body::Body;
use axum::http::{Request, Version};

use crate::common::*;

#[tokio::test]
async fn live_always_ready_follows_the_registry() {
    assert_eq!(get("/v2/health/live").await.status, 200);
    assert_eq!(get("/v2/health/ready").await.status, 200);
    let state = state();
    state.registry.set_ready(false);
    let request = || {
        Request::get("/v2/health/ready")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send_to(state.clone(), request()).await.status, 503);
    let live = Request::get("/v2/health/live").body(Body::empty()).unwrap();
    assert_eq!(send_to(state, live).await.status, 200);
}

#[tokio::test]
async fn connections_are_closed_after_each_answer_while_not_ready() {
    let state = state();
    let predict = |version| {
        Request::post("/predict")
            .version(version)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#))
            .unwrap()
    };
    let ready = send_to(state.clone(), predict(Version::HTTP_11)).await;
    assert_eq!(ready.status, 200);
    assert!(!ready.headers.contains_key("connection"));
    // Draining: still answered, but the HTTP/1 connection is not kept for another request.
    state.registry.set_ready(false);
    let draining = send_to(state.clone(), predict(Version::HTTP_11)).await;
    assert_eq!(draining.status, 200);
    assert_eq!(draining.headers["connection"], "close");
    let not_ready = Request::get("/v2/health/ready")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send_to(state.clone(), not_ready).await.headers["connection"],
        "close"
    );
    // HTTP/2 forbids the header.
    let h2 = send_to(state, predict(Version::HTTP_2)).await;
    assert_eq!(h2.status, 200);
    assert!(!h2.headers.contains_key("connection"));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let generated = get("/v2/health/live").await;
    assert!(!generated.headers["x-request-id"].is_empty());
    let mine = Request::get("/nope")
        .header("x-request-id", "abc-42")
        .body(Body::empty())
        .unwrap();
    let answer = send(mine).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.headers["x-request-id"], "abc-42");
    let bad = Request::get("/v2")
        .header("x-request-id", "a b")
        .body(Body::empty())
        .unwrap();
    assert_ne!(send(bad).await.headers["x-request-id"], "a b");
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow_and_a_json_error() {
    let answer = send(
        Request::delete("/v2/models/iris")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 405);
    assert!(answer.headers["allow"].to_str().unwrap().contains("GET"));
    assert_eq!(answer.json()["error_type"], "method_not_allowed");
}

#[tokio::test]
async fn inference_requests_are_counted_by_model_version_protocol_and_status() {
    assert_eq!(
        post("/predict", r#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        post("/v1/models/made-up-name:predict", r#"{"instances": [[1]]}"#)
            .await
            .status,
        404
    );
    let text = inferd_core::metrics::render();
    let has = |labels: &[&str]| {
        text.lines().any(|l| {
            l.starts_with("inferd_requests_total{") && labels.iter().all(|x| l.contains(x))
        })
    };
    assert!(
        has(&[
            "model=\"iris\"",
            "version=\"2\"",
            "protocol=\"http_seed\"",
            "status=\"ok\""
        ]),
        "{text}"
    );
    assert!(
        has(&[
            "model=\"\"",
            "protocol=\"http_v1\"",
            "status=\"model_not_found\""
        ]),
        "{text}"
    );
    assert!(!text.contains("made-up-name"));
}
