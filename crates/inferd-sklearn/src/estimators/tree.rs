//! scikit-learn's `Tree` (the fitted structure inside every DecisionTree, forest and
//! GradientBoosting stage) turned into inferd's [`EnsembleSpec`], and the forests built on it.
//!
//! scikit-learn evaluates these trees on float32 rows against float64 thresholds, which is
//! exactly what inferd's engine does, so answers match bit for bit per tree. Forest
//! classifiers average each tree's *normalised* class proportions, as `predict_proba` does.

use inferd_trees::{Aggregate, Ensemble, EnsembleSpec, NodeSpec, SplitRule, TreeSpec};

use super::attrs::{Labels, Obj};
use super::link::Link;
use super::{Head, Task};
use crate::error::{Error, Result};

/// The arrays of one fitted `sklearn.tree._tree.Tree`.
pub(crate) struct TreeArrays {
    left: Vec<f64>,
    right: Vec<f64>,
    feature: Vec<f64>,
    threshold: Vec<f64>,
    missing_left: Option<Vec<f64>>,
    /// `node_count × n_outputs × max_n_classes`.
    value: Vec<f64>,
    n_outputs: usize,
    max_n_classes: usize,
}

impl TreeArrays {
    /// Reads the `tree_` of a fitted DecisionTree* / ExtraTree* estimator.
    pub fn read(estimator: Obj<'_>) -> Result<TreeArrays> {
        let tree = estimator.obj("tree_")?;
        if tree.class != "Tree" {
            return Err(Error::Malformed(format!(
                "{}.tree_ is not a Tree",
                estimator.class
            )));
        }
        let nodes = tree.array("nodes")?;
        let values = tree.array("values")?;
        let n = nodes.len();
        if n == 0 || nodes.shape.len() != 1 {
            return Err(Error::Malformed("tree has no nodes".into()));
        }
        let (n_outputs, max_n_classes) = match values.shape[..] {
            [count, outputs, classes] if count == n => (outputs, classes),
            _ => {
                return Err(Error::Malformed(
                    "tree values do not match its nodes".into(),
                ))
            }
        };
        let missing_left = match nodes.dtype.field("missing_go_to_left") {
            Some(_) => Some(nodes.field_f64("missing_go_to_left")?),
            None => None,
        };
        Ok(TreeArrays {
            left: nodes.field_f64("left_child")?,
            right: nodes.field_f64("right_child")?,
            feature: nodes.field_f64("feature")?,
            threshold: nodes.field_f64("threshold")?,
            missing_left,
            value: values.to_f64()?,
            n_outputs,
            max_n_classes,
        })
    }

    fn node_values(&self, node: usize) -> &[f64] {
        let w = self.n_outputs * self.max_n_classes;
        &self.value[node * w..(node + 1) * w]
    }

    /// The tree as a spec; `leaf` turns a leaf's values (`n_outputs × max_n_classes`) into its
    /// `(target, value)` contributions.
    pub fn spec(&self, leaf: impl Fn(&[f64]) -> Vec<(usize, f64)>) -> Result<TreeSpec> {
        let n = self.left.len();
        let index = |x: f64| -> Result<usize> {
            if x >= 0.0 && (x as usize) < n {
                Ok(x as usize)
            } else {
                Err(Error::Malformed("tree child index out of range".into()))
            }
        };
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            // scikit-learn marks a leaf with left_child == -1 (TREE_LEAF).
            if self.left[i] < 0.0 {
                nodes.push(NodeSpec::Leaf {
                    values: leaf(self.node_values(i)),
                });
                continue;
            }
            let feature = self.feature[i];
            if feature < 0.0 {
                return Err(Error::Malformed("tree split on a negative feature".into()));
            }
            nodes.push(NodeSpec::Branch {
                feature: feature as usize,
                threshold: self.threshold[i],
                rule: SplitRule::Leq,
                // Before 1.3 trees had no missing-value support: NaN <= t is false, so right.
                missing_left: self.missing_left.as_ref().is_some_and(|m| m[i] != 0.0),
                left: index(self.left[i])?,
                right: index(self.right[i])?,
            });
        }
        Ok(TreeSpec { nodes })
    }
}

