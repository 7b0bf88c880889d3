//! The models a server holds, by name and version, and which one answers the seed's `/predict`.
//!
//! Front ends resolve `(name, version?)` here and get an `Arc` to a loaded model; the set of
//! models is swapped as a whole, so a request keeps the version it started on even if the
//! repository changes under it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::routing::TrafficSplit;
use crate::shadow::ShadowTap;

pub use crate::loaded::{InferOptions, LoadedModel};

/// All versions of one model, newest last, and how requests choose between them.
#[derive(Clone, Default)]
pub struct ModelVersions {
    pub versions: BTreeMap<u64, Arc<LoadedModel>>,
    /// Weights for requests that name no version; without it they get the newest version.
    pub split: Option<Arc<TrafficSplit>>,
    /// Names for versions (TF Serving's labels: `stable` → 1).
    pub labels: BTreeMap<String, u64>,
    /// Handles on `versions` that also copy a share of requests to a shadow version, for
    /// requests that name no version; empty without a shadow. Set with
    /// [`ModelVersions::set_shadow`].
    pub shadowed: BTreeMap<u64, Arc<LoadedModel>>,
}

impl ModelVersions {
    /// Copies a share of the requests that name no version to `tap`'s version (every served
    /// version but the shadow itself gets a tapped handle), or stops with `None`. Call it after
    /// `versions` is filled.
    pub fn set_shadow(&mut self, tap: Option<Arc<ShadowTap>>) {
        self.shadowed.clear();
        let Some(tap) = tap else { return };
        for (v, loaded) in &self.versions {
            if *v != tap.shadow_version() {
                let handle = loaded.shadowed(Arc::clone(&tap));
                self.shadowed.insert(*v, Arc::new(handle));
            }
        }
    }
}

/// An immutable view of every served model.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub models: BTreeMap<String, ModelVersions>,
    /// The model the seed's `/predict` (and other name-less APIs) goes to.
    pub default_model: Option<String>,
}

/// The server's models. Cheap to clone; readers take the current snapshot and never block
/// writers for longer than an `Arc` clone.
#[derive(Clone, Default)]
pub struct Registry {
    current: Arc<RwLock<Arc<Snapshot>>>,
    ready: Arc<AtomicBool>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the served set of models.
    pub fn publish(&self, snapshot: Snapshot) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }

    /// Adds one model version to the current set.
    pub fn insert(&self, loaded: LoadedModel) {
        let mut next = (*self.snapshot()).clone();
        if next.default_model.is_none() {
            next.default_model = Some(loaded.name.clone());
        }
        next.models
            .entry(loaded.name.clone())
            .or_default()
            .versions
            .insert(loaded.version, Arc::new(loaded));
        self.publish(next);
    }

    /// Server readiness: true once every model has loaded and warmed up, false again while
    /// draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The model named `name` at `version`, or, when none is given, the version its traffic
    /// split picks (else its newest).
    pub fn resolve(&self, name: &str, version: Option<u64>) -> Result<Arc<LoadedModel>> {
        self.resolve_keyed(name, version, None)
    }

    /// The request header that makes `name`'s traffic split sticky, if it has one.
    pub fn sticky_header(&self, name: &str) -> Option<String> {
        let snapshot = self.snapshot();
        snapshot
            .models
            .get(name)?
            .split
            .as_ref()?
            .sticky_header
            .clone()
    }

    /// The version a label points at.
    pub fn resolve_label(&self, name: &str, label: &str) -> Result<Arc<LoadedModel>> {
        let version = self
            .snapshot()
            .models
            .get(name)
            .and_then(|m| m.labels.get(label).copied())
            .ok_or_else(|| {
                Error::not_found(format!(
                    "model '{}' has no label '{}'",
                    printable(name),
                    printable(label)
                ))
            })?;
        self.resolve(name, Some(version))
    }

    /// As [`Registry::resolve`], with the request's sticky key (the value of the model's
    /// sticky header) so the same key always gets the same version.
    pub fn resolve_keyed(
        &self,
        name: &str,
        version: Option<u64>,
        key: Option<&[u8]>,
    ) -> Result<Arc<LoadedModel>> {
        let snapshot = self.snapshot();
        let versions = snapshot
            .models
            .get(name)
            .ok_or_else(|| Error::not_found(format!("unknown model '{}'", printable(name))))?;
        let found = match version {
            Some(v) => versions.versions.get(&v),
            None => {
                let picked = match &versions.split {
                    Some(split) => Some(split.pick(key)),
                    None => versions.versions.keys().next_back().copied(),
                };
                // Only requests that leave the choice to the server are shadowed.
                picked.and_then(|v| {
                    versions
                        .shadowed
                        .get(&v)
                        .or_else(|| versions.versions.get(&v))
                })
            }
        };
        found.cloned().ok_or_else(|| match version {
            Some(v) => Error::not_found(format!("model '{name}' has no version {v}")),
            None => Error::not_found(format!("model '{name}' has no loaded version")),
        })
    }

    /// The model for APIs that name none (the seed's `/predict`).
    pub fn resolve_default(&self) -> Result<Arc<LoadedModel>> {
        let snapshot = self.snapshot();
        let name = snapshot
            .default_model
            .as_deref()
            .ok_or_else(|| Error::not_found("no model is being served"))?;
        self.resolve(name, None)
    }
}

/// Echoing a client's text back is fine; echoing megabytes or control characters is not.
fn printable(name: &str) -> String {
    let mut out: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if name.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, ModelMetadata};
    use crate::tensor::NamedTensor;

    struct Null(ModelMetadata);
    impl Model for Null {
        fn metadata(&self) -> &ModelMetadata {
            &self.0
        }
        fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
            Ok(vec![])
        }
    }

    fn null(name: &str, version: u64) -> LoadedModel {
        let meta = ModelMetadata {
            platform: "test".into(),
            inputs: vec![],
            outputs: vec![],
            prediction_output: 0,
            probabilities_output: None,
        };
        LoadedModel::new(name, version, Arc::new(Null(meta)))
    }

    #[test]
    fn resolves_newest_or_named_version() {
        let registry = Registry::new();
        registry.insert(null("iris", 1));
        registry.insert(null("iris", 3));
        registry.insert(null("wine", 1));
        assert_eq!(registry.resolve("iris", None).unwrap().version, 3);
        assert_eq!(registry.resolve("iris", Some(1)).unwrap().version, 1);
        assert_eq!(registry.resolve_default().unwrap().name, "iris");
        let err = registry.resolve("iris", Some(2)).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::ModelNotFound);
        assert!(registry.resolve("nope", None).is_err());
    }

    #[test]
    fn a_model_debug_prints_as_its_platform() {
        let shown = format!("{:?}", null("iris", 1).model);
        assert!(shown.starts_with("Model { platform: \"test\""), "{shown}");
    }

    #[test]
    fn unknown_names_are_not_echoed_in_full() {
        let registry = Registry::new();
        let long = "x".repeat(10_000);
        let err = registry.resolve(&long, None).unwrap_err();
        assert!(err.message.len() < 120);
    }
}
