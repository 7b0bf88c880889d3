//! Limits enforced before the work or allocation they guard: message size (tonic refuses a
//! larger request from its length prefix, before reading it; this module makes that answer
//! RESOURCE_EXHAUSTED), elements and rows per tensor (from the shape, before decoding), and the
//! response size (before sending). Also the request deadline from `grpc-timeout`.

use std::time::Duration;

use http::{HeaderValue, Response};
use inferd_core::Error;
use tower::util::MapResponseLayer;
use tower::Layer;

use crate::GrpcConfig;

/// Refuses a tensor whose shape asks for more elements or rows than the configured limits.
pub fn check_tensor(
    shape: &[usize],
    elements: usize,
    config: &GrpcConfig,
    what: &str,
) -> Result<(), Error> {
    if elements > config.max_tensor_elements {
        return Err(Error::too_large(format!(
            "{what} has {elements} elements, more than the limit of {}",
            config.max_tensor_elements
        )));
    }
    let rows = shape.first().copied().unwrap_or(1);
    if rows > config.max_rows {
        return Err(Error::too_large(format!(
            "{what} has {rows} rows, more than the limit of {}",
            config.max_rows
        )));
    }
    Ok(())
}

/// Refuses a response that would exceed the message limit. Checked here, before tonic's own
/// encoder would fail the call with a less helpful status after the headers were sent.
pub fn check_response(encoded_len: usize, config: &GrpcConfig) -> Result<(), Error> {
    if encoded_len > config.max_message_bytes {
        return Err(Error::too_large(format!(
            "the response would be {encoded_len} bytes, more than the limit of {} bytes; \
             request fewer outputs or fewer rows",
            config.max_message_bytes
        )));
    }
    Ok(())
}

/// The deadline a client set with the `grpc-timeout` header (gRPC over HTTP/2: an integer of
/// at most 8 digits and a unit, `H M S m u n`), or `None` when absent or malformed.
pub fn grpc_timeout(value: Option<&str>) -> Option<Duration> {
    let text = value?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

type Remap = fn(Response<tonic::body::Body>) -> Response<tonic::body::Body>;

/// Answers a request over the message limit with RESOURCE_EXHAUSTED, as the gRPC spec and
/// inferd's error table say, instead of tonic's OUT_OF_RANGE. Tonic refuses such a message
/// from its 5-byte length prefix, without reading or buffering it, and replies with a
/// trailers-only response, so rewriting the status header is enough.
#[derive(Debug, Clone)]
pub struct OversizedMessageLayer(MapResponseLayer<Remap>);

impl OversizedMessageLayer {
    pub fn new() -> Self {
        Self(MapResponseLayer::new(remap_oversized as Remap))
    }
}

impl Default for OversizedMessageLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for OversizedMessageLayer {
    type Service = <MapResponseLayer<Remap> as Layer<S>>::Service;

    fn layer(&self, inner: S) -> Self::Service {
        self.0.layer(inner)
    }
}

/// tonic's text for a request over `max_decoding_message_size`.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";
const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";

fn remap_oversized(mut response: Response<tonic::body::Body>) -> Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let oversized = headers
        .get("grpc-status")
        .is_some_and(|s| s == OUT_OF_RANGE)
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            // The message is percent-encoded on the wire (spaces as %20).
            .is_some_and(|m| m.replace("%20", " ").starts_with(TONIC_TOO_LARGE));
    if oversized {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
        headers.insert(
            "inferd-error-type",
            HeaderValue::from_static("payload_too_large"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        let parse = |s: &str| grpc_timeout(Some(s));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(parse("S"), None);
        assert_eq!(parse("12x"), None);
        assert_eq!(parse("123456789S"), None);
        assert_eq!(grpc_timeout(None), None);
    }

    #[test]
    fn tensor_limits_are_checked_from_the_shape() {
        let config = GrpcConfig {
            max_tensor_elements: 10,
            max_rows: 3,
            ..GrpcConfig::default()
        };
        assert!(check_tensor(&[2, 5], 10, &config, "input 'x'").is_ok());
        let err = check_tensor(&[11], 11, &config, "input 'x'").unwrap_err();
        assert_eq!(err.kind, inferd_core::ErrorKind::PayloadTooLarge);
        let err = check_tensor(&[4, 1], 4, &config, "input 'x'").unwrap_err();
        assert!(err.message.contains("4 rows"), "{err}");
    }

    #[test]
    fn only_tonics_oversized_status_is_rewritten() {
        let oversized = Response::builder()
            .header("grpc-status", "11")
            .header(
                "grpc-message",
                "Error, decoded message length too large: found 10 bytes, the limit is: 4 bytes",
            )
            .body(tonic::body::Body::empty())
            .unwrap();
        assert_eq!(remap_oversized(oversized).headers()["grpc-status"], "8");
        let other = Response::builder()
            .header("grpc-status", "11")
            .header("grpc-message", "something else")
            .body(tonic::body::Body::empty())
            .unwrap();
        assert_eq!(remap_oversized(other).headers()["grpc-status"], "11");
    }
}
