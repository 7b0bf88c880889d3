//! inferd's reader of scikit-learn models saved with `joblib.dump` or `pickle.dump`.
//!
//! Python's own unpickler runs whatever code a file names; this crate never does. It parses
//! the pickle as data ([`pickle`]), accepts only an allowlist of scikit-learn and numpy names,
//! and builds inferd's own model structures from the values ([`estimators`]).
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
