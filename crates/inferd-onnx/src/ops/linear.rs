//! LinearClassifier and LinearRegressor: `X · Wᵀ + b` computed in f64, then the ONNX-ML
//! post-transform; labels follow onnxruntime (argmax, or the sign of a single score).

use super::{input, Op};
use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::ops::tree_attrs::PostTransform;
use crate::tensor::{as_matrix, f64s};
use inferd_core::{Tensor, TensorData};

/// Scores `[n, rows]` for weights `coef` (`rows × k`, row-major) and intercepts.
fn scores(
    x: &Tensor,
    coef: &[f64],
    intercepts: &[f64],
    rows: usize,
) -> OpResult<(usize, Vec<f64>)> {
    let (n, k) = as_matrix(x);
    if coef.len() != rows * k {
        fail!(
            "input has {k} features per row, the model has {} coefficients for {rows} outputs",
            coef.len()
        );
    }
    let xv = f64s(x)?;
    let mut out = Vec::with_capacity(n * rows);
    for r in 0..n {
        let row = &xv[r * k..(r + 1) * k];
        for c in 0..rows {
            let w = &coef[c * k..(c + 1) * k];
            let dot: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
            out.push(dot + intercepts.get(c).copied().unwrap_or(0.0));
        }
    }
    Ok((n, out))
}

fn transform(post: PostTransform, row: &mut [f64]) {
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => row.iter_mut().for_each(|s| *s = 1.0 / (1.0 + (-*s).exp())),
        PostTransform::Softmax | PostTransform::SoftmaxZero => {
            let zero = post == PostTransform::SoftmaxZero;
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for s in row.iter_mut() {
                *s = if zero && *s == 0.0 {
                    0.0
                } else {
                    (*s - max).exp()
                };
                sum += *s;
            }
            if sum > 0.0 {
                row.iter_mut().for_each(|s| *s /= sum);
            }
        }
        PostTransform::Probit => {
            // Rare enough in linear models that we refuse it at load instead (see below).
        }
    }
}

enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
}

struct Classifier {
    coef: Vec<f64>,
    intercepts: Vec<f64>,
    rows: usize,
    labels: Labels,
    post: PostTransform,
}

impl Op for Classifier {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (n, s) = scores(x, &self.coef, &self.intercepts, self.rows)?;
        let n_labels = match &self.labels {
            Labels::Ints(l) => l.len(),
            Labels::Strings(l) => l.len(),
        };
        // One score row for two labels: the score is the positive class's margin.
        let single = self.rows == 1 && n_labels == 2;
        let width = if single { 2 } else { self.rows };
        let mut probs = Vec::with_capacity(n * width);
        let mut winners = Vec::with_capacity(n);
        for row in s.chunks(self.rows) {
            if single {
                let z = row[0];
                winners.push(usize::from(z > 0.0));
                let mut pair = [-z, z];
                transform(self.post, &mut pair);
                if self.post == PostTransform::Logistic {
                    pair[0] = 1.0 - pair[1];
                }
                probs.extend_from_slice(&pair);
                continue;
            }
            let mut best = 0;
            for k in 1..row.len() {
                if row[k] > row[best] {
                    best = k;
                }
            }
            winners.push(best);
            let mut row = row.to_vec();
            transform(self.post, &mut row);
            probs.extend_from_slice(&row);
        }
        let label = match &self.labels {
            Labels::Ints(l) => TensorData::I64(
                winners
                    .iter()
                    .map(|&w| l.get(w).copied().unwrap_or(w as i64))
                    .collect(),
            ),
            Labels::Strings(l) => TensorData::Bytes(
                winners
                    .iter()
                    .map(|&w| l.get(w).cloned().unwrap_or_default())
                    .collect(),
            ),
        };
        let probs = TensorData::F32(probs.into_iter().map(|v| v as f32).collect());
        Ok(vec![
            Tensor::new(vec![n], label)?,
            Tensor::new(vec![n, width], probs)?,
        ])
    }

    fn cost_per_row_ns(&self) -> u64 {
        (self.coef.len() as u64 / 2).max(10)
    }

    fn memory_bytes(&self) -> usize {
        self.coef.len() * 8
    }
}

fn post_transform(a: &Attrs) -> OpResult<PostTransform> {
    let p = PostTransform::parse(&a.string_or("post_transform", "NONE")?)?;
    if p == PostTransform::Probit {
        fail!("post_transform PROBIT is not supported for linear models");
    }
    Ok(p)
}

pub fn classifier(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&[
        "coefficients",
        "intercepts",
        "multi_class",
        "classlabels_ints",
        "classlabels_strings",
        "post_transform",
    ])?;
    let coef: Vec<f64> = a
        .floats("coefficients")?
        .into_iter()
        .map(f64::from)
        .collect();
    let intercepts: Vec<f64> = a.floats("intercepts")?.into_iter().map(f64::from).collect();
    let ints = a.ints("classlabels_ints")?;
    let strings = a.strings("classlabels_strings")?;
    let labels = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Labels::Ints(ints),
        (true, false) => Labels::Strings(strings),
        _ => fail!("exactly one of classlabels_ints and classlabels_strings must be set"),
    };
    let rows = if intercepts.is_empty() {
        1
    } else {
        intercepts.len()
    };
    if coef.is_empty() || !coef.len().is_multiple_of(rows) {
        fail!(
            "{} coefficients do not divide into {rows} classes",
            coef.len()
        );
    }
    let post = post_transform(a)?;
    Ok(Box::new(Classifier {
        coef,
        intercepts,
        rows,
        labels,
        post,
    }))
}

struct Regressor {
    coef: Vec<f64>,
    intercepts: Vec<f64>,
    targets: usize,
    post: PostTransform,
}

impl Op for Regressor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (n, mut s) = scores(x, &self.coef, &self.intercepts, self.targets)?;
        s.chunks_mut(self.targets)
            .for_each(|r| transform(self.post, r));
        let data = TensorData::F32(s.into_iter().map(|v| v as f32).collect());
        Ok(vec![Tensor::new(vec![n, self.targets], data)?])
    }

    fn cost_per_row_ns(&self) -> u64 {
        (self.coef.len() as u64 / 2).max(10)
    }

    fn memory_bytes(&self) -> usize {
        self.coef.len() * 8
    }
}

pub fn regressor(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["coefficients", "intercepts", "targets", "post_transform"])?;
    let coef: Vec<f64> = a
        .floats("coefficients")?
        .into_iter()
        .map(f64::from)
        .collect();
    let intercepts: Vec<f64> = a.floats("intercepts")?.into_iter().map(f64::from).collect();
    let targets = a.int_or("targets", 1)?;
    if targets < 1 || coef.is_empty() || !coef.len().is_multiple_of(targets as usize) {
        fail!(
            "{} coefficients do not divide into {targets} targets",
            coef.len()
        );
    }
    if !intercepts.is_empty() && intercepts.len() != targets as usize {
        fail!("{} intercepts for {targets} targets", intercepts.len());
    }
    Ok(Box::new(Regressor {
        coef,
        intercepts,
        targets: targets as usize,
        post: post_transform(a)?,
    }))
}
