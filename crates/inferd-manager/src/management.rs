//! The management API: the Open Inference Protocol repository extension (index, load,
//! unload) and run-time traffic weights. It listens on its own port, is off unless enabled,
//! and every call needs the bearer token; the inference port has none of these routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use inferd_core::Error;
use serde::{Deserialize, Serialize};

use crate::reload::Manager;

/// The token every call must present as `Authorization: Bearer <token>`. Its `Debug` hides it,
/// so it cannot reach a log line by accident.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// Refuses tokens too short to resist guessing.
    pub fn new(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.len() < 16 {
            return Err("the management token must be at least 16 characters".into());
        }
        Ok(Self(token.into()))
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut diff = (expected.len() != presented.len()) as u8;
        for (i, &b) in expected.iter().enumerate() {
            diff |= b ^ presented.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[derive(Clone)]
struct AppState {
    manager: Manager,
    token: Token,
}

/// The management router. Serve it on its own listener.
pub fn router(manager: Manager, token: Token) -> Router {
    let state = AppState { manager, token };
    Router::new()
        .route("/v2/repository/index", post(index))
        .route("/v2/repository/models/{model}/load", post(load))
        .route("/v2/repository/models/{model}/unload", post(unload))
        .route(
            "/v2/repository/models/{model}/traffic",
            get(get_traffic).put(set_traffic).post(set_traffic),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match presented {
        None => {
            let mut r = failure(StatusCode::UNAUTHORIZED, "a bearer token is required");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Some(p) if !state.token.matches(p.trim().as_bytes()) => {
            tracing::warn!("management call with a wrong token refused");
            failure(StatusCode::FORBIDDEN, "the bearer token is not valid")
        }
        Some(_) => next.run(request).await,
    }
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn error_response(e: Error) -> Response {
    let status =
        StatusCode::from_u16(e.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    failure(status, &e.message)
}

#[derive(Debug, Default, Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

async fn index(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    // The body is optional (`{}` or `{"ready": true}`).
    let request: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid index request: {e}"),
                )
            }
        }
    };
    let mut entries = state.manager.index();
    if request.ready {
        entries.retain(|e| e.state == "READY");
    }
    Json(entries).into_response()
}

// Load and unload wait (asynchronously) for the sync they run; the files are read on
// threads of their own under the load timeout, so no async worker ever waits on a file.
async fn load(State(state): State<AppState>, Path(model): Path<String>) -> Response {
    match state.manager.load_model(&model).await {
        Ok(_) => Json(serde_json::json!({})).into_response(),
        Err(e) => error_response(e),
    }
}

async fn unload(State(state): State<AppState>, Path(model): Path<String>) -> Response {
    match state.manager.unload_model(&model).await {
        Ok(_) => Json(serde_json::json!({})).into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Traffic {
    /// Version (as a string, JSON object keys being strings) → weight.
    weights: BTreeMap<String, u32>,
}

async fn get_traffic(State(state): State<AppState>, Path(model): Path<String>) -> Response {
    let snapshot = state.manager.registry().snapshot();
    let Some(entry) = snapshot.models.get(&model) else {
        return error_response(Error::not_found(format!("model '{model}' is not loaded")));
    };
    let weights = match &entry.split {
        Some(split) => split
            .versions()
            .map(|(v, w)| (v.to_string(), w as u32))
            .collect(),
        None => entry
            .versions
            .keys()
            .next_back()
            .map(|v| (v.to_string(), 1))
            .into_iter()
            .collect(),
    };
    Json(Traffic { weights }).into_response()
}

async fn set_traffic(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let traffic: Traffic = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("invalid traffic request: {e}"),
            )
        }
    };
    let mut weights = Vec::new();
    for (version, weight) in &traffic.weights {
        match version.parse::<u64>() {
            Ok(v) if v > 0 => weights.push((v, *weight)),
            _ => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    &format!("{version:?} is not a version number"),
                )
            }
        }
    }
    match state.manager.set_traffic(&model, weights) {
        Ok(()) => Json(traffic).into_response(),
        Err(e) => error_response(e),
    }
}
