//! Shadow traffic: a share of a model's requests is copied to another version, off the request
//! path, and its answers are compared with the primary's but never returned.
//!
//! The copy goes through a bounded queue to one worker thread per shadow; when the queue is
//! full the copy is dropped and counted, so a slow shadow can never slow the primary down.

use std::sync::mpsc;
use std::sync::Arc;

use crate::metrics::ShadowOutcome;
use crate::registry::LoadedModel;
use crate::routing::random_u64;
use crate::tensor::{NamedTensor, TensorData};

struct Job {
    inputs: Vec<NamedTensor>,
    primary: Option<NamedTensor>,
}

/// A shadow of one model: where copies go, and how many.
pub struct ShadowTap {
    model: String,
    shadow_version: u64,
    /// Requests sampled: `share` scaled to the whole `u64` range, compared with a random draw.
    threshold: u64,
    sender: mpsc::SyncSender<Job>,
}

impl ShadowTap {
    /// Starts the worker for `target` (the shadow version). `share` is in [0, 1].
    pub fn start(target: Arc<LoadedModel>, share: f64, max_queue: usize) -> Arc<Self> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(max_queue.max(1));
        let model = target.name.clone();
        let shadow_version = target.version;
        let threshold = if share >= 1.0 {
            u64::MAX
        } else {
            (share.max(0.0) * u64::MAX as f64) as u64
        };
        let spawned = std::thread::Builder::new()
            .name(format!("inferd-shadow-{model}"))
            .spawn(move || {
                // Ends when the tap (the only sender) is dropped, i.e. when the shadow is unconfigured.
                while let Ok(job) = receiver.recv() {
                    let result = compare(&target, job);
                    ShadowOutcome {
                        model: &target.name,
                        shadow_version: target.version,
                        result,
                    }
                    .emit();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the shadow worker; shadow copies will be dropped");
        }
        Arc::new(Self {
            model,
            shadow_version,
            threshold,
            sender,
        })
    }

    /// Whether this request is copied.
    pub fn sample(&self) -> bool {
        self.threshold == u64::MAX || random_u64() < self.threshold
    }

    /// Hands a sampled request's inputs and the primary's prediction to the worker, or drops
    /// them (counted) when the queue is full. Never blocks.
    pub fn offer(&self, inputs: Vec<NamedTensor>, primary: Option<NamedTensor>) {
        if self.sender.try_send(Job { inputs, primary }).is_err() {
            ShadowOutcome {
                model: &self.model,
                shadow_version: self.shadow_version,
                result: "dropped",
            }
            .emit();
        }
    }
}

/// Runs the shadow and compares its prediction with the primary's: labels exactly, numbers
/// within 1e-6 relative.
fn compare(target: &LoadedModel, job: Job) -> &'static str {
    let outputs = match target.model.infer(job.inputs) {
        Ok(o) => o,
        Err(_) => return "error",
    };
    let index = target.model.metadata().prediction_output;
    match (outputs.get(index), job.primary) {
        (Some(shadow), Some(primary)) if same(shadow.tensor.data(), primary.tensor.data()) => {
            "agree"
        }
        _ => "disagree",
    }
}

fn same(a: &TensorData, b: &TensorData) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-12);
    match (a, b) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(*p as f64, *q as f64))
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(*p, *q))
        }
        _ => a == b,
    }
}
