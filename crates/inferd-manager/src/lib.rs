//! The model manager: everything that changes *which* models a server runs while it runs.
//!
//! - [`reload`]: turns the repository on disk into the registry's snapshot, and keeps doing
//!   so as versions appear and disappear (file events, with polling as the fallback);
//! - traffic weights between versions (core's `routing`), set from configs and at run time;
//! - [`management`]: the authenticated management API on its own port;
//! - [`offload`]: scans and loads on threads of their own, under timeouts, so that none of the
//!   above ever blocks an async worker.
#![forbid(unsafe_code)]

pub mod management;
pub mod offload;
pub mod reload;

pub use reload::{LoadFn, Manager, ManagerConfig};
