//! TreeEnsembleClassifier, TreeEnsembleRegressor (ai.onnx.ml 1–3) and TreeEnsemble (5),
//! compiled into the inferd-trees engine; this file adds what the engine leaves to callers:
//! post-transforms, class labels and onnxruntime's rules for binary classifiers.

use std::borrow::Cow;

use super::tree_attrs::{self, PostTransform, LEGACY_NODE_ATTRS, TREE_ENSEMBLE_ATTRS};
use super::{input, Op};
use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::tensor::{as_matrix, f32s};
use inferd_core::{Tensor, TensorData};
use inferd_trees::{Aggregate, Ensemble};

/// More targets than any real model has; a bound so that a hostile file cannot make us
/// allocate per-row outputs it did not pay for.
pub const MAX_TARGETS: i64 = 1 << 16;

/// Nanoseconds per compiled node step, for the executor's cost estimate.
const NS_PER_STEP: u64 = 2;

/// Runs the engine on `x`, handing it exactly `n_features` columns per row.
fn evaluate(e: &Ensemble, x: &Tensor) -> OpResult<(usize, Vec<f64>)> {
    let (n, cols) = as_matrix(x);
    let nf = e.n_features();
    if cols < nf {
        fail!("input has {cols} features per row, the trees use {nf}");
    }
    let data = f32s(x)?;
    // The engine wants rows of exactly the features it uses; wider rows are trimmed.
    let rows: Cow<'_, [f32]> = if cols == nf {
        data
    } else {
        Cow::Owned(
            data.chunks(cols.max(1))
                .flat_map(|r| &r[..nf])
                .copied()
                .collect(),
        )
    };
    let mut out = vec![0.0; n * e.n_targets()];
    e.predict(&rows, &mut out);
    Ok((n, out))
}

fn logistic(x: f64) -> f64 {
    // Written to avoid exp overflow for large |x|.
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

/// Inverse error function, by Giles' single-precision approximation; enough for PROBIT,
/// which onnxruntime also computes in f32.
fn erfinv(x: f64) -> f64 {
    let w = -((1.0 - x) * (1.0 + x)).ln();
    let p = if w < 5.0 {
        let w = w - 2.5;
        let mut p = 2.810_226_36e-08;
        for c in [
            3.432_739_39e-07,
            -3.523_387_7e-06,
            -4.391_506_54e-06,
            0.000_218_580_87,
            -0.001_253_725_03,
            -0.004_177_681_64,
            0.246_640_727,
            1.501_409_41,
        ] {
            p = c + p * w;
        }
        p
    } else {
        let w = w.sqrt() - 3.0;
        let mut p = -0.000_200_214_257;
        for c in [
            0.000_100_950_558,
            0.001_349_343_22,
            -0.003_673_428_44,
            0.005_739_507_73,
            -0.007_622_461_3,
            0.009_438_870_47,
            1.001_674_06,
            2.832_976_82,
        ] {
            p = c + p * w;
        }
        p
    };
    p * x
}

fn probit(x: f64) -> f64 {
    std::f64::consts::SQRT_2 * erfinv(2.0 * x - 1.0)
}

/// Applies a post-transform to one row of scores, as ONNX-ML defines them.
fn transform(t: PostTransform, scores: &mut [f64]) {
    match t {
        PostTransform::None => {}
        PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
        PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
        PostTransform::Softmax => {
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            scores.iter_mut().for_each(|s| *s /= sum);
        }
        PostTransform::SoftmaxZero => {
            // Zero scores mean "no vote" and stay zero.
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                if s.abs() > 1e-7 {
                    *s = (*s - max).exp();
                    sum += *s;
                } else {
                    *s = 0.0;
                }
            }
            if sum > 0.0 {
                scores.iter_mut().for_each(|s| *s /= sum);
            }
        }
    }
}

fn ensemble_cost(e: &Ensemble) -> u64 {
    e.steps_per_row() * NS_PER_STEP
}

// ---------------------------------------------------------------------------------------------
// TreeEnsembleRegressor, TreeEnsemble

struct Regressor {
    ensemble: Ensemble,
    post: PostTransform,
    /// Output element type: f32, except TreeEnsemble on double input.
    double_output: bool,
}

