//! inferd's core: what every runtime and every front end shares.
//!
//! A request travels front end → [`registry::Registry`] → [`model::Model`] and back as
//! [`tensor::Tensor`]s; anything that goes wrong on the way is an [`error::Error`], whose
//! [`error::ErrorKind`] is the one table of HTTP statuses, gRPC codes and `error_type` strings.
//! [`batching`] coalesces concurrent requests into one model call; [`metrics`] is the one set
//! of Prometheus metrics every part of the server records into.
#![forbid(unsafe_code)]

pub mod batching;
pub mod error;
pub mod executor;
mod loaded;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod repository;
pub mod routing;
pub mod shadow;
pub mod tensor;

pub use error::{Error, ErrorKind, Result};
pub use model::{Model, ModelMetadata, TensorSpec};
pub use tensor::{DataType, NamedTensor, Tensor, TensorData};
