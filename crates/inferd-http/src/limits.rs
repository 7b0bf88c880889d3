//! Request limits enforced before the work or allocation they guard: body size (from
//! Content-Length and again while streaming), JSON nesting depth, and element and row counts.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use inferd_core::{Error, ErrorKind};

use crate::error::ApiError;
use crate::HttpConfig;

/// Reads a whole request body, refusing with 413 as soon as it is known to exceed
/// `max_body_bytes`: at once from `Content-Length`, or mid-stream for chunked bodies.
pub async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
            // Decompressing would let a small body expand past every limit; refuse it plainly.
            return Err(ApiError(Error::new(
                ErrorKind::UnsupportedMediaType,
                "compressed request bodies (Content-Encoding) are not supported",
            )));
        }
    }
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        let length = length
            .to_str()
            .ok()
            .and_then(|l| l.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("Content-Length is not a number"))?;
        if length > max as u64 {
            return Err(too_large(max));
        }
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(max)),
        Err(e) => match inferd_listener::body::is_timeout(&*e) {
            Some(timeout) => Err(ApiError(Error::new(
                ErrorKind::RequestTimeout,
                timeout.to_string(),
            ))),
            None => Err(ApiError::bad_request("the request body could not be read")),
        },
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError(Error::too_large(format!(
        "the request body is larger than the limit of {max} bytes"
    )))
}

/// Refuses JSON nested deeper than `max` before any parser recurses into it. A linear scan of
/// the bytes, aware of strings, so `"[[["` inside a string does not count.
pub fn check_json_depth(json: &[u8], max: usize) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(ApiError::bad_request(format!(
                        "the JSON is nested deeper than the limit of {max} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses JSON whose top level is not an object (serde would otherwise accept a struct written
/// as an array of its fields).
pub fn require_object(json: &[u8], example: &str) -> Result<(), ApiError> {
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "the body must be a JSON object, like {example}"
        ))),
    }
}

/// Refuses a tensor of `elements` elements above the configured cap, before allocating it.
pub fn check_elements(what: &str, elements: usize, config: &HttpConfig) -> Result<(), ApiError> {
    if elements > config.max_tensor_elements {
        return Err(ApiError(Error::too_large(format!(
            "{what} has {elements} elements, over the limit of {}",
            config.max_tensor_elements
        ))));
    }
    Ok(())
}

/// Refuses a request of more than `max_rows` rows.
pub fn check_rows(rows: usize, config: &HttpConfig) -> Result<(), ApiError> {
    if rows > config.max_rows {
        return Err(ApiError(Error::too_large(format!(
            "the request has {rows} rows, over the limit of {}",
            config.max_rows
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(check_json_depth(br#"{"a": [[1]]}"#, 3).is_ok());
        assert!(check_json_depth(br#"{"a": [[[1]]]}"#, 3).is_err());
        assert!(check_json_depth(br#"{"a": "[[[[[[\"[[["}"#, 1).is_ok());
        let deep = "[".repeat(10_000);
        assert!(check_json_depth(deep.as_bytes(), 64).is_err());
    }

    #[tokio::test]
    async fn content_length_over_the_limit_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "100".parse().unwrap());
        let err = read_body(&headers, Body::from("x"), 10).await.unwrap_err();
        assert_eq!(err.kind(), inferd_core::ErrorKind::PayloadTooLarge);
        let err = read_body(&HeaderMap::new(), Body::from("x".repeat(11)), 10)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), inferd_core::ErrorKind::PayloadTooLarge);
        assert_eq!(
            read_body(&HeaderMap::new(), Body::from("xy"), 10)
                .await
                .unwrap(),
            "xy"
        );
    }
}
