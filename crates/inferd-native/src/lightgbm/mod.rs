//! LightGBM's text model format (`save_model("model.txt")`, versions v2 to v4) read into an
//! [`EnsembleSpec`], reproducing LightGBM's `NumericalDecision` exactly.
//!
//! A numerical branch (`decision_type` bit 0 clear) compares `x <= threshold` (a double) and
//! routes missing values by the missing type in bits 2–3:
//! - None: NaN is replaced by 0.0 before the comparison;
//! - Zero: NaN and zeros go the default way (bit 1, default_left);
//! - NaN: NaN goes the default way.
//!
//! "Zero" means `|x| <= kZeroThreshold` (1e-35f), and LightGBM's predictor drops such values
//! from dense rows before the trees see them, so they compare as exactly 0.0. Both are
//! expressed with ordinary `Leq`/`Lt` branches (adding at most two nodes per branch).
//! Categorical branches (bit 0 set) are refused at load time, naming tree and node.
//!
//! Leaves already include the shrinkage, and the first trees the initial score; tree `i`
//! feeds class `i % num_tree_per_iteration`; `average_output` (random forest mode) divides
//! the sum by the number of iterations.

use std::collections::HashMap;

use inferd_trees::{Aggregate, EnsembleSpec, NodeSpec, SplitRule, TreeSpec};

use crate::model::{check_classes, Link, Parsed, Task};
use crate::xgboost::clip;
use crate::NativeError;

/// LightGBM's `kZeroThreshold` (`1e-35f` widened to double).
const ZERO: f64 = 1e-35f32 as f64;

const CATEGORICAL: u32 = 1;
const DEFAULT_LEFT: u32 = 2;

/// Key/value lines of one section (the header, or one tree).
struct Section<'a> {
    what: String,
    values: HashMap<&'a str, &'a str>,
    flags: Vec<&'a str>,
}

impl<'a> Section<'a> {
    fn get(&self, key: &str) -> Result<&'a str, NativeError> {
        self.values
            .get(key)
            .copied()
            .ok_or_else(|| NativeError::Malformed(format!("{}: no '{key}' line", self.what)))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, NativeError> {
        let v = self.get(key)?;
        v.trim().parse().map_err(|_| {
            NativeError::Malformed(format!(
                "{}: {key} '{}' is not a valid number",
                self.what,
                clip(v)
            ))
        })
    }

    /// A space-separated array of exactly `len` numbers (an absent line when `len` is 0 is
    /// an empty array: one-leaf trees have no branch arrays).
    fn array<T: std::str::FromStr>(&self, key: &str, len: usize) -> Result<Vec<T>, NativeError> {
        let Some(v) = self.values.get(key) else {
            return if len == 0 {
                Ok(Vec::new())
            } else {
                Err(NativeError::Malformed(format!(
                    "{}: no '{key}' line",
                    self.what
                )))
            };
        };
        let items = v
            .split_ascii_whitespace()
            .map(|s| {
                s.parse().map_err(|_| {
                    NativeError::Malformed(format!(
                        "{}: {key} has an invalid value '{}'",
                        self.what,
                        clip(s)
                    ))
                })
            })
            .collect::<Result<Vec<T>, _>>()?;
        if items.len() != len {
            return Err(NativeError::Invalid(format!(
                "{}: {key} has {} values, expected {len}",
                self.what,
                items.len()
            )));
        }
        Ok(items)
    }
}

fn section<'a>(what: String, lines: &[&'a str]) -> Section<'a> {
    let mut values = HashMap::new();
    let mut flags = Vec::new();
    for line in lines {
        match line.split_once('=') {
            Some((k, v)) => {
                values.insert(k.trim(), v);
            }
            None if !line.trim().is_empty() => flags.push(line.trim()),
            None => {}
        }
    }
    Section {
        what,
        values,
        flags,
    }
}

