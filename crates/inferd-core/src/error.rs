//! The one error table: every failure inferd reports maps to exactly one HTTP status, one gRPC
//! code and one stable `error_type` string (used in response bodies and as a metric label).

use std::fmt;

/// What kind of failure this is. The kind, not the message, decides the status codes, so a
/// front end never has to guess from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or does not fit the model (400).
    BadRequest,
    /// The model or version named does not exist (404).
    ModelNotFound,
    /// A body, message or tensor exceeds a configured limit (413).
    PayloadTooLarge,
    /// Unsupported media type or wire encoding (415).
    UnsupportedMediaType,
    /// The server is shedding load; the client should retry later (503 + Retry-After).
    Overloaded,
    /// The model exists but is not ready to serve (503).
    ModelNotReady,
    /// The request's deadline passed before it was answered (504).
    DeadlineExceeded,
    /// The client did not send its request body within the body read timeout (408).
    RequestTimeout,
    /// A model file could not be loaded (used at start-up and by the repository API).
    ModelLoad,
    /// Authentication missing or wrong (401).
    Unauthenticated,
    /// Our own fault (500).
    Internal,
}

/// gRPC status codes we use, numbered as in `google.rpc.Code`, so that core needs no gRPC crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum GrpcCode {
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl ErrorKind {
    /// HTTP status, gRPC code and `error_type`: the whole table in one place.
    pub const fn table(self) -> (u16, GrpcCode, &'static str) {
        use ErrorKind::*;
        match self {
            BadRequest => (400, GrpcCode::InvalidArgument, "bad_request"),
            ModelNotFound => (404, GrpcCode::NotFound, "model_not_found"),
            PayloadTooLarge => (413, GrpcCode::ResourceExhausted, "payload_too_large"),
            UnsupportedMediaType => (415, GrpcCode::InvalidArgument, "unsupported_media_type"),
            Overloaded => (503, GrpcCode::Unavailable, "overloaded"),
            ModelNotReady => (503, GrpcCode::Unavailable, "model_not_ready"),
            DeadlineExceeded => (504, GrpcCode::DeadlineExceeded, "deadline_exceeded"),
            RequestTimeout => (408, GrpcCode::DeadlineExceeded, "request_timeout"),
            ModelLoad => (400, GrpcCode::FailedPrecondition, "model_load"),
            Unauthenticated => (401, GrpcCode::Unauthenticated, "unauthenticated"),
            Internal => (500, GrpcCode::Internal, "internal"),
        }
    }

    pub const fn http_status(self) -> u16 {
        self.table().0
    }

    pub const fn grpc_code(self) -> GrpcCode {
        self.table().1
    }

    pub const fn error_type(self) -> &'static str {
        self.table().2
    }

    /// Whether a client should be told to retry later (`Retry-After`).
    pub const fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Overloaded | ErrorKind::ModelNotReady)
    }
}

/// An error with its kind and a message fit to show a client: no file paths, no internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ModelNotFound, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PayloadTooLarge, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn model_load(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ModelLoad, message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_unique() {
        use ErrorKind::*;
        let all = [
            BadRequest,
            ModelNotFound,
            PayloadTooLarge,
            UnsupportedMediaType,
            Overloaded,
            ModelNotReady,
            DeadlineExceeded,
            RequestTimeout,
            ModelLoad,
            Unauthenticated,
            Internal,
        ];
        let mut names: Vec<_> = all.iter().map(|k| k.error_type()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().filter(|k| k.http_status() == 500).count() == 1);
    }
}
