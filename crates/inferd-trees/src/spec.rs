//! The interchange form of a tree ensemble: what a loader produces and the engine compiles.
//! Plain data, validated by the engine at compile time (indices in range, no cycles).

/// How a branch compares a feature value `x` with its threshold `t`; true goes to `left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitRule {
    /// `x <= t` (scikit-learn, LightGBM, ONNX BRANCH_LEQ)
    Leq,
    /// `x < t` (XGBoost, ONNX BRANCH_LT)
    Lt,
    /// `x >= t` (ONNX BRANCH_GTE)
    Gte,
    /// `x > t` (ONNX BRANCH_GT)
    Gt,
    /// `x == t` (ONNX BRANCH_EQ)
    Eq,
    /// `x != t` (ONNX BRANCH_NEQ)
    Neq,
}

/// One node of a tree. Nodes refer to each other by index into [`TreeSpec::nodes`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeSpec {
    Branch {
        feature: usize,
        /// Kept in f64 so that sources with double thresholds lose nothing before compiling.
        threshold: f64,
        rule: SplitRule,
        /// Where a missing value (NaN) goes.
        missing_left: bool,
        left: usize,
        right: usize,
    },
    /// A leaf's contributions as `(target, value)` pairs; most leaves feed one target.
    Leaf { values: Vec<(usize, f64)> },
}

/// One tree; the root is node 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TreeSpec {
    pub nodes: Vec<NodeSpec>,
}

/// How tree outputs combine per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// A whole ensemble: `out[target] = base_values[target] + aggregate(trees' leaf values)`.
/// Post-transforms (softmax, logistic) and class labels belong to the caller, not the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleSpec {
    pub trees: Vec<TreeSpec>,
    pub n_features: usize,
    pub n_targets: usize,
    pub aggregate: Aggregate,
    /// One per target, or empty for zeros.
    pub base_values: Vec<f64>,
}