/// Splits the file into the header and one line block per tree; refuses a file cut short
/// before `end of trees`.
fn sections(text: &str) -> Result<(Section<'_>, Vec<Section<'_>>), NativeError> {
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() != Some("tree") {
        return Err(NativeError::Malformed(
            "not a LightGBM text model (first line is not 'tree')".into(),
        ));
    }
    let mut header = Vec::new();
    let mut trees: Vec<(String, Vec<&str>)> = Vec::new();
    let mut ended = false;
    for line in lines {
        if line == "end of trees" {
            ended = true;
            break;
        }
        if let Some(n) = line.strip_prefix("Tree=") {
            let expected = trees.len().to_string();
            if n.trim() != expected {
                return Err(NativeError::Invalid(format!(
                    "tree '{}' found where tree {expected} was expected",
                    clip(n)
                )));
            }
            trees.push((format!("tree {expected}"), Vec::new()));
        } else if let Some((_, block)) = trees.last_mut() {
            block.push(line);
        } else {
            header.push(line);
        }
    }
    if !ended {
        return Err(NativeError::Malformed(
            "truncated: no 'end of trees' line".into(),
        ));
    }
    let header = section("header".into(), &header);
    let trees = trees
        .into_iter()
        .map(|(what, lines)| section(what, &lines))
        .collect();
    Ok((header, trees))
}

/// `objective=binary sigmoid:1`, `multiclass num_class:3`, `regression sqrt`...
fn objective(line: &str, n_classes: usize) -> Result<Task, NativeError> {
    let mut tokens = line.split_ascii_whitespace();
    let name = tokens.next().unwrap_or("");
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for t in tokens {
        if let Some(v) = t.strip_prefix("sigmoid:") {
            sigmoid = v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    NativeError::Malformed(format!("objective: sigmoid '{}' is not valid", clip(v)))
                })?;
        } else if t == "sqrt" {
            sqrt = true;
        }
    }
    let multi = |task: Task| {
        if n_classes < 2 {
            Err(NativeError::Invalid(format!(
                "objective {name} with num_class {n_classes}"
            )))
        } else {
            Ok(task)
        }
    };
    Ok(match name {
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" => {
            Task::Regression(if sqrt {
                Link::SignedSquare
            } else {
                Link::Identity
            })
        }
        "lambdarank" | "rank_xendcg" => Task::Regression(Link::Identity),
        "poisson" | "gamma" | "tweedie" => Task::Regression(Link::Exp),
        "cross_entropy" => Task::Regression(Link::Sigmoid(1.0)),
        "binary" => Task::Binary { scale: sigmoid },
        "multiclass" => multi(Task::Softmax { n_classes })?,
        "multiclassova" => multi(Task::OneVsAll {
            n_classes,
            scale: sigmoid,
        })?,
        other => {
            return Err(NativeError::Unsupported(format!(
                "objective '{}' (supported: regression and its variants, poisson, gamma, \
                 tweedie, cross_entropy, binary, multiclass, multiclassova, lambdarank)",
                clip(other)
            )))
        }
    })
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, NativeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| NativeError::Malformed("not a LightGBM text model (not UTF-8)".into()))?;
    let (header, trees) = sections(text)?;
    match header.get("version")? {
        "v2" | "v3" | "v4" => {}
        other => {
            return Err(NativeError::Unsupported(format!(
                "file version '{}' (v2, v3 and v4 are supported)",
                clip(other)
            )))
        }
    }
    let num_class: usize = header.number("num_class")?;
    let per_iteration: usize = header.number("num_tree_per_iteration")?;
    let max_feature_idx: i64 = header.number("max_feature_idx")?;
    let n_features = max_feature_idx
        .checked_add(1)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| NativeError::Invalid(format!("max_feature_idx {max_feature_idx}")))?;
    check_classes(num_class)?;
    let task = objective(header.get("objective")?, num_class)?;
    let n_targets = match task {
        Task::Softmax { n_classes } | Task::OneVsAll { n_classes, .. } => n_classes,
        _ => 1,
    };
    if per_iteration != n_targets {
        return Err(NativeError::Invalid(format!(
            "num_tree_per_iteration {per_iteration} for {n_targets} outputs"
        )));
    }
    if per_iteration == 0 || trees.len() % per_iteration != 0 {
        return Err(NativeError::Invalid(format!(
            "{} trees is not a whole number of iterations of {per_iteration}",
            trees.len()
        )));
    }
    let divide_by = if header.flags.contains(&"average_output") {
        (trees.len() / per_iteration).max(1) as f64
    } else {
        1.0
    };
    let trees = trees
        .iter()
        .enumerate()
        .map(|(i, t)| convert_tree(i, t, i % per_iteration))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        spec: EnsembleSpec {
            trees,
            n_features,
            n_targets,
            aggregate: Aggregate::Sum,
            base_values: Vec::new(),
        },
        task,
        divide_by,
        platform: "lightgbm",
    })
}

