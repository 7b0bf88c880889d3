//! `inference.GRPCInferenceService` over the registry and the executor: health, metadata,
//! inference, and a read-only repository index.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use inferd_core::metrics::RequestTimer;
use inferd_core::registry::{InferOptions, LoadedModel};
use inferd_core::{Error, ErrorKind, NamedTensor, TensorSpec};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::limits;
use crate::proto::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use crate::proto::model_metadata_response::TensorMetadata;
use crate::proto::repository_index_response::ModelIndex;
use crate::proto::*;
use crate::status::{printable, to_status};
use crate::{GrpcConfig, GrpcState};

/// The Open Inference Protocol service.
#[derive(Clone)]
pub struct InferenceService {
    state: GrpcState,
    config: Arc<GrpcConfig>,
}

impl InferenceService {
    pub fn new(state: GrpcState, config: Arc<GrpcConfig>) -> Self {
        Self { state, config }
    }

    /// The tonic server for this service, with the configured message limits.
    pub fn into_server(self, config: &GrpcConfig) -> GrpcInferenceServiceServer<Self> {
        GrpcInferenceServiceServer::new(self)
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes)
    }

    /// The model version a request names: empty → the traffic split's pick (sticky on the
    /// model's sticky header when it has one) or the newest; digits → that version; anything
    /// else → a version label (`stable`).
    fn resolve(
        &self,
        name: &str,
        version: &str,
        metadata: &MetadataMap,
    ) -> Result<Arc<LoadedModel>, Error> {
        let registry = &self.state.registry;
        if version.is_empty() {
            let key = registry
                .sticky_header(name)
                .and_then(|header| metadata.get(header.as_str()).map(|v| v.as_bytes().to_vec()));
            return registry.resolve_keyed(name, None, key.as_deref());
        }
        match version.parse::<u64>() {
            Ok(v) => registry.resolve(name, Some(v)),
            Err(_) => registry.resolve_label(name, version),
        }
    }

    /// Runs one inference on the resolved `loaded`; `started` is when the request arrived,
    /// which its deadline counts from.
    async fn infer(
        &self,
        metadata: &MetadataMap,
        loaded: &LoadedModel,
        request: ModelInferRequest,
        started: Instant,
    ) -> Result<ModelInferResponse, Error> {
        let ModelInferRequest {
            id,
            inputs,
            outputs,
            raw_input_contents,
            parameters,
            ..
        } = request;
        let timeout = request_timeout(&parameters, metadata, &self.config)?;
        let raw = !raw_input_contents.is_empty();
        let meta = loaded.model.metadata();
        let tensors = decode_inputs(inputs, &raw_input_contents, &meta.inputs, &self.config)?;
        drop(raw_input_contents);
        let requested = requested_outputs(loaded, &outputs)?;

        // Past the deadline the core answers DEADLINE_EXCEEDED, whether the work is queued or
        // running, and skips queued work nobody waits for any more.
        let options = InferOptions {
            deadline: timeout.and_then(|t| started.checked_add(t)),
        };
        let results = loaded
            .infer_with(&self.state.executor, tensors, options)
            .await?;

        let mut response = ModelInferResponse {
            model_name: loaded.name.clone(),
            model_version: loaded.version.to_string(),
            id,
            ..Default::default()
        };
        let specs = &meta.outputs;
        let mut results: Vec<Option<NamedTensor>> = results.into_iter().map(Some).collect();
        // Half floats travel only raw, and a response is either all raw or all typed.
        let raw = raw
            || requested.iter().any(|&i| {
                matches!(
                    specs[i].datatype,
                    inferd_core::DataType::F16 | inferd_core::DataType::BF16
                )
            });
        for &index in &requested {
            let spec = &specs[index];
            let position = results
                .iter()
                .position(|r| r.as_ref().is_some_and(|t| t.name == spec.name))
                .unwrap_or(index);
            let tensor = results
                .get_mut(position)
                .and_then(Option::take)
                .ok_or_else(|| Error::internal("the model did not give a declared output"))?
                .tensor;
            let datatype = convert::output_datatype(Some(spec), tensor.data(), raw);
            let (output, bytes) = convert::encode_output(&spec.name, datatype, tensor, raw)?;
            response.outputs.push(output);
            response.raw_output_contents.extend(bytes);
        }
        limits::check_response(response.encoded_len(), &self.config)?;
        Ok(response)
    }
}

