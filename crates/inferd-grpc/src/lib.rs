//! inferd's gRPC front end: the Open Inference Protocol service `inference.GRPCInferenceService`
//! over the core [`Registry`] and [`Executor`], plus gRPC health and reflection.
//!
//! The binary hands [`serve`] its bound listener and the server's one shutdown signal:
//!
//! ```no_run
//! # async fn run(registry: inferd_core::registry::Registry, executor: inferd_core::executor::Executor,
//! #              shutdown: impl std::future::Future<Output = ()> + Send) -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8081").await?;
//! let state = inferd_grpc::GrpcState::new(registry, executor);
//! inferd_grpc::serve(state, &inferd_grpc::GrpcConfig::default(), listener, shutdown).await;
//! # Ok(()) }
//! ```
//!
//! or builds the [`service`] and serves it itself.
#![forbid(unsafe_code)]

pub mod convert;
pub mod health;
pub mod limits;
pub mod proto;
pub mod service;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use inferd_core::executor::Executor;
use inferd_core::registry::Registry;
use inferd_listener::Body;
use tonic::service::Routes;
use tower::Layer;

pub use service::InferenceService;

/// The service's full name, as clients and health checks name it.
pub const SERVICE_NAME: &str = "inference.GRPCInferenceService";

/// Limits and settings of the gRPC front end. Every limit is explicit; the defaults match the
/// HTTP front end's, so a request refused on one protocol is refused on the other.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcConfig {
    /// Largest request or response message, in bytes. A larger request is refused with
    /// RESOURCE_EXHAUSTED before it is read; a larger response is not sent (RESOURCE_EXHAUSTED).
    pub max_message_bytes: usize,
    /// Most elements in one input tensor, checked from its shape before anything is allocated.
    pub max_tensor_elements: usize,
    /// Most rows (first dimension) in one input tensor.
    pub max_rows: usize,
    /// Deadline of a request that brings no `grpc-timeout` of its own; `None`: no deadline.
    pub default_timeout: Option<Duration>,
    /// Extensions listed in ServerMetadata; the binary passes the same list as the HTTP front
    /// end's `GET /v2`, so that both protocols describe one server.
    pub extensions: Vec<String>,
    /// Connection limits of the gRPC port (served HTTP/2 only, whatever `http1` says).
    pub connections: inferd_listener::ConnectionLimits,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 8 * 1024 * 1024,
            max_tensor_elements: 4 * 1024 * 1024,
            max_rows: 100_000,
            default_timeout: None,
            extensions: vec!["binary_tensor_data".to_owned()],
            connections: inferd_listener::ConnectionLimits::default(),
        }
    }
}

/// What the gRPC services share: the models and where inference runs. Cheap to clone.
#[derive(Clone)]
pub struct GrpcState {
    pub registry: Registry,
    pub executor: Executor,
}

impl GrpcState {
    pub fn new(registry: Registry, executor: Executor) -> Self {
        Self { registry, executor }
    }
}

/// Every gRPC service inferd serves, with oversized messages answered RESOURCE_EXHAUSTED.
pub type GrpcService = <limits::OversizedMessageLayer as Layer<TimedRoutes>>::Service;

/// The routes, with a request body that timed out failing as the error table says.
pub type TimedRoutes = tower::util::MapRequest<Routes, fn(Request<Body>) -> Request<TimedBody>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TimedBody = http_body_util::combinators::MapErr<Body, fn(BoxError) -> BoxError>;

/// A request body past `--body-read-timeout` fails the call with the table's status for
/// `RequestTimeout` (DEADLINE_EXCEEDED), which tonic finds when the error is a `Status`;
/// otherwise it would answer UNKNOWN.
fn timeouts_as_status(request: Request<Body>) -> Request<TimedBody> {
    request.map(|body| body.map_err(body_error as fn(BoxError) -> BoxError))
}

fn body_error(error: BoxError) -> BoxError {
    match inferd_listener::body::is_timeout(&*error) {
        Some(timeout) => Box::new(status::to_status(inferd_core::Error::new(
            inferd_core::ErrorKind::RequestTimeout,
            timeout.to_string(),
        ))),
        None => error,
    }
}

/// The inference service, gRPC health (`grpc.health.v1.Health`, SERVING while the registry is
/// ready) and server reflection (v1 and v1alpha, for grpcurl and friends).
pub fn service(state: GrpcState, config: &GrpcConfig) -> GrpcService {
    let health = health::service(state.registry.clone());
    let inference = InferenceService::new(state, Arc::new(config.clone())).into_server(config);
    let mut routes = Routes::new(inference).add_service(health);
    // Both versions: grpcurl and most tools speak v1, older ones v1alpha. Building only fails
    // on a malformed descriptor set, and ours are compiled in (the tests call both).
    if let Ok(v1) = reflection().build_v1() {
        routes = routes.add_service(v1);
    }
    if let Ok(v1alpha) = reflection().build_v1alpha() {
        routes = routes.add_service(v1alpha);
    }
    let routes = tower::util::MapRequest::new(
        routes.prepare(),
        timeouts_as_status as fn(Request<Body>) -> Request<TimedBody>,
    );
    limits::OversizedMessageLayer::new().layer(routes)
}

/// Serves [`service`] on `listener` through inferd's connection layer (HTTP/2 only, with the
/// connection limits of `config.connections`) until `shutdown` resolves, then lets in-flight
/// calls finish.
pub async fn serve(
    state: GrpcState,
    config: &GrpcConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let limits = inferd_listener::ConnectionLimits {
        http1: false,
        ..config.connections.clone()
    };
    inferd_listener::serve(listener, service(state, config), limits, "grpc", shutdown).await
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reflection_accepts_the_compiled_descriptors() {
        assert!(super::reflection().build_v1().is_ok());
        assert!(super::reflection().build_v1alpha().is_ok());
    }
}
