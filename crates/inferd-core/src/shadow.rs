//! Shadow traffic: a share of a model's requests is copied to another version, off the request
//! path, and its answers are compared with the primary's but never returned.
//!
//! A [`ShadowTap`] rides on the handles that requests naming no version resolve to (see
//! [`crate::registry::ModelVersions::set_shadow`]); after the primary has answered, a sampled
//! request's inputs and the primary's prediction go into a bounded queue. One worker per tap
//! drains it on a thread of its own, running the shadow version through
//! [`LoadedModel::infer`] on the executor like any request. When the queue is full the copy is
//! dropped and counted, so a slow or broken shadow never delays the primary.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::executor::Executor;
use crate::metrics::{ShadowOutcome, ShadowResult};
use crate::registry::LoadedModel;
use crate::routing::random_u64;
use crate::tensor::{NamedTensor, TensorData};

/// Relative tolerance when comparing floating-point predictions.
const FLOAT_TOLERANCE: f64 = 1e-6;

struct Job {
    inputs: Vec<NamedTensor>,
    primary: Option<NamedTensor>,
}

/// A shadow of one model: which version gets the copies, and how many.
pub struct ShadowTap {
    model: String,
    shadow_version: u64,
    /// `share` scaled to the whole `u64` range, compared with a random draw per request.
    threshold: u64,
    sender: mpsc::Sender<Job>,
}

impl ShadowTap {
    /// Starts the worker that runs `target` (the shadow version) on `executor`. `share` is the
    /// sampled fraction in [0, 1]; at most `max_queue` copies wait for the worker.
    pub fn start(
        target: Arc<LoadedModel>,
        executor: Executor,
        share: f64,
        max_queue: usize,
    ) -> Arc<Self> {
        let (sender, receiver) = mpsc::channel(max_queue.max(1));
        let model = target.name.clone();
        let shadow_version = target.version;
        let threshold = if share >= 1.0 {
            u64::MAX
        } else {
            (share.max(0.0) * u64::MAX as f64) as u64
        };
        // A thread of its own (not a task on the server's runtime): a shadow cheap enough to
        // run inline then runs here, never on a worker that serves requests.
        let spawned = std::thread::Builder::new()
            .name(format!("inferd-shadow-{model}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(work(target, executor, receiver)),
                    Err(e) => tracing::error!(error = %e, "cannot start the shadow worker"),
                }
            });
        if let Err(e) = spawned {
            // The receiver is gone with the closure, so every copy is dropped and counted.
            tracing::error!(error = %e, "cannot start the shadow worker");
        }
        Arc::new(Self {
            model,
            shadow_version,
            threshold,
            sender,
        })
    }

    /// The version that receives the copies.
    pub fn shadow_version(&self) -> u64 {
        self.shadow_version
    }

    /// Whether this request is copied.
    pub fn sample(&self) -> bool {
        self.threshold == u64::MAX || random_u64() < self.threshold
    }

    /// Hands a sampled request's inputs and the primary's prediction to the worker, or drops
    /// them (counted) when the queue is full. Never blocks.
    pub fn offer(&self, inputs: Vec<NamedTensor>, primary: Option<NamedTensor>) {
        if self.sender.try_send(Job { inputs, primary }).is_err() {
            self.emit(ShadowResult::Dropped);
        }
    }

    fn emit(&self, result: ShadowResult) {
        ShadowOutcome {
            model: &self.model,
            shadow_version: self.shadow_version,
            result,
        }
        .emit();
    }
}

/// Ends when every tap handle (the senders) is gone, i.e. once no published snapshot and no
/// in-flight request refers to the tap any more.
async fn work(target: Arc<LoadedModel>, executor: Executor, mut receiver: mpsc::Receiver<Job>) {
    while let Some(job) = receiver.recv().await {
        let result = match target.infer(&executor, job.inputs).await {
            Ok(outputs) => {
                let index = target.model.metadata().prediction_output;
                match (outputs.get(index), &job.primary) {
                    (Some(shadow), Some(primary)) if agree(shadow, primary) => ShadowResult::Agree,
                    (Some(_), Some(_)) => ShadowResult::Disagree,
                    _ => ShadowResult::Error,
                }
            }
            Err(_) => ShadowResult::Error,
        };
        ShadowOutcome {
            model: &target.name,
            shadow_version: target.version,
            result,
        }
        .emit();
    }
}

/// Labels and integers exactly; floating-point numbers within [`FLOAT_TOLERANCE`] relative.
/// Shapes are not compared: `[n]` and `[n, 1]` carry the same predictions.
fn agree(a: &NamedTensor, b: &NamedTensor) -> bool {
    let close = |x: f64, y: f64| x == y || (x - y).abs() <= FLOAT_TOLERANCE * x.abs().max(y.abs());
    match (a.tensor.data(), b.tensor.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(*p as f64, *q as f64))
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(*p, *q))
        }
        (x, y) => x == y,
    }
}

#[cfg(test)]
#[path = "shadow_tests.rs"]
mod tests;
