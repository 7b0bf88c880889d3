//! inferd's runtime for general ONNX neural networks (MLPs, CNNs), through tract, a pure-Rust
//! inference engine. [`TractModel::load`] reads the graph from memory, gives every input a
//! symbolic batch dimension, optimises it once and runs one warm inference, so that anything
//! tract cannot run is a load error and any batch size is served without re-planning.
//!
//! inferd-onnx remains the runtime for ONNX-ML graphs; the server's loader only falls back to
//! this one when inferd-onnx lacks a standard operator (see `crates/inferd/src/loader.rs`).
#![forbid(unsafe_code)]

mod convert;
mod error;

use std::sync::Arc;
use std::time::Instant;

use inferd_core::{DataType, Model, ModelMetadata, NamedTensor, Result, TensorSpec};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

pub use error::TractError;

use crate::error::chain;

/// A loaded, optimised ONNX graph, ready to serve any batch size.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    metadata: ModelMetadata,
    cost_per_row_ns: u64,
}

impl std::fmt::Debug for TractModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractModel")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl TractModel {
    /// Reads, optimises and warms up an ONNX model. Errors are
    /// [`inferd_core::ErrorKind::ModelLoad`].
    pub fn load(bytes: &[u8]) -> Result<TractModel> {
        Ok(Self::load_tract(bytes)?)
    }

    /// [`TractModel::load`] with the runtime's own error type.
    pub fn load_tract(bytes: &[u8]) -> Result<TractModel, TractError> {
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &*bytes)
            .map_err(tract_load)?;
        let batch = model.symbols.new_with_prefix("inferd_batch");

        let mut inputs = Vec::new();
        for (ix, outlet) in model
            .input_outlets()
            .map_err(tract_load)?
            .to_vec()
            .iter()
            .enumerate()
        {
            let name = model.node(outlet.node).name.clone();
            let fact = model.input_fact(ix).map_err(tract_load)?.clone();
            let (fact, spec) = batched_input(&name, fact, &batch)?;
            model.set_input_fact(ix, fact).map_err(tract_load)?;
            inputs.push(spec);
        }
        let output_names: Vec<String> = model
            .output_outlets()
            .map_err(tract_load)?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_owned)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();

        if inputs.is_empty() || output_names.is_empty() {
            return Err(TractError::Unsupported(
                "the graph needs at least one input and one output".into(),
            ));
        }
        let typed = model.into_optimized().map_err(tract_load)?;
        let mut outputs = Vec::with_capacity(output_names.len());
        for (ix, name) in output_names.into_iter().enumerate() {
            let fact = typed.output_fact(ix).map_err(tract_load)?;
            let datatype = convert::datatype(fact.datum_type).ok_or_else(|| {
                TractError::Unsupported(format!(
                    "output '{name}' has element type {:?}",
                    fact.datum_type
                ))
            })?;
            let shape = fact
                .shape
                .iter()
                .map(|d| d.to_i64().unwrap_or(-1))
                .collect();
            outputs.push(TensorSpec::new(name, datatype, shape));
        }
        let plan = typed.into_runnable().map_err(tract_load)?;

        let (prediction_output, probabilities_output) = roles(&outputs);
        let metadata = ModelMetadata {
            platform: "onnx".to_string(),
            inputs,
            outputs,
            prediction_output,
            probabilities_output,
        };
        let mut model = TractModel {
            plan,
            metadata,
            cost_per_row_ns: 0,
        };
        model.cost_per_row_ns = model.time_one_row()?;
        Ok(model)
    }

    /// Runs one zero-filled row twice (the first pays lazy set-up) and times the second, so
    /// the executor knows whether calls are cheap enough to run inline. Any operator tract
    /// can plan but not execute fails here, at load time.
    fn time_one_row(&self) -> Result<u64, TractError> {
        let row = || -> Result<TVec<TValue>, TractError> {
            self.metadata
                .inputs
                .iter()
                .map(|spec| {
                    let shape: Vec<usize> = spec.shape.iter().map(|&d| d.max(1) as usize).collect();
                    let dt = match spec.datatype {
                        DataType::F32 => f32::datum_type(),
                        DataType::F64 => f64::datum_type(),
                        DataType::I64 => i64::datum_type(),
                        DataType::I32 => i32::datum_type(),
                        _ => bool::datum_type(),
                    };
                    Tensor::zero_dt(dt, &shape)
                        .map(|t| t.into_tvalue())
                        .map_err(tract_load)
                })
                .collect()
        };
        let warm_up = |e: TractError| match e {
            TractError::Run(m) => TractError::Load(format!("a test inference failed: {m}")),
            other => other,
        };
        self.run(row()?).map_err(warm_up)?;
        let start = Instant::now();
        self.run(row()?).map_err(warm_up)?;
        Ok((start.elapsed().as_nanos() as u64).max(1))
    }

    fn run(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>, TractError> {
        self.plan
            .run(inputs)
            .map_err(|e| TractError::Run(chain(&e)))
    }
}

