//! inferd's ONNX runtime for classic ML: the ONNX-ML operators scikit-learn, XGBoost and
//! LightGBM conversions emit (tree ensembles compiled into [`inferd_trees`]), plus the standard
//! operators those graphs use. [`OnnxModel::load`] decodes and validates everything up front:
//! an unsupported operator, attribute or opset is a load error naming the node, and a corrupt
//! or truncated file is a load error, never a panic.
//!
//! Outputs are inferd tensors; ZipMap's sequence of maps is returned as the `[N, classes]`
//! probability tensor it was built from (see `ops/encoders.rs`).
// One module needs `unsafe` (ops/packed.rs, calling its AVX2 kernel after checking the CPU).
#![deny(unsafe_code)]

mod attrs;
mod error;
mod graph;
mod ops;
mod proto;
mod tensor;

use inferd_core::{DataType, Model, ModelMetadata, NamedTensor, Result, Tensor, TensorSpec};

pub use error::OnnxError;

/// A loaded ONNX model, ready to serve.
pub struct OnnxModel {
    graph: graph::Graph,
    metadata: ModelMetadata,
    cost_per_row_ns: u64,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// Which outputs a front end should show as "the prediction" and "the probabilities":
/// converters put the label (integer or string) first and the probabilities second for
/// classifiers, and a single float output for regressors.
fn roles(outputs: &[graph::Port]) -> (usize, Option<usize>) {
    let is_label =
        |p: &graph::Port| matches!(p.datatype, DataType::I64 | DataType::I32 | DataType::Bytes);
    match outputs.iter().position(is_label) {
        Some(label) => {
            let probs = outputs.iter().enumerate().position(|(i, p)| {
                i != label && matches!(p.datatype, DataType::F32 | DataType::F64)
            });
            (label, probs)
        }
        None => (0, None),
    }
}

impl OnnxModel {
    /// Decodes and validates an ONNX model. Errors are [`inferd_core::ErrorKind::ModelLoad`].
    pub fn load(bytes: &[u8]) -> Result<OnnxModel> {
        Ok(Self::load_onnx(bytes)?)
    }

