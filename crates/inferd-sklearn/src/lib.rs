//! inferd's reader of scikit-learn models saved with `joblib.dump` or `pickle.dump`.
//!
//! Python's own unpickler runs whatever code a file names; this crate never does. It parses
//! the pickle as data ([`pickle`]), accepts only an allowlist of scikit-learn and numpy names,
//! and builds inferd's own model structures (tree engine, linear heads, scalers) from the
//! values. Entry point: [`load`].
#![forbid(unsafe_code)]

pub mod error;
mod estimators;
pub mod joblib;
pub mod model;
pub mod pickle;

pub use error::Error;
pub use model::SklearnModel;
pub use pickle::Limits;

use std::sync::Arc;

use pickle::value::{Heap, Id};

/// Decodes a joblib or pickle file into inert values, without building a model.
pub fn decode(file: &[u8], limits: &Limits) -> Result<(Heap, Id), Error> {
    let stream = joblib::unwrap_container(file, limits)?;
    let mut reader = pickle::Reader::new(&stream);
    let mut heap = Heap::default();
    let root = pickle::load(&mut reader, &mut heap, limits)?;
    Ok((heap, root))
}

/// Loads a scikit-learn model from the bytes of a `joblib.dump` / `pickle.dump` file, with the
/// default [`Limits`]. Nothing in the file is executed; see the crate docs.
pub fn load(file: &[u8]) -> Result<Arc<dyn inferd_core::Model>, Error> {
    load_with_limits(file, &Limits::default())
}

/// [`load`] with explicit limits.
pub fn load_with_limits(
    file: &[u8],
    limits: &Limits,
) -> Result<Arc<dyn inferd_core::Model>, Error> {
    let (heap, root) = decode(file, limits)?;
    let built = estimators::build(&heap, root)?;
    Ok(Arc::new(SklearnModel::new(built)))
}

/// The fuzz target's body, shared with the corpus replay test: load `data`, and if a model
/// loads, run it on a row of zeros and a row of NaN. Must never panic.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let limits = Limits {
        max_decompressed_bytes: 64 << 20,
        max_total_bytes: 64 << 20,
        ..Limits::default()
    };
    let Ok(model) = load_with_limits(data, &limits) else {
        return;
    };
    let Some(n) = model.metadata().row_features() else {
        return;
    };
    for fill in [0.0f32, f32::NAN] {
        let Ok(tensor) =
            inferd_core::Tensor::new(vec![1, n], inferd_core::TensorData::F32(vec![fill; n]))
        else {
            return;
        };
        let _ = model.infer(vec![inferd_core::NamedTensor::new(model::INPUT, tensor)]);
    }
}
