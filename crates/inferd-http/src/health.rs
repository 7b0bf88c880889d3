//! Health for orchestrators: liveness (the process answers) and readiness (the registry says
//! every model is loaded and warmed, and the server is not draining).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::json_response;
use crate::AppState;

/// `GET /v2/health/live`: 200 whenever the process can answer at all.
pub async fn live() -> Response {
    json_response(br#"{"live":true}"#.to_vec())
}

/// `GET /v2/health/ready`: 200 when ready, 503 otherwise (also while draining, so load
/// balancers stop sending before the listener closes).
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.registry.is_ready() {
        json_response(br#"{"ready":true}"#.to_vec())
    } else {
        let mut response = json_response(br#"{"ready":false}"#.to_vec());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.into_response()
    }
}