impl Op for Regressor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (n, mut out) = evaluate(&self.ensemble, x)?;
        let nt = self.ensemble.n_targets();
        if self.post != PostTransform::None {
            out.chunks_mut(nt).for_each(|row| transform(self.post, row));
        }
        let data = if self.double_output && x.datatype() == inferd_core::DataType::F64 {
            TensorData::F64(out)
        } else {
            TensorData::F32(out.into_iter().map(|v| v as f32).collect())
        };
        Ok(vec![Tensor::new(vec![n, nt], data)?])
    }

    fn cost_per_row_ns(&self) -> u64 {
        ensemble_cost(&self.ensemble)
    }

    fn memory_bytes(&self) -> usize {
        self.ensemble.memory_bytes()
    }

    fn set_threads(&mut self, threads: usize) {
        self.ensemble.set_max_threads(threads);
    }
}

fn compile(spec: &inferd_trees::EnsembleSpec) -> OpResult<Ensemble> {
    match Ensemble::compile(spec) {
        Ok(e) => Ok(e),
        Err(e) => fail!("invalid trees: {e}"),
    }
}

pub fn regressor(a: &Attrs, opset: i64) -> OpResult<Box<dyn Op>> {
    let mut known = LEGACY_NODE_ATTRS.to_vec();
    known.extend([
        "aggregate_function",
        "base_values",
        "n_targets",
        "post_transform",
        "target_ids",
        "target_nodeids",
        "target_treeids",
        "target_weights",
    ]);
    if opset >= 3 {
        known.extend(["base_values_as_tensor", "target_weights_as_tensor"]);
    } else if a.has("nodes_values_as_tensor") || a.has("nodes_hitrates_as_tensor") {
        fail!("'*_as_tensor' attributes need ai.onnx.ml opset 3");
    }
    a.only(&known)?;
    let n_targets = a.int_or("n_targets", 1)?;
    if !(1..=MAX_TARGETS).contains(&n_targets) {
        fail!("n_targets must be between 1 and {MAX_TARGETS}, got {n_targets}");
    }
    let aggregate = tree_attrs::aggregate(&a.string_or("aggregate_function", "SUM")?)?;
    let post = PostTransform::parse(&a.string_or("post_transform", "NONE")?)?;
    let (mut spec, _) = tree_attrs::legacy(a, "target", n_targets as usize, aggregate)?;
    let base = a.floats_or_tensor("base_values")?;
    spec.base_values = match base.len() {
        0 => vec![],
        // One base value for several targets: onnxruntime adds it to the first... only when
        // there is one target; the spec leaves it undefined otherwise, so we refuse it.
        l if l == n_targets as usize => base,
        l => fail!("{l} base values for {n_targets} targets"),
    };
    Ok(Box::new(Regressor {
        ensemble: compile(&spec)?,
        post,
        double_output: false,
    }))
}

pub fn tree_ensemble(a: &Attrs, opset: i64) -> OpResult<Box<dyn Op>> {
    if opset < 5 {
        fail!("TreeEnsemble needs ai.onnx.ml opset 5, the model imports {opset}");
    }
    a.only(&TREE_ENSEMBLE_ATTRS)?;
    let post = PostTransform::from_code(a.int_or("post_transform", 0)?)?;
    let spec = tree_attrs::tree_ensemble(a)?;
    Ok(Box::new(Regressor {
        ensemble: compile(&spec)?,
        post,
        double_output: true,
    }))
}

// ---------------------------------------------------------------------------------------------
// TreeEnsembleClassifier

enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }
}

struct Classifier {
    ensemble: Ensemble,
    post: PostTransform,
    labels: Labels,
    /// Classes some leaf or base value scores; onnxruntime's argmax ignores the others.
    scored: Vec<bool>,
    /// Two classes but leaves score only one of them (`class`): onnxruntime treats the score
    /// as the positive class's and derives the other (see `binary_row`).
    binary: Option<Binary>,
}

struct Binary {
    class: usize,
    /// Added to the single score (the one base value such models carry).
    base: f64,
    all_positive: bool,
}

impl Classifier {
    /// onnxruntime's binary rule: with non-negative weights the score is a probability
    /// (positive above 0.5, probabilities `[1-s, s]`); otherwise it is a margin (positive
    /// above 0, probabilities `[σ(-s), σ(s)]` under LOGISTIC, else `[-s, s]` or `[s, -s]`).
    fn binary_row(&self, b: &Binary, score: f64, probs: &mut [f64]) -> usize {
        let s = score + b.base;
        if self.post == PostTransform::Probit {
            let p = probit(s);
            probs.copy_from_slice(&[p, 0.0]);
            return usize::from(s > 0.0);
        }
        if b.all_positive {
            probs.copy_from_slice(&[1.0 - s, s]);
            return usize::from(s > 0.5);
        }
        let positive = s > 0.0;
        if self.post == PostTransform::Logistic {
            probs.copy_from_slice(&[logistic(-s), logistic(s)]);
        } else if positive {
            probs.copy_from_slice(&[-s, s]);
        } else {
            probs.copy_from_slice(&[s, -s]);
        }
        usize::from(positive)
    }
}

