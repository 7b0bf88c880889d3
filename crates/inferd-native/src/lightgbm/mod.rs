//! LightGBM's text model format (`save_model("model.txt")`, versions v2 to v4) read into an
//! [`EnsembleSpec`]: the file's sections and arrays here, the branch decisions (numerical
//! with missing types, categorical bitsets) in [`decision`].
//!
//! `decision_type` bits: 0 categorical, 1 default_left, 2–3 missing type (None, Zero, NaN).
//! Leaves already include the shrinkage, and the first trees the initial score; tree `i`
//! feeds class `i % num_tree_per_iteration`; `average_output` (random forest mode) divides
//! the sum by the number of iterations.

mod decision;

use std::collections::HashMap;

use inferd_trees::{Aggregate, EnsembleSpec, NodeSpec, TreeSpec};

use crate::model::{check_classes, Link, Parsed, Task};
use crate::xgboost::clip;
use crate::NativeError;
use decision::{categorical, numerical, Missing, Split};

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
    // LightGBM writes no objective line for a model trained with a custom objective function.
    let objective_line = header.values.get("objective").ok_or_else(|| {
        NativeError::Unsupported("a model without an objective (custom objective)".into())
    })?;
    let task = objective(objective_line, num_class)?;
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
    let cats = CategorySets::read(index, t)?;
    let mut extra = Vec::new();
    for node in 0..n_branches {
        let dt = decision_type[node];
        let feature = usize::try_from(split_feature[node]).map_err(|_| {
            NativeError::Invalid(format!("tree {index}, node {node}: negative feature index"))
        })?;
        let (left, right) = (
            target(node, left_child[node])?,
            target(node, right_child[node])?,
        );
        let base = n_branches + num_leaves;
        if dt & CATEGORICAL != 0 {
            let words = categories(&cats, threshold[node]).ok_or_else(|| {
                NativeError::Invalid(format!(
                    "tree {index}, node {node}: category set {} does not exist",
                    threshold[node]
                ))
            })?;
            let split = Split {
                feature,
                threshold: threshold[node],
                left,
                right,
            };
            let branch = categorical(split, words, base, &mut extra).map_err(|e| match e {
                NativeError::Unsupported(what) => {
                    NativeError::Unsupported(format!("tree {index}, node {node}: {what}"))
                }
                other => other,
            })?;
            nodes.push(branch);
            continue;
        }
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

/// A tree's categorical bitsets: set `i` is `words[bounds[i]..bounds[i + 1]]`.
struct CategorySets {
    bounds: Vec<usize>,
    words: Vec<u32>,
}

/// Most bitset words one category set may have (2^25 categories): LightGBM's categories are
/// `int`s, and decoding walks every word.
const MAX_CATEGORY_WORDS: usize = 1 << 20;

impl CategorySets {
    fn read(index: usize, t: &Section<'_>) -> Result<Self, NativeError> {
        let num_cat: usize = match t.values.get("num_cat") {
            Some(_) => t.number("num_cat")?,
            None => 0,
        };
        if num_cat == 0 {
            return Ok(Self {
                bounds: vec![0],
                words: Vec::new(),
            });
        }
        // The declared count must match the line before anything is sized by it.
        let n_bounds = t.get("cat_boundaries")?.split_ascii_whitespace().count();
        if n_bounds != num_cat.saturating_add(1) {
            return Err(NativeError::Invalid(format!(
                "tree {index}: {n_bounds} cat_boundaries for {num_cat} category sets"
            )));
        }
        let bounds: Vec<usize> = t.array("cat_boundaries", n_bounds)?;
        let n_words = t.get("cat_threshold")?.split_ascii_whitespace().count();
        let words: Vec<u32> = t.array("cat_threshold", n_words)?;
        let ordered = bounds.first() == Some(&0)
            && bounds
                .windows(2)
                .all(|w| w[0] <= w[1] && w[1] - w[0] <= MAX_CATEGORY_WORDS)
            && bounds.last() == Some(&words.len());
        if !ordered {
            return Err(NativeError::Invalid(format!(
                "tree {index}: cat_boundaries do not partition cat_threshold"
            )));
        }
        Ok(Self { bounds, words })
    }
}

/// The bitset a categorical branch's threshold (a set index stored as a double) names.
fn categories(sets: &CategorySets, threshold: f64) -> Option<&[u32]> {
    let valid = threshold >= 0.0 && threshold.fract() == 0.0 && threshold < u32::MAX as f64;
    let i = valid.then_some(threshold as usize)?;
    let (&start, &end) = (sets.bounds.get(i)?, sets.bounds.get(i + 1)?);
    sets.words.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

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
