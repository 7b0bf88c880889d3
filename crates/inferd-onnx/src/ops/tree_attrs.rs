//! Reading the ONNX-ML tree attributes into an [`EnsembleSpec`]: the parallel `nodes_*`
//! arrays of TreeEnsembleClassifier/Regressor (opsets 1–3) and of TreeEnsemble (opset 5).
//! The spec's checks (indices, cycles) then happen once more in the engine's compiler.

use std::collections::HashMap;

use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::tensor::{f64s, i64s};
use inferd_trees::{Aggregate, EnsembleSpec, NodeSpec, SplitRule, TreeSpec};

/// Post-transforms, as both attribute forms name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(name: &str) -> OpResult<Self> {
        Ok(match name {
            "NONE" => Self::None,
            "SOFTMAX" => Self::Softmax,
            "LOGISTIC" => Self::Logistic,
            "SOFTMAX_ZERO" => Self::SoftmaxZero,
            "PROBIT" => Self::Probit,
            other => fail!("unsupported post_transform '{other}'"),
        })
    }

    /// Opset 5 numbers them.
    pub fn from_code(code: i64) -> OpResult<Self> {
        Ok(match code {
            0 => Self::None,
            1 => Self::Softmax,
            2 => Self::Logistic,
            3 => Self::SoftmaxZero,
            4 => Self::Probit,
            other => fail!("unsupported post_transform {other}"),
        })
    }
}

pub fn aggregate(name: &str) -> OpResult<Aggregate> {
    Ok(match name {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => fail!("unsupported aggregate_function '{other}'"),
    })
}

fn usize_of(v: i64, what: &str) -> OpResult<usize> {
    match usize::try_from(v) {
        Ok(v) => Ok(v),
        Err(_) => fail!("negative {what} {v}"),
    }
}

fn check_len(name: &str, len: usize, want: usize) -> OpResult<()> {
    if len != want {
        fail!("attribute '{name}' has {len} entries where {want} were expected");
    }
    Ok(())
}

/// Attributes the legacy operators share (besides the leaf-weight ones).
pub const LEGACY_NODE_ATTRS: [&str; 11] = [
    "nodes_treeids",
    "nodes_nodeids",
    "nodes_featureids",
    "nodes_modes",
    "nodes_values",
    "nodes_values_as_tensor",
    "nodes_truenodeids",
    "nodes_falsenodeids",
    "nodes_missing_value_tracks_true",
    "nodes_hitrates",
    "nodes_hitrates_as_tensor",
];

