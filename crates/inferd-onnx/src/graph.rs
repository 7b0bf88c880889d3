//! Loading a graph (decode, validate every node, order them) and running it over a table of
//! values. All checks that can be made without a request's data happen here, at load time.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::error::OnnxError;
use crate::ops::{self, Op};
use crate::proto::{type_proto, GraphProto, ModelProto, ValueInfoProto};
use crate::tensor::{datatype_of, from_proto};
use inferd_core::{DataType, Tensor};

/// Oldest and newest opsets whose operators we implement with the semantics of our ops.
const DEFAULT_OPSETS: std::ops::RangeInclusive<i64> = 1..=23;
const ML_OPSETS: std::ops::RangeInclusive<i64> = 1..=5;
/// IR versions we read (IR 3 is ONNX 1.1; onnx 1.23 writes 14). Later IR versions add
/// element types and constructs that the per-node checks refuse anyway, but an unknown IR is
/// refused up front so that the error says why.
const IR_VERSIONS: std::ops::RangeInclusive<i64> = 3..=14;

/// A declared graph input or output.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub value: usize,
    pub datatype: DataType,
    /// Declared dimensions, `-1` where unknown or symbolic (always for the batch axis).
    pub shape: Vec<i64>,
}

struct Node {
    name: String,
    op_type: String,
    op: Box<dyn Op>,
    inputs: Vec<Option<usize>>,
    outputs: Vec<Option<usize>>,
}

pub struct Graph {
    nodes: Vec<Node>,
    n_values: usize,
    constants: Vec<(usize, Tensor)>,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

/// Which operator set a node belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    Default,
    Ml,
}

fn port(v: &ValueInfoProto, value: usize) -> Result<Port, OnnxError> {
    let bad = |what: &str| OnnxError::Unsupported(format!("graph value '{}' {what}", v.name));
    let (datatype, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            let datatype = datatype_of(t.elem_type)
                .ok_or_else(|| bad(&format!("has unsupported element type {}", t.elem_type)))?;
            let shape = match &t.shape {
                Some(s) => {
                    s.dim
                        .iter()
                        .enumerate()
                        .map(|(i, d)| match d.value {
                            Some(crate::proto::tensor_shape_proto::dimension::Value::DimValue(
                                v,
                            )) if v > 0 && i > 0 => v,
                            _ => -1,
                        })
                        .collect()
                }
                None => vec![-1],
            };
            (datatype, shape)
        }
        // ZipMap's sequence of maps: we return its probabilities as one [N, classes] tensor.
        Some(type_proto::Value::SequenceType(_)) => (DataType::F32, vec![-1, -1]),
        Some(type_proto::Value::MapType(_)) => return Err(bad("is a map, which is not supported")),
        None => (DataType::F32, vec![-1, -1]),
    };
    Ok(Port {
        name: v.name.clone(),
        value,
        datatype,
        shape,
    })
}

