//! inferd's tree engine. Every source of tree ensembles (ONNX-ML TreeEnsemble operators,
//! scikit-learn pickles, XGBoost JSON, LightGBM text) describes its trees as an
//! [`spec::EnsembleSpec`]; [`Ensemble::compile`] validates that and turns it into a flat
//! layout, and [`Ensemble::predict`] evaluates it.
//!
//! Semantics, identical for every layout and thread count: for each row,
//! `out[t] = base_values[t] + aggregate(leaf values for target t)`, where a branch compares
//! exactly `(x as f64) <rule> threshold` and a NaN feature goes where `missing_left` says.
//! `Average` divides the sum by the number of trees (as ONNX-ML does); `Min`/`Max` of a target
//! no leaf contributed to is 0.
#![forbid(unsafe_code)]

mod compile;
mod layout;
mod predict;
pub mod spec;

pub use spec::{Aggregate, EnsembleSpec, NodeSpec, SplitRule, TreeSpec};

/// Why a spec cannot be compiled. Messages name trees and nodes by index, never a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree {tree} has no nodes")]
    EmptyTree { tree: usize },
    #[error("tree {tree}, node {node}: child {child} does not exist")]
    NodeOutOfRange {
        tree: usize,
        node: usize,
        child: usize,
    },
    #[error("tree {tree} contains a cycle")]
    Cycle { tree: usize },
    #[error("tree {tree}, node {node}: feature {feature} out of range (model has {n_features})")]
    FeatureOutOfRange {
        tree: usize,
        node: usize,
        feature: usize,
        n_features: usize,
    },
    #[error("tree {tree}, node {node}: target {target} out of range (model has {n_targets})")]
    TargetOutOfRange {
        tree: usize,
        node: usize,
        target: usize,
        n_targets: usize,
    },
    #[error("{got} base values given for {n_targets} targets")]
    BaseValues { got: usize, n_targets: usize },
    #[error("an ensemble needs at least one target")]
    NoTargets,
    #[error("ensemble too large for the tree engine")]
    TooLarge,
}

/// A compiled, immutable ensemble; cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Ensemble {
    nodes: Vec<layout::Node>,
    trees: Vec<layout::Tree>,
    /// Target of each leaf value; empty when there is a single target.
    leaf_targets: Vec<u32>,
    leaf_values: Vec<f64>,
    /// Per node: where a leaf's values start in `leaf_values` (0 for branches). Kept out of
    /// the nodes so that walks touch 12 bytes per node.
    leaf_start: Vec<u32>,
    /// Whether any node sends NaN to its implicit child; without, walks skip the NaN test.
    has_missing: bool,
    n_features: usize,
    n_targets: usize,
    aggregate: Aggregate,
    base_values: Vec<f64>,
    max_threads: usize,
}

/// Threads [`Ensemble::predict`] may use unless told otherwise.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Ensemble {
    /// Validates `spec` (indices in range, no cycles, features and targets in range) and
    /// compiles it.
    pub fn compile(spec: &EnsembleSpec) -> Result<Ensemble, TreeError> {
        compile::compile(spec)
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Caps the threads [`Ensemble::predict`] uses (default: the machine's parallelism).
    /// Threads are only started for batches large enough to repay them.
    pub fn set_max_threads(&mut self, threads: usize) {
        self.max_threads = threads.max(1);
    }

    pub fn max_threads(&self) -> usize {
        self.max_threads
    }

    /// Bytes held by the compiled model, for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.nodes.capacity() * size_of::<layout::Node>()
            + self.trees.capacity() * size_of::<layout::Tree>()
            + self.leaf_targets.capacity() * 4
            + self.leaf_values.capacity() * 8
            + self.leaf_start.capacity() * 4
            + self.base_values.capacity() * 8
    }

    /// Sum over trees of their depth: the compiled steps one row costs.
    pub fn steps_per_row(&self) -> u64 {
        self.trees.iter().map(|t| t.depth as u64 + 1).sum()
    }

    /// Evaluates `rows` (row-major, `n_rows × n_features`, NaN = missing) into `out`
    /// (`n_rows × n_targets`, overwritten), using up to [`Ensemble::max_threads`] threads.
    ///
    /// # Panics
    /// If `rows.len()` is not a multiple of `n_features` or `out` does not hold exactly
    /// `n_targets` values per row: callers check shapes when they build their inputs.
    pub fn predict(&self, rows: &[f32], out: &mut [f64]) {
        self.predict_with_threads(rows, out, self.max_threads);
    }

    /// [`Ensemble::predict`] with an explicit thread cap (1 = the calling thread only).
    pub fn predict_with_threads(&self, rows: &[f32], out: &mut [f64], threads: usize) {
        predict::predict(self, rows, out, threads.max(1));
    }
}

#[cfg(test)]
mod tests;
