//! `x-request-id` on every response: the client's own when it sent a sane one, otherwise a new
//! one. The id is also put in the request's extensions, and in a tracing span around the
//! request so that every log line it causes carries it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header's name.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-supplied id we echo; longer or non-printable ones are replaced.
const MAX_LEN: usize = 128;

/// The request id, as found in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| is_sane(v.as_bytes()))
        .cloned()
        .unwrap_or_else(generate);
    request.extensions_mut().insert(RequestId(id.clone()));
    // Every log line of the request (the core's per-request line, errors) carries the id.
    let span = tracing::info_span!(
        "http",
        request_id = id.to_str().unwrap_or_default(),
        method = %request.method(),
        path = request.uri().path(),
    );
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

fn is_sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

/// A process-unique id: a per-process random-enough prefix (start time) and a counter. Cheap,
/// and unique without a UUID dependency.
fn generate() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{prefix:016x}-{n:08x}"))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_ids_are_echoed() {
        assert!(is_sane(b"abc-123"));
        assert!(!is_sane(b""));
        assert!(!is_sane(b"a b"));
        assert!(!is_sane(&[b'a'; 129]));
        assert_ne!(generate(), generate());
    }
}