/// The legacy layout: nodes named by `(tree id, node id)`, leaf weights listed separately as
/// `(tree id, node id, target, weight)` under `<prefix>_treeids` etc. Returns the spec
/// (`n_features` = highest feature used + 1) and the distinct targets leaves feed.
pub fn legacy(
    a: &Attrs,
    prefix: &str,
    n_targets: usize,
    aggregate: Aggregate,
) -> OpResult<(EnsembleSpec, Vec<usize>)> {
    let tree_ids = a.ints("nodes_treeids")?;
    let n = tree_ids.len();
    let node_ids = a.ints("nodes_nodeids")?;
    let features = a.ints("nodes_featureids")?;
    let modes = a.strings("nodes_modes")?;
    let values = a.floats_or_tensor("nodes_values")?;
    let trues = a.ints("nodes_truenodeids")?;
    let falses = a.ints("nodes_falsenodeids")?;
    let mut missing = a.ints("nodes_missing_value_tracks_true")?;
    if missing.is_empty() {
        missing = vec![0; n];
    }
    if n == 0 {
        fail!("the ensemble has no nodes");
    }
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", values.len()),
        ("nodes_truenodeids", trues.len()),
        ("nodes_falsenodeids", falses.len()),
        ("nodes_missing_value_tracks_true", missing.len()),
    ] {
        check_len(name, len, n)?;
    }

    // Trees in order of first appearance; nodes numbered within their tree in file order.
    let mut tree_index: HashMap<i64, usize> = HashMap::new();
    let mut local: HashMap<(i64, i64), (usize, usize)> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let t = *tree_index.entry(tree_ids[i]).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        let key = (tree_ids[i], node_ids[i]);
        if local.insert(key, (t, members[t].len())).is_some() {
            fail!(
                "node {} of tree {} is defined twice",
                node_ids[i],
                tree_ids[i]
            );
        }
        members[t].push(i);
    }
    let child = |i: usize, id: i64| -> OpResult<usize> {
        match local.get(&(tree_ids[i], id)) {
            Some(&(_, c)) => Ok(c),
            None => fail!(
                "node {} of tree {} points to missing node {id}",
                node_ids[i],
                tree_ids[i]
            ),
        }
    };

    let mut trees: Vec<TreeSpec> = members
        .iter()
        .map(|m| TreeSpec {
            nodes: vec![NodeSpec::Leaf { values: vec![] }; m.len()],
        })
        .collect();
    let mut n_features = 0;
    for i in 0..n {
        let (t, l) = local[&(tree_ids[i], node_ids[i])];
        let mode = std::str::from_utf8(&modes[i]).unwrap_or("?");
        let rule = match mode {
            "LEAF" => continue,
            "BRANCH_LEQ" => SplitRule::Leq,
            "BRANCH_LT" => SplitRule::Lt,
            "BRANCH_GTE" => SplitRule::Gte,
            "BRANCH_GT" => SplitRule::Gt,
            "BRANCH_EQ" => SplitRule::Eq,
            "BRANCH_NEQ" => SplitRule::Neq,
            other => fail!("unsupported node mode '{other}'"),
        };
        let feature = usize_of(features[i], "feature id")?;
        n_features = n_features.max(feature + 1);
        trees[t].nodes[l] = NodeSpec::Branch {
            feature,
            threshold: values[i],
            rule,
            // NaN compares false, so it takes the false branch unless tracked true; except
            // for `!=`, where NaN != t holds and the true branch is taken.
            missing_left: missing[i] != 0 || rule == SplitRule::Neq,
            left: child(i, trues[i])?,
            right: child(i, falses[i])?,
        };
    }

    let leaf_trees = a.ints(&format!("{prefix}_treeids"))?;
    let leaf_nodes = a.ints(&format!("{prefix}_nodeids"))?;
    let leaf_targets = a.ints(&format!("{prefix}_ids"))?;
    let weights = a.floats_or_tensor(&format!("{prefix}_weights"))?;
    let m = leaf_trees.len();
    check_len(&format!("{prefix}_nodeids"), leaf_nodes.len(), m)?;
    check_len(&format!("{prefix}_ids"), leaf_targets.len(), m)?;
    check_len(&format!("{prefix}_weights"), weights.len(), m)?;
    let mut used_targets = Vec::new();
    for k in 0..m {
        let Some(&(t, l)) = local.get(&(leaf_trees[k], leaf_nodes[k])) else {
            fail!(
                "weight {k} refers to missing node {} of tree {}",
                leaf_nodes[k],
                leaf_trees[k]
            );
        };
        let target = usize_of(leaf_targets[k], "target id")?;
        if target >= n_targets {
            fail!("weight {k} is for target {target}, but there are {n_targets}");
        }
        if !used_targets.contains(&target) {
            used_targets.push(target);
        }
        match &mut trees[t].nodes[l] {
            NodeSpec::Leaf { values } => values.push((target, weights[k])),
            NodeSpec::Branch { .. } => {
                fail!(
                    "weight {k} is attached to branch node {} of tree {}",
                    leaf_nodes[k],
                    leaf_trees[k]
                )
            }
        }
    }

    // The root is the node no other node of its tree points to; converters put it first.
    for (t, tree) in trees.iter_mut().enumerate() {
        let mut pointed = vec![false; tree.nodes.len()];
        for node in &tree.nodes {
            if let NodeSpec::Branch { left, right, .. } = node {
                pointed[*left] = true;
                pointed[*right] = true;
            }
        }
        let Some(root) = pointed.iter().position(|p| !p) else {
            fail!("tree {t} has no root (every node is some node's child)");
        };
        if root != 0 {
            reroot(tree, root);
        }
    }
    let spec = EnsembleSpec {
        trees,
        n_features,
        n_targets,
        aggregate,
        base_values: vec![],
    };
    Ok((spec, used_targets))
}

