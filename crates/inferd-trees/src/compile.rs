//! Compiling an [`EnsembleSpec`] into the flat layout the evaluator walks: validation first,
//! then every tree laid out in pre-order with an implicit "next" child and one explicit child.
//!
//! Every comparison rule is rewritten into the single form `x <= t32` (f32 threshold), which
//! is exact: for an f32 `x` and an f64 `t`, `(x as f64) <= t` holds iff `x <= round_down(t)`,
//! and `<`, `>=`, `>` reduce to `<=` on a neighbouring f32 with the children swapped. `==` and
//! `!=` become two nodes. One form means the hot loop has no per-node dispatch.

use crate::layout::{Node, Tree, LEAF, LEAF_COUNT_MASK, LEAF_NAN, MISSING_NEXT};
use crate::spec::{Aggregate, EnsembleSpec, NodeSpec, SplitRule};
use crate::{Ensemble, TreeError};

/// Largest f32 `c` with `c <= t` (may be -inf). NaN stays NaN, which never compares true.
fn round_down(t: f64) -> f32 {
    if t.is_nan() {
        return f32::NAN;
    }
    let c = t as f32;
    if (c as f64) > t {
        c.next_down()
    } else {
        c
    }
}

/// Largest f32 `c` with `c < t`, as a `<=` threshold; NaN ("never") when none exists.
fn largest_below(t: f64) -> f32 {
    if t.is_nan() || t == f64::NEG_INFINITY {
        return f32::NAN;
    }
    let c = t as f32;
    if (c as f64) >= t {
        c.next_down()
    } else {
        c
    }
}

/// A threshold that no f32 satisfies with `<=`.
const NEVER: f32 = f32::NAN;

/// One compiled comparison before its children are known: `x <= thr` sends the row to
/// `next`, anything else to `explicit`; a NaN goes to `next` only if `missing_next`.
struct Step {
    thr: f32,
    missing_next: bool,
    next: Target,
    explicit: Target,
}

/// Where a compiled edge leads: a spec node, or the second node of an `==` pair.
#[derive(Clone, Copy)]
enum Target {
    Spec(usize),
    /// The node right after the one being emitted (used inside an `==` pair).
    Following,
}

/// Rewrites one spec branch into one or two `<=` steps (see the module docs).
fn lower_branch(
    t: f64,
    rule: SplitRule,
    missing_left: bool,
    left: usize,
    right: usize,
) -> Vec<Step> {
    let (l, r) = (Target::Spec(left), Target::Spec(right));
    let step = |thr, missing_next, next, explicit| Step {
        thr,
        missing_next,
        next,
        explicit,
    };
    // `x <op> NaN` is false for every op but `!=`: the branch is decided by missingness alone.
    if t.is_nan() {
        return match rule {
            SplitRule::Neq => vec![step(NEVER, !missing_left, r, l)],
            _ => vec![step(NEVER, missing_left, l, r)],
        };
    }
    match rule {
        SplitRule::Leq => vec![step(round_down(t), missing_left, l, r)],
        SplitRule::Lt => vec![step(largest_below(t), missing_left, l, r)],
        // x >= t  <=>  !(x < t): the `<=` test now selects the right child, laid out next.
        SplitRule::Gte => vec![step(largest_below(t), !missing_left, r, l)],
        SplitRule::Gt => vec![step(round_down(t), !missing_left, r, l)],
        SplitRule::Eq | SplitRule::Neq => {
            let (eq, ne, missing_eq) = match rule {
                SplitRule::Eq => (l, r, missing_left),
                _ => (r, l, !missing_left),
            };
            let c = t as f32;
            if c as f64 != t {
                // No f32 equals t: only missingness can reach the "equal" side.
                return vec![step(NEVER, missing_eq, eq, ne)];
            }
            // x == c  <=>  x <= c  and not x <= largest_below(c). Layout: [first, second, ne..]
            // so that `ne` is both the first's explicit child and the second's next child.
            let below = largest_below(c as f64);
            vec![
                step(c, missing_eq, Target::Following, ne),
                step(
                    if below.is_nan() { NEVER } else { below },
                    !missing_eq,
                    ne,
                    eq,
                ),
            ]
        }
    }
}