/// The `protocol` label of this front end's requests in inferd's metrics.
pub const PROTOCOL: &str = "grpc_v2";

/// Metadata by which a client sets its own deadline in milliseconds, as on HTTP.
pub const TIMEOUT_HEADER: &str = "x-inferd-timeout-ms";

/// The request's time budget: the shortest of the V2 `timeout` parameter (microseconds, as
/// Triton; tritonclient's `infer(timeout=...)`), the `x-inferd-timeout-ms` metadata and the
/// call's own `grpc-timeout`; without any, the configured default.
fn request_timeout(
    parameters: &std::collections::HashMap<String, InferParameter>,
    metadata: &MetadataMap,
    config: &GrpcConfig,
) -> Result<Option<std::time::Duration>, Error> {
    use crate::proto::infer_parameter::ParameterChoice;
    use std::time::Duration;
    let parameter = match parameters
        .get("timeout")
        .and_then(|p| p.parameter_choice.as_ref())
    {
        None => None,
        Some(ParameterChoice::Int64Param(us)) if *us > 0 => Some(Duration::from_micros(*us as u64)),
        Some(ParameterChoice::Uint64Param(us)) if *us > 0 => Some(Duration::from_micros(*us)),
        Some(_) => {
            return Err(Error::bad_request(
                "the timeout parameter must be a positive integer (microseconds)",
            ))
        }
    };
    let header = match metadata.get(TIMEOUT_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    Error::bad_request(format!("{TIMEOUT_HEADER} must be a positive integer"))
                })?,
        ),
    };
    let transport =
        limits::grpc_timeout(metadata.get("grpc-timeout").and_then(|v| v.to_str().ok()))
            .map(server_budget);
    Ok([parameter, header, transport]
        .into_iter()
        .flatten()
        .min()
        .or(config.default_timeout))
}

/// The part of a client's `grpc-timeout` this server spends before answering
/// DEADLINE_EXCEEDED itself. tonic cancels the call at the full timeout (answering CANCELLED),
/// so inferd answers first, by a margin a busy scheduler cannot eat: 5% of the timeout, at
/// least 25 ms, at most half of it.
fn server_budget(timeout: std::time::Duration) -> std::time::Duration {
    let margin = (timeout / 20)
        .max(std::time::Duration::from_millis(25))
        .min(timeout / 2);
    timeout - margin
}

fn decode_inputs(
    inputs: Vec<model_infer_request::InferInputTensor>,
    raw: &[Bytes],
    specs: &[TensorSpec],
    config: &GrpcConfig,
) -> Result<Vec<NamedTensor>, Error> {
    if !raw.is_empty() && raw.len() != inputs.len() {
        return Err(Error::bad_request(format!(
            "raw_input_contents has {} entries but the request has {} inputs; give one per input, in order",
            raw.len(),
            inputs.len()
        )));
    }
    let mut tensors = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let Some(spec) = specs.iter().find(|s| s.name == input.name) else {
            return Err(Error::bad_request(format!(
                "the model has no input '{}'; its inputs are: {}",
                printable(&input.name),
                names(specs)
            )));
        };
        if tensors.iter().any(|t: &NamedTensor| t.name == spec.name) {
            return Err(Error::bad_request(format!(
                "input '{}' is given twice",
                spec.name
            )));
        }
        let tensor = convert::decode_input(input, raw.get(i), spec, config)?;
        tensors.push(NamedTensor::new(spec.name.clone(), tensor));
    }
    if let Some(missing) = specs
        .iter()
        .find(|s| !tensors.iter().any(|t| t.name == s.name))
    {
        return Err(Error::bad_request(format!(
            "input '{}' is missing; the model's inputs are: {}",
            missing.name,
            names(specs)
        )));
    }
    Ok(tensors)
}

