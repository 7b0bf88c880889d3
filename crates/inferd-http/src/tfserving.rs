//! KServe V1 and TF Serving REST (being built).
use crate::AppState;
use axum::Router;
pub fn routes() -> Router<AppState> {
    Router::new()
}