impl Op for Classifier {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (n, scores) = evaluate(&self.ensemble, x)?;
        let nc = self.labels.len();
        let mut probs = vec![0.0f64; n * nc];
        let mut winners = Vec::with_capacity(n);
        for (r, row) in probs.chunks_mut(nc).enumerate() {
            let scores = &scores[r * nc..(r + 1) * nc];
            if let Some(b) = &self.binary {
                winners.push(self.binary_row(b, scores[b.class], row));
                continue;
            }
            row.copy_from_slice(scores);
            // The label is the highest raw score (first on ties) among scored classes; the
            // post-transforms are monotonic, so this is also the highest probability.
            let mut best: Option<usize> = None;
            for k in 0..nc {
                if self.scored[k] && best.is_none_or(|b| row[k] > row[b]) {
                    best = Some(k);
                }
            }
            winners.push(best.unwrap_or(0));
            transform(self.post, row);
        }
        let label = match &self.labels {
            Labels::Ints(l) => TensorData::I64(winners.iter().map(|&w| l[w]).collect()),
            Labels::Strings(l) => {
                TensorData::Bytes(winners.iter().map(|&w| l[w].clone()).collect())
            }
        };
        let probs = TensorData::F32(probs.into_iter().map(|v| v as f32).collect());
        Ok(vec![
            Tensor::new(vec![n], label)?,
            Tensor::new(vec![n, nc], probs)?,
        ])
    }

    fn cost_per_row_ns(&self) -> u64 {
        ensemble_cost(&self.ensemble)
    }

    fn memory_bytes(&self) -> usize {
        self.ensemble.memory_bytes()
    }

    fn set_threads(&mut self, threads: usize) {
        self.ensemble.set_max_threads(threads);
    }
}

pub fn classifier(a: &Attrs, opset: i64) -> OpResult<Box<dyn Op>> {
    let mut known = LEGACY_NODE_ATTRS.to_vec();
    known.extend([
        "base_values",
        "class_ids",
        "class_nodeids",
        "class_treeids",
        "class_weights",
        "classlabels_int64s",
        "classlabels_strings",
        "post_transform",
    ]);
    if opset >= 3 {
        known.extend(["base_values_as_tensor", "class_weights_as_tensor"]);
    } else if a.has("nodes_values_as_tensor") || a.has("nodes_hitrates_as_tensor") {
        fail!("'*_as_tensor' attributes need ai.onnx.ml opset 3");
    }
    a.only(&known)?;
    let ints = a.ints("classlabels_int64s")?;
    let strings = a.strings("classlabels_strings")?;
    let labels = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Labels::Ints(ints),
        (true, false) => Labels::Strings(strings),
        _ => fail!("exactly one of classlabels_int64s and classlabels_strings must be set"),
    };
    let nc = labels.len();
    if nc < 2 {
        fail!("a classifier needs at least two classes, got {nc}");
    }
    let post = PostTransform::parse(&a.string_or("post_transform", "NONE")?)?;
    let (mut spec, used) = tree_attrs::legacy(a, "class", nc, Aggregate::Sum)?;
    let base = a.floats_or_tensor("base_values")?;
    let all_positive = a
        .floats_or_tensor("class_weights")?
        .iter()
        .all(|&w| w >= 0.0);
    let binary = (nc == 2 && used.len() == 1).then(|| Binary {
        class: used[0],
        base: match base.len() {
            1 => base[0],
            2 => base[used[0]],
            _ => 0.0,
        },
        all_positive,
    });
    let mut scored = vec![false; nc];
    used.iter().for_each(|&c| scored[c] = true);
    if binary.is_none() {
        match base.len() {
            0 => {}
            l if l == nc => {
                scored = vec![true; nc];
                spec.base_values = base;
            }
            l => fail!("{l} base values for {nc} classes"),
        }
    }
    Ok(Box::new(Classifier {
        ensemble: compile(&spec)?,
        post,
        labels,
        scored,
        binary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_transforms() {
        let mut s = [1.0, 2.0, 3.0];
        transform(PostTransform::Softmax, &mut s);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12 && s[2] > s[1]);
        let mut s = [0.0, 2.0];
        transform(PostTransform::SoftmaxZero, &mut s);
        assert_eq!(s, [0.0, 1.0]);
        assert!((logistic(0.0) - 0.5).abs() < 1e-15 && logistic(-800.0) >= 0.0);
        assert!(
            (probit(0.975) - 1.959_964).abs() < 1e-3,
            "{}",
            probit(0.975)
        );
    }
}
