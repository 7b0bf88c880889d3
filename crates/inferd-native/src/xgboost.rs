//! XGBoost's JSON model format (`save_model("model.json")`, XGBoost 1.0 and later) read into
//! an [`EnsembleSpec`]: typed serde structs for the parts inference needs, then checks.
//!
//! What XGBoost does at prediction time, and how it is kept here:
//! - A branch sends `x` left when `x < split_condition` (an f32), and a missing value (NaN)
//!   where `default_left` says: [`SplitRule::Lt`] with the f32 threshold widened exactly.
//! - A leaf's value is its `split_conditions` entry (learning rate already applied).
//! - Tree `i` adds to class `tree_info[i]`; every tree of a random forest
//!   (`num_parallel_tree > 1`) adds, none is averaged.
//! - `base_score` is stored in the objective's output space (a probability for
//!   `binary:logistic`) and turned into a margin by the objective: logit for the logistic
//!   family, log for Poisson/Gamma/Tweedie, unchanged otherwise. XGBoost 3.1+ writes it as a
//!   vector (`"[6.27E-1]"`, one value per class for multi-class models), older versions as
//!   one number.
//! - XGBoost sums leaves in f32; the engine sums in f64 (see the parity tests' tolerance).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use inferd_trees::{Aggregate, EnsembleSpec, NodeSpec, SplitRule, TreeSpec};

use crate::model::{check_classes, Link, Parsed, Task};
use crate::NativeError;

#[derive(Deserialize)]
struct Document {
    learner: Learner,
    version: Vec<u64>,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
    gradient_booster: GradientBooster,
    learner_model_param: LearnerModelParam,
    objective: Objective,
}

#[derive(Deserialize)]
struct GradientBooster {
    name: String,
    /// Kept raw until `name` says which booster this is (`gblinear` has another shape).
    #[serde(default)]
    model: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LearnerModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    num_feature: String,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct GbTreeModel {
    trees: Vec<Tree>,
    tree_info: Vec<i64>,
    #[serde(default)]
    gbtree_model_param: Option<GbTreeModelParam>,
    /// First tree of each boosting round (XGBoost 2.0+).
    #[serde(default)]
    iteration_indptr: Option<Vec<i64>>,
}

#[derive(Deserialize)]
struct GbTreeModelParam {
    #[serde(default)]
    num_parallel_tree: Option<String>,
}

#[derive(Deserialize)]
struct Tree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    #[serde(deserialize_with = "flags")]
    default_left: Vec<bool>,
    /// 0 numerical, 1 categorical; absent before categorical support existed.
    #[serde(default)]
    split_type: Vec<i64>,
    #[serde(default)]
    tree_param: Option<TreeParam>,
}

#[derive(Deserialize)]
struct TreeParam {
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

/// `default_left` is an array of 0/1 in current versions and of booleans in some older ones.
fn flags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Vec::<Flag>::deserialize(d)?
        .into_iter()
        .map(|f| match f {
            Flag::Bool(b) => Ok(b),
            Flag::Int(0) => Ok(false),
            Flag::Int(1) => Ok(true),
            Flag::Int(i) => Err(D::Error::custom(format!(
                "default_left value {i} is not 0 or 1"
            ))),
        })
        .collect()
}

/// A cheap check that `bytes` hold an XGBoost JSON model: the top-level object's keys are
/// read, the values skipped without being built.
pub(crate) fn sniff(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Keys {
        #[serde(rename = "learner")]
        _learner: serde::de::IgnoredAny,
        #[serde(rename = "version")]
        _version: serde::de::IgnoredAny,
    }
    serde_json::from_slice::<Keys>(bytes).is_ok()
}

/// How an objective maps margins to outputs and `base_score` to a margin.
fn objective(name: &str, n_classes: usize) -> Result<(Task, BaseScore), NativeError> {
    use BaseScore::{Identity, Log, Logit};
    Ok(match name {
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror" => (Task::Regression(Link::Identity), Identity),
        "reg:logistic" => (Task::Regression(Link::Sigmoid(1.0)), Logit),
        "binary:logistic" => (Task::Binary { scale: 1.0 }, Logit),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => (Task::Regression(Link::Exp), Log),
        "multi:softprob" | "multi:softmax" => {
            if n_classes < 2 {
                return Err(NativeError::Invalid(format!(
                    "{name} with num_class {n_classes}"
                )));
            }
            (Task::Softmax { n_classes }, Identity)
        }
        other => {
            return Err(NativeError::Unsupported(format!(
                "objective '{other}' (supported: reg:squarederror, reg:squaredlogerror, \
                 reg:pseudohubererror, reg:absoluteerror, reg:logistic, binary:logistic, \
                 count:poisson, reg:gamma, reg:tweedie, multi:softprob, multi:softmax)"
            )))
        }
    })
}

