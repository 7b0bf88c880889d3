//! The ONNX runtime's errors, and how they map onto inferd's error table: anything found while
//! loading is `ModelLoad`, anything caused by a request's tensors is `BadRequest`. Messages
//! name operators and nodes, never files.

use inferd_core::{Error, ErrorKind};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not a well-formed ONNX protobuf (corrupt, truncated, not ONNX at all).
    #[error("not a valid ONNX model: {0}")]
    Decode(String),
    /// Well-formed, but something inferd cannot run or the file contradicts itself.
    #[error("unsupported ONNX model: {0}")]
    Unsupported(String),
    /// A node cannot be built: unknown operator, bad or unsupported attribute, opset.
    #[error("node '{node}' ({op_type}): {message}")]
    Node {
        node: String,
        op_type: String,
        message: String,
    },
    /// The request's inputs do not fit the model.
    #[error("{0}")]
    Input(String),
    /// A node refused the values it was given at request time.
    #[error("node '{node}' ({op_type}) failed: {message}")]
    Run {
        node: String,
        op_type: String,
        message: String,
    },
}

impl From<OnnxError> for Error {
    fn from(e: OnnxError) -> Self {
        let kind = match e {
            OnnxError::Decode(_) | OnnxError::Unsupported(_) | OnnxError::Node { .. } => {
                ErrorKind::ModelLoad
            }
            OnnxError::Input(_) | OnnxError::Run { .. } => ErrorKind::BadRequest,
        };
        Error::new(kind, e.to_string())
    }
}

/// An operator's own complaint, before the graph adds the node's name and type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

impl From<Error> for OpError {
    fn from(e: Error) -> Self {
        OpError(e.message)
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// Shorthand for returning an [`OpError`] with a formatted message.
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::error::OpError(format!($($arg)*))) };
}
pub(crate) use fail;
