//! The gRPC front end end to end: a real tonic client against the router on port 0, serving
//! fake models that implement `inferd_core::Model`.

mod common;

use std::time::Duration;

use inferd_grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use inferd_grpc::proto::*;
use inferd_grpc::GrpcConfig;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use common::start;

fn features(rows: &[[f32; 4]]) -> InferInputTensor {
    InferInputTensor {
        name: "features".into(),
        datatype: "FP32".into(),
        shape: vec![rows.len() as i64, 4],
        contents: Some(InferTensorContents {
            fp32_contents: rows.concat(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn request(model: &str, inputs: Vec<InferInputTensor>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        inputs,
        ..Default::default()
    }
}

const ROWS: [[f32; 4]; 3] = [
    [5.0, 1.0, 1.0, 0.0],
    [1.0, 5.0, 1.0, 0.0],
    [1.0, 1.0, 5.0, 0.0],
];

#[tokio::test]
async fn health_and_readiness_follow_the_registry() {
    let mut s = start(GrpcConfig::default()).await;
    assert!(
        s.client
            .server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        s.client
            .server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let mut health = HealthClient::new(s.channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    assert_eq!(
        health.check(check("")).await.unwrap().into_inner().status,
        1
    ); // SERVING
    let named = health
        .check(check("inference.GRPCInferenceService"))
        .await
        .unwrap();
    assert_eq!(named.into_inner().status, 1);
    assert_eq!(
        health.check(check("nope")).await.unwrap_err().code(),
        Code::NotFound
    );

    s.registry.set_ready(false);
    assert!(
        !s.client
            .server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert_eq!(
        health.check(check("")).await.unwrap().into_inner().status,
        2
    ); // NOT_SERVING
    assert!(
        s.client
            .server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
}

#[tokio::test]
async fn server_and_model_metadata() {
    let mut s = start(GrpcConfig::default()).await;
    let server = s
        .client
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(server.name, "inferd");
    assert!(!server.version.is_empty());

    let meta = s
        .client
        .model_metadata(ModelMetadataRequest {
            name: "classifier".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "classifier");
    assert_eq!(meta.versions, ["1", "2"]);
    assert_eq!(meta.platform, "test");
    assert_eq!(meta.inputs.len(), 1);
    assert_eq!(
        (
            meta.inputs[0].name.as_str(),
            meta.inputs[0].datatype.as_str()
        ),
        ("features", "FP32")
    );
    assert_eq!(meta.inputs[0].shape, [-1, 4]);
    let outputs: Vec<_> = meta
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o.datatype.as_str()))
        .collect();
    assert_eq!(outputs, [("label", "INT64"), ("probabilities", "FP32")]);

    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        s.client
            .model_ready(ready("classifier", "1"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !s.client
            .model_ready(ready("classifier", "7"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !s.client
            .model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    let err = s
        .client
        .model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await;
    assert_eq!(err.unwrap_err().code(), Code::NotFound);

    let index = s
        .client
        .repository_index(RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<_> = index
        .models
        .iter()
        .map(|m| format!("{}:{}:{}", m.name, m.version, m.state))
        .collect();
    assert!(
        listed.contains(&"classifier:2:READY".to_owned()),
        "{listed:?}"
    );
    let load = s
        .client
        .repository_model_load(RepositoryModelLoadRequest::default())
        .await;
    assert_eq!(load.unwrap_err().code(), Code::Unimplemented);
}

#[tokio::test]
async fn typed_inference_with_id_and_versions() {
    let mut s = start(GrpcConfig::default()).await;
    let mut req = request("classifier", vec![features(&ROWS)]);
    req.id = "req-42".into();
    let resp = s
        .client
        .model_infer(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            resp.model_name.as_str(),
            resp.model_version.as_str(),
            resp.id.as_str()
        ),
        ("classifier", "2", "req-42")
    );
    assert!(resp.raw_output_contents.is_empty());
    assert_eq!(resp.outputs[0].name, "label");
    assert_eq!(resp.outputs[0].datatype, "INT64");
    assert_eq!(resp.outputs[0].shape, [3]);
    assert_eq!(
        resp.outputs[0].contents.as_ref().unwrap().int64_contents,
        [2, 1, 0]
    );
    assert_eq!(resp.outputs[1].shape, [3, 3]);
    assert_eq!(
        resp.outputs[1].contents.as_ref().unwrap().fp32_contents[..3],
        [0.0, 0.0, 1.0]
    );

    req.model_version = "1".into();
    let resp = s
        .client
        .model_infer(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.model_version, "1");
    assert_eq!(
        resp.outputs[0].contents.as_ref().unwrap().int64_contents,
        [0, 1, 2]
    );

    req.model_version = "9".into();
    assert_eq!(
        s.client.model_infer(req).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn raw_inference_answers_raw() {
    let mut s = start(GrpcConfig::default()).await;
    let mut input = features(&ROWS);
    input.contents = None;
    let raw: Vec<u8> = ROWS.concat().iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut req = request("classifier", vec![input]);
    req.model_version = "1".into();
    req.raw_input_contents = vec![raw.into()];
    let resp = s.client.model_infer(req).await.unwrap().into_inner();
    assert!(resp.outputs.iter().all(|o| o.contents.is_none()));
    assert_eq!(resp.raw_output_contents.len(), 2);
    let labels: Vec<i64> = resp.raw_output_contents[0]
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(labels, [0, 1, 2]);
    assert_eq!(resp.raw_output_contents[1].len(), 9 * 4);
}

#[tokio::test]
async fn other_numeric_datatypes_are_converted() {
    let mut s = start(GrpcConfig::default()).await;
    let flat: Vec<f32> = ROWS.concat();
    let typed = |datatype: &str, contents: InferTensorContents| InferInputTensor {
        name: "features".into(),
        datatype: datatype.into(),
        shape: vec![3, 4],
        contents: Some(contents),
        ..Default::default()
    };
    let cases = [
        typed(
            "FP64",
            InferTensorContents {
                fp64_contents: flat.iter().map(|&x| x as f64).collect(),
                ..Default::default()
            },
        ),
        typed(
            "INT64",
            InferTensorContents {
                int64_contents: flat.iter().map(|&x| x as i64).collect(),
                ..Default::default()
            },
        ),
        typed(
            "INT32",
            InferTensorContents {
                int_contents: flat.iter().map(|&x| x as i32).collect(),
                ..Default::default()
            },
        ),
        typed(
            "UINT8",
            InferTensorContents {
                uint_contents: flat.iter().map(|&x| x as u32).collect(),
                ..Default::default()
            },
        ),
    ];
    for input in cases {
        let datatype = input.datatype.clone();
        let mut req = request("classifier", vec![input]);
        req.model_version = "1".into();
        let resp = s
            .client
            .model_infer(req)
            .await
            .unwrap_or_else(|e| panic!("{datatype}: {e}"))
            .into_inner();
        assert_eq!(
            resp.outputs[0].contents.as_ref().unwrap().int64_contents,
            [0, 1, 2],
            "{datatype}"
        );
    }

    // Raw FP16 and UINT8.
    let raw_cases: [(&str, Vec<u8>); 2] = [
        (
            "FP16",
            flat.iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
        ("UINT8", flat.iter().map(|&x| x as u8).collect()),
    ];
    for (datatype, bytes) in raw_cases {
        let input = InferInputTensor {
            name: "features".into(),
            datatype: datatype.into(),
            shape: vec![3, 4],
            ..Default::default()
        };
        let mut req = request("classifier", vec![input]);
        req.model_version = "1".into();
        req.raw_input_contents = vec![bytes.into()];
        let resp = s
            .client
            .model_infer(req)
            .await
            .unwrap_or_else(|e| panic!("{datatype}: {e}"))
            .into_inner();
        assert_eq!(
            &resp.raw_output_contents[0][..],
            [0i64, 1, 2].map(i64::to_le_bytes).concat(),
            "{datatype}"
        );
    }
}

#[tokio::test]
async fn bytes_typed_and_raw() {
    let mut s = start(GrpcConfig::default()).await;
    let input = |contents| InferInputTensor {
        name: "text".into(),
        datatype: "BYTES".into(),
        shape: vec![2],
        contents,
        ..Default::default()
    };
    let words = vec![
        bytes::Bytes::from_static(b"iris"),
        bytes::Bytes::from_static(b"setosa"),
    ];
    let typed = InferTensorContents {
        bytes_contents: words.clone(),
        ..Default::default()
    };
    let resp = s
        .client
        .model_infer(request("strings", vec![input(Some(typed))]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.outputs[0].datatype, "UINT32");
    assert_eq!(
        resp.outputs[0].contents.as_ref().unwrap().uint_contents,
        [4, 6]
    );
    assert_eq!(
        resp.outputs[1].contents.as_ref().unwrap().bytes_contents,
        [&b"IRIS"[..], &b"SETOSA"[..]]
    );

    let mut raw = Vec::new();
    for w in &words {
        raw.extend_from_slice(&(w.len() as u32).to_le_bytes());
        raw.extend_from_slice(w);
    }
    let mut req = request("strings", vec![input(None)]);
    req.raw_input_contents = vec![raw.into()];
    req.outputs = vec![InferRequestedOutputTensor {
        name: "upper".into(),
        ..Default::default()
    }];
    let resp = s.client.model_infer(req).await.unwrap().into_inner();
    assert_eq!(resp.outputs.len(), 1);
    assert_eq!(
        &resp.raw_output_contents[0][..],
        b"\x04\0\0\0IRIS\x06\0\0\0SETOSA"
    );
}

#[tokio::test]
async fn requested_outputs_are_answered_in_order() {
    let mut s = start(GrpcConfig::default()).await;
    let mut req = request("classifier", vec![features(&ROWS)]);
    req.outputs = ["probabilities", "label"]
        .map(|n| InferRequestedOutputTensor {
            name: n.into(),
            ..Default::default()
        })
        .to_vec();
    let resp = s
        .client
        .model_infer(req.clone())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = resp.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["probabilities", "label"]);

    req.outputs = vec![InferRequestedOutputTensor {
        name: "nope".into(),
        ..Default::default()
    }];
    let err = s.client.model_infer(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("label, probabilities"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn bad_requests_are_invalid_argument() {
    let mut s = start(GrpcConfig::default()).await;
    let check = |req: ModelInferRequest, expect: &'static str| {
        let mut client = s.client.clone();
        async move {
            let err = client.model_infer(req).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
            assert!(
                err.message().contains(expect),
                "{:?} lacks {expect:?}",
                err.message()
            );
            assert_eq!(
                err.metadata().get("inferd-error-type").unwrap(),
                "bad_request"
            );
        }
    };
    let mut wrong_shape = features(&ROWS);
    wrong_shape.shape = vec![4, 3];
    check(request("classifier", vec![wrong_shape]), "expects [-1, 4]").await;

    let mut short = features(&ROWS);
    short.shape = vec![2, 4];
    check(
        request("classifier", vec![short]),
        "8 elements by its shape but fp32_contents holds 12",
    )
    .await;

    let mut wrong_field = features(&ROWS);
    wrong_field.datatype = "INT64".into();
    check(
        request("classifier", vec![wrong_field]),
        "int64_contents, but fp32_contents was set",
    )
    .await;

    let strings = InferInputTensor {
        name: "features".into(),
        datatype: "BYTES".into(),
        shape: vec![1, 4],
        contents: Some(InferTensorContents {
            bytes_contents: vec![bytes::Bytes::from_static(b"a"); 4],
            ..Default::default()
        }),
        ..Default::default()
    };
    check(
        request("classifier", vec![strings]),
        "must be FP32, got BYTES",
    )
    .await;

    let mut unknown_type = features(&ROWS);
    unknown_type.datatype = "FLOAT".into();
    check(
        request("classifier", vec![unknown_type]),
        "unknown datatype",
    )
    .await;

    let mut renamed = features(&ROWS);
    renamed.name = "x".into();
    check(request("classifier", vec![renamed]), "has no input 'x'").await;
    check(request("classifier", vec![]), "input 'features' is missing").await;

    let mut negative = features(&ROWS);
    negative.shape = vec![-3, 4];
    check(request("classifier", vec![negative]), "negative dimension").await;

    let mut raw_short = request(
        "classifier",
        vec![InferInputTensor {
            contents: None,
            ..features(&ROWS)
        }],
    );
    raw_short.raw_input_contents = vec![vec![0u8; 40].into()];
    check(raw_short, "need 48 bytes").await;

    let mut both = request("classifier", vec![features(&ROWS)]);
    both.raw_input_contents = vec![vec![0u8; 48].into()];
    check(both, "use one or the other").await;

    let err = s
        .client
        .model_infer(request("nope", vec![features(&ROWS)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn oversized_messages_are_resource_exhausted() {
    let config = GrpcConfig {
        max_message_bytes: 4096,
        max_tensor_elements: 100,
        ..GrpcConfig::default()
    };
    let mut s = start(config).await;
    let mut big = request(
        "classifier",
        vec![InferInputTensor {
            contents: None,
            ..features(&ROWS)
        }],
    );
    big.raw_input_contents = vec![vec![0u8; 8192].into()];
    let err = s.client.model_infer(big).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());

    // Under the message limit but over the element limit: refused from the shape alone.
    let mut many = request(
        "classifier",
        vec![InferInputTensor {
            contents: None,
            ..features(&ROWS)
        }],
    );
    many.inputs[0].shape = vec![1_000_000_000, 4];
    many.raw_input_contents = vec![vec![0u8; 16].into()];
    let err = s.client.model_infer(many).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(err.message().contains("limit"), "{}", err.message());

    // The server is still fine afterwards.
    assert!(s
        .client
        .model_infer(request("classifier", vec![features(&ROWS)]))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_passed_deadline_is_deadline_exceeded() {
    let mut s = start(GrpcConfig::default()).await;
    let input = InferInputTensor {
        name: "x".into(),
        datatype: "FP32".into(),
        shape: vec![1],
        contents: Some(InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut req = tonic::Request::new(request("slow", vec![input]));
    req.set_timeout(Duration::from_millis(400));
    let started = std::time::Instant::now();
    let err = s.client.model_infer(req).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
    // Answered at the deadline, not when the model finished (1.5 s).
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn requests_are_counted_under_the_grpc_protocol() {
    let mut s = start(GrpcConfig::default()).await;
    s.client
        .model_infer(request("classifier", vec![features(&ROWS)]))
        .await
        .unwrap();
    let _ = s.client.model_infer(request("nope", vec![])).await;
    let text = inferd_core::metrics::render();
    let ok =
        r#"inferd_requests_total{model="classifier",protocol="grpc_v2",status="ok",version="2"}"#;
    let missing =
        r#"inferd_requests_total{model="",protocol="grpc_v2",status="model_not_found",version=""}"#;
    assert!(text.contains(ok) && text.contains(missing), "{text}");
}

#[tokio::test]
async fn a_panicking_model_fails_its_call_alone() {
    let mut s = start(GrpcConfig::default()).await;
    let input = InferInputTensor {
        name: "x".into(),
        datatype: "FP32".into(),
        shape: vec![1],
        contents: Some(InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = s
        .client
        .model_infer(request("panics", vec![input]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), "internal error");
    // Same connection, still serving.
    assert!(s
        .client
        .model_infer(request("classifier", vec![features(&ROWS)]))
        .await
        .is_ok());
}

#[tokio::test]
async fn the_timeout_parameter_and_header_set_deadlines_too() {
    let mut s = start(GrpcConfig::default()).await;
    let input = InferInputTensor {
        name: "x".into(),
        datatype: "FP32".into(),
        shape: vec![1],
        contents: Some(InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut by_parameter = request("slow", vec![input.clone()]);
    let micros = infer_parameter::ParameterChoice::Int64Param(300_000);
    by_parameter.parameters.insert(
        "timeout".into(),
        InferParameter {
            parameter_choice: Some(micros),
        },
    );
    let err = s.client.model_infer(by_parameter).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());

    let mut by_header = tonic::Request::new(request("slow", vec![input.clone()]));
    by_header
        .metadata_mut()
        .insert("x-inferd-timeout-ms", "300".parse().unwrap());
    let err = s.client.model_infer(by_header).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());

    let mut bad = request("slow", vec![input]);
    let text = infer_parameter::ParameterChoice::StringParam("soon".into());
    bad.parameters.insert(
        "timeout".into(),
        InferParameter {
            parameter_choice: Some(text),
        },
    );
    assert_eq!(
        s.client.model_infer(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn health_watch_streams_readiness_changes() {
    let s = start(GrpcConfig::default()).await;
    let mut health = HealthClient::new(s.channel.clone());
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut stream = health.watch(request).await.unwrap().into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().status, 1); // SERVING
    s.registry.set_ready(false);
    let next = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
    assert_eq!(next.unwrap().unwrap().unwrap().status, 2); // NOT_SERVING
}
