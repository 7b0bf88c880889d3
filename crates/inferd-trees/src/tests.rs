//! Engine tests: a direct interpreter of the spec is the reference every layout, batch size
//! and thread count must reproduce bit for bit.

use super::*;

/// Reference semantics, straight from the spec's documentation.
fn reference(spec: &EnsembleSpec, row: &[f32]) -> Vec<f64> {
    let nt = spec.n_targets;
    let mut acc = vec![0.0; nt];
    let mut seen = vec![false; nt];
    for tree in &spec.trees {
        let mut i = 0;
        let values = loop {
            match &tree.nodes[i] {
                NodeSpec::Leaf { values } => break values,
                &NodeSpec::Branch {
                    feature,
                    threshold: t,
                    rule,
                    missing_left,
                    left,
                    right,
                } => {
                    let x = row[feature];
                    let go_left = if x.is_nan() {
                        missing_left
                    } else {
                        let x = x as f64;
                        match rule {
                            SplitRule::Leq => x <= t,
                            SplitRule::Lt => x < t,
                            SplitRule::Gte => x >= t,
                            SplitRule::Gt => x > t,
                            SplitRule::Eq => x == t,
                            SplitRule::Neq => x != t,
                        }
                    };
                    i = if go_left { left } else { right };
                }
            }
        };
        for &(t, v) in values {
            match spec.aggregate {
                Aggregate::Sum | Aggregate::Average => acc[t] += v,
                Aggregate::Min => acc[t] = if seen[t] { acc[t].min(v) } else { v },
                Aggregate::Max => acc[t] = if seen[t] { acc[t].max(v) } else { v },
            }
            seen[t] = true;
        }
    }
    (0..nt)
        .map(|t| {
            let agg = match spec.aggregate {
                Aggregate::Average => acc[t] / spec.trees.len().max(1) as f64,
                _ => acc[t],
            };
            spec.base_values.get(t).copied().unwrap_or(0.0) + agg
        })
        .collect()
}

/// Small deterministic generator (xorshift), so the tests need no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const RULES: [SplitRule; 6] = [
    SplitRule::Leq,
    SplitRule::Lt,
    SplitRule::Gte,
    SplitRule::Gt,
    SplitRule::Eq,
    SplitRule::Neq,
];

/// Thresholds drawn from a small grid, so that `==` and ties actually happen; some are not
/// representable in f32 to exercise the rounding.
fn threshold(rng: &mut Rng) -> f64 {
    match rng.below(6) {
        0 => (rng.below(5) as f64) * 0.5,
        1 => 0.1 * rng.below(10) as f64,
        2 => ((rng.below(10) as f32) * 0.1) as f64,
        3 => f64::NAN,
        4 => [f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e-300][rng.below(4)],
        _ => rng.unit() * 4.0 - 2.0,
    }
}

fn random_tree(rng: &mut Rng, depth: usize, nf: usize, nt: usize, rules: &[SplitRule]) -> TreeSpec {
    fn grow(
        rng: &mut Rng,
        nodes: &mut Vec<NodeSpec>,
        depth: usize,
        nf: usize,
        nt: usize,
        rules: &[SplitRule],
    ) -> usize {
        let at = nodes.len();
        if depth == 0 || rng.below(5) == 0 {
            let k = 1 + rng.below(nt);
            let values = (0..k)
                .map(|_| (rng.below(nt), rng.unit() * 10.0 - 5.0))
                .collect();
            nodes.push(NodeSpec::Leaf { values });
            return at;
        }
        nodes.push(NodeSpec::Leaf { values: vec![] });
        let left = grow(rng, nodes, depth - 1, nf, nt, rules);
        let right = grow(rng, nodes, depth - 1, nf, nt, rules);
        nodes[at] = NodeSpec::Branch {
            feature: rng.below(nf),
            threshold: threshold(rng),
            rule: rules[rng.below(rules.len())],
            missing_left: rng.below(2) == 0,
            left,
            right,
        };
        at
    }
    let mut nodes = Vec::new();
    grow(rng, &mut nodes, depth, nf, nt, rules);
    TreeSpec { nodes }
}

fn random_rows(rng: &mut Rng, n: usize, nf: usize) -> Vec<f32> {
    (0..n * nf)
        .map(|_| match rng.below(8) {
            0 => f32::NAN,
            1 => (rng.below(5) as f32) * 0.5,
            2 => (rng.below(10) as f32) * 0.1,
            3 => [f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0][rng.below(4)],
            _ => (rng.unit() * 4.0 - 2.0) as f32,
        })
        .collect()
}

