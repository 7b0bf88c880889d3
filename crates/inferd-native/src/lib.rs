//! inferd's loaders for the files XGBoost and LightGBM write themselves, served with no
//! conversion step: XGBoost JSON (`Booster.save_model("model.json")`) and LightGBM text
//! (`Booster.save_model("model.txt")`).
//!
//! Each loader reads its format into an [`inferd_trees::EnsembleSpec`] plus a [`model::Task`]
//! (how margins become outputs), and [`NativeModel`] compiles and serves the pair. Whatever a
//! file holds that inferd would not reproduce exactly (XGBoost categorical splits, DART,
//! linear boosters, unknown objectives, LightGBM linear trees) is refused at load time with an
//! error that names it, tree and node included; corrupt or truncated files are errors, never
//! panics. LightGBM categorical splits are served (as interval searches on the category code).
#![forbid(unsafe_code)]

mod lightgbm;
pub mod model;
mod xgboost;

pub use model::NativeModel;

/// Why a native model file cannot be served. Messages name trees and nodes by index, never a
/// file path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NativeError {
    /// The bytes are not the format at all (not JSON, not UTF-8, wrong shape of document).
    #[error("malformed file: {0}")]
    Malformed(String),
    /// The file is well formed but contradicts itself (lengths, indices, counts).
    #[error("inconsistent model: {0}")]
    Invalid(String),
    /// A feature of the format that inferd does not serve.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The trees themselves are out of shape (the engine's own checks).
    #[error("invalid trees: {0}")]
    Tree(#[from] inferd_trees::TreeError),
}

impl NativeError {
    fn into_core(self, format: &str) -> inferd_core::Error {
        inferd_core::Error::model_load(format!("{format} model: {self}"))
    }
}

/// Loads an XGBoost model saved as JSON (`save_model("model.json")`, XGBoost 1.0 or later).
pub fn load_xgboost_json(bytes: &[u8]) -> inferd_core::Result<NativeModel> {
    xgboost::parse(bytes)
        .and_then(NativeModel::new)
        .map_err(|e| e.into_core("XGBoost"))
}

/// Loads a LightGBM model saved as text (`save_model("model.txt")`, format v2 to v4).
pub fn load_lightgbm_text(bytes: &[u8]) -> inferd_core::Result<NativeModel> {
    lightgbm::parse(bytes)
        .and_then(NativeModel::new)
        .map_err(|e| e.into_core("LightGBM"))
}

/// Loads either format, telling them apart by content ([`looks_like_xgboost_json`],
/// [`looks_like_lightgbm_text`]) rather than by file name.
pub fn load_native(bytes: &[u8]) -> inferd_core::Result<NativeModel> {
    if looks_like_lightgbm_text(bytes) {
        load_lightgbm_text(bytes)
    } else if looks_like_xgboost_json(bytes) {
        load_xgboost_json(bytes)
    } else {
        Err(inferd_core::Error::model_load(
            "not an XGBoost JSON model nor a LightGBM text model",
        ))
    }
}

/// Whether `bytes` look like an XGBoost JSON model: a JSON object whose top-level keys include
/// `"learner"` and `"version"`. Cheap (parses no trees), for callers that must tell an XGBoost
/// file from other `.json` files before choosing a loader.
pub fn looks_like_xgboost_json(bytes: &[u8]) -> bool {
    xgboost::sniff(bytes)
}

/// Whether `bytes` look like a LightGBM text model: its first line is `tree`.
pub fn looks_like_lightgbm_text(bytes: &[u8]) -> bool {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    first.strip_suffix(b"\r").unwrap_or(first) == b"tree"
}

/// The fuzz target's body, shared with the test that replays its seed corpus: both loaders on
/// the same bytes, then one small inference on any model that loads. Panics only on a bug.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    use inferd_core::tensor::{NamedTensor, Tensor, TensorData};
    use inferd_core::Model;
    for loaded in [load_xgboost_json(data), load_lightgbm_text(data)] {
        let Ok(mut model) = loaded else { continue };
        let n_features = model.n_features();
        if n_features > 1 << 16 {
            continue;
        }
        model.set_max_threads(1);
        // One row of zeros, one of NaN: the default and the missing-value paths.
        let mut rows = vec![0.0f32; n_features];
        rows.extend(std::iter::repeat_n(f32::NAN, n_features));
        let input = Tensor::new(vec![2, n_features], TensorData::F32(rows)).expect("shape");
        let outputs = model
            .infer(vec![NamedTensor::new(model::INPUT, input)])
            .expect("valid input");
        assert_eq!(outputs.len(), model.metadata().outputs.len());
    }
}
