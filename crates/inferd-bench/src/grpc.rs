//! The gRPC client side: the generated Open Inference Protocol stubs and channel set-up.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::stats::ErrorKind;
use crate::target::Target;

/// Generated messages and client of package `inference` (client side only).
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("inference");
}

pub use proto::grpc_inference_service_client::GrpcInferenceServiceClient as Client;

/// Opens `count` HTTP/2 connections to the target; the workers share them round-robin.
pub async fn connect(
    target: &Target,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Channel>, String> {
    let endpoint = Endpoint::from_shared(target.base.clone())
        .map_err(|e| format!("--url `{}` is not a gRPC address: {e}", target.base))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {} (gRPC): {}", target.base, describe(&e)))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// A tonic transport error with its causes, which carry the useful part ("connection refused").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps a call's status to the report's error kinds. The per-call timeout is the caller's
/// (`tokio::time::timeout`), so a `DeadlineExceeded` here is the server's own answer.
pub fn classify(status: &tonic::Status) -> ErrorKind {
    ErrorKind::Grpc(status.code())
}
