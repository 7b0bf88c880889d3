//! Request bodies: read from `--body` or built from the model's metadata, then encoded once
//! for the chosen protocol into a small pool that the workers cycle through.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::args::{Config, Protocol};
use crate::error::{config, BenchError};
use crate::grpc::{self, proto};
use crate::http::{self, HttpPayload};
use crate::target::{v2_model_path, Target};
use crate::tensor::{Fill, Tensor, TensorSpec};

/// Distinct random bodies generated, so that a server cannot answer from a one-entry cache.
const RANDOM_POOL: usize = 32;

/// The seed tutorial's request row, used when nothing else says what to send.
const SEED_ROW: [f64; 4] = [5.1, 3.5, 1.4, 0.2];

/// Encoded requests, ready to send.
#[derive(Debug, Clone)]
pub enum Payloads {
    Http(Vec<HttpPayload>),
    Grpc(Vec<proto::ModelInferRequest>),
}

/// The payloads and a description of where they came from, for the report.
pub async fn build(cfg: &Config, target: &Target) -> Result<(Payloads, String), BenchError> {
    let args = &cfg.args;
    let protocol = args.protocol;
    if protocol == Protocol::V2Grpc && args.model.is_none() {
        return Err(config("--protocol v2-grpc needs --model"));
    }
    if let Some(path) = &args.body {
        let raw = std::fs::read(path)
            .map_err(|e| config(format!("cannot read --body {}: {e}", path.display())))?;
        let source = format!("file {}", path.display());
        return match protocol {
            Protocol::Seed | Protocol::V1 | Protocol::V2Json => {
                Ok((Payloads::Http(vec![json_payload(raw.into())]), source))
            }
            Protocol::V2Binary | Protocol::V2Grpc => {
                let parsed: Value = serde_json::from_slice(&raw)
                    .map_err(|e| config(format!("--body {} is not JSON: {e}", path.display())))?;
                let tensors = Tensor::from_v2_request(&parsed)?;
                Ok((encode_all(cfg, std::slice::from_ref(&tensors))?, source))
            }
        };
    }

    let specs = if protocol == Protocol::Seed && args.model.is_none() {
        // The seed's /predict (and the Flask baseline) has no metadata: one row of --values'
        // width, or the tutorial's row.
        let width = args.values.as_ref().map_or(SEED_ROW.len(), Vec::len);
        vec![TensorSpec {
            name: "inputs".into(),
            datatype: "FP64".into(),
            shape: vec![-1, width as i64],
        }]
    } else {
        fetch_metadata(cfg, target).await?
    };
    let from_metadata = !(protocol == Protocol::Seed && args.model.is_none());
    let seed_default = !from_metadata && args.values.is_none();
    let (sets, source) = match (&args.values, seed_default) {
        (Some(values), _) => (
            vec![generate(&specs, args.batch_size, &mut Fill::Given(values))?],
            "given values".to_string(),
        ),
        (None, true) => (
            vec![generate(
                &specs,
                args.batch_size,
                &mut Fill::Given(&SEED_ROW),
            )?],
            "the seed tutorial's row".to_string(),
        ),
        (None, false) => {
            let mut rng = fastrand::Rng::with_seed(args.random_seed);
            let sets = (0..RANDOM_POOL)
                .map(|_| generate(&specs, args.batch_size, &mut Fill::Random(&mut rng)))
                .collect::<Result<Vec<_>, _>>()?;
            (
                sets,
                format!("random values, {RANDOM_POOL} distinct requests"),
            )
        }
    };
    let source = if from_metadata {
        format!("{source}, shaped by the model's metadata")
    } else {
        source
    };
    Ok((encode_all(cfg, &sets)?, source))
}

fn generate(
    specs: &[TensorSpec],
    batch: usize,
    fill: &mut Fill<'_>,
) -> Result<Vec<Tensor>, BenchError> {
    specs
        .iter()
        .map(|s| Tensor::generate(s, batch, fill))
        .collect()
}

