//! Tests for shadow traffic: sampling, the bounded queue, and how answers are compared.

use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;
use crate::error::{Error, Result};
use crate::metrics::shadow_count;
use crate::model::{Model, ModelMetadata};
use crate::registry::{ModelVersions, Registry, Snapshot};
use crate::routing::TrafficSplit;
use crate::tensor::Tensor;

fn meta() -> ModelMetadata {
    ModelMetadata {
        platform: "test".into(),
        inputs: vec![],
        outputs: vec![],
        prediction_output: 0,
        probabilities_output: None,
    }
}

fn prediction(value: f32) -> Vec<NamedTensor> {
    let tensor = Tensor::new(vec![1], TensorData::F32(vec![value])).unwrap();
    vec![NamedTensor::new("label", tensor)]
}

/// Answers a constant.
struct Constant(ModelMetadata, f32);
impl Model for Constant {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }
    fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        Ok(prediction(self.1))
    }
}

/// Always fails.
struct Failing(ModelMetadata);
impl Model for Failing {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }
    fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        Err(Error::bad_request("no"))
    }
}

/// Says when a call starts, then waits until the gate opens (its sender is dropped).
struct Gated {
    meta: ModelMetadata,
    started: Mutex<std_mpsc::Sender<()>>,
    gate: Mutex<std_mpsc::Receiver<()>>,
}
impl Model for Gated {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }
    fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let _ = self.started.lock().unwrap().send(());
        let _ = self.gate.lock().unwrap().recv();
        Ok(prediction(1.0))
    }
}

/// A registry serving `name` version 1 (answering 1.0) to requests that name no version, with
/// version 2 (`shadow`) as its shadow.
fn serve(name: &str, shadow: Arc<dyn Model>, share: f64, queue: usize) -> (Registry, Executor) {
    // Two threads: a shadow stuck on one (the gated test) must not stall the primary.
    let executor = Executor::new(2, 16);
    let primary = Arc::new(LoadedModel::new(name, 1, Arc::new(Constant(meta(), 1.0))));
    let target = Arc::new(LoadedModel::new(name, 2, shadow));
    let mut versions = ModelVersions::default();
    versions.versions.insert(1, primary);
    versions.versions.insert(2, Arc::clone(&target));
    versions.split = TrafficSplit::new(&[(1, 1)], &[1, 2], None).map(Arc::new);
    let tap = ShadowTap::start(target, executor.clone(), share, queue);
    versions.set_shadow(Some(tap));
    let mut snapshot = Snapshot::default();
    snapshot.models.insert(name.to_owned(), versions);
    let registry = Registry::new();
    registry.publish(snapshot);
    (registry, executor)
}

async fn ask(registry: &Registry, executor: &Executor, name: &str) -> Vec<NamedTensor> {
    let model = registry.resolve(name, None).unwrap();
    assert_eq!(model.version, 1);
    model.infer(executor, vec![]).await.unwrap()
}