/// The objective's `ProbToMargin`, computed in f32 as XGBoost does.
#[derive(Debug, Clone, Copy)]
enum BaseScore {
    Identity,
    Logit,
    Log,
}

impl BaseScore {
    fn to_margin(self, b: f32) -> Result<f64, NativeError> {
        let m = match self {
            BaseScore::Identity => b,
            BaseScore::Logit => {
                if !(b > 0.0 && b < 1.0) {
                    return Err(NativeError::Invalid(format!(
                        "base_score {b} is not a probability in (0, 1)"
                    )));
                }
                -(1.0f32 / b - 1.0f32).ln()
            }
            BaseScore::Log => {
                if b.is_nan() || b <= 0.0 {
                    return Err(NativeError::Invalid(format!(
                        "base_score {b} is not positive"
                    )));
                }
                b.ln()
            }
        };
        Ok(m as f64)
    }
}

/// `"6.27E-1"` (before XGBoost 3.1) or `"[6.27E-1]"` / `"[a,b,c]"` (3.1 and later).
fn parse_base_score(s: &str) -> Result<Vec<f32>, NativeError> {
    let bad = || NativeError::Malformed(format!("base_score '{}' is not a number", clip(s)));
    let inner = match s.trim().strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').ok_or_else(bad)?,
        None => s,
    };
    inner
        .split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|_| bad()))
        .collect()
}

fn parse_count(what: &str, s: &str) -> Result<usize, NativeError> {
    s.trim()
        .parse()
        .map_err(|_| NativeError::Malformed(format!("{what} '{}' is not a count", clip(s))))
}

/// Quotes at most a few dozen characters of untrusted text in an error.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, NativeError> {
    let doc: Document = serde_json::from_slice(bytes)
        .map_err(|e| NativeError::Malformed(format!("not an XGBoost JSON model ({e})")))?;
    match doc.version.first() {
        Some(&major) if major >= 1 => {}
        _ => {
            return Err(NativeError::Unsupported(format!(
                "file version {:?}: XGBoost JSON models from version 1.0 on are supported",
                doc.version
            )))
        }
    }
    let learner = doc.learner;
    let booster = &learner.gradient_booster;
    if booster.name != "gbtree" {
        return Err(NativeError::Unsupported(format!(
            "booster '{}' (only gbtree is supported; dart and gblinear are not)",
            clip(&booster.name)
        )));
    }
    let model: GbTreeModel = booster
        .model
        .as_ref()
        .ok_or_else(|| NativeError::Malformed("gbtree booster without a model".into()))
        .and_then(|m| {
            GbTreeModel::deserialize(m)
                .map_err(|e| NativeError::Malformed(format!("gbtree model: {e}")))
        })?;

    let params = &learner.learner_model_param;
    let n_features = parse_count("num_feature", &params.num_feature)?;
    let num_class = params
        .num_class
        .as_deref()
        .map_or(Ok(0), |s| parse_count("num_class", s))?;
    let num_target = params
        .num_target
        .as_deref()
        .map_or(Ok(1), |s| parse_count("num_target", s))?;
    if num_target > 1 {
        return Err(NativeError::Unsupported(format!(
            "multi-target models (num_target {num_target})"
        )));
    }
    check_classes(num_class)?;
    let (task, base_kind) = objective(&learner.objective.name, num_class)?;
    let n_targets = num_class.max(1);

    let base = parse_base_score(&params.base_score)?;
    let base_values = match base.len() {
        1 => vec![base_kind.to_margin(base[0])?; n_targets],
        n if n == n_targets => base
            .iter()
            .map(|&b| base_kind.to_margin(b))
            .collect::<Result<_, _>>()?,
        n => {
            return Err(NativeError::Invalid(format!(
                "{n} base_score values for {n_targets} outputs"
            )))
        }
    };

    if model.tree_info.len() != model.trees.len() {
        return Err(NativeError::Invalid(format!(
            "{} trees but {} tree_info entries",
            model.trees.len(),
            model.tree_info.len()
        )));
    }
    let n_used = trees_to_use(&learner.attributes, &model, n_targets)?;
    let trees = model.trees[..n_used]
        .iter()
        .zip(&model.tree_info)
        .enumerate()
        .map(|(i, (tree, &class))| {
            let class = usize::try_from(class)
                .ok()
                .filter(|&c| c < n_targets)
                .ok_or_else(|| {
                    NativeError::Invalid(format!("tree {i}: class {class} out of range"))
                })?;
            convert_tree(i, tree, class)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        spec: EnsembleSpec {
            trees,
            n_features,
            n_targets,
            aggregate: Aggregate::Sum,
            base_values,
        },
        task,
        divide_by: 1.0,
        platform: "xgboost",
    })
}

