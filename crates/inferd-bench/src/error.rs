//! The load generator's error type and the exit status each kind maps to.

use std::process::ExitCode;

/// Exit status for bad arguments (BSD `EX_USAGE`), as `inferd serve` uses for bad config.
pub const EXIT_CONFIG: u8 = 64;
/// Exit status when the target cannot be reached or described (BSD `EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit status when the report cannot be written (BSD `EX_IOERR`).
pub const EXIT_IO: u8 = 74;
/// Exit status when the run completed but its error rate passed `--max-error-rate`.
pub const EXIT_ERROR_RATE: u8 = 1;

/// Everything that stops a benchmark before or after the load itself. Errors *during* the load
/// (a refused connection, a 503) are counted in the report instead.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An argument or the request body given is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The target did not answer the pre-flight request, or answered it with an error.
    #[error("target unavailable: {0}")]
    Unavailable(String),
    /// The JSON report could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl BenchError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            BenchError::Config(_) => EXIT_CONFIG,
            BenchError::Unavailable(_) => EXIT_UNAVAILABLE,
            BenchError::Io { .. } | BenchError::Runtime(_) => EXIT_IO,
        })
    }
}

pub(crate) fn config(msg: impl Into<String>) -> BenchError {
    BenchError::Config(msg.into())
}
