//! Inference requests in the core's Prometheus metrics (`inferd_requests_total`, request
//! durations, in-flight requests), by model, version, protocol and status.
//!
//! The model label is the name of the model that answered, or empty when none was resolved:
//! names clients make up never become label values, so the series stay bounded.

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use inferd_core::metrics::RequestTimer;
use inferd_core::registry::LoadedModel;

use crate::error::ApiError;

/// The response header naming the model version that answered.
pub const MODEL_VERSION: &str = "x-inferd-model-version";

/// `protocol` label values of this front end (the gRPC front end uses its own).
pub const SEED: &str = "http_seed";
pub const V2: &str = "http_v2";
pub const V1: &str = "http_v1";

/// The model version a request resolved to, filled in by the handler once it knows.
pub type Served = Option<Arc<LoadedModel>>;

/// Starts timing one inference request (and counts it in flight). Dropped unfinished (the
/// client went away and the handler was cancelled), it is recorded as cancelled.
pub fn start(protocol: &'static str) -> RequestTimer {
    RequestTimer::start(protocol)
}

/// Records the request's outcome against the version that served it, and names that version
/// in the `x-inferd-model-version` response header (a traffic split's choice is visible on
/// every protocol, not only in V2's `model_version`).
pub fn finish(
    timer: RequestTimer,
    served: &Served,
    result: Result<Response, ApiError>,
) -> Response {
    timer.finish_model(served.as_deref(), result.as_ref().err().map(ApiError::kind));
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(loaded) = served {
        response
            .headers_mut()
            .insert(MODEL_VERSION, HeaderValue::from(loaded.version));
    }
    response
}