fn encode_all(cfg: &Config, sets: &[Vec<Tensor>]) -> Result<Payloads, BenchError> {
    let args = &cfg.args;
    Ok(match args.protocol {
        Protocol::V2Grpc => Payloads::Grpc(
            sets.iter()
                .map(|t| {
                    grpc_request(
                        args.model.as_deref().unwrap_or_default(),
                        args.model_version.as_deref(),
                        t,
                    )
                })
                .collect(),
        ),
        protocol => Payloads::Http(
            sets.iter()
                .map(|t| http_payload(protocol, t))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn json_payload(body: Bytes) -> HttpPayload {
    HttpPayload {
        body,
        content_type: "application/json",
        inference_header_len: None,
    }
}

fn first(tensors: &[Tensor]) -> Result<&Tensor, BenchError> {
    tensors
        .first()
        .ok_or_else(|| config("the model has no inputs"))
}

fn http_payload(protocol: Protocol, tensors: &[Tensor]) -> Result<HttpPayload, BenchError> {
    let to_bytes = |v: Value| Bytes::from(v.to_string());
    Ok(match protocol {
        Protocol::Seed => {
            let t = first(tensors)?;
            let mut rows = t.rows();
            let inputs = if rows.len() == 1 {
                rows.remove(0)
            } else {
                Value::Array(rows)
            };
            json_payload(to_bytes(json!({ "inputs": inputs })))
        }
        Protocol::V1 => json_payload(to_bytes(json!({ "instances": first(tensors)?.rows() }))),
        Protocol::V2Json => {
            let inputs: Vec<Value> = tensors.iter().map(Tensor::to_v2_json).collect();
            json_payload(to_bytes(json!({ "inputs": inputs })))
        }
        Protocol::V2Binary => {
            let mut raw = Vec::new();
            let inputs: Vec<Value> = tensors
                .iter()
                .map(|t| {
                    let bytes = t.to_raw();
                    let described = json!({
                        "name": t.name, "shape": t.shape, "datatype": t.datatype.name(),
                        "parameters": { "binary_data_size": bytes.len() },
                    });
                    raw.extend_from_slice(&bytes);
                    described
                })
                .collect();
            // Binary clients (tritonclient with binary_data=True) also ask for binary outputs.
            let header = json!({ "inputs": inputs, "parameters": { "binary_data_output": true } })
                .to_string();
            let header_len = header.len();
            let mut body = header.into_bytes();
            body.extend_from_slice(&raw);
            HttpPayload {
                body: body.into(),
                content_type: "application/octet-stream",
                inference_header_len: Some(header_len),
            }
        }
        Protocol::V2Grpc => return Err(config("internal: gRPC requests are not HTTP payloads")),
    })
}

fn grpc_request(
    model: &str,
    version: Option<&str>,
    tensors: &[Tensor],
) -> proto::ModelInferRequest {
    proto::ModelInferRequest {
        model_name: model.to_string(),
        model_version: version.unwrap_or_default().to_string(),
        inputs: tensors
            .iter()
            .map(|t| proto::model_infer_request::InferInputTensor {
                name: t.name.clone(),
                datatype: t.datatype.name().to_string(),
                shape: t.shape.clone(),
                ..Default::default()
            })
            .collect(),
        raw_input_contents: tensors.iter().map(|t| Bytes::from(t.to_raw())).collect(),
        ..Default::default()
    }
}

/// The model's inputs, from V2 REST metadata (HTTP protocols) or `ModelMetadata` (gRPC).
async fn fetch_metadata(cfg: &Config, target: &Target) -> Result<Vec<TensorSpec>, BenchError> {
    let args = &cfg.args;
    let model = args.model.as_deref().ok_or_else(|| {
        config(
            "building the body needs --model (its V2 metadata says what to send), or give --body",
        )
    })?;
    let timeout = args.timeout.max(Duration::from_secs(1));
    let unavailable = BenchError::Unavailable;
    let specs = if args.protocol == Protocol::V2Grpc {
        let channel = grpc::connect(target, 1, timeout)
            .await
            .map_err(unavailable)?
            .remove(0);
        let request = proto::ModelMetadataRequest {
            name: model.to_string(),
            version: args.model_version.clone().unwrap_or_default(),
        };
        let answer =
            tokio::time::timeout(timeout, grpc::Client::new(channel).model_metadata(request))
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "ModelMetadata for `{model}`: no answer within {timeout:?}"
                    ))
                })?
                .map_err(|s| {
                    unavailable(format!(
                        "ModelMetadata for `{model}` failed: {:?}: {}",
                        s.code(),
                        s.message()
                    ))
                })?
                .into_inner();
        answer
            .inputs
            .into_iter()
            .map(|t| TensorSpec {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
            })
            .collect()
    } else {
        let path = v2_model_path(model, args.model_version.as_deref());
        let (status, body) = http::get(target, &path, timeout)
            .await
            .map_err(unavailable)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(unavailable(format!(
                "GET {}{path} answered {status}: {}",
                target.base,
                text.trim()
            )));
        }
        parse_rest_metadata(&body)
            .map_err(|e| unavailable(format!("GET {}{path}: {e}", target.base)))?
    };
    if specs.is_empty() {
        return Err(BenchError::Unavailable(format!(
            "model `{model}` lists no inputs in its metadata"
        )));
    }
    Ok(specs)
}