/// A compiled ensemble plus the link that turns its sums into scikit-learn's outputs.
pub(crate) struct EnsembleHead {
    ensemble: Ensemble,
    link: Link,
}

impl EnsembleHead {
    pub fn new(spec: &EnsembleSpec, link: Link) -> Result<Self> {
        let ensemble = Ensemble::compile(spec).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok(Self { ensemble, link })
    }
}

impl Head for EnsembleHead {
    fn n_in(&self) -> usize {
        self.ensemble.n_features()
    }

    fn n_out(&self) -> usize {
        self.link.n_out(self.ensemble.n_targets())
    }

    fn predict(&self, x: &[f64], out: &mut [f64], best: &mut [usize]) {
        // scikit-learn casts rows to float32 before walking its trees; so does inferd.
        let rows: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let n_raw = self.ensemble.n_targets();
        let mut raw = vec![0.0; best.len() * n_raw];
        self.ensemble.predict(&rows, &mut raw);
        let n_out = self.n_out();
        for (i, b) in best.iter_mut().enumerate() {
            *b = self.link.apply(
                &raw[i * n_raw..(i + 1) * n_raw],
                &mut out[i * n_out..(i + 1) * n_out],
            );
        }
    }

    fn cost_per_row_ns(&self) -> u64 {
        self.ensemble.steps_per_row().saturating_mul(2).max(50)
    }
}

/// The trees of a forest, or the single tree of a DecisionTree / ExtraTree.
fn members<'h>(est: Obj<'h>) -> Result<Vec<Obj<'h>>> {
    if est.class.starts_with("DecisionTree")
        || est.class.starts_with("ExtraTree") && !est.class.starts_with("ExtraTrees")
    {
        return Ok(vec![est]);
    }
    let items = est.items("estimators_")?;
    if items.is_empty() {
        return Err(Error::Malformed(format!("{} has no trees", est.class)));
    }
    items.iter().map(|&id| Obj::new(est.heap, id)).collect()
}

pub(crate) fn classifier(est: Obj<'_>) -> Result<Task> {
    let labels = Labels::read(est.heap, est.get("classes_")?)?;
    let n_classes = labels.len();
    let n_features = est.n_features_in()?;
    let mut trees = Vec::new();
    for member in members(est)? {
        let t = TreeArrays::read(member)?;
        if t.n_outputs != 1 {
            return Err(Error::Unsupported("multi-output classifiers".into()));
        }
        if t.max_n_classes != n_classes {
            return Err(Error::Malformed(
                "tree and classifier disagree on the classes".into(),
            ));
        }
        trees.push(t.spec(|v| {
            // predict_proba normalises each leaf; an all-zero leaf stays all zero.
            let sum: f64 = v.iter().sum();
            let norm = if sum == 0.0 { 1.0 } else { sum };
            v.iter()
                .enumerate()
                .filter(|(_, &x)| x != 0.0)
                .map(|(c, &x)| (c, x / norm))
                .collect()
        })?);
    }
    let spec = EnsembleSpec {
        trees,
        n_features,
        n_targets: n_classes,
        aggregate: Aggregate::Average,
        base_values: Vec::new(),
    };
    Ok(Task::Classifier {
        labels,
        head: Box::new(EnsembleHead::new(&spec, Link::Probabilities)?),
    })
}

pub(crate) fn regressor(est: Obj<'_>) -> Result<Task> {
    let n_features = est.n_features_in()?;
    let mut trees = Vec::new();
    let mut n_targets = None;
    for member in members(est)? {
        let t = TreeArrays::read(member)?;
        if *n_targets.get_or_insert(t.n_outputs) != t.n_outputs || t.n_outputs == 0 {
            return Err(Error::Malformed(
                "trees disagree on the number of outputs".into(),
            ));
        }
        let width = t.max_n_classes;
        trees.push(t.spec(|v| {
            (0..v.len() / width.max(1))
                .map(|o| (o, v[o * width]))
                .collect()
        })?);
    }
    let spec = EnsembleSpec {
        trees,
        n_features,
        n_targets: n_targets.unwrap_or(1),
        aggregate: Aggregate::Average,
        base_values: Vec::new(),
    };
    Ok(Task::Regressor {
        head: Box::new(EnsembleHead::new(&spec, Link::Identity)?),
    })
}
