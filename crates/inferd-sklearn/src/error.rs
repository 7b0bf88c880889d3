//! The reader's errors. Messages name what was refused (a class, an opcode, a limit) but never
//! a file path; [`From`] turns them into inferd's `ModelLoad` errors.

/// What went wrong reading a scikit-learn file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a pickle or joblib file")]
    Format,
    #[error("the file ends early")]
    Truncated,
    #[error(
        "refused to load '{name}': model files may only name scikit-learn estimators and numpy \
         arrays, and nothing in them is ever executed"
    )]
    Forbidden { name: String },
    #[error("pickle opcode {0} is not allowed in a model file")]
    Opcode(String),
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("malformed model file: {0}")]
    Malformed(String),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("not supported: {0}")]
    Unsupported(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for inferd_core::Error {
    fn from(e: Error) -> Self {
        inferd_core::Error::model_load(format!("scikit-learn model: {e}"))
    }
}
