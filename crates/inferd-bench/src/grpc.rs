//! The gRPC client side: the generated Open Inference Protocol stubs and channel set-up.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::stats::ErrorKind;
use crate::target::Target;

/// Generated messages, client and server of package `inference`; the server serves the tests.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    dead_code
)]
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use clap::Parser;
    use tonic::{Request, Response, Status};

    use super::proto::grpc_inference_service_server::{
        GrpcInferenceService, GrpcInferenceServiceServer,
    };
    use super::proto::*;
    use crate::{bench, BenchArgs, Config};

    /// Answers like inferd for a model `iris` with one FP32 input of shape [-1, 4], checking
    /// that requests carry it as raw contents; every fifth call fails with UNAVAILABLE.
    #[derive(Default)]
    struct Fake {
        calls: Arc<AtomicU64>,
    }

    #[tonic::async_trait]
    impl GrpcInferenceService for Fake {
        async fn server_live(
            &self,
            _: Request<ServerLiveRequest>,
        ) -> Result<Response<ServerLiveResponse>, Status> {
            Ok(Response::new(ServerLiveResponse { live: true }))
        }

        async fn model_metadata(
            &self,
            request: Request<ModelMetadataRequest>,
        ) -> Result<Response<ModelMetadataResponse>, Status> {
            if request.get_ref().name != "iris" {
                return Err(Status::not_found("no such model"));
            }
            let input = model_metadata_response::TensorMetadata {
                name: "X".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 4],
            };
            Ok(Response::new(ModelMetadataResponse {
                name: "iris".into(),
                inputs: vec![input],
                ..Default::default()
            }))
        }

        async fn model_infer(
            &self,
            request: Request<ModelInferRequest>,
        ) -> Result<Response<ModelInferResponse>, Status> {
            let r = request.into_inner();
            let good = r.model_name == "iris"
                && r.inputs.len() == 1
                && r.inputs[0].name == "X"
                && r.inputs[0].datatype == "FP32"
                && r.inputs[0].shape == [2, 4]
                && r.raw_input_contents.len() == 1
                && r.raw_input_contents[0].len() == 32;
            if !good {
                return Err(Status::invalid_argument("unexpected request"));
            }
            if self.calls.fetch_add(1, Ordering::Relaxed) % 5 == 4 {
                return Err(Status::unavailable("busy"));
            }
            Ok(Response::new(ModelInferResponse {
                model_name: "iris".into(),
                ..Default::default()
            }))
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[tokio::test]
    async fn grpc_load_with_metadata_and_error_codes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(GrpcInferenceServiceServer::new(Fake::default()))
                .serve_with_incoming(incoming),
        );
        let url = format!("http://{addr}");
        let args = [
            "bench",
            "--url",
            &url,
            "--protocol",
            "v2-grpc",
            "--model",
            "iris",
            "--batch-size",
            "2",
            "-n",
            "100",
            "-c",
            "4",
            "--grpc-connections",
            "2",
            "--warmup",
            "0",
            "-q",
        ];
        let cfg = Config::from_args(Cli::parse_from(args).args).unwrap();
        let report = bench(&cfg).await.unwrap();
        assert_eq!((report.requests, report.ok, report.errors), (100, 80, 20));
        assert_eq!(report.errors_by_kind["grpc_unavailable"], 20);
        assert_eq!(report.config.grpc_connections, Some(2));

        let args = [
            "bench",
            "--url",
            &url,
            "--protocol",
            "v2-grpc",
            "--model",
            "nope",
            "-q",
        ];
        let cfg = Config::from_args(Cli::parse_from(args).args).unwrap();
        let err = bench(&cfg).await.unwrap_err();
        assert!(err.to_string().contains("NotFound"), "{err}");
    }
}