fn tract_load(e: tract_onnx::prelude::TractError) -> TractError {
    TractError::Load(chain(&e))
}

/// The input's declared fact with dimension 0 replaced by the batch symbol, and the spec
/// inferd shows for it. Every other dimension must be fixed: a plan is made once, at load.
fn batched_input(
    name: &str,
    fact: InferenceFact,
    batch: &Symbol,
) -> Result<(InferenceFact, TensorSpec), TractError> {
    let unsupported = |m: String| TractError::Unsupported(format!("input '{name}' {m}"));
    let dt = fact
        .datum_type
        .concretize()
        .ok_or_else(|| unsupported("declares no element type".into()))?;
    let datatype =
        convert::datatype(dt).ok_or_else(|| unsupported(format!("has element type {dt:?}")))?;
    if fact.shape.is_open() {
        return Err(unsupported("declares no shape".into()));
    }
    let mut dims: TVec<TDim> = tvec![];
    let mut shape = Vec::new();
    for (i, d) in fact.shape.dims().enumerate() {
        if i == 0 {
            dims.push(batch.clone().into());
            shape.push(-1);
            continue;
        }
        match d.concretize().and_then(|d| d.to_i64().ok()) {
            Some(n) => {
                dims.push(n.into());
                shape.push(n);
            }
            None => return Err(unsupported(format!("has dimension {i} not fixed"))),
        }
    }
    let fact = InferenceFact::dt_shape(dt, dims);
    Ok((fact, TensorSpec::new(name, datatype, shape)))
}

/// Which outputs a front end shows as "the prediction" and "the probabilities": a
/// classifier-like graph's integer label output where it has one (else output 0), and a
/// float output named like probabilities.
fn roles(outputs: &[TensorSpec]) -> (usize, Option<usize>) {
    let prediction = outputs
        .iter()
        .position(|o| o.datatype == DataType::I64)
        .unwrap_or(0);
    let probabilities = outputs.iter().position(|o| {
        let name = o.name.to_ascii_lowercase();
        matches!(o.datatype, DataType::F32 | DataType::F64)
            && (name.contains("prob") || name.contains("softmax"))
    });
    (prediction, probabilities)
}

impl Model for TractModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let specs = &self.metadata.inputs;
        let mut given: Vec<Option<Tensor>> = vec![None; specs.len()];
        let single = specs.len() == 1 && inputs.len() == 1;
        for nt in inputs {
            // A single-input model takes its one tensor whatever it is called.
            let at = if single {
                Some(0)
            } else {
                specs.iter().position(|s| s.name == nt.name)
            };
            let Some(at) = at else {
                return Err(TractError::Input(format!(
                    "the model has no input named '{}'",
                    nt.name
                ))
                .into());
            };
            given[at] = Some(convert::to_tract(&specs[at], nt.tensor)?);
        }
        let mut values = TVec::with_capacity(specs.len());
        let mut rows = None;
        for (spec, t) in specs.iter().zip(given) {
            let t =
                t.ok_or_else(|| TractError::Input(format!("input '{}' is missing", spec.name)))?;
            // One batch symbol for every input: they must agree on it.
            let n = t.shape().first().copied();
            if rows.is_some() && n != rows {
                return Err(TractError::Input(format!(
                    "input '{}' has {} rows, but an earlier input has {}",
                    spec.name,
                    n.unwrap_or(1),
                    rows.unwrap_or(1)
                ))
                .into());
            }
            rows = n;
            values.push(t.into_tvalue());
        }
        let outputs = self.run(values)?;
        self.metadata
            .outputs
            .iter()
            .zip(outputs.iter())
            .map(|(spec, t)| {
                Ok(NamedTensor::new(
                    spec.name.clone(),
                    convert::from_tract(&spec.name, t)?,
                ))
            })
            .collect()
    }

    fn cost_per_row_ns(&self) -> u64 {
        self.cost_per_row_ns
    }
}
