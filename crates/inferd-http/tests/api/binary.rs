use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::common::*;

/// A binary-extension request: the JSON header, then the raw tensors.
fn binary_request(path: &str, header: serde_json::Value, blobs: &[&[u8]]) -> Request<Body> {
    let header = header.to_string();
    let mut body = header.clone().into_bytes();
    for blob in blobs {
        body.extend_from_slice(blob);
    }
    Request::post(path)
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", header.len())
        .body(Body::from(body))
        .unwrap()
}

/// Splits a binary response into its JSON header and the binary part.
fn split(answer: &Answer) -> (serde_json::Value, Vec<u8>) {
    let length: usize = answer.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (
        serde_json::from_slice(&answer.body[..length]).unwrap(),
        answer.body[length..].to_vec(),
    )
}

fn le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[tokio::test]
async fn iris_with_binary_inputs_and_binary_outputs() {
    let rows = le(&[5.1, 3.5, 1.4, 0.2, 7.7, 3.0, 6.1, 2.3]);
    let header = json!({
        "inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": rows.len()}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": true}}, {"name": "probabilities"}]
    });
    let answer = send(binary_request("/v2/models/iris/infer", header, &[&rows])).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "application/octet-stream");
    let (json, blobs) = split(&answer);
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 16);
    assert!(json["outputs"][0].get("data").is_none());
    assert_eq!(
        json["outputs"][1]["data"],
        json!([0.75, 0.125, 0.125, 0.125, 0.125, 0.75])
    );
    let labels: Vec<i64> = blobs
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(labels, vec![0, 2]);
}

#[tokio::test]
async fn binary_data_output_sends_every_output_binary_from_a_json_request() {
    let body = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
    });
    let answer = post("/v2/models/iris/infer", body.to_string()).await;
    let (json, blobs) = split(&answer);
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 12);
    assert_eq!(blobs.len(), 20);
    assert_eq!(&blobs[8..12], &0.75f32.to_le_bytes());
}

#[tokio::test]
async fn every_datatype_round_trips_in_binary() {
    let two_of = |size: usize| -> Vec<u8> {
        (0..2 * size as u8)
            .map(|i| i.wrapping_mul(37) % 120)
            .collect()
    };
    for datatype in ALL_TYPES {
        let raw = match datatype.size() {
            Some(_) if datatype == inferd_core::DataType::Bool => vec![0, 1],
            Some(size) => two_of(size),
            None => [&3u32.to_le_bytes()[..], b"abc", &0u32.to_le_bytes()].concat(),
        };
        let extra = le(&[1.0]);
        let header = json!({
            "inputs": [
                {"name": "in", "shape": [1, 2], "datatype": datatype.as_str(),
                 "parameters": {"binary_data_size": raw.len()}},
                {"name": "extra", "shape": [1], "datatype": "FP32",
                 "parameters": {"binary_data_size": 4}}
            ],
            "outputs": [{"name": "out", "parameters": {"binary_data": true}}]
        });
        let path = format!("/v2/models/{}/infer", echo_name(datatype));
        let answer = send(binary_request(&path, header, &[&raw, &extra])).await;
        assert_eq!(answer.status, 200, "{datatype:?}: {}", answer.text());
        let (json, blobs) = split(&answer);
        assert_eq!(json["outputs"][0]["datatype"], datatype.as_str());
        assert_eq!(blobs, raw, "{datatype:?}");
    }
}

#[tokio::test]
async fn half_floats_in_binary_come_back_as_fp32_in_json() {
    let raw: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let header = json!({"inputs": [
        {"name": "in", "shape": [1, 2], "datatype": "FP16", "parameters": {"binary_data_size": 4}},
        {"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}
    ], "outputs": [{"name": "out"}]});
    let answer = send(binary_request(
        "/v2/models/echo_fp16/infer",
        header,
        &[&raw],
    ))
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let out = &answer.json()["outputs"][0];
    assert_eq!(out["datatype"], "FP32");
    assert_eq!(out["data"], json!([1.5, -2.0]));
}

#[tokio::test]
async fn lying_lengths_get_400() {
    let rows = le(&[5.1, 3.5, 1.4, 0.2]);
    let input = |size: usize| {
        json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                           "parameters": {"binary_data_size": size}}]})
    };
    for (header, blobs, needle) in [
        (input(20), vec![&rows[..]], "remain in the body"),
        (input(12), vec![&rows[..]], "4 FP32 elements need 16"),
        (input(8), vec![&rows[..8]], "4 FP32 elements need 16"),
        (input(16), vec![], "remain in the body"),
    ] {
        let answer = send(binary_request("/v2/models/iris/infer", header, &blobs)).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(answer.error().contains(needle), "{}", answer.text());
    }
    let header = input(16).to_string();
    let lying_header = |length: &str| {
        Request::post("/v2/models/iris/infer")
            .header("inference-header-content-length", length)
            .body(Body::from([header.as_bytes(), &rows].concat()))
            .unwrap()
    };
    for (length, needle) in [
        ("100000", "has only"),
        ("-1", "not a number"),
        ("10", "invalid inference request"),
        ("0", "leaves no JSON header"),
    ] {
        let answer = send(lying_header(length)).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(
            answer.error().contains(needle),
            "{length}: {}",
            answer.text()
        );
    }
}
