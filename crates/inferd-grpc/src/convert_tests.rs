//! Unit tests of proto ↔ tensor conversion: every datatype both ways, raw framing, refusals.

use super::*;
use inferd_core::ErrorKind;

fn spec(datatype: DataType, shape: Vec<i64>) -> TensorSpec {
    TensorSpec::new("x", datatype, shape)
}

fn raw_input(datatype: &str, shape: Vec<i64>) -> InferInputTensor {
    InferInputTensor {
        name: "x".into(),
        datatype: datatype.into(),
        shape,
        ..Default::default()
    }
}

#[test]
fn every_datatype_round_trips_raw() {
    use DataType::*;
    let cases: Vec<(DataType, TensorData)> = vec![
        (Bool, TensorData::Bool(vec![true, false, true])),
        (U8, TensorData::I32(vec![0, 7, 255])),
        (I8, TensorData::I32(vec![-128, 0, 127])),
        (U16, TensorData::I32(vec![0, 7, 65535])),
        (I16, TensorData::I32(vec![-32768, 0, 32767])),
        (I32, TensorData::I32(vec![i32::MIN, 0, i32::MAX])),
        (U32, TensorData::I64(vec![0, 7, u32::MAX as i64])),
        (I64, TensorData::I64(vec![i64::MIN, 0, i64::MAX])),
        (U64, TensorData::I64(vec![0, 7, i64::MAX])),
        (F16, TensorData::F32(vec![0.5, -2.0, 1024.0])),
        (BF16, TensorData::F32(vec![0.5, -2.0, 1024.0])),
        (F32, TensorData::F32(vec![0.1, -2.5, f32::MAX])),
        (F64, TensorData::F64(vec![0.1, -2.5, f64::MAX])),
        (
            Bytes,
            TensorData::Bytes(vec![b"a".to_vec(), vec![], b"xyz".to_vec()]),
        ),
    ];
    for (datatype, data) in cases {
        let raw = encode_raw(datatype, &data).unwrap();
        if let Some(size) = datatype.size() {
            assert_eq!(raw.len(), 3 * size, "{datatype:?}");
        }
        let back = raw::decode(&raw, datatype, 3, "x").unwrap();
        assert_eq!(back, data, "{datatype:?}");
    }
}

#[test]
fn every_typed_datatype_round_trips() {
    use DataType::*;
    let cases: Vec<(DataType, TensorData)> = vec![
        (Bool, TensorData::Bool(vec![true, false])),
        (U8, TensorData::I32(vec![0, 255])),
        (I8, TensorData::I32(vec![-128, 127])),
        (U16, TensorData::I32(vec![0, 65535])),
        (I16, TensorData::I32(vec![-32768, 32767])),
        (I32, TensorData::I32(vec![i32::MIN, i32::MAX])),
        (U32, TensorData::I64(vec![0, u32::MAX as i64])),
        (I64, TensorData::I64(vec![i64::MIN, i64::MAX])),
        (U64, TensorData::I64(vec![0, i64::MAX])),
        (F32, TensorData::F32(vec![0.1, -2.5])),
        (F64, TensorData::F64(vec![0.1, -2.5])),
        (Bytes, TensorData::Bytes(vec![b"a".to_vec(), vec![]])),
    ];
    for (datatype, data) in cases {
        let contents = encode_typed(datatype, data.clone()).unwrap();
        let back = decode_typed(Some(contents), datatype, 2, "x").unwrap();
        assert_eq!(back, data, "{datatype:?}");
    }
}

#[test]
fn typed_values_out_of_range_are_refused() {
    let c = InferTensorContents {
        int_contents: vec![300],
        ..Default::default()
    };
    let err = decode_typed(Some(c), DataType::I8, 1, "input 'x'").unwrap_err();
    assert_eq!(
        err.message,
        "input 'x' has 300 at element 0, out of range for INT8"
    );
    let c = InferTensorContents {
        uint_contents: vec![70_000],
        ..Default::default()
    };
    assert!(decode_typed(Some(c), DataType::U16, 1, "x").is_err());
    let c = InferTensorContents {
        uint64_contents: vec![u64::MAX],
        ..Default::default()
    };
    assert!(decode_typed(Some(c), DataType::U64, 1, "x").is_err());
    let err = raw::decode(&u64::MAX.to_le_bytes(), DataType::U64, 1, "x").unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest);
}

#[test]
fn half_floats_need_raw() {
    let c = InferTensorContents {
        fp32_contents: vec![1.0],
        ..Default::default()
    };
    let err = decode_typed(Some(c), DataType::F16, 1, "input 'x'").unwrap_err();
    assert!(err.message.contains("raw_input_contents"), "{err}");
    // And a typed answer reports them as FP32.
    let data = TensorData::F32(vec![1.0]);
    assert_eq!(
        output_datatype(Some(&spec(DataType::F16, vec![-1])), &data, false),
        DataType::F32
    );
    assert_eq!(
        output_datatype(Some(&spec(DataType::F16, vec![-1])), &data, true),
        DataType::F16
    );
}

#[test]
fn huge_shapes_are_refused_before_allocating() {
    let config = GrpcConfig::default();
    let input = raw_input("FP32", vec![i64::MAX, i64::MAX]);
    let err = decode_input(
        input,
        Some(&Bytes::new()),
        &spec(DataType::F32, vec![-1, -1]),
        &config,
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PayloadTooLarge);
    let input = raw_input("FP32", vec![1 << 40]);
    let err = decode_input(
        input,
        Some(&Bytes::new()),
        &spec(DataType::F32, vec![-1]),
        &config,
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PayloadTooLarge);
}

#[test]
fn raw_size_must_match_the_shape() {
    let config = GrpcConfig::default();
    let input = raw_input("FP64", vec![2, 2]);
    let raw = Bytes::from(vec![0u8; 24]);
    let err = decode_input(
        input,
        Some(&raw),
        &spec(DataType::F64, vec![-1, 2]),
        &config,
    )
    .unwrap_err();
    assert!(err.message.contains("need 32 bytes"), "{err}");
}

#[test]
fn numbers_coerce_to_the_declared_type_and_nothing_else_does() {
    assert_eq!(
        coerce(TensorData::I64(vec![3]), DataType::F32, "x").unwrap(),
        TensorData::F32(vec![3.0])
    );
    assert_eq!(
        coerce(TensorData::I32(vec![3]), DataType::I64, "x").unwrap(),
        TensorData::I64(vec![3])
    );
    assert!(coerce(TensorData::I64(vec![i64::MAX]), DataType::I32, "x").is_err());
    assert!(coerce(TensorData::F32(vec![1.5]), DataType::I64, "x").is_err());
    assert!(coerce(TensorData::Bool(vec![true]), DataType::F32, "x").is_err());
    assert!(coerce(TensorData::Bytes(vec![vec![]]), DataType::F32, "x").is_err());
}

#[test]
fn outputs_use_the_declared_datatype_when_the_data_fits_it() {
    let data = TensorData::I32(vec![1, 2]);
    assert_eq!(
        output_datatype(Some(&spec(DataType::U8, vec![-1])), &data, false),
        DataType::U8
    );
    // A declaration the data does not match falls back to the data's own type.
    assert_eq!(
        output_datatype(Some(&spec(DataType::F32, vec![-1])), &data, false),
        DataType::I32
    );
    let tensor = Tensor::new(vec![2], TensorData::I32(vec![1, 300])).unwrap();
    let err = encode_output("y", DataType::U8, tensor, true).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
}
