//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz) and for replaying their seed corpora
//! in the normal test suite: each feeds arbitrary bytes to one request parser under the default
//! limits and reports whether it accepted them. None may panic, whatever the bytes.

use axum::http::{HeaderMap, HeaderValue};
use inferd_core::DataType;

use crate::nested::{self, Sink};
use crate::{seed, v2, HttpConfig};

/// The seed's `/predict` body.
pub fn predict_body(data: &[u8]) -> bool {
    let config = HttpConfig::default();
    seed::parse(data, config.max_tensor_elements, config.max_json_depth).is_ok()
}

/// A V2 infer body. Bytes starting with `{` are a JSON-only body; otherwise the first four
/// bytes are the `Inference-Header-Content-Length` (little-endian) and the rest the body, so
/// the binary framing is fuzzed too.
pub fn infer_request(data: &[u8]) -> bool {
    let config = HttpConfig::default();
    let mut headers = HeaderMap::new();
    let body = match data {
        [b'{', ..] => data,
        [a, b, c, d, body @ ..] => {
            let length = u32::from_le_bytes([*a, *b, *c, *d]);
            headers.insert(v2::HEADER_LENGTH, HeaderValue::from(length));
            body
        }
        _ => data,
    };
    v2::decode_request(&headers, body, &config).is_ok()
}

/// A (nested) JSON array of one datatype: the first byte picks the datatype, the rest is JSON.
pub fn tensor_json(data: &[u8]) -> bool {
    const TYPES: [DataType; 12] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];
    let Some((&selector, json)) = data.split_first() else {
        return false;
    };
    let Ok(json) = std::str::from_utf8(json) else {
        return false;
    };
    let datatype = TYPES[usize::from(selector) % TYPES.len()];
    let Ok(sink) = Sink::for_datatype(datatype, 0) else {
        return false;
    };
    nested::parse(json, sink, "data", 1 << 16, 64).is_ok()
}
