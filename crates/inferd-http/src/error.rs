//! The one mapping from [`inferd_core::Error`] to an HTTP response: status from
//! [`ErrorKind::table`], body `{"error": "...", "error_type": "..."}`, `Retry-After` when the
//! client should come back later.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use inferd_core::{Error, ErrorKind};

/// Seconds a shed client is told to wait before retrying.
const RETRY_AFTER_SECS: &str = "1";

/// An [`inferd_core::Error`] on its way to an HTTP client. (A newtype, because neither the trait
/// nor the error type belongs to this crate.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(Error::bad_request(message))
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    error: &'a str,
    error_type: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.0.kind;
        let (status, _, error_type) = kind.table();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&Body {
            error: &self.0.message,
            error_type,
        })
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if kind.is_retryable() {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        // Metrics and access logs further out read the kind from here, not from the text.
        response.extensions_mut().insert(kind);
        response
    }
}

/// Paths no route matches. Not a kind in the core table (no model is involved), so the body
/// names its own `error_type`.
pub async fn not_found() -> Response {
    routing_error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /docs",
        "not_found",
    )
}

/// Turns a panic in a handler (a bug, ours or a runtime's) into a 500 for that request alone,
/// instead of a reset connection; the server keeps serving either way.
pub async fn catch_panic(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => ApiError(Error::internal("internal error")).into_response(),
    }
}

/// Gives axum's own 405 answers (known path, wrong method) the JSON error body, keeping the
/// `Allow` header axum computed from the route.
pub async fn json_405(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let mut json = routing_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint; see /docs",
        "method_not_allowed",
    );
    if let Some(allow) = response.headers().get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    json
}

/// 405 with the `Allow` header, for paths that share a route with another method's path.
pub fn method_not_allowed_with(allow: &'static str) -> Response {
    let mut response = routing_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint; see /docs",
        "method_not_allowed",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn routing_error(status: StatusCode, error: &str, error_type: &str) -> Response {
    let body = serde_json::to_vec(&Body { error, error_type }).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// JSON `200 OK` from bytes already serialised.
pub fn json_response(body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serialises `value` as a JSON `200 OK`.
pub fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_response(body),
        Err(_) => ApiError(Error::internal("could not serialise the response")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_gets_its_table_status_and_retry_after_when_retryable() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Overloaded,
            ErrorKind::ModelNotFound,
        ] {
            let response = ApiError(Error::new(kind, "x")).into_response();
            assert_eq!(response.status().as_u16(), kind.http_status());
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                kind.is_retryable()
            );
            assert_eq!(response.extensions().get::<ErrorKind>(), Some(&kind));
        }
    }
}