/// Indexes into the model's outputs of what to answer, in the order asked (all when none).
fn requested_outputs(
    loaded: &LoadedModel,
    outputs: &[model_infer_request::InferRequestedOutputTensor],
) -> Result<Vec<usize>, Error> {
    let specs = &loaded.model.metadata().outputs;
    if outputs.is_empty() {
        return Ok((0..specs.len()).collect());
    }
    let mut requested = Vec::with_capacity(outputs.len());
    for output in outputs {
        let index = specs
            .iter()
            .position(|s| s.name == output.name)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "model '{}' has no output '{}'; its outputs are: {}",
                    loaded.name,
                    printable(&output.name),
                    names(specs)
                ))
            })?;
        if requested.contains(&index) {
            return Err(Error::bad_request(format!(
                "output '{}' is requested twice",
                specs[index].name
            )));
        }
        requested.push(index);
    }
    Ok(requested)
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn tensor_metadata(spec: &TensorSpec) -> TensorMetadata {
    TensorMetadata {
        name: spec.name.clone(),
        datatype: spec.datatype.as_str().to_owned(),
        shape: spec.shape.clone(),
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Answer<ServerLiveResponse> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Answer<ServerReadyResponse> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.registry.is_ready(),
        }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Answer<ModelReadyResponse> {
        let r = request.get_ref();
        // As Triton: an unknown model or version is simply not ready, not an error.
        let ready = match self.resolve(&r.name, &r.version, request.metadata()) {
            Ok(_) => true,
            Err(e) if e.kind == ErrorKind::ModelNotFound => false,
            Err(e) => return Err(to_status(e)),
        };
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Answer<ServerMetadataResponse> {
        Ok(Response::new(ServerMetadataResponse {
            name: "inferd".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: self.config.extensions.clone(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Answer<ModelMetadataResponse> {
        let r = request.get_ref();
        let loaded = self
            .resolve(&r.name, &r.version, request.metadata())
            .map_err(to_status)?;
        let versions = match self.state.registry.snapshot().models.get(&loaded.name) {
            Some(m) => m.versions.keys().map(u64::to_string).collect(),
            None => vec![loaded.version.to_string()],
        };
        let meta = loaded.model.metadata();
        Ok(Response::new(ModelMetadataResponse {
            name: loaded.name.clone(),
            versions,
            platform: meta.platform.clone(),
            inputs: meta.inputs.iter().map(tensor_metadata).collect(),
            outputs: meta.outputs.iter().map(tensor_metadata).collect(),
            properties: Default::default(),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(model = %printable(&request.get_ref().model_name)))]
    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Answer<ModelInferResponse> {
        let timer = RequestTimer::start(PROTOCOL);
        let (metadata, _, request) = request.into_parts();
        let loaded = self.resolve(&request.model_name, &request.model_version, &metadata);
        let result = match &loaded {
            // A panic (a bug, ours or a runtime's) fails this call alone, not the connection.
            Ok(loaded) => AssertUnwindSafe(self.infer(&metadata, loaded, request, timer.started()))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(Error::internal("internal error"))),
            Err(e) => Err(e.clone()),
        };
        timer.finish_model(
            loaded.as_deref().ok(),
            result.as_ref().err().map(|e| e.kind),
        );
        match result {
            Ok(response) => Ok(Response::new(response)),
            Err(e) => {
                tracing::debug!(error_type = e.kind.error_type(), error = %e, "gRPC inference refused");
                Err(to_status(e))
            }
        }
    }

    async fn repository_index(
        &self,
        _: Request<RepositoryIndexRequest>,
    ) -> Answer<RepositoryIndexResponse> {
        // Read-only: every loaded version, which is by construction ready (so `ready: true`
        // changes nothing). Versions that failed to load are not listed.
        let snapshot = self.state.registry.snapshot();
        let models = snapshot
            .models
            .iter()
            .flat_map(|(name, versions)| {
                versions.versions.keys().map(move |v| ModelIndex {
                    name: name.clone(),
                    version: v.to_string(),
                    state: "READY".to_owned(),
                    reason: String::new(),
                })
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        _: Request<RepositoryModelLoadRequest>,
    ) -> Answer<RepositoryModelLoadResponse> {
        Err(Status::unimplemented(
            "loading models over gRPC is not supported yet",
        ))
    }

    async fn repository_model_unload(
        &self,
        _: Request<RepositoryModelUnloadRequest>,
    ) -> Answer<RepositoryModelUnloadResponse> {
        Err(Status::unimplemented(
            "unloading models over gRPC is not supported yet",
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_server_answers_before_the_clients_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(super::server_budget(ms(1000)), ms(950));
        assert_eq!(super::server_budget(ms(200)), ms(175));
        assert_eq!(super::server_budget(ms(20)), ms(10));
        assert_eq!(super::server_budget(Duration::ZERO), Duration::ZERO);
    }
}