/// Checks indices, features, targets and acyclicity of one tree (iteratively: trees from
/// untrusted files may be arbitrarily deep).
fn validate_tree(spec: &EnsembleSpec, tree: usize) -> Result<(), TreeError> {
    let nodes = &spec.trees[tree].nodes;
    if nodes.is_empty() {
        return Err(TreeError::EmptyTree { tree });
    }
    if nodes.len() >= (u32::MAX / 4) as usize {
        return Err(TreeError::TooLarge);
    }
    for (node, n) in nodes.iter().enumerate() {
        match n {
            NodeSpec::Branch {
                feature,
                left,
                right,
                ..
            } => {
                if *feature >= spec.n_features {
                    return Err(TreeError::FeatureOutOfRange {
                        tree,
                        node,
                        feature: *feature,
                        n_features: spec.n_features,
                    });
                }
                for &child in [left, right] {
                    if child >= nodes.len() {
                        return Err(TreeError::NodeOutOfRange { tree, node, child });
                    }
                }
            }
            NodeSpec::Leaf { values } => {
                for &(target, _) in values {
                    if target >= spec.n_targets {
                        return Err(TreeError::TargetOutOfRange {
                            tree,
                            node,
                            target,
                            n_targets: spec.n_targets,
                        });
                    }
                }
            }
        }
    }
    // Depth-first colouring from the root: meeting a node that is still on the path is a cycle.
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    let mut stack = vec![(0usize, 0u8)];
    state[0] = ON_PATH;
    while let Some((node, visited)) = stack.pop() {
        let children = match &nodes[node] {
            NodeSpec::Branch { left, right, .. } => [*left, *right],
            NodeSpec::Leaf { .. } => {
                state[node] = DONE;
                continue;
            }
        };
        if visited == 2 {
            state[node] = DONE;
            continue;
        }
        stack.push((node, visited + 1));
        let child = children[visited as usize];
        match state[child] {
            ON_PATH => return Err(TreeError::Cycle { tree }),
            NEW => {
                state[child] = ON_PATH;
                stack.push((child, 0));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Lays out one validated tree; returns its depth in compiled steps.
fn emit_tree(
    spec_nodes: &[NodeSpec],
    nodes: &mut Vec<Node>,
    leaf_targets: &mut Vec<u32>,
    leaf_values: &mut Vec<f64>,
    leaf_starts: &mut Vec<(u32, u32)>,
) -> Result<(), TreeError> {
    // Indices stored in `right` are absolute in the ensemble's node array, so a walk needs
    // no per-tree base; `compile` has checked that they fit in u32.
    let local = |nodes: &Vec<Node>| nodes.len() as u32;
    let mut placed: Vec<Option<u32>> = vec![None; spec_nodes.len()];
    // Explicit edges whose target is not laid out yet: (compiled node, spec target).
    let mut fixups: Vec<(usize, usize)> = Vec::new();
    let mut chain = Some(0usize);
    loop {
        // Lay out a chain of "next" children until a leaf (or an already placed node) ends it.
        while let Some(s) = chain.take() {
            if let Some(at) = placed[s] {
                // Shared subtree (the spec is a DAG): jump to it rather than copy it.
                nodes.push(Node {
                    thr: NEVER,
                    feat: 0,
                    right: at,
                });
                break;
            }
            placed[s] = Some(local(nodes));
            match &spec_nodes[s] {
                NodeSpec::Leaf { values } => {
                    let start = leaf_values.len();
                    for &(t, v) in values {
                        leaf_targets.push(t as u32);
                        leaf_values.push(v);
                    }
                    if leaf_values.len() > u32::MAX as usize
                        || values.len() > LEAF_COUNT_MASK as usize
                    {
                        return Err(TreeError::TooLarge);
                    }
                    // A leaf loops to itself: its threshold is a NaN (never `<=`) carrying the
                    // value count in its payload, and `right` is its own index. Walks can then
                    // take a fixed number of steps without testing for leaves.
                    let at = local(nodes);
                    leaf_starts.push((at, start as u32));
                    nodes.push(Node {
                        thr: f32::from_bits(LEAF_NAN | values.len() as u32),
                        feat: LEAF,
                        right: at,
                    });
                }
                &NodeSpec::Branch {
                    feature,
                    threshold,
                    rule,
                    missing_left,
                    left,
                    right,
                } => {
                    let steps = lower_branch(threshold, rule, missing_left, left, right);
                    for step in steps {
                        let at = nodes.len();
                        let flags = if step.missing_next { MISSING_NEXT } else { 0 };
                        nodes.push(Node {
                            thr: step.thr,
                            feat: feature as u32 | flags,
                            right: 0,
                        });
                        if let Target::Spec(e) = step.explicit {
                            fixups.push((at, e));
                        }
                        if let Target::Spec(n) = step.next {
                            chain = Some(n);
                        }
                    }
                }
            }
        }
        let Some((at, target)) = fixups.pop() else {
            break;
        };
        nodes[at].right = match placed[target] {
            Some(p) => p,
            None => {
                chain = Some(target);
                local(nodes)
            }
        };
    }
    Ok(())
}

/// Longest number of steps from the root to a leaf in a compiled tree starting at `base`.
fn depth(nodes: &[Node], base: usize) -> u32 {
    let nodes = &nodes[base..];
    // Edges can point backwards (jumps to shared subtrees), so memoise over an explicit stack.
    let mut memo: Vec<Option<u32>> = vec![None; nodes.len()];
    let mut stack = vec![0usize];
    while let Some(&i) = stack.last() {
        if memo[i].is_some() {
            stack.pop();
            continue;
        }
        let n = nodes[i];
        if n.feat & LEAF != 0 {
            memo[i] = Some(0);
            stack.pop();
            continue;
        }
        // A jump node has only its explicit child (its "next" is never taken).
        let is_jump = n.thr.is_nan() && n.feat & MISSING_NEXT == 0;
        let kids = [(!is_jump).then_some(i + 1), Some(n.right as usize - base)];
        let pending: Vec<usize> = kids
            .iter()
            .flatten()
            .copied()
            .filter(|&k| memo[k].is_none())
            .collect();
        if pending.is_empty() {
            let d = kids
                .iter()
                .flatten()
                .map(|&k| memo[k].unwrap_or(0))
                .max()
                .unwrap_or(0);
            memo[i] = Some(d + 1);
            stack.pop();
        } else {
            stack.extend(pending);
        }
    }
    memo[0].unwrap_or(0)
}

pub(crate) fn compile(spec: &EnsembleSpec) -> Result<Ensemble, TreeError> {
    if spec.n_targets == 0 {
        return Err(TreeError::NoTargets);
    }
    if spec.n_features >= (1 << 24) {
        return Err(TreeError::TooLarge);
    }
    if !spec.base_values.is_empty() && spec.base_values.len() != spec.n_targets {
        return Err(TreeError::BaseValues {
            got: spec.base_values.len(),
            n_targets: spec.n_targets,
        });
    }
    let mut nodes = Vec::new();
    let mut trees = Vec::with_capacity(spec.trees.len());
    let mut leaf_targets = Vec::new();
    let mut leaf_values = Vec::new();
    let mut leaf_starts = Vec::new();
    for tree in 0..spec.trees.len() {
        validate_tree(spec, tree)?;
        // Checked before laying out so that absolute u32 indices cannot overflow.
        if nodes.len().saturating_add(4 * spec.trees[tree].nodes.len()) >= u32::MAX as usize {
            return Err(TreeError::TooLarge);
        }
        let start = nodes.len();
        emit_tree(
            &spec.trees[tree].nodes,
            &mut nodes,
            &mut leaf_targets,
            &mut leaf_values,
            &mut leaf_starts,
        )?;
        let depth = depth(&nodes, start);
        trees.push(Tree {
            start: start as u32,
            end: nodes.len() as u32,
            depth,
        });
    }
    // Only the targets of multi-target leaves need storing; single-target ensembles skip them.
    let single_target = spec.n_targets == 1;
    if single_target {
        leaf_targets = Vec::new();
    }
    let base_values = if spec.base_values.is_empty() {
        vec![0.0; spec.n_targets]
    } else {
        spec.base_values.clone()
    };
    let mut leaf_start = vec![0u32; nodes.len()];
    for (at, start) in leaf_starts {
        leaf_start[at as usize] = start;
    }
    let has_missing = nodes.iter().any(|n| n.feat & MISSING_NEXT != 0);
    nodes.shrink_to_fit();
    leaf_values.shrink_to_fit();
    leaf_targets.shrink_to_fit();
    Ok(Ensemble {
        nodes,
        trees,
        leaf_targets,
        leaf_values,
        leaf_start,
        has_missing,
        n_features: spec.n_features,
        n_targets: spec.n_targets,
        aggregate: spec.aggregate,
        base_values,
        max_threads: crate::default_threads(),
    })
}

impl Aggregate {
    pub(crate) fn is_additive(self) -> bool {
        matches!(self, Aggregate::Sum | Aggregate::Average)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_exact_for_every_rule() {
        let xs: Vec<f32> = vec![
            0.1,
            0.1f32.next_up(),
            0.1f32.next_down(),
            -0.0,
            0.0,
            1.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-45,
        ];
        let ts: Vec<f64> = vec![
            0.1,
            0.1f32 as f64,
            (0.1f32 as f64).next_up(),
            (0.1f32 as f64).next_down(),
            0.0,
            1.0,
            f64::MAX,
            -f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f32::MAX as f64 * 1.5,
            1e-300,
        ];
        for &t in &ts {
            for &x in &xs {
                let xd = x as f64;
                assert_eq!(x <= round_down(t), xd <= t, "x={x} t={t} <=");
                let lb = largest_below(t);
                assert_eq!(x <= lb, xd < t, "x={x} t={t} <");
            }
        }
    }
}
