//! inferd's tree engine. Every source of tree ensembles (ONNX-ML TreeEnsemble operators,
//! scikit-learn pickles, XGBoost JSON, LightGBM text) describes its trees as an
//! [`spec::EnsembleSpec`]; the engine compiles that into a flat layout and evaluates it.
#![forbid(unsafe_code)]

pub mod spec;
