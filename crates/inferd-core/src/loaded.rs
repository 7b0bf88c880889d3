//! One loaded model version and how a request runs on it: inline, on an inference thread, or
//! in a batch, within its deadline. Re-exported as [`crate::registry::LoadedModel`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batching::Batcher;
use crate::error::{Error, ErrorKind, Result};
use crate::executor::{Executor, INLINE_BUDGET_NS};
use crate::metrics::{ModelMetrics, RejectReason};
use crate::model::Model;
use crate::repository::config::BatchingConfig;
use crate::shadow::ShadowTap;
use crate::tensor::NamedTensor;

/// One version of one model, loaded and ready.
///
/// Build it with [`LoadedModel::new`] (then [`LoadedModel::with_batching`] where the model's
/// config asks for batching); the private fields hold its batching queue and metric series.
pub struct LoadedModel {
    pub name: String,
    pub version: u64,
    pub model: Arc<dyn Model>,
    /// Shared with the [`LoadedModel::shadowed`] handles on this version.
    pub(crate) batcher: Option<Arc<Batcher>>,
    metrics: ModelMetrics,
    /// Only on the handles that requests naming no version resolve to.
    shadow: Option<Arc<ShadowTap>>,
}

/// Per-request options for [`LoadedModel::infer_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InferOptions {
    /// Past this instant the request is answered [`crate::ErrorKind::DeadlineExceeded`],
    /// whether it is still queued or being computed, and queued work for it is skipped.
    pub deadline: Option<Instant>,
}

impl InferOptions {
    /// A deadline `timeout` from now.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            deadline: Instant::now().checked_add(timeout),
        }
    }
}

impl LoadedModel {
    pub fn new(name: impl Into<String>, version: u64, model: Arc<dyn Model>) -> Self {
        let name = name.into();
        let metrics = ModelMetrics::new(&name, version);
        Self {
            name,
            version,
            model,
            batcher: None,
            metrics,
            shadow: None,
        }
    }

    /// Coalesces concurrent requests into batched model calls, as `config` says. Models whose
    /// inputs declare no batch axis keep running unbatched (with a warning).
    pub fn with_batching(mut self, config: &BatchingConfig, executor: &Executor) -> Self {
        let row_ns = self.model.cost_per_row_ns();
        if row_ns <= INLINE_BUDGET_NS {
            // Measured: 0.66x the throughput on a 300-tree forest (docs/benchmarks.md). The
            // configuration is still obeyed; the operator is told what it will likely cost.
            tracing::warn!(
                model = %self.name,
                version = self.version,
                estimated_row_us = row_ns as f64 / 1e3,
                "batching is configured for a model whose row is cheap enough to run inline; \
                 batching will likely lower its throughput (see docs/model-repository.md)"
            );
        }
        self.batcher = Batcher::new(
            Arc::clone(&self.model),
            config,
            executor,
            self.metrics.clone(),
        )
        .map(Arc::new);
        self
    }

    /// Whether requests to this version are batched.
    pub fn is_batched(&self) -> bool {
        self.batcher.is_some()
    }

    /// Refuses at once ([`ErrorKind::Overloaded`], counted as a `queue_full` rejection) when
    /// this model's queue is full, so that a front end can shed a request before reading and
    /// parsing its body: under overload, refusals must cost next to nothing. A hint: a request
    /// admitted here may still be refused by [`LoadedModel::infer`] a moment later.
    /// Requests to an unbatched model whose single row would run inline are always admitted.
    pub fn admit(&self, executor: &Executor) -> Result<()> {
        let full = match &self.batcher {
            Some(batcher) => batcher.is_full(),
            None => self.model.cost_per_row_ns() > INLINE_BUDGET_NS && executor.is_saturated(),
        };
        if full {
            self.metrics.rejected(RejectReason::QueueFull);
            return Err(Error::new(
                ErrorKind::Overloaded,
                "the model's queue is full; retry later",
            ));
        }
        Ok(())
    }

    /// Runs this model on `inputs` the way the server should: inline when cheap, on the
    /// inference threads otherwise (and, where configured, batched with concurrent requests).
    /// Every front end calls this rather than `Model::infer`, so that policy lives in one place.
    pub async fn infer(
        &self,
        executor: &Executor,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>> {
        self.infer_with(executor, inputs, InferOptions::default())
            .await
    }

    /// Another handle on this version (same model, batching queue and metric series) that
    /// also offers a share of its requests to `tap`. The registry hands it out to requests that
    /// name no version; requests that name one get the plain handle and are never shadowed.
    pub fn shadowed(&self, tap: Arc<ShadowTap>) -> Self {
        Self {
            name: self.name.clone(),
            version: self.version,
            model: Arc::clone(&self.model),
            batcher: self.batcher.clone(),
            metrics: self.metrics.clone(),
            shadow: Some(tap),
        }
    }

    /// The shadow this handle copies requests to, if any.
    pub fn shadow(&self) -> Option<&ShadowTap> {
        self.shadow.as_deref()
    }

    /// [`LoadedModel::infer`] with per-request options (a deadline). Dropping the returned
    /// future (the client went away) withdraws the request: queued work for it is skipped.
    pub async fn infer_with(
        &self,
        executor: &Executor,
        inputs: Vec<NamedTensor>,
        options: InferOptions,
    ) -> Result<Vec<NamedTensor>> {
        // Without a shadow this is one branch; inputs are cloned only for the sampled share.
        let Some(tap) = self.shadow.as_deref().filter(|t| t.sample()) else {
            return self.infer_primary(executor, inputs, options).await;
        };
        let copy = inputs.clone();
        let result = self.infer_primary(executor, inputs, options).await;
        // Offered only once the primary has answered, and never awaited: the caller's answer
        // does not wait for the shadow.
        if let Ok(outputs) = &result {
            let prediction = outputs
                .get(self.model.metadata().prediction_output)
                .cloned();
            tap.offer(copy, prediction);
        }
        result
    }

    async fn infer_primary(
        &self,
        executor: &Executor,
        inputs: Vec<NamedTensor>,
        options: InferOptions,
    ) -> Result<Vec<NamedTensor>> {
        if let Some(batcher) = &self.batcher {
            // Requests without a batch axis on every input cannot be stacked; they run alone.
            if let Some(rows) = Batcher::accepts(&inputs) {
                return batcher.infer(inputs, rows, options.deadline).await;
            }
        }
        let rows = inputs.first().map(|t| t.tensor.rows()).unwrap_or(1).max(1) as u64;
        let cost = self.model.cost_per_row_ns().saturating_mul(rows);
        let model = Arc::clone(&self.model);
        let metrics = self.metrics.clone();
        let work = move || {
            let started = Instant::now();
            let result = model.infer(inputs);
            metrics.ran(1, started.elapsed());
            result
        };
        executor
            .run_inner(cost, options.deadline, Some(&self.metrics), work)
            .await
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoadedModel({}:{})", self.name, self.version)
    }
}
