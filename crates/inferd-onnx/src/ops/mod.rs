//! The operator registry: one file per operator family, each building its operators from a
//! node at load time (checking attributes and opset there) into an [`Op`] that only computes.

use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::graph::Domain;
use crate::proto::NodeProto;
use inferd_core::Tensor;

mod elementwise;
mod encoders;
mod linear;
mod matmul;
mod packed;
mod preprocess;
mod shape;
mod tree_attrs;
mod trees;

/// A compiled operator. `inputs` holds one entry per node input, `None` for an omitted
/// optional input; the result holds the node's outputs in order.
pub trait Op: Send + Sync {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>>;

    /// Called once at load with the node's inputs that are constants (initializers), `None`
    /// for the others, so the operator can precompute from them (pack a layer's weights).
    /// Returns the positions of the inputs it will not read again: `run` then gets `None`
    /// there, and the graph frees a constant that no other node reads.
    fn prepare(&mut self, _constants: &[Option<&Tensor>]) -> OpResult<Vec<usize>> {
        Ok(Vec::new())
    }

    /// Rough nanoseconds per row, for the executor's inline-or-thread decision.
    fn cost_per_row_ns(&self) -> u64 {
        20
    }

    /// Bytes of model data the operator holds (weights, compiled trees).
    fn memory_bytes(&self) -> usize {
        0
    }

    /// Caps the threads one call may use (tree ensembles split large batches).
    fn set_threads(&mut self, _threads: usize) {}
}

/// The `i`th input, which the operator requires.
pub fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> OpResult<&'a Tensor> {
    match inputs.get(i).copied().flatten() {
        Some(t) => Ok(t),
        None => fail!("input {i} is missing"),
    }
}

/// Builds the operator for `node` under the opset version the model imports for its domain.
pub fn build(node: &NodeProto, domain: Domain, opset: i64) -> OpResult<Box<dyn Op>> {
    let a = Attrs::new(node);
    let op = node.op_type.as_str();
    match domain {
        Domain::Ml => match op {
            "TreeEnsembleClassifier" => trees::classifier(&a, opset),
            "TreeEnsembleRegressor" => trees::regressor(&a, opset),
            "TreeEnsemble" => trees::tree_ensemble(&a, opset),
            "LinearClassifier" => linear::classifier(&a),
            "LinearRegressor" => linear::regressor(&a),
            "Scaler" => preprocess::scaler(&a),
            "Normalizer" => preprocess::normalizer(&a),
            "Imputer" => preprocess::imputer(&a),
            "Binarizer" => preprocess::binarizer(&a),
            "FeatureVectorizer" => preprocess::feature_vectorizer(&a),
            "ArrayFeatureExtractor" => preprocess::array_feature_extractor(&a),
            "ZipMap" => encoders::zipmap(&a),
            "OneHotEncoder" => encoders::one_hot_encoder(&a),
            "LabelEncoder" => encoders::label_encoder(&a, opset),
            "CategoryMapper" => encoders::category_mapper(&a),
            _ => fail!("unsupported operator {op} in domain ai.onnx.ml"),
        },
        Domain::Default => match op {
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Equal" | "Less"
            | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Where" | "Sum" => {
                elementwise::binary(&a, op)
            }
            "Sigmoid" | "Relu" | "Tanh" | "Exp" | "Log" | "Abs" | "Neg" | "Sqrt" | "Reciprocal"
            | "Erf" | "Floor" | "Ceil" | "Not" | "IsNaN" | "LeakyRelu" | "Clip" => {
                elementwise::unary(&a, op, opset)
            }
            "Softmax" | "LogSoftmax" => elementwise::softmax(&a, op, opset),
            "Cast" => elementwise::cast(&a),
            "Identity" | "Dropout" => elementwise::identity(&a, op),
            "MatMul" => matmul::matmul(&a),
            "Gemm" => matmul::gemm(&a),
            "ArgMax" | "ArgMin" => shape::argmax(&a, op),
            "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceLogSumExp" => {
                shape::reduce(&a, op, opset)
            }
            "Concat" => shape::concat(&a),
            "Reshape" => shape::reshape(&a),
            "Flatten" => shape::flatten(&a),
            "Gather" => shape::gather(&a),
            "Shape" => shape::shape(&a),
            "Slice" => shape::slice(&a, opset),
            "Squeeze" | "Unsqueeze" => shape::squeeze(&a, op, opset),
            "Constant" => shape::constant(&a),
            _ => fail!("unsupported operator {op}"),
        },
    }
}