/// Polls (the worker runs on a thread of its own) until `done`, for at most 10 seconds.
async fn eventually(done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn count(name: &str, result: ShadowResult) -> u64 {
    shadow_count(name, 2, result)
}

#[tokio::test]
async fn share_one_shadows_every_unversioned_request_and_counts_agreement() {
    let name = "shadow-all";
    let (registry, executor) = serve(name, Arc::new(Constant(meta(), 1.0)), 1.0, 64);
    for _ in 0..20 {
        assert_eq!(ask(&registry, &executor, name).await, prediction(1.0));
    }
    eventually(|| count(name, ShadowResult::Agree) == 20).await;
    assert_eq!(count(name, ShadowResult::Agree), 20);
    assert_eq!(count(name, ShadowResult::Disagree), 0);
    assert_eq!(count(name, ShadowResult::Dropped), 0);
    // A request that names its version is never shadowed, nor is the shadow version itself.
    assert!(registry.resolve(name, Some(1)).unwrap().shadow().is_none());
    assert!(registry.resolve(name, Some(2)).unwrap().shadow().is_none());
    assert!(registry.resolve(name, None).unwrap().shadow().is_some());
}

#[tokio::test]
async fn a_different_answer_is_counted_as_disagreement_and_never_returned() {
    let name = "shadow-differs";
    let (registry, executor) = serve(name, Arc::new(Constant(meta(), 2.0)), 1.0, 64);
    for _ in 0..5 {
        assert_eq!(ask(&registry, &executor, name).await, prediction(1.0));
    }
    eventually(|| count(name, ShadowResult::Disagree) == 5).await;
    assert_eq!(count(name, ShadowResult::Disagree), 5);
    assert_eq!(count(name, ShadowResult::Agree), 0);
}

#[tokio::test]
async fn share_zero_shadows_nothing() {
    let name = "shadow-none";
    let (registry, executor) = serve(name, Arc::new(Constant(meta(), 1.0)), 0.0, 64);
    for _ in 0..50 {
        ask(&registry, &executor, name).await;
    }
    // Nothing sampled means nothing offered: no count can appear later.
    for result in [
        ShadowResult::Agree,
        ShadowResult::Disagree,
        ShadowResult::Error,
        ShadowResult::Dropped,
    ] {
        assert_eq!(count(name, result), 0, "{result:?}");
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_delaying_the_primary() {
    let name = "shadow-full";
    let (started_tx, started) = std_mpsc::channel();
    let (gate, gate_rx) = std_mpsc::channel::<()>();
    let shadow = Gated {
        meta: meta(),
        started: Mutex::new(started_tx),
        gate: Mutex::new(gate_rx),
    };
    let (registry, executor) = serve(name, Arc::new(shadow), 1.0, 1);
    ask(&registry, &executor, name).await;
    // The worker now holds the first copy, stuck in the shadow until the gate opens.
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    let begun = Instant::now();
    for _ in 0..9 {
        assert_eq!(ask(&registry, &executor, name).await, prediction(1.0));
    }
    // One copy fits in the queue; the other eight are dropped, and the primary never waited.
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(count(name, ShadowResult::Dropped), 8);
    drop(gate);
    eventually(|| count(name, ShadowResult::Agree) == 2).await;
    assert_eq!(count(name, ShadowResult::Agree), 2);
    assert_eq!(count(name, ShadowResult::Dropped), 8);
}

#[tokio::test]
async fn a_failing_shadow_is_counted_as_error() {
    let name = "shadow-fails";
    let (registry, executor) = serve(name, Arc::new(Failing(meta())), 1.0, 64);
    for _ in 0..3 {
        assert_eq!(ask(&registry, &executor, name).await, prediction(1.0));
    }
    eventually(|| count(name, ShadowResult::Error) == 3).await;
    assert_eq!(count(name, ShadowResult::Error), 3);
}

#[test]
fn labels_compare_exactly_and_numbers_within_a_relative_tolerance() {
    let f32s = |v: Vec<f32>| {
        NamedTensor::new("y", Tensor::new(vec![v.len()], TensorData::F32(v)).unwrap())
    };
    let labels = |v: &[&str]| {
        let data = TensorData::Bytes(v.iter().map(|s| s.as_bytes().to_vec()).collect());
        NamedTensor::new("y", Tensor::new(vec![v.len()], data).unwrap())
    };
    assert!(agree(
        &f32s(vec![1.0, 1e6]),
        &f32s(vec![1.0 + 1e-7, 1e6 + 0.5])
    ));
    assert!(!agree(&f32s(vec![1.0]), &f32s(vec![1.0001])));
    assert!(!agree(&f32s(vec![1.0]), &f32s(vec![1.0, 1.0])));
    assert!(agree(&labels(&["setosa"]), &labels(&["setosa"])));
    assert!(!agree(&labels(&["setosa"]), &labels(&["virginica"])));
    assert!(!agree(&labels(&["1"]), &f32s(vec![1.0])));
}