impl Graph {
    pub fn load(model: &ModelProto) -> Result<Graph, OnnxError> {
        if !IR_VERSIONS.contains(&model.ir_version) {
            return Err(OnnxError::Unsupported(format!(
                "IR version {} (supported: {}..={})",
                model.ir_version,
                IR_VERSIONS.start(),
                IR_VERSIONS.end()
            )));
        }
        if !model.functions.is_empty() {
            return Err(OnnxError::Unsupported(
                "model-local functions are not supported".into(),
            ));
        }
        let mut opsets: HashMap<Domain, i64> = HashMap::new();
        for o in &model.opset_import {
            let (domain, range) = match o.domain.as_str() {
                "" | "ai.onnx" => (Domain::Default, &DEFAULT_OPSETS),
                "ai.onnx.ml" => (Domain::Ml, &ML_OPSETS),
                // A domain no node uses is harmless; a node that uses it is refused below.
                _ => continue,
            };
            if !range.contains(&o.version) {
                return Err(OnnxError::Unsupported(format!(
                    "opset {} of domain '{}' (supported: {}..={})",
                    o.version,
                    o.domain,
                    range.start(),
                    range.end()
                )));
            }
            // skl2onnx sometimes lists a domain twice with the same version; keep the highest.
            let v = opsets.entry(domain).or_insert(o.version);
            *v = (*v).max(o.version);
        }
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| OnnxError::Unsupported("the model has no graph".into()))?;
        Self::load_graph(graph, &opsets)
    }

    fn load_graph(graph: &GraphProto, opsets: &HashMap<Domain, i64>) -> Result<Graph, OnnxError> {
        if !graph.sparse_initializer.is_empty() {
            return Err(OnnxError::Unsupported(
                "sparse initializers are not supported".into(),
            ));
        }
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut id_of = |name: &str| -> usize {
            let n = ids.len();
            *ids.entry(name.to_string()).or_insert(n)
        };
        let mut constants = Vec::new();
        let mut available: Vec<bool> = Vec::new();
        let mark = |available: &mut Vec<bool>, id: usize| {
            if available.len() <= id {
                available.resize(id + 1, false);
            }
            available[id] = true;
        };
        for init in &graph.initializer {
            let tensor = from_proto(init).map_err(|e| {
                OnnxError::Unsupported(format!("initializer '{}': {}", init.name, e.0))
            })?;
            let id = id_of(&init.name);
            mark(&mut available, id);
            constants.push((id, tensor));
        }
        let mut inputs = Vec::new();
        for v in &graph.input {
            // Before IR 4, initializers were also listed as inputs; they are not the caller's.
            if graph.initializer.iter().any(|i| i.name == v.name) {
                continue;
            }
            let id = id_of(&v.name);
            mark(&mut available, id);
            inputs.push(port(v, id)?);
        }
        if inputs.is_empty() {
            return Err(OnnxError::Unsupported("the graph has no inputs".into()));
        }

        let constant_at: HashMap<usize, usize> = constants
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();

        // Build every node first, so that any unsupported operator is reported even if the
        // graph is also malformed elsewhere.
        let mut pending = Vec::with_capacity(graph.node.len());
        for (i, n) in graph.node.iter().enumerate() {
            let name = if n.name.is_empty() {
                format!("#{i}")
            } else {
                n.name.clone()
            };
            let node_err = |message: String| OnnxError::Node {
                node: name.clone(),
                op_type: n.op_type.clone(),
                message,
            };
            let domain = match n.domain.as_str() {
                "" | "ai.onnx" => Domain::Default,
                "ai.onnx.ml" => Domain::Ml,
                other => {
                    return Err(node_err(format!(
                        "operator domain '{other}' is not supported"
                    )))
                }
            };
            let opset = *opsets.get(&domain).ok_or_else(|| {
                node_err(format!(
                    "the model imports no opset for domain '{}'",
                    n.domain
                ))
            })?;
            let mut op = ops::build(n, domain, opset).map_err(|e| node_err(e.0))?;
            let ids_of = |names: &[String], id_of: &mut dyn FnMut(&str) -> usize| {
                names
                    .iter()
                    .map(|s| (!s.is_empty()).then(|| id_of(s)))
                    .collect::<Vec<_>>()
            };
            let mut inputs = ids_of(&n.input, &mut id_of);
            let outputs = ids_of(&n.output, &mut id_of);
            let constant_args: Vec<Option<&Tensor>> = inputs
                .iter()
                .map(|v| {
                    v.and_then(|id| constant_at.get(&id))
                        .map(|&i| &constants[i].1)
                })
                .collect();
            for released in op.prepare(&constant_args).map_err(|e| node_err(e.0))? {
                if let Some(slot) = inputs.get_mut(released) {
                    *slot = None;
                }
            }
            pending.push(Node {
                name,
                op_type: n.op_type.clone(),
                op,
                inputs,
                outputs,
            });
        }

        // Order the nodes: repeatedly take every node whose inputs are all available.
        // (Quadratic in the worst case, but graphs from converters are short and mostly
        // already ordered, so this is one pass in practice.)
        let mut nodes = Vec::with_capacity(pending.len());
        let mut produced: Vec<bool> = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for node in pending {
                let ready = node
                    .inputs
                    .iter()
                    .flatten()
                    .all(|&v| available.get(v) == Some(&true));
                if ready {
                    for &v in node.outputs.iter().flatten() {
                        if produced.get(v) == Some(&true) || available.get(v) == Some(&true) {
                            let name = ids.iter().find(|(_, &i)| i == v).map(|(n, _)| n.clone());
                            return Err(OnnxError::Unsupported(format!(
                                "value '{}' is produced twice (node '{}')",
                                name.unwrap_or_default(),
                                node.name
                            )));
                        }
                        mark(&mut available, v);
                        mark(&mut produced, v);
                    }
                    nodes.push(node);
                } else {
                    rest.push(node);
                }
            }
            if rest.len() == before {
                let node = &rest[0];
                return Err(OnnxError::Unsupported(format!(
                    "node '{}' ({}) has an input that nothing produces, or the graph has a cycle",
                    node.name, node.op_type
                )));
            }
            pending = rest;
        }

        let mut outputs = Vec::new();
        for v in &graph.output {
            let id = *ids.get(&v.name).ok_or_else(|| {
                OnnxError::Unsupported(format!("graph output '{}' is never produced", v.name))
            })?;
            if available.get(id) != Some(&true) {
                return Err(OnnxError::Unsupported(format!(
                    "graph output '{}' is never produced",
                    v.name
                )));
            }
            outputs.push(port(v, id)?);
        }
        if outputs.is_empty() {
            return Err(OnnxError::Unsupported("the graph has no outputs".into()));
        }
        // A constant that no node reads any more (its operator keeps a packed copy) or never
        // read is not kept: a layer's weights are held once.
        let read: std::collections::HashSet<usize> = nodes
            .iter()
            .flat_map(|n| n.inputs.iter().flatten().copied())
            .chain(outputs.iter().map(|p| p.value))
            .collect();
        constants.retain(|(id, _)| read.contains(id));
        Ok(Graph {
            nodes,
            n_values: ids.len(),
            constants,
            inputs,
            outputs,
        })
    }

    /// Estimated nanoseconds per row, summed over nodes.
    pub fn cost_per_row_ns(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.op.cost_per_row_ns())
            .sum::<u64>()
            + 100
    }

    pub fn set_threads(&mut self, threads: usize) {
        self.nodes
            .iter_mut()
            .for_each(|n| n.op.set_threads(threads));
    }

    /// Bytes held by constants and compiled operators.
    pub fn memory_bytes(&self) -> usize {
        let constants: usize = self.constants.iter().map(|(_, t)| tensor_bytes(t)).sum();
        constants
            + self
                .nodes
                .iter()
                .map(|n| n.op.memory_bytes())
                .sum::<usize>()
    }

    /// Runs the graph on input tensors given in [`Graph::inputs`] order; returns the outputs
    /// in [`Graph::outputs`] order.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, OnnxError> {
        let mut values: Vec<Option<Cow<'_, Tensor>>> = vec![None; self.n_values];
        for (id, t) in &self.constants {
            values[*id] = Some(Cow::Borrowed(t));
        }
        for (port, t) in self.inputs.iter().zip(inputs) {
            values[port.value] = Some(Cow::Owned(t));
        }
        for node in &self.nodes {
            let args: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|v| v.and_then(|v| values[v].as_deref()))
                .collect();
            let results = node.op.run(&args).map_err(|e| OnnxError::Run {
                node: node.name.clone(),
                op_type: node.op_type.clone(),
                message: e.0,
            })?;
            if results.len() < node.outputs.iter().flatten().count() {
                return Err(OnnxError::Run {
                    node: node.name.clone(),
                    op_type: node.op_type.clone(),
                    message: "produced fewer outputs than the node declares".into(),
                });
            }
            for (slot, t) in node.outputs.iter().zip(results) {
                if let Some(v) = slot {
                    values[*v] = Some(Cow::Owned(t));
                }
            }
        }
        self.outputs
            .iter()
            .map(|p| {
                values[p.value].as_deref().cloned().ok_or_else(|| {
                    OnnxError::Input(format!("output '{}' was not computed", p.name))
                })
            })
            .collect()
    }
}

pub fn tensor_bytes(t: &Tensor) -> usize {
    use inferd_core::TensorData::*;
    match t.data() {
        Bool(v) => v.len(),
        I64(v) => v.len() * 8,
        I32(v) => v.len() * 4,
        F32(v) => v.len() * 4,
        F64(v) => v.len() * 8,
        Bytes(v) => v.iter().map(|b| b.len() + 24).sum(),
    }
}
