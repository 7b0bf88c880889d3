//! The model trait every runtime implements, and the metadata a front end needs to talk about
//! a model without knowing which runtime runs it.

use crate::error::Result;
use crate::tensor::{DataType, NamedTensor};

/// Declared input or output of a model. A dimension of `-1` is variable (usually the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, datatype: DataType, shape: Vec<i64>) -> Self {
        Self {
            name: name.into(),
            datatype,
            shape,
        }
    }
}

/// What a front end may know about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetadata {
    /// The runtime's platform name, as shown in V2 model metadata (`onnx`, `xgboost`...).
    pub platform: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Index into `outputs` of what scikit-learn's `predict` returns (the label or the value):
    /// the seed's `/predict` and KServe V1 answer with it.
    pub prediction_output: usize,
    /// Index into `outputs` of the class probabilities, for classifiers.
    pub probabilities_output: Option<usize>,
}

impl ModelMetadata {
    /// Number of features per row when the model takes a single 2-D numeric input, which is
    /// what the row-oriented APIs (seed, KServe V1, TF Serving `instances`) need.
    pub fn row_features(&self) -> Option<usize> {
        match self.inputs.as_slice() {
            [only] if only.shape.len() == 2 && only.shape[1] > 0 => Some(only.shape[1] as usize),
            _ => None,
        }
    }
}

/// A loaded model. Object-safe and synchronous: runtimes are plain CPU code, and the server
/// decides where `infer` runs (see [`crate::executor`]), so no runtime has to know about tokio.
pub trait Model: Send + Sync + 'static {
    fn metadata(&self) -> &ModelMetadata;

    /// Runs the model on named inputs, returning every declared output in declaration order.
    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>>;

    /// A rough cost of one row, in nanoseconds, measured or estimated by the runtime. The
    /// executor runs cheap calls inline and sends costly ones to the inference threads.
    fn cost_per_row_ns(&self) -> u64 {
        50_000
    }
}

/// So that `Result<Arc<dyn Model>>` can be unwrapped and logged: a model shows as its platform
/// and declared tensors, never its weights.
impl std::fmt::Debug for dyn Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let meta = self.metadata();
        f.debug_struct("Model")
            .field("platform", &meta.platform)
            .field("inputs", &meta.inputs)
            .field("outputs", &meta.outputs)
            .finish()
    }
}
