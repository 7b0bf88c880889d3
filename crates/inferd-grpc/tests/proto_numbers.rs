//! Pins the proto's field numbers to those tritonclient and the kserve SDK send (read from their
//! generated descriptors): a renumbered field would decode silently into the wrong one.

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

fn message<'a>(messages: &'a [DescriptorProto], path: &str) -> &'a DescriptorProto {
    let (head, rest) = path
        .split_once('.')
        .map_or((path, None), |(h, r)| (h, Some(r)));
    let found = messages
        .iter()
        .find(|m| m.name() == head)
        .unwrap_or_else(|| panic!("no message {head}"));
    match rest {
        None => found,
        Some(rest) => message(&found.nested_type, rest),
    }
}

#[test]
fn field_numbers_match_the_clients() {
    let set = FileDescriptorSet::decode(inferd_grpc::proto::FILE_DESCRIPTOR_SET).unwrap();
    let file = set
        .file
        .iter()
        .find(|f| f.package() == "inference")
        .unwrap();
    let expected: &[(&str, &[(&str, i32)])] = &[
        ("ModelReadyRequest", &[("name", 1), ("version", 2)]),
        (
            "ServerMetadataResponse",
            &[("name", 1), ("version", 2), ("extensions", 3)],
        ),
        ("ModelMetadataRequest", &[("name", 1), ("version", 2)]),
        (
            "ModelMetadataResponse",
            &[
                ("name", 1),
                ("versions", 2),
                ("platform", 3),
                ("inputs", 4),
                ("outputs", 5),
                ("properties", 6),
            ],
        ),
        (
            "ModelMetadataResponse.TensorMetadata",
            &[("name", 1), ("datatype", 2), ("shape", 3)],
        ),
        (
            "ModelInferRequest",
            &[
                ("model_name", 1),
                ("model_version", 2),
                ("id", 3),
                ("parameters", 4),
                ("inputs", 5),
                ("outputs", 6),
                ("raw_input_contents", 7),
            ],
        ),
        (
            "ModelInferRequest.InferInputTensor",
            &[
                ("name", 1),
                ("datatype", 2),
                ("shape", 3),
                ("parameters", 4),
                ("contents", 5),
            ],
        ),
        (
            "ModelInferRequest.InferRequestedOutputTensor",
            &[("name", 1), ("parameters", 2)],
        ),
        (
            "ModelInferResponse",
            &[
                ("model_name", 1),
                ("model_version", 2),
                ("id", 3),
                ("parameters", 4),
                ("outputs", 5),
                ("raw_output_contents", 6),
            ],
        ),
        (
            "ModelInferResponse.InferOutputTensor",
            &[
                ("name", 1),
                ("datatype", 2),
                ("shape", 3),
                ("parameters", 4),
                ("contents", 5),
            ],
        ),
        (
            "InferParameter",
            &[
                ("bool_param", 1),
                ("int64_param", 2),
                ("string_param", 3),
                ("double_param", 4),
                ("uint64_param", 5),
            ],
        ),
        (
            "InferTensorContents",
            &[
                ("bool_contents", 1),
                ("int_contents", 2),
                ("int64_contents", 3),
                ("uint_contents", 4),
                ("uint64_contents", 5),
                ("fp32_contents", 6),
                ("fp64_contents", 7),
                ("bytes_contents", 8),
            ],
        ),
        (
            "RepositoryIndexRequest",
            &[("repository_name", 1), ("ready", 2)],
        ),
        (
            "RepositoryIndexResponse.ModelIndex",
            &[("name", 1), ("version", 2), ("state", 3), ("reason", 4)],
        ),
        (
            "RepositoryModelLoadRequest",
            &[("repository_name", 1), ("model_name", 2), ("parameters", 3)],
        ),
        (
            "RepositoryModelUnloadRequest",
            &[("repository_name", 1), ("model_name", 2), ("parameters", 3)],
        ),
    ];
    for (path, fields) in expected {
        let m = message(&file.message_type, path);
        let actual: Vec<(&str, i32)> = m.field.iter().map(|f| (f.name(), f.number())).collect();
        assert_eq!(&actual, fields, "{path}");
    }
    let service = &file.service[0];
    assert_eq!(service.name(), "GRPCInferenceService");
}