fn convert_tree(index: usize, t: &Section<'_>, class: usize) -> Result<TreeSpec, NativeError> {
    let num_leaves: usize = t.number("num_leaves")?;
    if num_leaves == 0 {
        return Err(NativeError::Invalid(format!("tree {index}: no leaves")));
    }
    if t.values.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(NativeError::Unsupported(format!(
            "tree {index}: linear trees"
        )));
    }
    let leaf_value: Vec<f64> = t.array("leaf_value", num_leaves)?;
    let n_branches = num_leaves - 1;
    let split_feature: Vec<i64> = t.array("split_feature", n_branches)?;
    let threshold: Vec<f64> = t.array("threshold", n_branches)?;
    let decision_type: Vec<u32> = t.array("decision_type", n_branches)?;
    let left_child: Vec<i64> = t.array("left_child", n_branches)?;
    let right_child: Vec<i64> = t.array("right_child", n_branches)?;

    // Branches keep their LightGBM index; leaf `k` is node `n_branches + k`; extra nodes for
    // missing-value routing go after both.
    let mut nodes: Vec<NodeSpec> = Vec::with_capacity(n_branches + num_leaves);
    let target = |node: usize, c: i64| -> Result<usize, NativeError> {
        let found = if c >= 0 {
            usize::try_from(c).ok().filter(|&c| c < n_branches)
        } else {
            usize::try_from(!c)
                .ok()
                .filter(|&k| k < num_leaves)
                .map(|k| n_branches + k)
        };
        found.ok_or_else(|| {
            NativeError::Invalid(format!(
                "tree {index}, node {node}: child {c} does not exist"
            ))
        })
    };
    let mut extra = Vec::new();
    for node in 0..n_branches {
        let dt = decision_type[node];
        if dt & CATEGORICAL != 0 {
            return Err(NativeError::Unsupported(format!(
                "tree {index}, node {node}: categorical split (LightGBM categorical features \
                 are not supported)"
            )));
        }
        let feature = usize::try_from(split_feature[node]).map_err(|_| {
            NativeError::Invalid(format!("tree {index}, node {node}: negative feature index"))
        })?;
        let (left, right) = (
            target(node, left_child[node])?,
            target(node, right_child[node])?,
        );
        let missing = match (dt >> 2) & 3 {
            0 => Missing::None,
            1 => Missing::Zero,
            2 => Missing::NaN,
            other => {
                return Err(NativeError::Invalid(format!(
                    "tree {index}, node {node}: missing type {other}"
                )))
            }
        };
        let split = Split {
            feature,
            threshold: threshold[node],
            left,
            right,
        };
        let base = n_branches + num_leaves;
        nodes.push(numerical(
            split,
            missing,
            dt & DEFAULT_LEFT != 0,
            base,
            &mut extra,
        ));
    }
    nodes.extend(leaf_value.iter().map(|&v| NodeSpec::Leaf {
        values: vec![(class, v)],
    }));
    nodes.extend(extra);
    // With no branches the root (node 0) is the only leaf.
    Ok(TreeSpec { nodes })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Missing {
    None,
    Zero,
    NaN,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    threshold: f64,
    left: usize,
    right: usize,
}

impl Split {
    fn branch(self, threshold: f64, rule: SplitRule, missing_left: bool) -> NodeSpec {
        NodeSpec::Branch {
            feature: self.feature,
            threshold,
            rule,
            missing_left,
            left: self.left,
            right: self.right,
        }
    }

    /// `x <= t` as LightGBM evaluates it on a row whose near-zero values were set to 0.0:
    /// only a threshold inside the zero band needs moving to its edge.
    fn leq_after_zeroing(self, missing_left: bool) -> NodeSpec {
        let t = self.threshold;
        if (-ZERO..ZERO).contains(&t) {
            if 0.0 <= t {
                // The whole band goes left, like 0.0 does.
                self.branch(ZERO, SplitRule::Leq, missing_left)
            } else {
                // The whole band goes right.
                self.branch(-ZERO, SplitRule::Lt, missing_left)
            }
        } else {
            self.branch(t, SplitRule::Leq, missing_left)
        }
    }
}

