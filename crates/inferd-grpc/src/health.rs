//! gRPC health (`grpc.health.v1.Health`, tonic-health's proto) answered from the registry's
//! readiness at every call, so it turns NOT_SERVING the moment draining starts, with no
//! reporter task to keep in step.

use std::pin::Pin;
use std::time::Duration;

use inferd_core::registry::Registry;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::SERVICE_NAME;

/// How often a `Watch` stream looks at readiness; it sends only changes.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// The health service for `registry`.
pub fn service(registry: Registry) -> HealthServer<RegistryHealth> {
    HealthServer::new(RegistryHealth { registry })
}

/// Health answered from [`Registry::is_ready`], for the server as a whole (service `""`) and
/// for `inference.GRPCInferenceService`.
#[derive(Clone)]
pub struct RegistryHealth {
    registry: Registry,
}

impl RegistryHealth {
    /// `None` for a service this server does not have.
    fn status(&self, service: &str) -> Option<ServingStatus> {
        if !service.is_empty() && service != SERVICE_NAME {
            return None;
        }
        Some(if self.registry.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        })
    }
}

fn unknown_service() -> Status {
    Status::not_found("unknown service; ask for \"\" or inference.GRPCInferenceService")
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Health for RegistryHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let status = self
            .status(&request.get_ref().service)
            .ok_or_else(unknown_service)?;
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let first = self.status(&service).ok_or_else(unknown_service)?;
        let this = self.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            loop {
                tick.tick().await;
                let now = this.status(&service).unwrap_or(first);
                if last != Some(now) {
                    last = Some(now);
                    // The client hung up: stop watching.
                    if sender
                        .send(Ok(HealthCheckResponse { status: now as i32 }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                } else if sender.is_closed() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}