fn parse_rest_metadata(body: &[u8]) -> Result<Vec<TensorSpec>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("metadata is not JSON: {e}"))?;
    let inputs = value
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or("metadata has no `inputs` array")?;
    inputs
        .iter()
        .map(|input| {
            let name = input
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a metadata input has no `name`")?;
            let datatype = input
                .get("datatype")
                .and_then(Value::as_str)
                .ok_or("a metadata input has no `datatype`")?;
            let shape = input
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|s| s.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
                .ok_or("a metadata input has no integer `shape`")?;
            Ok(TensorSpec {
                name: name.to_string(),
                datatype: datatype.to_string(),
                shape,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris(batch: i64) -> Vec<Tensor> {
        vec![Tensor {
            name: "input".into(),
            datatype: crate::tensor::DataType::F32,
            shape: vec![batch, 4],
            values: SEED_ROW
                .iter()
                .copied()
                .cycle()
                .take(4 * batch as usize)
                .collect(),
        }]
    }

    fn body(p: &HttpPayload) -> Value {
        serde_json::from_slice(&p.body[..p.inference_header_len.unwrap_or(p.body.len())]).unwrap()
    }

    #[test]
    fn encodes_each_protocol() {
        let seed = http_payload(Protocol::Seed, &iris(1)).unwrap();
        assert_eq!(body(&seed), json!({"inputs": [5.1, 3.5, 1.4, 0.2]}));
        let seed2 = http_payload(Protocol::Seed, &iris(2)).unwrap();
        assert_eq!(body(&seed2)["inputs"].as_array().unwrap().len(), 2);
        let v1 = http_payload(Protocol::V1, &iris(1)).unwrap();
        assert_eq!(body(&v1), json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}));
        let v2 = http_payload(Protocol::V2Json, &iris(1)).unwrap();
        assert_eq!(body(&v2)["inputs"][0]["shape"], json!([1, 4]));
        let bin = http_payload(Protocol::V2Binary, &iris(1)).unwrap();
        let header_len = bin.inference_header_len.unwrap();
        assert_eq!(bin.body.len(), header_len + 16);
        assert_eq!(
            body(&bin)["inputs"][0]["parameters"]["binary_data_size"],
            16
        );
        assert_eq!(&bin.body[header_len..header_len + 4], &5.1f32.to_le_bytes());
        let g = grpc_request("iris", None, &iris(1));
        assert_eq!(g.raw_input_contents[0].len(), 16);
        assert_eq!(g.inputs[0].datatype, "FP32");
    }

    #[test]
    fn parses_metadata() {
        let meta = br#"{"name":"iris","inputs":[{"name":"input","datatype":"FP32","shape":[-1,4]}],"outputs":[]}"#;
        let specs = parse_rest_metadata(meta).unwrap();
        assert_eq!(specs[0].shape, vec![-1, 4]);
        assert!(parse_rest_metadata(b"{}").is_err());
        assert!(parse_rest_metadata(b"<html>").is_err());
    }
}
