//! LightGBM's branch decisions (`Tree::NumericalDecision`, `Tree::CategoricalDecision`) as
//! plain `Leq`/`Lt` spec branches, exact for every f32 input.
//!
//! LightGBM's predictor first drops near-zero values (`|x| <= kZeroThreshold`, 1e-35f) from
//! dense rows, so they reach the trees as exactly 0.0. A numerical branch then compares
//! `x <= threshold` (a double) and routes missing values by its missing type: None (NaN
//! becomes 0.0), Zero (NaN and zeros go the default way) or NaN (NaN goes the default way).
//! A categorical branch truncates `x` to an `int` and goes left when that category is in the
//! split's bitset; NaN, negative and out-of-`int`-range values go right.

use inferd_trees::{NodeSpec, SplitRule};

use crate::NativeError;

/// LightGBM's `kZeroThreshold` (`1e-35f` widened to double).
pub(super) const ZERO: f64 = 1e-35f32 as f64;

/// Most category ranges one categorical split may hold: each costs two nodes, and the count
/// comes from the file.
const MAX_CATEGORY_RANGES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Missing {
    None,
    Zero,
    NaN,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Split {
    pub feature: usize,
    pub threshold: f64,
    pub left: usize,
    pub right: usize,
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
pub(super) fn numerical(
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

/// A categorical branch over the categories whose bits are set in `words`: the node to put at
/// the branch's index, plus helper nodes pushed onto `extra` (spec indices from `base`).
///
/// `int(x)` is `c` for `x` in `[c, c + 1)`, and 0 for `x` in `(-1, 1)`; runs of consecutive
/// categories merge into one interval, and a balanced search over the interval ends decides.
pub(super) fn categorical(
    split: Split,
    words: &[u32],
    base: usize,
    extra: &mut Vec<NodeSpec>,
) -> Result<NodeSpec, NativeError> {
    // Interval ends in increasing order; crossing one switches between right and left.
    // `(value, rule)`: `x <rule> value` means "below this end".
    let mut ends: Vec<(f64, SplitRule)> = Vec::new();
    let mut in_run = false;
    let bits = words.len() * 32;
    let mut c = 0;
    while c <= bits {
        // Whole words that continue the current state are skipped.
        if c % 32 == 0 && c < bits && words[c / 32] == if in_run { u32::MAX } else { 0 } {
            c += 32;
            continue;
        }
        let set = c < bits && (words[c / 32] >> (c % 32)) & 1 == 1;
        if set != in_run {
            ends.push(match (set, c) {
                // Category 0 starts just above -1 (truncation toward zero).
                (true, 0) => (-1.0, SplitRule::Leq),
                _ => (c as f64, SplitRule::Lt),
            });
            in_run = set;
        }
        if ends.len() > 2 * MAX_CATEGORY_RANGES {
            return Err(NativeError::Unsupported(format!(
                "categorical split with more than {MAX_CATEGORY_RANGES} category ranges"
            )));
        }
        c += 1;
    }
    if ends.is_empty() {
        // No category goes left.
        return Ok(split.branch(f64::NEG_INFINITY, SplitRule::Lt, false));
    }
    let last = ends.len();
    Ok(Search {
        ends: &ends,
        split,
        base,
        extra,
    }
    .node(0, last))
}

/// A balanced search over interval ends. Segment `s` (below end 0, between ends `s - 1` and
/// `s`, or above the last) goes left iff `s` is odd. NaN takes the "above" side at every end
/// and so lands in the last segment, which goes right, as LightGBM sends it.
struct Search<'a> {
    ends: &'a [(f64, SplitRule)],
    split: Split,
    base: usize,
    extra: &'a mut Vec<NodeSpec>,
}

impl Search<'_> {
    /// The node choosing among segments `first..=last` (`first < last`).
    fn node(&mut self, first: usize, last: usize) -> NodeSpec {
        let mid = (first + last) / 2;
        let left = self.child(first, mid);
        let right = self.child(mid + 1, last);
        let (threshold, rule) = self.ends[mid];
        NodeSpec::Branch {
            feature: self.split.feature,
            threshold,
            rule,
            missing_left: false,
            left,
            right,
        }
    }

    /// Spec index of the subtree for segments `first..=last`.
    fn child(&mut self, first: usize, last: usize) -> usize {
        if first == last {
            return if first % 2 == 1 {
                self.split.left
            } else {
                self.split.right
            };
        }
        let node = self.node(first, last);
        self.extra.push(node);
        self.base + self.extra.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferd_trees::{Aggregate, Ensemble, EnsembleSpec, TreeSpec};

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

    /// LightGBM's `CategoricalDecision` after the predictor's near-zero dropping, with x86's
    /// `static_cast<int>` (out-of-range and infinite values become `INT_MIN`).
    fn categorical_reference(x: f32, words: &[u32]) -> bool {
        let mut x = x as f64;
        if x.abs() <= ZERO {
            x = 0.0;
        }
        if x.is_nan() {
            return false;
        }
        let i = if x > -2147483649.0 && x < 2147483648.0 {
            x.trunc() as i64
        } else {
            -1
        };
        if i < 0 {
            return false;
        }
        let w = (i / 32) as usize;
        w < words.len() && (words[w] >> (i % 32)) & 1 == 1
    }

    fn evaluate(root: NodeSpec, extra: Vec<NodeSpec>, xs: &[f32]) -> Vec<f64> {
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
        Ensemble::compile(&spec).unwrap().predict(xs, &mut out);
        out
    }

    #[test]
    fn categorical_decisions_match_lightgbm() {
        let mut xs: Vec<f32> = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e-36,
            -1e-36,
            -0.5,
            -0.999_999,
            -1.0,
            -1.5,
            2147483648.0,
            2147483520.0,
            4e9,
            -4e9,
            1e30,
        ];
        for c in 0..70 {
            let c = c as f32;
            xs.extend([c, c + 0.5, c.next_down(), c + 0.999_99]);
        }
        let sets: &[&[u32]] = &[
            &[],
            &[0],
            &[1],
            &[0b110],
            &[u32::MAX],
            &[u32::MAX, u32::MAX],
            &[0x5555_5555, 1],
            &[0, 0b1001_0110],
            &[0x8000_0000, 0x0000_0001],
            &[1 << 31, 0, u32::MAX],
        ];
        for words in sets {
            let split = Split {
                feature: 0,
                threshold: 0.0,
                left: 1,
                right: 2,
            };
            let mut extra = Vec::new();
            let root = categorical(split, words, 3, &mut extra).unwrap();
            let out = evaluate(root, extra, &xs);
            for (&x, &got) in xs.iter().zip(&out) {
                let want = if categorical_reference(x, words) {
                    1.0
                } else {
                    2.0
                };
                assert_eq!(got, want, "x={x:e} words={words:x?}");
            }
        }
    }

    #[test]
    fn too_many_category_ranges_are_refused() {
        let words = vec![0x5555_5555u32; 1000];
        let split = Split {
            feature: 0,
            threshold: 0.0,
            left: 1,
            right: 2,
        };
        let err = categorical(split, &words, 3, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, NativeError::Unsupported(_)), "{err}");
    }
}