    /// [`OnnxModel::load`] with the runtime's own error type.
    pub fn load_onnx(bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
        let model = proto::decode_model(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
        let graph = graph::Graph::load(&model)?;
        let spec = |p: &graph::Port| TensorSpec::new(p.name.clone(), p.datatype, p.shape.clone());
        let (prediction_output, probabilities_output) = roles(&graph.outputs);
        let metadata = ModelMetadata {
            platform: "onnx".to_string(),
            inputs: graph.inputs.iter().map(spec).collect(),
            outputs: graph.outputs.iter().map(spec).collect(),
            prediction_output,
            probabilities_output,
        };
        let cost_per_row_ns = graph.cost_per_row_ns();
        Ok(OnnxModel {
            graph,
            metadata,
            cost_per_row_ns,
        })
    }

    /// Caps the threads one inference may use (default: the machine's parallelism). Threads
    /// are only started for batches large enough to repay them, never for one row.
    pub fn set_threads(&mut self, threads: usize) {
        self.graph.set_threads(threads.max(1));
    }

    /// Bytes held by the model's weights and compiled trees.
    pub fn memory_bytes(&self) -> usize {
        self.graph.memory_bytes()
    }

    /// Checks a request tensor against a declared input and converts it to the declared
    /// element type (numbers convert freely; strings only to strings).
    fn conform(port: &graph::Port, t: Tensor) -> Result<Tensor, OnnxError> {
        let bad = |m: String| OnnxError::Input(format!("input '{}': {m}", port.name));
        if port.shape.len() != t.shape().len() {
            // A single row given as a vector for a [N, C] input is common enough to accept.
            if port.shape.len() == 2 && t.shape().len() == 1 {
                let c = t.shape()[0];
                let (_, data) = t.into_parts();
                let t = Tensor::new(vec![1, c], data).map_err(|e| bad(e.message))?;
                return Self::conform(port, t);
            }
            return Err(bad(format!(
                "expected {} dimensions {:?}, got shape {:?}",
                port.shape.len(),
                port.shape,
                t.shape()
            )));
        }
        for (i, (&want, &got)) in port.shape.iter().zip(t.shape()).enumerate() {
            if want >= 0 && want as usize != got {
                return Err(bad(format!("dimension {i} must be {want}, got {got}")));
            }
        }
        if t.datatype() == port.datatype {
            return Ok(t);
        }
        use inferd_core::TensorData as D;
        let shape = t.shape().to_vec();
        let data = match (port.datatype, t.data()) {
            (_, D::Bytes(_)) | (DataType::Bytes, _) => {
                return Err(bad(format!(
                    "expected {}, got {}",
                    port.datatype.as_str(),
                    t.datatype().as_str()
                )))
            }
            (DataType::F32, _) => D::F32(t.to_f32().map_err(|e| bad(e.message))?.into_owned()),
            (DataType::F64, _) => D::F64(t.to_f64().map_err(|e| bad(e.message))?.into_owned()),
            (DataType::I64, D::F32(_) | D::F64(_)) | (DataType::I32, D::F32(_) | D::F64(_)) => {
                let v = t.to_f64().map_err(|e| bad(e.message))?;
                if v.iter().any(|x| x.fract() != 0.0) {
                    return Err(bad(format!(
                        "expected integers for {}",
                        port.datatype.as_str()
                    )));
                }
                if port.datatype == DataType::I64 {
                    D::I64(v.iter().map(|&x| x as i64).collect())
                } else {
                    D::I32(v.iter().map(|&x| x as i32).collect())
                }
            }
            (DataType::I64, D::I32(v)) => D::I64(v.iter().map(|&x| x as i64).collect()),
            (DataType::I64, D::Bool(v)) => D::I64(v.iter().map(|&x| x as i64).collect()),
            (DataType::I32, D::I64(v)) => D::I32(v.iter().map(|&x| x as i32).collect()),
            (DataType::Bool, _) => D::Bool(
                t.to_f64()
                    .map_err(|e| bad(e.message))?
                    .iter()
                    .map(|&x| x != 0.0)
                    .collect(),
            ),
            (want, _) => {
                return Err(bad(format!(
                    "cannot convert {} to {}",
                    t.datatype().as_str(),
                    want.as_str()
                )))
            }
        };
        Tensor::new(shape, data).map_err(|e| bad(e.message))
    }
}

impl Model for OnnxModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let ports = &self.graph.inputs;
        let mut given: Vec<Option<Tensor>> = vec![None; ports.len()];
        let single = ports.len() == 1 && inputs.len() == 1;
        for nt in inputs {
            // A single-input model takes its one tensor whatever it is called.
            let at = if single {
                Some(0)
            } else {
                ports.iter().position(|p| p.name == nt.name)
            };
            let Some(at) = at else {
                return Err(OnnxError::Input(format!(
                    "the model has no input named '{}'",
                    nt.name
                ))
                .into());
            };
            given[at] = Some(Self::conform(&ports[at], nt.tensor)?);
        }
        let mut tensors = Vec::with_capacity(ports.len());
        for (p, t) in ports.iter().zip(given) {
            match t {
                Some(t) => tensors.push(t),
                None => {
                    return Err(OnnxError::Input(format!("input '{}' is missing", p.name)).into())
                }
            }
        }
        let outputs = self.graph.run(tensors)?;
        Ok(self
            .graph
            .outputs
            .iter()
            .zip(outputs)
            .map(|(p, t)| NamedTensor::new(p.name.clone(), t))
            .collect())
    }

    fn cost_per_row_ns(&self) -> u64 {
        self.cost_per_row_ns
    }
}

/// Loads `data` as a model and, if it loads, runs it once on two rows of zeros shaped like
/// its inputs. The fuzz target (`fuzz/`) and the corpus replay test both call this; whatever
/// the bytes, it must return without panicking.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    use inferd_core::TensorData as D;
    let Ok(model) = OnnxModel::load(data) else {
        return;
    };
    let mut inputs = Vec::new();
    for spec in &model.metadata().inputs {
        let shape: Vec<usize> = spec
            .shape
            .iter()
            .map(|&d| if d < 0 { 2 } else { (d as usize).min(64) })
            .collect();
        let n: usize = shape.iter().product();
        if n > 1 << 16 {
            return;
        }
        let data = match spec.datatype {
            DataType::Bytes => D::Bytes(vec![Vec::new(); n]),
            DataType::I64 => D::I64(vec![0; n]),
            DataType::I32 => D::I32(vec![0; n]),
            DataType::Bool => D::Bool(vec![false; n]),
            DataType::F64 => D::F64(vec![0.0; n]),
            _ => D::F32(vec![0.0; n]),
        };
        let Ok(t) = Tensor::new(shape, data) else {
            return;
        };
        inputs.push(NamedTensor::new(spec.name.clone(), t));
    }
    let _ = model.infer(inputs);
}

#[cfg(test)]
mod tests;
