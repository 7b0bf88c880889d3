//! A corpus of bad requests across every REST endpoint: each must get a 4xx with a clear
//! message (JSON `error`), none a 5xx or a panic, and the server must keep answering after all
//! of them.

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use crate::common::*;

/// (method, path, body, expected status, a word the error message must contain)
type Case = (&'static str, &'static str, &'static str, u16, &'static str);

const IRIS: &str = "/v2/models/iris/infer";
const ECHO_U8: &str = "/v2/models/echo_uint8/infer";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // --- the seed's /predict ---
    ("POST", "/predict", "", 400, "empty"),
    ("POST", "/predict", "   ", 400, "empty"),
    ("POST", "/predict", "not json", 400, "expected"),
    ("POST", "/predict", "{", 400, "EOF"),
    ("POST", "/predict", "[]", 400, "JSON object"),
    ("POST", "/predict", "null", 400, "JSON object"),
    ("POST", "/predict", "42", 400, "JSON object"),
    ("POST", "/predict", "\"inputs\"", 400, "JSON object"),
    ("POST", "/predict", "{}", 400, "missing field `inputs`"),
    ("POST", "/predict", r#"{"input": [1,2,3,4]}"#, 400, "missing field `inputs`"),
    ("POST", "/predict", r#"{"inputs": null}"#, 400, "found null"),
    ("POST", "/predict", r#"{"inputs": "5.1,3.5,1.4,0.2"}"#, 400, "found a string"),
    ("POST", "/predict", r#"{"inputs": {"a": 1}}"#, 400, "found an object"),
    ("POST", "/predict", r#"{"inputs": 5.1}"#, 400, "list of numbers"),
    ("POST", "/predict", r#"{"inputs": []}"#, 400, "empty"),
    ("POST", "/predict", r#"{"inputs": [[]]}"#, 400, "empty"),
    ("POST", "/predict", r#"{"inputs": [[], []]}"#, 400, "empty"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3]}"#, 400, "4 features"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 4, 5]}"#, 400, "4 features"),
    ("POST", "/predict", r#"{"inputs": [[1, 2, 3, 4], [1, 2, 3]]}"#, 400, "ragged"),
    ("POST", "/predict", r#"{"inputs": [[1, 2, 3, 4], 5]}"#, 400, "mixes values and lists"),
    ("POST", "/predict", r#"{"inputs": [1, [2, 3, 4, 5]]}"#, 400, "mixes values and lists"),
    ("POST", "/predict", r#"{"inputs": [[[1, 2, 3, 4]]]}"#, 400, "not nested deeper"),
    ("POST", "/predict", r#"{"inputs": [1, 2, null, 4]}"#, 400, "found null"),
    ("POST", "/predict", r#"{"inputs": [1, 2, "3", 4]}"#, 400, "found a string"),
    ("POST", "/predict", r#"{"inputs": [1, 2, true, 4]}"#, 400, "found a boolean"),
    ("POST", "/predict", r#"{"inputs": [1, 2, {}, 4]}"#, 400, "found an object"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, NaN]}"#, 400, "expected"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, Infinity]}"#, 400, "expected"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 1e999]}"#, 400, "out of range"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 1e39]}"#, 400, "out of range for FP32"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, -1e39]}"#, 400, "out of range for FP32"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 4],}"#, 400, "trailing comma"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 4]} {}"#, 400, "trailing characters"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 4], "inputs": [1, 2, 3, 4]}"#, 400, "duplicate"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 4], "probabilities": "yes"}"#, 400, "true or false"),
    ("POST", "/predict", r#"{"inputs": [1, 2, 3, 4], "probabilities": 1}"#, 400, "true or false"),
    ("POST", "/predict", "{\"inputs\": [1, 2, 3, 4\u{0}]}", 400, "expected"),
    ("POST", "/predict", "\u{feff}{\"inputs\": [1, 2, 3, 4]}", 400, "expected"),
    ("POST", "/predict", "{'inputs': [1, 2, 3, 4]}", 400, "key must be a string"),
    ("GET", "/predict", "", 405, "method not allowed"),
    // --- V2 metadata and readiness ---
    ("GET", "/v2/models/nope", "", 404, "unknown model 'nope'"),
    ("GET", "/v2/models/nope/ready", "", 404, "unknown model"),
    ("GET", "/v2/models/iris/versions/0", "", 400, "positive integers"),
    ("GET", "/v2/models/iris/versions/-1", "", 400, "positive integers"),
    ("GET", "/v2/models/iris/versions/1.5", "", 400, "positive integers"),
    ("GET", "/v2/models/iris/versions/99999999999999999999999", "", 400, "positive integers"),
    ("GET", "/v2/models/iris/versions/7", "", 404, "no version 7"),
    ("GET", "/v2/models/iris/versions/7/ready", "", 404, "no version 7"),
    ("GET", "/v2/models/%ZZ", "", 404, "unknown model"),
    ("POST", "/v2/health/live", "", 405, "method not allowed"),
    ("GET", "/v2/models/iris/infer", "", 405, "method not allowed"),
    ("GET", "/v3", "", 404, "no such endpoint"),
    // --- V2 infer: the envelope ---
    ("POST", IRIS, "", 400, "empty"),
    ("POST", IRIS, "nope", 400, "must be a JSON object"),
    ("POST", IRIS, "[]", 400, "must be a JSON object"),
    ("POST", IRIS, r#"[[{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]]"#, 400, "must be a JSON object"),
    ("POST", IRIS, "{}", 400, "missing field `inputs`"),
    ("POST", IRIS, r#"{"inputs": {}}"#, 400, "invalid type"),
    ("POST", IRIS, r#"{"inputs": []}"#, 400, "no inputs"),
    ("POST", IRIS, r#"{"inputs": [1]}"#, 400, "invalid type"),
    ("POST", IRIS, r#"{"id": 42, "inputs": []}"#, 400, "invalid type: integer"),
    ("POST", IRIS, r#"{"parameters": [], "inputs": []}"#, 400, "invalid type"),
    ("POST", IRIS, r#"{"parameters": {"a": null}, "inputs": []}"#, 400, "parameter value"),
    ("POST", IRIS, r#"{"parameters": {"a": {"b": 1}}, "inputs": []}"#, 400, "parameter value"),
    ("POST", IRIS, r#"{"parameters": {"shared_memory_region": "r"}, "inputs": []}"#, 400, "not supported"),
    ("POST", "/v2/models/nope/infer", r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}"#, 404, "unknown model"),
    ("POST", "/v2/models/iris/versions/5/infer", r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 404, "no version 5"),
    ("POST", "/v2/models/iris/versions/x/infer", r#"{"inputs": []}"#, 400, "positive integers"),
    // --- V2 infer: inputs ---
    ("POST", IRIS, r#"{"inputs": [{"shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "missing field `name`"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "missing field `shape`"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "data": [1, 2, 3, 4]}]}"#, 400, "missing field `datatype`"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32"}]}"#, 400, "has no data"),
    ("POST", IRIS, r#"{"inputs": [{"name": "bogus", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "has no input 'bogus'"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FLOAT32", "data": [1, 2, 3, 4]}]}"#, 400, "unknown datatype 'FLOAT32'"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "fp32", "data": [1, 2, 3, 4]}]}"#, 400, "unknown datatype"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, -4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "negative dimension"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": "1,4", "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "invalid type"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4.5], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "invalid type"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]}"#, 400, "but its data has 3"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}"#, 400, "more data than its shape"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#, 400, "model expects [-1, 4]"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "model expects"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [1, 2]]}]}"#, 400, "ragged"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "3", 4]}]}"#, 400, "found a string"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, null, 4]}]}"#, 400, "found null"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": 7}]}"#, 400, "but its data has 1"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": {"a": 1}}]}"#, 400, "found an object"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "BOOL", "data": [true, false, true, false]}]}"#, 400, "must be FP32, got BOOL"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}"#, 400, "must be FP32, got BYTES"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP16", "data": [1, 2, 3, 4]}]}"#, 400, "binary form"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 1e39]}]}"#, 400, "out of range for FP32"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4], "parameters": {"binary_data_size": 16}}]}"#, 400, "both JSON data and binary_data_size"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": -16}}]}"#, 400, "non-negative integer"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": "16"}}]}"#, 400, "non-negative integer"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}"#, 400, "only 0 remain"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}, {"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "given twice"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1000000, 1000000], "datatype": "FP32", "data": [1]}]}"#, 413, "over the limit"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [9223372036854775807, 9223372036854775807], "datatype": "FP32", "data": [1]}]}"#, 413, "more elements than can be addressed"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [2000, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32000}}]}"#, 400, "only 0 remain"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [0, 4], "datatype": "FP32", "data": []}]}"#, 400, "is empty"),
    ("POST", "/v1/models/echo_fp32:predict", r#"{"inputs": {"in": [[]], "extra": [1]}}"#, 400, "is empty"),
    // --- V2 infer: narrow integer types ---
    ("POST", ECHO_U8, r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "UINT8", "data": [256]}, {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]}"#, 400, "out of range for UINT8"),
    ("POST", ECHO_U8, r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "UINT8", "data": [-1]}, {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]}"#, 400, "out of range for UINT8"),
    ("POST", ECHO_U8, r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "UINT8", "data": [1.5]}, {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]}"#, 400, "only integers"),
    ("POST", ECHO_U8, r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "UINT8", "data": [1]}]}"#, 400, "needs input 'extra'"),
    ("POST", ECHO_U8, r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "FP32", "data": [1]}, {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]}"#, 400, "must be INT32, got FP32"),
    ("POST", "/v2/models/echo_bool/infer", r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "BOOL", "data": [1]}, {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]}"#, 400, "only booleans"),
    ("POST", "/v2/models/echo_uint64/infer", r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "UINT64", "data": [18446744073709551615]}, {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]}"#, 400, "out of range for UINT64"),
    ("POST", "/v2/models/echo_bytes/infer", r#"{"inputs": [{"name": "in", "shape": [1, 1], "datatype": "BYTES", "data": [1]}, {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]}"#, 400, "only strings"),
    // --- V2 infer: requested outputs ---
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "nope"}]}"#, 400, "has no output 'nope'; its outputs are: label, probabilities"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "label"}, {"name": "label"}]}"#, 400, "requested twice"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]}"#, 400, "binary_data must be true or false"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "label", "parameters": {"classification": 2}}]}"#, 400, "not supported"),
    ("POST", IRIS, r#"{"parameters": {"binary_data_output": 1}, "inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, 400, "binary_data_output must be true or false"),
    ("POST", IRIS, r#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": {"name": "label"}}"#, 400, "invalid type"),
    // --- KServe V1 / TF Serving ---
    ("GET", "/v1/models/nope", "", 404, "unknown model"),
    ("GET", "/v1/models/nope/metadata", "", 404, "unknown model"),
    ("GET", "/v1/models/iris/versions/abc", "", 400, "positive integers"),
    ("GET", "/v1/models/iris/versions/3/metadata", "", 404, "no version 3"),
    ("GET", "/v1/models/iris/labels/prod", "", 404, "has no label 'prod'"),
    ("GET", "/v1/models/iris:predict", "", 400, "takes POST"),
    ("POST", "/v1/models/iris:explain", "{}", 400, "not supported"),
    ("POST", "/v1/models/iris:regress", "{}", 400, "not supported"),
    ("POST", "/v1/models/:predict", "{}", 400, "not supported"),
    ("POST", "/v1/models/iris", r#"{"instances": [[1, 2, 3, 4]]}"#, 405, "method not allowed"),
    ("POST", "/v1/models/iris/versions/1", r#"{"instances": [[1, 2, 3, 4]]}"#, 405, "method not allowed"),
    ("POST", "/v1/models/iris:predict", "", 400, "empty"),
    ("POST", "/v1/models/iris:predict", "nope", 400, "must be a JSON object"),
    ("POST", "/v1/models/iris:predict", "{nope", 400, "invalid :predict body"),
    ("POST", "/v1/models/iris:predict", "[[1, 2, 3, 4]]", 400, "must be a JSON object"),
    ("POST", "/v1/models/iris:predict", "{}", 400, "missing \"instances\""),
    ("POST", "/v1/models/iris:predict", r#"{"instances": []}"#, 400, "empty"),
    ("POST", "/v1/models/iris:predict", r#"{"instances": [[1, 2, 3]]}"#, 400, "4 features"),
    ("POST", "/v1/models/iris:predict", r#"{"instances": [[1, 2, 3, 4], [1]]}"#, 400, "ragged"),
    ("POST", "/v1/models/iris:predict", r#"{"instances": [[1, 2, "x", 4]]}"#, 400, "found a string"),
    ("POST", "/v1/models/iris:predict", r#"{"instances": "1,2,3,4"}"#, 400, "list of rows"),
    ("POST", "/v1/models/iris:predict", r#"{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}"#, 400, "not both"),
    ("POST", "/v1/models/iris:predict", r#"{"inputs": 5}"#, 400, "a list, or an object"),
    ("POST", "/v1/models/iris:predict", r#"{"inputs": {"x": [[1, 2, 3, 4]]}}"#, 400, "no input 'x'"),
    ("POST", "/v1/models/iris:predict", r#"{"instances": [[1, 2, 3, 4]], "signature_name": "classify"}"#, 400, "signature 'classify' is unknown"),
    ("POST", "/v1/models/iris/versions/0:predict", r#"{"instances": [[1, 2, 3, 4]]}"#, 400, "positive integers"),
    ("POST", "/v1/models/iris/labels/prod:predict", r#"{"instances": [[1, 2, 3, 4]]}"#, 404, "has no label 'prod'"),
    ("POST", "/v1/models/echo_int8:predict", r#"{"inputs": {"in": [[200]], "extra": [1]}}"#, 400, "out of range for INT8"),
];

#[tokio::test]
async fn compressed_bodies_get_415() {
    let request = Request::post(IRIS)
        .header("content-encoding", "gzip")
        .body(Body::from(vec![0x1f_u8, 0x8b]))
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, 415);
    assert!(answer.error().contains("Content-Encoding"));
}

async fn call(router: &axum::Router, method: &str, path: &str, body: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn every_bad_request_gets_a_clear_4xx_and_the_server_keeps_serving() {
    assert!(CASES.len() >= 100, "{} cases", CASES.len());
    let router = inferd_http::app(state());
    let mut failures = Vec::new();
    for (method, path, body, status, needle) in CASES {
        let answer = call(&router, method, path, body).await;
        let message = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let ok = answer.status == *status && message.as_deref().is_some_and(|m| m.contains(needle));
        if !ok {
            failures.push(format!(
                "{method} {path} {body}\n  -> {} {}",
                answer.status,
                answer.text()
            ));
        }
        assert!(answer.headers.contains_key("x-request-id"));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let after = call(
        &router,
        "POST",
        "/predict",
        r#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#,
    )
    .await;
    assert_eq!(after.text(), r#"{"prediction":[0]}"#);
}

#[tokio::test]
async fn deep_and_huge_bodies_everywhere() {
    let router = inferd_http::app(state());
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = "{\"a\":".repeat(100_000);
    for path in ["/predict", IRIS, "/v1/models/iris:predict"] {
        for body in [&deep, &deep_object] {
            let answer = call(&router, "POST", path, body).await;
            assert_eq!(answer.status, 413, "{path}: {}", answer.text());
        }
        let nested = format!(r#"{{"inputs": {}1{}}}"#, "[".repeat(20), "]".repeat(20));
        let answer = call(&router, "POST", path, &nested).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text());
        assert!(
            answer.text().contains("nested deeper than the limit"),
            "{}",
            answer.text()
        );
    }
    let after = call(&router, "GET", "/v2/health/live", "").await;
    assert_eq!(after.status, 200);
}
