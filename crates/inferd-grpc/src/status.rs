//! Core errors as gRPC statuses: the code comes from the one table, `ErrorKind::table()`, and
//! the message is the core error's client-safe text.

use inferd_core::{Error, ErrorKind};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Trailer carrying the stable `error_type` of the table, for clients and log correlation.
pub const ERROR_TYPE_KEY: &str = "inferd-error-type";

/// The status for a core error: the table's gRPC code, the error's message, and its
/// `error_type` in the `inferd-error-type` trailer.
pub fn to_status(error: Error) -> Status {
    let code = code_of(error.kind);
    let mut status = Status::new(code, error.message);
    status.metadata_mut().insert(
        ERROR_TYPE_KEY,
        MetadataValue::from_static(error.kind.error_type()),
    );
    status
}

/// The gRPC code the error table gives `kind`.
pub fn code_of(kind: ErrorKind) -> Code {
    Code::from_i32(kind.grpc_code() as i32)
}

/// A client's text, safe to echo: no control characters, at most 64 characters.
pub fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(64).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        assert_eq!(code_of(ErrorKind::BadRequest), Code::InvalidArgument);
        assert_eq!(code_of(ErrorKind::ModelNotFound), Code::NotFound);
        assert_eq!(code_of(ErrorKind::PayloadTooLarge), Code::ResourceExhausted);
        assert_eq!(code_of(ErrorKind::Overloaded), Code::Unavailable);
        assert_eq!(code_of(ErrorKind::DeadlineExceeded), Code::DeadlineExceeded);
        assert_eq!(code_of(ErrorKind::Internal), Code::Internal);
    }

    #[test]
    fn status_carries_message_and_error_type() {
        let status = to_status(Error::not_found("unknown model 'x'"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "unknown model 'x'");
        assert_eq!(
            status.metadata().get(ERROR_TYPE_KEY).unwrap(),
            "model_not_found"
        );
    }

    #[test]
    fn echoed_text_is_bounded() {
        assert_eq!(printable("a\nb"), "ab");
        assert!(printable(&"x".repeat(1000)).chars().count() <= 65);
    }
}