fn check(spec: &EnsembleSpec, rows: &[f32]) {
    let e = Ensemble::compile(spec).unwrap();
    let nf = spec.n_features;
    let n_rows = rows.len() / nf;
    let want: Vec<f64> = rows.chunks(nf).flat_map(|r| reference(spec, r)).collect();
    for threads in [1, 2, 3] {
        // Whole batch, plus every prefix size up to a few lane groups.
        let mut out = vec![f64::NAN; n_rows * spec.n_targets];
        e.predict_with_threads(rows, &mut out, threads);
        assert_close(&out, &want, spec.aggregate);
        for n in [1, 2, 7, 8, 9, 17] {
            if n <= n_rows {
                let mut out = vec![f64::NAN; n * spec.n_targets];
                e.predict_with_threads(&rows[..n * nf], &mut out, threads);
                assert_close(&out, &want[..n * spec.n_targets], spec.aggregate);
            }
        }
    }
}

/// Exact for min/max; sums may be added in another order across threads, so allow rounding.
fn assert_close(got: &[f64], want: &[f64], aggregate: Aggregate) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if aggregate.is_additive() {
            (g - w).abs() <= 1e-12 * w.abs().max(1.0)
        } else {
            g == w
        };
        assert!(ok, "value {k}: got {g}, want {w}");
    }
}

#[test]
fn matches_reference_on_random_ensembles() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..60 {
        let nf = 1 + rng.below(6);
        let nt = 1 + rng.below(3);
        let aggregate = [
            Aggregate::Sum,
            Aggregate::Average,
            Aggregate::Min,
            Aggregate::Max,
        ][case % 4];
        let rules: &[SplitRule] = if case % 3 == 0 { &RULES[..1] } else { &RULES };
        let n_trees = 1 + rng.below(20);
        let trees = (0..n_trees)
            .map(|_| {
                let depth = 1 + rng.below(7);
                random_tree(&mut rng, depth, nf, nt, rules)
            })
            .collect();
        let base_values = if case % 2 == 0 {
            vec![]
        } else {
            (0..nt).map(|_| rng.unit()).collect()
        };
        let spec = EnsembleSpec {
            trees,
            n_features: nf,
            n_targets: nt,
            aggregate,
            base_values,
        };
        let rows = random_rows(&mut rng, 40, nf);
        check(&spec, &rows);
    }
}

#[test]
fn large_batches_use_threads_and_agree() {
    let mut rng = Rng(42);
    let nf = 5;
    for aggregate in [Aggregate::Sum, Aggregate::Max] {
        let trees = (0..50)
            .map(|_| random_tree(&mut rng, 10, nf, 2, &RULES))
            .collect();
        let spec = EnsembleSpec {
            trees,
            n_features: nf,
            n_targets: 2,
            aggregate,
            base_values: vec![],
        };
        // Enough rows to cross the threading threshold both row- and tree-parallel.
        check(&spec, &random_rows(&mut rng, 3000, nf));
    }
}

fn leaf(v: f64) -> NodeSpec {
    NodeSpec::Leaf {
        values: vec![(0, v)],
    }
}

fn stump(threshold: f64, rule: SplitRule, missing_left: bool) -> EnsembleSpec {
    EnsembleSpec {
        trees: vec![TreeSpec {
            nodes: vec![
                NodeSpec::Branch {
                    feature: 0,
                    threshold,
                    rule,
                    missing_left,
                    left: 1,
                    right: 2,
                },
                leaf(1.0),
                leaf(2.0),
            ],
        }],
        n_features: 1,
        n_targets: 1,
        aggregate: Aggregate::Sum,
        base_values: vec![0.5],
    }
}

#[test]
fn f64_thresholds_compare_exactly() {
    // 0.1 is not an f32: 0.1f32 is slightly above it, so `0.1f32 <= 0.1` is false in f64.
    let e = Ensemble::compile(&stump(0.1, SplitRule::Leq, false)).unwrap();
    let mut out = [0.0; 3];
    e.predict(&[0.1f32.next_down(), 0.1, f32::NAN], &mut out);
    assert_eq!(out, [1.5, 2.5, 2.5]);
    let e = Ensemble::compile(&stump(0.1, SplitRule::Gt, true)).unwrap();
    e.predict(&[0.1f32.next_down(), 0.1, f32::NAN], &mut out);
    assert_eq!(out, [2.5, 1.5, 1.5]);
}

#[test]
fn shared_subtrees_are_allowed() {
    let spec = EnsembleSpec {
        trees: vec![TreeSpec {
            nodes: vec![
                NodeSpec::Branch {
                    feature: 0,
                    threshold: 0.0,
                    rule: SplitRule::Leq,
                    missing_left: false,
                    left: 1,
                    right: 1,
                },
                NodeSpec::Branch {
                    feature: 0,
                    threshold: 1.0,
                    rule: SplitRule::Leq,
                    missing_left: true,
                    left: 2,
                    right: 3,
                },
                leaf(1.0),
                leaf(2.0),
            ],
        }],
        n_features: 1,
        n_targets: 1,
        aggregate: Aggregate::Sum,
        base_values: vec![],
    };
    check(
        &spec,
        &[-1.0, 0.5, 2.0, f32::NAN, 1.0, 0.0, 3.0, -3.0, 1.5, 0.25],
    );
}

