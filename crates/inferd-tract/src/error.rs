//! The tract runtime's errors, and how they map onto inferd's error table: anything found
//! while loading is `ModelLoad`, anything caused by a request's tensors is `BadRequest`.
//! tract reads from memory, so its messages carry no file paths.

use inferd_core::{Error, ErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TractError {
    /// tract could not read or translate the graph (corrupt file, operator it lacks).
    #[error("ONNX model cannot run in tract: {0}")]
    Load(String),
    /// The graph reads, but declares something inferd cannot serve (an element type, a
    /// non-batch dimension left open).
    #[error("unsupported ONNX model: {0}")]
    Unsupported(String),
    /// The request's inputs do not fit the model.
    #[error("{0}")]
    Input(String),
    /// tract refused the values it was given at request time.
    #[error("inference failed: {0}")]
    Run(String),
}

impl From<TractError> for Error {
    fn from(e: TractError) -> Self {
        let kind = match e {
            TractError::Load(_) | TractError::Unsupported(_) => ErrorKind::ModelLoad,
            TractError::Input(_) | TractError::Run(_) => ErrorKind::BadRequest,
        };
        Error::new(kind, e.to_string())
    }
}

/// tract's error chain on one line (`outer: inner: root`), which is where it names the node
/// and operator.
pub(crate) fn chain(e: &tract_onnx::prelude::TractError) -> String {
    format!("{e:#}")
}
