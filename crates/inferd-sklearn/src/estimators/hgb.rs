//! HistGradientBoostingClassifier / HistGradientBoostingRegressor, walked in f64 on their own
//! predictor nodes.
//!
//! scikit-learn predicts these on float64 rows (not float32 like the other trees), comparing
//! `x <= num_threshold` and sending NaN where `missing_go_to_left` says. inferd's engine
//! compares float32 inputs, which is exact for a model fed directly but not after a scaler in a
//! Pipeline, so these small trees keep a plain f64 walk of their own.

use super::attrs::{Labels, Obj};
use super::link::Link;
use super::{Head, Task};
use crate::error::{Error, Result};

struct Node {
    feature: usize,
    threshold: f64,
    missing_left: bool,
    left: usize,
    right: usize,
    leaf: bool,
    value: f64,
}

struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn read(predictor: Obj<'_>, n_features: usize) -> Result<Tree> {
        if predictor.class != "TreePredictor" {
            return Err(Error::Malformed(
                "HistGradientBoosting predictor is not a TreePredictor".into(),
            ));
        }
        let a = predictor.array("nodes")?;
        let col = |name: &str| a.field_f64(name);
        let (value, feature, threshold) =
            (col("value")?, col("feature_idx")?, col("num_threshold")?);
        let (missing, left, right, leaf) = (
            col("missing_go_to_left")?,
            col("left")?,
            col("right")?,
            col("is_leaf")?,
        );
        let categorical = a
            .dtype
            .field("is_categorical")
            .map(|_| col("is_categorical"))
            .transpose()?;
        let n = value.len();
        if n == 0 {
            return Err(Error::Malformed(
                "HistGradientBoosting tree has no nodes".into(),
            ));
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let is_leaf = leaf[i] != 0.0;
            if !is_leaf && categorical.as_ref().is_some_and(|c| c[i] != 0.0) {
                return Err(Error::Unsupported(
                    "HistGradientBoosting with categorical features".into(),
                ));
            }
            // Children always come after their parent in a TreePredictor; requiring it here
            // makes every walk end.
            let child = |x: f64| {
                if is_leaf {
                    Ok(0)
                } else if x > i as f64 && x < n as f64 {
                    Ok(x as usize)
                } else {
                    Err(Error::Malformed(
                        "HistGradientBoosting child index out of order".into(),
                    ))
                }
            };
            let f = feature[i];
            let known = f >= 0.0 && (f as usize) < n_features;
            if !is_leaf && !known {
                return Err(Error::Malformed(
                    "HistGradientBoosting split on an unknown feature".into(),
                ));
            }
            nodes.push(Node {
                feature: f.max(0.0) as usize,
                threshold: threshold[i],
                missing_left: missing[i] != 0.0,
                left: child(left[i])?,
                right: child(right[i])?,
                leaf: is_leaf,
                value: value[i],
            });
        }
        Ok(Tree { nodes })
    }

    fn eval(&self, row: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            let n = &self.nodes[i];
            if n.leaf {
                return n.value;
            }
            let x = row[n.feature];
            let go_left = if x.is_nan() {
                n.missing_left
            } else {
                x <= n.threshold
            };
            i = if go_left { n.left } else { n.right };
        }
    }
}

struct HgbHead {
    n_features: usize,
    baseline: Vec<f64>,
    /// `iterations × trees_per_iteration`, row-major.
    trees: Vec<Tree>,
    link: Link,
}

impl Head for HgbHead {
    fn n_in(&self) -> usize {
        self.n_features
    }

    fn n_out(&self) -> usize {
        self.link.n_out(self.baseline.len())
    }

    fn predict(&self, x: &[f64], out: &mut [f64], best: &mut [usize]) {
        let k = self.baseline.len();
        let n_out = self.n_out();
        let mut raw = vec![0.0; k];
        for (r, b) in best.iter_mut().enumerate() {
            let row = &x[r * self.n_features..(r + 1) * self.n_features];
            raw.copy_from_slice(&self.baseline);
            for (t, tree) in self.trees.iter().enumerate() {
                raw[t % k] += tree.eval(row);
            }
            *b = self.link.apply(&raw, &mut out[r * n_out..(r + 1) * n_out]);
        }
    }

    fn cost_per_row_ns(&self) -> u64 {
        (self.trees.len() as u64 * 20).max(50)
    }
}

fn head(est: Obj<'_>, link: Link, k: usize) -> Result<HgbHead> {
    if est.opt("_preprocessor").is_some() {
        return Err(Error::Unsupported(
            "HistGradientBoosting with categorical features".into(),
        ));
    }
    let n_features = est.n_features_in()?;
    let baseline = est.f64s("_baseline_prediction")?;
    if baseline.len() != k {
        return Err(Error::Malformed(
            "HistGradientBoosting baseline has the wrong size".into(),
        ));
    }
    let mut trees = Vec::new();
    for &iteration in est.items("_predictors")? {
        let Ok(per_class) = (match est.heap.get(iteration) {
            crate::pickle::value::Value::List(v) => Ok(v),
            _ => Err(()),
        }) else {
            return Err(Error::Malformed(
                "HistGradientBoosting _predictors is not a list of lists".into(),
            ));
        };
        if per_class.len() != k {
            return Err(Error::Malformed(
                "HistGradientBoosting iteration has the wrong tree count".into(),
            ));
        }
        for &p in per_class {
            trees.push(Tree::read(Obj::new(est.heap, p)?, n_features)?);
        }
    }
    Ok(HgbHead {
        n_features,
        baseline,
        trees,
        link,
    })
}

pub(crate) fn classifier(est: Obj<'_>) -> Result<Task> {
    let labels = Labels::read(est.heap, est.get("classes_")?)?;
    let (k, link) = if labels.len() == 2 {
        (1, Link::Binary { scale: 1.0 })
    } else {
        (labels.len(), Link::Softmax)
    };
    Ok(Task::Classifier {
        labels,
        head: Box::new(head(est, link, k)?),
    })
}

pub(crate) fn regressor(est: Obj<'_>) -> Result<Task> {
    let link = match est.str_or("loss", "squared_error") {
        "squared_error" | "absolute_error" | "quantile" => Link::Identity,
        "poisson" | "gamma" => Link::Exp,
        other => {
            return Err(Error::Unsupported(format!(
                "HistGradientBoostingRegressor(loss='{other}')"
            )))
        }
    };
    Ok(Task::Regressor {
        head: Box::new(head(est, link, 1)?),
    })
}
