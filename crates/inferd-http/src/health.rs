//! Health for orchestrators: liveness (the process answers) and readiness (the registry says
//! every model is loaded and warmed, and the server is not draining).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use axum::routing::get;
use axum::Router;
use inferd_core::registry::Registry;

use crate::error::json_response;
use crate::AppState;

/// `GET /v2/health/live`: 200 whenever the process can answer at all.
pub async fn live() -> Response {
    json_response(br#"{"live":true}"#.to_vec())
}

/// `GET /v2/health/ready`: 200 when ready, 503 otherwise (also while draining, so load
/// balancers stop sending before the listener closes).
pub async fn ready(State(state): State<AppState>) -> Response {
    ready_answer(&state.registry)
}

/// The probes alone, for the metrics port: it runs on a thread of its own, so that probes
/// answer at once however busy the inference port is.
pub fn probe_routes(registry: Registry) -> Router {
    Router::new().route("/v2/health/live", get(live)).route(
        "/v2/health/ready",
        get(move || std::future::ready(ready_answer(&registry))),
    )
}

fn ready_answer(registry: &Registry) -> Response {
    if registry.is_ready() {
        json_response(br#"{"ready":true}"#.to_vec())
    } else {
        let mut response = json_response(br#"{"ready":false}"#.to_vec());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.into_response()
    }
}

/// While the server is not ready (draining after SIGTERM, or still loading), HTTP/1 answers
/// carry `Connection: close`. A load balancer that keeps upstream connections alive (nginx
/// `keepalive`) would otherwise go on reusing this pod's connection after it left the
/// endpoints, until the listener closes under it and a request in the gap gets a 502; closing
/// each connection after its answer sends the next request to a new connection, and so to a
/// ready pod. (HTTP/2 has no such header; its connections end with GOAWAY when draining.)
pub async fn close_while_not_ready(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && !state.registry.is_ready() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