#[test]
fn invalid_specs_are_refused() {
    let mut spec = stump(0.0, SplitRule::Leq, false);
    spec.trees[0].nodes[0] = NodeSpec::Branch {
        feature: 0,
        threshold: 0.0,
        rule: SplitRule::Leq,
        missing_left: false,
        left: 1,
        right: 9,
    };
    assert_eq!(
        Ensemble::compile(&spec).unwrap_err(),
        TreeError::NodeOutOfRange {
            tree: 0,
            node: 0,
            child: 9
        }
    );

    let mut spec = stump(0.0, SplitRule::Leq, false);
    spec.trees[0].nodes[1] = NodeSpec::Branch {
        feature: 0,
        threshold: 0.0,
        rule: SplitRule::Leq,
        missing_left: false,
        left: 0,
        right: 2,
    };
    assert_eq!(
        Ensemble::compile(&spec).unwrap_err(),
        TreeError::Cycle { tree: 0 }
    );

    let mut spec = stump(0.0, SplitRule::Leq, false);
    spec.n_features = 0;
    assert!(matches!(
        Ensemble::compile(&spec),
        Err(TreeError::FeatureOutOfRange { feature: 0, .. })
    ));

    let mut spec = stump(0.0, SplitRule::Leq, false);
    spec.trees[0].nodes[2] = NodeSpec::Leaf {
        values: vec![(3, 1.0)],
    };
    assert!(matches!(
        Ensemble::compile(&spec),
        Err(TreeError::TargetOutOfRange { target: 3, .. })
    ));

    let mut spec = stump(0.0, SplitRule::Leq, false);
    spec.base_values = vec![1.0, 2.0];
    assert!(matches!(
        Ensemble::compile(&spec),
        Err(TreeError::BaseValues { .. })
    ));

    let mut spec = stump(0.0, SplitRule::Leq, false);
    spec.trees.push(TreeSpec::default());
    assert_eq!(
        Ensemble::compile(&spec).unwrap_err(),
        TreeError::EmptyTree { tree: 1 }
    );
}

#[test]
fn leaf_only_and_featureless_models_work() {
    let spec = EnsembleSpec {
        trees: vec![
            TreeSpec {
                nodes: vec![leaf(2.0)]
            };
            3
        ],
        n_features: 0,
        n_targets: 1,
        aggregate: Aggregate::Average,
        base_values: vec![1.0],
    };
    let e = Ensemble::compile(&spec).unwrap();
    let mut out = [0.0; 4];
    e.predict(&[], &mut out);
    assert_eq!(out, [3.0; 4]);
}

#[test]
fn very_deep_trees_compile_without_recursion() {
    let depth = 100_000;
    let mut nodes = Vec::new();
    for d in 0..depth {
        // A chain down the right: each branch's left child is a leaf.
        let at = nodes.len();
        nodes.push(NodeSpec::Branch {
            feature: 0,
            threshold: d as f64,
            rule: SplitRule::Lt,
            missing_left: false,
            left: at + 1,
            right: at + 2,
        });
        nodes.push(leaf(d as f64));
    }
    nodes.push(leaf(-1.0));
    let spec = EnsembleSpec {
        trees: vec![TreeSpec { nodes }],
        n_features: 1,
        n_targets: 1,
        aggregate: Aggregate::Sum,
        base_values: vec![],
    };
    let e = Ensemble::compile(&spec).unwrap();
    let mut out = [0.0; 2];
    e.predict(&[5.5, 1e9], &mut out);
    assert_eq!(out, [6.0, -1.0]);
}

#[test]
fn ensembles_without_missing_routing_take_the_short_path() {
    // `<=` with NaN going right everywhere (scikit-learn's trees): no node needs the NaN
    // test, so the walk specialised without it must still send NaN right.
    let mut rng = Rng(99);
    let mut trees: Vec<TreeSpec> = (0..30)
        .map(|_| random_tree(&mut rng, 8, 4, 1, &RULES[..1]))
        .collect();
    for t in &mut trees {
        for n in &mut t.nodes {
            if let NodeSpec::Branch {
                missing_left,
                threshold,
                ..
            } = n
            {
                *missing_left = false;
                if threshold.is_nan() {
                    *threshold = 0.5;
                }
            }
        }
    }
    let spec = EnsembleSpec {
        trees,
        n_features: 4,
        n_targets: 1,
        aggregate: Aggregate::Sum,
        base_values: vec![],
    };
    assert!(!Ensemble::compile(&spec).unwrap().has_missing);
    check(&spec, &random_rows(&mut rng, 64, 4));
}