/// One LightGBM numerical branch as spec nodes: the node to put at the branch's index, plus
/// any helper nodes pushed onto `extra` (whose spec indices start at `base`).
fn numerical(
    split: Split,
    missing: Missing,
    default_left: bool,
    base: usize,
    extra: &mut Vec<NodeSpec>,
) -> NodeSpec {
    match missing {
        // NaN becomes 0.0, which goes where 0.0 <= t says.
        Missing::None => split.leq_after_zeroing(0.0 <= split.threshold),
        Missing::NaN => split.leq_after_zeroing(default_left),
        Missing::Zero => {
            let t = split.threshold;
            // When the zero band already lies on the default side of t, one branch does.
            if default_left && t >= ZERO || !default_left && t < -ZERO {
                return split.branch(t, SplitRule::Leq, default_left);
            }
            // Otherwise: x < -ZERO → plain; else x <= ZERO (or NaN) → default; else plain.
            let plain = base + extra.len();
            extra.push(split.branch(t, SplitRule::Leq, false));
            let band = base + extra.len();
            let default = if default_left {
                split.left
            } else {
                split.right
            };
            extra.push(NodeSpec::Branch {
                feature: split.feature,
                threshold: ZERO,
                rule: SplitRule::Leq,
                missing_left: true,
                left: default,
                right: plain,
            });
            NodeSpec::Branch {
                feature: split.feature,
                threshold: -ZERO,
                rule: SplitRule::Lt,
                missing_left: false,
                left: plain,
                right: band,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferd_trees::Ensemble;

    /// LightGBM's predictor on one dense value: near-zero values dropped to 0.0, then
    /// `Tree::NumericalDecision`. True means left.
    fn reference(x: f32, t: f64, missing: Missing, default_left: bool) -> bool {
        let mut x = x as f64;
        if x.abs() <= ZERO {
            x = 0.0;
        }
        if x.is_nan() && missing != Missing::NaN {
            x = 0.0;
        }
        if missing == Missing::Zero && (-ZERO..=ZERO).contains(&x)
            || missing == Missing::NaN && x.is_nan()
        {
            return default_left;
        }
        x <= t
    }

    #[test]
    fn numerical_decisions_match_lightgbm() {
        let z = ZERO as f32;
        let xs = [
            f32::NAN,
            0.0,
            -0.0,
            1e-36,
            -1e-36,
            z,
            -z,
            z.next_up(),
            (-z).next_down(),
            1e-30,
            -1e-30,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
        ];
        let ts = [
            0.0,
            -0.0,
            ZERO,
            -ZERO,
            1e-36,
            -1e-36,
            0.5,
            -0.5,
            1.0,
            -1.0,
            1e-30,
            -1e-30,
            0.1,
            -0.1,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for &t in &ts {
            for missing in [Missing::None, Missing::Zero, Missing::NaN] {
                for default_left in [false, true] {
                    let split = Split {
                        feature: 0,
                        threshold: t,
                        left: 1,
                        right: 2,
                    };
                    let mut extra = Vec::new();
                    let root = numerical(split, missing, default_left, 3, &mut extra);
                    let mut nodes = vec![
                        root,
                        NodeSpec::Leaf {
                            values: vec![(0, 1.0)],
                        },
                        NodeSpec::Leaf {
                            values: vec![(0, 2.0)],
                        },
                    ];
                    nodes.extend(extra);
                    let spec = EnsembleSpec {
                        trees: vec![TreeSpec { nodes }],
                        n_features: 1,
                        n_targets: 1,
                        aggregate: Aggregate::Sum,
                        base_values: vec![],
                    };
                    let mut out = vec![0.0; xs.len()];
                    Ensemble::compile(&spec).unwrap().predict(&xs, &mut out);
                    for (&x, &got) in xs.iter().zip(&out) {
                        let want = if reference(x, t, missing, default_left) {
                            1.0
                        } else {
                            2.0
                        };
                        assert_eq!(got, want, "x={x:e} t={t:e} {missing:?} left={default_left}");
                    }
                }
            }
        }
    }

    #[test]
    fn objectives_parse() {
        assert_eq!(
            objective("binary sigmoid:2", 1).unwrap(),
            Task::Binary { scale: 2.0 }
        );
        assert_eq!(
            objective("regression sqrt", 1).unwrap(),
            Task::Regression(Link::SignedSquare)
        );
        assert_eq!(
            objective("multiclassova num_class:3 sigmoid:1", 3).unwrap(),
            Task::OneVsAll {
                n_classes: 3,
                scale: 1.0
            }
        );
        assert!(objective("multiclass num_class:1", 1).is_err());
        assert!(objective("binary sigmoid:-1", 1).is_err());
        assert!(objective("", 1).is_err());
    }
}