/// Swaps node `root` into position 0, renumbering children.
fn reroot(tree: &mut TreeSpec, root: usize) {
    tree.nodes.swap(0, root);
    let map = |i: usize| {
        if i == 0 {
            root
        } else if i == root {
            0
        } else {
            i
        }
    };
    for node in &mut tree.nodes {
        if let NodeSpec::Branch { left, right, .. } = node {
            *left = map(*left);
            *right = map(*right);
        }
    }
}

pub const TREE_ENSEMBLE_ATTRS: [&str; 16] = [
    "aggregate_function",
    "leaf_targetids",
    "leaf_weights",
    "membership_values",
    "n_targets",
    "nodes_falseleafs",
    "nodes_falsenodeids",
    "nodes_featureids",
    "nodes_hitrates",
    "nodes_missing_value_tracks_true",
    "nodes_modes",
    "nodes_splits",
    "nodes_trueleafs",
    "nodes_truenodeids",
    "post_transform",
    "tree_roots",
];

/// The opset-5 layout: nodes and leaves in two arrays indexed from `tree_roots`, each branch
/// saying whether its children are nodes or leaves. Set membership (`BRANCH_MEMBER`) becomes
/// a chain of `==` tests sharing the "in the set" subtree.
pub fn tree_ensemble(a: &Attrs) -> OpResult<EnsembleSpec> {
    let Some(n_targets) = a.int("n_targets")? else {
        fail!("attribute 'n_targets' is required")
    };
    if !(1..=super::trees::MAX_TARGETS).contains(&n_targets) {
        fail!(
            "n_targets must be between 1 and {}, got {n_targets}",
            super::trees::MAX_TARGETS
        );
    }
    let n_targets = n_targets as usize;
    let aggregate = match a.int_or("aggregate_function", 1)? {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        other => fail!("unsupported aggregate_function {other}"),
    };
    let tensor_f64 = |name: &str| -> OpResult<Vec<f64>> {
        match a.tensor(name)? {
            Some(t) => Ok(f64s(&t)?.into_owned()),
            None => Ok(vec![]),
        }
    };
    let features = a.ints("nodes_featureids")?;
    let n = features.len();
    let splits = tensor_f64("nodes_splits")?;
    let modes = match a.tensor("nodes_modes")? {
        Some(t) => i64s(&t)?,
        None => fail!("attribute 'nodes_modes' is required"),
    };
    let trues = a.ints("nodes_truenodeids")?;
    let falses = a.ints("nodes_falsenodeids")?;
    let true_leafs = a.ints("nodes_trueleafs")?;
    let false_leafs = a.ints("nodes_falseleafs")?;
    let mut missing = a.ints("nodes_missing_value_tracks_true")?;
    if missing.is_empty() {
        missing = vec![0; n];
    }
    for (name, len) in [
        ("nodes_splits", splits.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", trues.len()),
        ("nodes_falsenodeids", falses.len()),
        ("nodes_trueleafs", true_leafs.len()),
        ("nodes_falseleafs", false_leafs.len()),
        ("nodes_missing_value_tracks_true", missing.len()),
    ] {
        check_len(name, len, n)?;
    }
    let leaf_targets = a.ints("leaf_targetids")?;
    let leaf_weights = tensor_f64("leaf_weights")?;
    check_len("leaf_weights", leaf_weights.len(), leaf_targets.len())?;
    let membership = tensor_f64("membership_values")?;
    // Each BRANCH_MEMBER node, in node order, takes the next NaN-terminated run of values.
    let mut sets: HashMap<usize, Vec<f64>> = HashMap::new();
    let mut runs = membership.split(|v| v.is_nan());
    for (i, &m) in modes.iter().enumerate() {
        if m == 6 {
            sets.insert(i, runs.next().unwrap_or(&[]).to_vec());
        }
    }

    let mut n_features = 0;
    let mut trees = Vec::new();
    for &root in &a.ints("tree_roots")? {
        let root = usize_of(root, "tree root")?;
        if root >= n {
            fail!("tree root {root} does not exist");
        }
        // (is leaf, index) → local index, laid out breadth-first from the root.
        let mut local: HashMap<(bool, usize), usize> = HashMap::new();
        let mut order: Vec<(bool, usize)> = vec![(false, root)];
        local.insert((false, root), 0);
        let mut nodes = Vec::new();
        let mut memberships = Vec::new();
        let mut k = 0;
        while k < order.len() {
            let (is_leaf, i) = order[k];
            k += 1;
            if is_leaf {
                let Some(&w) = leaf_weights.get(i) else {
                    fail!("leaf {i} does not exist")
                };
                let target = usize_of(leaf_targets[i], "target id")?;
                nodes.push(NodeSpec::Leaf {
                    values: vec![(target, w)],
                });
                continue;
            }
            let mut child = |leaf: i64, id: i64| -> OpResult<usize> {
                let key = (leaf != 0, usize_of(id, "child id")?);
                if !key.0 && key.1 >= n {
                    fail!("node {i} points to missing node {}", key.1);
                }
                Ok(*local.entry(key).or_insert_with(|| {
                    order.push(key);
                    order.len() - 1
                }))
            };
            let left = child(true_leafs[i], trues[i])?;
            let right = child(false_leafs[i], falses[i])?;
            let feature = usize_of(features[i], "feature id")?;
            n_features = n_features.max(feature + 1);
            let missing_left = missing[i] != 0;
            let rule = match modes[i] {
                0 => SplitRule::Leq,
                1 => SplitRule::Lt,
                2 => SplitRule::Gte,
                3 => SplitRule::Gt,
                4 => SplitRule::Eq,
                5 => SplitRule::Neq,
                6 => {
                    // x ∈ {v0, v1, …}: `== v0` → left, else `== v1` → left, …, else right.
                    // The extra tests are appended once the breadth-first layout is
                    // complete, so that they cannot take indices `order` has handed out.
                    let set = sets.remove(&i).unwrap_or_default();
                    nodes.push(NodeSpec::Leaf { values: vec![] });
                    let at = nodes.len() - 1;
                    memberships.push(Membership {
                        at,
                        feature,
                        set,
                        missing_left,
                        left,
                        right,
                    });
                    continue;
                }
                other => fail!("unsupported node mode {other}"),
            };
            let missing_left = missing_left || rule == SplitRule::Neq;
            nodes.push(NodeSpec::Branch {
                feature,
                threshold: splits[i],
                rule,
                missing_left,
                left,
                right,
            });
        }
        for m in memberships {
            chain_membership(&mut nodes, m);
        }
        trees.push(TreeSpec { nodes });
    }
    Ok(EnsembleSpec {
        trees,
        n_features,
        n_targets,
        aggregate,
        base_values: vec![],
    })
}

/// A `BRANCH_MEMBER` node waiting for its chain of `==` tests.
struct Membership {
    at: usize,
    feature: usize,
    set: Vec<f64>,
    missing_left: bool,
    left: usize,
    right: usize,
}

/// Turns node `m.at` into `x == set[0]` and appends one `==` node per further value, each
/// sending matches to `left` and the rest down the chain, the last to `right`. A NaN goes
/// left at the first test if tracked true, else falls through the chain to `right`.
fn chain_membership(nodes: &mut Vec<NodeSpec>, m: Membership) {
    let Membership {
        at,
        feature,
        set,
        missing_left,
        left,
        right,
    } = m;
    if set.is_empty() {
        // An empty set never matches: only a tracked missing value goes left.
        nodes[at] = NodeSpec::Branch {
            feature,
            threshold: f64::NAN,
            rule: SplitRule::Leq,
            missing_left,
            left,
            right,
        };
        return;
    }
    // Test j (j ≥ 1) lands at `base + j - 1`, so test j's "no match" edge is `base + j`.
    let base = nodes.len();
    for (j, &v) in set.iter().enumerate() {
        let last = j + 1 == set.len();
        let node = NodeSpec::Branch {
            feature,
            threshold: v,
            rule: SplitRule::Eq,
            missing_left: missing_left && j == 0,
            left,
            right: if last { right } else { base + j },
        };
        if j == 0 {
            nodes[at] = node;
        } else {
            nodes.push(node);
        }
    }
}
