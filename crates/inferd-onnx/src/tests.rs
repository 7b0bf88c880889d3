//! Loader tests on hand-built graphs: what must load, and what must fail with a clear error.

use super::*;
use crate::proto::*;
use prost::Message;

fn attr_ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v,
        ..Default::default()
    }
}

fn value(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
    use crate::proto::tensor_shape_proto::{dimension, Dimension};
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

fn model(nodes: Vec<NodeProto>, out: ValueInfoProto) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: "".into(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(GraphProto {
            node: nodes,
            input: vec![value("X", data_type::FLOAT, &[0, 2])],
            output: vec![out],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("my_{op}"),
        op_type: op.into(),
        domain: domain.into(),
        attribute: attrs,
    }
}

fn row(v: &[f32]) -> Vec<NamedTensor> {
    vec![NamedTensor::new(
        "X",
        Tensor::new(vec![1, v.len()], inferd_core::TensorData::F32(v.to_vec())).unwrap(),
    )]
}

#[test]
fn unsupported_operator_names_op_and_node() {
    let bytes = model(
        vec![node("Frobnicate", "", &["X"], &["Y"], vec![])],
        value("Y", data_type::FLOAT, &[0, 2]),
    );
    let err = OnnxModel::load(&bytes).unwrap_err();
    assert_eq!(err.kind, inferd_core::ErrorKind::ModelLoad);
    assert!(
        err.message.contains("Frobnicate") && err.message.contains("my_Frobnicate"),
        "{err}"
    );
}

#[test]
fn unsupported_attribute_is_refused() {
    let bytes = model(
        vec![node(
            "Relu",
            "",
            &["X"],
            &["Y"],
            vec![attr_ints("shiny", vec![1])],
        )],
        value("Y", data_type::FLOAT, &[0, 2]),
    );
    let err = OnnxModel::load(&bytes).unwrap_err();
    assert!(
        err.message.contains("shiny") && err.message.contains("my_Relu"),
        "{err}"
    );
}

#[test]
fn corrupt_and_truncated_files_fail_cleanly() {
    let bytes = model(
        vec![node("Relu", "", &["X"], &["Y"], vec![])],
        value("Y", data_type::FLOAT, &[0, 2]),
    );
    assert!(OnnxModel::load(&bytes).is_ok());
    for cut in 1..bytes.len() {
        // Every prefix must give an error or (rarely, on a field boundary) a valid model.
        let _ = OnnxModel::load(&bytes[..cut]);
    }
    let err = OnnxModel::load(b"definitely not a protobuf").unwrap_err();
    assert_eq!(err.kind, inferd_core::ErrorKind::ModelLoad);
    assert!(OnnxModel::load(&[]).is_err());
}

#[test]
fn unknown_opset_is_refused() {
    let mut m = ModelProto::decode(
        &model(
            vec![node("Relu", "", &["X"], &["Y"], vec![])],
            value("Y", data_type::FLOAT, &[0, 2]),
        )[..],
    )
    .unwrap();
    m.opset_import[0].version = 99;
    let err = OnnxModel::load(&m.encode_to_vec()).unwrap_err();
    assert!(err.message.contains("opset 99"), "{err}");
}

#[test]
fn runs_a_small_graph_and_checks_inputs() {
    let bytes = model(
        vec![
            node("Relu", "", &["X"], &["R"], vec![]),
            node("Softmax", "", &["R"], &["Y"], vec![]),
        ],
        value("Y", data_type::FLOAT, &[0, 2]),
    );
    let m = OnnxModel::load(&bytes).unwrap();
    assert_eq!(m.metadata().inputs[0].shape, vec![-1, 2]);
    let out = m.infer(row(&[-1.0, 0.0])).unwrap();
    let y = out[0].tensor.to_f32().unwrap();
    assert!((y[0] - 0.5).abs() < 1e-6 && (y[1] - 0.5).abs() < 1e-6);
    let err = m.infer(row(&[1.0, 2.0, 3.0])).unwrap_err();
    assert_eq!(err.kind, inferd_core::ErrorKind::BadRequest);
}

#[test]
fn tree_ensemble_regressor_with_branch_modes_and_missing() {
    let s = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let attrs = vec![
        attr_ints("nodes_treeids", vec![0, 0, 0, 1, 1, 1]),
        attr_ints("nodes_nodeids", vec![0, 1, 2, 0, 1, 2]),
        attr_ints("nodes_featureids", vec![0, 0, 0, 1, 0, 0]),
        AttributeProto {
            name: "nodes_modes".into(),
            r#type: attribute_type::STRINGS,
            strings: s(&["BRANCH_GT", "LEAF", "LEAF", "BRANCH_EQ", "LEAF", "LEAF"]),
            ..Default::default()
        },
        AttributeProto {
            name: "nodes_values".into(),
            r#type: attribute_type::FLOATS,
            floats: vec![0.5, 0.0, 0.0, 2.0, 0.0, 0.0],
            ..Default::default()
        },
        attr_ints("nodes_truenodeids", vec![1, 0, 0, 1, 0, 0]),
        attr_ints("nodes_falsenodeids", vec![2, 0, 0, 2, 0, 0]),
        attr_ints("nodes_missing_value_tracks_true", vec![1, 0, 0, 0, 0, 0]),
        attr_ints("target_treeids", vec![0, 0, 1, 1]),
        attr_ints("target_nodeids", vec![1, 2, 1, 2]),
        attr_ints("target_ids", vec![0, 0, 0, 0]),
        AttributeProto {
            name: "target_weights".into(),
            r#type: attribute_type::FLOATS,
            floats: vec![10.0, 20.0, 1.0, 2.0],
            ..Default::default()
        },
        AttributeProto {
            name: "aggregate_function".into(),
            r#type: attribute_type::STRING,
            s: b"SUM".to_vec(),
            ..Default::default()
        },
    ];
    let bytes = model(
        vec![node(
            "TreeEnsembleRegressor",
            "ai.onnx.ml",
            &["X"],
            &["Y"],
            attrs,
        )],
        value("Y", data_type::FLOAT, &[0, 1]),
    );
    let m = OnnxModel::load(&bytes).unwrap();
    let y = |x: &[f32]| m.infer(row(x)).unwrap()[0].tensor.to_f32().unwrap()[0];
    assert_eq!(y(&[1.0, 2.0]), 11.0);
    assert_eq!(y(&[0.5, 3.0]), 22.0);
    assert_eq!(y(&[f32::NAN, f32::NAN]), 12.0);
}

#[test]
fn dense_layer_weights_are_packed_once_and_computed_operands_still_work() {
    let mut bytes = model(
        vec![
            node("MatMul", "", &["X", "W"], &["H"], vec![]),
            // B is the request itself here, so it cannot be packed at load.
            node(
                "Gemm",
                "",
                &["X", "X"],
                &["S"],
                vec![AttributeProto {
                    name: "transB".into(),
                    r#type: attribute_type::INT,
                    i: 1,
                    ..Default::default()
                }],
            ),
        ],
        value("H", data_type::FLOAT, &[0, 3]),
    );
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = m.graph.as_mut().unwrap();
    graph.initializer.push(TensorProto {
        name: "W".into(),
        dims: vec![2, 3],
        data_type: data_type::FLOAT,
        float_data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ..Default::default()
    });
    graph.output.push(value("S", data_type::FLOAT, &[0, 0]));
    bytes = m.encode_to_vec();
    let model = OnnxModel::load(&bytes).unwrap();
    // One panel of 8 columns × k = 2 rows of f64; the 24-byte initializer itself is freed.
    assert_eq!(model.memory_bytes(), 2 * 8 * 8);
    let batch = vec![NamedTensor::new(
        "X",
        Tensor::new(
            vec![2, 2],
            inferd_core::TensorData::F32(vec![1.0, -1.0, 0.5, 2.0]),
        )
        .unwrap(),
    )];
    let out = model.infer(batch).unwrap();
    assert_eq!(
        out[0].tensor.to_f32().unwrap().as_ref(),
        &[-3.0, -3.0, -3.0, 8.5, 11.0, 13.5]
    );
    // X · Xᵀ, the rows' Gram matrix.
    assert_eq!(
        out[1].tensor.to_f32().unwrap().as_ref(),
        &[2.0, -1.5, -1.5, 4.25]
    );
}
