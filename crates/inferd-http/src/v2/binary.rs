//! The binary tensor data extension (Triton): raw little-endian tensors after the JSON header,
//! sized by `binary_data_size`, with `Inference-Header-Content-Length` giving the JSON's length.
//!
//! Every length the client states is checked against the bytes actually present here, and
//! against what the declared shape and datatype need by core's raw codec
//! (`inferd_core::tensor::raw`), the one gRPC's raw contents use; a mismatch is a 400.

use crate::error::ApiError;

/// The header that separates the JSON part of a body from its binary part.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The binary part of a request, handed out to inputs in order.
pub struct Blobs<'a> {
    rest: &'a [u8],
}

impl<'a> Blobs<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next `size` bytes, claimed by `what`.
    pub fn take(&mut self, size: usize, what: &str) -> Result<&'a [u8], ApiError> {
        if size > self.rest.len() {
            return Err(ApiError::bad_request(format!(
                "{what} claims {size} bytes of binary data but only {} remain in the body \
                 (check binary_data_size and the Inference-Header-Content-Length header)",
                self.rest.len()
            )));
        }
        let (taken, rest) = self.rest.split_at(size);
        self.rest = rest;
        Ok(taken)
    }

    /// Refuses bytes no input claimed: a body whose sizes do not add up is malformed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "{} bytes of binary data after the JSON header are not claimed by any input",
                self.rest.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_hand_out_exactly_the_bytes_present() {
        let mut blobs = Blobs::new(&[1, 2, 3]);
        assert!(blobs.take(4, "x").is_err());
        assert_eq!(blobs.take(2, "x").unwrap(), &[1, 2]);
        assert!(blobs.finish().is_err());
        let mut blobs = Blobs::new(&[1]);
        assert_eq!(blobs.take(1, "x").unwrap(), &[1]);
        assert!(blobs.finish().is_ok());
    }
}