/// Trees scikit-learn's `predict` uses: all of them, or those up to `best_iteration` when
/// training stopped early (XGBoost's scikit-learn interface predicts with the best round).
fn trees_to_use(
    attributes: &std::collections::BTreeMap<String, String>,
    model: &GbTreeModel,
    n_targets: usize,
) -> Result<usize, NativeError> {
    let Some(best) = attributes.get("best_iteration") else {
        return Ok(model.trees.len());
    };
    let rounds = parse_count("best_iteration", best)?.saturating_add(1);
    let end = match &model.iteration_indptr {
        Some(indptr) => indptr
            .get(rounds)
            .copied()
            .and_then(|e| usize::try_from(e).ok()),
        None => {
            let parallel = model
                .gbtree_model_param
                .as_ref()
                .and_then(|p| p.num_parallel_tree.as_deref())
                .map_or(Ok(1), |s| parse_count("num_parallel_tree", s))?;
            rounds
                .checked_mul(parallel)
                .and_then(|t| t.checked_mul(n_targets))
        }
    };
    // A best round at or past the last one means every tree.
    Ok(end.map_or(model.trees.len(), |e| e.min(model.trees.len())))
}

fn convert_tree(index: usize, tree: &Tree, class: usize) -> Result<TreeSpec, NativeError> {
    let n = tree.left_children.len();
    let invalid = |what: &str| NativeError::Invalid(format!("tree {index}: {what}"));
    if n == 0 {
        return Err(invalid("no nodes"));
    }
    let lengths = [
        tree.right_children.len(),
        tree.split_indices.len(),
        tree.split_conditions.len(),
        tree.default_left.len(),
    ];
    if lengths.iter().any(|&l| l != n)
        || !(tree.split_type.is_empty() || tree.split_type.len() == n)
    {
        return Err(invalid("node arrays of different lengths"));
    }
    if let Some(size) = tree
        .tree_param
        .as_ref()
        .and_then(|p| p.size_leaf_vector.as_deref())
    {
        if parse_count("size_leaf_vector", size)? > 1 {
            return Err(NativeError::Unsupported(format!(
                "tree {index}: vector leaves (multi-target trees)"
            )));
        }
    }
    let child = |node: usize, c: i64| {
        usize::try_from(c).ok().filter(|&c| c < n).ok_or_else(|| {
            NativeError::Invalid(format!(
                "tree {index}, node {node}: child {c} does not exist"
            ))
        })
    };
    let mut nodes = Vec::with_capacity(n);
    for node in 0..n {
        let (l, r) = (tree.left_children[node], tree.right_children[node]);
        if l == -1 {
            nodes.push(NodeSpec::Leaf {
                values: vec![(class, tree.split_conditions[node] as f64)],
            });
            continue;
        }
        if tree.split_type.get(node).copied().unwrap_or(0) != 0 {
            return Err(NativeError::Unsupported(format!(
                "tree {index}, node {node}: categorical split (XGBoost categorical features \
                 are not supported; one-hot encode them instead)"
            )));
        }
        let feature = usize::try_from(tree.split_indices[node]).map_err(|_| {
            NativeError::Invalid(format!("tree {index}, node {node}: negative feature index"))
        })?;
        nodes.push(NodeSpec::Branch {
            feature,
            threshold: tree.split_conditions[node] as f64,
            rule: SplitRule::Lt,
            missing_left: tree.default_left[node],
            left: child(node, l)?,
            right: child(node, r)?,
        });
    }
    Ok(TreeSpec { nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_in_both_spellings() {
        assert_eq!(parse_base_score("5E-1").unwrap(), vec![0.5]);
        assert_eq!(parse_base_score("[6.274165E-1]").unwrap(), vec![0.6274165]);
        assert_eq!(
            parse_base_score("[0E0,1E0,-2E0]").unwrap(),
            vec![0.0, 1.0, -2.0]
        );
        assert!(parse_base_score("[1,").is_err());
        assert!(parse_base_score("").is_err());
    }

    #[test]
    fn logit_of_a_half_is_zero() {
        assert_eq!(BaseScore::Logit.to_margin(0.5).unwrap(), 0.0);
        assert!(BaseScore::Logit.to_margin(1.0).is_err());
        assert!(BaseScore::Log.to_margin(0.0).is_err());
    }
}
