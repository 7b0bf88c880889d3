//! The model repository on disk: `DIR/<model>/<version>/model.<ext>` with an optional
//! `DIR/<model>/config.toml`, as Triton and TF Serving lay it out.
//!
//! Scanning only decides *what* to load (names, versions, files, configs), checking that every
//! path stays inside the repository; loading the files is the binary's job, since only it knows
//! every runtime. [`files`] reads what the repository names: regular files only, confined
//! and capped.

pub mod config;
pub mod files;
mod scan;

pub use config::{ModelConfig, VersionPolicy};
pub use scan::{check_model_name, scan, ModelPlan, RepositoryPlan, VersionPlan, MODEL_EXTENSIONS};
