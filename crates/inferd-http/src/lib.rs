//! inferd's HTTP front end: the seed's `/predict`, health, the Open Inference Protocol (V2) REST
//! API with its binary tensor extension, KServe V1 and TF Serving REST, and the OpenAPI document.
//!
//! The binary crate builds an [`AppState`] and mounts [`app`]; everything protocol-specific stays
//! in this crate. Every route reads its body through [`limits::read_body`], so the body, nesting,
//! element and row limits of [`HttpConfig`] hold on every protocol alike.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, Registry};

pub mod error;
pub mod fuzzing;
mod health;
pub mod limits;
pub mod metrics;
pub mod nested;
mod openapi;
pub mod request_id;
mod seed;
mod tensors;
mod v1;
pub mod v2;

pub use error::ApiError;
pub use health::probe_routes;
pub use request_id::{RequestId, REQUEST_ID};

/// Limits on what a request may make the server read or allocate. All are checked before the
/// allocation they guard.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body, in bytes (413 above it, for Content-Length and chunked bodies).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted (arrays and objects together).
    pub max_json_depth: usize,
    /// Most elements in one tensor (or one `/predict` request).
    pub max_tensor_elements: usize,
    /// Most rows (first dimension) in one request.
    pub max_rows: usize,
    /// Deadline of an inference request that sets none itself (by the `x-inferd-timeout-ms`
    /// header or the V2 `timeout` parameter); `None`: no deadline. Past it: 504.
    pub default_timeout: Option<Duration>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_json_depth: 64,
            max_tensor_elements: 4 * 1024 * 1024,
            max_rows: 100_000,
            default_timeout: None,
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub executor: Executor,
    pub config: Arc<HttpConfig>,
}

impl AppState {
    pub fn new(registry: Registry, executor: Executor, config: HttpConfig) -> Self {
        Self {
            registry,
            executor,
            config: Arc::new(config),
        }
    }

    /// The model a request for `name` (at `version`, or as the traffic split picks) goes to.
    /// Where the model's split is sticky, the request's sticky header keeps a client on one
    /// version.
    pub(crate) fn resolve(
        &self,
        name: &str,
        version: Option<u64>,
        headers: &HeaderMap,
    ) -> Result<Arc<LoadedModel>, ApiError> {
        let sticky = match version {
            Some(_) => None,
            None => self.registry.sticky_header(name),
        };
        let key = sticky
            .as_deref()
            .and_then(|h| headers.get(h))
            .map(|v| v.as_bytes());
        self.registry
            .resolve_keyed(name, version, key)
            .map_err(ApiError)
    }

    /// The default model (the seed's `/predict`), chosen as [`AppState::resolve`] does.
    pub(crate) fn resolve_default(
        &self,
        headers: &HeaderMap,
    ) -> Result<Arc<LoadedModel>, ApiError> {
        let snapshot = self.registry.snapshot();
        let name = snapshot.default_model.as_deref().ok_or_else(|| {
            let message = if snapshot.models.len() > 1 {
                "several models are served and none is the default: name one \
                 (/v2/models/{name}/infer), or start inferd with --default-model"
            } else {
                "no model is being served"
            };
            ApiError(inferd_core::Error::not_found(message))
        })?;
        self.resolve(name, None, headers)
    }
}

/// The whole REST surface. Mount it as is; it sets `x-request-id` on every response.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/predict", post(seed::predict))
        .route("/v2/health/live", get(health::live))
        .route("/v2/health/ready", get(health::ready))
        .merge(v2::routes())
        .merge(v1::routes())
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs_page))
        .fallback(error::not_found)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state,
            health::close_while_not_ready,
        ))
        .layer(axum::middleware::from_fn(error::catch_panic))
        .layer(axum::middleware::from_fn(error::json_405))
        .layer(axum::middleware::from_fn(request_id::layer))
}
